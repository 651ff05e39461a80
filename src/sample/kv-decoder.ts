// Incremental inference over a Qwen2Model's weights with a per-sequence KV cache: batched prefill of prompts of
// different lengths, then step-wise decode of whichever sequences are still active.
//
// The decoder only reads `model.params` (the HF-named fp32 tensors) and `model.config`; it never writes them and never
// touches the model's gradients or activation workspace, so training and sampling can share one model object (the
// sampler always sees the current weights).
//
// One call of `forward` processes a list of *segments*: each segment appends some tokens to one sequence's cache
// (a whole prompt, a chunk of a long prompt, or the single token of a decode step). All rows of all segments are
// stacked into one [N, hidden] matrix, so every projection is a single `backend.gemm` over the N active rows; only
// attention is per segment (queries of a segment attend to its own cache). Finished sequences are simply not passed
// in again, so the batch compacts itself and they stop costing compute.
//
// KV cache layout, per sequence, preallocated for `maxLen` positions: k and v are [layers][kvHeads][maxLen][headDim]
// (post-RoPE keys), so the keys of one (layer, kv head) are one contiguous [maxLen, headDim] block that the attention
// GEMMs read in place.
//
// Numerics follow src/model/qwen2.ts: RoPE tables with float32 inverse frequencies and angles, RMSNorm, SwiGLU and RoPE
// on the backend's row kernels when it has them. Attention folds the 1/√headDim scale into the queries (exact for
// power-of-four head dims such as 64) and runs the softmax on the backend's row kernel (causal positions masked with
// −∞), so a decode step makes one score GEMM, one softmax call and one value GEMM per (sequence, KV head), all in
// place in backend memory.
//
// Per-step costs are kept off the hot path: workspaces, positions and the per-layer weight lookups are reused between
// calls (the weights are looked up again only when `model.params` hands out a different array, e.g. after a reload).
import type { Backend } from '../engine/backend.js';
import { ropeTables, rowKernelsOf, type RowKernels } from '../engine/kernels.js';
import { addBias, headDimOf, layerParamsOf, type LayerParams, type Qwen2Config, type Qwen2Model } from '../model/qwen2.js';

/** The cache of one sequence: post-RoPE keys and values for positions [0, length). */
export interface KvCache {
  /** Capacity in positions. */
  readonly maxLen: number;
  /** Positions filled so far (= the position of the next token). */
  length: number;
  /** [layers][kvHeads][maxLen][headDim]. */
  readonly k: Float32Array;
  /** [layers][kvHeads][maxLen][headDim]. */
  readonly v: Float32Array;
}

/** Tokens to append to one sequence's cache. */
export interface Segment {
  cache: KvCache;
  tokens: ArrayLike<number>;
}

export interface KvDecoderOptions {
  /** Most rows (tokens) one prefill forward processes; longer prompt batches are split, long prompts chunked (default 512). */
  maxPrefillRows?: number;
  /** Query rows per attention score block in prefill (default 64). */
  attnChunk?: number;
}

/** Reusable buffers by name, allocated through the backend and grown geometrically. */
class Buffers {
  private readonly bufs = new Map<string, Float32Array>();
  constructor(private readonly backend: Backend) {}
  get(key: string, len: number): Float32Array {
    let b = this.bufs.get(key);
    if (b === undefined || b.length < len) {
      const cap = b === undefined ? len : Math.max(len, Math.ceil(b.length * 1.5));
      if (b !== undefined) freeOn(this.backend, b);
      b = this.backend.alloc(Math.max(cap, 1));
      this.bufs.set(key, b);
    }
    return b.subarray(0, len);
  }
  clear(): void {
    for (const b of this.bufs.values()) freeOn(this.backend, b);
    this.bufs.clear();
  }
}

/** Gives an array back to a backend that can free (the wasm arena); a no-op for the others. */
function freeOn(backend: Backend, a: Float32Array): void {
  const f = (backend as Backend & { free?: unknown }).free;
  if (typeof f === 'function') (f as (a: Float32Array) => void).call(backend, a);
}

export class KvDecoder {
  readonly model: Qwen2Model;
  readonly config: Qwen2Config;
  readonly backend: Backend;
  private readonly hd: number;
  private readonly rk: RowKernels;
  private readonly buf: Buffers;
  private readonly maxPrefillRows: number;
  private readonly attnChunk: number;
  /** Per-layer weights, checked against `model.params` on every forward (cheap: one Map lookup per tensor). */
  private layerCache: LayerParams[] = [];
  private startBuf = new Int32Array(0);
  private posBuf = new Int32Array(0);
  private rope: { maxPos: number; cos: Float32Array; sin: Float32Array } = {
    maxPos: 0,
    cos: new Float32Array(0),
    sin: new Float32Array(0),
  };

  constructor(model: Qwen2Model, opts: KvDecoderOptions = {}) {
    if (model.config.head !== 'lm') throw new Error('KvDecoder: the model has no LM head (score-head models cannot generate)');
    this.model = model;
    this.config = model.config;
    this.backend = model.backend;
    this.hd = headDimOf(model.config);
    this.rk = rowKernelsOf(model.backend);
    this.buf = new Buffers(model.backend);
    this.maxPrefillRows = Math.max(1, Math.floor(opts.maxPrefillRows ?? 512));
    this.attnChunk = Math.max(1, Math.floor(opts.attnChunk ?? 64));
  }

  /** Floats of one K (or V) cache of `maxLen` positions. */
  cacheFloats(maxLen: number): number {
    return this.config.numHiddenLayers * this.config.numKeyValueHeads * maxLen * this.hd;
  }

  /** A fresh empty cache for up to `maxLen` positions (allocated through the backend). */
  newCache(maxLen: number): KvCache {
    if (!Number.isInteger(maxLen) || maxLen < 1) throw new Error(`newCache: maxLen ${maxLen} is not a positive integer`);
    const n = this.cacheFloats(maxLen);
    let k: Float32Array | null = null;
    try {
      k = this.backend.alloc(n);
      return { maxLen, length: 0, k, v: this.backend.alloc(n) };
    } catch (e) {
      if (k !== null) freeOn(this.backend, k);
      // Out of backend memory (wasm) or past the typed-array limit: say what was asked for and what to lower.
      const gib = (2 * n * 4) / 2 ** 30;
      throw new Error(
        `KV cache for ${maxLen} positions (${gib.toFixed(2)} GiB) could not be allocated on the ${this.backend.name} backend ` +
          `(${(e as Error).message}); lower the max new tokens or the batch size`,
      );
    }
  }

  /** Gives a cache's memory back to the backend (the cache must not be used after). */
  freeCache(c: KvCache): void {
    freeOn(this.backend, c.v);
    freeOn(this.backend, c.k);
  }

  /** Copies the filled positions of `src` into `dst` (e.g. one prefilled prompt shared by n samples). */
  copyCache(src: KvCache, dst: KvCache): void {
    if (dst.maxLen < src.length) throw new Error(`copyCache: ${src.length} positions do not fit in ${dst.maxLen}`);
    const L = this.config.numHiddenLayers * this.config.numKeyValueHeads;
    const hd = this.hd;
    const n = src.length * hd;
    for (let b = 0; b < L; b++) {
      const so = b * src.maxLen * hd;
      const d = b * dst.maxLen * hd;
      dst.k.set(src.k.subarray(so, so + n), d);
      dst.v.set(src.v.subarray(so, so + n), d);
    }
    dst.length = src.length;
  }

  /** Gives the workspace and RoPE tables back to the backend (rebuilt on the next call). */
  releaseBuffers(): void {
    this.buf.clear();
    if (this.rope.maxPos > 0) {
      freeOn(this.backend, this.rope.sin);
      freeOn(this.backend, this.rope.cos);
      this.rope = { maxPos: 0, cos: new Float32Array(0), sin: new Float32Array(0) };
    }
  }

  /**
   * Runs each prompt into its (empty or partly filled) cache, in forwards of at most `maxPrefillRows` rows (a long
   * prompt is chunked), and returns the next-token logits after each prompt: a new [prompts, vocab] array.
   */
  prefill(prompts: ReadonlyArray<ArrayLike<number>>, caches: readonly KvCache[]): Float32Array {
    if (prompts.length !== caches.length) throw new Error(`prefill: ${prompts.length} prompts but ${caches.length} caches`);
    const V = this.config.vocabSize;
    const out = new Float32Array(prompts.length * V);
    const R = this.maxPrefillRows;
    let segs: Segment[] = [];
    let owners: Array<number | -1> = []; // prompt index whose last chunk a segment is, else −1
    let rows = 0;
    const flush = (): void => {
      if (segs.length === 0) return;
      const logits = this.forward(segs, owners.map((o) => o >= 0));
      let j = 0;
      for (let s = 0; s < segs.length; s++) {
        const o = owners[s]!;
        if (o < 0) continue;
        out.set(logits.subarray(j * V, (j + 1) * V), o * V);
        j++;
      }
      segs = [];
      owners = [];
      rows = 0;
    };
    for (let p = 0; p < prompts.length; p++) {
      const ids = prompts[p]!;
      if (ids.length === 0) throw new Error(`prefill: prompt ${p} is empty (at least one token is needed)`);
      let t0 = 0;
      while (t0 < ids.length) {
        if (rows >= R) flush();
        const take = Math.min(ids.length - t0, R - rows);
        const part = Array.prototype.slice.call(ids, t0, t0 + take) as number[];
        t0 += take;
        segs.push({ cache: caches[p]!, tokens: part });
        owners.push(t0 === ids.length ? p : -1);
        rows += take;
        // The next chunk of the same prompt must see this one in the cache: run it first.
        if (t0 < ids.length) flush();
      }
    }
    flush();
    return out;
  }

  /**
   * One decode step: appends `tokens[i]` to `caches[i]` and returns the next-token logits [caches, vocab] (a view of
   * the workspace, valid until the next call).
   */
  decode(caches: readonly KvCache[], tokens: ArrayLike<number>): Float32Array {
    if (caches.length !== tokens.length) throw new Error(`decode: ${caches.length} caches but ${tokens.length} tokens`);
    const segs: Segment[] = [];
    for (let i = 0; i < caches.length; i++) segs.push({ cache: caches[i]!, tokens: [tokens[i]!] });
    return this.forward(segs, null);
  }

  private ensureRope(maxPos: number): void {
    if (this.rope.maxPos >= maxPos) return;
    const n = Math.max(maxPos, this.rope.maxPos * 2, 64);
    const hd = this.hd;
    const half = hd / 2;
    // The model's own tables (HF's float32 construction), copied into backend memory.
    const t = ropeTables(n, hd, this.config.ropeTheta);
    const cos = this.backend.alloc(n * half);
    const sin = this.backend.alloc(n * half);
    cos.set(t.cos);
    sin.set(t.sin);
    if (this.rope.maxPos > 0) {
      freeOn(this.backend, this.rope.sin);
      freeOn(this.backend, this.rope.cos);
    }
    this.rope = { maxPos: n, cos, sin };
  }

  /** Layer i's weights; re-read when the model hands out different arrays (e.g. after a weight reload). */
  private layer(i: number): LayerParams {
    const cached = this.layerCache[i];
    const fresh = layerParamsOf(this.model.params, i);
    if (cached !== undefined) {
      let same = true;
      for (const k of Object.keys(fresh) as (keyof LayerParams)[]) if (fresh[k] !== cached[k]) same = false;
      if (same) return cached;
    }
    this.layerCache[i] = fresh;
    return fresh;
  }

  /** Reusable row starts (`n` ≥ segments + 1) and positions (`n` ≥ rows) of one forward. */
  private starts(n: number): Int32Array {
    if (this.startBuf.length < n) this.startBuf = new Int32Array(Math.max(n, 2 * this.startBuf.length, 64));
    return this.startBuf;
  }
  private positions(n: number): Int32Array {
    if (this.posBuf.length < n) this.posBuf = new Int32Array(Math.max(n, 2 * this.posBuf.length, 64));
    return this.posBuf.subarray(0, n);
  }

  /**
   * Appends every segment's tokens to its cache and returns logits for the last token of each segment whose `want`
   * entry is true (all of them when `want` is null), in segment order: [count, vocab], a workspace view valid until
   * the next call. Segments must belong to distinct caches.
   */
  forward(segs: readonly Segment[], want: readonly boolean[] | null): Float32Array {
    const cfg = this.config;
    const be = this.backend;
    const rk = this.rk;
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const V = cfg.vocabSize;
    const nh = cfg.numAttentionHeads;
    const nkv = cfg.numKeyValueHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = nkv * hd;
    const scale = 1 / Math.sqrt(hd);
    const S = segs.length;
    if (want !== null && want.length !== S) throw new Error(`forward: ${S} segments but ${want.length} want flags`);

    // Rows, positions, token ids.
    const start = this.starts(S + 1);
    let maxPos = 0;
    const seen = new Set<KvCache>();
    for (let s = 0; s < S; s++) {
      const { cache, tokens } = segs[s]!;
      if (seen.has(cache)) throw new Error(`forward: two segments write the same cache (segment ${s})`);
      seen.add(cache);
      if (tokens.length === 0) throw new Error(`forward: segment ${s} has no tokens`);
      const end = cache.length + tokens.length;
      if (end > cache.maxLen) throw new Error(`forward: segment ${s} needs ${end} positions, its cache holds ${cache.maxLen}`);
      if (end > maxPos) maxPos = end;
      start[s + 1] = start[s]! + tokens.length;
    }
    const N = start[S]!;
    if (N === 0) return new Float32Array(0);
    this.ensureRope(maxPos);
    const { cos, sin } = this.rope;
    const buf = this.buf;
    const pos = this.positions(N);
    const x = buf.get('x', N * H);
    const E = this.model.params.get('model.embed_tokens.weight')!;
    for (let s = 0; s < S; s++) {
      const { cache, tokens } = segs[s]!;
      for (let i = 0; i < tokens.length; i++) {
        const r = start[s]! + i;
        const id = tokens[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} not in [0, ${V})`);
        pos[r] = cache.length + i;
        x.set(E.subarray(id * H, id * H + H), r * H);
      }
    }

    const h = buf.get('h', N * H);
    const q = buf.get('q', N * qd);
    const k = buf.get('k', N * kd);
    const v = buf.get('v', N * kd);
    const ctx = buf.get('ctx', N * qd);
    const gate = buf.get('gate', N * I);
    const up = buf.get('up', N * I);
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const P = this.layer(l);
      rk.rmsnormForward(x, P.ln1, h, null, N, H, cfg.rmsNormEps);
      be.gemm(false, true, N, qd, H, h, P.wq, q, false);
      be.gemm(false, true, N, kd, H, h, P.wk, k, false);
      be.gemm(false, true, N, kd, H, h, P.wv, v, false);
      if (P.bq) addBias(q, P.bq, N, qd);
      if (P.bk) addBias(k, P.bk, N, kd);
      if (P.bv) addBias(v, P.bv, N, kd);
      rk.rope(q, q, N, nh, hd, pos, cos, sin, false);
      rk.rope(k, k, N, nkv, hd, pos, cos, sin, false);
      // Fold the softmax scale into the queries (exact when it is a power of two, e.g. head dim 64).
      const nq = N * qd;
      for (let i = 0; i < nq; i++) q[i] = q[i]! * scale;
      // Store the new keys and values.
      for (let s = 0; s < S; s++) {
        const c = segs[s]!.cache;
        for (let r = start[s]!; r < start[s + 1]!; r++) {
          const p = pos[r]!;
          for (let g = 0; g < nkv; g++) {
            const dst = ((l * nkv + g) * c.maxLen + p) * hd;
            const src = r * kd + g * hd;
            c.k.set(k.subarray(src, src + hd), dst);
            c.v.set(v.subarray(src, src + hd), dst);
          }
        }
      }
      for (let s = 0; s < S; s++) this.attention(l, segs[s]!.cache, start[s]!, start[s + 1]! - start[s]!, pos[start[s]!]!, q, ctx);
      be.gemm(false, true, N, H, qd, ctx, P.wo, x, true);
      rk.rmsnormForward(x, P.ln2, h, null, N, H, cfg.rmsNormEps);
      be.gemm(false, true, N, I, H, h, P.wg, gate, false);
      be.gemm(false, true, N, I, H, h, P.wu, up, false);
      rk.swigluForward(gate, up, gate, N * I);
      be.gemm(false, true, N, H, I, gate, P.wd, x, true);
    }
    for (let s = 0; s < S; s++) segs[s]!.cache.length += start[s + 1]! - start[s]!;

    // Final norm and LM head, only for the rows whose logits are wanted.
    let M = 0;
    for (let s = 0; s < S; s++) if (want === null || want[s]) M++;
    const logits = buf.get('logits', M * V);
    if (M === 0) return logits;
    const hsel = buf.get('hsel', M * H);
    const normW = this.model.params.get('model.norm.weight')!;
    if (M === N) {
      // Every row is wanted (a decode step): normalise straight out of x.
      rk.rmsnormForward(x, normW, hsel, null, M, H, cfg.rmsNormEps);
    } else {
      let j = 0;
      for (let s = 0; s < S; s++) {
        if (want !== null && !want[s]) continue;
        const r = start[s + 1]! - 1;
        hsel.set(x.subarray(r * H, r * H + H), j * H);
        j++;
      }
      rk.rmsnormForward(hsel, normW, hsel, null, M, H, cfg.rmsNormEps);
    }
    const W = cfg.tieWordEmbeddings ? E : this.model.params.get('lm_head.weight')!;
    be.gemm(false, true, M, V, H, hsel, W, logits, false);
    return logits;
  }

  /**
   * Causal attention of the `len` query rows [r0, r0 + len) of one segment, at positions p0 …, over the keys of
   * `cache` at layer l (positions 0 … p0 + len − 1, already written). `q` is already scaled by 1/√headDim. Per kv
   * head, the queries of its `group` heads are stacked as rows (i, head) so one GEMM forms their scores; a single
   * query (a decode step) is read from `q` and written to `ctx` in place, without copies.
   */
  private attention(l: number, cache: KvCache, r0: number, len: number, p0: number, q: Float32Array, ctx: Float32Array): void {
    const be = this.backend;
    const rk = this.rk;
    const nh = this.config.numAttentionHeads;
    const nkv = this.config.numKeyValueHeads;
    const hd = this.hd;
    const group = nh / nkv;
    const qd = nh * hd;
    const gw = group * hd;
    const blockLen = cache.maxLen * hd;
    if (len === 1) {
      const nk = p0 + 1;
      const Sc = this.buf.get('att.s', group * nk);
      for (let g = 0; g < nkv; g++) {
        const base = (l * nkv + g) * blockLen;
        const off = r0 * qd + g * gw;
        be.gemm(false, true, group, nk, hd, q.subarray(off, off + gw), cache.k.subarray(base, base + nk * hd), Sc, false);
        rk.softmaxRows(Sc, Sc, group, nk);
        be.gemm(false, false, group, hd, nk, Sc, cache.v.subarray(base, base + nk * hd), ctx.subarray(off, off + gw), false);
      }
      return;
    }
    const CH = Math.min(this.attnChunk, len); // query positions per block
    const maxKeys = p0 + len;
    const Qg = this.buf.get('att.q', CH * gw);
    const Sc = this.buf.get('att.s', CH * group * maxKeys);
    const Og = this.buf.get('att.o', CH * gw);
    for (let g = 0; g < nkv; g++) {
      const base = (l * nkv + g) * blockLen;
      const Kc = cache.k.subarray(base, base + maxKeys * hd);
      const Vc = cache.v.subarray(base, base + maxKeys * hd);
      for (let i0 = 0; i0 < len; i0 += CH) {
        const c = Math.min(CH, len - i0);
        const nk = p0 + i0 + c; // keys visible to the last query of the block
        const rows = c * group;
        for (let i = 0; i < c; i++) {
          const src = (r0 + i0 + i) * qd + g * gw;
          Qg.set(q.subarray(src, src + gw), i * gw);
        }
        const S = Sc.subarray(0, rows * nk);
        be.gemm(false, true, rows, nk, hd, Qg.subarray(0, rows * hd), Kc.subarray(0, nk * hd), S, false);
        // Causal mask: query i (position p0 + i0 + i) sees keys 0 … p0 + i0 + i.
        for (let i = 0; i < c - 1; i++) {
          const from = p0 + i0 + i + 1;
          for (let a = 0; a < group; a++) {
            const o = (i * group + a) * nk;
            S.fill(-Infinity, o + from, o + nk);
          }
        }
        rk.softmaxRows(S, S, rows, nk);
        be.gemm(false, false, rows, hd, nk, S, Vc.subarray(0, nk * hd), Og.subarray(0, rows * hd), false);
        for (let i = 0; i < c; i++) {
          const dst = (r0 + i0 + i) * qd + g * gw;
          ctx.set(Og.subarray(i * gw, (i + 1) * gw), dst);
        }
      }
    }
  }
}
