// The wasm backend against the plain-JS references: GEMM in every transpose/accumulate combination on odd shapes, in
// and out of the shared memory, 1 and 2 threads; the row kernels; the arena; dispose without hanging.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createJsKernels } from '../src/engine/js-backend.js';
import { createWasmBackend, partitionGemm, type WasmBackend } from '../src/engine/wasm-backend.js';
import { createBackend, defaultBackendName, blasAvailable, CpuBackend } from '../src/engine/index.js';
import { jsRowKernels, ropeTables, rowKernelsOf, type RowKernels } from '../src/engine/kernels.js';
import { relErr, seededFloats } from './helpers/numeric.js';

const js = createJsKernels();
// parallelThreshold 0 forces the threaded paths even for tiny products.
const backends: WasmBackend[] = [
  createWasmBackend({ threads: 1 }),
  createWasmBackend({ threads: 2, parallelThreshold: 0 }),
  createWasmBackend({ threads: 2, parallelThreshold: 0, smallM: 0, blocks: { mc: 8, kc: 5, nc: 16 } }),
];
after(() => {
  for (const b of backends) b.dispose();
});

const { rand, fill } = seededFloats(12345);

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [7, 13, 5],
  [65, 3, 129],
  [3, 65, 129],
  [1, 37, 300],
  [16, 40, 33],
  [17, 9, 64],
  [33, 70, 260],
  [100, 24, 8],
  [5, 5, 0],
];

test('partitionGemm covers C exactly once', () => {
  for (const [M, N, K, T] of [
    [100, 37, 10, 2],
    [3, 1000, 10, 4],
    [1000, 8, 10, 3],
    [9, 17, 1, 8],
  ] as const) {
    const seen = new Uint8Array(M * N);
    const parts = partitionGemm(M, N, K, T, 64);
    assert.ok(parts.length >= 1 && parts.length <= T);
    for (const [m0, m1, n0, n1] of parts) for (let i = m0; i < m1; i++) for (let j = n0; j < n1; j++) seen[i * N + j]!++;
    assert.ok(seen.every((v) => v === 1), `M=${M} N=${N} T=${T}`);
  }
});

for (const [bi, wasm] of backends.entries()) {
  test(`wasm gemm matches the JS reference (backend ${bi}, ${wasm.threads} thread(s))`, () => {
    let worst = 0;
    for (const [M, N, K] of SHAPES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const accumulate of [false, true]) {
            for (const inMemory of [false, true]) {
              // Subarray views at odd offsets, in the shared memory or in plain buffers.
              const mk = (n: number, off: number): Float32Array =>
                fill(inMemory ? wasm.alloc(n + off + 3) : new Float32Array(n + off + 3)).subarray(off, off + n);
              const A = mk(M * K, 3);
              const B = mk(K * N, 1);
              const C = mk(M * N, 5);
              const before = C.slice();
              const want = C.slice();
              js.gemm(transA, transB, M, N, K, A, B, want, accumulate);
              // Elements around the view must stay untouched.
              const outer = new Float32Array(C.buffer, C.byteOffset - 4, M * N + 2);
              const guard = [outer[0], outer[M * N + 1]];
              wasm.gemm(transA, transB, M, N, K, A, B, C, accumulate);
              assert.deepEqual([outer[0], outer[M * N + 1]], guard, 'wrote outside C');
              const e = relErr(C, want);
              worst = Math.max(worst, e);
              assert.ok(
                e < 2e-6 * Math.sqrt(K + 1),
                `M=${M} N=${N} K=${K} tA=${transA} tB=${transB} acc=${accumulate} mem=${inMemory}: err ${e} (C was ${before.length})`,
              );
            }
          }
        }
      }
    }
    assert.ok(worst < 1e-4);
  });
}

test('wasm gemm on a larger product, threaded, in memory and out', () => {
  const wasm = backends[1]!;
  const [M, N, K] = [150, 140, 300];
  const A = fill(new Float32Array(M * K));
  const B = fill(wasm.alloc(N * K));
  const want = new Float32Array(M * N);
  js.gemm(false, true, M, N, K, A, B, want, false);
  const C = new Float32Array(M * N);
  wasm.gemm(false, true, M, N, K, A, B, C, false);
  assert.ok(relErr(C, want) < 1e-5);
});

test('gemm rejects arrays that are too short', () => {
  const wasm = backends[0]!;
  assert.throws(() => wasm.gemm(false, false, 2, 2, 2, new Float32Array(3), new Float32Array(4), new Float32Array(4), false), RangeError);
});

test('arena: alloc is zeroed, free reuses, mark/release and reset', () => {
  const wasm = createWasmBackend({ threads: 1 });
  try {
    const base = wasm.heapBytes();
    const a = wasm.alloc(100);
    assert.ok(wasm.owns(a));
    assert.ok(!wasm.owns(new Float32Array(4)));
    a.fill(7);
    const b = wasm.alloc(10);
    wasm.free(a);
    const c = wasm.alloc(100); // reuses a's block, zeroed
    assert.equal(c.byteOffset, a.byteOffset);
    assert.ok(c.every((v) => v === 0));
    assert.throws(() => wasm.free(new Float32Array(4)), RangeError);
    const m = wasm.mark();
    wasm.alloc(1000);
    wasm.alloc(5);
    wasm.release(m);
    assert.equal(wasm.mark(), m);
    wasm.free(b);
    wasm.free(c); // top block: the top drops, coalescing b below it
    assert.equal(wasm.heapBytes(), base);
    // Growth: views made before the memory grows stay valid.
    const keep = wasm.alloc(16);
    keep[3] = 42;
    const big = wasm.alloc(40 * 1024 * 1024 / 4);
    assert.equal(big.length, 10 * 1024 * 1024);
    assert.equal(keep[3], 42);
    assert.ok(wasm.owns(keep) && wasm.owns(big));
    wasm.reset();
    assert.equal(wasm.heapBytes(), base);
  } finally {
    wasm.dispose();
  }
});

// ---- row kernels --------------------------------------------------------------------------------------------------
function close(name: string, got: Float32Array, want: Float32Array, tol = 2e-6): void {
  const e = relErr(got, want);
  assert.ok(e < tol, `${name}: rel err ${e}`);
}

function checkRowKernels(k: RowKernels, mk: (n: number) => Float32Array, label: string): void {
  const ref = jsRowKernels;
  for (const [rows, cols] of [
    [1, 1],
    [3, 7],
    [5, 64],
    [2, 129],
  ] as const) {
    const n = rows * cols;
    const x = fill(mk(n));
    for (let i = 0; i < n; i++) x[i] = x[i]! * 20;
    if (n > 3) x[1] = -Infinity; // a masked entry
    // softmax, out of place and in place
    const y1 = mk(n);
    const y2 = new Float32Array(n);
    k.softmaxRows(x, y1, rows, cols);
    ref.softmaxRows(x, y2, rows, cols);
    close(`${label} softmax ${rows}x${cols}`, y1, y2);
    if (n > 3) assert.equal(y1[1], 0);
    const xi = mk(n);
    xi.set(x);
    k.softmaxRows(xi, xi, rows, cols);
    close(`${label} softmax in place`, xi, y2);
    // softmax backward
    const dy = fill(mk(n));
    const dx1 = mk(n);
    const dx2 = new Float32Array(n);
    k.softmaxBackwardRows(y1, dy, dx1, rows, cols);
    ref.softmaxBackwardRows(y2, dy, dx2, rows, cols);
    close(`${label} softmax backward`, dx1, dx2);
    // rmsnorm forward/backward
    const xr = fill(mk(n));
    const w = fill(mk(cols));
    const r1 = mk(rows);
    const r2 = new Float32Array(rows);
    const o1 = mk(n);
    const o2 = new Float32Array(n);
    k.rmsnormForward(xr, w, o1, r1, rows, cols, 1e-6);
    ref.rmsnormForward(xr, w, o2, r2, rows, cols, 1e-6);
    close(`${label} rmsnorm`, o1, o2);
    close(`${label} rmsnorm rstd`, r1, r2);
    const dw1 = fill(mk(cols));
    const dw2 = dw1.slice();
    const g1 = mk(n);
    const g2 = new Float32Array(n);
    k.rmsnormBackward(xr, w, r2, dy, g1, dw1, rows, cols);
    ref.rmsnormBackward(xr, w, r2, dy, g2, dw2, rows, cols);
    close(`${label} rmsnorm backward dx`, g1, g2, 1e-5);
    close(`${label} rmsnorm backward dw`, dw1, dw2, 1e-5);
    // swiglu
    const gate = fill(mk(n));
    for (let i = 0; i < n; i++) gate[i] = gate[i]! * 30;
    const up = fill(mk(n));
    const s1 = mk(n);
    const s2 = new Float32Array(n);
    k.swigluForward(gate, up, s1, n);
    ref.swigluForward(gate, up, s2, n);
    close(`${label} swiglu`, s1, s2);
    const dg1 = mk(n);
    const du1 = mk(n);
    const dg2 = new Float32Array(n);
    const du2 = new Float32Array(n);
    k.swigluBackward(gate, up, dy, dg1, du1, n);
    ref.swigluBackward(gate, up, dy, dg2, du2, n);
    close(`${label} swiglu backward dgate`, dg1, dg2);
    close(`${label} swiglu backward dup`, du1, du2);
    // add / axpy
    const a1 = mk(n);
    const a2 = new Float32Array(n);
    k.add(x.map((v) => (v === -Infinity ? 0 : v)), dy, a1, n);
    ref.add(x.map((v) => (v === -Infinity ? 0 : v)), dy, a2, n);
    close(`${label} add`, a1, a2);
    k.axpy(-0.5, dy, a1, n);
    ref.axpy(-0.5, dy, a2, n);
    close(`${label} axpy`, a1, a2);
  }
  // RoPE forward, inverse = transpose, in place
  for (const [T, H, D] of [
    [1, 1, 2],
    [3, 2, 10],
    [5, 3, 64],
  ] as const) {
    const { cos, sin } = ropeTables(40, D, 1e6);
    const pos = Int32Array.from({ length: T }, (_, t) => (t * 7 + 3) % 40);
    const n = T * H * D;
    const x = fill(mk(n));
    const o1 = mk(n);
    const o2 = new Float32Array(n);
    k.rope(x, o1, T, H, D, pos, cos, sin, false);
    ref.rope(x, o2, T, H, D, pos, cos, sin, false);
    close(`${label} rope ${T}x${H}x${D}`, o1, o2);
    k.rope(o1, o1, T, H, D, pos, cos, sin, true);
    close(`${label} rope inverse`, o1, x, 1e-5);
  }
}

test('row kernels: wasm matches the JS references (arrays in the shared memory)', () => {
  const wasm = backends[0]!;
  checkRowKernels(wasm, (n) => wasm.alloc(n), 'wasm/mem');
});

test('row kernels: wasm matches the JS references (plain arrays, copied)', () => {
  checkRowKernels(backends[1]!, (n) => new Float32Array(n), 'wasm/plain');
});

test('row kernel references agree with finite differences (rmsnorm, swiglu)', () => {
  const rows = 2;
  const cols = 5;
  const x = Float64Array.from({ length: rows * cols }, () => rand());
  const w = Float32Array.from({ length: cols }, () => rand() + 1);
  const dy = Float32Array.from({ length: rows * cols }, () => rand());
  const f = (xx: Float32Array): number => {
    const y = new Float32Array(rows * cols);
    jsRowKernels.rmsnormForward(xx, w, y, null, rows, cols, 1e-5);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
    return s;
  };
  const xf = Float32Array.from(x);
  const rstd = new Float32Array(rows);
  jsRowKernels.rmsnormForward(xf, w, new Float32Array(rows * cols), rstd, rows, cols, 1e-5);
  const dx = new Float32Array(rows * cols);
  jsRowKernels.rmsnormBackward(xf, w, rstd, dy, dx, null, rows, cols);
  for (let i = 0; i < xf.length; i++) {
    const h = 1e-2;
    const p = xf.slice();
    p[i] = p[i]! + h;
    const m = xf.slice();
    m[i] = m[i]! - h;
    assert.ok(Math.abs((f(p) - f(m)) / (2 * h) - dx[i]!) < 2e-3, `rmsnorm dx[${i}]`);
  }
  for (const g of [-3, -0.5, 0, 0.7, 4]) {
    const h = 1e-2;
    const out = new Float32Array(1);
    const fp = (gg: number): number => {
      jsRowKernels.swigluForward(Float32Array.of(gg), Float32Array.of(1.5), out, 1);
      return out[0]!;
    };
    const dg = new Float32Array(1);
    const du = new Float32Array(1);
    jsRowKernels.swigluBackward(Float32Array.of(g), Float32Array.of(1.5), Float32Array.of(1), dg, du, 1);
    assert.ok(Math.abs((fp(g + h) - fp(g - h)) / (2 * h) - dg[0]!) < 1e-3, `swiglu dgate at ${g}`);
  }
});

test('createBackend: default (blas when built, else wasm), js, clear error for blas when not built; rowKernelsOf', () => {
  const b = createBackend(undefined, { threads: 1 });
  try {
    assert.equal(b.name, defaultBackendName());
    assert.equal(b.threads, 1);
    assert.notEqual(rowKernelsOf((b as CpuBackend).kernels), jsRowKernels);
  } finally {
    b.dispose();
  }
  const j = createBackend('js');
  assert.equal(j.name, 'js');
  assert.equal(rowKernelsOf((j as CpuBackend).kernels), jsRowKernels);
  if (blasAvailable()) assert.equal(createBackend('blas', { threads: 1 }).name, 'blas');
  else assert.throws(() => createBackend('blas'), /BLAS backend not built/);
});

test('a process that creates threaded backends exits by itself, disposed or not', () => {
  const mod = fileURLToPath(new URL('../src/engine/wasm-backend.js', import.meta.url));
  const script = `
    import { createWasmBackend } from ${JSON.stringify(mod)};
    const a = createWasmBackend({ threads: 2, parallelThreshold: 0 });
    const b = createWasmBackend({ threads: 3, parallelThreshold: 0 });
    const x = a.alloc(64 * 64);
    a.gemm(false, false, 64, 64, 64, x, x, a.alloc(64 * 64), false);
    b.gemm(false, true, 64, 64, 64, new Float32Array(4096), new Float32Array(4096), new Float32Array(4096), false);
    a.dispose();
    // b is left undisposed on purpose.
    console.log('ok');
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20000, encoding: 'utf8' });
  assert.equal(r.signal, null, 'process hung (killed by timeout)');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok/);
});

test('wasm gemm: every row/column remainder of the 6x8 and 4x8 panels and of the small-M dot blocks (plain and relaxed)', () => {
  const variants: WasmBackend[] = [
    createWasmBackend({ threads: 1, relaxedSimd: false }),
    createWasmBackend({ threads: 1 }),
    // mc = 8, 20, 28: blocks whose 4-row rounding is split into 6- and 4-row panels in every way.
    createWasmBackend({ threads: 1, smallM: 0, blocks: { mc: 8, kc: 7, nc: 16 } }),
    createWasmBackend({ threads: 1, smallM: 0, blocks: { mc: 20, kc: 16, nc: 24 } }),
    createWasmBackend({ threads: 1, smallM: 0, blocks: { mc: 28, kc: 300, nc: 8 } }),
    // A tiny workspace (232 floats): small-M products whose packed A does not fit take the packed path.
    createWasmBackend({ threads: 1, blocks: { mc: 8, kc: 7, nc: 16 } }),
  ];
  try {
    for (const wasm of variants) {
      for (let M = 1; M <= 23; M += M < 16 ? 1 : 7) {
        for (const N of [1, 2, 3, 5, 9, 17]) {
          for (const K of [1, 3, 4, 9, 16]) {
            for (const transA of [false, true]) {
              for (const transB of [false, true]) {
                const accumulate = (M + N + K) % 2 === 0;
                const A = fill(new Float32Array(M * K));
                const B = fill(new Float32Array(K * N));
                const C = fill(new Float32Array(M * N));
                const want = C.slice();
                js.gemm(transA, transB, M, N, K, A, B, want, accumulate);
                wasm.gemm(transA, transB, M, N, K, A, B, C, accumulate);
                const e = relErr(C, want);
                assert.ok(e < 2e-6 * Math.sqrt(K + 1), `M=${M} N=${N} K=${K} tA=${transA} tB=${transB} acc=${accumulate}: err ${e}`);
              }
            }
          }
        }
      }
    }
  } finally {
    for (const b of variants) b.dispose();
  }
});
