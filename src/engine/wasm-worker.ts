// Worker thread of the wasm backend: instantiates the kernels on the backend's shared memory and runs the job parts the
// main thread posts in the control block (see the protocol in wasm-protocol.ts and wasm-tiles.ts). Not a public module.
import { workerData } from 'node:worker_threads';
import { CTRL, JOB_INTS, OP_SGEMM, OP_SGEMM_SMALL, OP_STOP, OP_TILES, jobBase, WA, type WorkerInit } from './wasm-protocol.js';
import { claimTiles, type TileExports } from './wasm-tiles.js';

const init = workerData as WorkerInit;
const instance = new WA.Instance(init.module, { env: { memory: init.memory } });
const ex = instance.exports as unknown as TileExports;
const sgemm = ex.sgemm;
const sgemmSmall = ex.sgemm_small;
const ctrl = new Int32Array(init.memory.buffer, init.ctrlOffset, CTRL.INTS);
const ctrlF32 = new Float32Array(init.memory.buffer, init.ctrlOffset, CTRL.INTS);
const slot = CTRL.SEQ0 + init.index;
const base = jobBase(init.index);
const spin = init.spin;
const args: number[] = new Array<number>(JOB_INTS - 1).fill(0);

Atomics.add(ctrl, CTRL.READY, 1);
Atomics.notify(ctrl, CTRL.READY);

let seq = 0;
for (;;) {
  let n = 0;
  while (Atomics.load(ctrl, slot) === seq) {
    if (n < spin) n++;
    else Atomics.wait(ctrl, slot, seq);
  }
  seq = Atomics.load(ctrl, slot);
  const op = ctrl[base]!;
  if (op === OP_STOP) break;
  if (op === OP_TILES) {
    // Tile jobs count finished tiles, not workers: nothing to report when none was left to claim.
    claimTiles(ex, ctrl, ctrlF32, init.workOffset);
    continue;
  }
  try {
    if (op === OP_SGEMM || op === OP_SGEMM_SMALL) {
      for (let i = 0; i < args.length; i++) args[i] = ctrl[base + 1 + i]!;
      (op === OP_SGEMM ? sgemm : sgemmSmall)(...args);
    }
  } catch {
    Atomics.store(ctrl, CTRL.ERROR, 1);
  }
  Atomics.add(ctrl, CTRL.DONE, 1);
  Atomics.notify(ctrl, CTRL.DONE);
}
