// The kernel layer the model is written against. Every backend (plain JS reference, WebAssembly SIMD, OpenBLAS addon)
// implements this; model code never knows which one runs.

export type BackendName = 'js' | 'wasm' | 'blas';

export interface Backend {
  readonly name: BackendName;
  /** Number of threads the kernels use. */
  readonly threads: number;
  /**
   * A zeroed f32 array that this backend's kernels read and write without copying (for wasm: a view into its shared
   * memory). Plain Float32Arrays are accepted everywhere too, possibly through a copy.
   */
  alloc(length: number): Float32Array;
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
