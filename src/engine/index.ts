// Engine selection: the one place where backends are named. `createBackend()` gives the default backend; model code
// only sees the `Backend` contract (src/engine/backend.ts).
//
// Default (createBackend() with no name): $OREAL_BACKEND when set; otherwise 'blas' when the OpenBLAS addon is built
// (build/Release/oreal_blas.node, made by `npm install` / `npm run build:native` when libopenblas-dev is installed),
// else 'wasm' (WebAssembly SIMD, always available). An explicit name is always honoured; 'blas' without the addon
// throws an error that says how to build it.
//
// Adding a backend: implement `Backend` (its own folder under src/engine/), then add one entry to BACKENDS below;
// every `--backend` option and the `backend` config key list the names from here. A backend whose device is opened
// asynchronously (webgpu) has `open` instead of `create`: callers use `openBackend`, which takes either.
import os from 'node:os';
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu-backend.js';
import { createJsBackend } from './js-backend.js';
import { createWasmBackend } from './wasm-backend.js';
import { blasAvailable, createBlasBackend } from './blas-backend.js';
import { WebGpuBackend } from './webgpu/ops.js';

export type { Backend, AttentionDims, AdamWHyper } from './backend.js';
export type { DType, DeviceTensor, F32, I32, HostArray } from './tensor.js';
export { CpuBackend, CpuTensor, hostView } from './cpu-backend.js';
export type { RowKernels, HostKernels } from './kernels.js';
export { jsRowKernels, rowKernelsOf, ropeTables } from './kernels.js';
export type { WasmBackend, WasmBackendOptions } from './wasm-backend.js';
export { createWasmBackend } from './wasm-backend.js';
export { createJsBackend, createJsKernels } from './js-backend.js';
export type { BlasBackend, BlasBackendOptions } from './blas-backend.js';
export { createBlasBackend, blasAvailable, blasAddonPath } from './blas-backend.js';

export interface CreateBackendOptions {
  /** Threads for the kernels (wasm, blas: default os.availableParallelism(); js: always 1). */
  threads?: number;
}

interface BackendEntry {
  /** One line for help texts. */
  describe: string;
  /** A backend ready at once (the CPU backends). */
  create?(opts: CreateBackendOptions): Backend;
  /** A backend whose device must be opened first (webgpu). */
  open?(opts: CreateBackendOptions): Promise<Backend>;
}

/** Every backend, by name; the order is the order of help texts. */
const BACKENDS = {
  wasm: {
    describe: 'WebAssembly SIMD (always available)',
    create: (o) => new CpuBackend(createWasmBackend({ threads: o.threads ?? os.availableParallelism() })),
  },
  js: { describe: 'plain JavaScript (the reference; slow)', create: () => createJsBackend() },
  blas: {
    describe: 'OpenBLAS addon (when built)',
    create: (o) => new CpuBackend(createBlasBackend({ threads: o.threads ?? os.availableParallelism() })),
  },
  webgpu: {
    describe: 'WebGPU through Dawn (a GPU, or lavapipe on a CPU; first-version kernels)',
    open: () => WebGpuBackend.open(),
  },
} satisfies Record<string, BackendEntry>;

export type BackendName = keyof typeof BACKENDS;

/** Every backend name (a non-empty tuple, so `z.enum(BACKEND_NAMES)` and commander's `.choices` take it as is). */
export const BACKEND_NAMES = Object.keys(BACKENDS) as [BackendName, ...BackendName[]];

/** Whether `name` names a backend (for option and config parsers). */
export function isBackendName(name: string): name is BackendName {
  return Object.prototype.hasOwnProperty.call(BACKENDS, name);
}

/** The backend `createBackend()` picks when given no name (see the top of this file). */
export function defaultBackendName(): BackendName {
  const env = process.env.OREAL_BACKEND;
  if (env !== undefined && env !== '') {
    if (!isBackendName(env)) throw new Error(`OREAL_BACKEND='${env}': expected one of ${BACKEND_NAMES.join(', ')}`);
    return env;
  }
  return blasAvailable() ? 'blas' : 'wasm';
}

/**
 * Creates a compute backend that is ready at once, by name (default: `defaultBackendName()`). A backend that opens a
 * device (webgpu) is refused here: use `openBackend`.
 */
export function createBackend(name: BackendName = defaultBackendName(), opts: CreateBackendOptions = {}): Backend {
  const e = entryOf(name);
  if (e.create === undefined) throw new Error(`the ${name} backend opens its device asynchronously: use openBackend('${name}')`);
  return e.create(opts);
}

/** Creates or opens any compute backend by name (default: `defaultBackendName()`). */
export async function openBackend(name: BackendName = defaultBackendName(), opts: CreateBackendOptions = {}): Promise<Backend> {
  const e = entryOf(name);
  return e.open !== undefined ? e.open(opts) : e.create!(opts);
}

function entryOf(name: string): BackendEntry {
  if (!isBackendName(name)) throw new Error(`unknown backend '${String(name)}' (expected one of: ${BACKEND_NAMES.join(', ')})`);
  return BACKENDS[name] as BackendEntry;
}
