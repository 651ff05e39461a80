// f32 GEMM in WGSL: C (M×N) = opA · opB, or C += opA · opB, with the transposes the model needs, on buffers at
// element offsets. Storage and accumulation are f32 (the reference path; no TF32-like shortcuts).
//
// Tiling: a 256-thread workgroup owns a 128×128 tile of C and walks K in steps of 16, staging a 16×128 slice of opA
// and of opB in workgroup memory, K-major, so that every thread reads its operands as vec4s. Each thread accumulates an
// 8×8 block made of four 4×4 sub-blocks at rows {4ty.., 64+4ty..} and columns {4tx.., 64+4tx..}: a warp's reads of
// opB's row are contiguous and its reads of opA's are broadcasts, so shared-memory reads do not conflict. Global loads
// are scalar, ordered so that consecutive threads touch consecutive addresses of whichever layout A and B have.
// Out-of-range lanes of a ragged edge tile are zeroed by a select; their (unused) reads rely on WebGPU's robust buffer
// access, which Dawn always applies unless its disable_robustness toggle is set (oreal never sets it).
//
// Measured on one H200 (bench/webgpu-gemm.ts against bench/gpu_anchor.py in the same call): 25.9 TFLOP/s at 4096³,
// 0.51× PyTorch fp32 (TF32 off, 51.1). Tried in the same kind of call and slower or no better: a K slice of 8 (24.3)
// or 32 (22.6), vec4 global loads on aligned operands (25.2 at bk 16, 20.1 at bk 32), and register prefetch of the
// next K slice (20.0: more registers, fewer resident workgroups). So global loads are not the limit; the inner loop
// is. Other tiles (GemmVariant.tile, e.g. 128×64 with 8×4 per thread) are built and tested but not timed on a GPU yet
// (bench/gpu-report.sh sweeps them); subgroup-matrix (tensor core) paths are still open.
//
// A C with few tiles and a long K is split over K (kSplitOf below: a second pass sums the partial products in a fixed
// order). Not yet measured on a GPU: bench/gpu-report.sh times the 0.5B step's and decode's skinny shapes with the
// split on and off next to PyTorch.
import type { KernelLayout, WebGpuDevice } from './device.js';
import { BindingWindows, blocks, type BoundWindow } from './window.js';

/** A workgroup's tile of C (bm × bn) and each thread's share of it (tm × tn, multiples of 4). */
export interface GemmTile {
  bm: number;
  bn: number;
  tm: 4 | 8;
  tn: 4 | 8;
}

/** Kernel shape choices, for benchmarking (the defaults are the measured best). */
export interface GemmVariant {
  /** K slice staged per step: 8, 16 or 32 (workgroup memory bk·(bm + bn)·4 bytes). */
  bk: 8 | 16 | 32;
  /**
   * The tile: 128×128 with 8×8 per thread (256 threads) by default. Others (e.g. 128×64 with 8×4, 64×64 with 4×4)
   * are for timing on a GPU: `node dist/bench/webgpu-gemm.js --variants bk16@128x64/8x4`.
   */
  tile: GemmTile;
  /** Unroll the loop over the staged K slice in the WGSL (constant workgroup-memory offsets), for timing on a GPU. */
  unrollK?: boolean;
  /**
   * A GEMM with M ≤ 32 (≤ 64) runs on a tile of 32 (64) rows, 4 a thread, instead of `tile` (default true): a decode
   * step's M is its batch, and on a 128-row tile most multiply-adds would fall on rows past M.
   */
  smallM?: boolean;
  /**
   * Read the operands as vec4 where their storage allows (offsets and the contiguous leading dimension multiples of
   * 4): 'auto' uses it when it applies, 'off' never.
   */
  vec4Loads: 'auto' | 'off';
  /**
   * Split K across workgroups when C has too few tiles to fill the GPU (`splitK` below): 'auto' by shape, 'off' never,
   * or a number of slices to use whenever K allows (tests and benchmarks).
   */
  splitK: 'auto' | 'off' | number;
}

export const DEFAULT_GEMM_VARIANT: GemmVariant = { bk: 16, tile: { bm: 128, bn: 128, tm: 8, tn: 8 }, vec4Loads: 'off', splitK: 'auto' };

/** Why `tile` cannot run with K slice `bk` on a device with these limits, or null when it can. */
export function tileProblem(tile: GemmTile, bk: number, limits: { maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupStorageSize: number }): string | null {
  const { bm, bn, tm, tn } = tile;
  if (![4, 8].includes(tm) || ![4, 8].includes(tn)) return `thread tile ${tm}×${tn} is not made of 4 or 8`;
  if (!Number.isInteger(bm / tm) || !Number.isInteger(bn / tn) || bm <= 0 || bn <= 0) return `tile ${bm}×${bn} is not a multiple of ${tm}×${tn}`;
  const threads = (bm / tm) * (bn / tn);
  if (threads > limits.maxComputeInvocationsPerWorkgroup) return `tile ${bm}×${bn}/${tm}×${tn} needs ${threads} threads a workgroup; this adapter allows ${limits.maxComputeInvocationsPerWorkgroup}`;
  const bytes = 4 * bk * (bm + bn);
  if (bytes > limits.maxComputeWorkgroupStorageSize) return `bk ${bk} with tile ${bm}×${bn} needs ${bytes} bytes of workgroup memory; this adapter has ${limits.maxComputeWorkgroupStorageSize}`;
  return null;
}

/**
 * Split-K. A C with few 128×128 tiles and a long K (a projection's weight gradient, Wᵀ-shaped [896, 896] summed over
 * 8,192 tokens; a decode step's [64, 896] output) leaves most of a large GPU idle while a few workgroups walk all of K.
 * Such a GEMM runs as S workgroup layers, each over one slice of K writing its own partial C to a scratch buffer, then
 * a second pass sums the S partials in a fixed order (deterministic: the split depends on M, N and K only). WebGPU does
 * not say how many multiprocessors there are; the target is sized for the largest (132 on an H100/H200), and a GPU
 * with fewer just runs more waves.
 */
const SPLIT_TARGET_WORKGROUPS = 256;
/** Split only when C has fewer tiles than this. */
const SPLIT_BELOW_TILES = SPLIT_TARGET_WORKGROUPS / 2;
/** The shortest K slice worth a workgroup (its partial tile costs as much memory traffic as 128 K of compute). */
const MIN_K_CHUNK = 128;
const MAX_SPLIT = 16;
/** Floats of partial products at most (64 MiB); a larger split is cut down to fit. */
const MAX_SCRATCH_FLOATS = 1 << 24;

/** How one GEMM block is split over K: S slices of kChunk (the last may be shorter). */
export interface KSplit {
  S: number;
  kChunk: number;
}

/**
 * The split of an M×N×K GEMM (see SPLIT_TARGET_WORKGROUPS), for a K slice granule `bk`, a scratch cap in floats and
 * the workgroup tile (default 128×128).
 */
export function kSplitOf(M: number, N: number, K: number, bk: number, mode: GemmVariant['splitK'], scratchFloats: number, tile: { bm: number; bn: number } = DEFAULT_GEMM_VARIANT.tile): KSplit {
  const whole = { S: 1, kChunk: K };
  if (mode === 'off' || M * N === 0) return whole;
  let S: number;
  if (mode === 'auto') {
    const tiles = Math.ceil(M / tile.bm) * Math.ceil(N / tile.bn);
    if (tiles >= SPLIT_BELOW_TILES) return whole;
    S = Math.min(MAX_SPLIT, Math.floor(K / MIN_K_CHUNK), Math.ceil(SPLIT_TARGET_WORKGROUPS / tiles));
  } else {
    if (!(Number.isInteger(mode) && mode >= 1)) throw new RangeError(`gemm: splitK ${mode} is not 'auto', 'off' or a positive integer`);
    S = Math.min(mode, Math.ceil(K / bk));
  }
  S = Math.min(S, Math.floor(scratchFloats / (M * N)));
  if (S <= 1) return whole;
  const kChunk = Math.ceil(K / S / bk) * bk;
  return { S: Math.ceil(K / kChunk), kChunk };
}

/** Sums S partial C blocks (P[z] is M×N, row stride N) into C (row stride ldC), or adds the sum to C. */
const REDUCE_SHADER = /* wgsl */ `
struct Params { M: u32, N: u32, S: u32, offC: u32, ldC: u32, zStride: u32, accumulate: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let n = g.x;
  let m = g.y;
  if (n >= p.N || m >= p.M) { return; }
  var s = 0.0;
  for (var z = 0u; z < p.S; z++) { s += P[z * p.zStride + m * p.N + n]; }
  let o = p.offC + m * p.ldC + n;
  if (p.accumulate != 0u) { C[o] = C[o] + s; } else { C[o] = s; }
}
`;

export interface GemmArgs {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  A: GPUBuffer;
  B: GPUBuffer;
  C: GPUBuffer;
  /** Element offsets into the buffers (default 0). */
  offA?: number;
  offB?: number;
  offC?: number;
  accumulate: boolean;
}

/**
 * The WGSL of one variant. `fromC` names the operands that live in C's buffer (views of one buffer): WebGPU cannot bind
 * a buffer twice when one binding writes it, so those operands are read through C's binding (and not as vec4).
 */
function shader(transA: boolean, transB: boolean, v: GemmVariant, vec: boolean, fromC: { A: boolean; B: boolean }): string {
  const { bk, tile } = v;
  const { bm, bn, tm, tn } = tile;
  const threads = (bm / tm) * (bn / tn);
  // Staging: each thread stores vec4s of opA's slice and of opB's, each four consecutive rows (columns) of one k. Where
  // storage is contiguous along those four, consecutive threads take consecutive groups of four; otherwise they take
  // consecutive k, so that a warp still reads 64-byte runs. Out-of-range lanes are zero.
  const stage = (name: 'A' | 'B', trans: boolean): string => {
    const contig = name === 'A' ? trans : !trans;
    const lim = name === 'A' ? 'p.M' : 'p.N';
    const base = name === 'A' ? 'row0' : 'col0';
    const off = name === 'A' ? 'p.offA' : 'p.offB';
    const w4 = (name === 'A' ? bm : bn) / 4; // vec4s in one k row of the staged slice
    // Element (r, k) of opA, or (k, r) of opB, in storage; r is a row of opA or a column of opB.
    const at = (r: string, k: string): string =>
      name === 'A' ? (trans ? `${off} + ${k} * p.ldA + ${r}` : `${off} + ${r} * p.ldA + ${k}`) : trans ? `${off} + ${r} * p.ldB + ${k}` : `${off} + ${k} * p.ldB + ${r}`;
    const src = fromC[name] ? 'C' : name;
    const get = (i: string): string => (vec && src !== 'C' ? `${src}[(${i}) / 4u][(${i}) % 4u]` : `${src}[${i}]`);
    const pick = contig ? `let r4 = idx % ${w4}u; let k = idx / ${w4}u;` : 'let k = idx % BK; let r4 = idx / BK;';
    const lanes = [0, 1, 2, 3].map((c) => `select(0.0, ${get(at(`(gr + ${c}u)`, 'gk'))}, gr + ${c}u < ${lim} && gk < ke)`).join(',\n            ');
    const scalar = `vec4<f32>(\n            ${lanes})`;
    // Aligned contiguous storage: one vec4 load when the four lanes are all in range.
    const value = vec && contig && src !== 'C' ? `select(${scalar}, ${src}[(${at('gr', 'gk')}) / 4u], gr + 3u < ${lim} && gk < ke)` : scalar;
    const total = bk * w4;
    const guard = total % threads === 0 ? '' : `if (idx >= ${total}u) { break; }`;
    return `for (var h = 0u; h < ${Math.ceil(total / threads)}u; h++) {
        let idx = tid + h * ${threads}u;
        ${guard}
        ${pick}
        let gr = ${base} + r4 * 4u;
        let gk = k0 + k;
        ${name}s[k * ${w4}u + r4] = ${value};
      }`;
  };
  // A thread owns tm rows × tn columns of the tile, as groups of 4: row group g holds rows g·(bm·4/tm) + 4·ty + 0..3,
  // column group h columns h·(bn·4/tn) + 4·tx + 0..3. A warp's reads of opB's row are then contiguous and its reads of
  // opA's are broadcasts, so workgroup-memory reads do not conflict. acc{r}_{h}: row r (0..tm−1), column group h.
  const rg = tm / 4;
  const cg = tn / 4;
  const comp = ['x', 'y', 'z', 'w'];
  const accDecl: string[] = [];
  const fmas: string[] = [];
  const stores: string[] = [];
  const loads: string[] = [];
  for (let g = 0; g < rg; g++) loads.push(`let a${g} = As[k * ${bm / 4}u + ${g * (bm / tm)}u + ty];`);
  for (let h = 0; h < cg; h++) loads.push(`let b${h} = Bs[k * ${bn / 4}u + ${h * (bn / tn)}u + tx];`);
  for (let r = 0; r < tm; r++)
    for (let h = 0; h < cg; h++) {
      const acc = `acc${r}_${h}`;
      accDecl.push(`var ${acc} = vec4<f32>(0.0);`);
      fmas.push(`${acc} = fma(vec4<f32>(a${Math.floor(r / 4)}.${comp[r % 4]}), b${h}, ${acc});`);
      stores.push(`store(wg.z, row0 + ${Math.floor(r / 4) * ((bm * 4) / tm) + (r % 4)}u + ty * 4u, col0 + ${h * ((bn * 4) / tn)}u + tx * 4u, ${acc});`);
    }
  // Bindings in the order of layoutOf: A, B (each absent when read through C), C, the parameters.
  const bindingB = fromC.A ? 0 : 1;
  const bindingC = bindingB + (fromC.B ? 0 : 1);
  return /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, offA: u32, offB: u32, offC: u32, accumulate: u32, ldA: u32, ldB: u32, ldC: u32, kChunk: u32, zStride: u32 }
${fromC.A ? '' : `@group(0) @binding(0) var<storage, read> A: array<${vec ? 'vec4<f32>' : 'f32'}>;`}
${fromC.B ? '' : `@group(0) @binding(${bindingB}) var<storage, read> B: array<${vec ? 'vec4<f32>' : 'f32'}>;`}
@group(0) @binding(${bindingC}) var<storage, read_write> C: array<f32>;
@group(0) @binding(${bindingC + 1}) var<uniform> p: Params;

const BK = ${bk}u;
var<workgroup> As: array<vec4<f32>, ${(bk * bm) / 4}>; // [k][m / 4]
var<workgroup> Bs: array<vec4<f32>, ${(bk * bn) / 4}>; // [k][n / 4]

fn store(z: u32, gm: u32, gn: u32, v: vec4<f32>) {
  if (gm >= p.M) { return; }
  let o = p.offC + z * p.zStride + gm * p.ldC + gn;
  for (var j = 0u; j < 4u; j++) {
    if (gn + j < p.N) {
      if (p.accumulate != 0u) { C[o + j] = C[o + j] + v[j]; } else { C[o + j] = v[j]; }
    }
  }
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * ${bm}u;
  let col0 = wg.x * ${bn}u;
  let ty = tid / ${bn / tn}u;
  let tx = tid % ${bn / tn}u;
  // Split K: workgroup layer z takes K's slice [kb, ke) and writes its own partial product (gemm_reduce sums them).
  let kb = wg.z * p.kChunk;
  let ke = min(p.K, kb + p.kChunk);
  ${accDecl.join('\n  ')}
  for (var k0 = kb; k0 < ke; k0 += BK) {
      ${stage('A', transA)}
      ${stage('B', transB)}
    workgroupBarrier();
    ${
      v.unrollK === true
        ? Array.from({ length: bk }, (_, k) => `{\n      let k = ${k}u;\n      ${loads.join('\n      ')}\n      ${fmas.join('\n      ')}\n    }`).join('\n    ')
        : `for (var k = 0u; k < BK; k++) {\n      ${loads.join('\n      ')}\n      ${fmas.join('\n      ')}\n    }`
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}
`;
}

/** Compiled GEMM pipelines of one device, one per (transA, transB, vec4 loads). */
export class WebGpuGemm {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  readonly variant: GemmVariant;

  private readonly windows: BindingWindows;

  constructor(
    private readonly dev: WebGpuDevice,
    variant: Partial<GemmVariant> = {},
    /** How operands are bound (default: the adapter's whole binding limit). */
    windows?: BindingWindows,
  ) {
    this.variant = { ...DEFAULT_GEMM_VARIANT, ...variant };
    this.windows = windows ?? new BindingWindows(dev.limits.maxStorageBufferBindingSize, dev.limits.minStorageBufferOffsetAlignment);
    if (![8, 16, 32].includes(this.variant.bk)) throw new Error(`gemm: bk ${this.variant.bk} is not 8, 16 or 32`);
    for (const M of [Infinity, 64, 32]) {
      const problem = tileProblem(this.tileFor(M), this.variant.bk, dev.limits);
      if (problem !== null) throw new Error(`gemm: ${problem}`);
    }
  }

  /** Bindings: A (read), B (read), C (read-write), parameters; A or B absent when read through C's binding. */
  private layoutOf(fromC: { A: boolean; B: boolean }): KernelLayout {
    return this.dev.layout([...(fromC.A ? [] : ['r' as const]), ...(fromC.B ? [] : ['r' as const]), 'w', 'u']);
  }

  /** The tile of a GEMM with M rows (see GemmVariant.smallM). */
  tileFor(M: number): GemmTile {
    const t = this.variant.tile;
    if (this.variant.smallM === false || M > 64 || t.bm <= 32) return t;
    const bm = M <= 32 ? 32 : 64;
    return bm < t.bm ? { bm, bn: t.bn, tm: 4, tn: t.tn } : t;
  }

  private pipeline(transA: boolean, transB: boolean, vec: boolean, fromC: { A: boolean; B: boolean }, tile: GemmTile): GPUComputePipeline {
    const key = `${+transA}${+transB}${+vec}${+fromC.A}${+fromC.B}:${tile.bm}x${tile.bn}/${tile.tm}x${tile.tn}`;
    let pl = this.pipelines.get(key);
    if (pl === undefined) {
      const module = this.dev.device.createShaderModule({ code: shader(transA, transB, { ...this.variant, tile }, vec, fromC), label: `gemm${key}` });
      pl = this.dev.device.createComputePipeline({ layout: this.layoutOf(fromC).pipeline, compute: { module, entryPoint: 'main' }, label: `gemm${key}` });
      this.pipelines.set(key, pl);
    }
    return pl;
  }

  /**
   * Encodes one GEMM into the device's pending command encoder (run at the next flush/read). An operand larger than
   * one binding window (window.ts) makes it run as blocks of C's rows and columns, and of K (accumulating), each block's
   * operands spans that do fit.
   */
  encode(a: GemmArgs): void {
    const { M, N, K } = a;
    for (const [k, v] of [['M', M], ['N', N], ['K', K]] as const)
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** 31) throw new RangeError(`gemm: ${k} = ${v} is not a valid size`);
    const offA = a.offA ?? 0;
    const offB = a.offB ?? 0;
    const offC = a.offC ?? 0;
    const need = (buf: GPUBuffer, off: number, n: number, what: string): void => {
      if ((off + n) * 4 > buf.size) throw new RangeError(`gemm: ${what} needs ${off + n} floats from its buffer, which holds ${buf.size / 4}`);
    };
    need(a.A, offA, M * K, 'A');
    need(a.B, offB, K * N, 'B');
    need(a.C, offC, M * N, 'C');
    if (M === 0 || N === 0) return;
    const overlaps = (o: number, n: number): boolean => o < offC + M * N && offC < o + n;
    if ((a.A === a.C && overlaps(offA, M * K)) || (a.B === a.C && overlaps(offB, K * N))) throw new RangeError('gemm: C overlaps an input');
    const ld = { A: a.transA ? M : K, B: a.transB ? K : N, C: N };
    const bs = this.blockSizes(a.transA, a.transB, M, N, K, ld);
    for (const [m0, m] of blocks(M, bs.m))
      for (const [n0, n] of blocks(N, bs.n))
        for (const [k0, k] of blocks(K, bs.k))
          this.encodeBlock(a, ld, m, n, k, {
            A: offA + (a.transA ? k0 * ld.A + m0 : m0 * ld.A + k0),
            B: offB + (a.transB ? n0 * ld.B + k0 : k0 * ld.B + n0),
            C: offC + m0 * ld.C + n0,
            accumulate: a.accumulate || k0 > 0,
          });
  }

  /**
   * Block sizes of M, N and K such that every operand's block, stored as rows of its leading dimension, spans
   * (rows − 1)·ld + cols elements that fit one window: all of M, N, K unless an operand is larger than a window.
   */
  private blockSizes(transA: boolean, transB: boolean, M: number, N: number, K: number, ld: { A: number; B: number; C: number }): { m: number; n: number; k: number } {
    const S = this.windows.maxSpan;
    const b = { m: M, n: N, k: K };
    type Dim = keyof typeof b;
    // Each operand as stored: its row dimension, its column dimension, its leading dimension.
    const stored: Array<[Dim, Dim, number]> = [transA ? ['k', 'm', ld.A] : ['m', 'k', ld.A], transB ? ['n', 'k', ld.B] : ['k', 'n', ld.B], ['m', 'n', ld.C]];
    for (let changed = true; changed; ) {
      changed = false;
      for (const [r, c, l] of stored) {
        if (b[r] === 0 || b[c] === 0 || (b[r] - 1) * l + b[c] <= S) continue;
        if (b[c] <= S) b[r] = Math.floor((S - b[c]) / l) + 1;
        else [b[r], b[c]] = [1, S];
        changed = true;
      }
    }
    // Whole tiles where a dimension is cut (smaller blocks still fit).
    const { bm, bn } = this.tileFor(M);
    if (b.m < M && b.m > bm) b.m -= b.m % bm;
    if (b.n < N && b.n > bn) b.n -= b.n % bn;
    if (b.k < K && b.k > this.variant.bk) b.k -= b.k % this.variant.bk;
    return b;
  }

  /** How an unblocked M×N×K GEMM is split over K on this device (kSplitOf with this variant and scratch cap). */
  splitOf(M: number, N: number, K: number): KSplit {
    return kSplitOf(M, N, K, this.variant.bk, this.variant.splitK, Math.min(MAX_SCRATCH_FLOATS, this.windows.maxSpan), this.tileFor(M));
  }

  private reducePipeline: GPUComputePipeline | null = null;

  /** Dispatches of C block [M, N] (row stride ld.C) from A and B blocks at the given element offsets: one, or two when K is split. */
  private encodeBlock(a: GemmArgs, ld: { A: number; B: number; C: number }, M: number, N: number, K: number, at: { A: number; B: number; C: number; accumulate: boolean }): void {
    const split = this.splitOf(M, N, K);
    const span = (rows: number, cols: number, l: number): number => (rows === 0 || cols === 0 ? 0 : (rows - 1) * l + cols);
    const spanA = a.transA ? span(K, M, ld.A) : span(M, K, ld.A);
    const spanB = a.transB ? span(N, K, ld.B) : span(K, N, ld.B);
    // Split: the partials go to the scratch buffer (row stride N, one M×N layer per slice), never C.
    const scratch = split.S > 1 ? this.dev.scratch('gemm.splitK', split.S * M * N, Math.min(MAX_SCRATCH_FLOATS, this.windows.maxSpan)) : null;
    const fromC = { A: scratch === null && a.A === a.C, B: scratch === null && a.B === a.C };
    // C's window also covers the operands read through C's binding.
    let lo = at.C;
    let hi = at.C + span(M, N, ld.C);
    if (fromC.A) [lo, hi] = [Math.min(lo, at.A), Math.max(hi, at.A + spanA)];
    if (fromC.B) [lo, hi] = [Math.min(lo, at.B), Math.max(hi, at.B + spanB)];
    const vec =
      this.variant.vec4Loads === 'auto' &&
      !fromC.A &&
      !fromC.B &&
      this.windows.alignBytes % 16 === 0 &&
      at.A % 4 === 0 &&
      at.B % 4 === 0 &&
      ld.A % 4 === 0 &&
      ld.B % 4 === 0;
    const win = {
      C: this.windows.bind(a.C, lo, hi, 'matmul'),
      A: fromC.A ? null : this.windows.bind(a.A, at.A, at.A + spanA, 'matmul', vec ? 16 : 4),
      B: fromC.B ? null : this.windows.bind(a.B, at.B, at.B + spanB, 'matmul', vec ? 16 : 4),
    };
    const baseA = (win.A ?? win.C).base;
    const baseB = (win.B ?? win.C).base;
    const out = scratch === null ? { binding: win.C.binding, off: at.C - win.C.base, ld: ld.C, acc: at.accumulate } : { binding: { buffer: scratch, offset: 0, size: split.S * M * N * 4 }, off: 0, ld: N, acc: false };
    const params = new Uint32Array([M, N, K, at.A - baseA, at.B - baseB, out.off, out.acc ? 1 : 0, ld.A, ld.B, out.ld, split.kChunk, M * N]);
    const storage = [...(win.A ? [win.A.binding] : []), ...(win.B ? [win.B.binding] : []), out.binding];
    const tile = this.tileFor(M);
    this.dev.dispatch(`matmul ${+a.transA}${+a.transB}`, this.pipeline(a.transA, a.transB, vec, fromC, tile), this.layoutOf(fromC), params.buffer, storage, Math.ceil(N / tile.bn), Math.ceil(M / tile.bm), split.S);
    if (scratch !== null) this.encodeReduce(out.binding, win.C, M, N, split.S, at.C, ld.C, at.accumulate);
  }

  /** The second pass of a split GEMM: C block = (or +=) the sum of the S partials. */
  private encodeReduce(partials: GPUBufferBinding, c: BoundWindow, M: number, N: number, S: number, offC: number, ldC: number, accumulate: boolean): void {
    if (M > this.dev.limits.maxComputeWorkgroupsPerDimension) throw new RangeError(`gemm: a split block of ${M} rows exceeds the dispatch limit`);
    const layout = this.dev.layout(['r', 'w', 'u']);
    this.reducePipeline ??= this.dev.device.createComputePipeline({
      layout: layout.pipeline,
      compute: { module: this.dev.device.createShaderModule({ code: REDUCE_SHADER, label: 'gemm_reduce' }), entryPoint: 'main' },
      label: 'gemm_reduce',
    });
    const params = new Uint32Array([M, N, S, offC - c.base, ldC, M * N, accumulate ? 1 : 0, 0]);
    this.dev.dispatch('matmul reduce', this.reducePipeline, layout, params.buffer, [partials, c.binding], Math.ceil(N / 256), M);
  }
}
