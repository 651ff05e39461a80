// The optional OpenBLAS backend (native/oreal_blas.c via build/Release/oreal_blas.node) against the plain-JS
// references: GEMM in every transpose/accumulate combination on odd shapes and on subarray views, the row kernels, and
// a Qwen2 forward+backward against the JS backend.
//
// When the addon is not built the tests are skipped with the reason, unless OREAL_REQUIRE_BLAS=1 (CI sets it after
// installing libopenblas-dev): then they fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels } from '../src/engine/js-backend.js';
import { blasAvailable, createBlasBackend, type BlasBackend } from '../src/engine/blas-backend.js';
import { createBackend, CpuBackend } from '../src/engine/index.js';
import { jsRowKernels, ropeTables } from '../src/engine/kernels.js';
import { Qwen2Model, crossEntropyLoss, type Qwen2Config } from '../src/model/qwen2.js';
import { relErr, seededFloats } from './helpers/numeric.js';

const required = process.env.OREAL_REQUIRE_BLAS === '1';
const NOT_BUILT =
  'BLAS addon not built (build/Release/oreal_blas.node missing: apt-get install -y libopenblas-dev && npm run build:native)';

/** The backend, or null after skipping (or failing, when OREAL_REQUIRE_BLAS=1) the test. */
function blasOrSkip(t: { skip: (msg: string) => void }, threads = 2): BlasBackend | null {
  if (!blasAvailable()) {
    if (required) assert.fail(`OREAL_REQUIRE_BLAS=1 but the ${NOT_BUILT}`);
    t.skip(NOT_BUILT);
    return null;
  }
  return createBlasBackend({ threads });
}

const js = createJsKernels();
const { fill } = seededFloats(4242);

test('blas: availability is reported clearly', (t) => {
  if (blasAvailable()) {
    const b = createBackend('blas', { threads: 1 });
    assert.equal(b.name, 'blas');
    t.diagnostic(`OpenBLAS core: ${((b as CpuBackend).kernels as BlasBackend).coreName}, threads ${b.threads}`);
    b.dispose();
  } else {
    if (required) assert.fail(`OREAL_REQUIRE_BLAS=1 but the ${NOT_BUILT}`);
    assert.throws(() => createBackend('blas'), /BLAS backend not built.*libopenblas-dev/);
    t.skip(NOT_BUILT);
  }
});

test('blas gemm matches the JS reference: all transposes, accumulate, odd shapes, views, 1 and 2 threads', (t) => {
  for (const threads of [1, 2]) {
    const be = blasOrSkip(t, threads);
    if (!be) return;
    const shapes: Array<[number, number, number]> = [
      [1, 1, 1],
      [3, 5, 7],
      [17, 33, 9],
      [64, 64, 64],
      [129, 70, 257],
      [8, 300, 100],
      [5, 0, 4],
      [4, 6, 0],
    ];
    for (const [M, N, K] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          for (const acc of [false, true]) {
            // Views with non-zero offsets into larger arrays.
            const A = fill(new Float32Array(M * K + 3)).subarray(3);
            const B = fill(new Float32Array(K * N + 5)).subarray(5);
            const C0 = fill(new Float32Array(M * N + 1)).subarray(1);
            const want = C0.slice();
            const got = C0.slice();
            js.gemm(ta, tb, M, N, K, A, B, want, acc);
            be.gemm(ta, tb, M, N, K, A, B, got, acc);
            const e = relErr(got, want);
            assert.ok(e < 1e-5, `M=${M} N=${N} K=${K} ta=${ta} tb=${tb} acc=${acc} threads=${threads}: err ${e}`);
          }
        }
      }
    }
    assert.throws(() => be.gemm(false, false, 4, 4, 4, new Float32Array(15), new Float32Array(16), new Float32Array(16), false), RangeError);
    be.dispose();
  }
});

test('blas row kernels match the JS references', (t) => {
  const be = blasOrSkip(t);
  if (!be) return;
  const rows = 7;
  const cols = 37;
  const n = rows * cols;
  const x = fill(new Float32Array(n));
  const w = fill(new Float32Array(cols));
  const dy = fill(new Float32Array(n));
  const pair = (f: (k: typeof jsRowKernels, outs: Float32Array[]) => void, sizes: number[]): void => {
    const a = sizes.map((s) => new Float32Array(s));
    const b = sizes.map((s) => new Float32Array(s));
    f(jsRowKernels, a);
    f(be, b);
    for (let i = 0; i < a.length; i++) assert.ok(relErr(b[i]!, a[i]!) < 2e-6, `output ${i}: ${relErr(b[i]!, a[i]!)}`);
  };
  const xm = x.slice();
  xm[3] = -Infinity;
  pair((k, [y]) => k.softmaxRows(xm, y!, rows, cols), [n]);
  pair((k, [dx]) => k.softmaxBackwardRows(x, dy, dx!, rows, cols), [n]);
  pair((k, [y, r]) => k.rmsnormForward(x, w, y!, r!, rows, cols, 1e-6), [n, rows]);
  const rstd = new Float32Array(rows);
  jsRowKernels.rmsnormForward(x, w, new Float32Array(n), rstd, rows, cols, 1e-6);
  pair((k, [dx, dw]) => k.rmsnormBackward(x, w, rstd, dy, dx!, dw!, rows, cols), [n, cols]);
  pair((k, [o]) => k.swigluForward(x, dy, o!, n), [n]);
  const up = fill(new Float32Array(n));
  pair((k, [dg, du]) => k.swigluBackward(x, up, dy, dg!, du!, n), [n, n]);
  const T = 5;
  const H = 3;
  const D = 8;
  const { cos, sin } = ropeTables(16, D, 10000);
  const pos = Int32Array.of(0, 3, 7, 15, 2);
  const xr = fill(new Float32Array(T * H * D));
  for (const inv of [false, true]) pair((k, [o]) => k.rope(xr, o!, T, H, D, pos, cos, sin, inv), [T * H * D]);
  pair((k, [o]) => k.add(x, dy, o!, n), [n]);
  pair((k, [y]) => {
    y!.set(dy);
    k.axpy(0.37, x, y!, n);
  }, [n]);
  be.dispose();
});

test('Qwen2 forward+backward on blas matches the JS backend', async (t) => {
  const be = blasOrSkip(t);
  if (!be) return;
  const cfg: Qwen2Config = {
    vocabSize: 61,
    hiddenSize: 32,
    intermediateSize: 48,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: true,
    head: 'lm',
  };
  const ids = Int32Array.from({ length: 3 * 11 }, (_, i) => (i * 17 + 5) % 61);
  const lengths = Int32Array.of(11, 7, 9);
  const ref = Qwen2Model.random(cfg, new CpuBackend(js), 3, 0.3);
  const m = Qwen2Model.random(cfg, new CpuBackend(be), 3, 0.3);
  const l0 = (await crossEntropyLoss(ref, ids, lengths)).loss;
  const l1 = (await crossEntropyLoss(m, ids, lengths)).loss;
  assert.ok(Math.abs(l0 - l1) < 1e-5 * Math.abs(l0), `loss ${l1} vs ${l0}`);
  const g0 = await ref.gradNorms();
  const g1 = await m.gradNorms();
  for (const k of Object.keys(g0)) assert.ok(Math.abs(g0[k]! - g1[k]!) <= 1e-4 * (g0[k]! + 1e-6), `${k}: ${g1[k]} vs ${g0[k]}`);
  m.dispose();
  be.dispose();
});
