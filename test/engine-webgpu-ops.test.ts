// The WebGPU kernels written so far (src/engine/webgpu/ops.ts) against the js backend, the reference of the engine
// contract: the same op on the same numbers, 1e-5 relative (float32 on both sides; exp and sqrt differ in the last
// bits). Includes tensors that share a buffer (views, in-place outputs), which the kernels must bind once.
// Runs on whatever adapter Dawn finds (lavapipe in CI) and fails loudly when there is none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/engine/js-backend.js';
import { hostView } from '../src/engine/cpu-backend.js';
import type { F32, I32 } from '../src/engine/tensor.js';
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGpuBackend } from '../src/engine/webgpu/ops.js';
import { relErr, seededFloats } from './helpers/numeric.js';
import { TokenSampler, type SamplerSettings } from '../src/engine/sampling.js';

const js = createJsBackend();
const { fill } = seededFloats(21);
const rand = (n: number): Float32Array => fill(new Float32Array(n));

async function withOps(f: (g: WebGpuBackend) => Promise<void>, maxBindingBytes?: number): Promise<void> {
  const dev = await WebGpuDevice.open();
  try {
    await f(new WebGpuBackend(dev, { maxBindingBytes }));
  } finally {
    dev.dispose();
  }
}

/** Runs `op` on both backends from the same host inputs; compares every tensor afterwards (but `undefinedAfter`). */
async function same(
  g: WebGpuBackend,
  label: string,
  inputs: Array<Float32Array | Int32Array>,
  op: (b: 'js' | 'gpu', t: Array<F32 | I32>) => void,
  undefinedAfter: readonly number[] = [],
): Promise<void> {
  const tj = inputs.map((d) => js.upload(d as Float32Array)) as Array<F32 | I32>;
  const tg = inputs.map((d) => g.upload(d)) as Array<F32 | I32>;
  op('js', tj);
  op('gpu', tg);
  for (let i = 0; i < inputs.length; i++) {
    if (undefinedAfter.includes(i)) continue;
    const want = hostView(js, tj[i] as F32);
    const got = await g.read(tg[i]!);
    if (inputs[i] instanceof Int32Array) assert.deepEqual(Array.from(got), Array.from(want), `${label}: tensor ${i}`);
    else {
      const e = relErr(got as Float32Array, want as Float32Array);
      assert.ok(e < 1e-5, `${label}: tensor ${i} relative error ${e.toExponential(2)}`);
    }
  }
}

test('webgpu memory ops: upload, read, write at an offset, views, copy, fill', async () => {
  await withOps(async (g) => {
    const a = g.upload(Float32Array.from([1, 2, 3, 4, 5, 6]));
    g.write(a, [9, 8], 2);
    assert.deepEqual(Array.from(await g.read(a)), [1, 2, 9, 8, 5, 6]);
    const v = g.view(a, 3, [2]);
    assert.deepEqual(Array.from(await g.read(v)), [8, 5]);
    g.fill(v, 7);
    assert.deepEqual(Array.from(await g.read(a)), [1, 2, 9, 7, 7, 6]);
    const b = g.empty([2]);
    g.copy(g.view(a, 0, [2]), b);
    assert.deepEqual(Array.from(await g.read(b)), [1, 2]);
    const ids = g.upload(Int32Array.from([3, -1, 7]));
    g.fill(g.view(ids, 1, [1]), 5);
    assert.deepEqual(Array.from(await g.read(ids)), [3, 5, 7]);
    assert.throws(() => g.view(a, 5, [2]), /outside a tensor of 6/);
    assert.throws(() => g.free(v), /a view cannot be freed/);
  });
});

test('webgpu elementwise, bias and row ops match the js backend', async () => {
  await withOps(async (g) => {
    const R = 37;
    const D = 29;
    await same(g, 'add', [rand(R * D), rand(R * D), rand(R * D)], (b, [x, y, o]) => (b === 'js' ? js : g).add(x as F32, y as F32, o as F32));
    await same(g, 'add in place', [rand(R * D), rand(R * D)], (b, [x, y]) => (b === 'js' ? js : g).add(x as F32, y as F32, x as F32));
    await same(g, 'axpy', [rand(R * D), rand(R * D)], (b, [x, y]) => (b === 'js' ? js : g).axpy(-0.37, x as F32, y as F32));
    await same(g, 'scale', [rand(R * D)], (b, [x]) => (b === 'js' ? js : g).scale(x as F32, 1.7));
    await same(g, 'addBias', [rand(R * D), rand(D)], (b, [y, bb]) => (b === 'js' ? js : g).addBias(y as F32, bb as F32));
    await same(g, 'biasBackward', [rand(R * D), rand(D)], (b, [dy, db]) => (b === 'js' ? js : g).biasBackward(dy as F32, db as F32));
    const n = R * D;
    await same(g, 'swiglu', [rand(n).map((x) => 8 * x), rand(n), rand(n)], (b, [ga, up, o]) => (b === 'js' ? js : g).swiglu(ga as F32, up as F32, o as F32));
    await same(g, 'swigluBackward', [rand(n).map((x) => 8 * x), rand(n), rand(n), rand(n), rand(n)], (b, [ga, up, d, dg, du]) =>
      (b === 'js' ? js : g).swigluBackward(ga as F32, up as F32, d as F32, dg as F32, du as F32),
    );
    const V = 11;
    const ids = Int32Array.from({ length: R }, (_, i) => (i * 7 + (i % 3)) % V); // repeated ids
    await same(g, 'gatherRows', [rand(V * D), ids, rand(R * D)], (b, [src, id, dst]) => (b === 'js' ? js : g).gatherRows(src as F32, id as I32, dst as F32, D));
    await same(g, 'scatterAddRows', [rand(R * D), ids, rand(V * D)], (b, [src, id, dst]) => (b === 'js' ? js : g).scatterAddRows(src as F32, id as I32, dst as F32, D));
    for (const C of [29, 300]) {
      await same(g, `rmsnorm C=${C}`, [rand(R * C), rand(C), rand(R * C), rand(R)], (b, [x, w, y, rs]) => (b === 'js' ? js : g).rmsnorm(x as F32, w as F32, y as F32, rs as F32, C, 1e-6));
      await same(g, `rmsnorm in place C=${C}`, [rand(R * C), rand(C)], (b, [x, w]) => (b === 'js' ? js : g).rmsnorm(x as F32, w as F32, x as F32, null, C, 1e-5));
      // The backward needs the forward's rstd: run it on each backend first, then compare every gradient.
      await same(g, `rmsnormBackward C=${C}`, [rand(R * C), rand(C), rand(R), rand(R * C), rand(R * C), rand(C)], (b, [x, w, rs, dy, dx, dw]) => {
        const be = b === 'js' ? js : g;
        be.rmsnorm(x as F32, w as F32, be.empty([R * C]) as F32, rs as F32, C, 1e-6);
        be.rmsnormBackward(x as F32, w as F32, rs as F32, dy as F32, dx as F32, dw as F32, C);
      }, [3]); // dy is consumed: the contract leaves its contents undefined
    }
  });
});

test('webgpu matmul matches the js backend, also with operands and output in one buffer', async () => {
  await withOps(async (g) => {
    const [M, N, K] = [19, 23, 17];
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      await same(g, `matmul tA${+tA} tB${+tB}`, [rand(M * K), rand(K * N), rand(M * N)], (b, [x, y, o]) =>
        (b === 'js' ? js : g).matmul(x as F32, y as F32, o as F32, M, N, K, tA, tB, true),
      );
      // a, b and c as views of one buffer (as packed activations are)
      await same(g, `matmul in one buffer tA${+tA} tB${+tB}`, [rand(M * K + K * N + M * N)], (b, [flat]) => {
        const be = b === 'js' ? js : g;
        const f = flat as F32;
        be.matmul(be.view(f, 0, [M * K]), be.view(f, M * K, [K * N]), be.view(f, M * K + K * N, [M * N]), M, N, K, tA, tB, false);
      });
    }
  });
});

test('webgpu ops on views that share one buffer', async () => {
  await withOps(async (g) => {
    const n = 50;
    const flatJ = js.upload(rand(3 * n));
    const flatG = g.upload(hostView(js, flatJ).slice());
    for (const [be, flat] of [[js, flatJ], [g, flatG]] as const) {
      const [a, b2, o] = [0, 1, 2].map((k) => be.view(flat as never, k * n, [n])) as [F32, F32, F32];
      be.add(a, b2, o);
      be.axpy(2, o, a);
    }
    const e = relErr((await g.read(flatG)) as Float32Array, hostView(js, flatJ));
    assert.ok(e < 1e-6, `relative error ${e}`);
  });
});

test('webgpu rope (forward, inverse, in place) matches the js backend', async () => {
  await withOps(async (g) => {
    const T = 13;
    const heads = 3;
    const D = 8;
    const P = 40;
    const cos = Float32Array.from({ length: P * (D / 2) }, (_, k) => Math.cos(0.1 * k));
    const sin = Float32Array.from({ length: P * (D / 2) }, (_, k) => Math.sin(0.1 * k));
    const pos = Int32Array.from({ length: T }, (_, t) => (t * 3) % P);
    for (const inverse of [false, true]) {
      await same(g, `rope inverse=${inverse}`, [rand(T * heads * D), rand(T * heads * D), pos, cos, sin], (b, [x, o, p, c, s]) =>
        (b === 'js' ? js : g).rope(x as F32, o as F32, p as I32, c as F32, s as F32, heads, D, inverse),
      );
      await same(g, `rope in place inverse=${inverse}`, [rand(T * heads * D), pos, cos, sin], (b, [x, p, c, s]) =>
        (b === 'js' ? js : g).rope(x as F32, x as F32, p as I32, c as F32, s as F32, heads, D, inverse),
      );
    }
  });
});

test('webgpu sumSquares and adamwPreview match the js backend', async () => {
  await withOps(async (g) => {
    const xs = [rand(1000), rand(7), rand(3000)];
    await same(g, 'sumSquares', [...xs, new Float32Array(1)], (b, t) => (b === 'js' ? js : g).sumSquares(t.slice(0, 3) as F32[], t[3] as F32));
    const n = 555;
    const h = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 1e-3 * 0.01, stepSize: 1e-3 / (1 - 0.9 ** 2), bc2sqrt: Math.sqrt(1 - 0.999 ** 2) };
    await same(g, 'adamwPreview', [rand(n), rand(n), rand(n).map((x) => 0.1 * x), rand(n).map((x) => x * x), Float32Array.from([0.5, 0.25])], (b, [p, gr, m, v, o]) =>
      (b === 'js' ? js : g).adamwPreview(p as F32, gr as F32, m as F32, v as F32, h, o as F32),
    );
  });
});

test('webgpu attention forward and backward match the js backend (GQA, ragged and empty sequences)', async () => {
  await withOps(async (g) => {
    const dims = { heads: 4, kvHeads: 2, headDim: 8 };
    const starts = Int32Array.from([0, 5, 12, 12, 20]);
    const N = 20;
    const qd = N * dims.heads * dims.headDim;
    const kd = N * dims.kvHeads * dims.headDim;
    await same(g, 'attention', [rand(qd), rand(kd), rand(kd), rand(qd), rand(dims.heads * N), starts], (b, [q, k, v, o, l, ss]) =>
      (b === 'js' ? js : g).attention(q as F32, k as F32, v as F32, o as F32, l as F32, ss as I32, dims, 4),
    );
    // dk/dv by query head then summed per kv head (split 'auto', the default), and by kv head (split 'off').
    for (const gb of [g, new WebGpuBackend(g.dev, { split: 'off' })]) {
      const labels: string[] = [];
      const dispatch = g.dev.dispatch.bind(g.dev);
      g.dev.dispatch = (label, ...rest) => (labels.push(label), dispatch(label, ...rest));
      try {
        await same(gb, 'attentionBackward', [rand(qd), rand(kd), rand(kd), rand(qd), rand(dims.heads * N), rand(qd), rand(qd), rand(kd), rand(kd), starts], (b, t) => {
          const be = b === 'js' ? js : gb;
          const [q, k, v, o, l, dout, dq, dk, dv, ss] = t as [F32, F32, F32, F32, F32, F32, F32, F32, F32, I32];
          be.attention(q, k, v, o, l, ss, dims, 4);
          be.attentionBackward(q, k, v, o, l, dout, dq, dk, dv, ss, dims, 4);
        });
      } finally {
        g.dev.dispatch = dispatch;
      }
      assert.equal(labels.some((l) => l.startsWith('attention_dkv_heads')), gb === g, labels.join(', '));
    }
  });
});

test('webgpu fused LM head (token log-probs, entropy) and its backward match the js backend', async () => {
  await withOps(async (g) => {
    const [R, H, V] = [11, 16, 300];
    const labels = Int32Array.from({ length: R }, (_, r) => (r * 37) % V);
    const grad = rand(R);
    grad[4] = 0; // a row without gradient
    await same(g, 'tokenLogprobs', [rand(R * H), rand(V * H), labels, rand(R), rand(R), rand(R)], (b, t) => {
      const [h, w, y, lp, ls, en] = t as [F32, F32, I32, F32, F32, F32];
      (b === 'js' ? js : g).tokenLogprobs(h, w, y, lp, ls, en, V, 4);
    });
    await same(g, 'tokenLogprobsBackward', [rand(R * H), rand(V * H), labels, rand(R), grad, rand(R * H), rand(V * H)], (b, t) => {
      const be = b === 'js' ? js : g;
      const [h, w, y, ls, gr, dh, dw] = t as [F32, F32, I32, F32, F32, F32, F32];
      be.tokenLogprobs(h, w, y, be.empty([R]) as F32, ls, null, V, 5);
      be.tokenLogprobsBackward(h, w, y, ls, gr, dh, dw, V, 3);
    });
  });
});

test('webgpu KV-cache append and cache attention match the js backend (prefill and decode segments)', async () => {
  await withOps(async (g) => {
    const dims = { heads: 4, kvHeads: 2, headDim: 8 };
    const maxLen = 12;
    const kd = dims.kvHeads * dims.headDim;
    const qd = dims.heads * dims.headDim;
    const N = 9; // rows: a 5-token prefill of sequence A, a 1-token decode of B (3 cached), a 3-token chunk of C (4 cached)
    const cacheA = rand(dims.kvHeads * maxLen * dims.headDim);
    const cacheB = rand(dims.kvHeads * maxLen * dims.headDim);
    const cacheC = rand(dims.kvHeads * maxLen * dims.headDim);
    await same(
      g,
      'kvAppend + cacheAttention',
      [rand(N * kd), rand(N * kd), rand(N * qd), rand(N * qd), cacheA, cacheA.slice(), cacheB, cacheB.slice(), cacheC, cacheC.slice()],
      (b, t) => {
        const be = b === 'js' ? js : g;
        const [k, v, q, o, ka, va, kb, vb, kc, vc] = t as F32[];
        const segs = [
          { kc: ka!, vc: va!, r0: 0, n: 5, pos0: 0 },
          { kc: kb!, vc: vb!, r0: 5, n: 1, pos0: 3 },
          { kc: kc!, vc: vc!, r0: 6, n: 3, pos0: 4 },
        ];
        be.kvAppend(k!, v!, segs, dims);
        be.cacheAttention(q!, o!, segs, dims, 2);
      },
    );
  });
});

test('webgpu sampler: greedy rows equal the reference, sampled rows follow its filtered distribution', async () => {
  await withOps(async (g) => {
    const V = 300;
    // Greedy, with a tie for the maximum (the lower id wins) and log-probs.
    const M = 6;
    const z = rand(M * V).map((x) => 6 * x);
    z[2 * V + 17] = 9;
    z[2 * V + 250] = 9;
    const greedy: SamplerSettings[] = Array.from({ length: M }, () => ({ temperature: 0, topP: 1, topK: 0 }));
    const u = new Array<number>(M).fill(0);
    await same(g, 'sampleTokens greedy', [z, new Int32Array(M), new Float32Array(M)], (b, [lz, ids, lp]) =>
      (b === 'js' ? js : g).sampleTokens(lz as F32, V, greedy, u, ids as I32, lp as F32),
    );
    // Sampled: R rows of the same logits with stratified uniforms (r + 0.5)/R, so each token's count is R·p ± 1 for
    // the filtered distribution p, whatever order the draw walks it in.
    const R = 1500;
    const row = rand(40).map((x) => 5 * x);
    row[7] = row[8]!; // a tie inside the distribution
    const cases: SamplerSettings[] = [
      { temperature: 1, topP: 1, topK: 0 },
      { temperature: 0.6, topP: 1, topK: 5 },
      { temperature: 1.3, topP: 0.8, topK: 0 },
      { temperature: 0.9, topP: 0.7, topK: 12 },
    ];
    for (const st of cases) {
      const logits = g.upload(new Float32Array(R * 40).map((_, i) => row[i % 40]!)) as F32;
      const ids = g.empty([R], 'i32') as I32;
      g.sampleTokens(logits, 40, new Array(R).fill(st), Array.from({ length: R }, (_, r) => (r + 0.5) / R), ids, null);
      const got = await g.read(ids);
      const counts = new Map<number, number>();
      for (const t of got) counts.set(t, (counts.get(t) ?? 0) + 1);
      const want = new TokenSampler(40).filtered(row, st);
      const p = new Map<number, number>();
      want.ids.forEach((id, k) => p.set(id, want.probs[k]!));
      for (const [t, c] of counts) assert.ok(p.has(t), `${JSON.stringify(st)}: token ${t} is outside the filtered set`);
      for (const [t, q] of p) {
        const c = counts.get(t) ?? 0;
        assert.ok(Math.abs(c - R * q) <= 2, `${JSON.stringify(st)}: token ${t} drawn ${c} times, expected ${(R * q).toFixed(1)}`);
      }
    }
  });
});

test('webgpu adamw matches the js backend', async () => {
  await withOps(async (g) => {
    const n = 333;
    const h = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 1e-3 * 0.01, stepSize: 1e-3 / (1 - 0.9 ** 3), bc2sqrt: Math.sqrt(1 - 0.999 ** 3) };
    await same(g, 'adamw', [rand(n), rand(n), rand(n).map((x) => 0.1 * x), rand(n).map((x) => x * x)], (b, [p, gr, m, v]) =>
      (b === 'js' ? js : g).adamw(p as F32, gr as F32, m as F32, v as F32, h),
    );
  });
});

test('webgpu tiled attention across workgroup blocks: sequences that straddle 64-row blocks, GQA 3:1, head dim 64', async () => {
  await withOps(async (g) => {
    const dims = { heads: 6, kvHeads: 2, headDim: 64 };
    const starts = Int32Array.from([0, 40, 40, 107, 150]);
    const N = 150;
    const qd = N * dims.heads * dims.headDim;
    const kd = N * dims.kvHeads * dims.headDim;
    await same(g, 'attentionBackward', [rand(qd), rand(kd), rand(kd), rand(qd), rand(dims.heads * N), rand(qd), rand(qd), rand(kd), rand(kd), starts], (b, t) => {
      const be = b === 'js' ? js : g;
      const [q, k, v, o, l, dout, dq, dk, dv, ss] = t as [F32, F32, F32, F32, F32, F32, F32, F32, F32, I32];
      be.attention(q, k, v, o, l, ss, dims, 16);
      be.attentionBackward(q, k, v, o, l, dout, dq, dk, dv, ss, dims, 16);
    });
  });
});

/**
 * kvAppend + cacheAttention over three caches, on both backends: A and B cut from one pair of slabs (A after `lead`
 * free floats, B `gap` floats after A), C in buffers of its own. Returns the labels of the webgpu passes.
 */
async function pooledCaches(g: WebGpuBackend, lead: number, gap: number): Promise<string[]> {
  const dims = { heads: 4, kvHeads: 2, headDim: 8 };
  const kd = dims.kvHeads * dims.headDim;
  const qd = dims.heads * dims.headDim;
  const [lenA, lenB, lenC] = [12, 7, 10];
  const offB = lead + lenA * kd + gap;
  const slab = rand(offB + lenB * kd + 3 * kd);
  const cacheC = rand(lenC * kd);
  const N = 9; // rows: decode of A (5 cached), a 4-token prefill of C, a 4-token chunk of B (2 cached)
  const labels: string[] = [];
  const dispatch = g.dev.dispatch.bind(g.dev);
  g.dev.dispatch = (label, ...rest) => (labels.push(label), dispatch(label, ...rest));
  try {
    await same(g, `pooled kvAppend + cacheAttention (lead ${lead}, gap ${gap})`, [rand(N * kd), rand(N * kd), rand(N * qd), rand(N * qd), slab, slab.slice(), cacheC, cacheC.slice()], (b, t) => {
      const be = b === 'js' ? js : g;
      const [k, v, q, o, ks, vs, kc, vc] = t as F32[];
      const shape = (n: number): number[] => [dims.kvHeads, n, dims.headDim];
      const segs = [
        { kc: be.view(ks!, lead, shape(lenA)), vc: be.view(vs!, lead, shape(lenA)), r0: 0, n: 1, pos0: 5 },
        { kc: kc!, vc: vc!, r0: 1, n: 4, pos0: 0 },
        { kc: be.view(ks!, offB, shape(lenB)), vc: be.view(vs!, offB, shape(lenB)), r0: 5, n: 4, pos0: 2 },
      ];
      be.kvAppend(k!, v!, segs, dims);
      be.cacheAttention(q!, o!, segs, dims, 2);
    });
  } finally {
    g.dev.dispatch = dispatch;
  }
  return labels;
}

test('webgpu pooled KV caches: segments cut from shared slabs run as one dispatch and match the js backend', async () => {
  await withOps(async (g) => {
    const labels = await pooledCaches(g, 48, 5 * 16);
    // A and B in one dispatch per op, C (a group of one segment) in one of its own.
    assert.deepEqual(labels.filter((l) => l.startsWith('kvAppend')), ['kvAppend_pooled', 'kvAppend']);
    assert.deepEqual(labels.filter((l) => l.startsWith('cacheAttention')), ['cacheAttention_pooled_hd8', 'cacheAttention_hd8']);
  });
});

test('webgpu pooled KV caches bind only the slab range they use: pooled when it fits one binding, per segment when not', async () => {
  await withOps(async (g) => {
    // A 4 KiB binding (1,024 floats): slabs of 2,000+ floats, but A and B within 500 of each other → pooled.
    let labels = await pooledCaches(g, 2000, 100);
    assert.ok(labels.includes('kvAppend_pooled') && labels.includes('cacheAttention_pooled_hd8'), labels.join(', '));
    // A and B 1,200 floats apart → segment by segment, each cache in its own windows.
    labels = await pooledCaches(g, 2000, 1200);
    assert.ok(!labels.some((l) => l.includes('pooled')), labels.join(', '));
    assert.equal(labels.filter((l) => l === 'kvAppend').length, 3);
  }, 4096);
});

// Tensors larger than one binding run in pieces (src/engine/webgpu/window.ts). A 4 KiB binding limit (1,024 floats;
// for tests only) splits these small tensors the way a 151,936-row embedding is split on a GPU: every op below has a
// tensor above the limit, and matmul has all three operands above it (blocks of M, N and K).
test('webgpu ops on tensors larger than one binding (a 4 KiB test limit) match the js backend', async () => {
  await withOps(async (g) => {
    const be = (b: 'js' | 'gpu'): typeof js | WebGpuBackend => (b === 'js' ? js : g);
    const n = 3001;
    assert.ok(g.windows.maxSpan < n && g.windows.maxSpan >= 961, `window of ${g.windows.maxSpan} floats`);
    await same(g, 'add', [rand(n), rand(n), rand(n)], (b, [x, y, o]) => be(b).add(x as F32, y as F32, o as F32));
    await same(g, 'axpy, scale, copy, fill', [rand(n), rand(n), rand(n)], (b, [x, y, z]) => {
      be(b).axpy(-0.37, x as F32, y as F32);
      be(b).scale(x as F32, 1.7);
      be(b).copy(y as F32, z as F32);
      be(b).fill(be(b).view(y as F32, 100, [2500]), 0.25);
    });
    await same(g, 'swiglu, swigluBackward', [rand(n).map((x) => 8 * x), rand(n), rand(n), rand(n), rand(n), rand(n)], (b, [ga, up, o, d, dg, du]) => {
      be(b).swiglu(ga as F32, up as F32, o as F32);
      be(b).swigluBackward(ga as F32, up as F32, d as F32, dg as F32, du as F32);
    });
    const [R, D] = [101, 29];
    await same(g, 'addBias, biasBackward', [rand(R * D), rand(D), rand(R * D), rand(D)], (b, [y, bb, dy, db]) => {
      be(b).addBias(y as F32, bb as F32);
      be(b).biasBackward(dy as F32, db as F32);
    });
    const V = 211; // the table: 6,119 floats, six windows
    const ids = Int32Array.from({ length: R }, (_, i) => (i * 37 + (i % 5)) % V);
    await same(g, 'gatherRows', [rand(V * D), ids, rand(R * D)], (b, [src, id, dst]) => be(b).gatherRows(src as F32, id as I32, dst as F32, D));
    await same(g, 'scatterAddRows', [rand(31 * D), ids.subarray(0, 31), rand(V * D)], (b, [src, id, dst]) => be(b).scatterAddRows(src as F32, id as I32, dst as F32, D));
    const C = 300;
    await same(g, 'rmsnorm, rmsnormBackward', [rand(R * C), rand(C), rand(R), rand(R * C), rand(R * C), rand(C)], (b, [x, w, rs, dy, dx, dw]) => {
      be(b).rmsnorm(x as F32, w as F32, be(b).empty([R * C]) as F32, rs as F32, C, 1e-6);
      be(b).rmsnormBackward(x as F32, w as F32, rs as F32, dy as F32, dx as F32, dw as F32, C);
    }, [3]);
    const [T, heads, hd, P] = [50, 3, 8, 60];
    const cos = Float32Array.from({ length: P * (hd / 2) }, (_, k) => Math.cos(0.1 * k));
    const sin = Float32Array.from({ length: P * (hd / 2) }, (_, k) => Math.sin(0.1 * k));
    const pos = Int32Array.from({ length: T }, (_, t) => (t * 7) % P);
    await same(g, 'rope', [rand(T * heads * hd), rand(T * heads * hd), pos, cos, sin], (b, [x, o, p, c, s]) =>
      be(b).rope(x as F32, o as F32, p as I32, c as F32, s as F32, heads, hd, false),
    );
    const [M, N, K] = [45, 70, 53];
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const)
      await same(g, `matmul tA${+tA} tB${+tB}`, [rand(M * K), rand(K * N), rand(M * N)], (b, [x, y, o]) => be(b).matmul(x as F32, y as F32, o as F32, M, N, K, tA, tB, true));
    const h = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 1e-5, stepSize: 1e-3 / (1 - 0.9 ** 2), bc2sqrt: Math.sqrt(1 - 0.999 ** 2) };
    const opt = (): Float32Array[] => [rand(n), rand(n), rand(n).map((x) => 0.1 * x), rand(n).map((x) => x * x)];
    await same(g, 'adamwPreview, adamw', [...opt(), Float32Array.from([0.5, 0.25])], (b, [p, gr, m, v, o]) => {
      be(b).adamwPreview(p as F32, gr as F32, m as F32, v as F32, h, o as F32);
      be(b).adamw(p as F32, gr as F32, m as F32, v as F32, h);
    });
    await same(g, 'sumSquares', [rand(n), rand(7), rand(2 * n), new Float32Array(1)], (b, t) => be(b).sumSquares(t.slice(0, 3) as F32[], t[3] as F32));
    // LM head: w [300, 16] and its gradient are split; the logits block is bounded to whole rows that fit.
    const [Rh, H, Vh] = [11, 16, 300];
    const labels = Int32Array.from({ length: Rh }, (_, r) => (r * 37) % Vh);
    await same(g, 'tokenLogprobs + backward', [rand(Rh * H), rand(Vh * H), labels, rand(Rh), rand(Rh), rand(Rh), rand(Rh), rand(Rh * H), rand(Vh * H)], (b, t) => {
      const [hh, w, y, lp, ls, en, gr, dh, dw] = t as [F32, F32, I32, F32, F32, F32, F32, F32, F32];
      be(b).tokenLogprobs(hh, w, y, lp, ls, en, Vh, 8);
      be(b).tokenLogprobsBackward(hh, w, y, ls, gr, dh, dw, Vh, 8);
    });
    const zs = rand(6 * Vh).map((x) => 6 * x);
    const greedy: SamplerSettings[] = Array.from({ length: 6 }, () => ({ temperature: 0, topP: 1, topK: 0 }));
    await same(g, 'sampleTokens greedy', [zs, new Int32Array(6), new Float32Array(6)], (b, [lz, id, lp]) =>
      be(b).sampleTokens(lz as F32, Vh, greedy, new Array<number>(6).fill(0), id as I32, lp as F32),
    );
    // KV caches of 2 kv heads × 80 positions × 8 (1,280 floats a layer): one kv head at a time.
    const dims = { heads: 4, kvHeads: 2, headDim: 8 };
    const cache = (): Float32Array => rand(2 * 80 * 8);
    const [ka, kb] = [cache(), cache()];
    await same(g, 'kvAppend + cacheAttention', [rand(9 * 16), rand(9 * 16), rand(9 * 32), rand(9 * 32), ka, ka.slice(), kb, kb.slice()], (b, t) => {
      const [k, v, q, o, kca, vca, kcb, vcb] = t as F32[];
      const segs = [
        { kc: kca!, vc: vca!, r0: 0, n: 6, pos0: 60 },
        { kc: kcb!, vc: vcb!, r0: 6, n: 3, pos0: 77 },
      ];
      be(b).kvAppend(k!, v!, segs, dims);
      be(b).cacheAttention(q!, o!, segs, dims, 2);
    });
    // Attention over packed sequences binds its activations whole: beyond one binding it says so.
    const big = g.empty([40 * 32]);
    const kv = g.empty([40 * 16]);
    assert.throws(
      () => g.attention(big, kv, kv, big, g.empty([4 * 40]), g.upload(Int32Array.from([0, 40])), dims, 8),
      /webgpu attention_hd8_t\d+: its tensors in one buffer span \d+ bytes .* more than one binding \(4096 bytes\)/,
    );
  }, 4096);
});

// The reductions run over many workgroups in two passes with a fixed partition (no float atomics): sizes here give
// many partial sums (sum of squares: blocks of 4,096; column sums: blocks of 64 rows) and a scatter-add with heavily
// repeated ids (a bitonic sort of 777 ids, padded to 1,024). They match the js backend and repeat bit for bit.
test('webgpu reductions over many workgroups match the js backend and are deterministic', async () => {
  await withOps(async (g) => {
    const be = (b: 'js' | 'gpu'): typeof js | WebGpuBackend => (b === 'js' ? js : g);
    await same(g, 'sumSquares', [rand(100_003), rand(5000), rand(1), new Float32Array(1)], (b, t) => be(b).sumSquares(t.slice(0, 3) as F32[], t[3] as F32));
    const n = 50_001;
    const h = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1 - 1e-5, stepSize: 1e-3 / (1 - 0.9 ** 2), bc2sqrt: Math.sqrt(1 - 0.999 ** 2) };
    await same(g, 'adamwPreview', [rand(n), rand(n), rand(n).map((x) => 0.1 * x), rand(n).map((x) => x * x), Float32Array.from([0.5, 0.25])], (b, [p, gr, m, v, o]) =>
      be(b).adamwPreview(p as F32, gr as F32, m as F32, v as F32, h, o as F32),
    );
    await same(g, 'biasBackward', [rand(1000 * 37), rand(37)], (b, [dy, db]) => be(b).biasBackward(dy as F32, db as F32));
    const [R, C] = [300, 64];
    await same(g, 'rmsnormBackward', [rand(R * C), rand(C), rand(R), rand(R * C), rand(R * C), rand(C)], (b, [x, w, rs, dy, dx, dw]) => {
      be(b).rmsnorm(x as F32, w as F32, be(b).empty([R * C]) as F32, rs as F32, C, 1e-6);
      be(b).rmsnormBackward(x as F32, w as F32, rs as F32, dy as F32, dx as F32, dw as F32, C);
    }, [3]);
    const [N, V, D] = [777, 50, 9];
    const ids = Int32Array.from({ length: N }, (_, i) => (i * i * 7 + 3 * i) % V);
    await same(g, 'scatterAddRows', [rand(N * D), ids, rand(V * D)], (b, [src, id, dst]) => be(b).scatterAddRows(src as F32, id as I32, dst as F32, D));
    // The same inputs twice give the same bits.
    const xs = [g.upload(rand(100_003)), g.upload(rand(333))];
    const out = g.empty([1]);
    const src = g.upload(rand(N * D));
    const idt = g.upload(ids);
    const runs: number[][] = [];
    for (let k = 0; k < 2; k++) {
      g.sumSquares(xs, out);
      const dst = g.empty([V * D]);
      g.scatterAddRows(src, idt, dst, D);
      runs.push([...(await g.read(out)), ...(await g.read(dst))]);
    }
    assert.deepEqual(runs[1], runs[0]);
  });
});
