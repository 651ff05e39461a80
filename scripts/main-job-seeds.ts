// Runs the main job (`oreal start`'s config) for several algorithms and seeds with the same budget, and prints the
// held-out pass@1 table (mean ± std over seeds, Markdown) for the README.
//
// Usage: node dist/scripts/main-job-seeds.js [--algorithms oreal,grpo,rft] [--seeds 0,1,2] [--out runs/seeds]
//          [--config configs/main-job.yaml] [--set key=value ...] [--jobs N] [--table-only]
//
//   --algorithms  each run gets `--set algorithm=A` (the presets decide the rest: oreal trains the token-level RM,
//                 grpo and rft do not; every other key, steps and rollouts included, is the config's)
//   --jobs N      runs N jobs at once, each as a child process (default 1: one after another, every core for each
//                 run, so the wall times are those of `npm start`; with N > 1 give `--set threads=1` and read the
//                 wall times as those of a busier machine)
//   --table-only  build the table from the summary.json files already under --out
//
// A run whose summary.json exists under OUT/ALGO-seedS is not run again, so an interrupted sweep continues where it
// stopped. Writes OUT/results.json and OUT/table.md.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatDuration } from '../src/main-job/progress.js';
import { DEFAULT_MAIN_JOB_CONFIG, runMainJob, type MainJobSummary } from '../src/main-job/run.js';
import { markdownTable, type AlgorithmRuns } from '../src/main-job/stats.js';

interface Args {
  algorithms: string[];
  seeds: number[];
  out: string;
  config: string;
  sets: string[];
  jobs: number;
  tableOnly: boolean;
  /** Internal: run exactly this one job in this process (used by --jobs). */
  one: { algorithm: string; seed: number } | null;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    algorithms: ['oreal', 'grpo', 'rft'],
    seeds: [0, 1, 2],
    out: path.join('runs', 'seeds'),
    config: DEFAULT_MAIN_JOB_CONFIG,
    sets: [],
    jobs: 1,
    tableOnly: false,
    one: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--algorithms') a.algorithms = v().split(',').filter((s) => s !== '');
    else if (k === '--seeds') a.seeds = v().split(',').filter((s) => s !== '').map(Number);
    else if (k === '--out') a.out = v();
    else if (k === '--config') a.config = v();
    else if (k === '--set') a.sets.push(v());
    else if (k === '--jobs') a.jobs = Number(v());
    else if (k === '--table-only') a.tableOnly = true;
    else if (k === '--one') {
      const [alg, seed] = v().split(':');
      a.one = { algorithm: alg!, seed: Number(seed) };
    } else throw new Error(`unknown argument ${k}`);
  }
  if (a.seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error('--seeds: non-negative integers, comma-separated');
  if (!Number.isInteger(a.jobs) || a.jobs < 1) throw new Error('--jobs: a positive integer');
  return a;
}

function runDirOf(a: Args, algorithm: string, seed: number): string {
  return path.join(a.out, `${algorithm}-seed${seed}`);
}

function readSummary(dir: string): MainJobSummary | null {
  const f = path.join(dir, 'summary.json');
  if (!fs.existsSync(f)) return null;
  return JSON.parse(fs.readFileSync(f, 'utf8')) as MainJobSummary;
}

/** One job in this process. */
async function runOne(a: Args, algorithm: string, seed: number): Promise<MainJobSummary> {
  const dir = runDirOf(a, algorithm, seed);
  const done = readSummary(dir);
  if (done !== null) return done;
  // A run that died half-way leaves state/ behind: start it over.
  if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
  const res = await runMainJob({ config: a.config, sets: [...a.sets, `algorithm=${algorithm}`], seed, outDir: dir });
  return res.summary;
}

/** One job as a child process running this script with --one. */
function runChild(a: Args, algorithm: string, seed: number): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const args = [self, '--one', `${algorithm}:${seed}`, '--out', a.out, '--config', a.config, ...a.sets.flatMap((s) => ['--set', s])];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${algorithm} seed ${seed}: exit ${code}`))));
  });
}

function line(s: MainJobSummary): string {
  const p = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
  return (
    `${s.algorithm} seed ${s.seed}: pass@1 ${p(s.before.pass_at_1)} → ${p(s.after?.pass_at_1)}, ` +
    `greedy ${p(s.before.greedy)} → ${p(s.after?.greedy)}, ${s.steps} steps, ${formatDuration(s.wall_s)}`
  );
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.one !== null) {
    const s = await runOne(a, a.one.algorithm, a.one.seed);
    process.stdout.write(`${line(s)}\n`);
    return;
  }
  fs.mkdirSync(a.out, { recursive: true });
  const jobs = a.algorithms.flatMap((alg) => a.seeds.map((seed) => ({ alg, seed })));
  if (!a.tableOnly) {
    const t0 = Date.now();
    const queue = [...jobs];
    const worker = async (): Promise<void> => {
      for (let j = queue.shift(); j !== undefined; j = queue.shift()) {
        process.stderr.write(`[${formatDuration((Date.now() - t0) / 1000)}] ${j.alg} seed ${j.seed}: running (${runDirOf(a, j.alg, j.seed)})\n`);
        if (a.jobs === 1) process.stdout.write(`${line(await runOne(a, j.alg, j.seed))}\n`);
        else await runChild(a, j.alg, j.seed);
      }
    };
    await Promise.all(Array.from({ length: Math.min(a.jobs, jobs.length) }, () => worker()));
  }
  const rows: AlgorithmRuns[] = [];
  const results: Record<string, MainJobSummary[]> = {};
  for (const alg of a.algorithms) {
    const runs = a.seeds.map((seed) => readSummary(runDirOf(a, alg, seed))).filter((s): s is MainJobSummary => s !== null && s.after !== null);
    results[alg] = runs;
    if (runs.length === 0) continue;
    rows.push({
      algorithm: alg,
      seeds: runs.map((r) => r.seed),
      before: runs.map((r) => r.before.pass_at_1 ?? NaN),
      after: runs.map((r) => r.after!.pass_at_1 ?? NaN),
      greedyBefore: runs.map((r) => r.before.greedy ?? NaN),
      greedyAfter: runs.map((r) => r.after!.greedy ?? NaN),
      wall: runs.map((r) => r.wall_s),
    });
  }
  const table = markdownTable(rows);
  fs.writeFileSync(path.join(a.out, 'table.md'), table + '\n');
  fs.writeFileSync(path.join(a.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`\n${table}\n\n(${path.join(a.out, 'table.md')}, ${path.join(a.out, 'results.json')})\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}
