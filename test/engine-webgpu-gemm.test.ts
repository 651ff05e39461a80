// The WebGPU GEMM against the plain-JS reference, on whatever adapter Dawn finds (lavapipe in CI: slow, exact enough).
// Fails loudly when there is no adapter: CI installs one (see .ci/run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels } from '../src/engine/js-backend.js';
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGpuGemm, kSplitOf, type GemmVariant } from '../src/engine/webgpu/gemm.js';
import { relErr, seededFloats } from './helpers/numeric.js';

const js = createJsKernels();

test('webgpu gemm matches the js reference: every transpose, ragged tiles, offsets, accumulate', async () => {
  const dev = await WebGpuDevice.open();
  try {
    process.stdout.write(`# adapter: ${dev.adapterName}\n`);
    const gemm = new WebGpuGemm(dev);
    const { fill } = seededFloats(11);
    const shapes: Array<[number, number, number]> = [
      [1, 1, 1],
      [3, 5, 7],
      [37, 53, 29],
      [128, 128, 16],
      [130, 129, 33],
      [64, 200, 96],
      [257, 17, 140],
    ];
    let worst = 0;
    for (const [M, N, K] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const accumulate of [false, true]) {
            const offA = 3;
            const offB = 5;
            const offC = 7;
            const A = fill(new Float32Array(offA + M * K));
            const B = fill(new Float32Array(offB + K * N));
            const C0 = fill(new Float32Array(offC + M * N));
            const want = C0.slice();
            js.gemm(transA, transB, M, N, K, A.subarray(offA), B.subarray(offB), want.subarray(offC), accumulate);
            const bA = dev.createBuffer(A.length, A);
            const bB = dev.createBuffer(B.length, B);
            const bC = dev.createBuffer(C0.length, C0);
            gemm.encode({ transA, transB, M, N, K, A: bA, B: bB, C: bC, offA, offB, offC, accumulate });
            const got = await dev.read(bC, C0.length);
            const label = `M${M} N${N} K${K} tA${+transA} tB${+transB} acc${+accumulate}`;
            assert.deepEqual(got.subarray(0, offC), C0.subarray(0, offC), `${label}: wrote before its offset`);
            const e = relErr(got.subarray(offC), want.subarray(offC));
            worst = Math.max(worst, e);
            assert.ok(e < 1e-5, `${label}: relative error ${e.toExponential(2)}`);
            for (const b of [bA, bB, bC]) b.destroy();
          }
        }
      }
    }
    process.stdout.write(`# worst relative error ${worst.toExponential(2)}\n`);
  } finally {
    dev.dispose();
  }
});

test('every webgpu gemm variant (K slice 8/16/32, vec4 loads, tiles) matches the js reference, aligned and not', async () => {
  const dev = await WebGpuDevice.open();
  try {
    const { fill } = seededFloats(12);
    const variants: Array<Partial<GemmVariant>> = [
      { bk: 8 },
      { bk: 32 },
      { vec4Loads: 'auto' },
      { bk: 32, vec4Loads: 'auto' },
      // Other tiles: fewer rows or columns per thread, and a staging loop with idle threads (bk 8 on 64×64: 128 vec4s
      // for 256 threads).
      { tile: { bm: 128, bn: 64, tm: 8, tn: 4 } },
      { tile: { bm: 64, bn: 128, tm: 4, tn: 8 }, vec4Loads: 'auto' },
      { bk: 8, tile: { bm: 64, bn: 64, tm: 4, tn: 4 }, splitK: 2 },
      { unrollK: true },
      // The default tile for every M (the other variants take 32- or 64-row tiles when M is at most 32 or 64).
      { smallM: false },
    ];
    const cases: Array<[number, number, number, number, number, number]> = [
      // M, N, K, offA, offB, offC: aligned shapes and offsets take the vec4 path, the others the scalar one
      [64, 128, 32, 0, 4, 0],
      [37, 53, 29, 3, 5, 7],
      // M past 64: the variant's own tile (smaller M takes a 32- or 64-row one)
      [130, 70, 40, 3, 5, 7],
    ];
    // (false, true) and (true, false) give each operand both its contiguous and its strided staging; fewer pipelines
    // keep this fast on lavapipe, whose shader compiles dominate.
    const transposes: Array<[boolean, boolean]> = [[false, true], [true, false]];
    for (const v of variants) {
      const gemm = new WebGpuGemm(dev, v);
      for (const [M, N, K, offA, offB, offC] of cases) {
        for (const [transA, transB] of transposes) {
          const A = fill(new Float32Array(offA + M * K));
          const B = fill(new Float32Array(offB + K * N));
          const C0 = fill(new Float32Array(offC + M * N));
          const want = C0.slice();
          js.gemm(transA, transB, M, N, K, A.subarray(offA), B.subarray(offB), want.subarray(offC), true);
          const bufs = [dev.createBuffer(A.length, A), dev.createBuffer(B.length, B), dev.createBuffer(C0.length, C0)] as const;
          gemm.encode({ transA, transB, M, N, K, A: bufs[0], B: bufs[1], C: bufs[2], offA, offB, offC, accumulate: true });
          const got = await dev.read(bufs[2], C0.length);
          const e = relErr(got.subarray(offC), want.subarray(offC));
          assert.ok(e < 1e-5, `${JSON.stringify(v)} M${M} N${N} K${K} tA${+transA} tB${+transB}: relative error ${e.toExponential(2)}`);
          for (const b of bufs) b.destroy();
        }
      }
    }
  } finally {
    dev.dispose();
  }
});

test('split-K: skinny, long-K GEMMs are split by shape alone, into slices that cover K once', () => {
  const cap = 1 << 24;
  // A 0.5B step: the q/o weight gradient (C 896×896, K = 8,192 tokens) and k/v's (128×896) are split; the forward's
  // [8192, 896] outputs are not (448 tiles fill the GPU).
  assert.deepEqual(kSplitOf(896, 896, 8192, 16, 'auto', cap), { S: 6, kChunk: 1376 });
  assert.deepEqual(kSplitOf(128, 896, 8192, 16, 'auto', cap), { S: 16, kChunk: 512 });
  assert.equal(kSplitOf(8192, 896, 896, 16, 'auto', cap).S, 1);
  // A batch-64 decode step: [64, 896] outputs over K = 896 and 4,864.
  assert.deepEqual(kSplitOf(64, 896, 896, 16, 'auto', cap), { S: 7, kChunk: 128 });
  assert.deepEqual(kSplitOf(64, 896, 4864, 16, 'auto', cap), { S: 16, kChunk: 304 });
  // Short K, 'off', and a scratch cap too small for two partial products: no split.
  assert.equal(kSplitOf(64, 64, 200, 16, 'auto', cap).S, 1);
  assert.equal(kSplitOf(896, 896, 8192, 16, 'off', cap).S, 1);
  assert.equal(kSplitOf(896, 896, 8192, 16, 'auto', 896 * 896 * 2 - 1).S, 1);
  for (const [M, N, K, bk, mode] of [[37, 53, 29, 16, 5], [3, 5, 1000, 8, 'auto'], [130, 129, 33, 32, 3], [7, 9, 48, 16, 100]] as const) {
    const { S, kChunk } = kSplitOf(M, N, K, bk, mode, cap);
    assert.ok(S >= 1 && kChunk % bk === 0 && S * kChunk >= K && (S - 1) * kChunk < K, `M${M} N${N} K${K} ${mode}: S ${S}, chunk ${kChunk}`);
  }
  assert.throws(() => kSplitOf(4, 4, 64, 16, 0, cap), /splitK 0 is not/);
});

test('split-K webgpu gemm matches the js reference: every transpose, ragged slices, accumulate, an operand in C\'s buffer', async () => {
  const dev = await WebGpuDevice.open();
  try {
    const { fill } = seededFloats(13);
    const passes: string[] = [];
    const dispatch = dev.dispatch.bind(dev);
    dev.dispatch = (label, ...rest) => (passes.push(label), dispatch(label, ...rest));
    // [M, N, K, variant]: forced splits of ragged K (the last slice short, or K not a multiple of the K step), and an
    // automatic one (one tile, K = 1,000: 7 slices).
    const cases: Array<[number, number, number, Partial<GemmVariant>]> = [
      [37, 53, 29, { splitK: 2 }],
      [130, 129, 100, { splitK: 3 }],
      [5, 200, 333, { splitK: 5, bk: 8 }],
      [64, 96, 1000, {}],
    ];
    for (const [M, N, K, v] of cases) {
      const gemm = new WebGpuGemm(dev, v);
      const S = gemm.splitOf(M, N, K).S;
      assert.ok(S > 1, `M${M} N${N} K${K} ${JSON.stringify(v)} is split`);
      for (const transA of [false, true])
        for (const transB of [false, true])
          for (const accumulate of [false, true]) {
            const label = `M${M} N${N} K${K} S${S} tA${+transA} tB${+transB} acc${+accumulate}`;
            const [offA, offB, offC] = [3, 5, 7];
            const A = fill(new Float32Array(offA + M * K));
            const B = fill(new Float32Array(offB + K * N));
            const C0 = fill(new Float32Array(offC + M * N + 4));
            const want = C0.slice();
            js.gemm(transA, transB, M, N, K, A.subarray(offA), B.subarray(offB), want.subarray(offC, offC + M * N), accumulate);
            const bufs = [dev.createBuffer(A.length, A), dev.createBuffer(B.length, B), dev.createBuffer(C0.length, C0)] as const;
            passes.length = 0;
            gemm.encode({ transA, transB, M, N, K, A: bufs[0], B: bufs[1], C: bufs[2], offA, offB, offC, accumulate });
            assert.deepEqual(passes, [`matmul ${+transA}${+transB}`, 'matmul reduce'], label);
            const got = await dev.read(bufs[2], C0.length);
            assert.deepEqual(got.subarray(0, offC), C0.subarray(0, offC), `${label}: wrote before its offset`);
            assert.deepEqual(got.subarray(offC + M * N), C0.subarray(offC + M * N), `${label}: wrote past its end`);
            const e = relErr(got.subarray(offC, offC + M * N), want.subarray(offC, offC + M * N));
            assert.ok(e < 1e-5, `${label}: relative error ${e.toExponential(2)}`);
            for (const b of bufs) b.destroy();
          }
    }
    // A and C views of one buffer (the model's in-place residual updates read and write one workspace).
    const [M, N, K] = [40, 24, 600];
    const gemm = new WebGpuGemm(dev, { splitK: 4 });
    const flat = fill(new Float32Array(M * K + M * N));
    const B = fill(new Float32Array(K * N));
    const want = flat.slice();
    js.gemm(false, false, M, N, K, flat.subarray(0, M * K), B, want.subarray(M * K), true);
    const [bFlat, bB] = [dev.createBuffer(flat.length, flat), dev.createBuffer(B.length, B)];
    gemm.encode({ transA: false, transB: false, M, N, K, A: bFlat, B: bB, C: bFlat, offA: 0, offC: M * K, accumulate: true });
    const got = await dev.read(bFlat, flat.length);
    assert.deepEqual(got.subarray(0, M * K), flat.subarray(0, M * K), 'A untouched');
    const e = relErr(got.subarray(M * K), want.subarray(M * K));
    assert.ok(e < 1e-5, `A in C's buffer: relative error ${e.toExponential(2)}`);
  } finally {
    dev.dispose();
  }
});

test('webgpu gemm refuses sizes its buffers cannot hold, and tiles the adapter cannot run', async () => {
  const dev = await WebGpuDevice.open();
  try {
    assert.throws(() => new WebGpuGemm(dev, { tile: { bm: 100, bn: 64, tm: 8, tn: 4 } }), /tile 100×64 is not a multiple of 8×4/);
    assert.throws(() => new WebGpuGemm(dev, { tile: { bm: 1024, bn: 1024, tm: 4, tn: 4 } }), /needs 65536 threads a workgroup/);
    const gemm = new WebGpuGemm(dev);
    assert.deepEqual([1, 32, 33, 64, 65].map((M) => gemm.tileFor(M).bm), [32, 32, 64, 64, 128]);
    assert.equal(new WebGpuGemm(dev, { smallM: false }).tileFor(8).bm, 128);
    const b = dev.createBuffer(16);
    assert.throws(() => gemm.encode({ transA: false, transB: false, M: 4, N: 4, K: 4, A: b, B: b, C: b, offC: 8, accumulate: false }), /C needs 24 floats from its buffer, which holds 16/);
    b.destroy();
  } finally {
    dev.dispose();
  }
});
