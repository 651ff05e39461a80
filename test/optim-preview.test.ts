// AdamW.preview measures an update without applying it (the backend's adamwPreview op): its norms match what step()
// then does, and it leaves weights and moments untouched (the divergence guard refuses an update by not taking it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/engine/js-backend.js';
import { hostView } from '../src/engine/cpu-backend.js';
import type { F32 } from '../src/engine/tensor.js';
import { AdamW } from '../src/train/optim.js';
import { seededFloats } from './helpers/numeric.js';

const be = createJsBackend();

test('preview leaves state untouched and predicts the step exactly', async () => {
  const { fill } = seededFloats(7);
  const params = new Map<string, F32>([['a', be.upload(fill(new Float32Array(50)))], ['b', be.upload(fill(new Float32Array(13)))]]);
  const grads = new Map<string, F32>([['a', be.upload(fill(new Float32Array(50)))], ['b', be.upload(fill(new Float32Array(13)))]]);
  const opt = new AdamW(be, params, { lr: 1e-2, weightDecay: 0.1 });
  opt.step(grads, 1e-2); // non-zero moments
  const before = new Map([...params].map(([k, v]) => [k, hostView(be, v).slice()]));
  const mom = await opt.exportState();
  const pv = await opt.preview(grads, 3e-2);
  for (const [k, v] of params) assert.deepEqual(hostView(be, v), before.get(k), `${k} written by preview`);
  assert.deepEqual(await opt.exportState(), mom);
  opt.step(grads, 3e-2);
  let du2 = 0;
  let p2 = 0;
  for (const [k, v] of params) {
    const now = hostView(be, v);
    const b = before.get(k)!;
    for (let i = 0; i < now.length; i++) {
      du2 += (now[i]! - b[i]!) ** 2;
      p2 += b[i]! ** 2;
    }
  }
  assert.equal(pv.finite, true);
  // The op accumulates its two sums into an f32 tensor: agreement to f32 rounding.
  assert.ok(Math.abs(pv.update - Math.sqrt(du2)) <= 1e-6 * Math.sqrt(du2));
  assert.ok(Math.abs(pv.param - Math.sqrt(p2)) <= 1e-6 * Math.sqrt(p2));
  assert.ok(pv.update < pv.param);
});

test('an absurd learning rate previews as exploding, a non-finite gradient as non-finite', async () => {
  const { fill } = seededFloats(8);
  const params = new Map<string, F32>([['w', be.upload(fill(new Float32Array(20)))]]);
  const opt = new AdamW(be, params, { lr: 1 });
  const big = await opt.preview(new Map([['w', be.upload(fill(new Float32Array(20)))]]), 1e9);
  assert.ok(big.finite && big.update > 1e6 * big.param);
  const g = fill(new Float32Array(20));
  g[3] = NaN;
  assert.equal((await opt.preview(new Map([['w', be.upload(g)]]), 1e-3)).finite, false);
});
