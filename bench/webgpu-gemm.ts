// f32 GEMM throughput of the WebGPU kernel (src/engine/webgpu/gemm.ts) on the adapter Dawn finds, for square sizes:
// `reps` GEMMs are encoded into one submit and timed to completion, several rounds; prints the median per size and
// the adapter's name. bench/gpu_anchor.py runs the same sizes in PyTorch for a ratio measured in the same call.
//
//   node dist/bench/webgpu-gemm.js [--sizes 1024,2048,4096] [--reps 10] [--rounds 5] [--json]
//        [--variants bk16,bk8,bk32,bk16v,bk32v]   (K slice depth; a trailing v reads aligned operands as vec4)
import { WebGpuDevice } from '../src/engine/webgpu/device.js';
import { WebGpuGemm, type GemmVariant } from '../src/engine/webgpu/gemm.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

const sizes = arg('sizes', '1024,2048,4096').split(',').map(Number);
const reps = Number(arg('reps', '10'));
const rounds = Number(arg('rounds', '5'));
const json = process.argv.includes('--json');
const variants = arg('variants', 'bk16').split(',').map((v): { name: string; variant: GemmVariant } => {
  const m = /^bk(8|16|32)(v?)$/.exec(v);
  if (m === null) throw new Error(`--variants: '${v}' is not bk8|bk16|bk32 with an optional trailing v`);
  return { name: v, variant: { bk: Number(m[1]) as GemmVariant['bk'], vec4Loads: m[2] === 'v' ? 'auto' : 'off' } };
});
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dev = await WebGpuDevice.open();
const results: Array<{ variant: string; size: number; transB: boolean; median_ms: number; tflops: number }> = [];
for (const { name, variant } of variants) {
 const gemm = new WebGpuGemm(dev, variant);
 for (const n of sizes) {
  for (const transB of [false, true]) {
    const data = new Float32Array(n * n).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const A = dev.createBuffer(n * n, data);
    const B = dev.createBuffer(n * n, data);
    const C = dev.createBuffer(n * n);
    const run = async (): Promise<number> => {
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) gemm.encode({ transA: false, transB, M: n, N: n, K: n, A, B, C, accumulate: false });
      await dev.sync();
      return (performance.now() - t0) / reps;
    };
    await run(); // compile + warm up
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(await run());
    const ms = median(times);
    results.push({ variant: name, size: n, transB, median_ms: ms, tflops: (2 * n ** 3) / (ms / 1000) / 1e12 });
    for (const b of [A, B, C]) b.destroy();
  }
 }
}
if (json) process.stdout.write(JSON.stringify({ adapter: dev.adapterName, reps, rounds, results }) + '\n');
else {
  process.stdout.write(`adapter: ${dev.adapterName}\n`);
  for (const r of results) process.stdout.write(`[${r.variant}] f32 gemm ${r.size}³${r.transB ? ' (B transposed)' : ''}: ${r.median_ms.toFixed(3)} ms, ${r.tflops >= 1 ? r.tflops.toFixed(2) + " TFLOP/s" : (r.tflops * 1000).toFixed(2) + " GFLOP/s"}\n`);
}
dev.dispose();
