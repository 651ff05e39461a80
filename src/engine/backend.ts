// The engine contract: what a compute backend offers the model, the trainer and the sampler.
//
// Tensors live on the backend (src/engine/tensor.ts). Every op below takes handles, checks shapes, and either runs at
// once (the CPU backends) or is enqueued (a GPU backend); nothing returns numbers except `read`, which is async, so a
// whole forward/backward or decode step can be encoded without a host round trip. Host data goes in through `upload`
// and `write` (a GPU backend queues the copy).
//
// Conventions for every op:
// - Row-major f32 unless an argument says i32. "[R, C]" is checked against the tensor's size (R·C elements; the shape
//   itself may be any that has that size, e.g. a view); a mismatch throws a RangeError naming the op and argument.
// - Outputs are overwritten unless the op says it ACCUMULATES (+=). "may alias" names the only overlaps allowed
//   between an output and an input (the very same tensor); any other overlap is undefined.
// - The reference implementation of every op is the js backend (src/engine/cpu-backend.ts with the plain-JS kernels);
// other backends must agree with it within float32 rounding (tests: test/engine-ops.test.ts).
import type { SamplerSettings } from './sampling.js';
import type { DType, DeviceTensor, F32, HostArray, I32 } from './tensor.js';

/** A backend's name, as listed by `BACKEND_NAMES` (src/engine/index.ts). */
export type BackendName = string;

/** Shapes of a (grouped-query) attention: heads of queries, heads of keys/values, head dimension. */
export interface AttentionDims {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * One sequence's share of a KV-cache op: rows [r0, r0+n) of the batch belong to the sequence whose cache layers are
 * kc, vc [kvHeads, maxLen, headDim], with pos0 positions already filled. (A device backend that keeps every cache in
 * one pool buffer can run a whole batch of segments in one dispatch.)
 */
export interface CacheSegment {
  kc: F32;
  vc: F32;
  r0: number;
  n: number;
  pos0: number;
}

/** The per-step numbers of one AdamW update (computed on the host from the step count and learning rate). */
export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  /** Multiplier of the parameter before the update: 1 − lr·weightDecay (1 for no decay). */
  decay: number;
  /** lr / (1 − β₁ᵗ). */
  stepSize: number;
  /** √(1 − β₂ᵗ). */
  bc2sqrt: number;
}

/** See `Backend.counters`. */
export interface DeviceCounters {
  dispatches: number;
  bindGroupsMade: number;
  submits: number;
  waitSeconds: number;
  liveBytes: number;
  peakBytes: number;
}

export interface Backend {
  readonly name: BackendName;
  /** Threads the kernels use. */
  readonly threads: number;
  /** The device the backend runs on when it is not this CPU, e.g. a GPU adapter's name (benchmarks print it). */
  readonly device?: string;
  /**
   * Running totals of a device backend, for benchmarks: its host-side work (compute dispatches, bind groups made,
   * submits, seconds spent waiting for the device) and the device memory its buffers hold now and at most. Absent on
   * CPU backends.
   */
  counters?(): DeviceCounters;
  /**
   * The cache ops run a whole batch in one dispatch when the segments' caches are views of shared tensors (one for
   * keys, one for values, each sequence at the same offset in both): the KV decoder then pools caches that way
   * (src/sample/kv-decoder.ts). Absent or false: each sequence gets its own tensors.
   */
  readonly pooledKvCache?: boolean;

  // ---- memory ------------------------------------------------------------------------------------------------------
  /** A new zeroed tensor. */
  empty<D extends DType = 'f32'>(shape: readonly number[], dtype?: D): DeviceTensor<D>;
  /** A new tensor holding a copy of `data` (shape default [data.length]); dtype from the array type. */
  upload(data: Float32Array, shape?: readonly number[]): F32;
  upload(data: Int32Array, shape?: readonly number[]): I32;
  /** Copies host numbers into `t` starting at element `at` (default 0). */
  write(t: DeviceTensor, data: ArrayLike<number>, at?: number): void;
  /** A host copy of the tensor's numbers, once every op enqueued before has run. */
  read<D extends DType>(t: DeviceTensor<D>): Promise<HostArray<D>>;
  /** A view of `t`'s elements [offset, offset + size(shape)) with the given shape (no copy). */
  view<D extends DType>(t: DeviceTensor<D>, offset: number, shape: readonly number[]): DeviceTensor<D>;
  /** dst ← src (same size and dtype). */
  copy<D extends DType>(src: DeviceTensor<D>, dst: DeviceTensor<D>): void;
  /** Every element of `t` ← value. */
  fill(t: DeviceTensor, value: number): void;
  /** Gives back a tensor from `empty`/`upload` (not a view); it must not be used after. */
  free(t: DeviceTensor): void;
  /** Waits until every enqueued op has run (a no-op on the CPU backends). */
  sync(): Promise<void>;
  /** Releases threads and memory; the backend is unusable after. */
  dispose(): void;

  // ---- dense algebra -----------------------------------------------------------------------------------------------
  /**
   * c = op(a)·op(b), or c += op(a)·op(b) with `accumulate`. op(a) is [M, K]: a is [M, K], or [K, M] with transA;
   * op(b) is [K, N]: b is [K, N], or [N, K] with transB; c is [M, N]. M, N, K are given (the tensors' sizes are
   * checked against them).
   */
  matmul(a: F32, b: F32, c: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  /** out = a + b elementwise. out may alias a or b. */
  add(a: F32, b: F32, out: F32): void;
  /** y += alpha·x. */
  axpy(alpha: number, x: F32, y: F32): void;
  /** x ← alpha·x (each product rounded to f32). */
  scale(x: F32, alpha: number): void;
  /** y[r, :] += b for every row r of y [R, D]; b is [D]. */
  addBias(y: F32, b: F32): void;
  /** db += Σ_r dy[r, :] (ACCUMULATES); dy is [R, D], db [D]. */
  biasBackward(dy: F32, db: F32): void;

  // ---- rows --------------------------------------------------------------------------------------------------------
  /** dst[i, :] = src[ids[i], :]: src [V, D], ids i32 [N] (each in [0, V)), dst [N, D]. Embedding lookup. */
  gatherRows(src: F32, ids: I32, dst: F32, D: number): void;
  /** dst[ids[i], :] += src[i, :] (ACCUMULATES; repeated ids add up): the backward of gatherRows. */
  scatterAddRows(src: F32, ids: I32, dst: F32, D: number): void;
  /**
   * RMSNorm over rows of x [R, C]: rstd[r] = 1/√(mean_c x² + eps), y = x · rstd · w (w [C]). rstd [R] is saved for the
   * backward when given. y may alias x.
   */
  rmsnorm(x: F32, w: F32, y: F32, rstd: F32 | null, C: number, eps: number): void;
  /**
   * Backward of rmsnorm: dx += ∂L/∂x (ACCUMULATES, e.g. into a residual gradient), dw += ∂L/∂w (ACCUMULATES; null
   * skips it), from dy and the saved rstd. `dy` is consumed: its contents are undefined after the call.
   */
  rmsnormBackward(x: F32, w: F32, rstd: F32, dy: F32, dx: F32, dw: F32 | null, C: number): void;
  /**
   * Rotary embedding (rotate-half, HF Qwen2) of x [T, heads·D] into out, token t at position positions[t] (i32 [T]),
   * with cos/sin tables [P, D/2] (ropeTables). inverse applies the transposed rotation (the backward). out may alias x.
   */
  rope(x: F32, out: F32, positions: I32, cos: F32, sin: F32, heads: number, D: number, inverse: boolean): void;
  /** out = silu(gate)·up elementwise. out may alias gate or up. */
  swiglu(gate: F32, up: F32, out: F32): void;
  /** Backward of swiglu from dout: dgate, dup overwritten. dgate may alias dout. */
  swigluBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32): void;

  // ---- attention ---------------------------------------------------------------------------------------------------
  /**
   * Causal grouped-query attention over packed sequences: sequence s owns rows [seqStarts[s], seqStarts[s+1]) of
   * q [N, heads·hd], k and v [N, kvHeads·hd]; row i of a sequence attends to its rows 0 … i. out [N, heads·hd];
   * lse [heads, N] receives each query's log-sum-exp of scaled scores (for the backward). Scale 1/√hd.
   * `chunk` bounds the query rows whose scores are formed at once (a memory bound; results do not depend on it).
   */
  attention(q: F32, k: F32, v: F32, out: F32, lse: F32, seqStarts: I32, dims: AttentionDims, chunk: number): void;
  /** Backward of attention from dout: dq, dk, dv overwritten (w.r.t. the q, k, v given to the forward). */
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
  ): void;
  /**
   * Appends to KV caches: for each segment, rows [r0, r0+n) of k and v [N, kvHeads·hd] go to positions pos0 … pos0+n−1
   * of its cache layers kc, vc [kvHeads, maxLen, hd]. One op for the whole batch of sequences.
   */
  kvAppend(k: F32, v: F32, segs: readonly CacheSegment[], dims: AttentionDims): void;
  /**
   * Causal attention over KV caches: for each segment, its queries q[r0 … r0+n) [·, heads·hd] at positions pos0 … attend
   * over its cache (positions up to pos0+n−1 already appended): query i sees keys 0 … pos0+i. q must be pre-scaled by
   * 1/√hd. Writes the same rows of out. `chunk` bounds the query rows formed at once. One op for the whole batch.
   */
  cacheAttention(q: F32, out: F32, segs: readonly CacheSegment[], dims: AttentionDims, chunk: number): void;

  // ---- heads -------------------------------------------------------------------------------------------------------
  /**
   * Fused LM head + log-softmax over the vocabulary for R rows h [R, H] against w [V, H] (logits z = h·wᵀ, formed in
   * chunks of `chunkRows` rows, never all at once): logp[r] = z[r, labels[r]] − lse[r], lse [R] saved for the
   * backward, entropy[r] = lse − Σ softmax(z)·z when given.
   */
  tokenLogprobs(h: F32, w: F32, labels: I32, logp: F32, lse: F32, entropy: F32 | null, V: number, chunkRows: number): void;
  /**
   * Backward of tokenLogprobs given g[r] = ∂L/∂logp[r]: dh [R, H] overwritten, dw [V, H] ACCUMULATED. Rows with
   * g = 0 cost nothing.
   */
  tokenLogprobsBackward(h: F32, w: F32, labels: I32, lse: F32, g: F32, dh: F32, dw: F32, V: number, chunkRows: number): void;

  // ---- sampling ----------------------------------------------------------------------------------------------------
  /**
   * One token per row of logits [M, V] (src/engine/sampling.ts: temperature → top-k → top-p, ties to the lower id):
   * row r with settings[r] and the uniform uniforms[r] in [0, 1) (ignored for greedy rows; the caller draws them from
   * its seeded generators, so results do not depend on the batch or the backend). ids i32 [M]; logprobs [M] =
   * log softmax(raw logits)[token] when given (null skips them: a greedy row is then a single argmax pass).
   */
  sampleTokens(logits: F32, V: number, settings: readonly SamplerSettings[], uniforms: ArrayLike<number>, ids: I32, logprobs: F32 | null): void;

  // ---- optimizer ---------------------------------------------------------------------------------------------------
  /** out[0] = Σ over the tensors of Σ x² (accumulated in at least f32; the CPU backends use f64). out is [1]. */
  sumSquares(xs: readonly F32[], out: F32): void;
  /**
   * AdamW on one parameter (PyTorch's order): p ← p·decay; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
   * p ← p − stepSize·m / (√v / bc2sqrt + eps).
   */
  adamw(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper): void;
  /**
   * The update `adamw` would make, measured and not made: out[0] += Σ (p_new − p)², out[1] += Σ p² (ACCUMULATES; out
   * is [2]; a non-finite new value makes out[0] non-finite). p, m and v are left untouched.
   */
  adamwPreview(p: F32, g: F32, m: F32, v: F32, h: AdamWHyper, out: F32): void;
}
