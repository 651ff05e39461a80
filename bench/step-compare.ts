// Training-step time of oreal against PyTorch on the same model shape, measured in the same run: `oreal bench step`
// and scripts/torch_step_bench.py run alternately (each a fresh process) for several rounds; prints both medians (of
// the per-round medians) and their ratio, with the load average before and after.
//
//   node dist/bench/step-compare.js [--rounds 5] [--backend wasm,blas] [--reps 10] [--json]
//        [--layers 4 --hidden 256 --heads 4 --kv-heads 2 --intermediate 1024 --vocab 512 --batch 8 --seq 128]
//
// PyTorch: /usr/bin/python3 with Debian's python3-torch and libopenblas0-pthread (override with $TORCH_PYTHON).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import os from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = resolve(root, 'dist', 'src', 'cli', 'main.js');
const torchScript = resolve(root, 'scripts', 'torch_step_bench.py');

interface Args {
  rounds: number;
  backends: string[];
  reps: number;
  json: boolean;
  shape: Record<string, number>;
}

function parseArgs(argv: string[]): Args {
  const shape: Record<string, number> = {
    layers: 4,
    hidden: 256,
    heads: 4,
    'kv-heads': 2,
    intermediate: 1024,
    vocab: 512,
    batch: 8,
    seq: 128,
  };
  const a: Args = { rounds: 5, backends: ['wasm'], reps: 10, json: false, shape };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`step-compare: ${k} needs a value`);
      return x;
    };
    if (k === '--json') a.json = true;
    else if (k === '--rounds') a.rounds = Number(v());
    else if (k === '--reps') a.reps = Number(v());
    else if (k === '--backend') a.backends = v().split(',');
    else if (k.startsWith('--') && k.slice(2) in shape) shape[k.slice(2)] = Number(v());
    else throw new Error(`step-compare: unknown argument ${k}`);
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface StepJson {
  step_s: number;
  forward_s: number;
  peak_rss_mb: number;
  threads: number;
  blas_core?: string;
}

function runJson(cmd: string, args: string[]): StepJson {
  const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const line = out.trim().split('\n').pop()!;
  return JSON.parse(line) as StepJson;
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  if (!existsSync(cli)) throw new Error(`step-compare: ${cli} missing (run npx tsc -p tsconfig.json first)`);
  const py = process.env.TORCH_PYTHON ?? '/usr/bin/python3';
  const shapeArgs = Object.entries(a.shape).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const common = [...shapeArgs, '--reps', String(a.reps), '--json'];
  const ours: Record<string, StepJson[]> = Object.fromEntries(a.backends.map((b) => [b, []]));
  const torch: StepJson[] = [];
  const load0 = os.loadavg();
  for (let r = 0; r < a.rounds; r++) {
    // Alternate the order every round so that neither side always runs right after the other.
    const order = r % 2 === 0 ? ['torch', ...a.backends] : [...a.backends, 'torch'];
    for (const who of order) {
      const res =
        who === 'torch'
          ? runJson(py, [torchScript, ...common])
          : runJson(process.execPath, [cli, 'bench', 'step', '--backend', who, ...common]);
      (who === 'torch' ? torch : ours[who]!).push(res);
      if (!a.json) process.stderr.write(`round ${r + 1} ${who}: ${res.step_s.toFixed(4)} s (fwd ${res.forward_s.toFixed(4)})\n`);
    }
  }
  const load1 = os.loadavg();
  const tMed = median(torch.map((x) => x.step_s));
  const tFwd = median(torch.map((x) => x.forward_s));
  const result = {
    shape: a.shape,
    rounds: a.rounds,
    torch: { step_s: tMed, forward_s: tFwd, blas_core: torch[0]?.blas_core, peak_rss_mb: Math.max(...torch.map((x) => x.peak_rss_mb)) },
    ours: Object.fromEntries(
      a.backends.map((b) => {
        const xs = ours[b]!;
        const s = median(xs.map((x) => x.step_s));
        const f = median(xs.map((x) => x.forward_s));
        const perRound = xs.map((x, i) => x.step_s / torch[i]!.step_s);
        return [
          b,
          {
            step_s: s,
            forward_s: f,
            threads: xs[0]?.threads,
            peak_rss_mb: Math.max(...xs.map((x) => x.peak_rss_mb)),
            ratio: Math.round((s / tMed) * 1000) / 1000,
            ratio_median_per_round: Math.round(median(perRound) * 1000) / 1000,
          },
        ];
      }),
    ),
    loadavg_before: load0.map((x) => Math.round(x * 100) / 100),
    loadavg_after: load1.map((x) => Math.round(x * 100) / 100),
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  process.stdout.write(`torch (${result.torch.blas_core}): step ${tMed.toFixed(4)} s, forward ${tFwd.toFixed(4)} s\n`);
  for (const [b, o] of Object.entries(result.ours)) {
    process.stdout.write(
      `oreal ${b} (${o.threads} threads): step ${o.step_s.toFixed(4)} s, forward ${o.forward_s.toFixed(4)} s, ` +
        `× torch ${o.ratio} (median of per-round ratios ${o.ratio_median_per_round}), peak RSS ${o.peak_rss_mb} MiB\n`,
    );
  }
  process.stdout.write(`load average before ${result.loadavg_before.join(' ')}, after ${result.loadavg_after.join(' ')}\n`);
}

main();
