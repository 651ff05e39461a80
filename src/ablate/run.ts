// `oreal ablate`: arms × seeds of the same job (src/main-job/run.ts) and the table that compares them (issue 15).
//
//   for each seed: evaluate the starting policy once (held-out pass@1; every arm of the seed shares it, as each
//                  run's own before-evaluation would give the same numbers)
//   for each arm × seed: the job with the arm's overrides (src/ablate/arms.ts) → OUT/ARM-seedS/ (summary.json,
//                  metrics.jsonl, …); a run whose summary.json exists is not run again
//   table: per arm, mean ± standard error over seeds of held-out pass@1 gain (after − before), wall time, the RM's
//          online AUC (mean over steps of metrics.jsonl's rm_auc) and, on a task with a step checker, the share of
//          the negatives' token weight on or after the first wrong step (mean of neg_weight_on_error)
//
// Budgets. Equal rollouts (default): every arm runs the config's total_steps with the same prompts and samples per
// step. Equal wall clock (`budgetMinutes`): each arm gets total_steps = ⌊budget / its mean training seconds per
// step⌋, the step cost measured by all the equal-rollouts runs of the arm in the same OUT (so those come first); its runs go to
// OUT/budget-Mmin/ARM-seedS/ and its learning-rate schedule spans its own steps.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readMetricsFile, type EvalMetrics, type StepMetrics } from '../train/metrics.js';
import { Trainer } from '../train/trainer.js';
import { loadMainJobConfig, runMainJob, type MainJobSummary } from '../main-job/run.js';
import { markdownGrid, meanStd, standardError } from '../main-job/stats.js';
import type { RolloutBackend } from '../sample/types.js';
import { differingKeys, selectArms, type Arm } from './arms.js';

export interface AblationOptions {
  config: string;
  /** The user's `key=value` overrides (before each arm's own). */
  sets: readonly string[];
  arms: readonly string[];
  seeds: readonly number[];
  out: string;
  /** Equal-wall-clock mode: minutes of training per run (see the file header); null = equal rollouts. */
  budgetMinutes: number | null;
  /** Runs at once, each in a child process (`childArgs` builds its command line); 1 = in this process. */
  jobs: number;
  /** Command line (after the node executable) that runs one arm × seed in a child; required with jobs > 1. */
  childArgs?: (arm: string, seed: number) => string[];
  /** Progress lines (default: none). */
  onLog?: (line: string) => void;
  /** Only build the table from the runs already under `out`. */
  tableOnly?: boolean;
  /** A stand-in rollout engine for every run and evaluation (tests; in-process runs only). */
  rollout?: RolloutBackend;
}

/** One run's numbers, as the table reads them. */
export interface AblationRun {
  arm: string;
  seed: number;
  steps: number;
  rollouts_per_step: number;
  /** Held-out sampled pass@1 before and after, and after − before (fractions). */
  before: number;
  after: number;
  gain: number;
  /** Seconds: the run (training and after-evaluation; the shared before-evaluation excluded) and its training alone. */
  wall_s: number;
  train_s: number;
  /** Mean over steps of metrics.jsonl's rm_auc (null without the RM). */
  rm_auc: number | null;
  /** Mean over steps of neg_weight_on_error (null on a task without a step checker). */
  neg_weight_on_error: number | null;
  run_dir: string;
}

export interface Stat {
  mean: number;
  se: number;
  n: number;
}

export interface AblationRow {
  arm: string;
  seeds: number[];
  steps: number;
  gain: Stat;
  before: Stat;
  after: Stat;
  wall_min: Stat;
  rm_auc: Stat | null;
  neg_weight_on_error: Stat | null;
}

export interface AblationResult {
  mode: 'equal-rollouts' | 'equal-wall-clock';
  budget_minutes: number | null;
  rows: AblationRow[];
  runs: AblationRun[];
  /** Resolved config keys whose values differ between the arms (key → arm → value). */
  differing_keys: Record<string, Record<string, unknown>>;
}

function stat(xs: readonly number[]): Stat {
  const m = meanStd(xs);
  return { mean: m.mean, se: standardError(m), n: m.n };
}

function meanOf(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The numbers of one finished run directory (summary.json + metrics.jsonl); null when it has not finished. */
export function readAblationRun(arm: string, seed: number, dir: string): AblationRun | null {
  const f = path.join(dir, 'summary.json');
  if (!fs.existsSync(f)) return null;
  const s = JSON.parse(fs.readFileSync(f, 'utf8')) as MainJobSummary;
  if (s.after === null || s.after.pass_at_1 === null || s.before.pass_at_1 === null) return null;
  const steps = readMetricsFile(path.join(dir, 'metrics.jsonl')).filter((m): m is StepMetrics => m.type === 'train');
  const num = (xs: Array<number | null | undefined>): number[] => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return {
    arm,
    seed,
    steps: s.steps,
    rollouts_per_step: steps[0]?.num_rollouts ?? 0,
    before: s.before.pass_at_1,
    after: s.after.pass_at_1,
    gain: s.after.pass_at_1 - s.before.pass_at_1,
    wall_s: s.wall_s,
    train_s: s.timing.train_s,
    rm_auc: meanOf(num(steps.map((m) => m.rm_auc))),
    neg_weight_on_error: meanOf(num(steps.map((m) => m.neg_weight_on_error))),
    run_dir: dir,
  };
}

/** Per arm: mean ± standard error over its runs. */
export function summarize(runs: readonly AblationRun[], arms: readonly string[]): AblationRow[] {
  const rows: AblationRow[] = [];
  for (const arm of arms) {
    const rs = runs.filter((r) => r.arm === arm);
    if (rs.length === 0) continue;
    const opt = (xs: Array<number | null>): Stat | null => {
      const v = xs.filter((x): x is number => x !== null);
      return v.length === 0 ? null : stat(v);
    };
    rows.push({
      arm,
      seeds: rs.map((r) => r.seed),
      steps: Math.max(...rs.map((r) => r.steps)),
      gain: stat(rs.map((r) => r.gain)),
      before: stat(rs.map((r) => r.before)),
      after: stat(rs.map((r) => r.after)),
      wall_min: stat(rs.map((r) => r.wall_s / 60)),
      rm_auc: opt(rs.map((r) => r.rm_auc)),
      neg_weight_on_error: opt(rs.map((r) => r.neg_weight_on_error)),
    });
  }
  return rows;
}

function cell(s: Stat | null, scale: number, digits: number, signed = false): string {
  if (s === null || s.n === 0) return '-';
  const m = s.mean * scale;
  return `${signed && m >= 0 ? '+' : ''}${m.toFixed(digits)} ± ${(s.se * scale).toFixed(digits)}`;
}

/** The Markdown table (mean ± standard error over seeds). */
export function ablationTable(rows: readonly AblationRow[]): string {
  const head = ['arm', 'seeds', 'steps', 'pass@1 before (%)', 'pass@1 after (%)', 'pass@1 gain (points)', 'wall (min)', 'RM online AUC', 'w⁻ on/after first error'];
  return markdownGrid(
    head,
    rows.map((r) => [
      r.arm,
      String(r.seeds.length),
      String(r.steps),
      cell(r.before, 100, 1),
      cell(r.after, 100, 1),
      cell(r.gain, 100, 1, true),
      cell(r.wall_min, 1, 1),
      cell(r.rm_auc, 1, 2),
      cell(r.neg_weight_on_error, 1, 2),
    ]),
  );
}

/**
 * Each arm's gain minus each `against` arm's, in points: the difference of the means ± the standard errors combined,
 * and, where `runs` has both arms on at least two common seeds, the mean ± standard error of the per-seed differences
 * (the arms of a seed share its before-evaluation and its prompt order, so the paired figure is usually tighter).
 */
export function gainDifferences(rows: readonly AblationRow[], against: readonly string[], runs: readonly AblationRun[] = []): string[] {
  const fmt = (d: number, se: number): string => {
    const z = se > 0 ? d / se : NaN;
    return `${d >= 0 ? '+' : ''}${d.toFixed(1)} ± ${se.toFixed(1)} points (${Number.isFinite(z) ? z.toFixed(1) : '-'} SE)`;
  };
  const gainOf = new Map(runs.map((r) => [`${r.arm}@${r.seed}`, r.gain]));
  const lines: string[] = [];
  for (const b of against) {
    const base = rows.find((r) => r.arm === b);
    if (base === undefined) continue;
    for (const r of rows) {
      if (r.arm === b) continue;
      const d = 100 * (r.gain.mean - base.gain.mean);
      const se = 100 * Math.sqrt(r.gain.se ** 2 + base.gain.se ** 2);
      let line = `${r.arm} − ${b}: ${fmt(d, se)}`;
      const diffs = r.seeds.flatMap((s) => {
        const [x, y] = [gainOf.get(`${r.arm}@${s}`), gainOf.get(`${b}@${s}`)];
        return x !== undefined && y !== undefined ? [100 * (x - y)] : [];
      });
      if (diffs.length >= 2) {
        const p = stat(diffs);
        line += `; paired over ${diffs.length} seeds: ${fmt(p.mean, p.se)}`;
      }
      lines.push(line);
    }
  }
  return lines;
}

function runDir(o: AblationOptions, arm: string, seed: number): string {
  const base = o.budgetMinutes === null ? o.out : path.join(o.out, `budget-${o.budgetMinutes}min`);
  return path.join(base, `${arm}-seed${seed}`);
}

/** The sets of one arm × seed run (user's, arm's, and in budget mode its step count). */
function runSets(o: AblationOptions, arm: Arm, stepsFor: Map<string, number>): string[] {
  const steps = stepsFor.get(arm.name);
  return [...o.sets, ...arm.sets, ...(steps !== undefined ? [`total_steps=${steps}`, `eval_interval=${steps}`] : [])];
}

/** The starting policy's held-out evaluation for `seed`, made once and kept in OUT/before-seedS.json. */
async function beforeEval(o: AblationOptions, seed: number): Promise<EvalMetrics> {
  const file = path.join(o.out, `before-seed${seed}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as EvalMetrics;
  // The evaluation does not depend on the arm: no RM and no checker are needed for it.
  const cfg = loadMainJobConfig(o.config, [...o.sets, 'token_level_rm=false', 'token_weight_source=rm'], seed);
  const dir = path.join(o.out, `before-seed${seed}`);
  const t = await Trainer.create(cfg, { outDir: dir, onLog: () => undefined, ...(o.rollout !== undefined ? { rollout: o.rollout } : {}) });
  let e: EvalMetrics;
  try {
    e = await t.evaluate(0);
  } finally {
    await t.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  writeFileAtomic(file, JSON.stringify(e, null, 2) + '\n');
  return e;
}

/** Training seconds per step of each arm: the mean over all its finished equal-rollouts runs under `out`, whatever their seeds. */
function stepCosts(o: AblationOptions, arms: readonly Arm[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const a of arms) {
    const seeds = fs.existsSync(o.out)
      ? fs.readdirSync(o.out).flatMap((n) => (n.startsWith(`${a.name}-seed`) && /^\d+$/.test(n.slice(a.name.length + 5)) ? [Number(n.slice(a.name.length + 5))] : []))
      : [];
    const per = seeds
      .map((s) => readAblationRun(a.name, s, path.join(o.out, `${a.name}-seed${s}`)))
      .filter((r): r is AblationRun => r !== null && r.steps > 0)
      .map((r) => r.train_s / r.steps);
    if (per.length === 0)
      throw new Error(
        `--budget-minutes: no finished equal-rollouts run of arm ${a.name} under ${o.out} to measure its cost per step; ` +
          `run the ablation without --budget-minutes first (same --out)`,
      );
    out.set(a.name, per.reduce((x, y) => x + y, 0) / per.length);
  }
  return out;
}

/** One arm × seed in this process (skipped when its summary exists). */
export async function runOneArm(o: AblationOptions, armName: string, seed: number): Promise<AblationRun> {
  const [a] = selectArms([armName]);
  const stepsFor = budgetSteps(o, [a!]);
  const dir = runDir(o, a!.name, seed);
  const done = readAblationRun(a!.name, seed, dir);
  if (done !== null) return done;
  if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true }); // a run that died half-way starts over
  const before = await beforeEval(o, seed);
  await runMainJob({ config: o.config, sets: runSets(o, a!, stepsFor), seed, outDir: dir, before, ...(o.rollout !== undefined ? { rollout: o.rollout } : {}) });
  const r = readAblationRun(a!.name, seed, dir);
  if (r === null) throw new Error(`${dir}: the run finished without an after-evaluation`);
  return r;
}

function budgetSteps(o: AblationOptions, arms: readonly Arm[]): Map<string, number> {
  if (o.budgetMinutes === null) return new Map();
  const costs = stepCosts(o, arms);
  return new Map([...costs].map(([arm, c]) => [arm, Math.max(1, Math.floor((o.budgetMinutes! * 60) / c))]));
}

function runChild(o: AblationOptions, arm: string, seed: number): Promise<void> {
  const args = o.childArgs!(arm, seed);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`arm ${arm} seed ${seed}: exit ${code}`))));
  });
}

/** Runs (or reads) every arm × seed, writes OUT/[budget-Mmin/]results.json and table.md, and returns the table. */
export async function runAblation(o: AblationOptions): Promise<AblationResult> {
  const arms = selectArms(o.arms);
  if (o.seeds.length === 0) throw new Error('--seeds: at least one seed');
  if (o.jobs > 1 && (o.childArgs === undefined || o.rollout !== undefined)) throw new Error('ablation: jobs > 1 needs childArgs and the config\'s own rollouts');
  const log = o.onLog ?? (() => undefined);
  const stepsFor = budgetSteps(o, arms);
  // Every arm's resolved config (seed aside): what differs between them is printed with the table.
  const resolved = arms.map((a) => {
    const { seed: _seed, ...config } = loadMainJobConfig(o.config, runSets(o, a, stepsFor), o.seeds[0]);
    return { arm: a.name, config };
  });
  const differing = differingKeys(resolved);
  fs.mkdirSync(o.out, { recursive: true });
  if (!o.tableOnly) {
    // Before-evaluations first (in this process), so parallel children only read them.
    for (const s of o.seeds) await beforeEval(o, s);
    const queue = o.seeds.flatMap((seed) => arms.map((a) => ({ arm: a.name, seed })));
    const t0 = Date.now();
    const worker = async (): Promise<void> => {
      for (let j = queue.shift(); j !== undefined; j = queue.shift()) {
        log(`[${((Date.now() - t0) / 60000).toFixed(1)} min] ${j.arm} seed ${j.seed}: ${runDir(o, j.arm, j.seed)}`);
        if (o.jobs === 1) await runOneArm(o, j.arm, j.seed);
        else await runChild(o, j.arm, j.seed);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.jobs, queue.length) }, () => worker()));
  }
  const runs = arms.flatMap((a) => o.seeds.map((s) => readAblationRun(a.name, s, runDir(o, a.name, s)))).filter((r): r is AblationRun => r !== null);
  const result: AblationResult = {
    mode: o.budgetMinutes === null ? 'equal-rollouts' : 'equal-wall-clock',
    budget_minutes: o.budgetMinutes,
    rows: summarize(runs, arms.map((a) => a.name)),
    runs,
    differing_keys: differing,
  };
  const dir = o.budgetMinutes === null ? o.out : path.join(o.out, `budget-${o.budgetMinutes}min`);
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'results.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileAtomic(path.join(dir, 'table.md'), ablationTable(result.rows) + '\n');
  return result;
}
