// Batched generation on the local KV-cache engine: n samples per request, continuous batching (a finished sequence
// leaves the batch at once and a waiting one is admitted in its place), stop token ids, stop strings, max new tokens.
//
// Per request, the prompt is prefilled once and its cache copied to the other samples of the same admission wave.
// Sample j of a request draws from Rng(seed, j), one draw per non-greedy token, so a seeded request reproduces exactly
// whatever else is in the batch (with the js backend bit for bit; with a backend whose GEMM rounding depends on the
// number of rows, a different batch can move logits in the last float32 bit, which changes a draw only when it lands
// within ~1e-7 of a boundary of the cumulative distribution).
//
// Output conventions (as vLLM's defaults):
// - `tokenIds` are the generated ids only, including a stop token id when one ended the sequence; for a stop string,
//   all tokens up to the one that completed it are kept.
// - `text` is `decode(tokenIds)` without a final stop token id and cut before the earliest stop string; '' when no
//   `decode` is given.
// - `logprobs[i]` is log softmax(raw logits)[tokenIds[i]] (temperature 1, before top-k / top-p; see sampler.ts).
// - finishReason 'stop' for a stop token id or stop string, else 'length' (maxNewTokens reached).
import { randomInt } from 'node:crypto';
import type { Qwen2Model } from '../model/qwen2.js';
import { KvDecoder, type KvCache, type KvDecoderOptions } from './kv-decoder.js';
import { Rng, checkSamplerSettings, isGreedy, sampleNext, type Sampled } from './sampler.js';
import type { Generation, GenerationRequest, SamplingParams } from './types.js';

export interface GenerateOptions {
  /** Token ids → text, for `text` and stop strings (stop strings are an error without it). */
  decode?: (ids: readonly number[]) => string;
  /** Text → token ids, for requests whose prompt is a string (an error without it). */
  encode?: (text: string) => number[];
  /** Most sequences decoded at once (default 64). */
  maxBatch?: number;
  /** A decoder to reuse (its workspace stays allocated between calls); default: a new one over `model`. */
  decoder?: KvDecoder;
  /** Options for a new decoder. */
  decoderOptions?: KvDecoderOptions;
  /** Filled with counts and timings when given. */
  stats?: GenerateStats;
}

export interface GenerateStats {
  /** Prompt tokens run through prefill (once per request per admission wave). */
  prefillTokens: number;
  /** Tokens generated. */
  generatedTokens: number;
  /** Batched decode steps. */
  decodeSteps: number;
  prefillSeconds: number;
  decodeSeconds: number;
}

interface Seq {
  req: number;
  sample: number;
  params: SamplingParams;
  rng: Rng | null;
  cache: KvCache | null;
  tokens: number[];
  logprobs: number[];
  result: Generation | null;
}

function checkRequest(r: GenerationRequest, i: number, hasDecode: boolean): void {
  const p = r.params;
  const where = `request ${i}`;
  if (!Number.isInteger(r.n) || r.n < 0) throw new Error(`${where}: n ${r.n} is not a non-negative integer`);
  if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < 0)
    throw new Error(`${where}: maxNewTokens ${p.maxNewTokens} is not a non-negative integer`);
  try {
    if (p.greedy === true) checkSamplerSettings({ ...p, temperature: 0 });
    else checkSamplerSettings(p);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  if (p.seed !== undefined && !Number.isFinite(p.seed)) throw new Error(`${where}: seed ${p.seed} is not a finite number`);
  if (p.stopStrings.some((s) => s.length === 0)) throw new Error(`${where}: empty stop string`);
  if (p.stopStrings.length > 0 && !hasDecode) throw new Error(`${where}: stop strings need a decode function (a tokenizer)`);
}

/**
 * Refuses a prompt + max new tokens that would run past the model's context (`max_position_embeddings`), as vLLM
 * refuses what exceeds max_model_len: positions beyond it are not the model that was trained.
 */
export function checkContext(model: Qwen2Model, promptTokens: number, maxNewTokens: number, where: string): void {
  const ctx = model.config.maxPositionEmbeddings;
  if (ctx === undefined || maxNewTokens === 0) return;
  // The last generated token is never fed back, so the cache holds prompt + maxNew − 1 positions.
  if (promptTokens + maxNewTokens - 1 > ctx)
    throw new Error(
      `${where}: prompt (${promptTokens} tokens) + max new tokens (${maxNewTokens}) exceeds the model's context of ` +
        `${ctx} positions (max_position_embeddings in config.json); lower the max new tokens to at most ${Math.max(0, ctx - promptTokens + 1)}`,
    );
}

/** Generates `n` samples for every request; one array per request, in request order. */
export async function generate(model: Qwen2Model, requests: readonly GenerationRequest[], opts: GenerateOptions = {}): Promise<Generation[][]> {
  const decode = opts.decode;
  const V = model.config.vocabSize;
  const maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 64));
  const stats = opts.stats;
  const now = (): number => performance.now() / 1000;

  // Validate everything before any compute.
  const prompts: number[][] = requests.map((r, i) => {
    checkRequest(r, i, decode !== undefined);
    let ids: number[];
    if (typeof r.prompt === 'string') {
      if (!opts.encode) throw new Error(`request ${i}: a text prompt needs an encode function (a tokenizer)`);
      ids = opts.encode(r.prompt);
    } else ids = r.prompt;
    if (ids.length === 0) throw new Error(`request ${i}: empty prompt`);
    for (const t of ids)
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`request ${i}: prompt token id ${t} not in [0, ${V})`);
    checkContext(model, ids.length, r.params.maxNewTokens, `request ${i}`);
    return ids;
  });

  const seqs: Seq[][] = requests.map(() => []);
  const pending: Seq[] = [];
  requests.forEach((r, i) => {
    const seed = r.params.seed ?? randomInt(0, 2 ** 48 - 1);
    const greedy = isGreedy(r.params);
    for (let j = 0; j < r.n; j++) {
      const s: Seq = {
        req: i,
        sample: j,
        params: r.params,
        rng: greedy ? null : new Rng(seed, j),
        cache: null,
        tokens: [],
        logprobs: [],
        result: null,
      };
      if (r.params.maxNewTokens === 0) s.result = { tokenIds: [], text: '', finishReason: 'length', logprobs: [] };
      else pending.push(s);
      seqs[i]!.push(s);
    }
  });
  if (pending.length === 0) return finish();

  const decoder = opts.decoder ?? new KvDecoder(model, opts.decoderOptions);
  let active: Seq[] = [];

  /** Appends a sampled token; true when the sequence is finished (its result is then set). */
  const accept = (s: Seq, { token, logprob }: Sampled): boolean => {
    s.tokens.push(token);
    s.logprobs.push(logprob);
    const p = s.params;
    const done = (reason: 'stop' | 'length', text: string): boolean => {
      s.result = { tokenIds: s.tokens, text, finishReason: reason, logprobs: s.logprobs };
      return true;
    };
    if (p.stopTokenIds.includes(token)) return done('stop', decode ? decode(s.tokens.slice(0, -1)) : '');
    let text: string | null = null;
    if (p.stopStrings.length > 0 && decode) {
      text = decode(s.tokens);
      let cut = -1;
      for (const ss of p.stopStrings) {
        const at = text.indexOf(ss);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) return done('stop', text.slice(0, cut));
    }
    if (s.tokens.length >= p.maxNewTokens) return done('length', text ?? (decode ? decode(s.tokens) : ''));
    return false;
  };

  const release = (s: Seq): void => {
    if (s.cache) decoder.freeCache(s.cache);
    s.cache = null;
  };

  try {
    while (pending.length > 0 || active.length > 0) {
      // Admit waiting sequences into free slots: one prefill per request, its cache copied to the other samples.
      if (pending.length > 0 && active.length < maxBatch) {
        const t0 = now();
        const wave = pending.splice(0, maxBatch - active.length);
        const groups = new Map<number, Seq[]>();
        for (const s of wave) {
          const g = groups.get(s.req);
          if (g) g.push(s);
          else groups.set(s.req, [s]);
        }
        const heads: Seq[] = [];
        for (const g of groups.values()) {
          for (const s of g) s.cache = decoder.newCache(prompts[s.req]!.length + s.params.maxNewTokens - 1);
          heads.push(g[0]!);
        }
        const logits = decoder.prefill(
          heads.map((s) => prompts[s.req]!),
          heads.map((s) => s.cache!),
        );
        if (stats) {
          for (const s of heads) stats.prefillTokens += prompts[s.req]!.length;
        }
        // Each sample draws from its prompt's row.
        const order = [...groups.values()].flat();
        const rows = [...groups.values()].flatMap((g, gi) => g.map(() => gi));
        const picks = await sampleNext(model.backend, logits, V, order, rows);
        let j = 0;
        for (const g of groups.values()) {
          // Copy the prompt's cache to every sample before any of them can finish (and free the head's cache).
          for (const s of g) if (s !== g[0]) decoder.copyCache(g[0]!.cache!, s.cache!);
          for (const s of g) {
            if (stats) stats.generatedTokens++;
            if (accept(s, picks[j++]!)) release(s);
            else active.push(s);
          }
        }
        if (stats) stats.prefillSeconds += now() - t0;
      }
      if (active.length === 0) continue;
      // One decode step for every active sequence.
      const t0 = now();
      const logits = decoder.decode(
        active.map((s) => s.cache!),
        active.map((s) => s.tokens[s.tokens.length - 1]!),
      );
      const picks = await sampleNext(model.backend, logits, V, active);
      const still: Seq[] = [];
      for (let i = 0; i < active.length; i++) {
        const s = active[i]!;
        if (accept(s, picks[i]!)) release(s);
        else still.push(s);
      }
      if (stats) {
        stats.decodeSteps++;
        stats.generatedTokens += active.length;
        stats.decodeSeconds += now() - t0;
      }
      active = still;
    }
  } finally {
    for (const s of active) release(s);
    for (const s of pending) release(s);
    if (!opts.decoder) decoder.releaseBuffers();
  }
  return finish();

  function finish(): Generation[][] {
    return seqs.map((arr) => arr.map((s) => s.result!));
  }
}

/** A zeroed stats object for `GenerateOptions.stats`. */
export function newGenerateStats(): GenerateStats {
  return { prefillTokens: 0, generatedTokens: 0, decodeSteps: 0, prefillSeconds: 0, decodeSeconds: 0 };
}
