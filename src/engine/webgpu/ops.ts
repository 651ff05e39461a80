// The WebGPU side of the engine contract (src/engine/backend.ts): tensors in device buffers and every op of the
// contract, each a WGSL kernel with the same signature and meaning as the contract's (the js backend is the reference
// they are tested against, test/engine-webgpu-ops.test.ts): memory, matmul (gemm.ts), elementwise, bias,
// gather/scatter, RMSNorm, RoPE, attention and its backward, the KV-cache ops, the fused LM head and its backward, sum
// of squares, AdamW and its preview, and the sampler. Listed among the backends as 'webgpu' (opened with
// `openBackend`, src/engine/index.ts). Still to come: speed (tiled attention, a pooled KV cache so a batch is one
// dispatch). Reductions (sums of squares, column sums, scatter-add) run over many workgroups in two passes with a fixed
// partition, so they are deterministic without float atomics.
//
// Tensors larger than one binding (a 151,936 × 1,536 embedding is 0.93 GB; lavapipe binds 128 MiB, the H200 2 GiB):
// every dispatch binds windows of its buffers (window.ts), and an op whose tensors exceed a window runs in pieces of
// rows (`inPieces`; matmul in blocks, gemm.ts). Packed attention and its backward bind their activations whole and
// say so when those exceed one binding.
//
// Binding. A tensor is (buffer, element offset, shape). Several tensors of one op may live in the same buffer (views:
// packed rows, cache layers), and WebGPU refuses one buffer bound twice when a binding writes it. So each dispatch binds
// every distinct buffer once (the window of it that covers the op's tensors there), as a read_write array of its dtype,
// and the kernel reaches a tensor through its buffer's binding and its offset in that window; the shader is generated
// per buffer pattern (which tensors share a buffer) and cached.
import type { AdamWHyper, AttentionDims, Backend, CacheSegment, DeviceCounters } from '../backend.js';
import { checkSamplerSettings, isGreedy, type SamplerSettings } from '../sampling.js';
import { shapeSize, type DType, type DeviceTensor, type F32, type HostArray, type I32 } from '../tensor.js';
import { WebGpuDevice, type KernelLayout, type OpenWebGpuOptions } from './device.js';
import { TILE_ROWS, attentionDkv, attentionDq, attentionForward, kvTileDecls, qTileDecls, tileDepth } from './attention.js';
import { WebGpuGemm } from './gemm.js';
import { BindingWindows, blocks } from './window.js';

/** A device buffer and what it holds. */
export interface GpuStorage {
  readonly buffer: GPUBuffer;
  readonly dtype: DType;
  /** Elements the buffer holds. */
  readonly elements: number;
}

/** A tensor of the WebGPU backend: a window of `size` elements at `offset` into a device buffer. */
export class GpuTensor<D extends DType = DType> implements DeviceTensor<D> {
  constructor(
    readonly dtype: D,
    readonly shape: readonly number[],
    readonly size: number,
    readonly storage: GpuStorage,
    readonly offset: number,
  ) {}
}

function gpu<D extends DType>(t: DeviceTensor<D>, op: string, arg: string): GpuTensor<D> {
  if (!(t instanceof GpuTensor)) throw new TypeError(`${op}: ${arg} is not a tensor of the webgpu backend`);
  return t;
}

function need(op: string, arg: string, t: DeviceTensor, n: number): void {
  if (t.size !== n) throw new RangeError(`${op}: ${arg} has ${t.size} elements, expected ${n}`);
}

/** Options of the WebGPU backend beyond opening the device. */
export interface WebGpuBackendOptions {
  /**
   * FOR TESTS ONLY: bind at most this many bytes of a buffer at once instead of the adapter's
   * maxStorageBufferBindingSize, so that small tensors run in pieces the way tensors larger than a binding do.
   */
  maxBindingBytes?: number;
  /**
   * Split work that would leave a large GPU mostly idle over more workgroups (default 'auto'): the K of GEMMs with few
   * output tiles (gemm.ts), and attention's dk/dv over the query heads of a GQA group, each summed in a second pass in
   * a fixed order. 'off' keeps one workgroup per output tile or key block, for timing the difference.
   */
  split?: 'auto' | 'off';
}

/** A kernel scalar: a number is an f32 (exact integers only below 2²⁴), `{ u32 }` a u32 (for sizes and offsets). */
type Scalar = number | { readonly u32: number };
const u32 = (x: number): Scalar => ({ u32: x });

/** One argument of a kernel: the tensor and the name the WGSL body uses for it (`X[i]` reads element i of it). */
type KernelArg = readonly [name: string, t: GpuTensor];

const WG = 256;
/** Elements per workgroup in the first pass of a sum of squares (16 per invocation). */
const PARTIAL_BLOCK = 16 * WG;
/** Rows per partial sum in the first pass of a column reduction. */
const COLUMN_BLOCK = 64;

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  /** Host threads (the device's own parallelism is not counted here). */
  readonly threads = 1;
  /** kvAppend and cacheAttention take a batch in one dispatch when its caches share tensors (see `cacheGroups`). */
  readonly pooledKvCache = true;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly gemm: WebGpuGemm;
  /** How kernels bind tensors (window.ts): windows of at most the binding limit. */
  readonly windows: BindingWindows;

  constructor(
    readonly dev: WebGpuDevice,
    opts: WebGpuBackendOptions = {},
  ) {
    const L = dev.limits;
    const limit = opts.maxBindingBytes ?? L.maxStorageBufferBindingSize;
    if (!(Number.isInteger(limit) && limit > 0 && limit <= L.maxStorageBufferBindingSize))
      throw new RangeError(`webgpu: maxBindingBytes ${limit} is not a positive integer up to this adapter's ${L.maxStorageBufferBindingSize}`);
    this.windows = new BindingWindows(limit - (limit % 4), L.minStorageBufferOffsetAlignment);
    this.split = opts.split ?? 'auto';
    if (this.split !== 'auto' && this.split !== 'off') throw new RangeError(`webgpu: split ${String(this.split)} is not 'auto' or 'off'`);
    this.gemm = new WebGpuGemm(dev, { splitK: this.split }, this.windows);
  }

  private readonly split: 'auto' | 'off';
  /** A view of n floats of the device's work buffer `key` (WebGpuDevice.scratch), valid until the op returns. */
  private scratch(key: string, n: number): GpuTensor<'f32'> {
    const buffer = this.dev.scratch(key, n);
    return new GpuTensor('f32', [n], n, { buffer, dtype: 'f32', elements: buffer.size / 4 }, 0);
  }

  get device(): string {
    return this.dev.adapterName;
  }

  counters(): DeviceCounters {
    return { ...this.dev.counters };
  }

  /** Opens the default adapter (see WebGpuDevice.open for what is needed on the machine) as a backend. */
  static async open(opts: OpenWebGpuOptions & WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await WebGpuDevice.open(opts), opts);
  }

  /** Releases the device (every tensor of it becomes unusable). */
  dispose(): void {
    this.dev.dispose();
  }

  // ---- memory ------------------------------------------------------------------------------------------------------

  empty<D extends DType = 'f32'>(shape: readonly number[], dtype?: D): GpuTensor<D> {
    const dt = (dtype ?? 'f32') as D;
    const n = shapeSize(shape);
    // Larger than one binding is fine (ops bind windows of it, window.ts); larger than one buffer is not.
    const buffer = this.dev.createBuffer(n, undefined, `a tensor of ${n} elements [${shape.join(', ')}]`);
    return new GpuTensor(dt, shape.slice(), n, { buffer, dtype: dt, elements: n }, 0);
  }

  upload(data: Float32Array, shape?: readonly number[]): GpuTensor<'f32'>;
  upload(data: Int32Array, shape?: readonly number[]): GpuTensor<'i32'>;
  upload(data: Float32Array | Int32Array, shape?: readonly number[]): GpuTensor;
  upload(data: Float32Array | Int32Array, shape: readonly number[] = [data.length]): GpuTensor {
    const t: GpuTensor = this.empty(shape, data instanceof Int32Array ? 'i32' : 'f32');
    need('upload', 'data', t, data.length);
    this.write(t, data);
    return t;
  }

  write(t: DeviceTensor, data: ArrayLike<number>, at = 0): void {
    const g = gpu(t, 'write', 't');
    if (!Number.isInteger(at) || at < 0 || at + data.length > g.size) throw new RangeError(`write: ${data.length} elements at ${at} do not fit in ${g.size}`);
    const arr = g.dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data);
    this.dev.write(g.storage.buffer, arr as Float32Array, g.offset + at);
  }

  async read<D extends DType>(t: DeviceTensor<D>): Promise<HostArray<D>> {
    const g = gpu(t, 'read', 't');
    const f = await this.dev.read(g.storage.buffer, g.size, g.offset);
    return (g.dtype === 'i32' ? new Int32Array(f.buffer, f.byteOffset, f.length) : f) as HostArray<D>;
  }

  view<D extends DType>(t: DeviceTensor<D>, offset: number, shape: readonly number[]): GpuTensor<D> {
    const g = gpu(t, 'view', 't');
    const n = shapeSize(shape);
    if (!Number.isInteger(offset) || offset < 0 || offset + n > g.size) throw new RangeError(`view: [${offset}, ${offset + n}) is outside a tensor of ${g.size}`);
    return new GpuTensor(g.dtype, shape.slice(), n, g.storage, g.offset + offset);
  }

  copy<D extends DType>(src: DeviceTensor<D>, dst: DeviceTensor<D>): void {
    const s = gpu(src, 'copy', 'src');
    const d = gpu(dst, 'copy', 'dst');
    need('copy', 'dst', d, s.size);
    if (s.dtype !== d.dtype) throw new TypeError(`copy: ${s.dtype} into ${d.dtype}`);
    this.runElementwise('copy', `Y[i] = X[i];`, s.size, [['X', s], ['Y', d]], []);
  }

  fill(t: DeviceTensor, value: number): void {
    const g = gpu(t, 'fill', 't');
    this.runElementwise(`fill_${g.dtype}`, g.dtype === 'i32' ? `X[i] = i32(s0);` : `X[i] = s0;`, g.size, [['X', g]], [value]);
  }

  free(t: DeviceTensor): void {
    const g = gpu(t, 'free', 't');
    if (g.offset !== 0 || g.size !== g.storage.elements) throw new Error('free: a view cannot be freed (free the tensor it views)');
    this.dev.destroyBuffer(g.storage.buffer);
  }

  sync(): Promise<void> {
    return this.dev.sync();
  }

  // ---- dense algebra ----------------------------------------------------------------------------------------------

  /** c = op(a)·op(b), or c += with `accumulate` (src/engine/webgpu/gemm.ts). */
  matmul(a: F32, b: F32, c: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean): void {
    const [A, B, C] = [gpu(a, 'matmul', 'a'), gpu(b, 'matmul', 'b'), gpu(c, 'matmul', 'c')];
    need('matmul', 'a', A, M * K);
    need('matmul', 'b', B, K * N);
    need('matmul', 'c', C, M * N);
    this.gemm.encode({ transA, transB, M, N, K, A: A.storage.buffer, B: B.storage.buffer, C: C.storage.buffer, offA: A.offset, offB: B.offset, offC: C.offset, accumulate });
  }

  // ---- elementwise ------------------------------------------------------------------------------------------------

  add(a: F32, b: F32, out: F32): void {
    const [A, B, O] = [gpu(a, 'add', 'a'), gpu(b, 'add', 'b'), gpu(out, 'add', 'out')];
    need('add', 'b', B, A.size);
    need('add', 'out', O, A.size);
    this.runElementwise('add', `O[i] = A[i] + B[i];`, A.size, [['A', A], ['B', B], ['O', O]], []);
  }

  axpy(alpha: number, x: F32, y: F32): void {
    const [X, Y] = [gpu(x, 'axpy', 'x'), gpu(y, 'axpy', 'y')];
    need('axpy', 'y', Y, X.size);
    this.runElementwise('axpy', `Y[i] = Y[i] + s0 * X[i];`, X.size, [['X', X], ['Y', Y]], [alpha]);
  }

  scale(x: F32, alpha: number): void {
    const X = gpu(x, 'scale', 'x');
    this.runElementwise('scale', `X[i] = s0 * X[i];`, X.size, [['X', X]], [alpha]);
  }

  /** y[r, :] += b for every row of y [R, D]. */
  addBias(y: F32, b: F32): void {
    const [Y, Bv] = [gpu(y, 'addBias', 'y'), gpu(b, 'addBias', 'b')];
    const D = Bv.size;
    if (D === 0 || Y.size % D !== 0) throw new RangeError(`addBias: y has ${Y.size} elements, not rows of ${D}`);
    this.inPieces('addBias', Y.size / D, [D], [['b', Bv]], (r0, n) =>
      this.run('addBias', `Y[i] = Y[i] + Bv[i % s0];`, n * D, [['Y', this.rowsOf(Y, D, r0, n)], ['Bv', Bv]], [u32(D)]),
    );
  }

  /** db += Σ_r dy[r, :] (ACCUMULATES), a column reduction over many workgroups (`columnSums`). */
  biasBackward(dy: F32, db: F32): void {
    const [DY, DB] = [gpu(dy, 'biasBackward', 'dy'), gpu(db, 'biasBackward', 'db')];
    const D = DB.size;
    if (D === 0 || DY.size % D !== 0) throw new RangeError(`biasBackward: dy has ${DY.size} elements, not rows of ${D}`);
    this.columnSums('biasBackward', 'DY[r * c + j]', DY.size / D, D, [['DY', DY, D]], DB);
  }

  swiglu(gate: F32, up: F32, out: F32): void {
    const [G, U, O] = [gpu(gate, 'swiglu', 'gate'), gpu(up, 'swiglu', 'up'), gpu(out, 'swiglu', 'out')];
    need('swiglu', 'up', U, G.size);
    need('swiglu', 'out', O, G.size);
    this.runElementwise('swiglu', `let g = G[i]; O[i] = g / (1.0 + exp(-g)) * U[i];`, G.size, [['G', G], ['U', U], ['O', O]], []);
  }

  swigluBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32): void {
    const op = 'swigluBackward';
    const [G, U, DO, DG, DU] = [gpu(gate, op, 'gate'), gpu(up, op, 'up'), gpu(dout, op, 'dout'), gpu(dgate, op, 'dgate'), gpu(dup, op, 'dup')];
    for (const [n, t] of [['up', U], ['dout', DO], ['dgate', DG], ['dup', DU]] as const) need(op, n, t, G.size);
    this.runElementwise(
      op,
      `let g = G[i]; let u = U[i]; let d = DO[i]; let s = 1.0 / (1.0 + exp(-g));
       DU[i] = d * g * s; DG[i] = d * u * s * (1.0 + g * (1.0 - s));`,
      G.size,
      [['G', G], ['U', U], ['DO', DO], ['DG', DG], ['DU', DU]],
      [],
    );
  }

  /**
   * Rotary embedding (rotate-half) of x [T, heads·D] into out, token t at positions[t], with cos/sin [P, D/2]; inverse
   * is the transposed rotation. One invocation per rotated pair, which reads both halves before writing: out may
   * alias x.
   */
  rope(x: F32, out: F32, positions: I32, cos: F32, sin: F32, heads: number, D: number, inverse: boolean): void {
    const op = 'rope';
    const [X, O, P, C, S] = [gpu(x, op, 'x'), gpu(out, op, 'out'), gpu(positions, op, 'positions'), gpu(cos, op, 'cos'), gpu(sin, op, 'sin')];
    const T = P.size;
    need(op, 'x', X, T * heads * D);
    need(op, 'out', O, T * heads * D);
    if (D % 2 !== 0) throw new RangeError(`rope: head dim ${D} is not even`);
    const half = D / 2;
    const w = heads * D;
    this.inPieces(op, T, [w, w, 1], [['cos', C], ['sin', S]], (t0, n) => this.run(
      `rope${inverse ? '_inv' : ''}`,
      `let h = u32(s0); let hd = u32(s1); let q = i % h; let row = i / h;
       let t = row / u32(s2);
       let base = row * hd;
       let a = X[base + q]; let b = X[base + q + h];
       let k = u32(P[t]) * h + q;
       let c = C[k]; let sn = S[k];
       ${inverse ? 'O[base + q] = a * c + b * sn; O[base + q + h] = b * c - a * sn;' : 'O[base + q] = a * c - b * sn; O[base + q + h] = b * c + a * sn;'}`,
      n * heads * half,
      [['X', this.rowsOf(X, w, t0, n)], ['O', this.rowsOf(O, w, t0, n)], ['P', this.rowsOf(P, 1, t0, n)], ['C', C], ['S', S]],
      [half, D, heads],
    ));
  }

  // ---- attention -------------------------------------------------------------------------------------------------
  //
  // Tiled kernels (src/engine/webgpu/attention.ts): a workgroup owns 64 rows of one head and walks the other side's
  // rows in tiles staged in workgroup memory; no T×T matrix, sums in row order (deterministic, no atomics). The
  // backward precomputes D_i = dO_i·O_i once per (row, head). On the H200 the first, untiled versions spent 26 of a 0.5B
  // step's 39 GPU seconds in dk/dv; these are checked on lavapipe (test/engine-webgpu-ops.test.ts) and not yet timed
  // there.

  private attnArgs(op: string, q: F32, k: F32, v: F32, seqStarts: I32, dims: AttentionDims): { N: number; S: number } {
    const { heads, kvHeads, headDim } = dims;
    if (!(heads > 0 && kvHeads > 0 && heads % kvHeads === 0)) throw new RangeError(`${op}: ${heads} heads over ${kvHeads} kv heads`);
    const N = q.size / (heads * headDim);
    need(op, 'q', q, N * heads * headDim);
    need(op, 'k', k, N * kvHeads * headDim);
    need(op, 'v', v, N * kvHeads * headDim);
    return { N, S: seqStarts.size - 1 };
  }

  attention(q: F32, k: F32, v: F32, out: F32, lse: F32, seqStarts: I32, dims: AttentionDims, _chunk: number): void {
    const op = 'attention';
    const [Q, K, V, O, L, SS] = [gpu(q, op, 'q'), gpu(k, op, 'k'), gpu(v, op, 'v'), gpu(out, op, 'out'), gpu(lse, op, 'lse'), gpu(seqStarts, op, 'seqStarts')];
    const { N, S } = this.attnArgs(op, Q, K, V, SS, dims);
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    need(op, 'out', O, Q.size);
    need(op, 'lse', L, nh * N);
    const depth = this.tileDepth(2 * hd);
    this.runTiles(`attention_hd${hd}_t${depth}`, attentionForward(hd, depth), [Math.ceil(N / TILE_ROWS), nh], [['Q', Q], ['K', K], ['V', V], ['O', O], ['L', L], ['SS', SS]], [nh, nkv, 1 / Math.sqrt(hd), S, N], kvTileDecls(hd, depth));
  }

  attentionBackward(q: F32, k: F32, v: F32, out: F32, lse: F32, dout: F32, dq: F32, dk: F32, dv: F32, seqStarts: I32, dims: AttentionDims, _chunk: number): void {
    const op = 'attentionBackward';
    const [Q, K, V, O, L, DO] = [gpu(q, op, 'q'), gpu(k, op, 'k'), gpu(v, op, 'v'), gpu(out, op, 'out'), gpu(lse, op, 'lse'), gpu(dout, op, 'dout')];
    const [DQ, DK, DV, SS] = [gpu(dq, op, 'dq'), gpu(dk, op, 'dk'), gpu(dv, op, 'dv'), gpu(seqStarts, op, 'seqStarts')];
    const { N, S } = this.attnArgs(op, Q, K, V, SS, dims);
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    for (const [n, t] of [['out', O], ['dout', DO], ['dq', DQ]] as const) need(op, n, t, Q.size);
    need(op, 'dk', DK, K.size);
    need(op, 'dv', DV, V.size);
    need(op, 'lse', L, nh * N);
    const scalars = [nh, nkv, 1 / Math.sqrt(hd), S, N];
    // D_i = dout_i·out_i once per (row, head), then p_ij = exp(scale·q_i·k_j − lse_i), dp_ij = dout_i·v_j,
    // ds_ij = p_ij (dp_ij − D_i).
    const Dt = this.scratch('attention.D', nh * N);
    this.run(
      `attention_D_hd${hd}`,
      `let nh = u32(s0); let hd = ${hd}u; let r = i / nh; let h = i % nh; let qo = r * nh * hd + h * hd;
       var dd = 0.0;
       for (var e = 0u; e < hd; e++) { dd += DO[qo + e] * O[qo + e]; }
       DD[h * u32(s4) + r] = dd;`,
      N * nh,
      [['O', O], ['DO', DO], ['DD', Dt]],
      scalars,
    );
    const depth = this.tileDepth(2 * hd);
    this.runTiles(`attention_dq_hd${hd}_t${depth}`, attentionDq(hd, depth), [Math.ceil(N / TILE_ROWS), nh],
      [['Q', Q], ['K', K], ['V', V], ['L', L], ['DO', DO], ['DD', Dt], ['DQ', DQ], ['SS', SS]], scalars, kvTileDecls(hd, depth));
    const qDepth = this.tileDepth(2 * hd + 2);
    const grp = nh / nkv;
    if (grp === 1 || this.split === 'off') {
      this.runTiles(`attention_dkv_hd${hd}_t${qDepth}`, attentionDkv(hd, qDepth, false), [Math.ceil(N / TILE_ROWS), nkv],
        [['Q', Q], ['K', K], ['V', V], ['L', L], ['DO', DO], ['DD', Dt], ['DK', DK], ['DV', DV], ['SS', SS]], scalars, qTileDecls(hd, qDepth));
      return;
    }
    // GQA: one workgroup per (key block, query head) instead of per (key block, kv head), grp times as many, each
    // writing its head's share [heads, N, hd]; then each kv head's shares are summed in head order.
    const PK = this.scratch('attention.dkHeads', nh * N * hd);
    const PV = this.scratch('attention.dvHeads', nh * N * hd);
    this.runTiles(`attention_dkv_heads_hd${hd}_t${qDepth}`, attentionDkv(hd, qDepth, true), [Math.ceil(N / TILE_ROWS), nh],
      [['Q', Q], ['K', K], ['V', V], ['L', L], ['DO', DO], ['DD', Dt], ['DK', PK], ['DV', PV], ['SS', SS]], scalars, qTileDecls(hd, qDepth));
    this.run(
      `attention_dkv_sum_hd${hd}`,
      `let hd = ${hd}u; let nkv = s1; let grp = s2; let n = s3;
       let e = i % hd; let kh = (i / hd) % nkv; let r = i / (hd * nkv);
       var sk = 0.0; var sv = 0.0;
       for (var hl = 0u; hl < grp; hl++) { let o = ((kh * grp + hl) * n + r) * hd + e; sk += PK[o]; sv += PV[o]; }
       DK[i] = sk; DV[i] = sv;`,
      N * nkv * hd,
      [['PK', PK], ['PV', PV], ['DK', DK], ['DV', DV]],
      [u32(nh), u32(nkv), u32(grp), u32(N)],
    );
  }

  /** Appends rows [r0, r0+n) of k, v [N, kvHeads·hd] at positions pos0… of each segment's cache layers. */
  kvAppend(k: F32, v: F32, segs: readonly CacheSegment[], dims: AttentionDims): void {
    const op = 'kvAppend';
    const [K, V] = [gpu(k, op, 'k'), gpu(v, op, 'v')];
    const { kvHeads: nkv, headDim: hd } = dims;
    const kd = nkv * hd;
    need(op, 'v', V, K.size);
    const N = K.size / kd;
    for (const group of cacheGroups(op, segs)) {
      for (const sg of group.segs) {
        const maxLen = gpu(sg.kc, op, 'kc').size / kd;
        need(op, 'vc', sg.vc, sg.kc.size);
        if (!(Number.isInteger(maxLen) && sg.r0 >= 0 && sg.r0 + sg.n <= N && sg.pos0 >= 0 && sg.pos0 + sg.n <= maxLen))
          throw new RangeError(`kvAppend: rows [${sg.r0}, ${sg.r0 + sg.n}) at positions ${sg.pos0}… do not fit (N ${N}, cache ${maxLen})`);
      }
      const pooled = this.pooledCache(group, kd, [K, V]);
      if (pooled !== null) {
        // One dispatch for the group: row t of the table is (batch row, cache offset, maxLen, position).
        this.dispatch(
          'kvAppend_pooled',
          'flat',
          `let hd = s0; let kd = s1; let t = i / kd; let g = (i % kd) / hd; let e = i % hd;
           let row = kparams.tab[t];
           let dst = row.y + (g * row.z + row.w) * hd + e;
           let src = row.x * kd + g * hd + e;
           KC[dst] = K[src]; VC[dst] = V[src];`,
          pooled.rows * kd,
          [['K', K], ['V', V], ['KC', pooled.k], ['VC', pooled.v]],
          [u32(hd), u32(kd)],
          flatGrid(pooled.rows * kd),
          '',
          pooled.words,
        );
        continue;
      }
      // Segment by segment, kv heads [g0, g0 + ng) at a time: the cache window of a piece spans those heads' rows
      // pos0 … pos0 + n − 1.
      for (const sg of group.segs) {
        if (sg.n === 0) continue;
        const [KC, VC] = [gpu(sg.kc, op, 'kc'), gpu(sg.vc, op, 'vc')];
        const maxLen = KC.size / kd;
        const ng = this.kvHeadsPerPiece(op, nkv, maxLen, sg.n, hd);
        for (let g0 = 0; g0 < nkv; g0 += ng) {
          const m = Math.min(ng, nkv - g0);
          const span = ((m - 1) * maxLen + sg.n) * hd;
          const at = (g0 * maxLen + sg.pos0) * hd;
          this.run(
            'kvAppend',
            `let hd = s0; let kd = s1; let w = s4 * hd; let r = i / w; let gl = (i % w) / hd; let e = i % hd;
             let dst = (gl * s2 + r) * hd + e;
             let src = r * kd + (s3 + gl) * hd + e;
             KC[dst] = K[src]; VC[dst] = V[src];`,
            sg.n * m * hd,
            [['K', this.rowsOf(K, kd, sg.r0, sg.n)], ['V', this.rowsOf(V, kd, sg.r0, sg.n)], ['KC', this.view(KC, at, [span])], ['VC', this.view(VC, at, [span])]],
            [u32(hd), u32(kd), u32(maxLen), u32(g0), u32(m)],
          );
        }
      }
    }
  }

  /** Causal attention of each segment's (pre-scaled) queries over its cache: query i sees positions 0 … pos0+i. */
  cacheAttention(q: F32, out: F32, segs: readonly CacheSegment[], dims: AttentionDims, _chunk: number): void {
    const op = 'cacheAttention';
    const [Q, O] = [gpu(q, op, 'q'), gpu(out, op, 'out')];
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    need(op, 'out', O, Q.size);
    const N = Q.size / (nh * hd);
    const kd = nkv * hd;
    const grp = nh / nkv;
    for (const group of cacheGroups(op, segs)) {
      for (const sg of group.segs) {
        const maxLen = gpu(sg.kc, op, 'kc').size / kd;
        need(op, 'vc', sg.vc, sg.kc.size);
        if (!(sg.r0 >= 0 && sg.n >= 0 && sg.r0 + sg.n <= N)) throw new RangeError(`cacheAttention: rows [${sg.r0}, ${sg.r0 + sg.n}) outside ${N}`);
        if (!(Number.isInteger(maxLen) && sg.pos0 >= 0 && sg.pos0 + sg.n <= maxLen))
          throw new RangeError(`cacheAttention: ${sg.n} queries at ${sg.pos0} outside a cache of ${maxLen}`);
      }
      const pooled = this.pooledCache(group, kd, [Q, O]);
      if (pooled !== null) {
        this.dispatch(
          `cacheAttention_pooled_hd${hd}`,
          'flat',
          `let nh = s0; let hd = ${hd}u; let grp = s1;
           let t = i / nh; let h = i % nh; let kh = h / grp;
           let row = kparams.tab[t];
           let qo = row.x * nh * hd + h * hd;
           ${onlineSoftmax(hd, '0u', 'row.w', 'row.y + (kh * row.z + j) * hd', 'KC', 'VC', '1.0')}`,
          pooled.rows * nh,
          [['Q', Q], ['O', O], ['KC', pooled.k], ['VC', pooled.v]],
          [u32(nh), u32(grp)],
          flatGrid(pooled.rows * nh),
          '',
          pooled.words,
        );
        continue;
      }
      // Segment by segment, the query heads of kv heads [g0, g0 + ng) at a time, over those heads' positions
      // 0 … pos0 + n − 1.
      for (const sg of group.segs) {
        if (sg.n === 0) continue;
        const [KC, VC] = [gpu(sg.kc, op, 'kc'), gpu(sg.vc, op, 'vc')];
        const maxLen = KC.size / kd;
        const len = sg.pos0 + sg.n;
        const ng = this.kvHeadsPerPiece(op, nkv, maxLen, len, hd);
        for (let g0 = 0; g0 < nkv; g0 += ng) {
          const m = Math.min(ng, nkv - g0);
          const span = ((m - 1) * maxLen + len) * hd;
          this.run(
            `cacheAttention_hd${hd}`,
            `let nh = s0; let hd = ${hd}u; let grp = s1; let ml = s2; let hq = s5 * grp;
             let r = i / hq; let hl = i % hq; let h = s4 * grp + hl; let kh = hl / grp;
             let qo = r * nh * hd + h * hd;
             ${onlineSoftmax(hd, '0u', 's3 + r', '(kh * ml + j) * hd', 'KC', 'VC', '1.0')}`,
            sg.n * m * grp,
            [['Q', this.rowsOf(Q, nh * hd, sg.r0, sg.n)], ['O', this.rowsOf(O, nh * hd, sg.r0, sg.n)], ['KC', this.view(KC, g0 * maxLen * hd, [span])], ['VC', this.view(VC, g0 * maxLen * hd, [span])]],
            [u32(nh), u32(grp), u32(maxLen), u32(sg.pos0), u32(g0), u32(m)],
          );
        }
      }
    }
  }

  /**
   * A group of cache segments as one dispatch (a pooled cache): its per-row table and views of the two slabs that
   * cover the segments' caches, with the table's cache offsets relative to the views. Null when the group runs
   * segment by segment: one segment, keys and values at different offsets, no rows or more than MAX_TABLE_ROWS, or
   * the slabs' used range or the row tensors not fitting one binding window.
   */
  private pooledCache(group: CacheGroup, kd: number, rowTensors: readonly GpuTensor[]): { words: Uint32Array; rows: number; k: GpuTensor<'f32'>; v: GpuTensor<'f32'> } | null {
    if (group.segs.length < 2) return null;
    const kcs = group.segs.map((sg) => sg.kc as GpuTensor);
    const lo = Math.min(...kcs.map((t) => t.offset));
    const hi = Math.max(...kcs.map((t) => t.offset + t.size));
    if (!fitsOneWindow(this.windows.maxSpan, [...rowTensors, this.view(group.k, lo, [hi - lo])])) return null;
    const table = rowTable(group.segs, kd, lo);
    if (table === null) return null;
    return { ...table, k: this.view(group.k, lo, [hi - lo]), v: this.view(group.v, lo, [hi - lo]) };
  }

  /**
   * Kv heads per piece of a cache op whose window covers `len` positions of each of its heads in caches of `maxLen`
   * positions per head: all of them when that fits one binding window.
   */
  private kvHeadsPerPiece(op: string, nkv: number, maxLen: number, len: number, hd: number): number {
    const S = this.windows.maxSpan;
    if (len * hd > S) throw new RangeError(`webgpu ${op}: ${len} cached positions of one kv head (${len * hd * 4} bytes) are more than one binding (${this.windows.limitBytes} bytes)`);
    return Math.max(1, Math.min(nkv, Math.floor((S / hd - len) / maxLen) + 1));
  }

  // ---- heads ---------------------------------------------------------------------------------------------------
  //
  // The LM head in chunks of rows: logits z = h·wᵀ for `chunkRows` rows at a time into one scratch [chunk, V], then a
  // workgroup per row reduces it. Labels come from the host (the caller checks their range, as the CPU backend does);
  // an out-of-range label is clamped here rather than read out of bounds.

  tokenLogprobs(h: F32, w: F32, labels: I32, logp: F32, lse: F32, entropy: F32 | null, V: number, chunkRows: number): void {
    const op = 'tokenLogprobs';
    const [Hh, W, Y, LP, LS] = [gpu(h, op, 'h'), gpu(w, op, 'w'), gpu(labels, op, 'labels'), gpu(logp, op, 'logp'), gpu(lse, op, 'lse')];
    const R = Y.size;
    const H = W.size / V;
    need(op, 'h', Hh, R * H);
    need(op, 'logp', LP, R);
    need(op, 'lse', LS, R);
    const EN = entropy === null ? null : gpu(entropy, op, 'entropy');
    if (EN) need(op, 'entropy', EN, R);
    if (R === 0) return;
    // The logits block [C, V] is bound whole by the row reductions: at most one window of rows.
    const C = this.windows.rowsPerPiece(op, Math.max(1, Math.min(chunkRows, R)), [V]);
    const z = this.scratch('logits', C * V);
    for (let c0 = 0; c0 < R; c0 += C) {
      const c = Math.min(C, R - c0);
      const zc = this.view(z, 0, [c * V]);
      this.matmul(this.view(Hh, c0 * H, [c * H]), W, zc, c, V, H, false, true, false);
      const args: KernelArg[] = [['Z', zc], ['Y', this.view(Y, c0, [c])], ['LP', this.view(LP, c0, [c])], ['LS', this.view(LS, c0, [c])]];
      if (EN) args.push(['EN', this.view(EN, c0, [c])]);
      this.runRows(
        `tokenLogprobs${EN ? '_e' : ''}`,
        `let v = u32(s0); let o = row * v;
         var m = -3.0e38;
         for (var j = lid; j < v; j += ${WG}u) { m = max(m, Z[o + j]); }
         let mx = rowMax(m, lid);
         var se = 0.0; var sz = 0.0;
         for (var j = lid; j < v; j += ${WG}u) { let zz = Z[o + j]; let e = exp(zz - mx); se += e; sz += e * zz; }
         let tse = rowSum(se, lid);
         let tsz = rowSum(sz, lid);
         if (lid == 0u) {
           let l = mx + log(tse);
           LS[row] = l;
           LP[row] = Z[o + min(u32(Y[row]), v - 1u)] - l;
           ${EN ? 'EN[row] = l - tsz / tse;' : ''}
         }`,
        c,
        args,
        [V],
      );
    }
  }

  tokenLogprobsBackward(h: F32, w: F32, labels: I32, lse: F32, g: F32, dh: F32, dw: F32, V: number, chunkRows: number): void {
    const op = 'tokenLogprobsBackward';
    const [Hh, W, Y, LS, G, DH, DW] = [gpu(h, op, 'h'), gpu(w, op, 'w'), gpu(labels, op, 'labels'), gpu(lse, op, 'lse'), gpu(g, op, 'g'), gpu(dh, op, 'dh'), gpu(dw, op, 'dw')];
    const R = Y.size;
    const H = W.size / V;
    need(op, 'h', Hh, R * H);
    need(op, 'lse', LS, R);
    need(op, 'g', G, R);
    need(op, 'dh', DH, R * H);
    need(op, 'dw', DW, V * H);
    if (R === 0) return;
    // The logits block [C, V] is bound whole by the row reductions: at most one window of rows.
    const C = this.windows.rowsPerPiece(op, Math.max(1, Math.min(chunkRows, R)), [V]);
    const z = this.scratch('logits', C * V);
    for (let c0 = 0; c0 < R; c0 += C) {
      const c = Math.min(C, R - c0);
      const zc = this.view(z, 0, [c * V]);
      const hc = this.view(Hh, c0 * H, [c * H]);
      this.matmul(hc, W, zc, c, V, H, false, true, false);
      // dz[r, j] = g_r · (δ(j = label_r) − exp(z[r, j] − lse_r))
      this.run(
        'tokenLogprobs_dz',
        `let v = u32(s0); let r = i / v; let j = i % v;
         let yy = min(u32(Y[r]), v - 1u);
         Z[i] = G[r] * (select(0.0, 1.0, j == yy) - exp(Z[i] - LS[r]));`,
        c * V,
        [['Z', zc], ['Y', this.view(Y, c0, [c])], ['G', this.view(G, c0, [c])], ['LS', this.view(LS, c0, [c])]],
        [V],
      );
      this.matmul(zc, W, this.view(DH, c0 * H, [c * H]), c, H, V, false, false, false);
      this.matmul(zc, hc, DW, V, H, c, true, false, true);
    }
  }

  // ---- sampling ------------------------------------------------------------------------------------------------

  /**
   * One token per row of logits [M, V], a workgroup per row. Greedy rows: the argmax (lowest id among ties), as the
   * reference. Other rows draw from the same distribution as the reference (temperature → top-k → top-p, ties by the
   * lower id) with their uniform u: the top-k and nucleus cut-offs are found by bisection on the f32 weights (and on
   * ids among ties), then the token is the first id, in id order, whose cumulative kept weight exceeds u·total. The
   * reference walks a filtered distribution in probability order, so a given u can name a different token here when
   * a filter is on; the distribution is the same (f32 here, f64 there). logprobs = log softmax(raw logits)[token].
   */
  sampleTokens(logits: F32, V: number, settings: readonly SamplerSettings[], uniforms: ArrayLike<number>, ids: I32, logprobs: F32 | null): void {
    const op = 'sampleTokens';
    const M = settings.length;
    const [Z, ID] = [gpu(logits, op, 'logits'), gpu(ids, op, 'ids')];
    need(op, 'logits', Z, M * V);
    need(op, 'ids', ID, M);
    if (uniforms.length !== M) throw new RangeError(`sampleTokens: ${uniforms.length} uniforms for ${M} rows`);
    if (M === 0) return;
    // Per row: greedy flag, 1/temperature, top_p (1 = off), top_k (0 = off), u.
    const set = new Float32Array(M * 5);
    settings.forEach((st, r) => {
      const greedy = isGreedy(st);
      if (!greedy) {
        checkSamplerSettings(st);
        const u = uniforms[r]!;
        if (!(u >= 0 && u < 1)) throw new RangeError(`sampleTokens: non-greedy row ${r} needs a uniform in [0, 1), got ${u}`);
      }
      set.set([greedy ? 1 : 0, greedy ? 1 : 1 / st.temperature, st.topP, st.topK > 0 && st.topK < V ? st.topK : 0, greedy ? 0 : uniforms[r]!], r * 5);
    });
    const SET = this.upload(set);
    const LP = logprobs === null ? null : gpu(logprobs, op, 'logprobs');
    if (LP) need(op, 'logprobs', LP, M);
    this.inPieces(op, M, [V, 1, 5, 1], [], (r0, n) => {
    const args: KernelArg[] = [['Z', this.rowsOf(Z, V, r0, n)], ['ID', this.rowsOf(ID, 1, r0, n)], ['SET', this.rowsOf(SET, 5, r0, n)]];
    if (LP) args.push(['LP', this.rowsOf(LP, 1, r0, n)]);
    this.runRows(
      `sampleTokens${LP ? '_lp' : ''}`,
      `let v = u32(s0); let o = row * v;
       // Row settings, made workgroup-uniform (they steer loops that hold barriers).
       if (lid == 0u) { for (var q = 0u; q < 5u; q++) { sh5[q] = SET[row * 5u + q]; } }
       let greedy = workgroupUniformLoad(&sh5[0]) > 0.5;
       let invT = workgroupUniformLoad(&sh5[1]);
       let topP = workgroupUniformLoad(&sh5[2]);
       let topK = u32(workgroupUniformLoad(&sh5[3]));
       let uu = workgroupUniformLoad(&sh5[4]);
       var mz = -3.0e38;
       for (var j = lid; j < v; j += ${WG}u) { mz = max(mz, Z[o + j]); }
       let m = rowMaxF(mz, lid);
       var tok = 0u;
       if (greedy) {
         var bi = v;
         for (var j = lid; j < v; j += ${WG}u) { if (Z[o + j] == m && j < bi) { bi = j; } }
         tok = rowMinU(bi, lid);
       } else {
         // Bits of each weight w = exp((z − m)/T) in (0, 1]: their u32 order is their value order.
         var tk = 0u; var ck = v;
         if (topK > 0u) {
           var lo = 0u; var hi = 0x3f800001u; // find the largest t with count(bits ≥ t) ≥ K
           for (var it = 0u; it < 32u; it++) {
             if (hi - lo <= 1u) { break; }
             let mid = lo + (hi - lo) / 2u;
             var c = 0u;
             for (var j = lid; j < v; j += ${WG}u) { if (wbits(Z[o + j], m, invT) >= mid) { c += 1u; } }
             if (rowSumU(c, lid) >= topK) { lo = mid; } else { hi = mid; }
           }
           tk = lo;
           var cg = 0u;
           for (var j = lid; j < v; j += ${WG}u) { if (wbits(Z[o + j], m, invT) > tk) { cg += 1u; } }
           let need = topK - rowSumU(cg, lid);
           ck = tieCut(o, v, m, invT, tk, need, 0u, v, 0.0, lid);
         }
         var tp = 0u; var cp = v;
         if (topP < 1.0) {
           var sk = 0.0;
           for (var j = lid; j < v; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck)) { sk += bitcast<f32>(b); } }
           let goalP = topP * rowSumF(sk, lid);
           var lo = 0u; var hi = 0x3f800001u; // the largest t with mass(kept ∧ bits ≥ t) ≥ goalP
           for (var it = 0u; it < 32u; it++) {
             if (hi - lo <= 1u) { break; }
             let mid = lo + (hi - lo) / 2u;
             var ms = 0.0;
             for (var j = lid; j < v; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck) && b >= mid) { ms += bitcast<f32>(b); } }
             if (rowSumF(ms, lid) >= goalP) { lo = mid; } else { hi = mid; }
           }
           tp = lo;
           var mg = 0.0;
           for (var j = lid; j < v; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck) && b > tp) { mg += bitcast<f32>(b); } }
           let wt = bitcast<f32>(tp);
           let need = max(1u, u32(ceil((goalP - rowSumF(mg, lid)) / wt)));
           cp = tieCut(o, v, m, invT, tp, need, tk, ck, 1.0, lid);
         }
         // The draw: the first id whose cumulative kept weight exceeds u·total (bisection on the id).
         var tot = 0.0;
         for (var j = lid; j < v; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck) && inCut(b, j, tp, cp)) { tot += bitcast<f32>(b); } }
         let goal = uu * rowSumF(tot, lid);
         var lo = 0u; var hi = v; // smallest c with mass(kept ∧ id ≤ c) > goal
         for (var it = 0u; it < 32u; it++) {
           if (lo >= hi) { break; }
           let mid = lo + (hi - lo) / 2u;
           var ms = 0.0;
           for (var j = lid; j <= mid; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck) && inCut(b, j, tp, cp)) { ms += bitcast<f32>(b); } }
           if (rowSumF(ms, lid) > goal) { hi = mid; } else { lo = mid + 1u; }
         }
         // Rounding can leave the goal at the total: take the last kept id.
         var last = 0u;
         for (var j = lid; j < v; j += ${WG}u) { let b = wbits(Z[o + j], m, invT); if (inCut(b, j, tk, ck) && inCut(b, j, tp, cp)) { last = max(last, j); } }
         let lastKept = rowMaxIdx(last, lid);
         tok = min(lo, lastKept);
       }
       ${LP ? `var se = 0.0;
       for (var j = lid; j < v; j += ${WG}u) { se += exp(Z[o + j] - m); }
       let lse = m + log(rowSumF(se, lid));
       if (lid == 0u) { LP[row] = Z[o + tok] - lse; }` : ''}
       if (lid == 0u) { ID[row] = i32(tok); }`,
      n,
      args,
      [V],
      SAMPLER_HELPERS,
    );
    });
    this.free(SET);
  }

  // ---- rows ----------------------------------------------------------------------------------------------------

  /** dst[i, :] = src[ids[i], :]. */
  gatherRows(src: F32, ids: I32, dst: F32, D: number): void {
    const [S, I, O] = [gpu(src, 'gatherRows', 'src'), gpu(ids, 'gatherRows', 'ids'), gpu(dst, 'gatherRows', 'dst')];
    need('gatherRows', 'dst', O, I.size * D);
    if (D <= 0 || S.size % D !== 0) throw new RangeError(`gatherRows: src has ${S.size} elements, not rows of ${D}`);
    // In pieces of the ids and of the table's rows: each piece copies the rows whose id falls in its block.
    const V = S.size / D;
    const vb = this.windows.rowsPerPiece('gatherRows', V, [D]);
    this.inPieces('gatherRows', I.size, [D, 1], [], (r0, n) => {
      for (let v0 = 0; v0 < V; v0 += vb)
        this.run(
          'gatherRows',
          `let d = s0; let r = i / d; let id = u32(I[r]) - s1; if (id < s2) { O[i] = S[id * d + i % d]; }`,
          n * D,
          [['S', this.rowsOf(S, D, v0, Math.min(vb, V - v0))], ['I', this.rowsOf(I, 1, r0, n)], ['O', this.rowsOf(O, D, r0, n)]],
          [u32(D), u32(v0), u32(Math.min(vb, V - v0))],
        );
    });
  }

  /**
   * dst[ids[i], :] += src[i, :] (ACCUMULATES; repeated ids add up), deterministic without float atomics: the (id,
   * position) pairs are sorted on the device (a bitonic sort, O(N log² N) for N ids), then each run of equal ids is
   * summed in position order by one invocation per column and added to its row. O(N·D) adds in all.
   */
  scatterAddRows(src: F32, ids: I32, dst: F32, D: number): void {
    const [S, I, O] = [gpu(src, 'scatterAddRows', 'src'), gpu(ids, 'scatterAddRows', 'ids'), gpu(dst, 'scatterAddRows', 'dst')];
    need('scatterAddRows', 'src', S, I.size * D);
    if (D <= 0 || O.size % D !== 0) throw new RangeError(`scatterAddRows: dst has ${O.size} elements, not rows of ${D}`);
    const N = I.size;
    if (N === 0) return;
    const sorted = this.sortIdsWithPositions(I);
    // In pieces of the table's rows: each adds the runs whose id falls in its block.
    const V = O.size / D;
    this.inPieces('scatterAddRows', V, [D], [['src', S], ['sorted ids', sorted]], (v0, nv) =>
      this.run(
        'scatterAddRows',
        `let d = s0; let p = i / d; let c = i % d; let id = KP[2u * p];
         let local = u32(id) - s2;
         if (local < s3 && (p == 0u || KP[2u * p - 2u] != id)) {
           var s = 0.0;
           for (var q = p; q < s1; q++) {
             if (KP[2u * q] != id) { break; }
             s += S[u32(KP[2u * q + 1u]) * d + c];
           }
           O[local * d + c] = O[local * d + c] + s;
         }`,
        N * D,
        [['S', S], ['KP', sorted], ['O', this.rowsOf(O, D, v0, nv)]],
        [u32(D), u32(N), u32(v0), u32(nv)],
      ),
    );
    this.free(sorted);
  }

  /**
   * The pairs (ids[n], n) sorted by id then position, as i32 [2·P] (P the next power of two ≥ N; the padding sorts
   * last): a bitonic sort, one dispatch per merge step.
   */
  private sortIdsWithPositions(I: GpuTensor<'i32'>): GpuTensor<'i32'> {
    const N = I.size;
    let P = 1;
    while (P < N) P *= 2;
    const KP = this.empty([2 * P], 'i32');
    this.run('sortIds_init', `if (i < s0) { KP[2u * i] = I[i]; } else { KP[2u * i] = 2147483647; } KP[2u * i + 1u] = i32(i);`, P, [['I', I], ['KP', KP]], [u32(N)]);
    for (let k = 2; k <= P; k *= 2)
      for (let j = k / 2; j >= 1; j /= 2)
        this.run(
          'sortIds_step',
          `let l = i ^ s0;
           if (l > i) {
             let a = vec2<i32>(KP[2u * i], KP[2u * i + 1u]);
             let b = vec2<i32>(KP[2u * l], KP[2u * l + 1u]);
             let greater = a.x > b.x || (a.x == b.x && a.y > b.y);
             if (greater == ((i & s1) == 0u)) {
               KP[2u * i] = b.x; KP[2u * i + 1u] = b.y; KP[2u * l] = a.x; KP[2u * l + 1u] = a.y;
             }
           }`,
          P,
          [['KP', KP]],
          [u32(j), u32(k)],
        );
    return KP;
  }

  /** RMSNorm over rows of x [R, C]: one workgroup per row. */
  rmsnorm(x: F32, w: F32, y: F32, rstd: F32 | null, C: number, eps: number): void {
    const [X, W, Y] = [gpu(x, 'rmsnorm', 'x'), gpu(w, 'rmsnorm', 'w'), gpu(y, 'rmsnorm', 'y')];
    need('rmsnorm', 'w', W, C);
    need('rmsnorm', 'y', Y, X.size);
    const R = X.size / C;
    if (!Number.isInteger(R)) throw new RangeError(`rmsnorm: x has ${X.size} elements, not rows of ${C}`);
    const RS = rstd === null ? null : gpu(rstd, 'rmsnorm', 'rstd');
    if (RS) need('rmsnorm', 'rstd', RS, R);
    this.inPieces('rmsnorm', R, [C, C, 1], [['w', W]], (r0, n) => {
      const args: KernelArg[] = [['X', this.rowsOf(X, C, r0, n)], ['W', W], ['Y', this.rowsOf(Y, C, r0, n)]];
      if (RS) args.push(['RS', this.rowsOf(RS, 1, r0, n)]);
      this.runRows(
      `rmsnorm${rstd ? '_r' : ''}`,
      `let c = u32(s0);
       var ss = 0.0;
       for (var j = lid; j < c; j += ${WG}u) { let v = X[row * c + j]; ss += v * v; }
       let total = rowSum(ss, lid);
       let rs = 1.0 / sqrt(total / f32(c) + s1);
       ${rstd ? 'if (lid == 0u) { RS[row] = rs; }' : ''}
       for (var j = lid; j < c; j += ${WG}u) { Y[row * c + j] = W[j] * (X[row * c + j] * rs); }`,
        n,
        args,
        [C, eps],
      );
    });
  }

  /** dx += ∂L/∂x, dw += ∂L/∂w (when given); dy is consumed (left as it was here). */
  rmsnormBackward(x: F32, w: F32, rstd: F32, dy: F32, dx: F32, dw: F32 | null, C: number): void {
    const op = 'rmsnormBackward';
    const [X, W, RS, DY, DX] = [gpu(x, op, 'x'), gpu(w, op, 'w'), gpu(rstd, op, 'rstd'), gpu(dy, op, 'dy'), gpu(dx, op, 'dx')];
    const R = X.size / C;
    need(op, 'w', W, C);
    need(op, 'rstd', RS, R);
    need(op, 'dy', DY, X.size);
    need(op, 'dx', DX, X.size);
    this.inPieces(op, R, [C, 1, C, C], [['w', W]], (r0, n) => this.runRows(
      op,
      `let c = u32(s0);
       let rs = RS[row];
       var dot = 0.0;
       for (var j = lid; j < c; j += ${WG}u) { dot += DY[row * c + j] * W[j] * X[row * c + j]; }
       let m = rowSum(dot, lid) / f32(c);
       for (var j = lid; j < c; j += ${WG}u) {
         let k = row * c + j;
         DX[k] = DX[k] + rs * (DY[k] * W[j] - X[k] * rs * rs * m);
       }`,
      n,
      [['X', this.rowsOf(X, C, r0, n)], ['W', W], ['RS', this.rowsOf(RS, 1, r0, n)], ['DY', this.rowsOf(DY, C, r0, n)], ['DX', this.rowsOf(DX, C, r0, n)]],
      [C],
    ));
    if (dw !== null) {
      const DW = gpu(dw, op, 'dw');
      need(op, 'dw', DW, C);
      // dw[c] += Σ_r dy[r, c] · x[r, c] · rstd[r].
      this.columnSums('rmsnormBackward_dw', 'DY[r * c + j] * X[r * c + j] * RS[r]', R, C, [['DY', DY, C], ['X', X, C], ['RS', RS, 1]], DW);
    }
  }

  // ---- optimizer -----------------------------------------------------------------------------------------------

  adamw(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper): void {
    const op = 'adamw';
    const [P, G, Mm, V] = [gpu(p, op, 'p'), gpu(g, op, 'g'), gpu(m, op, 'm'), gpu(v, op, 'v')];
    for (const [n, t] of [['g', G], ['m', Mm], ['v', V]] as const) need(op, n, t, P.size);
    this.runElementwise(
      op,
      `let gi = G[i];
       let mi = s0 * M[i] + (1.0 - s0) * gi;
       let vi = s1 * V[i] + (1.0 - s1) * gi * gi;
       M[i] = mi; V[i] = vi;
       P[i] = P[i] * s3 - (s4 * mi) / (sqrt(vi) / s5 + s2);`,
      P.size,
      [['P', P], ['G', G], ['M', Mm], ['V', V]],
      [h.beta1, h.beta2, h.eps, h.decay, h.stepSize, h.bc2sqrt],
    );
  }

  /**
   * out[0] = Σ over the tensors of Σ x², in two passes over many workgroups: each workgroup tree-reduces a block of
   * PARTIAL_BLOCK elements of one tensor into its own partial, then one workgroup sums the partials in order. The
   * result does not depend on timing (no float atomics; f32 accumulation, as the contract allows).
   */
  sumSquares(xs: readonly F32[], out: F32): void {
    const O = gpu(out, 'sumSquares', 'out');
    need('sumSquares', 'out', O, 1);
    const pieces = xs.map((x) => {
      const t = gpu(x, 'sumSquares', 'x');
      return [t, this.blockedPieces('sumSquares', t.size, [1], PARTIAL_BLOCK)] as const;
    });
    const G = pieces.reduce((a, [, ps]) => ps.reduce((b, [, n]) => b + Math.ceil(n / PARTIAL_BLOCK), a), 0);
    this.fill(O, 0);
    if (G === 0) return;
    const partials = this.empty([G]);
    let g0 = 0;
    for (const [t, ps] of pieces)
      for (const [i0, n] of ps) {
        const g = Math.ceil(n / PARTIAL_BLOCK);
        this.runRows(
          'sumSquares',
          `let j0 = row * ${PARTIAL_BLOCK}u; let j1 = min(j0 + ${PARTIAL_BLOCK}u, s0);
           var s = 0.0;
           for (var j = j0 + lid; j < j1; j += ${WG}u) { let v = X[j]; s += v * v; }
           let total = rowSum(s, lid);
           if (lid == 0u) { PT[row] = total; }`,
          g,
          [['X', this.rowsOf(t, 1, i0, n)], ['PT', this.rowsOf(partials, 1, g0, g)]],
          [u32(n)],
        );
        g0 += g;
      }
    this.addPartials(partials, G, 1, O);
    this.free(partials);
  }

  /** The update adamw would make, measured: out[0] += Σ (p_new − p)², out[1] += Σ p²; p, m, v untouched. */
  adamwPreview(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper, out: F32): void {
    const op = 'adamwPreview';
    const [P, G, Mm, V, O] = [gpu(p, op, 'p'), gpu(g, op, 'g'), gpu(m, op, 'm'), gpu(v, op, 'v'), gpu(out, op, 'out')];
    for (const [n, t] of [['g', G], ['m', Mm], ['v', V]] as const) need(op, n, t, P.size);
    need(op, 'out', O, 2);
    if (P.size === 0) return;
    // Two passes, as sumSquares: [Σ (p_new − p)², Σ p²] per block of PARTIAL_BLOCK elements, then their sums in order.
    const pieces = this.blockedPieces(op, P.size, [1, 1, 1, 1], PARTIAL_BLOCK);
    const partials = this.empty([2 * pieces.reduce((a, [, n]) => a + Math.ceil(n / PARTIAL_BLOCK), 0)]);
    let g0 = 0;
    for (const [i0, n] of pieces) {
      const g = Math.ceil(n / PARTIAL_BLOCK);
      this.runRows(
        op,
        `let j0 = row * ${PARTIAL_BLOCK}u; let j1 = min(j0 + ${PARTIAL_BLOCK}u, s6);
         var du = 0.0; var pp = 0.0;
         for (var j = j0 + lid; j < j1; j += ${WG}u) {
           let gi = G[j];
           let mi = s0 * M[j] + (1.0 - s0) * gi;
           let vi = s1 * V[j] + (1.0 - s1) * gi * gi;
           let old = P[j];
           let nw = old * s3 - (s4 * mi) / (sqrt(vi) / s5 + s2);
           du += (nw - old) * (nw - old);
           pp += old * old;
         }
         let tdu = rowSum(du, lid);
         let tpp = rowSum(pp, lid);
         if (lid == 0u) { PT[2u * row] = tdu; PT[2u * row + 1u] = tpp; }`,
        g,
        [['P', this.rowsOf(P, 1, i0, n)], ['G', this.rowsOf(G, 1, i0, n)], ['M', this.rowsOf(Mm, 1, i0, n)], ['V', this.rowsOf(V, 1, i0, n)], ['PT', this.rowsOf(partials, 2, g0, g)]],
        [h.beta1, h.beta2, h.eps, h.decay, h.stepSize, h.bc2sqrt, u32(n)],
      );
      g0 += g;
    }
    this.addPartials(partials, g0, 2, O);
    this.free(partials);
  }

  // ---- reductions ----------------------------------------------------------------------------------------------
  //
  // Parallel and deterministic without float atomics: every reduction is two passes with a fixed partition, partial
  // sums of blocks first (many workgroups), then each column's partials summed in order by one workgroup.

  /**
   * out[c] += Σ_r term(r, c) for rows r < R of C columns (ACCUMULATES). `term` is WGSL of the row r and column j of
   * `rowArgs` (each [name, tensor, elements per row], split into pieces of rows like any op); `c` is C. Pass 1: one
   * thread per (block of COLUMN_BLOCK rows, column) sums its block into partials [G, C]; pass 2: `addPartials`.
   */
  private columnSums(key: string, term: string, R: number, C: number, rowArgs: ReadonlyArray<readonly [string, GpuTensor, number]>, out: GpuTensor): void {
    if (R === 0 || C === 0) return;
    const pieces = this.blockedPieces(key, R, rowArgs.map(([, , per]) => per), COLUMN_BLOCK);
    const G = pieces.reduce((a, [, n]) => a + Math.ceil(n / COLUMN_BLOCK), 0);
    const partials = this.empty([G * C]);
    let g0 = 0;
    for (const [r0, n] of pieces) {
      const g = Math.ceil(n / COLUMN_BLOCK);
      this.run(
        `${key}_partials`,
        `let c = s0; let j = i % c; let r0 = (i / c) * ${COLUMN_BLOCK}u; let r1 = min(r0 + ${COLUMN_BLOCK}u, s1);
         var s = 0.0;
         for (var r = r0; r < r1; r++) { s += ${term}; }
         PART[i] = s;`,
        g * C,
        [...rowArgs.map(([name, t, per]) => [name, this.rowsOf(t, per, r0, n)] as const), ['PART', this.rowsOf(partials, C, g0, g)]],
        [u32(C), u32(n)],
      );
      g0 += g;
    }
    this.addPartials(partials, G, C, out);
    this.free(partials);
  }

  /**
   * out[c] += Σ_g partials[g, c] (ACCUMULATES), g in order: one workgroup per column, tree-reduced. Partials larger
   * than one binding window are themselves reduced as a column sum first (fewer rows each time).
   */
  private addPartials(partials: GpuTensor, G: number, C: number, out: GpuTensor): void {
    if (G * C > this.windows.maxSpan) {
      this.columnSums('addPartials', 'PT[r * c + j]', G, C, [['PT', partials, C]], out);
      return;
    }
    this.runRows(
      'addPartials',
      `var s = 0.0;
       for (var g = lid; g < s0; g += ${WG}u) { s += PT[g * s1 + row]; }
       let t = rowSum(s, lid);
       if (lid == 0u) { OUT[row] = OUT[row] + t; }`,
      C,
      [['PT', partials], ['OUT', out]],
      [u32(G), u32(C)],
    );
  }

  // ---- pieces --------------------------------------------------------------------------------------------------
  //
  // An op over R rows whose tensors do not fit one binding window runs as blocks of rows (window.ts): `f(r0, n)` per
  // block, with `rowsOf` views of its row-split tensors. Tensors every piece needs whole (`whole`) must fit a window.

  private inPieces(op: string, R: number, perRow: readonly number[], whole: ReadonlyArray<readonly [string, GpuTensor]>, f: (r0: number, n: number) => void): void {
    const b = this.windows.rowsPerPiece(op, R, perRow, whole.map(([name, t]) => [name, t.size] as const));
    for (let r0 = 0; r0 < R; r0 += b) f(r0, Math.min(b, R - r0));
  }

  /**
   * The pieces [r0, n) of R rows for a reduction whose first pass sums blocks of `block` rows: pieces are whole blocks
   * where a window holds at least one, so that the partition into blocks is fixed.
   */
  private blockedPieces(op: string, R: number, perRow: readonly number[], block: number): Array<readonly [number, number]> {
    const b = this.windows.rowsPerPiece(op, R, perRow);
    const step = b >= block ? b - (b % block) : b;
    return [...blocks(R, step)].filter(([, n]) => n > 0);
  }

  /** Rows [r0, r0 + n) of `t`, `per` elements a row. */
  private rowsOf<D extends DType>(t: GpuTensor<D>, per: number, r0: number, n: number): GpuTensor<D> {
    return this.view(t, r0 * per, [n * per]);
  }

  /** `run` of a body that reads and writes element i of every argument (all of n elements), in pieces. */
  private runElementwise(key: string, body: string, n: number, args: readonly KernelArg[], scalars: readonly Scalar[]): void {
    this.inPieces(key, n, args.map(() => 1), [], (i0, m) => this.run(key, body, m, args.map(([name, t]) => [name, this.rowsOf(t, 1, i0, m)] as const), scalars));
  }

  // ---- dispatch ------------------------------------------------------------------------------------------------

  /**
   * Runs `body` for every i < n (one invocation each), with the tensors named in `args` (reads and writes of
   * NAME[k] reach element k of that tensor) and the scalars as s0, s1, … (f32, or u32 for `u32(x)`).
   */
  private run(key: string, body: string, n: number, args: readonly KernelArg[], scalars: readonly Scalar[]): void {
    if (n === 0) return;
    this.dispatch(key, 'flat', body, n, args, scalars, flatGrid(n));
  }

  /** Runs `body` once per row (row < rows), by one workgroup of WG invocations (`lid`), with `rowSum(x, lid)`. */
  private runRows(key: string, body: string, rows: number, args: readonly KernelArg[], scalars: readonly Scalar[], helpers = ''): void {
    if (rows === 0) return;
    const gx = Math.min(rows, 65535);
    this.dispatch(key, 'rows', body, rows, args, scalars, [gx, Math.ceil(rows / gx)], helpers);
  }

  /**
   * Runs a tiled kernel (src/engine/webgpu/attention.ts): `grid` workgroups of TILE_ROWS invocations (`wid`, `lid`),
   * with the workgroup memory declared in `decls`.
   */
  private runTiles(key: string, body: string, grid: [number, number], args: readonly KernelArg[], scalars: readonly number[], decls: string): void {
    if (grid[0] === 0 || grid[1] === 0) return;
    if (grid[0] > 65535 || grid[1] > 65535) throw new RangeError(`${key}: a grid of ${grid[0]} × ${grid[1]} workgroups exceeds 65535 in a dimension`);
    this.dispatch(key, 'tiles', body, grid[0] * grid[1], args, scalars, grid, decls);
  }

  /** Rows per tile for tiles of `perRow` floats a row (the adapter's workgroup memory decides). */
  private tileDepth(perRow: number): number {
    return tileDepth(perRow, this.dev.limits.maxComputeWorkgroupStorageSize);
  }

  /** Kernels bind their parameters at 0 and their k buffers (read-write) at 1…k. */
  private layoutOf(k: number): KernelLayout {
    return this.dev.layout(['u', ...Array.from({ length: k }, () => 'w' as const)]);
  }

  private dispatch(
    key: string,
    kind: 'flat' | 'rows' | 'tiles',
    body: string,
    n: number,
    args: readonly KernelArg[],
    scalars: readonly Scalar[],
    grid: [number, number],
    helpers = '',
    /** Rows of 4 u32 placed first in the uniform as `kparams.tab` (a per-row table, e.g. of cache segments). */
    table: Uint32Array | null = null,
  ): void {
    if (n === 0) return;
    // The table's length is rounded up to a power of two so that few pipelines serve every batch size.
    const tabRows = table === null ? 0 : Math.max(16, 2 ** Math.ceil(Math.log2(table.length / 4)));
    // Distinct buffers in order of first use; each tensor reads through its buffer's binding at its offset there.
    const buffers: GpuStorage[] = [];
    const slotOf = args.map(([, t]) => {
      let s = buffers.indexOf(t.storage);
      if (s < 0) s = buffers.push(t.storage) - 1;
      return s;
    });
    // Each buffer is bound as the window covering its tensors' elements (window.ts).
    const lo = buffers.map(() => Infinity);
    const hi = buffers.map(() => -Infinity);
    args.forEach(([, t], j) => {
      const s = slotOf[j]!;
      lo[s] = Math.min(lo[s]!, t.offset);
      hi[s] = Math.max(hi[s]!, t.offset + t.size);
    });
    const wins = buffers.map((b, s) => this.windows.bind(b.buffer, lo[s]!, hi[s]!, key));
    const types = scalars.map((x) => (typeof x === 'number' ? 'f32' : 'u32'));
    const pattern = slotOf.join('.');
    const pkey = `${kind}:${key}:${pattern}:${buffers.map((b) => b.dtype).join('.')}:${types.join('.')}:${tabRows}`;
    let pl = this.pipelines.get(pkey);
    if (pl === undefined) {
      const decls = buffers.map((b, s) => `@group(0) @binding(${s + 1}) var<storage, read_write> buf${s}: array<${b.dtype}>;`).join('\n');
      // NAME[k] → buf{slot}[u.off{j} + k], by text substitution of the argument names in the body.
      let code = body;
      let help = helpers;
      args.forEach(([name], j) => {
        const re = new RegExp(`\\b${name}\\[`, 'g');
        code = code.replace(re, `buf${slotOf[j]}[kparams.off${j} + `);
        help = help.replace(re, `buf${slotOf[j]}[kparams.off${j} + `);
      });
      const fields = [
        ...(tabRows > 0 ? [`tab: array<vec4<u32>, ${tabRows}>`] : []),
        `n: u32`,
        ...args.map((_, j) => `off${j}: u32`),
        ...Array.from({ length: Math.max(1, scalars.length) }, (_, j) => `s${j}: ${types[j] ?? 'f32'}`),
      ];
      const scalarLets = scalars.map((_, j) => `let s${j} = kparams.s${j};`).join(' ');
      const main =
        kind === 'tiles'
          ? `@compute @workgroup_size(${TILE_ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${scalarLets}
  ${code}
}`
          : kind === 'flat'
          ? `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= kparams.n) { return; }
  ${scalarLets}
  ${code}
}`
          : `var<workgroup> red: array<f32, ${WG}>;
var<workgroup> redOut: f32;
${reduction('rowSum', 'f32', 'red', 'redOut', (x, y) => `${x} + ${y}`)}
${reduction('rowMax', 'f32', 'red', 'redOut', (x, y) => `max(${x}, ${y})`)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= kparams.n) { return; }
  ${scalarLets}
  ${code}
}`;
      const wgsl = `struct KParams { ${fields.join(', ')} }\n@group(0) @binding(0) var<uniform> kparams: KParams;\n${decls}\n${help}\n${main}\n`;
      const module = this.dev.device.createShaderModule({ code: wgsl, label: key });
      pl = this.dev.device.createComputePipeline({ layout: this.layoutOf(buffers.length).pipeline, compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(pkey, pl);
    }
    // Uniform: the table (if any), n, the offsets (u32, from the windows' starts), then the scalars (f32 or u32).
    const t0 = 4 * tabRows;
    const words = t0 + 1 + args.length + Math.max(1, scalars.length);
    const u = new ArrayBuffer(Math.ceil((words * 4) / 16) * 16);
    const u32 = new Uint32Array(u);
    const f32 = new Float32Array(u);
    if (table !== null) u32.set(table);
    u32[t0] = n;
    args.forEach(([, t], j) => (u32[t0 + 1 + j] = t.offset - wins[slotOf[j]!]!.base));
    scalars.forEach((x, j) => {
      if (typeof x === 'number') f32[t0 + 1 + args.length + j] = x;
      else u32[t0 + 1 + args.length + j] = x.u32;
    });
    this.dev.dispatch(key, pl, this.layoutOf(buffers.length), u, wins.map((w) => w.binding), grid[0], grid[1]);
  }
}

/** Workgroups of WG for n invocations, as a 2-D grid within the 65535 limit per dimension. */
function flatGrid(n: number): [number, number] {
  const groups = Math.ceil(n / WG);
  const gx = Math.min(groups, 65535);
  return [gx, Math.ceil(groups / gx)];
}

/** Segments whose caches live in the same two buffers (keys, values), with a tensor spanning each whole buffer. */
interface CacheGroup {
  k: GpuTensor<'f32'>;
  v: GpuTensor<'f32'>;
  segs: CacheSegment[];
}

/** Groups a batch's segments by the buffers their caches are in (a pooled cache puts a whole batch in one group). */
function cacheGroups(op: string, segs: readonly CacheSegment[]): CacheGroup[] {
  const groups = new Map<GpuStorage, Map<GpuStorage, CacheGroup>>();
  const out: CacheGroup[] = [];
  for (const sg of segs) {
    const [kc, vc] = [gpu(sg.kc, op, 'kc'), gpu(sg.vc, op, 'vc')];
    let byV = groups.get(kc.storage);
    if (byV === undefined) groups.set(kc.storage, (byV = new Map()));
    let g = byV.get(vc.storage);
    if (g === undefined) {
      const whole = (st: GpuStorage): GpuTensor<'f32'> => new GpuTensor('f32', [st.elements], st.elements, st, 0);
      byV.set(vc.storage, (g = { k: whole(kc.storage), v: whole(vc.storage), segs: [] }));
      out.push(g);
    }
    g.segs.push(sg);
  }
  return out;
}

/** Whether the tensors, bound together in one dispatch, need at most one window of `maxSpan` elements per buffer. */
function fitsOneWindow(maxSpan: number, tensors: readonly GpuTensor[]): boolean {
  const span = new Map<GpuStorage, [number, number]>();
  for (const t of tensors) {
    const [lo, hi] = span.get(t.storage) ?? [Infinity, -Infinity];
    span.set(t.storage, [Math.min(lo, t.offset), Math.max(hi, t.offset + t.size)]);
  }
  return [...span.values()].every(([lo, hi]) => hi - lo <= maxSpan);
}

/** Most table rows in one dispatch (rounded up to a power of two, 32 KiB of uniform: WebGPU guarantees 64 KiB). */
const MAX_TABLE_ROWS = 2048;

/**
 * The per-row table of a group's segments, (batch row, cache offset from `base`, maxLen, position) for every query
 * row, when the keys and values of each segment sit at the same offset in their buffers (a pooled cache); null
 * otherwise.
 */
function rowTable(segs: readonly CacheSegment[], kd: number, base: number): { words: Uint32Array; rows: number } | null {
  let rows = 0;
  for (const sg of segs) {
    const [kc, vc] = [sg.kc as GpuTensor, sg.vc as GpuTensor];
    if (kc.offset !== vc.offset) return null;
    rows += sg.n;
  }
  if (rows === 0 || rows > MAX_TABLE_ROWS) return null;
  const words = new Uint32Array(4 * rows);
  let t = 0;
  for (const sg of segs) {
    const off = (sg.kc as GpuTensor).offset - base;
    const maxLen = sg.kc.size / kd;
    for (let k = 0; k < sg.n; k++, t++) words.set([sg.r0 + k, off, maxLen, sg.pos0 + k], 4 * t);
  }
  return { words, rows };
}

/**
 * WGSL of one query row's attention with an online softmax: keys j = first … last (inclusive) at element offset `ko`
 * (an expression of j) of `K`/`V`, scores scaled by `scale`, the output row written to O at `qo`. Leaves m and l (the
 * running max and sum) for the log-sum-exp. Shared by packed attention and attention over a KV cache.
 */
function onlineSoftmax(hd: number, first: string, last: string, ko: string, K: string, V: string, scale: string): string {
  return `var acc: array<f32, ${hd}>;
       var m = -3.0e38; var l = 0.0;
       for (var j = ${first}; j <= ${last}; j++) {
         let ko = ${ko};
         var d = 0.0;
         for (var e = 0u; e < hd; e++) { d += Q[qo + e] * ${K}[ko + e]; }
         d = d * ${scale};
         let mn = max(m, d);
         let corr = exp(m - mn);
         let p = exp(d - mn);
         l = l * corr + p;
         for (var e = 0u; e < hd; e++) { acc[e] = acc[e] * corr + p * ${V}[ko + e]; }
         m = mn;
       }
       for (var e = 0u; e < hd; e++) { O[qo + e] = acc[e] / l; }`;
}

/** A workgroup tree reduction of one value per invocation whose result is workgroup-uniform (it may steer loops). */
function reduction(name: string, type: 'u32' | 'f32', scratch: string, out: string, combine: (a: string, b: string) => string): string {
  return `fn ${name}(x: ${type}, lid: u32) -> ${type} {
  ${scratch}[lid] = x;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) { if (lid < s) { ${scratch}[lid] = ${combine(`${scratch}[lid]`, `${scratch}[lid + s]`)}; } workgroupBarrier(); }
  if (lid == 0u) { ${out} = ${scratch}[0]; }
  return workgroupUniformLoad(&${out});
}`;
}

/**
 * WGSL helpers of the sampler (a workgroup of WG per row): weight bits, workgroup-uniform reductions, and the id
 * cut-off among equal weights. `Z` is the logits tensor (rewritten to its binding like the body).
 */
const SAMPLER_HELPERS = `
var<workgroup> sh5: array<f32, 5>;
var<workgroup> redU: array<u32, ${WG}>;
var<workgroup> redF: array<f32, ${WG}>;
var<workgroup> outU: u32;
var<workgroup> outF: f32;
fn wbits(z: f32, m: f32, invT: f32) -> u32 { return bitcast<u32>(exp((z - m) * invT)); }
// Kept by a cut-off: weight above the threshold bits, or equal to it with an id below the tie cut.
fn inCut(b: u32, j: u32, t: u32, c: u32) -> bool { return b > t || (b == t && j < c); }
${reduction('rowSumU', 'u32', 'redU', 'outU', (x, y) => `${x} + ${y}`)}
${reduction('rowMinU', 'u32', 'redU', 'outU', (x, y) => `min(${x}, ${y})`)}
${reduction('rowMaxIdx', 'u32', 'redU', 'outU', (x, y) => `max(${x}, ${y})`)}
${reduction('rowSumF', 'f32', 'redF', 'outF', (x, y) => `${x} + ${y}`)}
${reduction('rowMaxF', 'f32', 'redF', 'outF', (x, y) => `max(${x}, ${y})`)}
// The id c such that exactly 'need' of the weights equal to bits t (and kept by the earlier cut t0/c0) have an id
// below c: bisection on c. A weight of bits t keeps itself unless it fails the earlier cut.
fn tieCut(o: u32, v: u32, m: f32, invT: f32, t: u32, need: u32, t0: u32, c0: u32, useEarlier: f32, lid: u32) -> u32 {
  var lo = 0u; var hi = v;
  for (var it = 0u; it < 32u; it++) {
    if (lo >= hi) { break; }
    let mid = lo + (hi - lo) / 2u;
    var c = 0u;
    for (var j = lid; j < mid; j += ${WG}u) {
      let b = wbits(Z[o + j], m, invT);
      if (b == t && (useEarlier < 0.5 || inCut(b, j, t0, c0))) { c += 1u; }
    }
    if (rowSumU(c, lid) >= need) { hi = mid; } else { lo = mid + 1u; }
  }
  return lo;
}
`;
