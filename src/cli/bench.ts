// `oreal bench …`: speed benchmarks that print numbers (never pass/fail). Each benchmark is a sub-command of `bench`;
// add one with `bench.command('name')` inside registerBench.
import { Command, InvalidArgumentError } from 'commander';
import { openBackend, BACKEND_NAMES, type Backend, type BackendName } from '../engine/index.js';
import { registerBenchStep } from './bench-step.js';
import { registerBenchDecode } from './bench-decode.js';
import { backendName, positiveInt, positiveNumber } from './option-parsers.js';

export interface GemmBenchResult {
  backend: string;
  threads: number;
  /** The device (a GPU adapter's name) when the backend is not this CPU. */
  device?: string;
  /** GFLOP/s (2·M·N·K flops per product) by square size M = N = K. */
  gflops: Record<string, number>;
}

export interface GemmBenchOptions {
  sizes?: number[];
  /** Minimum timed repetitions per size (more for small sizes, up to `minSeconds`). */
  reps?: number;
  /** Keep timing a size until this many seconds have passed (default 0.5). */
  minSeconds?: number;
  transA?: boolean;
  transB?: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Times square GEMMs (the matmul op) on `backend` and returns median GFLOP/s per size. Each timed sample enqueues
 * `perSync` products and waits for the backend (`sync`), so a device backend is timed to completion; on a device the
 * count is chosen from the warm-up so that one sample's submit-and-wait latency does not dominate small sizes.
 */
export async function benchGemm(backend: Backend, opts: GemmBenchOptions = {}): Promise<GemmBenchResult> {
  const sizes = opts.sizes ?? [256, 512, 1024];
  const minReps = opts.reps ?? 5;
  const minSeconds = opts.minSeconds ?? 0.5;
  const gflops: Record<string, number> = {};
  for (const n of sizes) {
    const host = new Float32Array(n * n);
    const A = backend.empty([n, n]);
    const B = backend.empty([n, n]);
    const C = backend.empty([n, n]);
    for (let i = 0; i < n * n; i++) host[i] = Math.random() - 0.5;
    backend.write(A, host);
    for (let i = 0; i < n * n; i++) host[i] = Math.random() - 0.5;
    backend.write(B, host);
    let perSync = 1;
    const run = async (): Promise<number> => {
      const t0 = process.hrtime.bigint();
      for (let r = 0; r < perSync; r++) backend.matmul(A, B, C, n, n, n, opts.transA ?? false, opts.transB ?? false, false);
      await backend.sync();
      return Number(process.hrtime.bigint() - t0) / 1e9 / perSync;
    };
    // Warm-up (compiles a device's kernels): at least two runs and ~10% of the timing budget.
    let warm = 0;
    let last = 0;
    for (let i = 0; i < 2 || warm < minSeconds / 10; i++) warm += last = await run();
    if (backend.device !== undefined) perSync = Math.max(1, Math.min(20, Math.round(0.05 / Math.max(last, 1e-9))));
    const times: number[] = [];
    let total = 0;
    while (times.length < minReps || (total < minSeconds && times.length < 1000)) {
      const t = await run();
      times.push(t);
      total += t * perSync;
    }
    gflops[String(n)] = Math.round(((2 * n * n * n) / median(times) / 1e9) * 100) / 100;
    backend.free(C);
    backend.free(B);
    backend.free(A);
  }
  return { backend: backend.name, threads: backend.threads, ...(backend.device !== undefined ? { device: backend.device } : {}), gflops };
}

function parseSizes(v: string): number[] {
  return v.split(',').map((s) => positiveInt(s.trim()));
}

/** Adds `bench` and its sub-commands to the program. */
export function registerBench(program: Command): Command {
  const bench = program.command('bench').description('speed benchmarks (print numbers; timings on a busy machine are noisy)');
  bench
    .command('gemm')
    .description('GFLOP/s of square float32 GEMM (C = A·B) at M = N = K = 256, 512, 1024; median of timed runs after warm-up (WebGPU kernel variants and other shapes: node dist/bench/webgpu-gemm.js)')
    .option('--backend <name>', `compute backend: ${BACKEND_NAMES.join(' | ')}`, backendName, 'wasm' as BackendName)
    .option('--threads <n>', 'threads (default: all available cores)', positiveInt)
    .option('--sizes <list>', 'comma-separated sizes', parseSizes)
    .option('--seconds <s>', 'minimum timed seconds per size', positiveNumber)
    .option('--trans <ab>', 'transposes: nn, nt, tn or tt', 'nn')
    .option('--json', 'print one JSON object: {"backend","threads","device" (a GPU adapter),"gflops":{"256":x,…}}')
    .action(
      async (o: { backend: BackendName; threads?: number; sizes?: number[]; seconds?: number; trans: string; json?: boolean }) => {
        if (!/^[nt]{2}$/.test(o.trans)) throw new InvalidArgumentError(`--trans: expected nn, nt, tn or tt, got ${o.trans}`);
        const backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
        try {
          const sizes = o.sizes ?? (o.backend === 'js' ? [256, 512] : [256, 512, 1024]);
          const res = await benchGemm(backend, {
            sizes,
            ...(o.seconds !== undefined ? { minSeconds: o.seconds } : {}),
            transA: o.trans[0] === 't',
            transB: o.trans[1] === 't',
          });
          if (o.json) {
            process.stdout.write(JSON.stringify(res) + '\n');
          } else {
            process.stdout.write(`gemm (${o.trans}) backend=${res.backend} threads=${res.threads}${res.device !== undefined ? ` device=${res.device}` : ''}\n`);
            for (const [n, g] of Object.entries(res.gflops)) process.stdout.write(`  ${n.padStart(5)}: ${g.toFixed(1)} GFLOP/s\n`);
          }
        } finally {
          backend.dispose();
        }
      },
    );
  registerBenchStep(bench);
  registerBenchDecode(bench);
  return bench;
}
