// Offline batched generation: n samples per request through the continuous-batching engine (src/sample/batch-engine.ts,
// which the server's scheduler drives too): a finished sequence leaves the batch at once and a waiting one is admitted
// in its place; stop token ids, stop strings, max new tokens. Sampling, admission and output conventions are the
// engine's (see the top of batch-engine.ts); this driver validates the requests, queues every sample and collects
// the results.
import type { Qwen2Model } from '../model/qwen2.js';
import { BatchEngine, checkSamplingParams, newSeq, requestSeed, type EngineSeq } from './batch-engine.js';
import { KvDecoder, type KvDecoderOptions } from './kv-decoder.js';
import type { Generation, GenerationRequest } from './types.js';

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

interface Seq extends EngineSeq {
  result: Generation | null;
}

function checkRequest(r: GenerationRequest, i: number, hasDecode: boolean): void {
  const p = r.params;
  const where = `request ${i}`;
  if (!Number.isInteger(r.n) || r.n < 0) throw new Error(`${where}: n ${r.n} is not a non-negative integer`);
  if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < 0)
    throw new Error(`${where}: maxNewTokens ${p.maxNewTokens} is not a non-negative integer`);
  try {
    checkSamplingParams(p);
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
    const seed = requestSeed(r.params);
    // A fresh identity per request: only the samples of one request share a prefill.
    const request = {};
    for (let j = 0; j < r.n; j++) {
      const s: Seq = { ...newSeq(request, prompts[i]!, r.params, seed, j), result: null };
      if (r.params.maxNewTokens === 0) s.result = { tokenIds: [], text: '', finishReason: 'length', logprobs: [] };
      else pending.push(s);
      seqs[i]!.push(s);
    }
  });
  if (pending.length === 0) return finish();

  const decoder = opts.decoder ?? new KvDecoder(model, opts.decoderOptions);
  const engine = new BatchEngine<Seq>(model, decoder, { maxBatch: opts.maxBatch, decode });
  engine.pending = pending;
  try {
    while (!engine.idle) {
      const t0 = now();
      for (const { seq, finish } of await engine.admit())
        if (finish) seq.result = { tokenIds: seq.tokens, text: finish.text, finishReason: finish.reason, logprobs: seq.logprobs };
      const t1 = now();
      for (const { seq, finish } of await engine.step())
        if (finish) seq.result = { tokenIds: seq.tokens, text: finish.text, finishReason: finish.reason, logprobs: seq.logprobs };
      if (stats) {
        stats.prefillSeconds += t1 - t0;
        stats.decodeSeconds += now() - t1;
      }
    }
  } finally {
    engine.releaseAll();
    if (!opts.decoder) decoder.releaseBuffers();
    if (stats) {
      stats.prefillTokens += engine.counters.prefillTokens;
      stats.generatedTokens += engine.counters.generatedTokens;
      stats.decodeSteps += engine.counters.decodeSteps;
    }
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
