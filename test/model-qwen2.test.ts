// The Qwen2 decoder against PyTorch fixtures (scripts/torch_qwen2_reference.py, float64 reference on float32
// weights), finite differences, padding/chunking invariances, and the optimizer pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createJsBackend } from '../src/engine/js-backend.js';
import {
  Qwen2Model,
  crossEntropyLoss,
  nextTokenLabels,
  lengthsFromMask,
  type Qwen2Config,
  type ModelOptions,
} from '../src/model/qwen2.js';
import { AdamW, clipGradNorm, globalGradNorm, lrAt } from '../src/train/optim.js';
import { gradNorm } from '../src/engine/norm.js';
import type { F32 } from '../src/engine/tensor.js';
import { qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { parseConfig } from '../src/model/config.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { createBackend } from '../src/engine/index.js';
import type { Backend } from '../src/engine/backend.js';
import { registerDebug } from '../src/cli/debug.js';
import { Command } from 'commander';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { readQwen2Fixture, type Qwen2FixtureRecord } from './helpers/qwen2-fixture.js';

const backend = createJsBackend();

interface Fixture extends Qwen2FixtureRecord {
  logp?: number[][];
  entropy?: number[][];
  dlogp?: number[][];
  grad_norms_weighted?: Record<string, number>;
  score?: number[][];
  dscore?: number[][];
  grad_norms_score?: Record<string, number>;
}

const loadFixture = (name: string): { fx: Fixture; cfg: Qwen2Config; tensors: Map<string, Float32Array> } => readQwen2Fixture<Fixture>(name);

const flat = (rows: number[][]): number[] => rows.flat();
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

async function checkGradNorms(model: Qwen2Model, expected: Record<string, number>, tol: number, label: string): Promise<number> {
  const got = await model.gradNorms();
  assert.deepEqual(Object.keys(got).sort(), Object.keys(expected).sort(), `${label}: parameter names`);
  let worst = 0;
  for (const [k, e] of Object.entries(expected)) {
    const r = rel(got[k]!, e);
    worst = Math.max(worst, r);
    assert.ok(r < tol, `${label}: grad norm of ${k}: ${got[k]} vs torch ${e} (rel ${r.toExponential(2)})`);
  }
  return worst;
}

const chunkings: Array<[string, ModelOptions]> = [
  ['default chunks', {}],
  ['small chunks', { logitsChunkRows: 3, attnChunk: 4 }],
];

for (const name of ['qwen2_tied', 'qwen2_untied', 'llama_nobias']) {
  for (const [cl, mo] of chunkings) {
    test(`${name} (${cl}): loss, logp, entropy and grad norms match PyTorch`, async () => {
      const { fx, cfg, tensors } = loadFixture(name);
      const model = Qwen2Model.fromTensors(cfg, backend, tensors, mo);
      const ids = flat(fx.input_ids);
      // Loss + grads.
      const { loss, tokens } = await crossEntropyLoss(model, ids, fx.lengths);
      assert.equal(tokens, fx.lengths.reduce((a, b) => a + b - 1, 0));
      const lossRel = rel(loss, fx.loss!);
      assert.ok(lossRel < 1e-4, `loss ${loss} vs ${fx.loss} (rel ${lossRel})`);
      const gradRel = await checkGradNorms(model, fx.grad_norms!, 1e-3, name);
      // Per-token values.
      const res = model.forward(ids, fx.lengths, { saveForBackward: false });
      const elp = flat(fx.logp!);
      const eent = flat(fx.entropy!);
      let dlp = 0;
      let dent = 0;
      for (let i = 0; i < elp.length; i++) {
        dlp = Math.max(dlp, Math.abs(res.logp![i]! - elp[i]!));
        dent = Math.max(dent, Math.abs(res.entropy![i]! - eent[i]!));
      }
      assert.ok(dlp < 1e-4, `logp max abs err ${dlp}`);
      assert.ok(dent < 1e-4, `entropy max abs err ${dent}`);
      // RL-shaped weighted objective (zeros on the first positions).
      let wRel = 0;
      if (fx.dlogp) {
        model.zeroGrad();
        model.forward(ids, fx.lengths);
        model.backward(flat(fx.dlogp), null);
        wRel = await checkGradNorms(model, fx.grad_norms_weighted!, 1e-3, name + ' weighted');
      }
      console.log(
        `# ${name} ${cl}: loss rel ${lossRel.toExponential(2)}, logp abs ${dlp.toExponential(2)}, entropy abs ${dent.toExponential(2)}, ` +
          `grad-norm rel ${gradRel.toExponential(2)}${fx.dlogp ? `, weighted ${wRel.toExponential(2)}` : ''}`,
      );
    });
  }
}

for (const name of ['qwen2_score', 'qwen2_score_bias']) {
  test(`${name}: token-level RM scores and grads match PyTorch`, async () => {
    const { fx, cfg, tensors } = loadFixture(name);
    for (const [cl, mo] of chunkings) {
      const model = Qwen2Model.fromTensors(cfg, backend, tensors, mo);
      const ids = flat(fx.input_ids);
      const res = model.forward(ids, fx.lengths);
      assert.equal(res.logp, undefined);
      const es = flat(fx.score!);
      let ds = 0;
      for (let i = 0; i < es.length; i++) ds = Math.max(ds, Math.abs(res.score![i]! - es[i]!));
      assert.ok(ds < 1e-4, `score max abs err ${ds}`);
      model.backward(null, flat(fx.dscore!));
      const g = await checkGradNorms(model, fx.grad_norms_score!, 1e-3, name);
      console.log(`# ${name} ${cl}: score abs ${ds.toExponential(2)}, grad-norm rel ${g.toExponential(2)}`);
    }
  });
}

/** The wasm backend: its .wasm is committed, so failing to create it is a failure, not a skip. */
function tryWasm(): Backend {
  return createBackend('wasm', { threads: 2 });
}

test('wasm backend (GEMM + SIMD row kernels) matches PyTorch too', async () => {
  const wasm = tryWasm();
  try {
    for (const name of ['qwen2_tied', 'qwen2_untied', 'llama_nobias']) {
      const { fx, cfg, tensors } = loadFixture(name);
      const model = Qwen2Model.fromTensors(cfg, wasm, tensors, { attnChunk: 5 });
      const { loss } = await crossEntropyLoss(model, flat(fx.input_ids), fx.lengths);
      assert.ok(rel(loss, fx.loss!) < 1e-4, `${name} loss ${loss} vs ${fx.loss}`);
      const g = await checkGradNorms(model, fx.grad_norms!, 1e-3, name + ' wasm');
      console.log(`# ${name} wasm: loss rel ${rel(loss, fx.loss!).toExponential(2)}, grad-norm rel ${g.toExponential(2)}`);
      model.dispose();
    }
    const { fx, cfg, tensors } = loadFixture('qwen2_score');
    const model = Qwen2Model.fromTensors(cfg, wasm, tensors);
    model.forward(flat(fx.input_ids), fx.lengths);
    model.backward(null, flat(fx.dscore!));
    await checkGradNorms(model, fx.grad_norms_score!, 1e-3, 'score wasm');
  } finally {
    wasm.dispose();
  }
});

test('config adapter: HF config.json → Qwen2Config, unsupported features refused', () => {
  const base = {
    model_type: 'qwen2',
    vocab_size: 97,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    tie_word_embeddings: true,
  };
  const lm = qwen2ConfigFromModelConfig(parseConfig({ ...base, architectures: ['Qwen2ForCausalLM'] }));
  assert.equal(lm.head, 'lm');
  assert.equal(lm.attentionBias, true);
  assert.equal(lm.headDim, 8);
  const rm = qwen2ConfigFromModelConfig(
    parseConfig({ ...base, architectures: ['Qwen2ForTokenClassification'], num_labels: 1 }),
    { scoreBias: true },
  );
  assert.equal(rm.head, 'score');
  assert.equal(rm.scoreBias, true);
  const llama = qwen2ConfigFromModelConfig(parseConfig({ ...base, model_type: 'llama' }));
  assert.equal(llama.attentionBias, false);
  assert.throws(() => qwen2ConfigFromModelConfig(parseConfig({ ...base, model_type: 'llama', attention_bias: true })), /o_proj/);
  assert.throws(
    () => qwen2ConfigFromModelConfig(parseConfig({ ...base, rope_scaling: { type: 'yarn', factor: 4 } })),
    /rope_scaling/,
  );
  assert.throws(
    () => qwen2ConfigFromModelConfig(parseConfig({ ...base, architectures: ['Qwen2ForTokenClassification'] })),
    /2 labels/,
  );
});

test('oreal debug grad --json: loss and grad norms of a saved checkpoint', async () => {
  const { fx, cfg, tensors } = loadFixture('qwen2_untied');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-debug-'));
  try {
    const T = fx.lengths[0]!; // row 0 is full length
    const row = fx.input_ids[0]!.slice(0, T);
    const mc = parseConfig({
      model_type: 'qwen2',
      architectures: ['Qwen2ForCausalLM'],
      vocab_size: cfg.vocabSize,
      hidden_size: cfg.hiddenSize,
      intermediate_size: cfg.intermediateSize,
      num_hidden_layers: cfg.numHiddenLayers,
      num_attention_heads: cfg.numAttentionHeads,
      num_key_value_heads: cfg.numKeyValueHeads,
      rms_norm_eps: cfg.rmsNormEps,
      rope_theta: cfg.ropeTheta,
      tie_word_embeddings: cfg.tieWordEmbeddings,
    });
    const ref = Qwen2Model.fromTensors(cfg, backend, tensors);
    saveCheckpoint(path.join(dir, 'model'), mc, ref.toTensors(), { dtype: 'f32' });
    writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify({ input_ids: [row, row.slice().reverse()] }));
    const program = new Command().exitOverride();
    registerDebug(program);
    const chunks: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string | Uint8Array): boolean => {
      chunks.push(String(c));
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync(
        ['debug', 'grad', '--model', path.join(dir, 'model'), '--tokens', path.join(dir, 'tokens.json'), '--json', '--backend', 'js'],
        { from: 'user' },
      );
    } finally {
      process.stdout.write = orig;
    }
    const lines = chunks.join('').trim().split('\n');
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0]!) as { loss: number; grad_norms: Record<string, number> };
    const { loss } = await crossEntropyLoss(ref, [...row, ...row.slice().reverse()], [T, T]);
    assert.ok(Math.abs(out.loss - loss) < 1e-12);
    const g = await ref.gradNorms();
    assert.deepEqual(Object.keys(out.grad_norms).sort(), Object.keys(g).sort());
    for (const [k, v] of Object.entries(g)) assert.ok(Math.abs(out.grad_norms[k]! - v) <= 1e-12 * Math.max(1, v), k);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('padding: padded ids do not matter, padded positions give zeros, batch = sequences alone', () => {
  const { fx, cfg, tensors } = loadFixture('qwen2_tied');
  const model = Qwen2Model.fromTensors(cfg, backend, tensors);
  const T = fx.input_ids[0]!.length;
  const ids = flat(fx.input_ids);
  const junk = ids.slice();
  fx.lengths.forEach((L, b) => {
    for (let t = L; t < T; t++) junk[b * T + t] = (7 * t + b) % cfg.vocabSize;
  });
  const a = model.forward(ids, fx.lengths, { hidden: true });
  const d = new Float64Array(ids.length).map((_, i) => Math.sin(i));
  model.backward(d, null);
  const ga = new Map([...model.grads].map(([k, v]) => [k, v.slice()]));
  model.zeroGrad();
  const b = model.forward(junk, fx.lengths, { hidden: true });
  model.backward(d, null);
  assert.deepEqual(a.logp, b.logp);
  assert.deepEqual(a.hidden, b.hidden);
  for (const [k, g] of model.grads) assert.deepEqual(g, ga.get(k), k);
  // zeros at padded positions
  const H = cfg.hiddenSize;
  fx.lengths.forEach((L, bb) => {
    for (let t = L - 1; t < T; t++) assert.equal(a.logp![bb * T + t], 0);
    for (let t = L; t < T; t++) for (let i = 0; i < H; i++) assert.equal(a.hidden![(bb * T + t) * H + i], 0);
  });
  // each sequence alone (unpadded) gives the same per-token numbers
  fx.lengths.forEach((L, bb) => {
    const one = model.forward(ids.slice(bb * T, bb * T + L), [L], { saveForBackward: false });
    for (let t = 0; t < L; t++) assert.ok(Math.abs(one.logp![t]! - a.logp![bb * T + t]!) < 1e-5);
  });
  assert.deepEqual([...lengthsFromMask([1, 1, 0, 1, 0, 0], 2, 3)], [2, 1]);
  assert.throws(() => lengthsFromMask([0, 1, 1], 1, 3), /right padding/);
  assert.deepEqual([...nextTokenLabels([5, 6, 7, 8, 9, 0], [3, 2], 3)], [6, 7, -1, 9, -1, -1]);
});

test('gradients accumulate over micro-batches', async () => {
  const { fx, cfg, tensors } = loadFixture('qwen2_untied');
  const model = Qwen2Model.fromTensors(cfg, backend, tensors);
  const ids = flat(fx.input_ids);
  await crossEntropyLoss(model, ids, fx.lengths);
  const once = await model.gradNorms();
  await crossEntropyLoss(model, ids, fx.lengths);
  const twice = await model.gradNorms();
  for (const k of Object.keys(once)) assert.ok(rel(twice[k]!, 2 * once[k]!) < 1e-5, k);
});

test('finite differences: directional derivatives of a weighted objective on a tiny model', () => {
  // Objective J = Σ c_t·logp_t (LM) — computed in float32 activations. Central differences along a random
  // direction u (|u| = 1 per tensor) with step 1e-2 in float32 have an error ~1e-4·|J| / 1e-2 from rounding plus
  // O(h²) truncation; we require |FD − ⟨g, u⟩| ≤ 2e-4 + 2e-3·|⟨g, u⟩|, which a wrong gradient (sign, missing term,
  // transposed index) fails by orders of magnitude.
  const cfg: Qwen2Config = {
    vocabSize: 23,
    hiddenSize: 16,
    intermediateSize: 24,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: true,
    head: 'lm',
  };
  const model = Qwen2Model.random(cfg, backend, 7, 0.3, { attnChunk: 3, logitsChunkRows: 4 });
  for (const [k, p] of model.params) if (k.endsWith('.bias')) for (let i = 0; i < p.length; i++) p[i] = 0.1 * Math.sin(3 * i + 1);
  const T = 7;
  const lengths = [7, 5];
  const ids = Array.from({ length: 2 * T }, (_, i) => (i * 11 + 3) % cfg.vocabSize);
  const c = Array.from({ length: 2 * T }, (_, i) => Math.cos(i * 1.7));
  const J = (): number => {
    const r = model.forward(ids, lengths, { saveForBackward: false });
    let s = 0;
    for (let i = 0; i < c.length; i++) s += c[i]! * r.logp![i]!;
    return s;
  };
  model.zeroGrad();
  model.forward(ids, lengths);
  model.backward(c, null);
  const h = 1e-2;
  let worst = 0;
  for (const name of [
    'model.embed_tokens.weight',
    'model.layers.0.input_layernorm.weight',
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.k_proj.bias',
    'model.layers.0.self_attn.v_proj.weight',
    'model.layers.1.self_attn.o_proj.weight',
    'model.layers.1.mlp.gate_proj.weight',
    'model.layers.1.mlp.up_proj.weight',
    'model.layers.1.mlp.down_proj.weight',
    'model.layers.1.post_attention_layernorm.weight',
    'model.norm.weight',
  ]) {
    const p = model.params.get(name)!;
    const g = model.grads.get(name)!;
    const u = new Float64Array(p.length).map((_, i) => Math.sin(i * 2.3 + name.length));
    const un = Math.sqrt(u.reduce((a, b) => a + b * b, 0));
    let dot = 0;
    for (let i = 0; i < p.length; i++) {
      u[i] = u[i]! / un;
      dot += g[i]! * u[i]!;
    }
    const orig = p.slice();
    for (let i = 0; i < p.length; i++) p[i] = orig[i]! + h * u[i]!;
    const jp = J();
    for (let i = 0; i < p.length; i++) p[i] = orig[i]! - h * u[i]!;
    const jm = J();
    p.set(orig);
    const fd = (jp - jm) / (2 * h);
    const err = Math.abs(fd - dot);
    worst = Math.max(worst, err / (2e-4 + 2e-3 * Math.abs(dot)));
    assert.ok(err <= 2e-4 + 2e-3 * Math.abs(dot), `${name}: FD ${fd} vs analytic ${dot}`);
  }
  console.log(`# finite differences: worst error / tolerance ${worst.toFixed(3)}`);
});

test('AdamW matches a hand-computed step (weight decay, bias correction)', async () => {
  const p = new Float32Array([1, -2, 0.5]);
  const params = new Map([['w', backend.wrap(p)]]);
  const opt = new AdamW(backend, params, { lr: 0.1, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  const g1 = new Float32Array([0.5, -1, 0]);
  opt.step(new Map([['w', backend.wrap(g1)]]));
  // step 1: m̂ = g, v̂ = g², update = lr·g/(|g| + eps) = lr·sign(g) (0 where g = 0); decay first.
  const exp1 = [1 * (1 - 0.001) - 0.1, -2 * (1 - 0.001) + 0.1, 0.5 * (1 - 0.001)];
  exp1.forEach((e, i) => assert.ok(Math.abs(p[i]! - e) < 1e-6, `step1[${i}] ${p[i]} vs ${e}`));
  const g2 = new Float32Array([0.1, 0.2, -0.3]);
  const before = Array.from(p);
  opt.step(new Map([['w', backend.wrap(g2)]]), 0.05);
  for (let i = 0; i < 3; i++) {
    const m = 0.9 * (0.1 * g1[i]!) + 0.1 * g2[i]!;
    const v = 0.999 * (0.001 * g1[i]! * g1[i]!) + 0.001 * g2[i]! * g2[i]!;
    const mhat = m / (1 - 0.81);
    const vhat = v / (1 - 0.999 * 0.999);
    const e = before[i]! * (1 - 0.05 * 0.01) - (0.05 * mhat) / (Math.sqrt(vhat) + 1e-8);
    assert.ok(Math.abs(p[i]! - e) < 1e-6, `step2[${i}] ${p[i]} vs ${e}`);
  }
  // state round trip: a restored optimizer takes the same next step
  const st = await opt.exportState();
  const q = new Float32Array(p);
  const opt2 = new AdamW(backend, new Map([['w', backend.wrap(q)]]), { lr: 0.1 });
  opt2.importState(st);
  const g3 = new Map([['w', backend.wrap(new Float32Array([0.3, 0.3, 0.3]))]]);
  opt.step(g3, 0.02);
  opt2.step(g3, 0.02);
  assert.deepEqual(q, p);
  assert.equal(opt2.stepCount, 3);
  assert.equal(opt.stateTensors().size, 2);
});

test('gradient clipping returns the pre-clip norm and scales to maxNorm', async () => {
  const a = new Float32Array([3, 0]);
  const b = new Float32Array([0, 4]);
  const w = (x: Float32Array): F32 => backend.wrap(x);
  const n = await clipGradNorm(backend, [w(a), w(b)], 1);
  assert.equal(n, 5);
  assert.ok(Math.abs(globalGradNorm([a, b]) - 1) < 1e-6);
  assert.ok(Math.abs((await gradNorm(backend, [w(a), w(b)])) - 1) < 1e-6);
  const c = new Float32Array([0.3, 0.4]);
  assert.ok(Math.abs((await clipGradNorm(backend, [w(c)], 1)) - 0.5) < 1e-7);
  assert.deepEqual(c, new Float32Array([0.3, 0.4]));
  const d = new Float32Array([Number.NaN, 1]);
  assert.ok(Number.isNaN(await clipGradNorm(backend, [w(d)], 1)));
  assert.equal(d[1], 1);
});

test('warm-up + cosine schedule', () => {
  const o = { lr: 5e-7, minLr: 1e-7, warmupSteps: 10, totalSteps: 110 };
  assert.ok(Math.abs(lrAt(0, o) - 5e-8) < 1e-20);
  assert.ok(Math.abs(lrAt(4, o) - 2.5e-7) < 1e-20);
  assert.ok(Math.abs(lrAt(9, o) - 5e-7) < 1e-20);
  assert.ok(Math.abs(lrAt(10, o) - 5e-7) < 1e-20);
  assert.ok(Math.abs(lrAt(60, o) - 3e-7) < 1e-18);
  assert.ok(Math.abs(lrAt(110, o) - 1e-7) < 1e-20);
  assert.ok(Math.abs(lrAt(500, o) - 1e-7) < 1e-20);
  for (let s = 10; s < 110; s++) assert.ok(lrAt(s + 1, o) <= lrAt(s, o));
  assert.equal(lrAt(0, { lr: 1, minLr: 0, warmupSteps: 0, totalSteps: 4 }), 1);
  assert.ok(Math.abs(lrAt(2, { lr: 1, minLr: 0, warmupSteps: 0, totalSteps: 4 }) - 0.5) < 1e-12);
});

test('forwardAsync reads back the numbers forward returns; readTensors equals toTensors (js and wasm)', async () => {
  const wasm = createBackend('wasm', { threads: 2 });
  try {
    for (const be of [backend, wasm]) {
      for (const head of ['lm', 'score'] as const) {
        const cfg: Qwen2Config = {
          vocabSize: 29,
          hiddenSize: 16,
          intermediateSize: 24,
          numHiddenLayers: 2,
          numAttentionHeads: 4,
          numKeyValueHeads: 2,
          rmsNormEps: 1e-6,
          ropeTheta: 10000,
          tieWordEmbeddings: false,
          attentionBias: true,
          head,
        };
        const m = Qwen2Model.random(cfg, be, 5, 0.3);
        const ids = Array.from({ length: 2 * 6 }, (_, i) => (i * 7 + 2) % cfg.vocabSize);
        const a = m.forward(ids, [6, 3], { hidden: true });
        const b = await m.forwardAsync(ids, [6, 3], { hidden: true });
        assert.equal(b.numLabels, a.numLabels);
        if (head === 'lm') {
          assert.ok(a.numLabels === 7 && a.logp!.some((x) => x !== 0));
          assert.deepEqual(b.logp, a.logp);
          assert.deepEqual(b.entropy, a.entropy);
        } else {
          assert.ok(a.score!.some((x) => x !== 0));
          assert.deepEqual(b.score, a.score);
        }
        assert.deepEqual(b.hidden, a.hidden);
        const sync = m.toTensors();
        const read = await m.readTensors();
        assert.deepEqual([...read.keys()], [...sync.keys()]);
        for (const [k, t] of sync) assert.deepEqual(read.get(k)!.data, t.data, k);
        m.dispose();
      }
    }
  } finally {
    wasm.dispose();
  }
});
