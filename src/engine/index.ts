// Engine selection: `createBackend()` gives the default backend; model code only sees `Backend`.
//
// Default (createBackend() with no name): $OREAL_BACKEND when set ('wasm' | 'blas' | 'js'); otherwise 'blas' when the
// OpenBLAS addon is built (build/Release/oreal_blas.node, made by `npm install` / `npm run build:native` when
// libopenblas-dev is installed), else 'wasm' (WebAssembly SIMD, always available). An explicit name is always honoured;
// 'blas' without the addon throws an error that says how to build it.
import os from 'node:os';
import type { Backend, BackendName } from './backend.js';
import { createJsBackend } from './js-backend.js';
import { createWasmBackend } from './wasm-backend.js';
import { blasAvailable, createBlasBackend } from './blas-backend.js';

export type { Backend, BackendName } from './backend.js';
export type { RowKernels } from './kernels.js';
export { jsRowKernels, rowKernelsOf, ropeTables } from './kernels.js';
export type { WasmBackend, WasmBackendOptions } from './wasm-backend.js';
export { createWasmBackend } from './wasm-backend.js';
export { createJsBackend } from './js-backend.js';
export type { BlasBackend, BlasBackendOptions } from './blas-backend.js';
export { createBlasBackend, blasAvailable, blasAddonPath } from './blas-backend.js';

export interface CreateBackendOptions {
  /** Threads for the kernels (wasm, blas: default os.availableParallelism(); js: always 1). */
  threads?: number;
}

export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'js', 'blas'];

/** The backend `createBackend()` picks when given no name (see the top of this file). */
export function defaultBackendName(): BackendName {
  const env = process.env.OREAL_BACKEND;
  if (env !== undefined && env !== '') {
    if (!(BACKEND_NAMES as readonly string[]).includes(env)) {
      throw new Error(`OREAL_BACKEND='${env}': expected one of ${BACKEND_NAMES.join(', ')}`);
    }
    return env as BackendName;
  }
  return blasAvailable() ? 'blas' : 'wasm';
}

/** Creates a compute backend: 'wasm' (WebAssembly SIMD), 'blas' (OpenBLAS addon) or 'js' (plain-JS reference). */
export function createBackend(name: BackendName = defaultBackendName(), opts: CreateBackendOptions = {}): Backend {
  switch (name) {
    case 'wasm':
      return createWasmBackend({ threads: opts.threads ?? os.availableParallelism() });
    case 'js':
      return createJsBackend();
    case 'blas':
      return createBlasBackend({ threads: opts.threads ?? os.availableParallelism() });
    default: {
      const bad: never = name;
      throw new Error(`unknown backend '${String(bad)}' (expected one of: ${BACKEND_NAMES.join(', ')})`);
    }
  }
}
