// The wasm backend's dynamically scheduled tile jobs (src/engine/wasm-tiles.ts) and its relaxed-SIMD kernels: threaded
// GEMMs and row kernels at sizes that take the tiled paths, against the plain-JS references; many back-to-back jobs
// (claim-protocol races); the tile grid; plain and relaxed kernels agree.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels } from '../src/engine/js-backend.js';
import { createWasmBackend, gemmTiles, type WasmBackend } from '../src/engine/wasm-backend.js';
import { jsRowKernels, ropeTables } from '../src/engine/kernels.js';
import { relErr, seededFloats } from './helpers/numeric.js';

const js = createJsKernels();
const wasm2 = createWasmBackend({ threads: 2 });
const wasm3 = createWasmBackend({ threads: 3, parallelThreshold: 1 });
const plain = createWasmBackend({ threads: 2, relaxedSimd: false });
after(() => {
  wasm2.dispose();
  wasm3.dispose();
  plain.dispose();
});

const { fill } = seededFloats(99);

test('gemmTiles: tiles are aligned and cover the product', () => {
  for (const [M, N, K, t] of [
    [1024, 1024, 256, 2],
    [256, 1024, 1024, 2],
    [33, 1000, 70, 4],
    [1000, 9, 50, 3],
  ] as const) {
    const [tm, tn] = gemmTiles(M, N, K, t);
    assert.ok(tm % 4 === 0 || tm >= M, `tileM ${tm}`);
    assert.ok(tn % 8 === 0 || tn >= N, `tileN ${tn}`);
    const tiles = Math.ceil(M / tm) * Math.ceil(N / tn);
    assert.ok(tiles >= 1 && tiles <= 8 * t, `${tiles} tiles for ${M}x${N}x${K} on ${t}`);
  }
});

test('threaded (tiled) GEMM matches the JS reference, in and out of wasm memory', () => {
  const shapes: Array<[number, number, number]> = [
    [200, 300, 150],
    [129, 257, 65],
    [8, 2000, 600], // small-M path, split in column strips
    [13, 777, 333],
  ];
  for (const be of [wasm2, wasm3, plain]) {
    for (const [M, N, K] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          for (const acc of [false, true]) {
            const inside = (ta ? 1 : 0) + (tb ? 2 : 0) === 1;
            const mk = (n: number): Float32Array => (inside ? fill(be.alloc(n)) : fill(new Float32Array(n)));
            const A = mk(M * K);
            const B = mk(K * N);
            const C = mk(M * N);
            const want = C.slice();
            js.gemm(ta, tb, M, N, K, A, B, want, acc);
            be.gemm(ta, tb, M, N, K, A, B, C, acc);
            const e = relErr(C, want);
            assert.ok(e < 2e-5, `${be.threads} threads M=${M} N=${N} K=${K} ta=${ta} tb=${tb} acc=${acc}: ${e}`);
            if (inside) for (const a of [C, B, A]) be.free(a);
          }
        }
      }
    }
  }
});

test('many back-to-back tiled jobs stay correct (claim protocol)', () => {
  const M = 64;
  const N = 96;
  const K = 40;
  const A = fill(wasm3.alloc(M * K));
  const B = fill(wasm3.alloc(K * N));
  const want = new Float32Array(M * N);
  js.gemm(false, false, M, N, K, A, B, want, false);
  const C = wasm3.alloc(M * N);
  const x = fill(wasm3.alloc(70_000));
  const y = fill(wasm3.alloc(70_000));
  const sum = new Float32Array(70_000);
  jsRowKernels.add(x, y, sum, 70_000);
  const out = wasm3.alloc(70_000);
  for (let i = 0; i < 400; i++) {
    C.fill(Number.NaN);
    wasm3.gemm(false, false, M, N, K, A, B, C, false);
    if (i % 7 === 0) assert.ok(relErr(C, want) < 1e-5, `iteration ${i}`);
    wasm3.add(x, y, out, 70_000);
    if (i % 13 === 0) assert.ok(relErr(out, sum) === 0, `add iteration ${i}`);
  }
  assert.ok(relErr(C, want) < 1e-5);
});

test('threaded row kernels (tiled) match the JS references', () => {
  for (const be of [wasm2, wasm3]) {
    const n = 100_003;
    const g = fill(be.alloc(n));
    const u = fill(be.alloc(n));
    const d = fill(be.alloc(n));
    const pair = (f: (k: typeof jsRowKernels, outs: Float32Array[]) => void, sizes: number[], tol = 2e-6): void => {
      const a = sizes.map((s) => new Float32Array(s));
      const b = sizes.map((s) => be.alloc(s));
      f(jsRowKernels, a);
      f(be, b);
      for (let i = 0; i < a.length; i++) assert.ok(relErr(b[i]!, a[i]!) < tol, `${be.threads} threads, output ${i}: ${relErr(b[i]!, a[i]!)}`);
    };
    pair((k, [o]) => k.swigluForward(g, u, o!, n), [n]);
    pair((k, [dg, du]) => k.swigluBackward(g, u, d, dg!, du!, n), [n, n]);
    pair((k, [o]) => k.add(g, u, o!, n), [n]);
    const rows = 501;
    const cols = 130;
    const x = fill(be.alloc(rows * cols));
    const w = fill(be.alloc(cols));
    pair((k, [y, r]) => k.rmsnormForward(x, w, y!, r!, rows, cols, 1e-6), [rows * cols, rows]);
    pair((k, [y]) => k.softmaxRows(x, y!, rows, cols), [rows * cols]);
    const T = 333;
    const H = 3;
    const D = 64;
    const { cos, sin } = ropeTables(400, D, 1e6);
    const pos = Int32Array.from({ length: T }, (_, i) => (i * 7) % 400);
    const xr = fill(be.alloc(T * H * D));
    for (const inv of [false, true]) pair((k, [o]) => k.rope(xr, o!, T, H, D, pos, cos, sin, inv), [T * H * D]);
  }
});

test('relaxed-SIMD and plain kernels agree (or relaxed is off)', (t) => {
  const relaxed: WasmBackend = wasm2;
  t.diagnostic(`relaxed SIMD in use: ${relaxed.relaxedSimd}`);
  assert.equal(plain.relaxedSimd, false);
  const M = 150;
  const N = 170;
  const K = 190;
  const A = fill(new Float32Array(M * K));
  const B = fill(new Float32Array(K * N));
  const c1 = new Float32Array(M * N);
  const c2 = new Float32Array(M * N);
  relaxed.gemm(false, true, M, N, K, A, B, c1, false);
  plain.gemm(false, true, M, N, K, A, B, c2, false);
  assert.ok(relErr(c1, c2) < 1e-5);
});
