// f32 GEMM throughput of the WebGPU kernel (src/engine/webgpu/gemm.ts) on the adapter Dawn finds, for square sizes:
// `reps` GEMMs are encoded into one submit and timed to completion, several rounds; prints the median per size and
// the adapter's name. bench/gpu_anchor.py runs the same sizes in PyTorch for a ratio measured in the same call.
//
//   node dist/bench/webgpu-gemm.js [--sizes 1024,2048,4096] [--shapes MxNxK[:ab],...] [--reps 10] [--rounds 5] [--json]
//        [--variants bk16,bk8,bk32,bk16v,bk16u,bk16:off,bk16:4,bk16@128x64/8x4,bk32@64x64/4x4]
//
// A variant is the K slice depth; a v to read aligned operands as vec4; a u to unroll the loop over the K slice; after
// @ the workgroup tile and each thread's share of it (default 128x128/8x8); after a colon the split-K mode (auto by
// default; off; or a number of K slices). A variant this adapter cannot run (threads or workgroup memory) is reported
// and skipped. --shapes adds GEMMs of other shapes, e.g. 896x896x8192:tn (a 0.5B projection's weight gradient over
// 8×1024 tokens: C = Aᵀ·B) or 64x896x4864:nt (a batch-64 decode step's MLP down projection); square sizes time both nn
// and nt.
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { DEFAULT_GEMM_VARIANT, WebGpuGemm, tileProblem, type GemmVariant } from '../src/engine/webgpu/gemm.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

interface Shape {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}
const shapes: Shape[] = [];
for (const n of arg('sizes', '1024,2048,4096').split(',').filter((x) => x !== '').map(Number))
  for (const transB of [false, true]) shapes.push({ M: n, N: n, K: n, transA: false, transB });
for (const s of arg('shapes', '').split(',').filter((x) => x !== '')) {
  const m = /^(\d+)x(\d+)x(\d+)(?::([nt])([nt]))?$/.exec(s);
  if (m === null) throw new Error(`--shapes: '${s}' is not MxNxK with an optional :nn|nt|tn|tt`);
  shapes.push({ M: Number(m[1]), N: Number(m[2]), K: Number(m[3]), transA: m[4] === 't', transB: m[5] === 't' });
}
const reps = Number(arg('reps', '10'));
const rounds = Number(arg('rounds', '5'));
const json = process.argv.includes('--json');
const variants = arg('variants', 'bk16').split(',').map((v): { name: string; variant: GemmVariant } => {
  const m = /^bk(8|16|32)(v?)(u?)(?:@(\d+)x(\d+)\/([48])x([48]))?(?::(auto|off|\d+))?$/.exec(v);
  if (m === null) throw new Error(`--variants: '${v}' is not bk8|bk16|bk32, optional v and u, @BMxBN/TMxTN and :auto|:off|:N`);
  const split = m[8] === undefined || m[8] === 'auto' ? 'auto' : m[8] === 'off' ? 'off' : Number(m[8]);
  const tile = m[4] === undefined ? DEFAULT_GEMM_VARIANT.tile : { bm: Number(m[4]), bn: Number(m[5]), tm: Number(m[6]) as 4 | 8, tn: Number(m[7]) as 4 | 8 };
  return { name: v, variant: { bk: Number(m[1]) as GemmVariant['bk'], tile, vec4Loads: m[2] === 'v' ? 'auto' : 'off', unrollK: m[3] === 'u', splitK: split } };
});
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dev = await WebGpuDevice.open();
const results: Array<{ variant: string; M: number; N: number; K: number; trans: string; split: number; median_ms: number; tflops: number }> = [];
for (const { name, variant } of variants) {
  const problem = tileProblem(variant.tile, variant.bk, dev.limits);
  if (problem !== null) {
    process.stderr.write(`[${name}] skipped: ${problem}\n`);
    continue;
  }
  const gemm = new WebGpuGemm(dev, variant);
  for (const { M, N, K, transA, transB } of shapes) {
    const fill = (n: number): Float32Array => new Float32Array(n).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const A = dev.createBuffer(M * K, fill(M * K));
    const B = dev.createBuffer(K * N, fill(K * N));
    const C = dev.createBuffer(M * N);
    const run = async (): Promise<number> => {
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) gemm.encode({ transA, transB, M, N, K, A, B, C, accumulate: false });
      await dev.sync();
      return (performance.now() - t0) / reps;
    };
    await run(); // compile + warm up
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(await run());
    const ms = median(times);
    const trans = `${transA ? 't' : 'n'}${transB ? 't' : 'n'}`;
    results.push({ variant: name, M, N, K, trans, split: gemm.splitOf(M, N, K).S, median_ms: ms, tflops: (2 * M * N * K) / (ms / 1000) / 1e12 });
    for (const b of [A, B, C]) b.destroy();
  }
}
if (json) process.stdout.write(JSON.stringify({ adapter: dev.adapterName, reps, rounds, results }) + '\n');
else {
  process.stdout.write(`adapter: ${dev.adapterName}\n`);
  for (const r of results)
    process.stdout.write(
      `[${r.variant}] f32 gemm ${r.M}×${r.N}×${r.K} ${r.trans}${r.split > 1 ? ` (K in ${r.split} slices)` : ''}: ${r.median_ms.toFixed(3)} ms, ` +
        `${r.tflops >= 1 ? r.tflops.toFixed(2) + ' TFLOP/s' : (r.tflops * 1000).toFixed(2) + ' GFLOP/s'}\n`,
    );
}
dev.dispose();
