// KV-cache generation and sampling: greedy decoding against cache-free argmax decoding with the model's own forward
// pass and against PyTorch fixtures (scripts/torch_greedy_fixture.py), sampler distributions by chi-square tests,
// seeded reproducibility, stop conditions, log-probs, the local rollout backend and the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { createJsBackend } from '../src/engine/js-backend.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { parseConfig } from '../src/model/config.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { KvDecoder } from '../src/sample/kv-decoder.js';
import { TokenSampler, argmax, type SamplerSettings } from '../src/sample/sampler.js';
import { Xoshiro128 as Rng } from '../src/util/rng.js';
import { generate } from '../src/sample/generate.js';
import { LocalRolloutBackend } from '../src/sample/local-backend.js';
import type { GenerationRequest, SamplingParams } from '../src/sample/types.js';
import { registerGenerate, readPromptsJsonl } from '../src/cli/generate.js';
import { parseRandomModelSpec } from '../src/cli/bench-decode.js';
import { SAMPLE_FIXTURES, readQwen2Fixture, type FixtureConfig } from './helpers/qwen2-fixture.js';

const backend = createJsBackend();

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A random model with weights large enough for well-separated logits (and random biases and norms). */
function randomModel(cfg: Qwen2Config, seed: number): Qwen2Model {
  const m = Qwen2Model.random(cfg, backend, seed, 1);
  const rng = new Rng(seed, 99);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng.nextDouble())) * Math.cos(2 * Math.PI * rng.nextDouble());
  for (const { name, shape } of m.shapes) {
    const p = m.params.get(name)!;
    if (name.endsWith('norm.weight')) for (let i = 0; i < p.length; i++) p[i] = 1 + 0.1 * normal();
    else if (name.endsWith('.bias')) for (let i = 0; i < p.length; i++) p[i] = 0.2 * normal();
    else if (name === 'model.embed_tokens.weight') for (let i = 0; i < p.length; i++) p[i] = 0.5 * normal();
    else {
      const s = 1.5 / Math.sqrt(shape[1]!);
      for (let i = 0; i < p.length; i++) p[i] = s * normal();
    }
  }
  return m;
}

function cfgOf(over: Partial<Qwen2Config>): Qwen2Config {
  return {
    vocabSize: 61,
    hiddenSize: 32,
    intermediateSize: 40,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: true,
    head: 'lm',
    ...over,
  };
}

/** Next-token logits after `ids` from the model's cache-free forward pass (float64 LM head on its hidden states). */
function fullLogits(model: Qwen2Model, ids: readonly number[]): Float64Array {
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const res = model.forward(ids, [ids.length], { hidden: true, entropy: false, saveForBackward: false });
  const h = res.hidden!.subarray((ids.length - 1) * H, ids.length * H);
  const W = model.config.tieWordEmbeddings ? model.params.get('model.embed_tokens.weight')! : model.params.get('lm_head.weight')!;
  const z = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let i = 0; i < H; i++) s += h[i]! * W[v * H + i]!;
    z[v] = s;
  }
  return z;
}

function greedyNoCache(model: Qwen2Model, prompt: readonly number[], n: number): number[] {
  const ids = [...prompt];
  const out: number[] = [];
  for (let t = 0; t < n; t++) {
    const tok = argmax(fullLogits(model, ids));
    out.push(tok);
    ids.push(tok);
  }
  return out;
}

function params(over: Partial<SamplingParams>): SamplingParams {
  return { maxNewTokens: 8, temperature: 1, topP: 1, topK: 0, stopTokenIds: [], stopStrings: [], ...over };
}

const greedy = (over: Partial<SamplingParams> = {}): SamplingParams => params({ temperature: 0, greedy: true, ...over });

/** A toy detokenizer: id i → one letter. */
const letters = (ids: readonly number[]): string => ids.map((i) => String.fromCharCode(97 + (i % 26))).join('');

function prompts(V: number, lens: number[], seed: number): number[][] {
  const rng = new Rng(seed, 7);
  return lens.map((L) => Array.from({ length: L }, () => rng.nextU32() % V));
}

// ---------------------------------------------------------------------------------------------------------------
// (a) greedy with the cache == argmax decoding with the full forward pass

const models: Array<[string, Qwen2Config]> = [
  ['GQA 4:2, biases, tied', cfgOf({})],
  ['GQA 4:1, no biases, untied, 3 layers', cfgOf({ numKeyValueHeads: 1, numHiddenLayers: 3, attentionBias: false, tieWordEmbeddings: false })],
  ['MHA 2:2, head dim 12, theta 1e6', cfgOf({ numAttentionHeads: 2, numKeyValueHeads: 2, headDim: 12, ropeTheta: 1e6 })],
];

for (const [label, cfg] of models) {
  test(`greedy KV-cache decoding equals cache-free argmax decoding (${label})`, async () => {
    const model = randomModel(cfg, 5);
    const ps = prompts(cfg.vocabSize, [1, 7, 13, 4, 2], 3);
    const N = 10;
    const expected = ps.map((p) => greedyNoCache(model, p, N));
    // Batched with chunked prefill (5 rows per forward) and continuous batching (3 sequences at a time).
    const decoder = new KvDecoder(model, { maxPrefillRows: 5, attnChunk: 3 });
    for (const maxBatch of [64, 3, 1]) {
      const got = await generate(model, ps.map((p) => ({ prompt: p, n: 1, params: greedy({ maxNewTokens: N }) })), { decoder, maxBatch });
      got.forEach((g, i) => {
        assert.deepEqual(g[0]!.tokenIds, expected[i], `maxBatch ${maxBatch}, prompt ${i}`);
        assert.equal(g[0]!.finishReason, 'length');
      });
    }
  });
}

test('decoder logits match the full forward pass at every step (prefill chunks, decode batch)', async () => {
  const model = randomModel(cfgOf({ numKeyValueHeads: 1 }), 8);
  const V = model.config.vocabSize;
  const ps = prompts(V, [9, 3, 6], 4);
  const dec = new KvDecoder(model, { maxPrefillRows: 4, attnChunk: 2 });
  const caches = ps.map((p) => dec.newCache(p.length + 5));
  let logits = await model.backend.read(dec.prefill(ps, caches));
  const seqs = ps.map((p) => [...p]);
  let worst = 0;
  for (let step = 0; step < 5; step++) {
    const toks: number[] = [];
    seqs.forEach((s, i) => {
      const ref = fullLogits(model, s);
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(logits[i * V + v]! - ref[v]!));
      const t = (step * 7 + i * 13) % V; // teacher-forced arbitrary tokens
      toks.push(t);
      s.push(t);
    });
    if (step < 4) logits = await model.backend.read(dec.decode(caches, toks));
  }
  assert.ok(worst < 2e-4, `max |logit difference| ${worst}`);
  // Cache copies continue identically.
  const c2 = dec.newCache(caches[0]!.maxLen);
  dec.copyCache(caches[0]!, c2);
  assert.equal(c2.length, caches[0]!.length);
  const a = Array.from(await model.backend.read(dec.decode([caches[0]!], [1])));
  const b = Array.from(await model.backend.read(dec.decode([c2], [1])));
  assert.deepEqual(a, b);
  assert.throws(() => dec.decode([caches[0]!], [1, 2]), /caches but 2 tokens/);
});

// ---------------------------------------------------------------------------------------------------------------
// (b) PyTorch fixtures

interface GreedyFixture {
  config: FixtureConfig;
  prompts: number[][];
  new_tokens: number;
  greedy: number[][];
  logprobs: number[][];
  tensors: Array<{ name: string; shape: number[] }>;
}

for (const name of ['greedy_qwen2_tied', 'greedy_untied_gqa']) {
  test(`greedy continuations and log-probs match PyTorch (${name})`, async () => {
    const { fx, cfg, tensors } = readQwen2Fixture<GreedyFixture>(name, SAMPLE_FIXTURES);
    const model = Qwen2Model.fromTensors(cfg, backend, tensors);
    const got = await generate(
      model,
      fx.prompts.map((p) => ({ prompt: p, n: 1, params: greedy({ maxNewTokens: fx.new_tokens }) })),
    );
    got.forEach((g, i) => {
      assert.deepEqual(g[0]!.tokenIds, fx.greedy[i], `prompt ${i}`);
      g[0]!.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - fx.logprobs[i]![t]!) < 1e-4, `prompt ${i} token ${t}: ${lp} vs ${fx.logprobs[i]![t]}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (c) sampler distributions: chi-square goodness of fit

/** ln Γ(x) (Lanczos, g = 7). */
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Upper regularized incomplete gamma Q(a, x): the chi-square survival function is Q(df/2, χ²/2). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (term < sum * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - lnGamma(a));
  }
  // Continued fraction (modified Lentz).
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGamma(a)) * h;
}

test('chi-square helper: known quantiles', () => {
  // χ²(1) at 3.841 → p 0.05; χ²(5) at 11.07 → p 0.05; χ²(7) at 40.52 → p ≈ 1e-6 (approx).
  assert.ok(Math.abs(gammaQ(0.5, 3.841459 / 2) - 0.05) < 1e-5);
  assert.ok(Math.abs(gammaQ(2.5, 11.0705 / 2) - 0.05) < 1e-5);
  assert.ok(gammaQ(3.5, 40.52 / 2) < 1.5e-6 && gammaQ(3.5, 40.52 / 2) > 0.5e-6);
});

/** Expected distribution by the definition, with a full sort (the reference for the sampler's fast paths). */
function referenceDistribution(logits: readonly number[], s: SamplerSettings): Float64Array {
  const V = logits.length;
  const T = s.temperature;
  const m = Math.max(...logits);
  const w = logits.map((z) => Math.exp((z - m) / T));
  const order = [...w.keys()].sort((a, b) => w[b]! - w[a]! || a - b);
  let keep = order;
  if (s.topK > 0 && s.topK < V) keep = keep.slice(0, s.topK);
  if (s.topP < 1) {
    const tot = keep.reduce((a, i) => a + w[i]!, 0);
    let cum = 0;
    let j = 0;
    while (j < keep.length) {
      cum += w[keep[j]!]! / tot;
      j++;
      if (cum >= s.topP - 1e-12) break;
    }
    keep = keep.slice(0, j);
  }
  const out = new Float64Array(V);
  const tot = keep.reduce((a, i) => a + w[i]!, 0);
  for (const i of keep) out[i] = w[i]! / tot;
  return out;
}

const LOGITS = [1.2, -0.3, 2.0, 0.4, 0.4, -1.5, 1.7, 0.0];

const settingsCases: Array<[string, SamplerSettings]> = [
  ['temperature 1', { temperature: 1, topK: 0, topP: 1 }],
  ['temperature 0.6', { temperature: 0.6, topK: 0, topP: 1 }],
  ['temperature 2.5', { temperature: 2.5, topK: 0, topP: 1 }],
  ['top-k 3, temperature 1.3', { temperature: 1.3, topK: 3, topP: 1 }],
  ['top-p 0.8, temperature 0.9', { temperature: 0.9, topK: 0, topP: 0.8 }],
  ['top-k 5 + top-p 0.7', { temperature: 1, topK: 5, topP: 0.7 }],
];

for (const [label, s] of settingsCases) {
  test(`sampler distribution: ${label} (chi-square, p > 1e-6, fixed seed)`, () => {
    const expected = referenceDistribution(LOGITS, s);
    const sampler = new TokenSampler(LOGITS.length);
    const rng = new Rng(20240601, 0);
    const z = Float32Array.from(LOGITS);
    const draws = 60000;
    const counts = new Float64Array(LOGITS.length);
    for (let i = 0; i < draws; i++) counts[sampler.sample(z, s, rng).token]!++;
    let chi = 0;
    let df = -1;
    for (let v = 0; v < LOGITS.length; v++) {
      if (expected[v] === 0) {
        assert.equal(counts[v], 0, `token ${v} is outside the kept set but was drawn`);
        continue;
      }
      const e = expected[v]! * draws;
      chi += (counts[v]! - e) ** 2 / e;
      df++;
    }
    const p = df > 0 ? gammaQ(df / 2, chi / 2) : 1;
    assert.ok(p > 1e-6, `χ² = ${chi.toFixed(2)} with ${df} df, p = ${p}`);
  });
}

test('sampler filters: fast paths equal the full-sort definition on a large vocabulary', () => {
  const V = 3000;
  const rng = new Rng(3, 3);
  const sampler = new TokenSampler(V);
  for (let trial = 0; trial < 12; trial++) {
    const logits = Array.from({ length: V }, () => (rng.nextDouble() - 0.5) * (2 + trial));
    // Some exact ties.
    logits[10] = logits[20]!;
    logits[30] = logits[20]!;
    const s: SamplerSettings = {
      temperature: 0.5 + (trial % 3) * 0.5,
      topK: [0, 1, 7, 50][trial % 4]!,
      topP: [1, 0.9, 0.5, 0.99, 0.3, 0.05][trial % 6]!,
    };
    const ref = referenceDistribution(logits, s);
    const d = sampler.filtered(Float32Array.from(logits), s);
    const got = new Float64Array(V);
    d.ids.forEach((id, j) => (got[id] = d.probs[j]!));
    const refIds = [...ref.keys()].filter((i) => ref[i]! > 0);
    // Float32 logits vs float64 reference: compare on the float32-rounded logits.
    const ref32 = referenceDistribution(Array.from(Float32Array.from(logits)), s);
    const ids32 = [...ref32.keys()].filter((i) => ref32[i]! > 0);
    assert.deepEqual([...d.ids].sort((a, b) => a - b), ids32, `trial ${trial} kept set`);
    for (const i of ids32) assert.ok(Math.abs(got[i]! - ref32[i]!) < 1e-12, `trial ${trial} token ${i}`);
    assert.ok(refIds.length > 0);
  }
});

test('sampler: greedy is argmax (lowest id on ties), minimal nucleus, top-k ties by id, logprob is raw log-softmax', () => {
  const sampler = new TokenSampler();
  const z = Float32Array.from([0.5, 3, 1, 3, -2]);
  const g = sampler.sample(z, { temperature: 0, topK: 0, topP: 1 }, null);
  assert.equal(g.token, 1);
  const lse = Math.log([...z].reduce((a, x) => a + Math.exp(x), 0));
  assert.ok(Math.abs(g.logprob - (3 - lse)) < 1e-12);
  assert.equal(sampler.sample(z, { temperature: 0.7, topK: 0, topP: 1, greedy: true }, null).token, 1);
  // top-k 1 with a tie keeps the lower id; so does top-p tiny.
  const rng = new Rng(1);
  for (let i = 0; i < 20; i++) {
    assert.equal(sampler.sample(z, { temperature: 1, topK: 1, topP: 1 }, rng).token, 1);
    assert.equal(sampler.sample(z, { temperature: 1, topK: 0, topP: 1e-9 }, rng).token, 1);
  }
  // probs 0.5, 0.3, 0.2 → p = 0.75 keeps two; p = 0.5 keeps one; p = 0.81 keeps three.
  const q = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  assert.equal(sampler.filtered(q, { temperature: 1, topK: 0, topP: 0.75 }).ids.length, 2);
  assert.equal(sampler.filtered(q, { temperature: 1, topK: 0, topP: 0.5 }).ids.length, 1);
  assert.equal(sampler.filtered(q, { temperature: 1, topK: 0, topP: 0.81 }).ids.length, 3);
  // The reported logprob ignores temperature and filters.
  const s = sampler.sample(q, { temperature: 3, topK: 2, topP: 0.6 }, rng);
  assert.ok(Math.abs(s.logprob - q[s.token]!) < 1e-6);
  assert.throws(() => sampler.filtered(q, { temperature: -1, topK: 0, topP: 1 }), /temperature/);
  assert.throws(() => sampler.filtered(q, { temperature: 1, topK: 0, topP: 0 }), /top_p/);
});

test('Rng: deterministic per (seed, stream), streams differ, doubles in [0, 1)', () => {
  const a = new Rng(42, 0);
  const b = new Rng(42, 0);
  const c = new Rng(42, 1);
  const d = new Rng(43, 0);
  const xa = Array.from({ length: 8 }, () => a.nextDouble());
  assert.deepEqual(xa, Array.from({ length: 8 }, () => b.nextDouble()));
  assert.notDeepEqual(xa, Array.from({ length: 8 }, () => c.nextDouble()));
  assert.notDeepEqual(xa, Array.from({ length: 8 }, () => d.nextDouble()));
  const big = new Rng(2 ** 40 + 5, 0).nextU32();
  assert.notEqual(big, new Rng(5, 0).nextU32());
  const r = new Rng(7);
  let mean = 0;
  for (let i = 0; i < 10000; i++) {
    const x = r.nextDouble();
    assert.ok(x >= 0 && x < 1);
    mean += x / 10000;
  }
  assert.ok(Math.abs(mean - 0.5) < 0.02);
});

// ---------------------------------------------------------------------------------------------------------------
// (d) seeded reproducibility independent of batch composition

test('a seeded request reproduces exactly whatever else is in the batch', async () => {
  const model = randomModel(cfgOf({}), 11);
  const V = model.config.vocabSize;
  const [p0, p1, p2] = prompts(V, [5, 9, 2], 12);
  const target: GenerationRequest = { prompt: p0!, n: 3, params: params({ maxNewTokens: 12, temperature: 0.9, topP: 0.95, topK: 40, seed: 1234 }) };
  const alone = (await generate(model, [target]))[0]!;
  const others: GenerationRequest[] = [
    { prompt: p1!, n: 2, params: params({ maxNewTokens: 4, seed: 9 }) },
    { prompt: p2!, n: 1, params: greedy({ maxNewTokens: 15 }) },
  ];
  const mixed = (await generate(model, [others[0]!, target, others[1]!], { maxBatch: 4 }))[1]!;
  const mixed2 = (await generate(model, [others[1]!, others[0]!, target], { maxBatch: 2 }))[2]!;
  assert.deepEqual(mixed, alone);
  assert.deepEqual(mixed2, alone);
  // The n samples use different streams.
  assert.ok(new Set(alone.map((g) => g.tokenIds.join(','))).size > 1, 'samples of one request should differ');
  // A different seed gives a different sample.
  const other = (await generate(model, [{ ...target, params: { ...target.params, seed: 1235 } }]))[0]!;
  assert.notDeepEqual(other, alone);
});

// ---------------------------------------------------------------------------------------------------------------
// (e) stop ids, stop strings, max tokens, finish reasons

test('stop token ids, stop strings, max new tokens and finish reasons', async () => {
  const model = randomModel(cfgOf({}), 21);
  const V = model.config.vocabSize;
  const [p] = prompts(V, [6], 22);
  const N = 12;
  const ref = (await generate(model, [{ prompt: p!, n: 1, params: greedy({ maxNewTokens: N }) }], { decode: letters }))[0]![0]!;
  assert.equal(ref.tokenIds.length, N);
  assert.equal(ref.finishReason, 'length');
  assert.equal(ref.text, letters(ref.tokenIds));
  // Stop id: the first occurrence of the token at index 4 ends generation there; the id is kept, not in the text.
  const sid = ref.tokenIds[4]!;
  const first = ref.tokenIds.indexOf(sid);
  const s1 = (await generate(model, [{ prompt: p!, n: 1, params: greedy({ maxNewTokens: N, stopTokenIds: [V - 1 === sid ? 0 : V - 1, sid] }) }], { decode: letters }))[0]![0]!;
  assert.deepEqual(s1.tokenIds, ref.tokenIds.slice(0, first + 1));
  assert.equal(s1.finishReason, 'stop');
  assert.equal(s1.text, letters(ref.tokenIds.slice(0, first)));
  assert.equal(s1.logprobs.length, s1.tokenIds.length);
  // Stop string spanning tokens 6-7: tokens up to the one that completes it are kept, the text is cut before it.
  const full = letters(ref.tokenIds);
  const ss = full.slice(6, 8);
  const at = full.indexOf(ss);
  const s2 = (await generate(model, [{ prompt: p!, n: 1, params: greedy({ maxNewTokens: N, stopStrings: ['zzzzzz', ss] }) }], { decode: letters }))[0]![0]!;
  assert.equal(s2.finishReason, 'stop');
  assert.equal(s2.text, full.slice(0, at));
  assert.deepEqual(s2.tokenIds, ref.tokenIds.slice(0, at + 2));
  // Max new tokens.
  const s3 = (await generate(model, [{ prompt: p!, n: 2, params: greedy({ maxNewTokens: 3 }) }]))[0]!;
  for (const g of s3) {
    assert.deepEqual(g.tokenIds, ref.tokenIds.slice(0, 3));
    assert.equal(g.finishReason, 'length');
    assert.equal(g.text, '');
  }
  // The last allowed token being a stop id is a stop.
  const s4 = (await generate(model, [{ prompt: p!, n: 1, params: greedy({ maxNewTokens: 1, stopTokenIds: [ref.tokenIds[0]!] }) }]))[0]![0]!;
  assert.equal(s4.finishReason, 'stop');
  // Zero tokens, zero samples.
  const s5 = await generate(model, [
    { prompt: p!, n: 1, params: greedy({ maxNewTokens: 0 }) },
    { prompt: p!, n: 0, params: greedy({}) },
  ]);
  assert.deepEqual(s5, [[{ tokenIds: [], text: '', finishReason: 'length', logprobs: [] }], []]);
  // Errors.
  await assert.rejects(async () => generate(model, [{ prompt: p!, n: 1, params: greedy({ stopStrings: ['x'] }) }]), /stop strings need a decode/);
  await assert.rejects(async () => generate(model, [{ prompt: 'text', n: 1, params: greedy({}) }]), /encode/);
  await assert.rejects(async () => generate(model, [{ prompt: [V], n: 1, params: greedy({}) }]), /not in \[0, 61\)/);
  await assert.rejects(async () => generate(model, [{ prompt: [], n: 1, params: greedy({}) }]), /empty prompt/);
  await assert.rejects(async () => generate(model, [{ prompt: p!, n: 1, params: params({ topP: 1.5 }) }]), /request 0: top_p/);
});

// ---------------------------------------------------------------------------------------------------------------
// (f) log-probs == log-softmax of the full forward pass

test('logprobs of sampled tokens equal the full forward log-softmax (temperature and filters ignored)', async () => {
  const model = randomModel(cfgOf({ numKeyValueHeads: 1, attentionBias: true, tieWordEmbeddings: false }), 31);
  const V = model.config.vocabSize;
  const ps = prompts(V, [3, 8], 32);
  const res = await generate(
    model,
    ps.map((p, i) => ({ prompt: p, n: 2, params: params({ maxNewTokens: 9, temperature: 1.7, topK: 20, topP: 0.9, seed: i }) })),
  );
  let worst = 0;
  res.forEach((gens, i) => {
    for (const g of gens) {
      const ids = [...ps[i]!, ...g.tokenIds];
      const f = model.forward(ids, [ids.length], { entropy: false, saveForBackward: false });
      g.tokenIds.forEach((_, t) => {
        const ref = f.logp![ps[i]!.length - 1 + t]!;
        worst = Math.max(worst, Math.abs(g.logprobs[t]! - ref));
      });
    }
  });
  assert.ok(worst < 1e-4, `max |logprob difference| ${worst}`);
});

// ---------------------------------------------------------------------------------------------------------------
// Local rollout backend and CLI

function saveAs(model: Qwen2Model, dir: string): void {
  const c = model.config;
  const mc = parseConfig({
    model_type: 'qwen2',
    architectures: ['Qwen2ForCausalLM'],
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tieWordEmbeddings,
    eos_token_id: 60,
  });
  saveCheckpoint(dir, mc, model.toTensors(), { dtype: 'f32' });
}

test('LocalRolloutBackend: generates from token ids and syncWeights reloads the weights', async () => {
  const a = randomModel(cfgOf({}), 41);
  const b = randomModel(cfgOf({}), 42);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-sample-'));
  try {
    saveAs(b, path.join(dir, 'b'));
    const lb = new LocalRolloutBackend(a, null, { maxBatch: 2 });
    const [p] = prompts(61, [5], 43);
    const req: GenerationRequest[] = [{ prompt: p!, n: 2, params: greedy({ maxNewTokens: 6 }) }];
    const before = await lb.generate(req);
    assert.deepEqual(before[0]![0]!.tokenIds, greedyNoCache(a, p!, 6));
    await lb.syncWeights(path.join(dir, 'b'));
    const after = await lb.generate(req);
    assert.deepEqual(after[0]![1]!.tokenIds, greedyNoCache(b, p!, 6));
    assert.ok(lb.lastStats !== null && lb.lastStats.generatedTokens === 12);
    await assert.rejects(lb.generate([{ prompt: 'hi', n: 1, params: greedy({}) }]), /encode/);
    await lb.close();
    // A checkpoint of another shape is refused before anything is overwritten.
    saveAs(randomModel(cfgOf({ hiddenSize: 16 }), 1), path.join(dir, 'c'));
    await assert.rejects(lb.syncWeights(path.join(dir, 'c')), /hiddenSize/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerGenerate(program);
  const chunks: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array): boolean => {
    chunks.push(String(c));
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = orig;
  }
  return chunks.join('');
}

test('oreal generate --prompt-ids / --input --json without a tokenizer', async () => {
  const m = randomModel(cfgOf({}), 51);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-gen-cli-'));
  try {
    const md = path.join(dir, 'model');
    saveAs(m, md);
    const out = await runCli(['generate', '--model', md, '--prompt-ids', '1,2,3', '--greedy', '--max-new-tokens', '5', '--n', '2', '--json', '--backend', 'js']);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { token_ids: number[]; text: string; finish_reason: string; logprobs: number[] });
    assert.equal(lines.length, 2);
    const exp = greedyNoCache(m, [1, 2, 3], 5);
    const stopAt = exp.indexOf(60); // config eos id is a default stop id
    const want = stopAt >= 0 ? exp.slice(0, stopAt + 1) : exp;
    for (const l of lines) {
      assert.deepEqual(Object.keys(l), ['token_ids', 'text', 'finish_reason', 'logprobs']);
      assert.deepEqual(l.token_ids, want);
      assert.equal(l.text, '');
      assert.equal(l.finish_reason, stopAt >= 0 ? 'stop' : 'length');
      assert.equal(l.logprobs.length, want.length);
    }
    // --input: prompt_ids lines; errors name file:line:field.
    const inp = path.join(dir, 'in.jsonl');
    writeFileSync(inp, '{"prompt_ids": [4, 5]}\n\n{"prompt_ids": [6]}\n');
    const out2 = await runCli(['generate', '--model', md, '--input', inp, '--temperature', '0.8', '--seed', '3', '--max-new-tokens', '4', '--ignore-eos', '--json', '--backend', 'js']);
    const l2 = out2.trim().split('\n').map((l) => JSON.parse(l) as { token_ids: number[] });
    assert.equal(l2.length, 2);
    assert.ok(l2.every((l) => l.token_ids.length === 4));
    writeFileSync(inp, '{"prompt_ids": [4, 5]}\n{"prompt_ids": [1, "x"]}\n');
    assert.throws(() => readPromptsJsonl(inp), new RegExp(`${inp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: field "prompt_ids\\[1\\]"`));
    writeFileSync(inp, '{"messages": [{"role": "user"}]}\n');
    assert.throws(() => readPromptsJsonl(inp), /:1: field "messages\[0\]\.content"/);
    writeFileSync(inp, '{"prompt": "hi"}\n');
    await assert.rejects(runCli(['generate', '--model', md, '--input', inp, '--backend', 'js']), /in\.jsonl:1: a text prompt needs tokenizer\.json/);
    await assert.rejects(runCli(['generate', '--model', md, '--backend', 'js']), /exactly one of/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('random model spec', () => {
  const { config, seed } = parseRandomModelSpec('random:layers=4,hidden=256,heads=4,kv-heads=2,intermediate=1024,vocab=512,seed=3');
  assert.equal(config.numHiddenLayers, 4);
  assert.equal(config.numKeyValueHeads, 2);
  assert.equal(config.vocabSize, 512);
  assert.equal(seed, 3);
  assert.throws(() => parseRandomModelSpec('random:layer=4'), /unknown key "layer"/);
});

/** A byte-level BPE tokenizer: ids 0-255 are the bytes (GPT-2 byte-to-unicode map), 256 = "ab", 257 = <|end|>. */
function byteTokenizerJson(): Record<string, unknown> {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const vocab: Record<string, number> = {};
  let shift = 0;
  for (let b = 0; b < 256; b++) vocab[printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + shift++)] = b;
  vocab['ab'] = 256;
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return {
    version: '1.0',
    added_tokens: [{ id: 257, content: '<|end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: bl,
    post_processor: bl,
    decoder: bl,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [['a', 'b']] },
  };
}

test('oreal generate with a tokenizer: --prompt --chat, messages lines, stop strings, text = decode(ids)', async () => {
  const { Tokenizer } = await import('../src/model/tokenizer.js');
  const m = randomModel(cfgOf({ vocabSize: 258 }), 61);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-gen-tok-'));
  try {
    const md = path.join(dir, 'model');
    saveAs(m, md);
    writeFileSync(path.join(md, 'tokenizer.json'), JSON.stringify(byteTokenizerJson()));
    writeFileSync(
      path.join(md, 'tokenizer_config.json'),
      JSON.stringify({ eos_token: '<|end|>', chat_template: '{% for m in messages %}[{{ m.role }}] {{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}' }),
    );
    const tok = Tokenizer.load(md);
    const chatIds = tok.encodeChat([{ role: 'user', content: 'ab c' }], { addGenerationPrompt: true });
    const ref = (await generate(m, [{ prompt: chatIds, n: 1, params: greedy({ maxNewTokens: 8, stopTokenIds: [257, 60] }) }], {
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    }))[0]![0]!;
    const out = await runCli(['generate', '--model', md, '--prompt', 'ab c', '--chat', '--greedy', '--max-new-tokens', '8', '--json', '--backend', 'js']);
    const l = JSON.parse(out.trim()) as { token_ids: number[]; text: string; finish_reason: string };
    assert.deepEqual(l.token_ids, ref.tokenIds);
    assert.equal(l.text, ref.text);
    const inp = path.join(dir, 'in.jsonl');
    writeFileSync(inp, JSON.stringify({ messages: [{ role: 'user', content: 'ab c' }] }) + '\n' + JSON.stringify({ prompt: 'xyz' }) + '\n');
    const out2 = (await runCli(['generate', '--model', md, '--input', inp, '--greedy', '--max-new-tokens', '8', '--json', '--backend', 'js'])).trim().split('\n');
    assert.equal(out2.length, 2);
    assert.deepEqual((JSON.parse(out2[0]!) as { token_ids: number[] }).token_ids, ref.tokenIds);
    // A stop string taken from the reference text cuts it.
    const plain = (await generate(m, [{ prompt: tok.encode('xyz'), n: 1, params: greedy({ maxNewTokens: 8, stopTokenIds: [257, 60] }) }], {
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    }))[0]![0]!;
    assert.deepEqual((JSON.parse(out2[1]!) as { token_ids: number[] }).token_ids, plain.tokenIds);
    const long = (await generate(m, [{ prompt: tok.encode('xyz'), n: 1, params: greedy({ maxNewTokens: 12 }) }], {
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    }))[0]![0]!;
    assert.ok(long.text.length >= 4, `reference text ${JSON.stringify(long.text)} too short for a stop string`);
    const stop = long.text.slice(2, 4);
    const out3 = JSON.parse(
      (await runCli(['generate', '--model', md, '--prompt', 'xyz', '--greedy', '--max-new-tokens', '12', '--ignore-eos', '--stop', stop, '--json', '--backend', 'js'])).trim(),
    ) as { text: string; finish_reason: string };
    assert.equal(out3.finish_reason, 'stop');
    assert.equal(out3.text, long.text.slice(0, long.text.indexOf(stop)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Regression: a prompt's first sample that stops on its very first token must not free the prompt cache that its
// sibling samples are still copied from.
test('n samples where the first one stops at once: siblings still get the prompt cache', async () => {
  const cfg = cfgOf({});
  const model = randomModel(cfg, 21);
  const everyId = Array.from({ length: cfg.vocabSize }, (_, i) => i);
  const [p] = prompts(cfg.vocabSize, [5], 3);
  const mixed = await generate(model, [
    { prompt: p!, n: 4, params: params({ seed: 1, stopTokenIds: everyId }) },
    { prompt: p!, n: 3, params: params({ seed: 2, maxNewTokens: 4 }) },
  ]);
  assert.equal(mixed[0]!.length, 4);
  for (const g of mixed[0]!) {
    assert.equal(g.tokenIds.length, 1);
    assert.equal(g.finishReason, 'stop');
  }
  assert.equal(mixed[1]!.length, 3);
  for (const g of mixed[1]!) assert.equal(g.tokenIds.length, 4);
});
