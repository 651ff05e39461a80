// The WebGPU GEMM against the plain-JS reference, on whatever adapter Dawn finds (lavapipe in CI: slow, exact enough).
// Fails loudly when there is no adapter: CI installs one (see .ci/run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/engine/js-backend.js';
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGpuGemm } from '../src/engine/webgpu/gemm.js';
import { relErr, seededFloats } from './helpers/numeric.js';

const js = createJsBackend();

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
