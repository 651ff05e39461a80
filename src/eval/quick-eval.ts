// Pass@1 of a policy on task problems, for building the starting policy and the RL prompt file.
// Two generation paths: the shared KV-cache engine (src/sample/generate.ts, the default) and a minimal cache-free
// sampler here (a full forward over the prefix for every new token: fine for tiny models, and an independent check of
// the engine). Answers are scored by the evaluator (src/eval/evaluate.ts) with the in-thread rule verifier.

import type { Qwen2Model } from '../model/qwen2.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { scoreGenerations } from './evaluate.js';
import { generate } from '../sample/generate.js';
import type { Generation } from '../sample/types.js';
import { verifyResponse } from '../verify/index.js';
import { Mulberry32 as Rng } from '../util/rng.js';

export interface QuickSampleOptions {
  /** 0 = greedy argmax. */
  temperature: number;
  maxNewTokens: number;
  /** Stop after emitting one of these ids (kept out of the returned ids). */
  stopIds: readonly number[];
  seed?: number;
}

/** Final-position logits of each row of a right-padded batch, from the returned hidden states and the LM head W. */
async function lastLogits(model: Qwen2Model, seqs: readonly number[][], W: Float32Array): Promise<Float32Array[]> {
  const B = seqs.length;
  let T = 1;
  for (const s of seqs) T = Math.max(T, s.length);
  const ids = new Int32Array(B * T);
  const lengths = new Int32Array(B);
  seqs.forEach((s, b) => {
    ids.set(s, b * T);
    lengths[b] = s.length;
  });
  const res = await model.forwardAsync(ids, lengths, {
    labels: new Int32Array(B * T).fill(-1),
    entropy: false,
    hidden: true,
    saveForBackward: false,
  });
  const Hd = res.hidden!;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const out: Float32Array[] = [];
  for (let b = 0; b < B; b++) {
    const h = Hd.subarray((b * T + lengths[b]! - 1) * H, (b * T + lengths[b]!) * H);
    const logits = new Float32Array(V);
    for (let v = 0; v < V; v++) {
      let s = 0;
      const o = v * H;
      for (let k = 0; k < H; k++) s += h[k]! * W[o + k]!;
      logits[v] = s;
    }
    out.push(logits);
  }
  return out;
}

function pick(logits: Float32Array, temperature: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (temperature <= 0) return best;
  const m = logits[best]!;
  let z = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp((logits[i]! - m) / temperature);
    z += p[i]!;
  }
  let u = rng.next() * z;
  for (let i = 0; i < p.length; i++) {
    u -= p[i]!;
    if (u < 0) return i;
  }
  return best;
}

/**
 * Cache-free batched sampling: each step runs the model over every unfinished prefix. Returns the generated ids of
 * each prompt (stop id excluded).
 */
export async function naiveGenerate(model: Qwen2Model, prompts: readonly number[][], opts: QuickSampleOptions): Promise<number[][]> {
  const rng = new Rng(opts.seed ?? 0);
  const out: number[][] = prompts.map(() => []);
  let live = prompts.map((_, i) => i);
  const stop = new Set(opts.stopIds);
  const W = await model.backend.read(model.lmWeight()); // the LM head, read once
  for (let t = 0; t < opts.maxNewTokens && live.length > 0; t++) {
    const logits = await lastLogits(
      model,
      live.map((i) => [...prompts[i]!, ...out[i]!]),
      W,
    );
    const next: number[] = [];
    live.forEach((i, j) => {
      const id = pick(logits[j]!, opts.temperature, rng);
      if (stop.has(id)) return;
      out[i]!.push(id);
      next.push(i);
    });
    live = next;
  }
  return out;
}

export interface EvalProblem {
  question: string;
  answer: string;
}

export interface PassAtOneOptions {
  /** Samples per problem (default 1). */
  samples?: number;
  temperature?: number;
  maxNewTokens?: number;
  seed?: number;
  /** 'kv': the KV-cache engine (default); 'naive': the cache-free sampler in this file. */
  engine?: 'kv' | 'naive';
  systemPrompt?: string;
}

export interface PassAtOneResult {
  /** Mean correctness over all samples of all problems. */
  passAt1: number;
  /** Per problem: fraction of its samples that are correct. */
  perProblem: number[];
  /** Per problem: the generated responses. */
  responses: string[][];
}

/** Chat prompt ids for a question (user turn + generation prompt). */
export function promptIds(tok: Tokenizer, question: string, systemPrompt?: string): number[] {
  const msgs = systemPrompt !== undefined ? [{ role: 'system', content: systemPrompt }] : [];
  return tok.encodeChat([...msgs, { role: 'user', content: question }], { addGenerationPrompt: true });
}

/** Samples responses for each problem and scores them with the rule verifier. */
export async function passAtOne(
  model: Qwen2Model,
  tok: Tokenizer,
  problems: readonly EvalProblem[],
  opts: PassAtOneOptions = {},
): Promise<PassAtOneResult> {
  const k = opts.samples ?? 1;
  const temperature = opts.temperature ?? 0;
  const maxNewTokens = opts.maxNewTokens ?? 96;
  const stopIds = [tok.imEndTokenId, tok.eosTokenId, tok.tokenToId('<|endoftext|>')].filter(
    (x): x is number => typeof x === 'number',
  );
  const prompts = problems.map((p) => promptIds(tok, p.question, opts.systemPrompt));
  let gens: Generation[][];
  if ((opts.engine ?? 'kv') === 'naive') {
    gens = problems.map(() => []);
    for (let s = 0; s < k; s++) {
      const ids = await naiveGenerate(model, prompts, { temperature, maxNewTokens, stopIds, seed: (opts.seed ?? 0) * 1000 + s });
      ids.forEach((g, i) => gens[i]!.push({ tokenIds: g, text: tok.decode(g, { skipSpecialTokens: true }), finishReason: 'stop', logprobs: [] }));
    }
  } else {
    // One request per sample (n = 1 each, own seed): the same sampling distribution as n = k.
    const reqs = [];
    for (let i = 0; i < prompts.length; i++) {
      for (let s = 0; s < k; s++) {
        reqs.push({
          prompt: prompts[i]!,
          n: 1,
          params: {
            maxNewTokens,
            temperature,
            topP: 1,
            topK: 0,
            stopTokenIds: stopIds,
            stopStrings: [],
            seed: ((opts.seed ?? 0) * 100003 + i * 131 + s) >>> 0,
            greedy: temperature <= 0,
          },
        });
      }
    }
    const flat = await generate(model, reqs, { decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }) });
    gens = prompts.map((_, i) => flat.slice(i * k, (i + 1) * k).map((g) => g[0]!));
  }
  const texts = gens.map((gs) => gs.map((g) => g.text));
  if (problems.length === 0) return { passAt1: 0, perProblem: [], responses: texts };
  const { records, metrics } = await scoreGenerations(
    problems.map((p, i) => ({ problem: { id: String(i), gold: p.answer }, samples: gens[i]! })),
    async (items) => items.map((it) => verifyResponse(it.generation.text, it.problem.gold)),
    { ks: [], majKs: [] },
  );
  const perProblem = records.map((r) => r.samples.filter((x) => x.correct).length / r.samples.length);
  const passAt1 = metrics.mean_accuracy;
  return { passAt1, perProblem, responses: texts };
}
