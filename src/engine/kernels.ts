// Elementwise and row kernels the Qwen2 model needs beside GEMM, with plain-JS reference implementations.
//
// A backend may implement `RowKernels` (the wasm backend does, in SIMD); `jsRowKernels` below is the reference every
// fast implementation is tested against, and the fallback for a backend that has none (see `rowKernelsOf`).
//
// Conventions for every op:
// - Arrays are row-major float32; offsets come from the arrays themselves (use subarray views). Lengths are checked:
//   each array must hold at least the elements the op touches, or a RangeError is thrown.
// - "may alias" means the output may be the very same array (or a view of the same memory at the same offset) as the
//   named input; any other overlap between inputs and outputs is not allowed.
// - Implementations compute in float32 (the references in float64); results agree within float32 rounding, and exp
//   is a polynomial approximation with relative error below 1e-6 in the wasm backend.

/**
 * What a CPU backend computes with: one GEMM over host Float32Arrays, plus memory those kernels read in place. The
 * tensor ops of the engine contract (src/engine/backend.ts) are built on these by src/engine/cpu-backend.ts.
 */
export interface HostKernels {
  readonly name: string;
  /** Number of threads the kernels use. */
  readonly threads: number;
  /**
   * A zeroed f32 array that the kernels read and write without copying (for wasm: a view into its shared memory).
   * Plain Float32Arrays are accepted everywhere too, possibly through a copy.
   */
  alloc(length: number): Float32Array;
  /** Gives back an array from alloc() (the wasm arena); absent where memory is garbage-collected. */
  free?(arr: Float32Array): void;
  /**
   * Row-major C (M×N) = opA · opB, or C += opA · opB when `accumulate`.
   * opA is M×K: A stored M×K, or with `transA` the transpose of A stored K×M.
   * opB is K×N: B stored K×N, or with `transB` the transpose of B stored N×K.
   * Offsets come from the arrays themselves (use subarray views).
   */
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
  ): void;
  /** Release threads and memory. */
  dispose(): void;
}

export interface RowKernels {
  /**
   * Row-wise softmax: for each of `rows` rows of length `cols`, y[r, c] = exp(x[r, c] - m) / Σ_c' exp(x[r, c'] - m)
   * with m = max_c x[r, c]. -Infinity entries give exactly 0 (a causal mask); a row that is all -Infinity becomes all
   * zeros. `y` may alias `x` (in place).
   */
  softmaxRows(x: Float32Array, y: Float32Array, rows: number, cols: number): void;
  /**
   * Backward of softmaxRows given its output y and the upstream gradient dy:
   * dx[r, c] = y[r, c] · (dy[r, c] − Σ_c' dy[r, c'] · y[r, c']). `dx` may alias `dy`.
   */
  softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void;
  /**
   * RMSNorm: rstd[r] = 1 / sqrt(mean_c x[r, c]² + eps); y[r, c] = x[r, c] · rstd[r] · weight[c].
   * `rstd` (length rows) receives the per-row reciprocal RMS for the backward pass; pass null to skip it.
   * `y` may alias `x`.
   */
  rmsnormForward(
    x: Float32Array,
    weight: Float32Array,
    y: Float32Array,
    rstd: Float32Array | null,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /**
   * Backward of rmsnormForward, with the rstd it returned. With g = dy[r, :] · weight:
   * dx[r, c] = rstd[r] · (g[c] − x[r, c] · rstd[r]² · mean_c' (g[c'] · x[r, c'])), overwritten;
   * dweight[c] += Σ_r dy[r, c] · x[r, c] · rstd[r], ACCUMULATED (zero it first for a fresh gradient); null skips it.
   * `dx` may alias `dy`.
   */
  rmsnormBackward(
    x: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dweight: Float32Array | null,
    rows: number,
    cols: number,
  ): void;
  /** SwiGLU gate: out[i] = silu(gate[i]) · up[i] with silu(g) = g · σ(g), for i < n. `out` may alias gate or up. */
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /**
   * Backward of swigluForward (overwrites both outputs): with s = σ(gate[i]),
   * dgate[i] = dout[i] · up[i] · s · (1 + gate[i] · (1 − s)),  dup[i] = dout[i] · gate[i] · s.
   * dgate or dup may alias dout (not each other).
   */
  swigluBackward(
    gate: Float32Array,
    up: Float32Array,
    dout: Float32Array,
    dgate: Float32Array,
    dup: Float32Array,
    n: number,
  ): void;
  /**
   * Rotary position embedding, rotate-half convention (Hugging Face Qwen2/Llama). x and out are [T, H, D] (tokens,
   * heads, head dim, D even); positions[t] is token t's position; cos and sin are [P, D/2] tables (see ropeTables),
   * P > every position. With h = D/2, for i < h, a = x[t, k, i], b = x[t, k, i + h], c = cos[pos·h + i],
   * s = sin[pos·h + i]:
   *   forward:            out[.., i] = a·c − b·s,  out[.., i + h] = b·c + a·s
   *   inverse (backward): out[.., i] = a·c + b·s,  out[.., i + h] = b·c − a·s
   * The inverse is the exact transpose of the forward rotation, so it maps dy to dx. `out` may alias `x`.
   */
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
  /** out[i] = a[i] + b[i] for i < n. `out` may alias a or b. */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** y[i] += alpha · x[i] for i < n. */
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
}

/** Throws a RangeError unless `arr` holds at least `need` elements. */
export function checkLength(what: string, arr: ArrayLike<number>, need: number): void {
  if (!(need >= 0) || !Number.isInteger(need)) throw new RangeError(`${what}: bad size ${need}`);
  if (arr.length < need) throw new RangeError(`${what}: has ${arr.length} elements, needs ${need}`);
}

/**
 * cos/sin tables for `rope`: angle(p, i) = p · theta^(−2i/D) for positions p < maxPositions and i < D/2, each table
 * [maxPositions, D/2] row-major. Built the way Hugging Face's Qwen2 rotary embedding does in float32 (inverse
 * frequencies and angles rounded to float32), so positions match PyTorch bit for bit before cos/sin.
 */
export function ropeTables(
  maxPositions: number,
  headDim: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  if (headDim % 2 !== 0) throw new RangeError(`ropeTables: head dim ${headDim} is odd`);
  const h = headDim / 2;
  const cos = new Float32Array(maxPositions * h);
  const sin = new Float32Array(maxPositions * h);
  const inv = new Float32Array(h);
  for (let i = 0; i < h; i++) inv[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < h; i++) {
      const a = Math.fround(p * inv[i]!);
      cos[p * h + i] = Math.cos(a);
      sin[p * h + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

function checkRope(T: number, H: number, D: number, positions: Int32Array, cos: Float32Array, sin: Float32Array): void {
  if (D % 2 !== 0) throw new RangeError(`rope: head dim ${D} is odd`);
  checkLength('rope positions', positions, T);
  const h = D / 2;
  let maxPos = -1;
  for (let t = 0; t < T; t++) {
    const p = positions[t]!;
    if (p < 0) throw new RangeError(`rope: negative position ${p}`);
    if (p > maxPos) maxPos = p;
  }
  checkLength('rope cos', cos, (maxPos + 1) * h);
  checkLength('rope sin', sin, (maxPos + 1) * h);
}

/** Validates the arguments of every RowKernels op; shared by the JS and wasm implementations. */
export const rowKernelChecks = {
  softmaxRows(x: Float32Array, y: Float32Array, rows: number, cols: number): void {
    checkLength('softmaxRows x', x, rows * cols);
    checkLength('softmaxRows y', y, rows * cols);
  },
  softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
    for (const [n, a] of [['y', y], ['dy', dy], ['dx', dx]] as const) checkLength(`softmaxBackwardRows ${n}`, a, rows * cols);
  },
  rmsnormForward(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array | null, rows: number, cols: number): void {
    checkLength('rmsnormForward x', x, rows * cols);
    checkLength('rmsnormForward y', y, rows * cols);
    checkLength('rmsnormForward weight', w, cols);
    if (rstd) checkLength('rmsnormForward rstd', rstd, rows);
  },
  rmsnormBackward(
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array | null,
    rows: number,
    cols: number,
  ): void {
    for (const [n, a] of [['x', x], ['dy', dy], ['dx', dx]] as const) checkLength(`rmsnormBackward ${n}`, a, rows * cols);
    checkLength('rmsnormBackward weight', w, cols);
    checkLength('rmsnormBackward rstd', rstd, rows);
    if (dw) checkLength('rmsnormBackward dweight', dw, cols);
  },
  rope: checkRope,
};

function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** Plain-JS reference implementations (float64 accumulation). */
export const jsRowKernels: RowKernels = {
  softmaxRows(x, y, rows, cols) {
    rowKernelChecks.softmaxRows(x, y, rows, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      for (let c = 0; c < cols; c++) if (x[o + c]! > m) m = x[o + c]!;
      if (m === -Infinity) m = 0;
      let s = 0;
      for (let c = 0; c < cols; c++) {
        const e = Math.exp(x[o + c]! - m);
        y[o + c] = e;
        s += e;
      }
      const inv = s > 0 ? 1 / s : 0;
      for (let c = 0; c < cols; c++) y[o + c] = y[o + c]! * inv;
    }
  },
  softmaxBackwardRows(y, dy, dx, rows, cols) {
    rowKernelChecks.softmaxBackwardRows(y, dy, dx, rows, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let c = 0; c < cols; c++) s += dy[o + c]! * y[o + c]!;
      for (let c = 0; c < cols; c++) dx[o + c] = y[o + c]! * (dy[o + c]! - s);
    }
  },
  rmsnormForward(x, weight, y, rstd, rows, cols, eps) {
    rowKernelChecks.rmsnormForward(x, weight, y, rstd, rows, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let c = 0; c < cols; c++) s += x[o + c]! * x[o + c]!;
      const rs = 1 / Math.sqrt(s / cols + eps);
      if (rstd) rstd[r] = rs;
      for (let c = 0; c < cols; c++) y[o + c] = x[o + c]! * rs * weight[c]!;
    }
  },
  rmsnormBackward(x, weight, rstd, dy, dx, dweight, rows, cols) {
    rowKernelChecks.rmsnormBackward(x, weight, rstd, dy, dx, dweight, rows, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const rs = rstd[r]!;
      let s = 0;
      for (let c = 0; c < cols; c++) s += dy[o + c]! * weight[c]! * x[o + c]!;
      if (dweight) for (let c = 0; c < cols; c++) dweight[c] = dweight[c]! + dy[o + c]! * x[o + c]! * rs;
      const k = (rs * rs * s) / cols;
      for (let c = 0; c < cols; c++) dx[o + c] = rs * (dy[o + c]! * weight[c]! - x[o + c]! * k);
    }
  },
  swigluForward(gate, up, out, n) {
    checkLength('swigluForward gate', gate, n);
    checkLength('swigluForward up', up, n);
    checkLength('swigluForward out', out, n);
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      out[i] = g * sigmoid(g) * up[i]!;
    }
  },
  swigluBackward(gate, up, dout, dgate, dup, n) {
    for (const [nm, a] of [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const) {
      checkLength(`swigluBackward ${nm}`, a, n);
    }
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      const u = up[i]!;
      const d = dout[i]!;
      const s = sigmoid(g);
      dgate[i] = d * u * s * (1 + g * (1 - s));
      dup[i] = d * g * s;
    }
  },
  rope(x, out, T, H, D, positions, cos, sin, inverse) {
    checkRope(T, H, D, positions, cos, sin);
    checkLength('rope x', x, T * H * D);
    checkLength('rope out', out, T * H * D);
    const h = D / 2;
    for (let t = 0; t < T; t++) {
      const tb = positions[t]! * h;
      for (let k = 0; k < H; k++) {
        const o = (t * H + k) * D;
        for (let i = 0; i < h; i++) {
          const a = x[o + i]!;
          const b = x[o + h + i]!;
          const c = cos[tb + i]!;
          const s = inverse ? -sin[tb + i]! : sin[tb + i]!;
          out[o + i] = a * c - b * s;
          out[o + h + i] = b * c + a * s;
        }
      }
    }
  },
  add(a, b, out, n) {
    checkLength('add a', a, n);
    checkLength('add b', b, n);
    checkLength('add out', out, n);
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  },
  axpy(alpha, x, y, n) {
    checkLength('axpy x', x, n);
    checkLength('axpy y', y, n);
    for (let i = 0; i < n; i++) y[i] = y[i]! + alpha * x[i]!;
  },
};

/** The kernels' own row kernels when they have them (wasm, blas), else the JS references. */
export function rowKernelsOf(kernels: HostKernels): RowKernels {
  const b = kernels as HostKernels & Partial<RowKernels>;
  return typeof b.softmaxRows === 'function' ? (b as HostKernels & RowKernels) : jsRowKernels;
}
