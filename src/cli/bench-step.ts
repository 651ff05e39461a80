// `oreal bench step`: seconds per training step (forward + backward of the mean next-token cross-entropy) of a
// random Qwen2 model, the number to compare with PyTorch (scripts/torch_step_bench.py, bench/step-compare.ts).
import { Command, InvalidArgumentError } from 'commander';
import { openBackend, BACKEND_NAMES, type Backend, type BackendName } from '../engine/index.js';
import { Qwen2Model, crossEntropyLoss, type Qwen2Config } from '../model/qwen2.js';
import { backendName, nonNegInt, positiveInt } from './option-parsers.js';

export interface StepBenchOptions {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  batch: number;
  seq: number;
  /** Untimed steps first (default 2). */
  warmup?: number;
  /** Timed steps (default 10). */
  reps?: number;
  seed?: number;
}

export interface StepBenchResult {
  /** Median seconds of one forward + backward. */
  step_s: number;
  /** Median seconds of a forward alone (loss only, no activations kept for backward). */
  forward_s: number;
  backend: string;
  threads: number;
  /** Peak resident set size of the process so far (MiB). */
  peak_rss_mb: number;
  /** The last step's loss (≈ ln(vocab) for random weights). */
  loss: number;
  /** Every timed step (s). */
  steps_s: number[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Peak RSS of this process in MiB (getrusage's ru_maxrss). */
export function peakRssMb(): number {
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
}

/** The benchmark's Qwen2 config: q/k/v biases, RoPE θ 1e6, tied embeddings, as Qwen2.5. */
export function benchConfig(o: Pick<StepBenchOptions, 'layers' | 'hidden' | 'heads' | 'kvHeads' | 'intermediate' | 'vocab'>): Qwen2Config {
  return {
    vocabSize: o.vocab,
    hiddenSize: o.hidden,
    intermediateSize: o.intermediate,
    numHiddenLayers: o.layers,
    numAttentionHeads: o.heads,
    numKeyValueHeads: o.kvHeads,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    tieWordEmbeddings: true,
    attentionBias: true,
    head: 'lm',
  };
}

/** Deterministic token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s % vocab;
  }
  return out;
}

/** Times forward+backward steps of a random model on `backend`. */
export async function benchStep(backend: Backend, o: StepBenchOptions): Promise<StepBenchResult> {
  const cfg = benchConfig(o);
  const model = Qwen2Model.random(cfg, backend, o.seed ?? 0, 0.02);
  const ids = randomTokens(o.batch * o.seq, o.vocab, (o.seed ?? 0) + 1);
  const lengths = new Int32Array(o.batch).fill(o.seq);
  const warmup = o.warmup ?? 2;
  const reps = Math.max(1, o.reps ?? 10);
  let loss = Number.NaN;
  const step = async (): Promise<number> => {
    model.zeroGrad(); // outside the timed region (PyTorch's zero_grad(set_to_none=True) costs nothing)
    const t0 = process.hrtime.bigint();
    loss = (await crossEntropyLoss(model, ids, lengths)).loss;
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const fwd = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    await crossEntropyLoss(model, ids, lengths, { backward: false });
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  try {
    for (let i = 0; i < warmup; i++) await step();
    const times: number[] = [];
    const ftimes: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await step());
    for (let i = 0; i < Math.max(1, Math.ceil(reps / 2)); i++) ftimes.push(await fwd());
    return {
      step_s: round(median(times)),
      forward_s: round(median(ftimes)),
      backend: backend.name,
      ...(backend.device !== undefined ? { device: backend.device } : {}),
      threads: backend.threads,
      peak_rss_mb: peakRssMb(),
      loss,
      steps_s: times.map(round),
    };
  } finally {
    model.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}

interface StepCliOptions extends Required<StepBenchOptions> {
  backend?: BackendName;
  threads?: number;
  json?: boolean;
}

/** Adds `step` to the `bench` command. */
export function registerBenchStep(bench: Command): Command {
  return bench
    .command('step')
    .description(
      'seconds per training step (forward + backward of the next-token loss) of a random Qwen2 model; median after warm-up',
    )
    .option('--layers <n>', 'decoder layers', positiveInt, 4)
    .option('--hidden <n>', 'hidden size', positiveInt, 256)
    .option('--heads <n>', 'attention heads', positiveInt, 4)
    .option('--kv-heads <n>', 'key/value heads', positiveInt, 2)
    .option('--intermediate <n>', 'MLP size', positiveInt, 1024)
    .option('--vocab <n>', 'vocabulary size', positiveInt, 512)
    .option('--batch <n>', 'sequences per step', positiveInt, 8)
    .option('--seq <n>', 'tokens per sequence', positiveInt, 128)
    .option('--backend <name>', `compute backend: ${BACKEND_NAMES.join(' | ')} (default: as createBackend())`, backendName)
    .option('--threads <n>', 'threads (default: all available cores)', positiveInt)
    .option('--warmup <n>', 'untimed steps', nonNegInt, 2)
    .option('--reps <n>', 'timed steps', positiveInt, 10)
    .option('--seed <n>', 'weights and tokens seed', nonNegInt, 0)
    .option('--json', 'print one JSON object: {"step_s","forward_s","backend","threads","peak_rss_mb",…}')
    .action(async (o: StepCliOptions) => {
      if (o.hidden % o.heads !== 0) throw new InvalidArgumentError('--hidden must be a multiple of --heads');
      if (o.heads % o.kvHeads !== 0) throw new InvalidArgumentError('--heads must be a multiple of --kv-heads');
      const backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
      try {
        const res = await benchStep(backend, o);
        if (o.json) process.stdout.write(JSON.stringify(res) + '\n');
        else
          process.stdout.write(
            `step backend=${res.backend} threads=${res.threads}: ${res.step_s.toFixed(4)} s/step ` +
              `(forward ${res.forward_s.toFixed(4)} s), peak RSS ${res.peak_rss_mb} MiB, loss ${res.loss.toFixed(5)}\n`,
          );
      } finally {
        backend.dispose();
      }
    });
}
