// The engine contract (src/engine/backend.ts) on the CPU: tensors are typed arrays (views into the kernels' memory),
// ops run at once, `read` resolves with a copy. Built on a `HostKernels` (GEMM + memory) and its row kernels; with the
// plain-JS kernels (src/engine/js-backend.ts) this IS the reference implementation of every op. The wasm and blas
// backends reuse it with their own GEMM and row kernels.
//
// Attention, the fused LM-head log-softmax and the KV-cache attention are written here once, as loops around the
// kernels' GEMM (query chunks, scores formed per KV group, the T×T matrix never stored whole), so every CPU backend
// gets them at the speed of its GEMM.
import type { AdamWHyper, AttentionDims, Backend, CacheSegment } from './backend.js';
import { rowKernelsOf, type HostKernels, type RowKernels } from './kernels.js';
import { TokenSampler, type SamplerSettings } from './sampling.js';
import { shapeSize, type DType, type DeviceTensor, type F32, type HostArray, type I32 } from './tensor.js';

/** A CPU tensor: a typed array holding exactly its elements (a view of `storage` at `offset`). */
export class CpuTensor<D extends DType = DType> implements DeviceTensor<D> {
  constructor(
    readonly dtype: D,
    readonly shape: readonly number[],
    /** The tensor's elements (a view of the storage). */
    readonly data: HostArray<D>,
    readonly storage: HostArray<D>,
    readonly offset: number,
  ) {}
  get size(): number {
    return this.data.length;
  }
}

/** Scratch arrays by name from the kernels' memory, grown geometrically (never shrunk until clear). */
class Scratch {
  private readonly bufs = new Map<string, Float32Array>();
  constructor(private readonly k: HostKernels) {}
  get(key: string, len: number): Float32Array {
    let b = this.bufs.get(key);
    if (b === undefined || b.length < len) {
      const cap = b === undefined ? len : Math.max(len, Math.ceil(b.length * 1.5));
      if (b !== undefined) this.k.free?.(b);
      b = this.k.alloc(Math.max(cap, 1));
      this.bufs.set(key, b);
    }
    return b.subarray(0, len);
  }
  clear(): void {
    for (const b of this.bufs.values()) this.k.free?.(b);
    this.bufs.clear();
  }
}

function need(op: string, arg: string, t: DeviceTensor, n: number): void {
  if (t.size !== n) throw new RangeError(`${op}: ${arg} has ${t.size} elements, expected ${n}`);
}

export class CpuBackend implements Backend {
  readonly name: string;
  readonly threads: number;
  /** The GEMM, memory and row kernels the ops run on. */
  readonly kernels: HostKernels;
  private readonly rk: RowKernels;
  private readonly scratch: Scratch;

  constructor(kernels: HostKernels) {
    this.kernels = kernels;
    this.name = kernels.name;
    this.threads = kernels.threads;
    this.rk = rowKernelsOf(kernels);
    this.scratch = new Scratch(kernels);
  }

  /** The elements of a tensor of this backend, in place (the CPU's synchronous access; see `hostView`). */
  f32(t: F32): Float32Array {
    if (!(t instanceof CpuTensor) || t.dtype !== 'f32') throw new TypeError(`${this.name} backend: not an f32 tensor of a CPU backend`);
    return t.data as Float32Array;
  }
  i32(t: I32): Int32Array {
    if (!(t instanceof CpuTensor) || t.dtype !== 'i32') throw new TypeError(`${this.name} backend: not an i32 tensor of a CPU backend`);
    return t.data as Int32Array;
  }

  /** A tensor over an existing host array (no copy): e.g. weights kept outside the wasm memory. */
  wrap(data: Float32Array, shape?: readonly number[]): F32;
  wrap(data: Int32Array, shape?: readonly number[]): I32;
  wrap(data: Float32Array | Int32Array, shape: readonly number[] = [data.length]): DeviceTensor {
    if (shapeSize(shape) !== data.length) throw new RangeError(`wrap: shape [${shape.join(', ')}] does not hold ${data.length} elements`);
    return data instanceof Int32Array
      ? new CpuTensor('i32', shape.slice(), data, data, 0)
      : new CpuTensor('f32', shape.slice(), data, data, 0);
  }

  // ---- memory ------------------------------------------------------------------------------------------------------
  empty<D extends DType = 'f32'>(shape: readonly number[], dtype?: D): DeviceTensor<D> {
    const n = shapeSize(shape);
    const dt = (dtype ?? 'f32') as D;
    if (dt === 'f32') {
      const a = this.kernels.alloc(n);
      return new CpuTensor<D>(dt, shape.slice(), a as HostArray<D>, a as HostArray<D>, 0);
    }
    if (dt !== 'i32') throw new TypeError(`empty: unknown dtype ${String(dt)}`);
    const a = new Int32Array(n);
    return new CpuTensor<D>(dt, shape.slice(), a as HostArray<D>, a as HostArray<D>, 0);
  }

  upload(data: Float32Array, shape?: readonly number[]): F32;
  upload(data: Int32Array, shape?: readonly number[]): I32;
  upload(data: Float32Array | Int32Array, shape: readonly number[] = [data.length]): DeviceTensor {
    if (shapeSize(shape) !== data.length) throw new RangeError(`upload: shape [${shape.join(', ')}] does not hold ${data.length} elements`);
    const t = this.empty(shape, data instanceof Int32Array ? 'i32' : 'f32') as CpuTensor;
    t.data.set(data);
    return t;
  }

  write(t: DeviceTensor, data: ArrayLike<number>, at = 0): void {
    if (!(t instanceof CpuTensor)) throw new TypeError('write: not a CPU tensor');
    if (!(at >= 0) || at + data.length > t.size) throw new RangeError(`write: ${data.length} elements at ${at} do not fit in ${t.size}`);
    t.data.set(data, at);
  }

  read<D extends DType>(t: DeviceTensor<D>): Promise<HostArray<D>> {
    if (!(t instanceof CpuTensor)) return Promise.reject(new TypeError('read: not a CPU tensor'));
    return Promise.resolve(t.data.slice() as HostArray<D>);
  }

  view<D extends DType>(t: DeviceTensor<D>, offset: number, shape: readonly number[]): DeviceTensor<D> {
    if (!(t instanceof CpuTensor)) throw new TypeError('view: not a CPU tensor');
    const n = shapeSize(shape);
    if (!Number.isInteger(offset) || offset < 0 || offset + n > t.size)
      throw new RangeError(`view: [${offset}, ${offset + n}) is outside a tensor of ${t.size} elements`);
    const data = t.data.subarray(offset, offset + n) as HostArray<D>;
    return new CpuTensor<D>(t.dtype, shape.slice(), data, t.storage as HostArray<D>, t.offset + offset);
  }

  copy<D extends DType>(src: DeviceTensor<D>, dst: DeviceTensor<D>): void {
    if (!(src instanceof CpuTensor) || !(dst instanceof CpuTensor)) throw new TypeError('copy: not CPU tensors');
    need('copy', 'dst', dst, src.size);
    if (src.dtype !== dst.dtype) throw new TypeError(`copy: ${src.dtype} into ${dst.dtype}`);
    dst.data.set(src.data);
  }

  fill(t: DeviceTensor, value: number): void {
    if (!(t instanceof CpuTensor)) throw new TypeError('fill: not a CPU tensor');
    t.data.fill(value);
  }

  free(t: DeviceTensor): void {
    if (!(t instanceof CpuTensor)) throw new TypeError('free: not a CPU tensor');
    if (t.offset !== 0 || t.data.length !== t.storage.length) throw new Error('free: a view cannot be freed (free the tensor it views)');
    if (t.dtype === 'f32') this.kernels.free?.(t.data as Float32Array);
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Gives back the ops' scratch memory (grown again on the next op that needs it). */
  releaseScratch(): void {
    this.scratch.clear();
  }

  dispose(): void {
    this.scratch.clear();
    this.kernels.dispose();
  }

  // ---- dense algebra -----------------------------------------------------------------------------------------------
  matmul(a: F32, b: F32, c: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean): void {
    need('matmul', 'a', a, M * K);
    need('matmul', 'b', b, K * N);
    need('matmul', 'c', c, M * N);
    this.kernels.gemm(transA, transB, M, N, K, this.f32(a), this.f32(b), this.f32(c), accumulate);
  }

  add(a: F32, b: F32, out: F32): void {
    need('add', 'b', b, a.size);
    need('add', 'out', out, a.size);
    this.rk.add(this.f32(a), this.f32(b), this.f32(out), a.size);
  }

  axpy(alpha: number, x: F32, y: F32): void {
    need('axpy', 'y', y, x.size);
    this.rk.axpy(alpha, this.f32(x), this.f32(y), x.size);
  }

  scale(x: F32, alpha: number): void {
    const d = this.f32(x);
    for (let i = 0; i < d.length; i++) d[i] = d[i]! * alpha;
  }

  addBias(y: F32, b: F32): void {
    const yd = this.f32(y);
    const bd = this.f32(b);
    const D = bd.length;
    if (D === 0 || yd.length % D !== 0) throw new RangeError(`addBias: y has ${yd.length} elements, not rows of ${D}`);
    for (let o = 0; o < yd.length; o += D) for (let i = 0; i < D; i++) yd[o + i]! += bd[i]!;
  }

  biasBackward(dy: F32, db: F32): void {
    const g = this.f32(dy);
    const d = this.f32(db);
    const D = d.length;
    if (D === 0 || g.length % D !== 0) throw new RangeError(`biasBackward: dy has ${g.length} elements, not rows of ${D}`);
    for (let o = 0; o < g.length; o += D) for (let i = 0; i < D; i++) d[i]! += g[o + i]!;
  }

  // ---- rows --------------------------------------------------------------------------------------------------------
  gatherRows(src: F32, ids: I32, dst: F32, D: number): void {
    const s = this.f32(src);
    const id = this.i32(ids);
    const d = this.f32(dst);
    need('gatherRows', 'dst', dst, id.length * D);
    const V = s.length / D;
    for (let r = 0; r < id.length; r++) {
      const t = id[r]!;
      if (!(t >= 0 && t < V)) throw new RangeError(`gatherRows: id ${t} at ${r} not in [0, ${V})`);
      d.set(s.subarray(t * D, t * D + D), r * D);
    }
  }

  scatterAddRows(src: F32, ids: I32, dst: F32, D: number): void {
    const s = this.f32(src);
    const id = this.i32(ids);
    const d = this.f32(dst);
    need('scatterAddRows', 'src', src, id.length * D);
    const V = d.length / D;
    for (let r = 0; r < id.length; r++) {
      const t = id[r]!;
      if (!(t >= 0 && t < V)) throw new RangeError(`scatterAddRows: id ${t} at ${r} not in [0, ${V})`);
      const o = t * D;
      const so = r * D;
      for (let i = 0; i < D; i++) d[o + i]! += s[so + i]!;
    }
  }

  rmsnorm(x: F32, w: F32, y: F32, rstd: F32 | null, C: number, eps: number): void {
    const R = x.size / C;
    need('rmsnorm', 'w', w, C);
    need('rmsnorm', 'y', y, x.size);
    if (rstd) need('rmsnorm', 'rstd', rstd, R);
    this.rk.rmsnormForward(this.f32(x), this.f32(w), this.f32(y), rstd ? this.f32(rstd) : null, R, C, eps);
  }

  rmsnormBackward(x: F32, w: F32, rstd: F32, dy: F32, dx: F32, dw: F32 | null, C: number): void {
    const R = x.size / C;
    need('rmsnormBackward', 'dy', dy, x.size);
    need('rmsnormBackward', 'dx', dx, x.size);
    need('rmsnormBackward', 'rstd', rstd, R);
    const g = this.f32(dy);
    // dy becomes the gradient of x, then is added into dx (dy is consumed, as the contract says).
    this.rk.rmsnormBackward(this.f32(x), this.f32(w), this.f32(rstd), g, g, dw ? this.f32(dw) : null, R, C);
    this.rk.add(this.f32(dx), g, this.f32(dx), x.size);
  }

  rope(x: F32, out: F32, positions: I32, cos: F32, sin: F32, heads: number, D: number, inverse: boolean): void {
    const T = positions.size;
    need('rope', 'x', x, T * heads * D);
    need('rope', 'out', out, T * heads * D);
    this.rk.rope(this.f32(x), this.f32(out), T, heads, D, this.i32(positions), this.f32(cos), this.f32(sin), inverse);
  }

  swiglu(gate: F32, up: F32, out: F32): void {
    need('swiglu', 'up', up, gate.size);
    need('swiglu', 'out', out, gate.size);
    this.rk.swigluForward(this.f32(gate), this.f32(up), this.f32(out), gate.size);
  }

  swigluBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32): void {
    for (const [n, t] of [['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const) need('swigluBackward', n, t, gate.size);
    this.rk.swigluBackward(this.f32(gate), this.f32(up), this.f32(dout), this.f32(dgate), this.f32(dup), gate.size);
  }

  // ---- attention ---------------------------------------------------------------------------------------------------
  private attnCheck(op: string, q: F32, k: F32, v: F32, seqStarts: I32, dims: AttentionDims): { N: number; starts: Int32Array; maxL: number } {
    const { heads, kvHeads, headDim } = dims;
    if (!(heads > 0 && kvHeads > 0 && heads % kvHeads === 0)) throw new RangeError(`${op}: ${heads} heads over ${kvHeads} kv heads`);
    const starts = this.i32(seqStarts);
    const N = q.size / (heads * headDim);
    need(op, 'q', q, N * heads * headDim);
    need(op, 'k', k, N * kvHeads * headDim);
    need(op, 'v', v, N * kvHeads * headDim);
    let maxL = 0;
    for (let s = 0; s + 1 < starts.length; s++) {
      const L = starts[s + 1]! - starts[s]!;
      if (!(L >= 0) || starts[s + 1]! > N) throw new RangeError(`${op}: bad sequence starts at ${s}`);
      if (L > maxL) maxL = L;
    }
    return { N, starts, maxL };
  }

  attention(q: F32, k: F32, v: F32, out: F32, lse: F32, seqStarts: I32, dims: AttentionDims, chunk: number): void {
    const { N, starts, maxL } = this.attnCheck('attention', q, k, v, seqStarts, dims);
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    need('attention', 'out', out, N * nh * hd);
    need('attention', 'lse', lse, nh * N);
    const gemm = this.kernels;
    const group = nh / nkv;
    const qd = nh * hd;
    const kd = nkv * hd;
    const scale = 1 / Math.sqrt(hd);
    const CH = Math.max(1, Math.min(chunk, maxL));
    const sc = this.scratch;
    // The query heads of one KV group are stacked: block row hl·c + r is head g·group + hl at query i0 + r, so one
    // GEMM forms the scores of all of them.
    const Kh = sc.get('att.k', maxL * hd);
    const Vh = sc.get('att.v', maxL * hd);
    const Qc = sc.get('att.q', group * CH * hd);
    const Sc = sc.get('att.s', group * CH * maxL);
    const Oc = sc.get('att.o', group * CH * hd);
    const qa = this.f32(q);
    const ka = this.f32(k);
    const va = this.f32(v);
    const ctx = this.f32(out);
    const lseOut = this.f32(lse);
    for (let s = 0; s + 1 < starts.length; s++) {
      const off = starts[s]!;
      const L = starts[s + 1]! - off;
      for (let g = 0; g < nkv; g++) {
        for (let i = 0; i < L; i++) {
          const src = (off + i) * kd + g * hd;
          Kh.set(ka.subarray(src, src + hd), i * hd);
          Vh.set(va.subarray(src, src + hd), i * hd);
        }
        for (let i0 = 0; i0 < L; i0 += CH) {
          const c = Math.min(CH, L - i0);
          const nk = i0 + c;
          const rows = group * c;
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (off + i0 + r) * qd + h * hd;
              Qc.set(qa.subarray(src, src + hd), (hl * c + r) * hd);
            }
          }
          const S = Sc.subarray(0, rows * nk);
          gemm.gemm(false, true, rows, nk, hd, Qc.subarray(0, rows * hd), Kh.subarray(0, nk * hd), S, false);
          for (let hl = 0; hl < group; hl++) {
            const lseBase = (g * group + hl) * N + off + i0;
            for (let r = 0; r < c; r++) {
              const o = (hl * c + r) * nk;
              const end = o + i0 + r + 1; // keys j <= i
              let m = -Infinity;
              for (let j = o; j < end; j++) {
                const z = S[j]!;
                if (z > m) m = z;
              }
              m *= scale;
              let se = 0;
              for (let j = o; j < end; j++) {
                const e = Math.exp(S[j]! * scale - m);
                S[j] = e;
                se += e;
              }
              lseOut[lseBase + r] = m + Math.log(se);
              const inv = 1 / se;
              for (let j = o; j < end; j++) S[j] = S[j]! * inv;
              S.fill(0, end, o + nk);
            }
          }
          gemm.gemm(false, false, rows, hd, nk, S, Vh.subarray(0, nk * hd), Oc.subarray(0, rows * hd), false);
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (hl * c + r) * hd;
              ctx.set(Oc.subarray(src, src + hd), (off + i0 + r) * qd + h * hd);
            }
          }
        }
      }
    }
  }

  attentionBackward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    dout: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    seqStarts: I32,
    dims: AttentionDims,
    chunk: number,
  ): void {
    const { N, starts, maxL } = this.attnCheck('attentionBackward', q, k, v, seqStarts, dims);
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    need('attentionBackward', 'out', out, q.size);
    need('attentionBackward', 'dout', dout, q.size);
    need('attentionBackward', 'dq', dq, q.size);
    need('attentionBackward', 'dk', dk, k.size);
    need('attentionBackward', 'dv', dv, v.size);
    need('attentionBackward', 'lse', lse, nh * N);
    const gemm = this.kernels;
    const group = nh / nkv;
    const qd = nh * hd;
    const kd = nkv * hd;
    const scale = 1 / Math.sqrt(hd);
    const CH = Math.max(1, Math.min(chunk, maxL));
    const sc = this.scratch;
    const Kh = sc.get('att.k', maxL * hd);
    const Vh = sc.get('att.v', maxL * hd);
    const dKh = sc.get('att.dk', maxL * hd);
    const dVh = sc.get('att.dv', maxL * hd);
    const Qc = sc.get('att.q', group * CH * hd);
    const dOc = sc.get('att.do', group * CH * hd);
    const dQc = sc.get('att.o', group * CH * hd);
    const Pc = sc.get('att.s', group * CH * maxL);
    const dPc = sc.get('att.ds', group * CH * maxL);
    const Dr = new Float64Array(group * CH);
    const qa = this.f32(q);
    const ka = this.f32(k);
    const va = this.f32(v);
    const ctx = this.f32(out);
    const dctx = this.f32(dout);
    const lsa = this.f32(lse);
    const dqa = this.f32(dq);
    const dka = this.f32(dk);
    const dva = this.f32(dv);
    for (let s = 0; s + 1 < starts.length; s++) {
      const off = starts[s]!;
      const L = starts[s + 1]! - off;
      for (let g = 0; g < nkv; g++) {
        for (let i = 0; i < L; i++) {
          const src = (off + i) * kd + g * hd;
          Kh.set(ka.subarray(src, src + hd), i * hd);
          Vh.set(va.subarray(src, src + hd), i * hd);
        }
        dKh.fill(0, 0, L * hd);
        dVh.fill(0, 0, L * hd);
        for (let i0 = 0; i0 < L; i0 += CH) {
          const c = Math.min(CH, L - i0);
          const nk = i0 + c;
          const rows = group * c;
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (off + i0 + r) * qd + h * hd;
              const dst = (hl * c + r) * hd;
              Qc.set(qa.subarray(src, src + hd), dst);
              dOc.set(dctx.subarray(src, src + hd), dst);
              let d = 0;
              for (let e = 0; e < hd; e++) d += dctx[src + e]! * ctx[src + e]!;
              Dr[hl * c + r] = d;
            }
          }
          const P = Pc.subarray(0, rows * nk);
          const dP = dPc.subarray(0, rows * nk);
          const Qb = Qc.subarray(0, rows * hd);
          const dOb = dOc.subarray(0, rows * hd);
          gemm.gemm(false, true, rows, nk, hd, Qb, Kh.subarray(0, nk * hd), P, false);
          gemm.gemm(false, true, rows, nk, hd, dOb, Vh.subarray(0, nk * hd), dP, false);
          for (let hl = 0; hl < group; hl++) {
            const lseBase = (g * group + hl) * N + off + i0;
            for (let r = 0; r < c; r++) {
              const o = (hl * c + r) * nk;
              const end = o + i0 + r + 1;
              const l = lsa[lseBase + r]!;
              const D = Dr[hl * c + r]!;
              for (let j = o; j < end; j++) {
                const p = Math.exp(P[j]! * scale - l);
                P[j] = p;
                dP[j] = p * (dP[j]! - D) * scale;
              }
              P.fill(0, end, o + nk);
              dP.fill(0, end, o + nk);
            }
          }
          gemm.gemm(false, false, rows, hd, nk, dP, Kh.subarray(0, nk * hd), dQc.subarray(0, rows * hd), false);
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (hl * c + r) * hd;
              dqa.set(dQc.subarray(src, src + hd), (off + i0 + r) * qd + h * hd);
            }
          }
          gemm.gemm(true, false, nk, hd, rows, dP, Qb, dKh.subarray(0, nk * hd), true);
          gemm.gemm(true, false, nk, hd, rows, P, dOb, dVh.subarray(0, nk * hd), true);
        }
        for (let i = 0; i < L; i++) {
          const dst = (off + i) * kd + g * hd;
          dka.set(dKh.subarray(i * hd, i * hd + hd), dst);
          dva.set(dVh.subarray(i * hd, i * hd + hd), dst);
        }
      }
    }
  }

  kvAppend(k: F32, v: F32, segs: readonly CacheSegment[], dims: AttentionDims): void {
    const { kvHeads: nkv, headDim: hd } = dims;
    const kd = nkv * hd;
    need('kvAppend', 'v', v, k.size);
    const ks = this.f32(k);
    const vs = this.f32(v);
    const N = ks.length / kd;
    for (const sg of segs) {
      const { r0, n, pos0 } = sg;
      const maxLen = sg.kc.size / kd;
      need('kvAppend', 'vc', sg.vc, sg.kc.size);
      if (!(Number.isInteger(maxLen) && r0 >= 0 && r0 + n <= N && pos0 >= 0 && pos0 + n <= maxLen))
        throw new RangeError(`kvAppend: rows [${r0}, ${r0 + n}) at positions ${pos0}… do not fit (N ${N}, cache ${maxLen})`);
      const kc = this.f32(sg.kc);
      const vc = this.f32(sg.vc);
      for (let r = 0; r < n; r++) {
        for (let g = 0; g < nkv; g++) {
          const src = (r0 + r) * kd + g * hd;
          const dst = (g * maxLen + pos0 + r) * hd;
          kc.set(ks.subarray(src, src + hd), dst);
          vc.set(vs.subarray(src, src + hd), dst);
        }
      }
    }
  }

  cacheAttention(q: F32, out: F32, segs: readonly CacheSegment[], dims: AttentionDims, chunk: number): void {
    const qd = dims.heads * dims.headDim;
    need('cacheAttention', 'out', out, q.size);
    const qa = this.f32(q);
    const ctx = this.f32(out);
    const N = qa.length / qd;
    for (const sg of segs) {
      if (!(sg.r0 >= 0 && sg.n >= 0 && sg.r0 + sg.n <= N)) throw new RangeError(`cacheAttention: rows [${sg.r0}, ${sg.r0 + sg.n}) outside ${N}`);
      need('cacheAttention', 'vc', sg.vc, sg.kc.size);
      this.segmentAttention(qa.subarray(sg.r0 * qd, (sg.r0 + sg.n) * qd), ctx.subarray(sg.r0 * qd, (sg.r0 + sg.n) * qd), sg, dims, chunk);
    }
  }

  /** Causal attention of one segment's queries (q, ctx: its rows) over its cache. */
  private segmentAttention(qa: Float32Array, ctx: Float32Array, sg: CacheSegment, dims: AttentionDims, chunk: number): void {
    const { heads: nh, kvHeads: nkv, headDim: hd } = dims;
    const group = nh / nkv;
    const qd = nh * hd;
    const gw = group * hd;
    const len = sg.n;
    const pos0 = sg.pos0;
    const maxLen = sg.kc.size / (nkv * hd);
    if (!(Number.isInteger(maxLen) && pos0 >= 0 && pos0 + len <= maxLen))
      throw new RangeError(`cacheAttention: ${len} queries at ${pos0} outside a cache of ${maxLen}`);
    const gemm = this.kernels;
    const rk = this.rk;
    const K = this.f32(sg.kc);
    const Va = this.f32(sg.vc);
    const blockLen = maxLen * hd;
    if (len === 1) {
      // A decode step: scores of the group's heads straight from q, softmax, values straight into out.
      const nk = pos0 + 1;
      const Sc = this.scratch.get('att.s', group * nk);
      for (let g = 0; g < nkv; g++) {
        const base = g * blockLen;
        const off = g * gw;
        gemm.gemm(false, true, group, nk, hd, qa.subarray(off, off + gw), K.subarray(base, base + nk * hd), Sc, false);
        rk.softmaxRows(Sc, Sc, group, nk);
        gemm.gemm(false, false, group, hd, nk, Sc, Va.subarray(base, base + nk * hd), ctx.subarray(off, off + gw), false);
      }
      return;
    }
    const CH = Math.max(1, Math.min(chunk, len)); // query positions per block
    const maxKeys = pos0 + len;
    const Qg = this.scratch.get('att.q', CH * gw);
    const Sc = this.scratch.get('att.s', CH * group * maxKeys);
    const Og = this.scratch.get('att.o', CH * gw);
    for (let g = 0; g < nkv; g++) {
      const base = g * blockLen;
      const Kc = K.subarray(base, base + maxKeys * hd);
      const Vc = Va.subarray(base, base + maxKeys * hd);
      for (let i0 = 0; i0 < len; i0 += CH) {
        const c = Math.min(CH, len - i0);
        const nk = pos0 + i0 + c; // keys visible to the last query of the block
        const rows = c * group;
        for (let i = 0; i < c; i++) {
          const src = (i0 + i) * qd + g * gw;
          Qg.set(qa.subarray(src, src + gw), i * gw);
        }
        const S = Sc.subarray(0, rows * nk);
        gemm.gemm(false, true, rows, nk, hd, Qg.subarray(0, rows * hd), Kc.subarray(0, nk * hd), S, false);
        // Causal mask: query i (position pos0 + i0 + i) sees keys 0 … pos0 + i0 + i.
        for (let i = 0; i < c - 1; i++) {
          const from = pos0 + i0 + i + 1;
          for (let a = 0; a < group; a++) {
            const o = (i * group + a) * nk;
            S.fill(-Infinity, o + from, o + nk);
          }
        }
        rk.softmaxRows(S, S, rows, nk);
        gemm.gemm(false, false, rows, hd, nk, S, Vc.subarray(0, nk * hd), Og.subarray(0, rows * hd), false);
        for (let i = 0; i < c; i++) ctx.set(Og.subarray(i * gw, (i + 1) * gw), (i0 + i) * qd + g * gw);
      }
    }
  }

  // ---- heads -------------------------------------------------------------------------------------------------------
  tokenLogprobs(h: F32, w: F32, labels: I32, logp: F32, lse: F32, entropy: F32 | null, V: number, chunkRows: number): void {
    const lab = this.i32(labels);
    const R = lab.length;
    const H = w.size / V;
    need('tokenLogprobs', 'h', h, R * H);
    need('tokenLogprobs', 'logp', logp, R);
    need('tokenLogprobs', 'lse', lse, R);
    if (entropy) need('tokenLogprobs', 'entropy', entropy, R);
    if (R === 0) return;
    const ha = this.f32(h);
    const W = this.f32(w);
    const lp = this.f32(logp);
    const ls = this.f32(lse);
    const ent = entropy ? this.f32(entropy) : null;
    const C = Math.max(1, Math.min(chunkRows, R));
    const logits = this.scratch.get('head.logits', C * V);
    for (let c0 = 0; c0 < R; c0 += C) {
      const c = Math.min(C, R - c0);
      this.kernels.gemm(false, true, c, V, H, ha.subarray(c0 * H, (c0 + c) * H), W, logits, false);
      for (let r = 0; r < c; r++) {
        const o = r * V;
        const y = lab[c0 + r]!;
        if (!(y >= 0 && y < V)) throw new RangeError(`tokenLogprobs: label ${y} at ${c0 + r} not in [0, ${V})`);
        let m = -Infinity;
        for (let j = 0; j < V; j++) if (logits[o + j]! > m) m = logits[o + j]!;
        let se = 0;
        let sz = 0;
        for (let j = 0; j < V; j++) {
          const z = logits[o + j]!;
          const e = Math.exp(z - m);
          se += e;
          sz += e * z;
        }
        const l = m + Math.log(se);
        ls[c0 + r] = l;
        lp[c0 + r] = logits[o + y]! - l;
        if (ent) ent[c0 + r] = l - sz / se;
      }
    }
  }

  tokenLogprobsBackward(h: F32, w: F32, labels: I32, lse: F32, g: F32, dh: F32, dw: F32, V: number, chunkRows: number): void {
    const lab = this.i32(labels);
    const R = lab.length;
    const H = w.size / V;
    need('tokenLogprobsBackward', 'h', h, R * H);
    need('tokenLogprobsBackward', 'lse', lse, R);
    need('tokenLogprobsBackward', 'g', g, R);
    need('tokenLogprobsBackward', 'dh', dh, R * H);
    need('tokenLogprobsBackward', 'dw', dw, V * H);
    const ha = this.f32(h);
    const W = this.f32(w);
    const dW = this.f32(dw);
    const ls = this.f32(lse);
    const ga = this.f32(g);
    const dha = this.f32(dh);
    dha.fill(0);
    // Only rows with a non-zero upstream gradient, gathered into chunks.
    const sel: number[] = [];
    for (let r = 0; r < R; r++) if (ga[r] !== 0) sel.push(r);
    if (sel.length === 0) return;
    const C = Math.max(1, Math.min(chunkRows, sel.length));
    const hc = this.scratch.get('head.h', C * H);
    const dz = this.scratch.get('head.logits', C * V);
    const dhc = this.scratch.get('head.dh', C * H);
    for (let c0 = 0; c0 < sel.length; c0 += C) {
      const c = Math.min(C, sel.length - c0);
      for (let r = 0; r < c; r++) {
        const row = sel[c0 + r]!;
        hc.set(ha.subarray(row * H, row * H + H), r * H);
      }
      this.kernels.gemm(false, true, c, V, H, hc.subarray(0, c * H), W, dz.subarray(0, c * V), false);
      for (let r = 0; r < c; r++) {
        const row = sel[c0 + r]!;
        const l = ls[row]!;
        const gr = ga[row]!;
        const o = r * V;
        // d logp / d z = onehot(label) − softmax(z)
        for (let v = 0; v < V; v++) dz[o + v] = -gr * Math.exp(dz[o + v]! - l);
        dz[o + lab[row]!]! += gr;
      }
      this.kernels.gemm(true, false, V, H, c, dz.subarray(0, c * V), hc.subarray(0, c * H), dW, true);
      this.kernels.gemm(false, false, c, H, V, dz.subarray(0, c * V), W, dhc.subarray(0, c * H), false);
      for (let r = 0; r < c; r++) {
        const row = sel[c0 + r]!;
        dha.set(dhc.subarray(r * H, r * H + H), row * H);
      }
    }
  }

  // ---- sampling ----------------------------------------------------------------------------------------------------
  private sampler: TokenSampler | null = null;

  sampleTokens(logits: F32, V: number, settings: readonly SamplerSettings[], uniforms: ArrayLike<number>, ids: I32, logprobs: F32 | null): void {
    const M = settings.length;
    need('sampleTokens', 'logits', logits, M * V);
    need('sampleTokens', 'ids', ids, M);
    if (logprobs) need('sampleTokens', 'logprobs', logprobs, M);
    if (uniforms.length !== M) throw new RangeError(`sampleTokens: ${uniforms.length} uniforms for ${M} rows`);
    const z = this.f32(logits);
    const out = this.i32(ids);
    const lp = logprobs ? this.f32(logprobs) : null;
    const sampler = (this.sampler ??= new TokenSampler(V));
    for (let r = 0; r < M; r++) {
      const row = z.subarray(r * V, (r + 1) * V);
      if (lp) {
        const { token, logprob } = sampler.sampleWith(row, settings[r]!, uniforms[r]!);
        out[r] = token;
        lp[r] = logprob;
      } else out[r] = sampler.pick(row, settings[r]!, uniforms[r]!);
    }
  }

  // ---- optimizer ---------------------------------------------------------------------------------------------------
  sumSquares(xs: readonly F32[], out: F32): void {
    need('sumSquares', 'out', out, 1);
    let s = 0;
    for (const x of xs) {
      const d = this.f32(x);
      for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
    }
    this.f32(out)[0] = s;
  }

  adamw(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper): void {
    for (const [n, t] of [['g', g], ['m', m], ['v', v]] as const) need('adamw', n, t, p.size);
    const pa = this.f32(p);
    const ga = this.f32(g);
    const ma = this.f32(m);
    const va = this.f32(v);
    const { beta1: b1, beta2: b2, eps, decay, stepSize, bc2sqrt } = h;
    for (let i = 0; i < pa.length; i++) {
      const gi = ga[i]!;
      const mi = b1 * ma[i]! + (1 - b1) * gi;
      const vi = b2 * va[i]! + (1 - b2) * gi * gi;
      ma[i] = mi;
      va[i] = vi;
      pa[i] = pa[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2sqrt + eps);
    }
  }

  adamwPreview(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper, out: F32): void {
    for (const [n, t] of [['g', g], ['m', m], ['v', v]] as const) need('adamwPreview', n, t, p.size);
    need('adamwPreview', 'out', out, 2);
    const pa = this.f32(p);
    const ga = this.f32(g);
    const ma = this.f32(m);
    const va = this.f32(v);
    const { beta1: b1, beta2: b2, eps, decay, stepSize, bc2sqrt } = h;
    let du2 = 0;
    let p2 = 0;
    for (let i = 0; i < pa.length; i++) {
      const gi = ga[i]!;
      const mi = b1 * ma[i]! + (1 - b1) * gi;
      const vi = b2 * va[i]! + (1 - b2) * gi * gi;
      const old = pa[i]!;
      // The value adamw would store (rounded to f32 as the store rounds it).
      const next = Math.fround(old * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2sqrt + eps));
      du2 += (next - old) * (next - old);
      p2 += old * old;
    }
    const o = this.f32(out);
    o[0] = o[0]! + du2;
    o[1] = o[1]! + p2;
  }
}

/**
 * The elements of `t` in place, synchronously: only a CPU backend can give them (they are its memory). Code that
 * must also run on a device backend reads with `await backend.read(t)` instead.
 */
export function hostView(backend: Backend, t: F32): Float32Array;
export function hostView(backend: Backend, t: I32): Int32Array;
export function hostView(backend: Backend, t: F32 | I32): Float32Array | Int32Array {
  if (!(backend instanceof CpuBackend)) {
    throw new Error(`the ${backend.name} backend keeps tensors on its device: read them with await backend.read()`);
  }
  return t.dtype === 'i32' ? backend.i32(t as I32) : backend.f32(t as F32);
}
