// Dynamically scheduled jobs of the wasm backend ("tile jobs"), shared by the main thread and its workers. Not a
// public module.
//
// A tile job splits one kernel call into `ntiles` independent tiles (a rectangle of C for GEMM, a range of rows or
// elements for the row kernels). Every participating thread (the caller and any awake workers) claims the next tile
// with a compare-exchange on CTRL.TILE_WORD = (generation << 16) | next, runs it, and increments CTRL.TILES_DONE; the
// caller returns once TILES_DONE = ntiles. A worker that wakes late (descheduled on a busy machine) finds nothing left
// and goes back to sleep, so the caller never waits for a thread that has no work: it does the work itself.
//
// Protocol (the caller side is WasmBackendImpl.runTiles):
//   1. the caller writes the job (op, ntiles, arguments) at CTRL.TJOB, zeroes TILES_DONE, then stores TILE_WORD =
//      (gen << 16) | 0 with a fresh generation;
//   2. threads claim tiles; arguments are read only after a successful claim (the job cannot end while a claimed
//      tile runs, so they are stable);
//   3. when TILES_DONE = ntiles the caller "closes" the job (TILE_WORD = (gen << 16) | 0xffff) before writing the next
//      one, so a stale claim attempt always fails.
import { CTRL } from './wasm-protocol.js';

export const T_SGEMM = 1;
export const T_SGEMM_SMALL = 2;
export const T_SWIGLU_F = 3;
export const T_SWIGLU_B = 4;
export const T_RMSNORM_F = 5;
export const T_ROPE = 6;
export const T_ADD = 7;
export const T_SOFTMAX = 8;

/** Most tiles in one job (the claim counter has 16 bits; 0xffff marks a closed job). */
export const MAX_TILES = 0xfffe;
/** Ints at CTRL.TJOB: op, ntiles, then up to 30 arguments. */
export const TJOB_INTS = 32;

type Fn = (...args: number[]) => void;
export interface TileExports {
  sgemm: Fn;
  sgemm_small: Fn;
  swiglu_forward: Fn;
  swiglu_backward: Fn;
  rmsnorm_forward: Fn;
  rope: Fn;
  add: Fn;
  softmax_rows: Fn;
}

/** Runs tile `t` of the job at CTRL.TJOB. `work` is the calling thread's private GEMM workspace (byte offset). */
export function runTile(ex: TileExports, ctrl: Int32Array, f32: Float32Array, t: number, work: number): void {
  const b = CTRL.TJOB;
  const a = (i: number): number => ctrl[b + 2 + i]!;
  // Pointers are byte offsets below 4 GiB: read them unsigned, add offsets, and let wasm's ToInt32 wrap them.
  const p = (i: number): number => ctrl[b + 2 + i]! >>> 0;
  switch (ctrl[b]!) {
    case T_SGEMM: {
      // ta, tb, K, pa, lda, pb, ldb, pc, ldc, acc, M, N, tileM, tileN, tilesN, mc, kc, nc
      const M = a(10);
      const N = a(11);
      const tileM = a(12);
      const tileN = a(13);
      const tilesN = a(14);
      const m0 = Math.floor(t / tilesN) * tileM;
      const n0 = (t % tilesN) * tileN;
      ex.sgemm(a(0), a(1), a(2), p(3), a(4), p(5), a(6), p(7), a(8), a(9), m0, Math.min(M, m0 + tileM), n0, Math.min(N, n0 + tileN), work, a(15), a(16), a(17));
      return;
    }
    case T_SGEMM_SMALL: {
      // ta, tb, K, pa, lda, pb, ldb, pc, ldc, acc, M, N, tileN, kcs
      const N = a(11);
      const n0 = t * a(12);
      ex.sgemm_small(a(0), a(1), a(2), p(3), a(4), p(5), a(6), p(7), a(8), a(9), 0, a(10), n0, Math.min(N, n0 + a(12)), work, a(13));
      return;
    }
    case T_SWIGLU_F: {
      // gate, up, out, n, chunk
      const i0 = t * a(4);
      const len = Math.min(a(3) - i0, a(4));
      ex.swiglu_forward(p(0) + 4 * i0, p(1) + 4 * i0, p(2) + 4 * i0, len);
      return;
    }
    case T_SWIGLU_B: {
      // gate, up, dout, dgate, dup, n, chunk
      const i0 = t * a(6);
      const len = Math.min(a(5) - i0, a(6));
      const o = 4 * i0;
      ex.swiglu_backward(p(0) + o, p(1) + o, p(2) + o, p(3) + o, p(4) + o, len);
      return;
    }
    case T_RMSNORM_F: {
      // x, w, y, rstd (0 = none), rows, cols, eps (f32 bits), chunkRows
      const r0 = t * a(7);
      const rows = Math.min(a(4) - r0, a(7));
      const cols = a(5);
      const o = 4 * r0 * cols;
      ex.rmsnorm_forward(p(0) + o, p(1), p(2) + o, a(3) === 0 ? 0 : p(3) + 4 * r0, rows, cols, f32[b + 2 + 6]!);
      return;
    }
    case T_ROPE: {
      // x, out, T, H, D, pos, cos, sin, inverse, chunkT
      const t0 = t * a(9);
      const T = Math.min(a(2) - t0, a(9));
      const o = 4 * t0 * a(3) * a(4);
      ex.rope(p(0) + o, p(1) + o, T, a(3), a(4), p(5) + 4 * t0, p(6), p(7), a(8));
      return;
    }
    case T_ADD: {
      // a, b, out, n, chunk
      const i0 = t * a(4);
      const len = Math.min(a(3) - i0, a(4));
      ex.add(p(0) + 4 * i0, p(1) + 4 * i0, p(2) + 4 * i0, len);
      return;
    }
    case T_SOFTMAX: {
      // x, y, rows, cols, chunkRows
      const r0 = t * a(4);
      const rows = Math.min(a(2) - r0, a(4));
      const o = 4 * r0 * a(3);
      ex.softmax_rows(p(0) + o, p(1) + o, rows, a(3));
      return;
    }
    default:
      throw new Error(`wasm backend: unknown tile op ${ctrl[b]}`);
  }
}

/**
 * Claims and runs tiles of the current job until none is left; returns how many this thread ran. A tile that throws
 * sets CTRL.ERROR (and still counts as done, so the caller never hangs).
 */
export function claimTiles(ex: TileExports, ctrl: Int32Array, f32: Float32Array, work: number): number {
  let ran = 0;
  for (;;) {
    const v = Atomics.load(ctrl, CTRL.TILE_WORD);
    const next = v & 0xffff;
    if (next >= Atomics.load(ctrl, CTRL.TJOB + 1)) return ran;
    if (Atomics.compareExchange(ctrl, CTRL.TILE_WORD, v, v + 1) !== v) continue;
    try {
      runTile(ex, ctrl, f32, next, work);
    } catch {
      Atomics.store(ctrl, CTRL.ERROR, 1);
    }
    ran++;
    Atomics.add(ctrl, CTRL.TILES_DONE, 1);
    Atomics.notify(ctrl, CTRL.TILES_DONE);
  }
}
