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
// is. Still open: a different thread tile (e.g. 4×8 with 2 workgroups per SM) and subgroup-matrix (tensor core)
// paths.
//
// A C with few tiles and a long K is split over K (kSplitOf below: a second pass sums the partial products in a fixed
// order). Not yet measured on a GPU: bench/gpu-report.sh times the 0.5B step's and decode's skinny shapes with the
// split on and off next to PyTorch.
import type { KernelLayout, WebGpuDevice } from './device.js';
import { BindingWindows, blocks, type BoundWindow } from './window.js';

const BM = 128;
const BN = 128;

/** Kernel shape choices, for benchmarking (the defaults are the measured best). */
export interface GemmVariant {
  /** K slice staged per step: 8, 16 or 32 (workgroup memory 2·bk·128·4 bytes). */
  bk: 8 | 16 | 32;
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

export const DEFAULT_GEMM_VARIANT: GemmVariant = { bk: 16, vec4Loads: 'off', splitK: 'auto' };

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

/** The split of an M×N×K GEMM (see SPLIT_TARGET_WORKGROUPS), for a K slice granule `bk` and a scratch cap in floats. */
export function kSplitOf(M: number, N: number, K: number, bk: number, mode: GemmVariant['splitK'], scratchFloats: number): KSplit {
  const whole = { S: 1, kChunk: K };
  if (mode === 'off' || M * N === 0) return whole;
  let S: number;
  if (mode === 'auto') {
    const tiles = Math.ceil(M / BM) * Math.ceil(N / BN);
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
function shader(transA: boolean, transB: boolean, bk: number, vec: boolean, fromC: { A: boolean; B: boolean }): string {
  // Staging: each thread stores two vec4s of opA's slice and two of opB's, each four consecutive rows (columns) of one
  // k. Where storage is contiguous along those four, consecutive threads take consecutive groups of four; otherwise
  // they take consecutive k, so that a warp still reads 64-byte runs. Out-of-range lanes are zero.
  const stage = (name: 'A' | 'B', trans: boolean): string => {
    const contig = name === 'A' ? trans : !trans;
    const lim = name === 'A' ? 'p.M' : 'p.N';
    const base = name === 'A' ? 'row0' : 'col0';
    const off = name === 'A' ? 'p.offA' : 'p.offB';
    // Element (r, k) of opA, or (k, r) of opB, in storage; r is a row of opA or a column of opB.
    const at = (r: string, k: string): string =>
      name === 'A' ? (trans ? `${off} + ${k} * p.ldA + ${r}` : `${off} + ${r} * p.ldA + ${k}`) : trans ? `${off} + ${r} * p.ldB + ${k}` : `${off} + ${k} * p.ldB + ${r}`;
    const src = fromC[name] ? 'C' : name;
    const get = (i: string): string => (vec && src !== 'C' ? `${src}[(${i}) / 4u][(${i}) % 4u]` : `${src}[${i}]`);
    const pick = contig ? 'let r4 = idx % 32u; let k = idx / 32u;' : 'let k = idx % BK; let r4 = idx / BK;';
    const lanes = [0, 1, 2, 3].map((c) => `select(0.0, ${get(at(`(gr + ${c}u)`, 'gk'))}, gr + ${c}u < ${lim} && gk < ke)`).join(',\n            ');
    const scalar = `vec4<f32>(\n            ${lanes})`;
    // Aligned contiguous storage: one vec4 load when the four lanes are all in range.
    const value = vec && contig && src !== 'C' ? `select(${scalar}, ${src}[(${at('gr', 'gk')}) / 4u], gr + 3u < ${lim} && gk < ke)` : scalar;
    return `for (var h = 0u; h < ${(bk * BM) / 4 / 256}u; h++) {
        let idx = tid + h * 256u;
        ${pick}
        let gr = ${base} + r4 * 4u;
        let gk = k0 + k;
        ${name}s[k * 32u + r4] = ${value};
      }`;
  };
  // The 8×8 block as 16 named vec4 accumulators: acc{2r+h} is row r (0..7) of the block, column half h.
  const accDecl = Array.from({ length: 16 }, (_, i) => `var acc${i} = vec4<f32>(0.0);`).join('\n  ');
  const fmas: string[] = [];
  const comp = ['x', 'y', 'z', 'w'];
  for (let r = 0; r < 8; r++) {
    const a = `${r < 4 ? 'a0' : 'a1'}.${comp[r % 4]}`;
    fmas.push(`acc${2 * r} = fma(vec4<f32>(${a}), b0, acc${2 * r});`);
    fmas.push(`acc${2 * r + 1} = fma(vec4<f32>(${a}), b1, acc${2 * r + 1});`);
  }
  const stores: string[] = [];
  for (let r = 0; r < 8; r++) {
    const row = r < 4 ? `ty * 4u + ${r}u` : `64u + ty * 4u + ${r - 4}u`;
    stores.push(`store(wg.z, row0 + ${row}, col0 + tx * 4u, acc${2 * r});`);
    stores.push(`store(wg.z, row0 + ${row}, col0 + 64u + tx * 4u, acc${2 * r + 1});`);
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
var<workgroup> As: array<vec4<f32>, ${(bk * BM) / 4}>; // [k][m / 4]
var<workgroup> Bs: array<vec4<f32>, ${(bk * BN) / 4}>; // [k][n / 4]

fn store(z: u32, gm: u32, gn: u32, v: vec4<f32>) {
  if (gm >= p.M) { return; }
  let o = p.offC + z * p.zStride + gm * p.ldC + gn;
  for (var j = 0u; j < 4u; j++) {
    if (gn + j < p.N) {
      if (p.accumulate != 0u) { C[o + j] = C[o + j] + v[j]; } else { C[o + j] = v[j]; }
    }
  }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * ${BM}u;
  let col0 = wg.x * ${BN}u;
  let ty = tid / 16u;
  let tx = tid % 16u;
  // Split K: workgroup layer z takes K's slice [kb, ke) and writes its own partial product (gemm_reduce sums them).
  let kb = wg.z * p.kChunk;
  let ke = min(p.K, kb + p.kChunk);
  ${accDecl}
  for (var k0 = kb; k0 < ke; k0 += BK) {
      ${stage('A', transA)}
      ${stage('B', transB)}
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a0 = As[k * 32u + ty];
      let a1 = As[k * 32u + 16u + ty];
      let b0 = Bs[k * 32u + tx];
      let b1 = Bs[k * 32u + 16u + tx];
      ${fmas.join('\n      ')}
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
    const wgBytes = 2 * this.variant.bk * BM * 4;
    if (wgBytes > dev.limits.maxComputeWorkgroupStorageSize)
      throw new Error(`gemm: bk ${this.variant.bk} needs ${wgBytes} bytes of workgroup memory; this adapter has ${dev.limits.maxComputeWorkgroupStorageSize}`);
  }

  /** Bindings: A (read), B (read), C (read-write), parameters; A or B absent when read through C's binding. */
  private layoutOf(fromC: { A: boolean; B: boolean }): KernelLayout {
    return this.dev.layout([...(fromC.A ? [] : ['r' as const]), ...(fromC.B ? [] : ['r' as const]), 'w', 'u']);
  }

  private pipeline(transA: boolean, transB: boolean, vec: boolean, fromC: { A: boolean; B: boolean }): GPUComputePipeline {
    const key = `${+transA}${+transB}${+vec}${+fromC.A}${+fromC.B}`;
    let pl = this.pipelines.get(key);
    if (pl === undefined) {
      const module = this.dev.device.createShaderModule({ code: shader(transA, transB, this.variant.bk, vec, fromC), label: `gemm${key}` });
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
    if (b.m < M && b.m > BM) b.m -= b.m % BM;
    if (b.n < N && b.n > BN) b.n -= b.n % BN;
    if (b.k < K && b.k > this.variant.bk) b.k -= b.k % this.variant.bk;
    return b;
  }

  /** How an unblocked M×N×K GEMM is split over K on this device (kSplitOf with this variant and scratch cap). */
  splitOf(M: number, N: number, K: number): KSplit {
    return kSplitOf(M, N, K, this.variant.bk, this.variant.splitK, Math.min(MAX_SCRATCH_FLOATS, this.windows.maxSpan));
  }

  /** Partial products of split-K GEMMs (grown on demand, reused by every GEMM of the device). */
  private scratch: GPUBuffer | null = null;
  private reducePipeline: GPUComputePipeline | null = null;

  /** Scratch of at least `floats` f32 values; a smaller one is replaced after flushing the work that uses it. */
  private scratchOf(floats: number): GPUBuffer {
    const bytes = floats * 4;
    if (this.scratch === null || this.scratch.size < bytes) {
      const cap = Math.min(MAX_SCRATCH_FLOATS, this.windows.maxSpan) * 4;
      const size = Math.max(bytes, Math.min(cap, Math.ceil((this.scratch?.size ?? 0) * 1.5 / 16) * 16));
      if (this.scratch !== null) this.dev.destroyBuffer(this.scratch);
      this.scratch = this.dev.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE, label: 'gemm split-K scratch' });
    }
    return this.scratch;
  }

  /** Dispatches of C block [M, N] (row stride ld.C) from A and B blocks at the given element offsets: one, or two when K is split. */
  private encodeBlock(a: GemmArgs, ld: { A: number; B: number; C: number }, M: number, N: number, K: number, at: { A: number; B: number; C: number; accumulate: boolean }): void {
    const split = this.splitOf(M, N, K);
    const span = (rows: number, cols: number, l: number): number => (rows === 0 || cols === 0 ? 0 : (rows - 1) * l + cols);
    const spanA = a.transA ? span(K, M, ld.A) : span(M, K, ld.A);
    const spanB = a.transB ? span(N, K, ld.B) : span(K, N, ld.B);
    // Split: the partials go to the scratch buffer (row stride N, one M×N layer per slice), never C.
    const scratch = split.S > 1 ? this.scratchOf(split.S * M * N) : null;
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
    this.dev.dispatch(`matmul ${+a.transA}${+a.transB}`, this.pipeline(a.transA, a.transB, vec, fromC), this.layoutOf(fromC), params.buffer, storage, Math.ceil(N / BN), Math.ceil(M / BM), split.S);
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
