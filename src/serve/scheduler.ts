// Continuous batching for the server: one loop owns the model and its KV-cache decoder; requests that arrive over time
// join the running decode batch (prefill, then one token per decode step together with everything else that is
// running), finished sequences leave at once, and the loop yields to the event loop between steps so that new HTTP
// requests are accepted while it runs.
//
// Sampling is the same as `generate()` (src/sample/generate.ts): sample j of a request draws from Rng(seed, j), one
// draw per non-greedy token, with the same TokenSampler; stop token ids are kept in `tokenIds`, `text` is decoded
// without the final stop token id and cut before the earliest stop string; logprobs are log softmax(raw logits) in
// float32 (the sampler op's; top log-probs are rounded to match). So a seeded request gives the same tokens whatever
// else is in the batch (bit for bit on the js backend) and the same tokens as `generate()` on the same weights.
//
// Admission (between decode steps, FIFO): a waiting sequence is admitted while the batch has fewer than `maxBatch`
// sequences, the KV caches stay within `kvCacheBytes` (each sequence preallocates prompt + max_tokens − 1 positions)
// and the prompts prefilled in this step stay within `prefillTokensPerStep` (the first admission of a step always
// fits, so a long prompt is never starved). The samples of one request admitted together share one prefill.
//
// Weight updates (`updateWeights`) drain: once an update is queued no new sequence is admitted; the sequences already
// running finish on the old weights; then the checkpoint is validated completely and copied in (a bad checkpoint leaves
// the old weights in place and the update reports failure); then admission resumes and every sequence admitted from
// then on runs on the new weights. No sequence ever mixes weights, and a drain lasts at most the longest running
// sequence's remaining tokens. Updates queued together are applied in order.
//
// Cancellation (client gone, timeout, shutdown) takes effect at the next step boundary: the sequences leave the batch
// or the queue, their caches are freed, and the request's promise rejects with a `CancelledError`.
import { randomInt } from 'node:crypto';
import type { F32 } from '../engine/tensor.js';
import type { Qwen2Model } from '../model/qwen2.js';
import { loadWeightsInto } from '../sample/local-backend.js';
import { KvDecoder, type KvCache, type KvDecoderOptions } from '../sample/kv-decoder.js';
import { Rng, checkSamplerSettings, isGreedy, logSumExp, sampleNext, type Sampled } from '../sample/sampler.js';
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
  prompt: number[];
  params: SamplingParams;
  greedy: boolean;
  seed: number;
  top: number;
  onToken: ((ev: TokenEvent) => void) | undefined;
  results: Array<SampleResult | null>;
  remaining: number;
  cancelled: string | null;
  settled: boolean;
  resolve: (r: SampleResult[]) => void;
  reject: (e: Error) => void;
}

interface Seq {
  job: JobState;
  sample: number;
  rng: Rng | null;
  cache: KvCache | null;
  /** Bytes reserved for its cache (0 while waiting). */
  bytes: number;
  tokens: number[];
  logprobs: number[];
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
  private readonly decoder: KvDecoder;
  private readonly decodeText: ((ids: readonly number[]) => string) | undefined;
  readonly maxBatch: number;
  readonly kvCacheBytes: number;
  private readonly prefillPerStep: number;
  private readonly maxQueued: number;
  private pending: Seq[] = [];
  private active: Seq[] = [];
  private swaps: Swap[] = [];
  /** Sequences being admitted (failed with the batch should the engine throw). */
  private wave: Seq[] = [];
  private kvBytes = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  private loopDone: Promise<void>;
  private readonly counters = {
    weightVersion: 0,
    decodeSteps: 0,
    generatedTokens: 0,
    prefillTokens: 0,
    completedRequests: 0,
    cancelledRequests: 0,
  };

  constructor(model: Qwen2Model, opts: SchedulerOptions = {}) {
    this.model = model;
    this.decoder = new KvDecoder(model, opts.decoderOptions);
    this.decodeText = opts.decode;
    this.maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 64));
    this.kvCacheBytes = Math.max(1, opts.kvCacheBytes ?? 2 * 1024 ** 3);
    this.prefillPerStep = Math.max(1, Math.floor(opts.prefillTokensPerStep ?? 2048));
    this.maxQueued = Math.max(1, Math.floor(opts.maxQueued ?? 4096));
    this.loopDone = this.loop();
  }

  /** Bytes of the KV caches of one sequence with room for `positions` positions. */
  cacheBytes(positions: number): number {
    return 2 * 4 * this.decoder.cacheFloats(Math.max(1, positions));
  }

  stats(): SchedulerStats {
    return { running: this.active.length, queued: this.pending.length, ...this.counters };
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
    if (p.greedy === true) checkSamplerSettings({ ...p, temperature: 0 });
    else checkSamplerSettings(p);
    if (req.prompt.length === 0) throw new Error('empty prompt');
    for (const t of req.prompt) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`prompt token id ${t} not in [0, ${V})`);
    if (p.stopStrings.length > 0 && this.decodeText === undefined) throw new Error('stop strings need a tokenizer');
    const need = this.cacheBytes(req.prompt.length + p.maxNewTokens - 1);
    if (need > this.kvCacheBytes)
      throw new Error(`prompt (${req.prompt.length} tokens) + max_tokens (${p.maxNewTokens}) need ${need} bytes of KV cache, more than the budget of ${this.kvCacheBytes}`);
    if (p.maxNewTokens > 0 && this.pending.length + req.n > this.maxQueued)
      throw new QueueFullError(`too many queued sequences (${this.pending.length} waiting, limit ${this.maxQueued})`);

    let resolve!: (r: SampleResult[]) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<SampleResult[]>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Avoid unhandled-rejection noise when a caller drops the promise after cancelling.
    done.catch(() => undefined);
    const greedy = isGreedy(p);
    const job: JobState = {
      prompt: req.prompt,
      params: p,
      greedy,
      seed: p.seed ?? randomInt(0, 2 ** 48 - 1),
      top: Math.max(0, Math.floor(req.topLogprobs ?? 0)),
      onToken: req.onToken,
      results: new Array<SampleResult | null>(req.n).fill(null),
      remaining: req.n,
      cancelled: null,
      settled: false,
      resolve,
      reject,
    };
    if (p.maxNewTokens === 0) {
      job.results.fill(null);
      for (let j = 0; j < req.n; j++) job.results[j] = { tokenIds: [], logprobs: [], topLogprobs: job.top > 0 ? [] : null, text: '', finishReason: 'length' };
      job.remaining = 0;
      this.settle(job);
    } else {
      for (let j = 0; j < req.n; j++) {
        this.pending.push({
          job,
          sample: j,
          rng: greedy ? null : new Rng(job.seed, j),
          cache: null,
          bytes: 0,
          tokens: [],
          logprobs: [],
          top: job.top > 0 ? [] : null,
        });
      }
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
    for (const s of [...this.pending, ...this.active]) if (!s.job.settled && s.job.cancelled === null) s.job.cancelled = reason;
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
    this.decoder.releaseBuffers();
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

  private release(s: Seq): void {
    if (s.cache) this.decoder.freeCache(s.cache);
    s.cache = null;
    this.kvBytes -= s.bytes;
    s.bytes = 0;
  }

  private fail(s: Seq, err: Error): void {
    this.release(s);
    if (!s.job.settled) {
      s.job.settled = true;
      s.job.reject(err);
    }
  }

  private async loop(): Promise<void> {
    while (true) {
      this.dropCancelled();
      if (this.stopped && this.active.length === 0 && this.pending.length === 0) return;
      if (this.swaps.length > 0 && this.active.length === 0) {
        this.applySwaps();
        await yieldToEventLoop();
        continue;
      }
      if (this.active.length === 0 && (this.pending.length === 0 || this.swaps.length > 0)) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        if (this.swaps.length === 0) await this.admit();
        if (this.active.length > 0) await this.step();
      } catch (e) {
        // An engine failure fails the sequences involved (all running ones); the server keeps serving.
        const err = e instanceof Error ? e : new Error(String(e));
        for (const s of [...this.wave, ...this.active]) this.fail(s, err);
        this.active = [];
      } finally {
        this.wave = [];
      }
      await yieldToEventLoop();
    }
  }

  private dropCancelled(): void {
    const keep = (s: Seq): boolean => {
      if (s.job.cancelled === null && !s.job.settled) return true;
      this.release(s);
      if (s.job.cancelled !== null) this.settle(s.job);
      return false;
    };
    if (this.pending.some((s) => s.job.cancelled !== null || s.job.settled)) this.pending = this.pending.filter(keep);
    if (this.active.some((s) => s.job.cancelled !== null || s.job.settled)) this.active = this.active.filter(keep);
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

  /** Moves waiting sequences into the batch and prefills them (one prefill per request per admission). */
  private async admit(): Promise<void> {
    if (this.pending.length === 0 || this.active.length >= this.maxBatch) return;
    const wave: Seq[] = [];
    let prefill = 0;
    const seen = new Set<JobState>();
    while (this.pending.length > 0 && this.active.length + wave.length < this.maxBatch) {
      const s = this.pending[0]!;
      const len = s.job.prompt.length;
      const bytes = this.cacheBytes(len + s.job.params.maxNewTokens - 1);
      const first = wave.length === 0 && this.active.length === 0;
      if (!first && this.kvBytes + bytes > this.kvCacheBytes) break;
      const newPrompt = !seen.has(s.job);
      if (newPrompt && wave.length > 0 && prefill + len > this.prefillPerStep) break;
      this.pending.shift();
      this.kvBytes += bytes;
      s.bytes = bytes;
      if (newPrompt) {
        seen.add(s.job);
        prefill += len;
      }
      wave.push(s);
    }
    if (wave.length === 0) return;
    this.wave = wave;
    const groups = new Map<JobState, Seq[]>();
    for (const s of wave) {
      const g = groups.get(s.job);
      if (g) g.push(s);
      else groups.set(s.job, [s]);
    }
    const heads: Seq[] = [];
    for (const g of groups.values()) {
      for (const s of g) s.cache = this.decoder.newCache(s.job.prompt.length + s.job.params.maxNewTokens - 1);
      heads.push(g[0]!);
    }
    const logits = this.decoder.prefill(
      heads.map((s) => s.job.prompt),
      heads.map((s) => s.cache!),
    );
    const V = this.model.config.vocabSize;
    // Each sample draws from its prompt's row.
    const order = [...groups.values()].flat();
    const rows = [...groups.values()].flatMap((g, gi) => g.map(() => gi));
    const picks = await sampleNext(this.model.backend, logits, V, order.map((s) => ({ params: s.job.params, rng: s.rng })), rows);
    const host = await this.topLogits(order, logits);
    let j = 0;
    let gi = 0;
    for (const g of groups.values()) {
      this.counters.prefillTokens += g[0]!.job.prompt.length;
      const row = host ? host.subarray(gi * V, (gi + 1) * V) : null;
      gi++;
      // Copy the prompt's cache to every sample before any of them can finish and free the head's cache.
      for (const s of g) if (s !== g[0]) this.decoder.copyCache(g[0]!.cache!, s.cache!);
      for (const s of g) {
        this.counters.generatedTokens++;
        if (this.accept(s, row, picks[j++]!)) this.release(s);
        else this.active.push(s);
      }
    }
  }

  /** The logits on the host, read only when a sequence asked for top log-probabilities (they need every logit). */
  private async topLogits(seqs: readonly Seq[], logits: F32): Promise<Float32Array | null> {
    return seqs.some((s) => s.top !== null) ? await this.model.backend.read(logits) : null;
  }

  private async step(): Promise<void> {
    const V = this.model.config.vocabSize;
    const batch = this.active;
    const logits = this.decoder.decode(
      batch.map((s) => s.cache!),
      batch.map((s) => s.tokens[s.tokens.length - 1]!),
    );
    this.counters.decodeSteps++;
    this.counters.generatedTokens += batch.length;
    const picks = await sampleNext(this.model.backend, logits, V, batch.map((s) => ({ params: s.job.params, rng: s.rng })));
    const host = await this.topLogits(batch, logits);
    const still: Seq[] = [];
    for (let i = 0; i < batch.length; i++) {
      const s = batch[i]!;
      if (this.accept(s, host ? host.subarray(i * V, (i + 1) * V) : null, picks[i]!)) this.release(s);
      else still.push(s);
    }
    this.active = still;
  }

  /**
   * Appends a sampled token; true when the sequence is finished (its result is then stored). `logits` is the host row
   * it was drawn from, there when some sequence of the batch asked for top log-probabilities.
   */
  private accept(s: Seq, logits: Float32Array | null, { token, logprob }: Sampled): boolean {
    const job = s.job;
    const p = job.params;
    s.tokens.push(token);
    s.logprobs.push(logprob);
    let top: TopLogprob[] | null = null;
    if (s.top !== null) {
      // Rounded to float32 like the sampled token's log-probability (the sampler op's), so the two agree exactly.
      top = topLogprobsOf(logits!, job.top, logSumExp(logits!, logits!.length)).map((t) => ({ id: t.id, logprob: Math.fround(t.logprob) }));
      s.top.push(top);
    }
    const decode = this.decodeText;
    let result: SampleResult | null = null;
    const done = (reason: 'stop' | 'length', text: string): void => {
      result = { tokenIds: s.tokens, logprobs: s.logprobs, topLogprobs: s.top, text, finishReason: reason };
    };
    if (p.stopTokenIds.includes(token)) done('stop', decode ? decode(s.tokens.slice(0, -1)) : '');
    else {
      let text: string | null = null;
      if (p.stopStrings.length > 0 && decode) {
        text = decode(s.tokens);
        let cut = -1;
        for (const ss of p.stopStrings) {
          const at = text.indexOf(ss);
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) done('stop', text.slice(0, cut));
      }
      if (result === null && s.tokens.length >= p.maxNewTokens) done('length', text ?? (decode ? decode(s.tokens) : ''));
    }
    if (job.onToken && job.cancelled === null) {
      try {
        job.onToken({ sample: s.sample, token, logprob, top, tokens: s.tokens, result });
      } catch {
        // a listener's failure must not stop the batch
      }
    }
    if (result === null) return false;
    job.results[s.sample] = result;
    job.remaining--;
    if (job.remaining === 0) this.settle(job);
    return true;
  }
}
