// Every op of the engine contract (src/engine/backend.ts), forward and backward: the wasm and blas backends against
// the js reference (relative error 1e-5: float32 rounding of differently ordered sums, and wasm's polynomial exp),
// and the backward ops of the reference against finite differences of their forwards (directional derivatives of a
// random linear objective, central differences at steps 1e-2 and 5e-3 in float32 storage, Richardson-extrapolated: agreement to 1e-3 of the
// directional derivative, or of 1e-2·|grad|·|d| when that is larger, since float32 rounding of the objective divided
// by 2ε would swamp a derivative that happens to be near zero).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend, blasAvailable, ropeTables, type Backend } from '../src/engine/index.js';
import type { AttentionDims } from '../src/engine/backend.js';
import type { DeviceTensor, F32, I32 } from '../src/engine/tensor.js';
import { relErr, seededFloats } from './helpers/numeric.js';
import { TokenSampler, type SamplerSettings } from '../src/sample/sampler.js';
import { Xoshiro128 as Rng } from '../src/util/rng.js';

const js = createBackend('js');
const fast: Array<[string, Backend]> = [['wasm', createBackend('wasm', { threads: 2 })]];
if (blasAvailable()) fast.push(['blas', createBackend('blas', { threads: 2 })]);
after(() => {
  for (const [, b] of fast) b.dispose();
});

type Inputs = Record<string, Float32Array | Int32Array>;
type Tensors = Record<string, DeviceTensor>;

/** Uploads `inputs`, runs `op`, and reads back the named tensors (inputs that the op writes included). */
async function run(be: Backend, inputs: Inputs, op: (be: Backend, t: Tensors) => void, outs: string[]): Promise<Record<string, Float32Array>> {
  const t: Tensors = {};
  for (const [k, v] of Object.entries(inputs)) t[k] = v instanceof Int32Array ? be.upload(v) : be.upload(v);
  op(be, t);
  const res: Record<string, Float32Array> = {};
  for (const k of outs) res[k] = Float32Array.from(await be.read(t[k]!));
  for (const v of Object.values(t)) be.free(v);
  return res;
}

/** Runs the op on js and on every fast backend; each output must agree within `tol` (relErr). */
async function agree(name: string, inputs: Inputs, op: (be: Backend, t: Tensors) => void, outs: string[], tol = 1e-5): Promise<void> {
  const want = await run(js, inputs, op, outs);
  for (const [bn, be] of fast) {
    const got = await run(be, inputs, op, outs);
    for (const k of outs) {
      const e = relErr(got[k]!, want[k]!);
      assert.ok(e < tol, `${name} on ${bn}: ${k} differs from js by ${e}`);
    }
  }
}

const { fill } = seededFloats(9001);
const f32 = (n: number, scale = 1): Float32Array => {
  const a = fill(new Float32Array(n));
  for (let i = 0; i < n; i++) a[i] = a[i]! * 2 * scale;
  return a;
};
const F = (t: Tensors, k: string): F32 => t[k] as F32;
const I = (t: Tensors, k: string): I32 => t[k] as I32;

const dims: AttentionDims = { heads: 4, kvHeads: 2, headDim: 8 };
const lens = [5, 0, 9, 3];
const starts = Int32Array.from([0, 5, 5, 14, 17]);
const N = 17;
const qd = dims.heads * dims.headDim;
const kd = dims.kvHeads * dims.headDim;
const positions = Int32Array.from(lens.flatMap((L) => Array.from({ length: L }, (_, i) => i)));
const rt = ropeTables(32, dims.headDim, 10000);

test('memory: upload, view, write, copy, fill, read; bad sizes are RangeErrors naming the op', async () => {
  for (const be of [js, ...fast.map(([, b]) => b)]) {
    const t = be.upload(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.deepEqual(t.shape, [2, 3]);
    const row1 = be.view(t, 3, [3]);
    assert.equal(row1.offset, 3);
    assert.deepEqual(Array.from(await be.read(row1)), [4, 5, 6]);
    be.write(row1, [7, 8], 1);
    be.fill(be.view(t, 0, [1]), -1);
    const u = be.empty([3]);
    be.copy(be.view(t, 1, [3]), u);
    assert.deepEqual(Array.from(await be.read(t)), [-1, 2, 3, 4, 7, 8]);
    assert.deepEqual(Array.from(await be.read(u)), [2, 3, 4]);
    const ids = be.upload(Int32Array.from([2, 0]));
    assert.equal(ids.dtype, 'i32');
    assert.deepEqual(Array.from(await be.read(ids)), [2, 0]);
    assert.throws(() => be.view(t, 4, [3]), RangeError);
    assert.throws(() => be.matmul(t, t, u, 2, 3, 3, false, false, false), /matmul: b has 6 elements, expected 9/);
    assert.throws(() => be.free(row1), /view cannot be freed/);
    be.free(u);
    be.free(t);
    be.free(ids);
  }
});

test('matmul: every transpose, accumulate, odd shapes', async () => {
  for (const [M, Nn, K] of [
    [7, 5, 9],
    [1, 33, 17],
    [20, 1, 3],
  ] as const) {
    for (const ta of [false, true])
      for (const tb of [false, true])
        for (const acc of [false, true])
          await agree(
            `matmul ${M}x${Nn}x${K} ${ta} ${tb} ${acc}`,
            { a: f32(M * K), b: f32(K * Nn), c: f32(M * Nn) },
            (be, t) => be.matmul(F(t, 'a'), F(t, 'b'), F(t, 'c'), M, Nn, K, ta, tb, acc),
            ['c'],
          );
  }
});

test('elementwise: add, axpy, scale, addBias and its backward, swiglu and its backward', async () => {
  await agree('add', { a: f32(50), b: f32(50), o: f32(50) }, (be, t) => be.add(F(t, 'a'), F(t, 'b'), F(t, 'o')), ['o']);
  await agree('axpy', { x: f32(50), y: f32(50) }, (be, t) => be.axpy(0.3, F(t, 'x'), F(t, 'y')), ['y']);
  await agree('scale', { x: f32(50) }, (be, t) => be.scale(F(t, 'x'), -1.7), ['x']);
  await agree('addBias', { y: f32(6 * 7), b: f32(7) }, (be, t) => be.addBias(F(t, 'y'), F(t, 'b')), ['y']);
  await agree('biasBackward', { dy: f32(6 * 7), db: f32(7) }, (be, t) => be.biasBackward(F(t, 'dy'), F(t, 'db')), ['db']);
  await agree('swiglu', { g: f32(70, 3), u: f32(70), o: f32(70) }, (be, t) => be.swiglu(F(t, 'g'), F(t, 'u'), F(t, 'o')), ['o']);
  await agree(
    'swigluBackward',
    { g: f32(70, 3), u: f32(70), d: f32(70), dg: f32(70), du: f32(70) },
    (be, t) => be.swigluBackward(F(t, 'g'), F(t, 'u'), F(t, 'd'), F(t, 'dg'), F(t, 'du')),
    ['dg', 'du'],
  );
});

test('rows: gather/scatter-add, rmsnorm and its backward, rope both ways', async () => {
  const ids = Int32Array.from([3, 0, 3, 5, 1]);
  await agree('gatherRows', { e: f32(6 * 4), ids, o: f32(5 * 4) }, (be, t) => be.gatherRows(F(t, 'e'), I(t, 'ids'), F(t, 'o'), 4), ['o']);
  await agree('scatterAddRows', { s: f32(5 * 4), ids, d: f32(6 * 4) }, (be, t) => be.scatterAddRows(F(t, 's'), I(t, 'ids'), F(t, 'd'), 4), ['d']);
  await agree(
    'rmsnorm',
    { x: f32(9 * 16), w: f32(16), y: f32(9 * 16), r: f32(9) },
    (be, t) => be.rmsnorm(F(t, 'x'), F(t, 'w'), F(t, 'y'), F(t, 'r'), 16, 1e-6),
    ['y', 'r'],
  );
  const x = f32(9 * 16);
  const rstd = new Float32Array(9);
  for (let r = 0; r < 9; r++) {
    let s = 0;
    for (let c = 0; c < 16; c++) s += x[r * 16 + c]! ** 2;
    rstd[r] = 1 / Math.sqrt(s / 16 + 1e-6);
  }
  await agree(
    'rmsnormBackward',
    { x, w: f32(16), r: rstd, dy: f32(9 * 16), dx: f32(9 * 16), dw: f32(16) },
    (be, t) => be.rmsnormBackward(F(t, 'x'), F(t, 'w'), F(t, 'r'), F(t, 'dy'), F(t, 'dx'), F(t, 'dw'), 16),
    ['dx', 'dw'],
  );
  for (const inverse of [false, true])
    await agree(
      `rope ${inverse}`,
      { x: f32(N * qd), o: f32(N * qd), pos: positions, cos: rt.cos, sin: rt.sin },
      (be, t) => be.rope(F(t, 'x'), F(t, 'o'), I(t, 'pos'), F(t, 'cos'), F(t, 'sin'), dims.heads, dims.headDim, inverse),
      ['o'],
    );
});

const attnInputs = (): Inputs => ({
  q: f32(N * qd),
  k: f32(N * kd),
  v: f32(N * kd),
  o: new Float32Array(N * qd),
  lse: new Float32Array(dims.heads * N),
  starts,
});

test('attention: packed causal GQA forward and backward, any chunk', async () => {
  for (const chunk of [1, 4, 64]) {
    await agree(
      `attention chunk ${chunk}`,
      attnInputs(),
      (be, t) => be.attention(F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), I(t, 'starts'), dims, chunk),
      ['o', 'lse'],
    );
    await agree(
      `attentionBackward chunk ${chunk}`,
      { ...attnInputs(), dout: f32(N * qd), dq: f32(N * qd), dk: f32(N * kd), dv: f32(N * kd) },
      (be, t) => {
        be.attention(F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), I(t, 'starts'), dims, chunk);
        be.attentionBackward(
          F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), F(t, 'dout'),
          F(t, 'dq'), F(t, 'dk'), F(t, 'dv'), I(t, 'starts'), dims, chunk,
        );
      },
      ['dq', 'dk', 'dv'],
    );
  }
});

test('KV cache: batched append + attention over the caches equals packed attention of each whole sequence', async () => {
  // Two sequences decoded together: each step appends a chunk of each to its own cache in one op.
  const lensKv = [9, 6];
  const maxLen = 12;
  const Ntot = lensKv[0]! + lensKv[1]!;
  const q = f32(Ntot * qd);
  const k = f32(Ntot * kd);
  const v = f32(Ntot * kd);
  const base = [0, lensKv[0]!];
  const steps: Array<Array<[number, number]>> = [
    [[0, 4], [0, 2]],
    [[4, 1], [2, 1]],
    [[5, 1], [3, 1]],
    [[6, 3], [4, 2]],
  ];
  for (const be of [js, ...fast.map(([, b]) => b)]) {
    // Reference: packed attention of both sequences.
    const want = await run(
      be,
      { q, k, v, o: new Float32Array(Ntot * qd), lse: new Float32Array(dims.heads * Ntot), starts: Int32Array.from([0, lensKv[0]!, Ntot]) },
      (b, t) => b.attention(F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), I(t, 'starts'), dims, 64),
      ['o'],
    );
    const caches = lensKv.map(() => ({ k: be.empty([dims.kvHeads, maxLen, dims.headDim]), v: be.empty([dims.kvHeads, maxLen, dims.headDim]) }));
    const got = new Float32Array(Ntot * qd);
    for (const step of steps) {
      // This step's rows: sequence 0's chunk, then sequence 1's; q pre-scaled by 1/√hd.
      const n = step[0]![1] + step[1]![1];
      const qs = new Float32Array(n * qd);
      const ks = new Float32Array(n * kd);
      const vs = new Float32Array(n * kd);
      let r = 0;
      const segs = step.map(([p0, m], s) => {
        const src = base[s]! + p0;
        qs.set(q.subarray(src * qd, (src + m) * qd).map((x) => x / Math.sqrt(dims.headDim)), r * qd);
        ks.set(k.subarray(src * kd, (src + m) * kd), r * kd);
        vs.set(v.subarray(src * kd, (src + m) * kd), r * kd);
        const seg = { kc: caches[s]!.k, vc: caches[s]!.v, r0: r, n: m, pos0: p0 };
        r += m;
        return seg;
      });
      const qT = be.upload(qs, [n, qd]);
      const kT = be.upload(ks, [n, kd]);
      const vT = be.upload(vs, [n, kd]);
      const out = be.empty([n, qd]);
      be.kvAppend(kT, vT, segs, dims);
      be.cacheAttention(qT, out, segs, dims, 3);
      const o = await be.read(out);
      step.forEach(([p0, m], s) => got.set(o.subarray(segs[s]!.r0 * qd, (segs[s]!.r0 + m) * qd), (base[s]! + p0) * qd));
      for (const t of [qT, kT, vT, out]) be.free(t);
    }
    assert.ok(relErr(got, want.o!) < 1e-5, `${be.name}: cache attention differs by ${relErr(got, want.o!)}`);
    for (const c of caches) {
      be.free(c.k);
      be.free(c.v);
    }
  }
  const cacheSize = dims.kvHeads * maxLen * dims.headDim;
  await agree(
    'kvAppend + cacheAttention decode step of two sequences',
    { q: f32(2 * qd), k: f32(2 * kd), v: f32(2 * kd), kc0: f32(cacheSize), vc0: f32(cacheSize), kc1: f32(cacheSize), vc1: f32(cacheSize), o: f32(2 * qd) },
    (be, t) => {
      const segs = [
        { kc: F(t, 'kc0'), vc: F(t, 'vc0'), r0: 0, n: 1, pos0: 7 },
        { kc: F(t, 'kc1'), vc: F(t, 'vc1'), r0: 1, n: 1, pos0: 3 },
      ];
      be.kvAppend(F(t, 'k'), F(t, 'v'), segs, dims);
      be.cacheAttention(F(t, 'q'), F(t, 'o'), segs, dims, 4);
    },
    ['o', 'kc0', 'vc1'],
  );
});

test('heads: fused token log-probs / entropy and its backward (rows with zero gradient skipped)', async () => {
  const R = 7;
  const H = 12;
  const V = 37;
  const labels = Int32Array.from([0, 36, 5, 5, 17, 2, 30]);
  for (const chunkRows of [2, 64]) {
    await agree(
      `tokenLogprobs chunk ${chunkRows}`,
      { h: f32(R * H), w: f32(V * H), y: labels, lp: f32(R), lse: f32(R), ent: f32(R) },
      (be, t) => be.tokenLogprobs(F(t, 'h'), F(t, 'w'), I(t, 'y'), F(t, 'lp'), F(t, 'lse'), F(t, 'ent'), V, chunkRows),
      ['lp', 'lse', 'ent'],
    );
    await agree(
      `tokenLogprobsBackward chunk ${chunkRows}`,
      { h: f32(R * H), w: f32(V * H), y: labels, lp: f32(R), lse: f32(R), g: Float32Array.from([1, 0, -2, 0.5, 0, 3, 1]), dh: f32(R * H), dw: f32(V * H) },
      (be, t) => {
        be.tokenLogprobs(F(t, 'h'), F(t, 'w'), I(t, 'y'), F(t, 'lp'), F(t, 'lse'), null, V, chunkRows);
        be.tokenLogprobsBackward(F(t, 'h'), F(t, 'w'), I(t, 'y'), F(t, 'lse'), F(t, 'g'), F(t, 'dh'), F(t, 'dw'), V, chunkRows);
      },
      ['dh', 'dw'],
    );
  }
});

test('optimizer: sumSquares over several tensors, AdamW', async () => {
  await agree('sumSquares', { a: f32(30), b: f32(7), o: f32(1) }, (be, t) => be.sumSquares([F(t, 'a'), F(t, 'b')], F(t, 'o')), ['o']);
  const h = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 0.1 * 0.01, stepSize: 0.1 / (1 - 0.9 ** 3), bc2sqrt: Math.sqrt(1 - 0.999 ** 3) };
  const v = f32(40).map(Math.abs);
  await agree(
    'adamw',
    { p: f32(40), g: f32(40), m: f32(40, 0.1), v },
    (be, t) => be.adamw(F(t, 'p'), F(t, 'g'), F(t, 'm'), F(t, 'v'), h),
    ['p', 'm', 'v'],
  );
  // The reference against the formula, in float64 from the same float32 inputs.
  const p = f32(5);
  const g = f32(5);
  const m = f32(5, 0.1);
  const vv = f32(5).map(Math.abs);
  const out = await run(js, { p, g, m, v: vv }, (be, t) => be.adamw(F(t, 'p'), F(t, 'g'), F(t, 'm'), F(t, 'v'), h), ['p']);
  for (let i = 0; i < 5; i++) {
    const mi = 0.9 * m[i]! + 0.1 * g[i]!;
    const vi = 0.999 * vv[i]! + 0.001 * g[i]! * g[i]!;
    const want = p[i]! * h.decay - (h.stepSize * Math.fround(mi)) / (Math.sqrt(Math.fround(vi)) / h.bc2sqrt + h.eps);
    assert.ok(Math.abs(out.p![i]! - want) < 1e-6, `adamw element ${i}: ${out.p![i]} vs ${want}`);
  }
});

// ---- finite differences of the reference ---------------------------------------------------------------------------

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Checks the gradient `grad` of a scalar objective f at x0 along three random directions:
 * the extrapolated central difference of f along d ≈ grad·d within 1e-3·max(|grad·d|, 1e-2·|grad|·|d|).
 */
async function fd(name: string, f: (x: Float32Array) => Promise<number>, x0: Float32Array, grad: Float32Array, eps = 1e-2): Promise<void> {
  for (let trial = 0; trial < 3; trial++) {
    const d = f32(x0.length);
    const central = async (e: number): Promise<number> =>
      ((await f(x0.map((x, i) => x + e * d[i]!))) - (await f(x0.map((x, i) => x - e * d[i]!)))) / (2 * e);
    // Richardson extrapolation of two central differences cancels the ε² term.
    const num = (4 * (await central(eps / 2)) - (await central(eps))) / 3;
    const ana = dot(grad, d);
    const scale = Math.max(Math.abs(ana), 1e-2 * Math.sqrt(dot(grad, grad) * dot(d, d)), 1e-9);
    assert.ok(Math.abs(num - ana) / scale < 1e-3, `${name}: finite difference ${num} vs backward ${ana}`);
  }
}

/** Σ c·out of a js-backend op whose output `out` depends on the input named `which`. */
function objective(
  inputs: Inputs,
  which: string,
  out: string,
  c: Float32Array,
  op: (be: Backend, t: Tensors) => void,
): (x: Float32Array) => Promise<number> {
  return async (x) => {
    const r = await run(js, { ...inputs, [which]: x }, op, [out]);
    return dot(r[out]!, c);
  };
}

test('finite differences: rmsnorm, swiglu, rope, bias and gather backward ops', async () => {
  const R = 5;
  const C = 8;
  const base = { x: f32(R * C), w: f32(C), y: new Float32Array(R * C), r: new Float32Array(R) };
  const c = f32(R * C);
  const fwd = (be: Backend, t: Tensors): void => be.rmsnorm(F(t, 'x'), F(t, 'w'), F(t, 'y'), F(t, 'r'), C, 1e-6);
  const g = await run(js, { ...base, dy: c, dx: new Float32Array(R * C), dw: new Float32Array(C) }, (be, t) => {
    fwd(be, t);
    be.rmsnormBackward(F(t, 'x'), F(t, 'w'), F(t, 'r'), F(t, 'dy'), F(t, 'dx'), F(t, 'dw'), C);
  }, ['dx', 'dw']);
  await fd('rmsnorm dx', objective(base, 'x', 'y', c, fwd), base.x, g.dx!);
  await fd('rmsnorm dw', objective(base, 'w', 'y', c, fwd), base.w, g.dw!);

  const sw = { g: f32(30, 2), u: f32(30), o: new Float32Array(30) };
  const cs = f32(30);
  const sfwd = (be: Backend, t: Tensors): void => be.swiglu(F(t, 'g'), F(t, 'u'), F(t, 'o'));
  const sg = await run(js, { ...sw, d: cs, dg: new Float32Array(30), du: new Float32Array(30) }, (be, t) =>
    be.swigluBackward(F(t, 'g'), F(t, 'u'), F(t, 'd'), F(t, 'dg'), F(t, 'du')), ['dg', 'du']);
  await fd('swiglu dgate', objective(sw, 'g', 'o', cs, sfwd), sw.g, sg.dg!);
  await fd('swiglu dup', objective(sw, 'u', 'o', cs, sfwd), sw.u, sg.du!);

  const ro = { x: f32(N * qd), o: new Float32Array(N * qd), pos: positions, cos: rt.cos, sin: rt.sin };
  const cr = f32(N * qd);
  const rfwd = (be: Backend, t: Tensors): void => be.rope(F(t, 'x'), F(t, 'o'), I(t, 'pos'), F(t, 'cos'), F(t, 'sin'), dims.heads, dims.headDim, false);
  const rg = await run(js, { ...ro, x: cr }, (be, t) => be.rope(F(t, 'x'), F(t, 'o'), I(t, 'pos'), F(t, 'cos'), F(t, 'sin'), dims.heads, dims.headDim, true), ['o']);
  await fd('rope inverse', objective(ro, 'x', 'o', cr, rfwd), ro.x, rg.o!);

  const bi = { y: f32(6 * 7), b: f32(7) };
  const cb = f32(6 * 7);
  const bg = await run(js, { dy: cb, db: new Float32Array(7) }, (be, t) => be.biasBackward(F(t, 'dy'), F(t, 'db')), ['db']);
  await fd('bias', objective(bi, 'b', 'y', cb, (be, t) => be.addBias(F(t, 'y'), F(t, 'b'))), bi.b, bg.db!);

  const ids = Int32Array.from([3, 0, 3, 5, 1]);
  const ga = { e: f32(6 * 4), ids, o: new Float32Array(5 * 4) };
  const cg = f32(5 * 4);
  const gg = await run(js, { s: cg, ids, d: new Float32Array(6 * 4) }, (be, t) => be.scatterAddRows(F(t, 's'), I(t, 'ids'), F(t, 'd'), 4), ['d']);
  await fd('gather', objective(ga, 'e', 'o', cg, (be, t) => be.gatherRows(F(t, 'e'), I(t, 'ids'), F(t, 'o'), 4)), ga.e, gg.d!);
});

test('finite differences: attention backward (q, k, v) and token log-prob backward (h, w)', async () => {
  const base = attnInputs();
  const c = f32(N * qd);
  const fwd = (be: Backend, t: Tensors): void => be.attention(F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), I(t, 'starts'), dims, 4);
  const g = await run(js, { ...base, dout: c, dq: new Float32Array(N * qd), dk: new Float32Array(N * kd), dv: new Float32Array(N * kd) }, (be, t) => {
    fwd(be, t);
    be.attentionBackward(F(t, 'q'), F(t, 'k'), F(t, 'v'), F(t, 'o'), F(t, 'lse'), F(t, 'dout'), F(t, 'dq'), F(t, 'dk'), F(t, 'dv'), I(t, 'starts'), dims, 4);
  }, ['dq', 'dk', 'dv']);
  for (const [x, gx] of [['q', 'dq'], ['k', 'dk'], ['v', 'dv']] as const) await fd(`attention ${gx}`, objective(base, x, 'o', c, fwd), base[x] as Float32Array, g[gx]!);

  const R = 6;
  const H = 8;
  const V = 23;
  const tl = { h: f32(R * H), w: f32(V * H), y: Int32Array.from([1, 22, 4, 4, 0, 9]), lp: new Float32Array(R), lse: new Float32Array(R) };
  const cg = Float32Array.from([1, -0.5, 0, 2, 0.25, -1]);
  const tfwd = (be: Backend, t: Tensors): void => be.tokenLogprobs(F(t, 'h'), F(t, 'w'), I(t, 'y'), F(t, 'lp'), F(t, 'lse'), null, V, 4);
  const tg = await run(js, { ...tl, g: cg, dh: new Float32Array(R * H), dw: new Float32Array(V * H) }, (be, t) => {
    tfwd(be, t);
    be.tokenLogprobsBackward(F(t, 'h'), F(t, 'w'), I(t, 'y'), F(t, 'lse'), F(t, 'g'), F(t, 'dh'), F(t, 'dw'), V, 4);
  }, ['dh', 'dw']);
  await fd('tokenLogprobs dh', objective(tl, 'h', 'lp', cg, tfwd), tl.h, tg.dh!);
  await fd('tokenLogprobs dw', objective(tl, 'w', 'lp', cg, tfwd), tl.w, tg.dw!);
});

test('sampling: sampleTokens gives the seeded reference sampler’s tokens on every backend', async () => {
  const M = 12;
  const V = 50;
  const logits = f32(M * V, 4);
  const kinds: SamplerSettings[] = [
    { temperature: 0, topP: 1, topK: 0 },
    { temperature: 1, topP: 1, topK: 0 },
    { temperature: 0.7, topP: 1, topK: 5 },
    { temperature: 1.3, topP: 0.9, topK: 0 },
    { temperature: 0.5, topP: 0.8, topK: 10 },
    { temperature: 1, topP: 1, topK: 1 },
  ];
  const settings = Array.from({ length: M }, (_, r) => kinds[r % kinds.length]!);
  const ref = new TokenSampler(V);
  const want = settings.map((s, r) => ref.sample(logits.subarray(r * V, (r + 1) * V), s, new Rng(77, r)));
  const uniforms = settings.map((s, r) => (s.temperature === 0 ? Number.NaN : new Rng(77, r).nextDouble()));
  for (const be of [js, ...fast.map(([, b]) => b)]) {
    const z = be.upload(logits, [M, V]);
    const ids = be.empty([M], 'i32');
    const lp = be.empty([M]);
    be.sampleTokens(z, V, settings, uniforms, ids, lp);
    const got = await be.read(ids);
    const glp = await be.read(lp);
    assert.deepEqual(Array.from(got), want.map((w) => w.token), `${be.name}: tokens`);
    for (let r = 0; r < M; r++) assert.ok(Math.abs(glp[r]! - want[r]!.logprob) < 1e-5, `${be.name}: logprob ${r}`);
    be.fill(ids, -1);
    be.sampleTokens(z, V, settings, uniforms, ids, null);
    assert.deepEqual(Array.from(await be.read(ids)), want.map((w) => w.token), `${be.name}: tokens without log-probs`);
    for (const t of [z, ids, lp]) be.free(t);
  }
  assert.ok(new Set(want.map((w) => w.token)).size > 3, 'the draws are not all the same token');
});
