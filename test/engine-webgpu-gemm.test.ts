// The WebGPU GEMM against the plain-JS reference, on whatever adapter Dawn finds (lavapipe in CI: slow, exact enough).
// Fails loudly when there is no adapter: CI installs one (see .ci/run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsKernels } from '../src/engine/js-backend.js';
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGpuGemm, type GemmVariant } from '../src/engine/webgpu/gemm.js';
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

test('every webgpu gemm variant (K slice 8/16/32, vec4 loads) matches the js reference, aligned and not', async () => {
  const dev = await WebGpuDevice.open();
  try {
    const { fill } = seededFloats(12);
    const variants: Array<Partial<GemmVariant>> = [{ bk: 8 }, { bk: 32 }, { vec4Loads: 'auto' }, { bk: 32, vec4Loads: 'auto' }];
    const cases: Array<[number, number, number, number, number, number]> = [
      // M, N, K, offA, offB, offC: aligned shapes and offsets take the vec4 path, the others the scalar one
      [64, 128, 32, 0, 4, 0],
      [37, 53, 29, 3, 5, 7],
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

test('webgpu gemm refuses sizes its buffers cannot hold', async () => {
  const dev = await WebGpuDevice.open();
  try {
    const gemm = new WebGpuGemm(dev);
    const b = dev.createBuffer(16);
    assert.throws(() => gemm.encode({ transA: false, transB: false, M: 4, N: 4, K: 4, A: b, B: b, C: b, offC: 8, accumulate: false }), /C needs 24 floats from its buffer, which holds 16/);
    b.destroy();
  } finally {
    dev.dispose();
  }
});
