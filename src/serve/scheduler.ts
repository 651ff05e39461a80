// The server's driver of the continuous-batching engine (src/sample/batch-engine.ts, the one `generate()` drives too):
// one loop owns the model and the engine; requests that arrive over time join the running decode batch (prefill, then
// one token per decode step together with everything else that is running), finished sequences leave at once, and the
// loop yields to the event loop between steps so that new HTTP requests are accepted while it runs.
//
// Sampling, admission (between decode steps, FIFO, within `maxBatch`, `kvCacheBytes` and `prefillTokensPerStep`) and
// the output conventions are the engine's, so a seeded request gives the same tokens whatever else is in the batch
// (bit for bit on the js backend) and the same tokens as `generate()` on the same weights. Top log-probabilities are
// rounded to float32 like the sampled token's log-probability.
//
// Weight updates (`updateWeights`) drain: once an update is queued no new sequence is admitted; the sequences already
// running finish on the old weights; then the checkpoint is validated completely and copied in (a bad checkpoint leaves
// the old weights in place and the update reports failure); then admission resumes and every sequence admitted from
// then on runs on the new weights. No sequence ever mixes weights, and neither do the samples of one request (a rollout
// group must come from one policy): the waiting samples of a request that was partly admitted when the update was
// queued are still admitted before it is applied. A drain lasts at most the longest running sequence's remaining
// tokens, plus those of such samples. Updates queued together are applied in order.
//
// Cancellation (client gone, timeout, shutdown) takes effect at the next step boundary: the sequences leave the batch
// or the queue, their caches are freed, and the request's promise rejects with a `CancelledError`.
import type { Qwen2Model } from '../model/qwen2.js';
import { BatchEngine, checkSamplingParams, newSeq, requestSeed, type EngineSeq, type Produced } from '../sample/batch-engine.js';
import { loadWeightsInto } from '../sample/local-backend.js';
import { KvDecoder, type KvDecoderOptions } from '../sample/kv-decoder.js';
import { logSumExp } from '../sample/sampler.js';
import type { SamplingParams } from '../sample/types.js';

/** One alternative of `top_logprobs`. */
export interface TopLogprob {
  id: number;
  logprob: number;
}

/** What one sample produced. */
export interface SampleResult {
  /** Generated ids, including a stop token id that ended the sequence. */
  tokenIds: number[];
  /** Log softmax(raw logits) of each generated token. */
  logprobs: number[];
  /** The `topLogprobs` most likely tokens at each step (descending; lower id first among ties); null when not asked. */
  topLogprobs: TopLogprob[][] | null;
  /** Decoded without the final stop token id and cut before the earliest stop string ('' without a tokenizer). */
  text: string;
  finishReason: 'stop' | 'length';
}

/** A token just appended to a sample (for streaming). */
export interface TokenEvent {
  sample: number;
  token: number;
  logprob: number;
  top: TopLogprob[] | null;
  /** All tokens of this sample so far (do not modify). */
  tokens: readonly number[];
  /** Set when this token finished the sample. */
  result: SampleResult | null;
}

export interface SubmitRequest {
  /** Prompt token ids (non-empty, each in [0, vocab)). */
  prompt: number[];
  /** Samples (≥ 1). */
  n: number;
  /** `seed` undefined → a random seed. */
  params: SamplingParams;
  /** Alternatives to report per token (0 = none). */
  topLogprobs?: number;
  /** Called for every token, inside the scheduler loop; must not throw. */
  onToken?: (ev: TokenEvent) => void;
}

export interface Job {
  /** One result per sample, in sample order; rejects with a CancelledError or an engine error. */
  readonly done: Promise<SampleResult[]>;
  /** Drops the job's sequences at the next step boundary (no-op once done). */
  cancel(reason: string): void;
}

export class CancelledError extends Error {
  constructor(readonly reason: string) {
    super(`request cancelled: ${reason}`);
    this.name = 'CancelledError';
  }
}

export interface SchedulerOptions {
  /** Most sequences decoded at once (default 64). */
  maxBatch?: number;
  /** Upper bound of the bytes of all preallocated KV caches (default 2 GiB). */
  kvCacheBytes?: number;
  /** Prompt tokens prefilled per step beyond the first admitted prompt (default 2048). */
  prefillTokensPerStep?: number;
  /** Most sequences waiting for admission; `submit` throws a QueueFullError beyond (default 4096). */
  maxQueued?: number;
  /** Token ids → text, for `text` and stop strings. */
  decode?: (ids: readonly number[]) => string;
  decoderOptions?: KvDecoderOptions;
}

export class QueueFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueFullError';
  }
}

/** Counters for /health and tests. */
export interface SchedulerStats {
  running: number;
  queued: number;
  /** Incremented by every successful weight update. */
  weightVersion: number;
  decodeSteps: number;
  generatedTokens: number;
  prefillTokens: number;
  completedRequests: number;
  cancelledRequests: number;
}

interface JobState {
  top: number;
  onToken: ((ev: TokenEvent) => void) | undefined;
  results: Array<SampleResult | null>;
  remaining: number;
  cancelled: string | null;
  settled: boolean;
  /** Some sample of the job has been admitted (its other samples must run on the same weights). */
  admitted: boolean;
  resolve: (r: SampleResult[]) => void;
  reject: (e: Error) => void;
}

interface Seq extends EngineSeq {
  job: JobState;
  sample: number;
  top: TopLogprob[][] | null;
}

interface Swap {
  dir: string;
  resolve: (r: { success: boolean; message: string }) => void;
}

const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The `k` most likely tokens of a logits row and their log-probabilities (descending, lower id first among ties). */
export function topLogprobsOf(logits: ArrayLike<number>, k: number, lse: number): TopLogprob[] {
  const V = logits.length;
  const kk = Math.min(k, V);
  const ids: number[] = [];
  for (let i = 0; i < V; i++) {
    const z = logits[i]!;
    if (ids.length === kk && !(z > logits[ids[kk - 1]!]!)) continue;
    // insertion into the descending list (stable: equal values keep the lower id first)
    let j = ids.length < kk ? ids.length : kk - 1;
    if (ids.length < kk) ids.push(i);
    while (j > 0 && logits[ids[j - 1]!]! < z) {
      ids[j] = ids[j - 1]!;
      j--;
    }
    ids[j] = i;
  }
  return ids.map((id) => ({ id, logprob: logits[id]! - lse }));
}

export class Scheduler {
  readonly model: Qwen2Model;
  private readonly engine: BatchEngine<Seq>;
  private readonly maxQueued: number;
  private swaps: Swap[] = [];
  /** Sequences being admitted (failed with the batch should the engine throw). */
  private wave: readonly Seq[] = [];
  private wake: (() => void) | null = null;
  private stopped = false;
  private loopDone: Promise<void>;
  private readonly counters = {
    weightVersion: 0,
    completedRequests: 0,
    cancelledRequests: 0,
  };

  constructor(model: Qwen2Model, opts: SchedulerOptions = {}) {
    this.model = model;
    this.engine = new BatchEngine<Seq>(model, new KvDecoder(model, opts.decoderOptions), {
      maxBatch: opts.maxBatch,
      kvCacheBytes: opts.kvCacheBytes ?? 2 * 1024 ** 3,
      prefillTokensPerStep: opts.prefillTokensPerStep ?? 2048,
      decode: opts.decode,
    });
    this.maxQueued = Math.max(1, Math.floor(opts.maxQueued ?? 4096));
    this.loopDone = this.loop();
  }

  get maxBatch(): number {
    return this.engine.maxBatch;
  }

  get kvCacheBytes(): number {
    return this.engine.kvCacheBytes;
  }

  /** Bytes of the KV caches of one sequence with room for `positions` positions. */
  cacheBytes(positions: number): number {
    return this.engine.cacheBytes(positions);
  }

  stats(): SchedulerStats {
    const { pending, active, counters } = this.engine;
    return { running: active.length, queued: pending.length, ...this.counters, ...counters };
  }

  /**
   * Queues a request's samples. Throws (before queueing anything) on invalid settings, a sequence that can never fit
   * the KV budget, or a full queue.
   */
  submit(req: SubmitRequest): Job {
    if (this.stopped) throw new Error('scheduler stopped');
    const p = req.params;
    const V = this.model.config.vocabSize;
    if (!Number.isInteger(req.n) || req.n < 1) throw new Error(`n ${req.n} is not a positive integer`);
    if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < 0) throw new Error(`max_tokens ${p.maxNewTokens} is not a non-negative integer`);
    checkSamplingParams(p);
    if (req.prompt.length === 0) throw new Error('empty prompt');
    for (const t of req.prompt) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`prompt token id ${t} not in [0, ${V})`);
    if (p.stopStrings.length > 0 && this.engine.decode === undefined) throw new Error('stop strings need a tokenizer');
    const need = this.cacheBytes(req.prompt.length + p.maxNewTokens - 1);
    if (need > this.kvCacheBytes)
      throw new Error(`prompt (${req.prompt.length} tokens) + max_tokens (${p.maxNewTokens}) need ${need} bytes of KV cache, more than the budget of ${this.kvCacheBytes}`);
    const pending = this.engine.pending;
    if (p.maxNewTokens > 0 && pending.length + req.n > this.maxQueued)
      throw new QueueFullError(`too many queued sequences (${pending.length} waiting, limit ${this.maxQueued})`);

    let resolve!: (r: SampleResult[]) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<SampleResult[]>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Avoid unhandled-rejection noise when a caller drops the promise after cancelling.
    done.catch(() => undefined);
    const job: JobState = {
      top: Math.max(0, Math.floor(req.topLogprobs ?? 0)),
      onToken: req.onToken,
      results: new Array<SampleResult | null>(req.n).fill(null),
      remaining: req.n,
      cancelled: null,
      settled: false,
      admitted: false,
      resolve,
      reject,
    };
    if (p.maxNewTokens === 0) {
      for (let j = 0; j < req.n; j++) job.results[j] = { tokenIds: [], logprobs: [], topLogprobs: job.top > 0 ? [] : null, text: '', finishReason: 'length' };
      job.remaining = 0;
      this.settle(job);
    } else {
      const seed = requestSeed(p);
      for (let j = 0; j < req.n; j++)
        pending.push({ ...newSeq(job, req.prompt, p, seed, j, job.top > 0), job, sample: j, top: job.top > 0 ? [] : null });
      this.kick();
    }
    return {
      done,
      cancel: (reason: string) => {
        if (job.settled || job.cancelled !== null) return;
        job.cancelled = reason;
        this.kick();
      },
    };
  }

  /** Queues a weight update (see the top of this file); resolves once it has been applied or refused. */
  updateWeights(dir: string): Promise<{ success: boolean; message: string }> {
    if (this.stopped) return Promise.resolve({ success: false, message: 'server is shutting down' });
    return new Promise((resolve) => {
      this.swaps.push({ dir, resolve });
      this.kick();
    });
  }

  /** Cancels everything still queued or running (e.g. at shutdown). */
  cancelAll(reason: string): void {
    for (const s of [...this.engine.pending, ...this.engine.active]) if (!s.job.settled && s.job.cancelled === null) s.job.cancelled = reason;
    this.kick();
  }

  /** Stops the loop after cancelling everything; frees the decoder's buffers. */
  async stop(): Promise<void> {
    this.cancelAll('server shutting down');
    this.stopped = true;
    this.kick();
    await this.loopDone;
    for (const sw of this.swaps) sw.resolve({ success: false, message: 'server is shutting down' });
    this.swaps = [];
    this.engine.decoder.releaseBuffers();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  private settle(job: JobState): void {
    if (job.settled) return;
    job.settled = true;
    if (job.cancelled !== null) {
      this.counters.cancelledRequests++;
      job.reject(new CancelledError(job.cancelled));
    } else {
      this.counters.completedRequests++;
      job.resolve(job.results as SampleResult[]);
    }
  }

  private fail(s: Seq, err: Error): void {
    this.engine.release(s);
    if (!s.job.settled) {
      s.job.settled = true;
      s.job.reject(err);
    }
  }

  private async loop(): Promise<void> {
    const engine = this.engine;
    while (true) {
      this.dropCancelled();
      if (this.stopped && engine.idle) return;
      const started = (s: Seq): boolean => s.job.admitted;
      // Samples waiting whose siblings already run (they are at the head of the FIFO queue: a request's samples are
      // queued together) go first, on the weights their siblings have.
      const siblingsWaiting = this.swaps.length > 0 && engine.pending.length > 0 && started(engine.pending[0]!);
      if (this.swaps.length > 0 && engine.active.length === 0 && !siblingsWaiting) {
        this.applySwaps();
        await yieldToEventLoop();
        continue;
      }
      if (engine.active.length === 0 && engine.pending.length === 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        // A queued weight update drains: nothing new is admitted until it has been applied, except the waiting
        // samples of requests that have some admitted already.
        const onWave = (wave: readonly Seq[]): void => {
          this.wave = wave;
          for (const s of wave) s.job.admitted = true;
        };
        if (this.swaps.length === 0) this.accept(await engine.admit(onWave));
        else if (siblingsWaiting) this.accept(await engine.admit(onWave, started));
        this.accept(await engine.step());
      } catch (e) {
        // An engine failure fails the sequences involved (all running ones); the server keeps serving.
        const err = e instanceof Error ? e : new Error(String(e));
        for (const s of [...this.wave, ...engine.active]) this.fail(s, err);
        engine.active = [];
      } finally {
        this.wave = [];
      }
      await yieldToEventLoop();
    }
  }

  private dropCancelled(): void {
    const settledWith: JobState[] = [];
    this.engine.retain((s) => {
      if (s.job.cancelled === null && !s.job.settled) return true;
      if (s.job.cancelled !== null) settledWith.push(s.job);
      return false;
    });
    for (const job of settledWith) this.settle(job);
  }

  private applySwaps(): void {
    const swaps = this.swaps;
    this.swaps = [];
    for (const sw of swaps) {
      try {
        loadWeightsInto(this.model, sw.dir);
        this.counters.weightVersion++;
        sw.resolve({ success: true, message: `loaded weights from ${sw.dir}` });
      } catch (e) {
        sw.resolve({ success: false, message: e instanceof Error ? e.message : String(e) });
      }
    }
  }

  /** Records the tokens the engine produced: top log-probabilities, streaming, and each finished sample's result. */
  private accept(produced: readonly Produced<Seq>[]): void {
    const V = this.model.config.vocabSize;
    for (const { seq: s, sampled, row, finish } of produced) {
      const job = s.job;
      let top: TopLogprob[] | null = null;
      if (s.top !== null) {
        // Rounded to float32 like the sampled token's log-probability (the sampler op's), so the two agree exactly.
        top = topLogprobsOf(row!, job.top, logSumExp(row!, V)).map((t) => ({ id: t.id, logprob: Math.fround(t.logprob) }));
        s.top.push(top);
      }
      const result: SampleResult | null = finish
        ? { tokenIds: s.tokens, logprobs: s.logprobs, topLogprobs: s.top, text: finish.text, finishReason: finish.reason }
        : null;
      if (job.onToken && job.cancelled === null) {
        try {
          job.onToken({ sample: s.sample, token: sampled.token, logprob: sampled.logprob, top, tokens: s.tokens, result });
        } catch {
          // a listener's failure must not stop the batch
        }
      }
      if (result === null) continue;
      job.results[s.sample] = result;
      job.remaining--;
      if (job.remaining === 0) this.settle(job);
    }
  }
}
