// Engine selection: `createBackend()` gives the default (WebAssembly SIMD, all cores); model code only sees `Backend`.
import os from 'node:os';
import type { Backend, BackendName } from './backend.js';
import { createJsBackend } from './js-backend.js';
import { createWasmBackend } from './wasm-backend.js';

export type { Backend, BackendName } from './backend.js';
export type { RowKernels } from './kernels.js';
export { jsRowKernels, rowKernelsOf, ropeTables } from './kernels.js';
export type { WasmBackend, WasmBackendOptions } from './wasm-backend.js';
export { createWasmBackend } from './wasm-backend.js';
export { createJsBackend } from './js-backend.js';

export interface CreateBackendOptions {
  /** Threads for the kernels (wasm: default os.availableParallelism(); js: always 1). */
  threads?: number;
}

export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'js', 'blas'];

/** Creates a compute backend: 'wasm' (default), 'js' (plain-JS reference, 1 thread) or 'blas' (not built yet). */
export function createBackend(name: BackendName = 'wasm', opts: CreateBackendOptions = {}): Backend {
  switch (name) {
    case 'wasm':
      return createWasmBackend({ threads: opts.threads ?? os.availableParallelism() });
    case 'js':
      return createJsBackend();
    case 'blas':
      throw new Error(
        'BLAS backend not built: the OpenBLAS Node addon is not part of this build yet; use --backend wasm (default) or js',
      );
    default: {
      const bad: never = name;
      throw new Error(`unknown backend '${String(bad)}' (expected one of: ${BACKEND_NAMES.join(', ')})`);
    }
  }
}
