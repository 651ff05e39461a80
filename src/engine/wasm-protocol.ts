// Control-block layout shared by the wasm backend (main thread) and its workers. Not a public module.
//
// The control block is an Int32Array inside the shared WebAssembly.Memory:
//   DONE   count of workers that finished the current job (the main thread waits on it)
//   ERROR  set to 1 by a worker whose part threw (a wasm trap); the main thread then throws
//   READY  count of workers that have started (instantiated the module); the first threaded call waits for them
//   SEQ0+t job sequence number of worker t: the main thread writes worker t's job, then increments this and notifies;
//          the worker waits on it (spinning `spin` polls first), runs the job, increments DONE and notifies.
//   job(t) op code and integer arguments for worker t.
//   TILE_WORD, TILES_DONE, TJOB: the dynamically scheduled "tile jobs" (op OP_TILES; see wasm-tiles.ts).

export const CTRL = {
  DONE: 0,
  ERROR: 1,
  READY: 2,
  TILE_WORD: 3,
  TILES_DONE: 4,
  SEQ0: 16,
  TJOB: 96,
  JOBS: 256,
  INTS: 256 + 64 * 24,
} as const;

/** Max worker threads (the main thread is thread 0 and not counted here). */
export const MAX_WORKERS = 63;
/** Ints per job: the op code + up to 23 arguments. */
export const JOB_INTS = 24;
export const OP_STOP = -1;
export const OP_SGEMM = 1;
export const OP_SGEMM_SMALL = 2;
/** Claim and run tiles of the job at CTRL.TJOB until none is left (wasm-tiles.ts). */
export const OP_TILES = 3;

export function jobBase(worker: number): number {
  return CTRL.JOBS + worker * JOB_INTS;
}

// The project compiles without the DOM lib, and @types/node 20 does not declare WebAssembly: these are the few
// pieces of the JS WebAssembly API the backend uses, typed locally (no global declarations that could clash).
/** A compiled WebAssembly module (opaque). */
export interface WasmModule {
  readonly __wasmModule?: never;
}
/** A WebAssembly.Memory; the backend's is shared, so `buffer` is a SharedArrayBuffer. */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(deltaPages: number): number;
}
export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => {
    readonly exports: Record<string, unknown>;
  };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
}
export const WA: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface WorkerInit {
  module: WasmModule;
  memory: WasmMemory;
  ctrlOffset: number;
  index: number;
  spin: number;
  /** Byte offset of this worker's private GEMM workspace (for tile jobs). */
  workOffset: number;
}
