// The continuous-batching engine that both offline generation (`generate`, src/sample/generate.ts) and the server's
// scheduler (src/serve/scheduler.ts) drive: a queue of waiting sequences, a running batch, admission with one prefill
// per request, one decode step for the whole batch, sampling, and the stop rules. The drivers own everything around it
// (request validation and results for `generate`; jobs, streaming, cancellation, weight updates and the event loop for
// the server), so a seeded request gives the same tokens through either.
//
// Sampling: sample j of a request draws from Xoshiro128(seed, j), one draw per non-greedy token, so a seeded request
// reproduces exactly whatever else is in the batch (with the js backend bit for bit; with a backend whose GEMM rounding
// depends on the number of rows, a different batch can move logits in the last float32 bit, which changes a draw only
// when it lands within ~1e-7 of a boundary of the cumulative distribution).
//
// Admission (FIFO): a waiting sequence is admitted while the batch has fewer than `maxBatch` sequences, the KV caches
// stay within `kvCacheBytes` (each sequence preallocates prompt + max new tokens − 1 positions) and the prompts
// prefilled in this admission stay within `prefillTokensPerStep` (the first admission always fits, so a long prompt is
// never starved). The samples of one request admitted together share one prefill: the prompt is prefilled once and
// its cache copied to the other samples.
//
// Output conventions (as vLLM's defaults):
// - `tokens` are the generated ids only, including a stop token id when one ended the sequence; for a stop string, all
//   tokens up to the one that completed it are kept.
// - the finished `text` is `decode(tokens)` without a final stop token id and cut before the earliest stop string; ''
//   when there is no `decode`.
// - `logprobs[i]` is log softmax(raw logits)[tokens[i]] in float32 (temperature 1, before top-k / top-p; see
//   sampler.ts).
// - finish reason 'stop' for a stop token id or stop string, else 'length' (max new tokens reached).
import { randomInt } from 'node:crypto';
import type { F32 } from '../engine/tensor.js';
import type { Qwen2Model } from '../model/qwen2.js';
import type { KvCache, KvDecoder } from './kv-decoder.js';
import { Xoshiro128 } from '../util/rng.js';
import { checkSamplerSettings, isGreedy, sampleNext, type Sampled } from './sampler.js';
import type { SamplingParams } from './types.js';

/** One sample being generated. Drivers extend it with their own bookkeeping. */
export interface EngineSeq {
  /** Identity of the request: the samples of one request admitted together share one prefill. */
  readonly request: object;
  readonly prompt: readonly number[];
  readonly params: SamplingParams;
  /** null for greedy settings (they consume no randomness). */
  readonly rng: Xoshiro128 | null;
  /** Whether its driver needs the host logits row each token was drawn from (top log-probabilities). */
  readonly wantsLogits: boolean;
  cache: KvCache | null;
  /** Bytes reserved for its cache (0 while waiting). */
  bytes: number;
  readonly tokens: number[];
  readonly logprobs: number[];
}

export interface Finish {
  reason: 'stop' | 'length';
  text: string;
}

/** A token just appended to a sequence. */
export interface Produced<S extends EngineSeq> {
  seq: S;
  sampled: Sampled;
  /** The host logits row it was drawn from, when some sequence of the batch wants logits. */
  row: Float32Array | null;
  /** Set when this token finished the sequence (it has then left the batch and its cache is freed). */
  finish: Finish | null;
}

export interface BatchEngineOptions {
  /** Most sequences decoded at once (default 64). */
  maxBatch?: number;
  /** Upper bound of the bytes of all preallocated KV caches (default: none). */
  kvCacheBytes?: number;
  /** Prompt tokens prefilled per admission beyond the first admitted prompt (default: none). */
  prefillTokensPerStep?: number;
  /** Token ids → text, for the finished text and stop strings. */
  decode?: (ids: readonly number[]) => string;
}

/** Counters of the work done. */
export interface EngineCounters {
  /** Prompt tokens run through prefill (once per request per admission). */
  prefillTokens: number;
  generatedTokens: number;
  /** Batched decode steps. */
  decodeSteps: number;
}

/** Checks sampling settings; `greedy: true` overrides the temperature. */
export function checkSamplingParams(p: SamplingParams): void {
  if (p.greedy === true) checkSamplerSettings({ ...p, temperature: 0 });
  else checkSamplerSettings(p);
}

/** The seed a request samples with: its own, else a random one. */
export function requestSeed(p: SamplingParams): number {
  return p.seed ?? randomInt(0, 2 ** 48 - 1);
}

/** The engine's fields of sample `sample` of a request (seeded by `seed`). */
export function newSeq(request: object, prompt: readonly number[], params: SamplingParams, seed: number, sample: number, wantsLogits = false): EngineSeq {
  return {
    request,
    prompt,
    params,
    rng: isGreedy(params) ? null : new Xoshiro128(seed, sample),
    wantsLogits,
    cache: null,
    bytes: 0,
    tokens: [],
    logprobs: [],
  };
}

/** Whether the token just appended to `tokens` finishes the sequence, and its text if so. */
export function finishOf(tokens: readonly number[], p: SamplingParams, decode: ((ids: readonly number[]) => string) | undefined): Finish | null {
  const token = tokens[tokens.length - 1]!;
  if (p.stopTokenIds.includes(token)) return { reason: 'stop', text: decode ? decode(tokens.slice(0, -1)) : '' };
  let text: string | null = null;
  if (p.stopStrings.length > 0 && decode) {
    text = decode(tokens);
    let cut = -1;
    for (const ss of p.stopStrings) {
      const at = text.indexOf(ss);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) return { reason: 'stop', text: text.slice(0, cut) };
  }
  if (tokens.length >= p.maxNewTokens) return { reason: 'length', text: text ?? (decode ? decode(tokens) : '') };
  return null;
}

export class BatchEngine<S extends EngineSeq> {
  readonly maxBatch: number;
  readonly kvCacheBytes: number;
  private readonly prefillPerStep: number;
  readonly decode: ((ids: readonly number[]) => string) | undefined;
  /** Waiting for admission, in order. */
  pending: S[] = [];
  /** The running batch. */
  active: S[] = [];
  /** Bytes of the KV caches reserved by the running batch. */
  private kvBytes = 0;
  readonly counters: EngineCounters = { prefillTokens: 0, generatedTokens: 0, decodeSteps: 0 };

  constructor(
    readonly model: Qwen2Model,
    readonly decoder: KvDecoder,
    opts: BatchEngineOptions = {},
  ) {
    this.maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 64));
    this.kvCacheBytes = Math.max(1, opts.kvCacheBytes ?? Number.POSITIVE_INFINITY);
    this.prefillPerStep = Math.max(1, Math.floor(opts.prefillTokensPerStep ?? Number.POSITIVE_INFINITY));
    this.decode = opts.decode;
  }

  /** Bytes of the KV caches of one sequence with room for `positions` positions. */
  cacheBytes(positions: number): number {
    return 2 * 4 * this.decoder.cacheFloats(Math.max(1, positions));
  }

  /** Positions a sequence's cache holds: the last generated token is never fed back. */
  static positions(s: EngineSeq): number {
    return s.prompt.length + s.params.maxNewTokens - 1;
  }

  get idle(): boolean {
    return this.pending.length === 0 && this.active.length === 0;
  }

  /** Frees a sequence's cache and its reservation (idempotent). */
  release(s: S): void {
    if (s.cache) this.decoder.freeCache(s.cache);
    s.cache = null;
    this.kvBytes -= s.bytes;
    s.bytes = 0;
  }

  /** Drops the waiting and running sequences `keep` refuses, releasing them. */
  retain(keep: (s: S) => boolean): void {
    const k = (s: S): boolean => {
      if (keep(s)) return true;
      this.release(s);
      return false;
    };
    if (!this.pending.every(keep)) this.pending = this.pending.filter(k);
    if (!this.active.every(keep)) this.active = this.active.filter(k);
  }

  /** Releases everything and empties the queue and the batch. */
  releaseAll(): void {
    for (const s of this.active) this.release(s);
    for (const s of this.pending) this.release(s);
    this.active = [];
    this.pending = [];
  }

  /**
   * Moves waiting sequences into the batch and prefills them (one prefill per request per admission); returns the
   * admitted sequences (`onWave` sees them before any compute, so a driver can fail them should the engine throw) and
   * their first tokens. With `only`, admission stops at the first waiting sequence it refuses.
   */
  async admit(onWave?: (wave: readonly S[]) => void, only?: (s: S) => boolean): Promise<Produced<S>[]> {
    if (this.pending.length === 0 || this.active.length >= this.maxBatch) return [];
    const wave: S[] = [];
    let prefill = 0;
    const seen = new Set<object>();
    while (this.pending.length > 0 && this.active.length + wave.length < this.maxBatch) {
      const s = this.pending[0]!;
      if (only !== undefined && !only(s)) break;
      const len = s.prompt.length;
      const bytes = this.cacheBytes(BatchEngine.positions(s));
      const first = wave.length === 0 && this.active.length === 0;
      if (!first && this.kvBytes + bytes > this.kvCacheBytes) break;
      const newPrompt = !seen.has(s.request);
      if (newPrompt && wave.length > 0 && prefill + len > this.prefillPerStep) break;
      this.pending.shift();
      this.kvBytes += bytes;
      s.bytes = bytes;
      if (newPrompt) {
        seen.add(s.request);
        prefill += len;
      }
      wave.push(s);
    }
    if (wave.length === 0) return [];
    onWave?.(wave);
    const groups = new Map<object, S[]>();
    for (const s of wave) {
      const g = groups.get(s.request);
      if (g) g.push(s);
      else groups.set(s.request, [s]);
    }
    const heads: S[] = [];
    for (const g of groups.values()) {
      for (const s of g) s.cache = this.decoder.newCache(BatchEngine.positions(s));
      heads.push(g[0]!);
    }
    const logits = this.decoder.prefill(
      heads.map((s) => s.prompt as number[]),
      heads.map((s) => s.cache!),
    );
    for (const s of heads) this.counters.prefillTokens += s.prompt.length;
    const V = this.model.config.vocabSize;
    // Each sample draws from its prompt's row.
    const order = [...groups.values()].flat();
    const rows = [...groups.values()].flatMap((g, gi) => g.map(() => gi));
    const picks = await sampleNext(this.model.backend, logits, V, order, rows);
    const host = await this.hostLogits(order, logits);
    // Copy the prompt's cache to every sample before any of them can finish and free the head's cache.
    for (const g of groups.values()) for (const s of g) if (s !== g[0]) this.decoder.copyCache(g[0]!.cache!, s.cache!);
    return order.map((s, i) => this.accept(s, picks[i]!, host ? host.subarray(rows[i]! * V, (rows[i]! + 1) * V) : null));
  }

  /** One decode step for every running sequence; returns the tokens produced, in batch order. */
  async step(): Promise<Produced<S>[]> {
    const batch = this.active;
    if (batch.length === 0) return [];
    const V = this.model.config.vocabSize;
    const logits = this.decoder.decode(
      batch.map((s) => s.cache!),
      batch.map((s) => s.tokens[s.tokens.length - 1]!),
    );
    this.counters.decodeSteps++;
    const picks = await sampleNext(this.model.backend, logits, V, batch);
    const host = await this.hostLogits(batch, logits);
    this.active = [];
    return batch.map((s, i) => this.accept(s, picks[i]!, host ? host.subarray(i * V, (i + 1) * V) : null));
  }

  /** The logits on the host, read only when a sequence asked for them (top log-probabilities need every logit). */
  private async hostLogits(seqs: readonly S[], logits: F32): Promise<Float32Array | null> {
    return seqs.some((s) => s.wantsLogits) ? await this.model.backend.read(logits) : null;
  }

  /** Appends a sampled token; a finished sequence is released, an unfinished one (re)joins the batch. */
  private accept(s: S, sampled: Sampled, row: Float32Array | null): Produced<S> {
    s.tokens.push(sampled.token);
    s.logprobs.push(sampled.logprob);
    this.counters.generatedTokens++;
    const finish = finishOf(s.tokens, s.params, this.decode);
    if (finish) this.release(s);
    else this.active.push(s);
    return { seq: s, sampled, row, finish };
  }
}
