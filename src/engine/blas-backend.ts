// The optional 'blas' backend: GEMM through OpenBLAS `cblas_sgemm` in a Node-API addon (native/oreal_blas.c, built
// by scripts/build-native.mjs into build/Release/oreal_blas.node at `npm install` time when libopenblas-dev is
// present). Its row kernels (RMSNorm, SwiGLU, RoPE, softmax, add, axpy) are C loops in the same addon, single-threaded.
//
// Arrays are ordinary Float32Arrays (alloc() is `new Float32Array`): no copies, no 4 GiB limit. Threads are OpenBLAS's
// own pthreads (openblas_set_num_threads); OPENBLAS_CORETYPE, if set, picks the kernels.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { checkLength, rowKernelChecks, type HostKernels, type RowKernels } from './kernels.js';

/** The addon's functions (see native/oreal_blas.c). */
interface BlasAddon {
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    accumulate: boolean,
  ): void;
  setThreads(n: number): void;
  threads(): number;
  coreName(): string;
  softmaxRows(x: Float32Array, y: Float32Array, rows: number, cols: number): void;
  softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void;
  rmsnormForward(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array | null, rows: number, cols: number, eps: number): void;
  rmsnormBackward(
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array | null,
    rows: number,
    cols: number,
  ): void;
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  swigluBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;
  rope(
    x: Float32Array,
    out: Float32Array,
    T: number,
    H: number,
    D: number,
    positions: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    inverse: boolean,
  ): void;
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
}

export interface BlasBackendOptions {
  /** OpenBLAS threads (default os.availableParallelism()). */
  threads?: number;
}

export interface BlasBackend extends HostKernels, RowKernels {
  readonly name: 'blas';
  /** The OpenBLAS kernel family in use (e.g. 'Haswell', 'SkylakeX'). */
  readonly coreName: string;
}

const ADDON = 'oreal_blas.node';

/** Where the built addon is, or null: build/Release/ at the package root (from src/engine or dist/src/engine). */
export function blasAddonPath(): string | null {
  for (const rel of ['../../build/Release/', '../../../build/Release/']) {
    const p = fileURLToPath(new URL(rel + ADDON, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

/** Whether the addon is built (the 'blas' backend can be created). */
export function blasAvailable(): boolean {
  return blasAddonPath() !== null;
}

let cached: BlasAddon | undefined;
function loadAddon(): BlasAddon {
  if (cached) return cached;
  const p = blasAddonPath();
  if (p === null) {
    throw new Error(
      `BLAS backend not built: build/Release/${ADDON} is missing. Install OpenBLAS (Debian: apt-get install -y ` +
        'libopenblas-dev) and run `npm run build:native`, or use --backend wasm (the default)',
    );
  }
  const req = createRequire(import.meta.url);
  try {
    cached = req(p) as BlasAddon;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`BLAS backend: cannot load ${p}: ${msg} (rebuild it with \`npm run build:native\`)`);
  }
  return cached;
}

class BlasBackendImpl implements BlasBackend {
  readonly name = 'blas' as const;
  readonly threads: number;
  readonly coreName: string;
  private readonly ad: BlasAddon;

  constructor(opts: BlasBackendOptions) {
    this.ad = loadAddon();
    const t = Math.floor(opts.threads ?? os.availableParallelism());
    if (!(t >= 1)) throw new RangeError(`blas backend: threads must be >= 1, got ${opts.threads}`);
    // OpenBLAS's thread count is process-wide: the last backend created sets it.
    this.ad.setThreads(t);
    this.threads = this.ad.threads();
    this.coreName = this.ad.coreName();
  }

  alloc(length: number): Float32Array {
    if (!(length >= 0) || !Number.isInteger(length)) throw new RangeError(`alloc: bad length ${length}`);
    return new Float32Array(length);
  }

  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    accumulate: boolean,
  ): void {
    checkLength('gemm A', A, M * K);
    checkLength('gemm B', B, K * N);
    checkLength('gemm C', C, M * N);
    this.ad.sgemm(transA, transB, M, N, K, A, B, C, accumulate);
  }

  softmaxRows(x: Float32Array, y: Float32Array, rows: number, cols: number): void {
    rowKernelChecks.softmaxRows(x, y, rows, cols);
    this.ad.softmaxRows(x, y, rows, cols);
  }

  softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
    rowKernelChecks.softmaxBackwardRows(y, dy, dx, rows, cols);
    this.ad.softmaxBackwardRows(y, dy, dx, rows, cols);
  }

  rmsnormForward(x: Float32Array, weight: Float32Array, y: Float32Array, rstd: Float32Array | null, rows: number, cols: number, eps: number): void {
    rowKernelChecks.rmsnormForward(x, weight, y, rstd, rows, cols);
    this.ad.rmsnormForward(x, weight, y, rstd, rows, cols, eps);
  }

  rmsnormBackward(
    x: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dweight: Float32Array | null,
    rows: number,
    cols: number,
  ): void {
    rowKernelChecks.rmsnormBackward(x, weight, rstd, dy, dx, dweight, rows, cols);
    this.ad.rmsnormBackward(x, weight, rstd, dy, dx, dweight, rows, cols);
  }

  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    checkLength('swigluForward gate', gate, n);
    checkLength('swigluForward up', up, n);
    checkLength('swigluForward out', out, n);
    this.ad.swigluForward(gate, up, out, n);
  }

  swigluBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void {
    for (const [nm, a] of [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const) {
      checkLength(`swigluBackward ${nm}`, a, n);
    }
    this.ad.swigluBackward(gate, up, dout, dgate, dup, n);
  }

  rope(
    x: Float32Array,
    out: Float32Array,
    T: number,
    H: number,
    D: number,
    positions: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    inverse: boolean,
  ): void {
    rowKernelChecks.rope(T, H, D, positions, cos, sin);
    checkLength('rope x', x, T * H * D);
    checkLength('rope out', out, T * H * D);
    this.ad.rope(x, out, T, H, D, positions, cos, sin, inverse);
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    checkLength('add a', a, n);
    checkLength('add b', b, n);
    checkLength('add out', out, n);
    this.ad.add(a, b, out, n);
  }

  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void {
    checkLength('axpy x', x, n);
    checkLength('axpy y', y, n);
    this.ad.axpy(alpha, x, y, n);
  }

  dispose(): void {}
}

/** Creates the OpenBLAS backend; throws a clear error when the addon is not built. */
export function createBlasBackend(opts: BlasBackendOptions = {}): BlasBackend {
  return new BlasBackendImpl(opts);
}
