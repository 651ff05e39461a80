// Plain-JavaScript reference kernels: simple and obviously correct; the oracle for the fast kernels' tests. The 'js'
// backend is the engine contract's CPU implementation (src/engine/cpu-backend.ts) on these and `jsRowKernels`.
import { CpuBackend } from './cpu-backend.js';
import type { HostKernels } from './kernels.js';

/** The 'js' backend: the reference implementation of every op. */
export function createJsBackend(): CpuBackend {
  return new CpuBackend(createJsKernels());
}

/** The plain-JS GEMM and memory (row kernels: `jsRowKernels`). */
export function createJsKernels(): HostKernels {
  return {
    name: 'js',
    threads: 1,
    alloc: (length: number) => new Float32Array(length),
    gemm(transA, transB, M, N, K, A, B, C, accumulate) {
      const row = new Float64Array(N);
      for (let i = 0; i < M; i++) {
        row.fill(0);
        for (let p = 0; p < K; p++) {
          const a = transA ? A[p * M + i]! : A[i * K + p]!;
          if (a === 0) continue;
          if (transB) {
            for (let j = 0; j < N; j++) row[j]! += a * B[j * K + p]!;
          } else {
            const off = p * N;
            for (let j = 0; j < N; j++) row[j]! += a * B[off + j]!;
          }
        }
        const off = i * N;
        if (accumulate) for (let j = 0; j < N; j++) C[off + j]! += row[j]!;
        else for (let j = 0; j < N; j++) C[off + j] = row[j]!;
      }
    },
    dispose() {},
  };
}
