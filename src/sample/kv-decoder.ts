// Incremental inference over a Qwen2Model's weights with a per-sequence KV cache: batched prefill of prompts of
// different lengths, then step-wise decode of whichever sequences are still active.
//
// The decoder only reads the model's parameter tensors and `model.config`; it never writes them and never
// touches the model's gradients or activation workspace, so training and sampling can share one model object (the
// sampler always sees the current weights).
//
// One call of `forward` processes a list of *segments*: each segment appends some tokens to one sequence's cache
// (a whole prompt, a chunk of a long prompt, or the single token of a decode step). All rows of all segments are
// stacked into one [N, hidden] matrix, so every projection is a single matmul over the N active rows; only attention
// is per segment (queries of a segment attend to its own cache). Finished sequences are simply not passed in again,
// so the batch compacts itself and they stop costing compute.
//
// The layers are the model's own (`Qwen2Model.layerForward`); this file only supplies the attention: the keys and
// values of every segment are appended to its cache (`kvAppend`) and each segment's queries attend over its cache
// (`cacheAttention`, with the 1/√headDim scale folded into the queries, exact for power-of-four head dims such as
// 64), one op each per layer for the whole batch.
//
// KV cache layout, per sequence, preallocated for `maxLen` positions: per layer, keys and values are backend tensors
// [kvHeads, maxLen, headDim] (post-RoPE keys), so the keys of one (layer, kv head) are one contiguous [maxLen, headDim]
// block that attention reads in place. On the CPU backends a sequence owns two tensors [layers, kvHeads, maxLen,
// headDim] and its layers are views of them. On a backend with `pooledKvCache` (a GPU, where a dispatch per sequence
// per layer would dominate a decode step) the caches are windows of shared per-layer slabs, a sequence at the same
// offset in every layer's key and value slab, so each layer's cache ops take the whole batch in one dispatch.
//
// Logits stay on the backend: prefill and decode return a workspace tensor that the sampler's `sampleTokens` op reads
// directly (src/sample/sampler.ts), so a decode step needs no host round trip except the sampled ids.
import type { Backend, CacheSegment } from '../engine/backend.js';
import type { DType, DeviceTensor, F32, I32 } from '../engine/tensor.js';
import { headDimOf, type LayerActs, type Qwen2Config, type Qwen2Model } from '../model/qwen2.js';

/** The cache of one sequence: post-RoPE keys and values for positions [0, length). */
export interface KvCache {
  /** Capacity in positions. */
  readonly maxLen: number;
  /** Positions filled so far (= the position of the next token). */
  length: number;
  /** Keys and values per layer, [kvHeads, maxLen, headDim] each (views made once, used by every step). */
  readonly layers: ReadonlyArray<{ readonly k: F32; readonly v: F32 }>;
  /** Where the memory came from (`freeCache` gives it back). */
  readonly memory: { readonly k: F32; readonly v: F32 } | { readonly slab: CacheSlab; readonly offset: number; readonly size: number };
}

/** Per-layer key and value tensors that caches are cut from (pooled caches), with their free ranges. */
interface CacheSlab {
  readonly k: F32[];
  readonly v: F32[];
  readonly capacity: number;
  /** Free [offset, offset + length) ranges, sorted and coalesced. */
  free: Array<{ offset: number; length: number }>;
  used: number;
}

/** Floats per layer of a new slab: room for many caches, bounded so that one slab stays well inside one binding. */
const SLAB_FLOATS = 8 * 2 ** 20;

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

/** Reusable backend tensors by name, grown geometrically; `get` hands out a view of the first n elements. */
class Buffers {
  private readonly bufs = new Map<string, DeviceTensor>();
  constructor(private readonly backend: Backend) {}
  get(key: string, n: number): F32 {
    return this.getT(key, n, 'f32');
  }
  i32(key: string, n: number): I32 {
    return this.getT(key, n, 'i32');
  }
  private getT<D extends DType>(key: string, n: number, dtype: D): DeviceTensor<D> {
    let b = this.bufs.get(key) as DeviceTensor<D> | undefined;
    if (b === undefined || b.size < n) {
      const cap = b === undefined ? n : Math.max(n, Math.ceil(b.size * 1.5));
      if (b !== undefined) this.backend.free(b);
      b = this.backend.empty<D>([Math.max(cap, 1)], dtype);
      this.bufs.set(key, b);
    }
    return this.backend.view(b, 0, [n]);
  }
  clear(): void {
    for (const b of this.bufs.values()) this.backend.free(b);
    this.bufs.clear();
  }
}

export class KvDecoder {
  readonly model: Qwen2Model;
  readonly config: Qwen2Config;
  readonly backend: Backend;
  private readonly hd: number;
  private readonly buf: Buffers;
  private readonly maxPrefillRows: number;
  private readonly attnChunk: number;
  private readonly slabs: CacheSlab[] = [];
  private idsBuf = new Int32Array(0);
  private posBuf = new Int32Array(0);
  private startBuf = new Int32Array(0);

  constructor(model: Qwen2Model, opts: KvDecoderOptions = {}) {
    if (model.config.head !== 'lm') throw new Error('KvDecoder: the model has no LM head (score-head models cannot generate)');
    this.model = model;
    this.config = model.config;
    this.backend = model.backend;
    this.hd = headDimOf(model.config);
    this.buf = new Buffers(model.backend);
    this.maxPrefillRows = Math.max(1, Math.floor(opts.maxPrefillRows ?? 512));
    this.attnChunk = Math.max(1, Math.floor(opts.attnChunk ?? 64));
  }

  /** Floats of one K (or V) cache of `maxLen` positions. */
  cacheFloats(maxLen: number): number {
    return this.config.numHiddenLayers * this.config.numKeyValueHeads * maxLen * this.hd;
  }

  /** A fresh empty cache for up to `maxLen` positions (allocated on the backend, or cut from a slab). */
  newCache(maxLen: number): KvCache {
    if (!Number.isInteger(maxLen) || maxLen < 1) throw new Error(`newCache: maxLen ${maxLen} is not a positive integer`);
    const be = this.backend;
    const { numHiddenLayers: L, numKeyValueHeads: nkv } = this.config;
    const n = nkv * maxLen * this.hd;
    const shape = [nkv, maxLen, this.hd];
    if (be.pooledKvCache === true && n <= SLAB_FLOATS) {
      const { slab, offset } = this.slabRange(n);
      const layers = Array.from({ length: L }, (_, l) => ({ k: be.view(slab.k[l]!, offset, shape), v: be.view(slab.v[l]!, offset, shape) }));
      return { maxLen, length: 0, layers, memory: { slab, offset, size: n } };
    }
    const full = [L, nkv, maxLen, this.hd];
    const k = this.allocCache(full);
    let v: F32;
    try {
      v = this.allocCache(full);
    } catch (e) {
      be.free(k);
      throw e;
    }
    const layers = Array.from({ length: L }, (_, l) => ({ k: be.view(k, l * n, shape), v: be.view(v, l * n, shape) }));
    return { maxLen, length: 0, layers, memory: { k, v } };
  }

  /** `n` floats at the same offset of every layer's slabs: first fit in an existing slab, else a new slab. */
  private slabRange(n: number): { slab: CacheSlab; offset: number } {
    for (const slab of this.slabs) {
      const i = slab.free.findIndex((r) => r.length >= n);
      if (i < 0) continue;
      const r = slab.free[i]!;
      const offset = r.offset;
      if (r.length === n) slab.free.splice(i, 1);
      else slab.free[i] = { offset: r.offset + n, length: r.length - n };
      slab.used += n;
      return { slab, offset };
    }
    const L = this.config.numHiddenLayers;
    const capacity = Math.max(n, Math.min(SLAB_FLOATS, 64 * n));
    const k: F32[] = [];
    const v: F32[] = [];
    try {
      for (let l = 0; l < L; l++) {
        k.push(this.allocCache([capacity]));
        v.push(this.allocCache([capacity]));
      }
    } catch (e) {
      for (const t of [...k, ...v]) this.backend.free(t);
      throw e;
    }
    const slab: CacheSlab = { k, v, capacity, free: capacity > n ? [{ offset: n, length: capacity - n }] : [], used: n };
    this.slabs.push(slab);
    return { slab, offset: 0 };
  }

  /** One of a cache's two tensors; out of backend memory (wasm) or past the typed-array limit, says what to lower. */
  private allocCache(shape: readonly number[]): F32 {
    try {
      return this.backend.empty(shape);
    } catch (e) {
      const gib = (2 * shape.reduce((x, y) => x * y, 1) * 4) / 2 ** 30;
      throw new Error(
        `KV cache${shape.length === 4 ? ` for ${shape[2]} positions` : ' slab'} (${gib.toFixed(2)} GiB) could not be allocated on the ${this.backend.name} backend ` +
          `(${(e as Error).message}); lower the max new tokens or the batch size`,
      );
    }
  }

  /** Gives a cache's memory back (the cache must not be used after); a slab nobody uses any more is freed. */
  freeCache(c: KvCache): void {
    const m = c.memory;
    if (!('slab' in m)) {
      this.backend.free(m.v);
      this.backend.free(m.k);
      return;
    }
    const { slab } = m;
    const free = slab.free;
    let i = free.findIndex((r) => r.offset > m.offset);
    if (i < 0) i = free.length;
    free.splice(i, 0, { offset: m.offset, length: m.size });
    // Coalesce with the neighbours.
    if (i + 1 < free.length && free[i]!.offset + free[i]!.length === free[i + 1]!.offset) {
      free[i]!.length += free[i + 1]!.length;
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1]!.offset + free[i - 1]!.length === free[i]!.offset) {
      free[i - 1]!.length += free[i]!.length;
      free.splice(i, 1);
    }
    slab.used -= m.size;
    if (slab.used === 0) {
      for (const t of [...slab.k, ...slab.v]) this.backend.free(t);
      this.slabs.splice(this.slabs.indexOf(slab), 1);
    }
  }

  /** Copies the filled positions of `src` into `dst` (e.g. one prefilled prompt shared by n samples). */
  copyCache(src: KvCache, dst: KvCache): void {
    if (dst.maxLen < src.length) throw new Error(`copyCache: ${src.length} positions do not fit in ${dst.maxLen}`);
    const be = this.backend;
    const hd = this.hd;
    const n = src.length * hd;
    if (n > 0) {
      src.layers.forEach((sl, l) => {
        const dl = dst.layers[l]!;
        for (let g = 0; g < this.config.numKeyValueHeads; g++) {
          be.copy(be.view(sl.k, g * src.maxLen * hd, [n]), be.view(dl.k, g * dst.maxLen * hd, [n]));
          be.copy(be.view(sl.v, g * src.maxLen * hd, [n]), be.view(dl.v, g * dst.maxLen * hd, [n]));
        }
      });
    }
    dst.length = src.length;
  }

  /** Gives the workspace back to the backend (rebuilt on the next call). */
  releaseBuffers(): void {
    this.buf.clear();
  }

  /**
   * Runs each prompt into its (empty or partly filled) cache, in forwards of at most `maxPrefillRows` rows (a long
   * prompt is chunked), and returns the next-token logits after each prompt: a backend tensor [prompts, vocab] of the
   * workspace, valid until the next call.
   */
  prefill(prompts: ReadonlyArray<ArrayLike<number>>, caches: readonly KvCache[]): F32 {
    if (prompts.length !== caches.length) throw new Error(`prefill: ${prompts.length} prompts but ${caches.length} caches`);
    const V = this.config.vocabSize;
    const be = this.backend;
    const out = this.buf.get('prefill.out', prompts.length * V);
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
        be.copy(be.view(logits, j * V, [V]), be.view(out, o * V, [V]));
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
   * One decode step: appends `tokens[i]` to `caches[i]` and returns the next-token logits [caches, vocab] (a backend
   * tensor of the workspace, valid until the next call).
   */
  decode(caches: readonly KvCache[], tokens: ArrayLike<number>): F32 {
    if (caches.length !== tokens.length) throw new Error(`decode: ${caches.length} caches but ${tokens.length} tokens`);
    const segs: Segment[] = [];
    for (let i = 0; i < caches.length; i++) segs.push({ cache: caches[i]!, tokens: [tokens[i]!] });
    return this.forward(segs, null);
  }

  /** A reusable host Int32Array of at least n entries (ids, positions, row starts of one forward). */
  private host(which: 'ids' | 'pos' | 'start', n: number): Int32Array {
    const key = (which + 'Buf') as 'idsBuf' | 'posBuf' | 'startBuf';
    if (this[key].length < n) this[key] = new Int32Array(Math.max(n, 2 * this[key].length, 64));
    return this[key];
  }

  /**
   * Appends every segment's tokens to its cache and returns logits for the last token of each segment whose `want`
   * entry is true (all of them when `want` is null), in segment order: [count, vocab], a workspace tensor valid until
   * the next call. Segments must belong to distinct caches.
   */
  forward(segs: readonly Segment[], want: readonly boolean[] | null): F32 {
    const cfg = this.config;
    const be = this.backend;
    const model = this.model;
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const V = cfg.vocabSize;
    const nh = cfg.numAttentionHeads;
    const nkv = cfg.numKeyValueHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = nkv * hd;
    const dims = model.attentionDims();
    const scale = 1 / Math.sqrt(hd);
    const S = segs.length;
    if (want !== null && want.length !== S) throw new Error(`forward: ${S} segments but ${want.length} want flags`);

    // Rows, positions, token ids.
    const start = this.host('start', S + 1);
    start[0] = 0;
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
    if (N === 0) return this.buf.get('logits', 0);
    const ids = this.host('ids', N);
    const pos = this.host('pos', N);
    for (let s = 0; s < S; s++) {
      const { cache, tokens } = segs[s]!;
      for (let i = 0; i < tokens.length; i++) {
        const r = start[s]! + i;
        const id = tokens[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} not in [0, ${V})`);
        pos[r] = cache.length + i;
        ids[r] = id;
      }
    }
    model.ropeTables(maxPos);
    const buf = this.buf;
    const idsT = buf.i32('ids', N);
    const posT = buf.i32('pos', N);
    be.write(idsT, ids.subarray(0, N));
    be.write(posT, pos.subarray(0, N));
    const x = buf.get('x', N * H);
    be.gatherRows(model.tensor('model.embed_tokens.weight'), idsT, x, H);

    const gate = buf.get('gate', N * I);
    const A: LayerActs = {
      xIn: null,
      rstd1: null,
      q: buf.get('q', N * qd),
      k: buf.get('k', N * kd),
      v: buf.get('v', N * kd),
      ctx: buf.get('ctx', N * qd),
      lse: null,
      xMid: null,
      rstd2: null,
      gate,
      up: buf.get('up', N * I),
      h: buf.get('h', N * H),
      act: gate,
    };
    // Each segment's rows, positions and (per layer) cache: one kvAppend and one cacheAttention per layer.
    const cacheSegs: CacheSegment[] = segs.map((sg, s) => ({
      kc: sg.cache.layers[0]!.k,
      vc: sg.cache.layers[0]!.v,
      r0: start[s]!,
      n: start[s + 1]! - start[s]!,
      pos0: sg.cache.length,
    }));
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      for (let s = 0; s < S; s++) {
        const c = segs[s]!.cache;
        const cs = cacheSegs[s]!;
        cs.kc = c.layers[l]!.k;
        cs.vc = c.layers[l]!.v;
      }
      model.layerForward(l, x, N, posT, A, (a) => {
        be.scale(a.q, scale);
        be.kvAppend(a.k, a.v, cacheSegs, dims);
        be.cacheAttention(a.q, a.ctx, cacheSegs, dims, this.attnChunk);
      });
    }
    for (let s = 0; s < S; s++) segs[s]!.cache.length += start[s + 1]! - start[s]!;

    // Final norm and LM head, only for the rows whose logits are wanted.
    let M = 0;
    for (let s = 0; s < S; s++) if (want === null || want[s]) M++;
    const logits = buf.get('logits', M * V);
    if (M === 0) return logits;
    const hsel = buf.get('hsel', M * H);
    const normW = model.tensor('model.norm.weight');
    if (M === N) {
      // Every row is wanted (a decode step): normalise straight out of x.
      be.rmsnorm(x, normW, hsel, null, H, cfg.rmsNormEps);
    } else {
      const rows = this.host('ids', M);
      let j = 0;
      for (let s = 0; s < S; s++) if (want === null || want[s]) rows[j++] = start[s + 1]! - 1;
      const rowsT = buf.i32('rows', M);
      be.write(rowsT, rows.subarray(0, M));
      be.gatherRows(x, rowsT, hsel, H);
      be.rmsnorm(hsel, normW, hsel, null, H, cfg.rmsNormEps);
    }
    be.matmul(hsel, model.lmWeight(), logits, M, V, H, false, true, false);
    return logits;
  }
}
