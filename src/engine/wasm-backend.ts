// The default compute backend: WebAssembly SIMD128 kernels (wasm/oreal_kernels.c, committed as a built .wasm) on one
// shared WebAssembly.Memory, with GEMM split over worker_threads. Every call stays synchronous: the calling thread
// computes its own part of C and then waits on an Atomics counter for the workers' parts.
//
// Memory: alloc() hands out zeroed views into the shared memory. Such arrays are read and written in place by every
// kernel; any other Float32Array is accepted too and goes through a copy into scratch space and back.
// The heap is an arena:
//   - alloc(n) reuses a freed block of the same rounded size (64-byte granules) or bumps the top of the heap, growing
//     the memory when needed (up to `maxMemoryBytes`, at most 4 GiB);
//   - free(a) gives a block back (`a` must be exactly an array alloc() returned); a block at the top lowers the top;
//   - mark() / release(m) drop, in one go, everything bump-allocated after the mark (the usual per-step scheme:
//     weights first, then `const m = mark()` … activations … `release(m)`);
//   - reset() frees everything.
// Views stay valid after the memory grows (shared memory is never detached), but a view of freed memory must not be
// used: later allocations reuse it.
import { Worker } from 'node:worker_threads';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import v8 from 'node:v8';
import { checkLength, rowKernelChecks, type HostKernels, type RowKernels } from './kernels.js';
import { CTRL, MAX_WORKERS, OP_STOP, OP_TILES, jobBase, WA, type WasmMemory, type WasmModule, type WorkerInit } from './wasm-protocol.js';
import { claimTiles, MAX_TILES, T_ADD, T_ROPE, T_RMSNORM_F, T_SGEMM, T_SGEMM_SMALL, T_SOFTMAX, T_SWIGLU_B, T_SWIGLU_F, TJOB_INTS } from './wasm-tiles.js';

export interface WasmBackendOptions {
  /** Threads used by GEMM, the calling thread included (default os.availableParallelism(), at most 64). */
  threads?: number;
  /**
   * GEMMs with M·N·K below this run on the calling thread alone (default 128³; 4× that for small-M products, which
   * are memory-bound). Waking the workers costs some tens of µs.
   */
  parallelThreshold?: number;
  /** Polls of the job counter before a worker (or the caller) blocks in Atomics.wait (default 2000). */
  spin?: number;
  /** GEMMs with at most this many rows M read B in place instead of packing it (default 16). */
  smallM?: number;
  /** GEMM cache blocking: mc (multiple of 4), kc, nc (multiple of 8). */
  blocks?: { mc?: number; kc?: number; nc?: number };
  /** Upper bound of the shared memory (default and maximum 4 GiB). */
  maxMemoryBytes?: number;
  /**
   * Use the relaxed-SIMD (fused multiply-add) GEMM kernels when this Node can run them (default true; also off with
   * $OREAL_WASM_RELAXED=0). Results differ from the plain kernels by float32 rounding only.
   */
  relaxedSimd?: boolean;
}

export interface WasmBackend extends HostKernels, RowKernels {
  readonly name: 'wasm';
  /** The shared memory every kernel works in. */
  readonly memory: WasmMemory;
  /** Whether the GEMM runs the relaxed-SIMD (fused multiply-add) kernels. */
  readonly relaxedSimd: boolean;
  /** Whether `arr` lies in the shared memory (is used in place, without a copy). */
  owns(arr: Float32Array): boolean;
  /** Gives back an array that alloc() returned. */
  free(arr: Float32Array): void;
  /** The current top of the heap, for release(). */
  mark(): number;
  /** Frees everything bump-allocated after `mark`. */
  release(mark: number): void;
  /** Frees every allocation. */
  reset(): void;
  /** Bytes of heap in use (top of the heap minus its start, free blocks below the top included). */
  heapBytes(): number;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const CTRL_OFFSET = PAGE; // the first page stays reserved (the module's unused stack and globals area)
const ALIGN = 64;
const WASM_FILE = 'oreal_kernels.wasm';
/** Row kernels are split over threads in chunks of at least this many elements. */
const ROW_CHUNK = 1 << 14;

function roundUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Finds wasm/oreal_kernels.wasm from src/engine (../../wasm) or dist/src/engine (../../../wasm). */
export function wasmPath(): string {
  for (const rel of ['../../wasm/', '../../../wasm/']) {
    const p = fileURLToPath(new URL(rel + WASM_FILE, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`wasm backend: ${WASM_FILE} not found next to the package (expected <package>/wasm/${WASM_FILE})`);
}

let cachedModule: WasmModule | undefined;
function kernelModule(): WasmModule {
  cachedModule ??= new WA.Module(readFileSync(wasmPath()));
  return cachedModule;
}

const RELAXED_FILE = 'oreal_kernels_relaxed.wasm';
let cachedRelaxed: WasmModule | null | undefined;
/**
 * The relaxed-SIMD build of the kernels (GEMM multiply-adds fused into f32x4.relaxed_madd), or null when it cannot be
 * used: $OREAL_WASM_RELAXED=0, the file is missing, or this Node cannot compile it. Node 20 keeps relaxed SIMD behind
 * --experimental-wasm-relaxed-simd; the flag is turned on here (it only affects wasm compilation) if needed.
 */
function relaxedModule(): WasmModule | null {
  if (cachedRelaxed !== undefined) return cachedRelaxed;
  cachedRelaxed = null;
  if (process.env.OREAL_WASM_RELAXED === '0') return null;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(wasmPath().slice(0, -WASM_FILE.length) + RELAXED_FILE);
  } catch {
    return null;
  }
  try {
    if (!WA.validate(bytes)) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    if (WA.validate(bytes)) cachedRelaxed = new WA.Module(bytes);
  } catch {
    cachedRelaxed = null;
  }
  return cachedRelaxed;
}

type Fn = (...args: number[]) => void;
interface Exports {
  sgemm: Fn;
  sgemm_small: Fn;
  softmax_rows: Fn;
  softmax_backward_rows: Fn;
  rmsnorm_forward: Fn;
  rmsnorm_backward: Fn;
  swiglu_forward: Fn;
  swiglu_backward: Fn;
  rope: Fn;
  add: Fn;
  axpy: Fn;
}

type Part = [m0: number, m1: number, n0: number, n1: number];

/**
 * Splits C (M×N) into at most `threads` rectangles along micro-tile boundaries (4 rows, 8 columns), choosing the grid
 * that minimises the largest part's multiply-adds plus its packing work.
 */
export function partitionGemm(M: number, N: number, K: number, threads: number, nc: number): Part[] {
  const mTiles = Math.ceil(M / 4);
  const nTiles = Math.ceil(N / 8);
  let best: [number, number] = [1, 1];
  let bestCost = Infinity;
  for (let tm = 1; tm <= Math.min(threads, mTiles); tm++) {
    for (let tn = 1; tm * tn <= threads && tn <= nTiles; tn++) {
      const mp = Math.min(M, Math.ceil(mTiles / tm) * 4);
      const np = Math.min(N, Math.ceil(nTiles / tn) * 8);
      const cost = mp * np * K + 8 * (mp * K * Math.ceil(np / nc) + K * np);
      if (cost < bestCost * 0.98) {
        bestCost = cost;
        best = [tm, tn];
      }
    }
  }
  const [tm, tn] = best;
  const parts: Part[] = [];
  for (let a = 0; a < tm; a++) {
    const m0 = Math.floor((a * mTiles) / tm) * 4;
    const m1 = Math.min(M, Math.floor(((a + 1) * mTiles) / tm) * 4);
    for (let b = 0; b < tn; b++) {
      const n0 = Math.floor((b * nTiles) / tn) * 8;
      const n1 = Math.min(N, Math.floor(((b + 1) * nTiles) / tn) * 8);
      if (m1 > m0 && n1 > n0) parts.push([m0, m1, n0, n1]);
    }
  }
  return parts;
}

/**
 * Tile size [tileM, tileN] for a threaded GEMM: about 2–8 tiles per thread (more, smaller tiles balance better when a
 * thread is slow or descheduled), the grid that minimises multiply-adds plus packing work (A and B are packed per
 * tile).
 */
export function gemmTiles(M: number, N: number, K: number, threads: number, nc = 2048): [number, number] {
  const mT = Math.ceil(M / 4);
  const nT = Math.ceil(N / 8);
  const target = Math.max(threads, Math.min(8 * threads, Math.floor((M * N * K) / (1 << 19))));
  let best: [number, number] = [M, N];
  let bestCost = Infinity;
  for (let tm = 1; tm <= Math.min(mT, target); tm++) {
    const tn = Math.min(nT, Math.ceil(target / tm));
    const tileM = Math.ceil(mT / tm) * 4;
    const tileN = Math.ceil(nT / tn) * 8;
    const tiles = Math.ceil(M / tileM) * Math.ceil(N / tileN);
    const cost = tiles * (tileM * tileN * K + 8 * (tileM * K * Math.ceil(tileN / nc) + K * tileN));
    // The slowest thread's share: balance matters as much as total work.
    const span = Math.ceil(tiles / threads) * tileM * tileN * K;
    const score = cost + threads * span;
    if (score < bestCost * 0.98) {
      bestCost = score;
      best = [tileM, tileN];
    }
  }
  return best;
}

class WasmBackendImpl implements WasmBackend {
  readonly name = 'wasm' as const;
  readonly threads: number;
  readonly memory: WasmMemory;
  readonly relaxedSimd: boolean;
  private readonly ex: Exports;
  private readonly ctrl: Int32Array;
  private readonly ctrlF32: Float32Array;
  private tileGen = 0;
  private readonly workers: Worker[] = [];
  private readonly buffers = new Set<ArrayBufferLike>();
  private f32!: Float32Array;
  private i32!: Int32Array;
  private readonly mc: number;
  private readonly kc: number;
  private readonly nc: number;
  private readonly workOffsets: number[] = [];
  private readonly parallelThreshold: number;
  private readonly smallM: number;
  private readonly workFloats: number;
  private readonly spin: number;
  private readonly maxPages: number;
  private readonly heapStart: number;
  private top: number;
  private readonly freeBySize = new Map<number, number[]>();
  private readonly freeByEnd = new Map<number, number>(); // end offset -> start offset of a free block
  private readonly freeStart = new Map<number, number>(); // start offset -> size of a free block
  private disposed = false;

  constructor(opts: WasmBackendOptions) {
    const threads = Math.floor(opts.threads ?? os.availableParallelism());
    if (!(threads >= 1)) throw new RangeError(`wasm backend: threads must be >= 1, got ${opts.threads}`);
    this.threads = Math.min(threads, MAX_WORKERS + 1);
    this.parallelThreshold = opts.parallelThreshold ?? 128 * 128 * 128;
    this.smallM = Math.max(0, Math.floor(opts.smallM ?? 16));
    this.spin = Math.max(0, Math.floor(opts.spin ?? 2000));
    this.mc = roundUp(Math.max(4, opts.blocks?.mc ?? 48), 4); // 48 = 8 panels of 6 rows: measured best at M = N = K = 1024
    this.kc = Math.max(1, opts.blocks?.kc ?? 256);
    this.nc = roundUp(Math.max(8, opts.blocks?.nc ?? 2048), 8);
    this.maxPages = Math.min(MAX_PAGES, Math.floor((opts.maxMemoryBytes ?? MAX_PAGES * PAGE) / PAGE));

    const ctrlBytes = roundUp(CTRL.INTS * 4, ALIGN);
    const workFloats = this.mc * this.kc + this.kc * this.nc + 64;
    this.workFloats = workFloats;
    let off = CTRL_OFFSET + ctrlBytes;
    for (let t = 0; t < this.threads; t++) {
      this.workOffsets.push(off);
      off += roundUp(workFloats * 4, ALIGN);
    }
    this.heapStart = roundUp(off, PAGE);
    this.top = this.heapStart;
    const initialPages = this.heapStart / PAGE + 256; // + 16 MiB of heap
    if (initialPages > this.maxPages) throw new RangeError('wasm backend: maxMemoryBytes is too small for the workspaces');
    this.memory = new WA.Memory({ initial: initialPages, maximum: this.maxPages, shared: true });
    this.refreshViews();
    // The relaxed-SIMD kernels when they compile here and pass a check against a float64 product; else the plain ones.
    let module = opts.relaxedSimd === false ? null : relaxedModule();
    let ex = module ? (new WA.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports) : null;
    if (module && ex && !this.gemmSelfCheck(ex)) {
      module = null;
      ex = null;
    }
    this.relaxedSimd = module !== null;
    module ??= kernelModule();
    this.ex = ex ?? (new WA.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports);
    this.ctrl = new Int32Array(this.memory.buffer, CTRL_OFFSET, CTRL.INTS);
    this.ctrlF32 = new Float32Array(this.memory.buffer, CTRL_OFFSET, CTRL.INTS);
    Atomics.store(this.ctrl, CTRL.TILE_WORD, 0xffff); // no tile job open
    for (let w = 0; w < this.threads - 1; w++) {
      const init: WorkerInit = {
        module,
        memory: this.memory,
        ctrlOffset: CTRL_OFFSET,
        index: w,
        spin: this.spin,
        workOffset: this.workOffsets[w + 1]!,
      };
      const worker = new Worker(new URL('./wasm-worker.js', import.meta.url), {
        workerData: init,
        // Flags such as --input-type (node -e) make a worker fail to start; workers need none of the parent's flags
        // except those that change the engine (kept).
        execArgv: process.execArgv.filter((a) => a.startsWith('--experimental') || a.startsWith('--max-old-space')),
      });
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** A 9×13×7 product (all four transposes) in the free heap, against float64; restores the zeros after. */
  private gemmSelfCheck(ex: Exports): boolean {
    const M = 9;
    const N = 13;
    const K = 7;
    const f = this.f32;
    const pa = this.heapStart;
    const pb = pa + M * K * 4;
    const pc = pb + K * N * 4;
    const base = pa >>> 2;
    const total = M * K + K * N + M * N;
    try {
      for (let i = 0; i < M * K + K * N; i++) f[base + i] = ((i * 37) % 19) / 7 - 1.2;
      for (const ta of [0, 1]) {
        for (const tb of [0, 1]) {
          ex.sgemm(ta, tb, K, pa, ta ? M : K, pb, tb ? K : N, pc, N, 0, 0, M, 0, N, this.workOffsets[0]!, this.mc, this.kc, this.nc);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              let want = 0;
              for (let k = 0; k < K; k++) {
                const a = f[base + (ta ? k * M + i : i * K + k)]!;
                const b = f[(pb >>> 2) + (tb ? j * K + k : k * N + j)]!;
                want += a * b;
              }
              if (!(Math.abs(f[(pc >>> 2) + i * N + j]! - want) <= 1e-5 * (1 + Math.abs(want)))) return false;
            }
          }
        }
      }
      return true;
    } catch {
      return false;
    } finally {
      f.fill(0, base, base + total);
    }
  }

  private refreshViews(): void {
    const buf = this.memory.buffer;
    this.buffers.add(buf);
    this.f32 = new Float32Array(buf);
    this.i32 = new Int32Array(buf);
  }

  private ensure(endByte: number): void {
    const have = this.f32.byteLength;
    if (endByte <= have) return;
    const curPages = have / PAGE;
    const need = Math.ceil((endByte - have) / PAGE);
    const room = this.maxPages - curPages;
    if (need > room) {
      throw new RangeError(
        `wasm backend: out of memory (needs ${endByte} bytes, maximum ${this.maxPages * PAGE}); ` +
          'free or release() arrays, or pass plain Float32Arrays for very large tensors',
      );
    }
    this.memory.grow(Math.min(room, Math.max(need, Math.ceil(curPages / 4))));
    this.refreshViews();
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('wasm backend: used after dispose()');
  }

  owns(arr: Float32Array): boolean {
    return this.buffers.has(arr.buffer);
  }

  // ---- heap ------------------------------------------------------------------------------------------------------
  alloc(length: number): Float32Array {
    this.checkLive();
    if (!(length >= 0) || !Number.isInteger(length)) throw new RangeError(`alloc: bad length ${length}`);
    const size = Math.max(ALIGN, roundUp(length * 4, ALIGN));
    const list = this.freeBySize.get(size);
    let start: number;
    if (list && list.length > 0) {
      start = list.pop()!;
      this.freeStart.delete(start);
      this.freeByEnd.delete(start + size);
    } else {
      start = this.top;
      this.ensure(start + size);
      this.top = start + size;
    }
    const view = new Float32Array(this.f32.buffer, start, length);
    view.fill(0);
    return view;
  }

  free(arr: Float32Array): void {
    if (this.disposed) return;
    const start = arr.byteOffset;
    const size = Math.max(ALIGN, roundUp(arr.length * 4, ALIGN));
    if (!this.owns(arr) || start < this.heapStart || start + size > this.top || start % ALIGN !== 0) {
      throw new RangeError('free: not an array from this backend’s alloc()');
    }
    if (this.freeStart.has(start)) throw new Error('free: array freed twice');
    if (start + size === this.top) {
      this.top = start;
      // Coalesce free blocks now at the top.
      for (let s = this.freeByEnd.get(this.top); s !== undefined; s = this.freeByEnd.get(this.top)) {
        this.removeFree(s);
        this.top = s;
      }
      return;
    }
    this.freeStart.set(start, size);
    this.freeByEnd.set(start + size, start);
    let list = this.freeBySize.get(size);
    if (!list) this.freeBySize.set(size, (list = []));
    list.push(start);
  }

  private removeFree(start: number): void {
    const size = this.freeStart.get(start)!;
    this.freeStart.delete(start);
    this.freeByEnd.delete(start + size);
    const list = this.freeBySize.get(size)!;
    list.splice(list.indexOf(start), 1);
  }

  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    if (!(mark >= this.heapStart && mark <= this.top)) throw new RangeError(`release: bad mark ${mark}`);
    for (const s of [...this.freeStart.keys()]) if (s >= mark) this.removeFree(s);
    this.top = mark;
  }

  reset(): void {
    this.freeBySize.clear();
    this.freeByEnd.clear();
    this.freeStart.clear();
    this.top = this.heapStart;
  }

  heapBytes(): number {
    return this.top - this.heapStart;
  }

  // ---- marshalling of arrays outside the shared memory ------------------------------------------------------------
  // During one call, arrays that are not in the shared memory get scratch space above the heap top (released when
  // the call ends); the same array object passed twice maps to the same scratch (so in-place ops stay in place).
  private scratchMap = new Map<Float32Array, { p: number; copied: boolean; out: boolean }>();
  private writeBack: Array<[Float32Array, number, number]> = [];

  private scratch(bytes: number): number {
    const start = this.top;
    this.ensure(start + bytes);
    this.top = roundUp(start + bytes, ALIGN);
    return start;
  }

  /** Pointer to `n` elements of `arr`; copies them in when `arr` is outside the memory and `copyIn`. */
  private ptr(arr: Float32Array, n: number, copyIn: boolean, out: boolean): number {
    if (this.owns(arr)) return arr.byteOffset;
    let e = this.scratchMap.get(arr);
    if (!e) {
      e = { p: this.scratch(Math.max(4, n * 4)), copied: false, out: false };
      this.scratchMap.set(arr, e);
    }
    if (copyIn && !e.copied) {
      this.f32.set(arr.length === n ? arr : arr.subarray(0, n), e.p >>> 2);
      e.copied = true;
    }
    if (out && !e.out) {
      e.out = true;
      this.writeBack.push([arr, e.p, n]);
    }
    return e.p;
  }

  private withScratch(body: () => void): void {
    this.checkLive();
    const top = this.top;
    try {
      body();
      for (const [arr, p, n] of this.writeBack) arr.set(this.f32.subarray(p >>> 2, (p >>> 2) + n));
    } finally {
      this.top = top;
      this.scratchMap.clear();
      this.writeBack.length = 0;
    }
  }

  private in(arr: Float32Array, n: number): number {
    return this.ptr(arr, n, true, false);
  }
  private out(arr: Float32Array, n: number): number {
    return this.ptr(arr, n, false, true);
  }
  private inout(arr: Float32Array, n: number): number {
    return this.ptr(arr, n, true, true);
  }

  // ---- GEMM --------------------------------------------------------------------------------------------------------
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
    if (M === 0 || N === 0) return;
    this.withScratch(() => {
      const pa = this.in(A, M * K);
      const pb = this.in(B, K * N);
      // C is written: an out-of-memory C that aliases A or B would be clobbered by the copy-back ordering, so an
      // aliasing C is simply not supported (as in BLAS).
      const pc = accumulate ? this.inout(C, M * N) : this.out(C, M * N);
      const ta = transA ? 1 : 0;
      const tb = transB ? 1 : 0;
      const lda = transA ? M : K;
      const ldb = transB ? K : N;
      const acc = accumulate ? 1 : 0;
      const work = this.workOffsets;
      const small = M <= this.smallM && K > 0 && (!transB || M * K + 64 <= this.workFloats); // transB packs A into the workspace
      const threads = this.threads;
      const macs = M * N * K;
      if (small) {
        // B is read in place: split only the columns (no work is duplicated), in strips of 8.
        const kcs = Math.max(1, Math.min(4096, Math.floor((this.workFloats - 64) / (Math.ceil(M / 4) * 4))));
        const strips = Math.ceil(N / 8);
        const tiles = threads > 1 && macs >= 4 * this.parallelThreshold ? Math.min(strips, 4 * threads, MAX_TILES) : 1;
        if (tiles <= 1) {
          this.ex.sgemm_small(ta, tb, K, pa, lda, pb, ldb, pc, N, acc, 0, M, 0, N, work[0]!, kcs);
          return;
        }
        const tileN = Math.ceil(strips / tiles) * 8;
        this.runTiles(T_SGEMM_SMALL, Math.ceil(N / tileN), [ta, tb, K, pa, lda, pb, ldb, pc, N, acc, M, N, tileN, kcs]);
        return;
      }
      const { mc, kc, nc } = this;
      if (!(threads > 1 && macs >= this.parallelThreshold)) {
        this.ex.sgemm(ta, tb, K, pa, lda, pb, ldb, pc, N, acc, 0, M, 0, N, work[0]!, mc, kc, nc);
        return;
      }
      const [tileM, tileN] = gemmTiles(M, N, K, threads);
      const tilesN = Math.ceil(N / tileN);
      this.runTiles(T_SGEMM, Math.ceil(M / tileM) * tilesN, [ta, tb, K, pa, lda, pb, ldb, pc, N, acc, M, N, tileM, tileN, tilesN, mc, kc, nc]);
    });
  }

  /**
   * Runs a tile job (wasm-tiles.ts): posts it, wakes up to ntiles − 1 workers, claims tiles on this thread too, and
   * returns when every tile is done. `f32Args` puts float arguments at those argument indices.
   */
  private runTiles(op: number, ntiles: number, args: number[], f32Args?: Record<number, number>): void {
    const ctrl = this.ctrl;
    const b = CTRL.TJOB;
    if (args.length > TJOB_INTS - 2) throw new Error('wasm backend: too many tile-job arguments');
    ctrl[b] = op;
    for (let i = 0; i < args.length; i++) ctrl[b + 2 + i] = args[i]! | 0;
    if (f32Args) for (const [i, v] of Object.entries(f32Args)) this.ctrlF32[b + 2 + Number(i)] = v;
    Atomics.store(ctrl, b + 1, ntiles);
    Atomics.store(ctrl, CTRL.TILES_DONE, 0);
    Atomics.store(ctrl, CTRL.ERROR, 0);
    this.tileGen = (this.tileGen + 1) & 0x7fff;
    const gen = this.tileGen << 16;
    Atomics.store(ctrl, CTRL.TILE_WORD, gen);
    const wake = Math.min(this.workers.length, ntiles - 1);
    for (let w = 0; w < wake; w++) {
      ctrl[jobBase(w)] = OP_TILES;
      Atomics.add(ctrl, CTRL.SEQ0 + w, 1);
      Atomics.notify(ctrl, CTRL.SEQ0 + w, 1);
    }
    claimTiles(this.ex, ctrl, this.ctrlF32, this.workOffsets[0]!);
    let polls = 0;
    for (;;) {
      const d = Atomics.load(ctrl, CTRL.TILES_DONE);
      if (d >= ntiles) break;
      if (polls < this.spin) polls++;
      else Atomics.wait(ctrl, CTRL.TILES_DONE, d, 1000);
    }
    Atomics.store(ctrl, CTRL.TILE_WORD, gen | 0xffff); // close the job before the next one is written
    if (Atomics.load(ctrl, CTRL.ERROR) !== 0) throw new Error('wasm backend: a kernel failed in a worker thread');
  }

  /** Tiles for an element-wise op over n elements: chunks of at least `minChunk`, up to 4 per thread. */
  private chunking(n: number, minChunk: number): [ntiles: number, chunk: number] {
    if (this.threads <= 1 || n < 2 * minChunk) return [1, n];
    const tiles = Math.min(4 * this.threads, Math.floor(n / minChunk), MAX_TILES);
    const chunk = Math.ceil(n / tiles / 4) * 4;
    return [Math.ceil(n / chunk), chunk];
  }

  // ---- row kernels (run on the calling thread) ----------------------------------------------------------------------
  softmaxRows(x: Float32Array, y: Float32Array, rows: number, cols: number): void {
    rowKernelChecks.softmaxRows(x, y, rows, cols);
    const n = rows * cols;
    this.withScratch(() => {
      const px = this.in(x, n);
      const py = this.out(y, n);
      const [tiles, chunk] = this.chunking(rows, Math.max(1, Math.ceil(ROW_CHUNK / Math.max(1, cols))));
      if (tiles <= 1) this.ex.softmax_rows(px, py, rows, cols);
      else this.runTiles(T_SOFTMAX, tiles, [px, py, rows, cols, chunk]);
    });
  }

  softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
    rowKernelChecks.softmaxBackwardRows(y, dy, dx, rows, cols);
    const n = rows * cols;
    this.withScratch(() => this.ex.softmax_backward_rows(this.in(y, n), this.in(dy, n), this.out(dx, n), rows, cols));
  }

  rmsnormForward(
    x: Float32Array,
    weight: Float32Array,
    y: Float32Array,
    rstd: Float32Array | null,
    rows: number,
    cols: number,
    eps: number,
  ): void {
    rowKernelChecks.rmsnormForward(x, weight, y, rstd, rows, cols);
    const n = rows * cols;
    this.withScratch(() => {
      const px = this.in(x, n);
      const pw = this.in(weight, cols);
      const py = this.out(y, n);
      const pr = rstd ? this.out(rstd, rows) : 0;
      const [tiles, chunk] = this.chunking(rows, Math.max(1, Math.ceil(ROW_CHUNK / Math.max(1, cols))));
      if (tiles <= 1) this.ex.rmsnorm_forward(px, pw, py, pr, rows, cols, eps);
      else this.runTiles(T_RMSNORM_F, tiles, [px, pw, py, pr, rows, cols, 0, chunk], { 6: eps });
    });
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
    const n = rows * cols;
    this.withScratch(() =>
      this.ex.rmsnorm_backward(
        this.in(x, n),
        this.in(weight, cols),
        this.in(rstd, rows),
        this.in(dy, n),
        this.out(dx, n),
        dweight ? this.inout(dweight, cols) : 0,
        rows,
        cols,
      ),
    );
  }

  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    checkLength('swigluForward gate', gate, n);
    checkLength('swigluForward up', up, n);
    checkLength('swigluForward out', out, n);
    this.withScratch(() => {
      const pg = this.in(gate, n);
      const pu = this.in(up, n);
      const po = this.out(out, n);
      const [tiles, chunk] = this.chunking(n, ROW_CHUNK);
      if (tiles <= 1) this.ex.swiglu_forward(pg, pu, po, n);
      else this.runTiles(T_SWIGLU_F, tiles, [pg, pu, po, n, chunk]);
    });
  }

  swigluBackward(
    gate: Float32Array,
    up: Float32Array,
    dout: Float32Array,
    dgate: Float32Array,
    dup: Float32Array,
    n: number,
  ): void {
    for (const [nm, a] of [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const) {
      checkLength(`swigluBackward ${nm}`, a, n);
    }
    this.withScratch(() => {
      const args = [this.in(gate, n), this.in(up, n), this.in(dout, n), this.out(dgate, n), this.out(dup, n)];
      const [tiles, chunk] = this.chunking(n, ROW_CHUNK);
      if (tiles <= 1) this.ex.swiglu_backward(...args, n);
      else this.runTiles(T_SWIGLU_B, tiles, [...args, n, chunk]);
    });
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
    const n = T * H * D;
    checkLength('rope x', x, n);
    checkLength('rope out', out, n);
    let maxPos = 0;
    for (let t = 0; t < T; t++) maxPos = Math.max(maxPos, positions[t]!);
    const tab = (maxPos + 1) * (D / 2);
    this.withScratch(() => {
      const pp = this.scratch(Math.max(4, T * 4));
      this.i32.set(positions.subarray(0, T), pp >>> 2);
      const args = [this.in(x, n), this.out(out, n), T, H, D, pp, this.in(cos, tab), this.in(sin, tab), inverse ? 1 : 0];
      const [tiles, chunk] = this.chunking(T, Math.max(1, Math.ceil(ROW_CHUNK / Math.max(1, H * D))));
      if (tiles <= 1) this.ex.rope(...args);
      else this.runTiles(T_ROPE, tiles, [...args, chunk]);
    });
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    checkLength('add a', a, n);
    checkLength('add b', b, n);
    checkLength('add out', out, n);
    this.withScratch(() => {
      const pa = this.in(a, n);
      const pb = this.in(b, n);
      const po = this.out(out, n);
      const [tiles, chunk] = this.chunking(n, 4 * ROW_CHUNK);
      if (tiles <= 1) this.ex.add(pa, pb, po, n);
      else this.runTiles(T_ADD, tiles, [pa, pb, po, n, chunk]);
    });
  }

  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void {
    checkLength('axpy x', x, n);
    checkLength('axpy y', y, n);
    this.withScratch(() => this.ex.axpy(alpha, this.in(x, n), this.inout(y, n), n));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (let w = 0; w < this.workers.length; w++) {
      this.ctrl[jobBase(w)] = OP_STOP;
      Atomics.add(this.ctrl, CTRL.SEQ0 + w, 1);
      Atomics.notify(this.ctrl, CTRL.SEQ0 + w);
    }
    for (const worker of this.workers) void worker.terminate();
    this.workers.length = 0;
  }
}

/** Creates the WebAssembly SIMD backend (see the top of this file for threads and memory). */
export function createWasmBackend(opts: WasmBackendOptions = {}): WasmBackend {
  return new WasmBackendImpl(opts);
}
