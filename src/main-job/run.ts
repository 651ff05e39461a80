// The main job behind `oreal start`: OREAL (token-level RM on by default) on the bundled synthetic arithmetic task,
// starting from the small SFT policy in models/arith-sft.
//
//   load config ─▶ check the starting policy and data ─▶ evaluate before (held-out: sampled pass@1 + greedy)
//     ─▶ OREAL steps (progress: step, reward, pass@1, ETA) ─▶ evaluate after ─▶ summary.json ─▶ report.html
//
// The before and after evaluations are the trainer's own (eval_at_start and the eval after the last step), so they
// use the same held-out problems, sampling settings and verifier as the in-loop ones, and land in metrics.jsonl as
// {"type":"eval","step":0,…} and {"type":"eval","step":total_steps,…}.
//
// Run directory (see src/train/trainer.ts): config.resolved.yaml, metrics.jsonl, trajectories/, checkpoints/step-N/
// {policy,token_rm}, state/, train.log, plus summary.json and report.html written here.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeReport } from '../report/html.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { loadTrainConfig, type TrainConfig } from '../train/config.js';
import type { EvalMetrics, StepMetrics } from '../train/metrics.js';
import { runTraining, type TrainStage } from '../train/trainer.js';
import type { RolloutBackend } from '../sample/types.js';
import { silentProgress, type JobPhase, type ProgressSnapshot, type ProgressView } from './progress.js';

/** The config `oreal start` uses when none is given (relative to the working directory). */
export const DEFAULT_MAIN_JOB_CONFIG = path.join('configs', 'main-job.yaml');

/** How to rebuild the starting policy and the task data when they are missing. */
export const REGENERATE_HINT =
  'Regenerate them with `npm run build && bash scripts/make-starting-policy.sh` ' +
  '(writes models/arith-sft/ and data/arith-*; about 30 minutes on 2 cores).';

/** The starting policy or the task data named by the config is not on disk. */
export class MissingInputError extends Error {
  constructor(
    readonly what: string,
    readonly file: string,
  ) {
    super(`${what} not found: ${file}\n${REGENERATE_HINT}`);
    this.name = 'MissingInputError';
  }
}

export interface EvalScores {
  /** Sampled pass@1: mean fraction of correct samples per problem (eval_samples samples, temperature as trained). */
  pass_at_1: number | null;
  /** Greedy-decoding accuracy. */
  greedy: number | null;
}

/** summary.json. The first four keys are what the report reads; the rest describe the run. */
export interface MainJobSummary {
  before: EvalScores;
  after: EvalScores | null;
  steps: number;
  wall_s: number;
  algorithm: TrainConfig['algorithm'];
  token_level_rm: boolean;
  seed: number;
  total_steps: number;
  /** after − before, in absolute fraction (null when there is no after-evaluation). */
  gain: EvalScores | null;
  eval_problems: number;
  eval_samples: number;
  /** Seconds spent in the before-evaluation, the training steps (without in-loop evals) and the after-evaluation. */
  timing: { before_eval_s: number; train_s: number; after_eval_s: number | null };
  /** True when the run was stopped before its last step (Ctrl-C). */
  interrupted: boolean;
  config: string;
  run_dir: string;
}

export interface MainJobOptions {
  /** Config file (default configs/main-job.yaml). */
  config?: string;
  /** `key=value` overrides, applied in order. */
  sets?: readonly string[];
  /** Shorthand for `--set seed=N` (applied last). */
  seed?: number;
  /** Run directory (default runs/<algorithm>-seed<seed>-<time>). */
  outDir?: string;
  progress?: ProgressView;
  /** The trainer's log lines (they always go to RUN_DIR/train.log as well). Default: dropped. */
  onLog?: (line: string) => void;
  /** Stop after the step in progress. */
  signal?: AbortSignal;
  /** Told the run directory once it is chosen, before training starts (for messages on an early exit). */
  onRunDir?: (runDir: string) => void;
  /**
   * The starting policy's evaluation, already made with this config and seed (the same numbers the run's own
   * before-evaluation would give: `oreal ablate` evaluates once per seed for all its arms); null or absent: evaluate.
   */
  before?: EvalMetrics | null;
  /** A stand-in rollout engine (tests); default: the config's. */
  rollout?: RolloutBackend;
}

export interface MainJobResult {
  runDir: string;
  summary: MainJobSummary;
  summaryFile: string;
  reportFile: string;
  metricsFile: string;
  /** The last HF checkpoint directory (policy/ and token_rm/ inside); null when none was written. */
  checkpointDir: string | null;
}

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '').replace('T', '-');
}

function scores(e: EvalMetrics | undefined): EvalScores | null {
  return e === undefined ? null : { pass_at_1: e.pass1_sampled, greedy: e.greedy_acc };
}

function diff(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : b - a;
}

/** Loads and checks the config: the starting policy and the data files must exist. */
export function loadMainJobConfig(file: string, sets: readonly string[] = [], seed?: number): TrainConfig {
  if (!fs.existsSync(file)) throw new Error(`config not found: ${file}`);
  const all = seed !== undefined ? [...sets, `seed=${seed}`] : [...sets];
  const cfg = loadTrainConfig(file, all);
  if (!fs.existsSync(path.join(cfg.actor, 'config.json'))) throw new MissingInputError('starting policy (actor)', cfg.actor);
  for (const d of cfg.datasets) if (!fs.existsSync(d)) throw new MissingInputError('RL prompt file', d);
  if (cfg.eval_dataset === null) throw new Error(`${file}: the main job needs eval_dataset (the held-out split) for its before/after evaluation`);
  if (!fs.existsSync(cfg.eval_dataset)) throw new MissingInputError('held-out eval file', cfg.eval_dataset);
  // Before and after are always measured; an interval of 0 (no in-loop eval) means "only after the last step".
  return { ...cfg, eval_at_start: true, eval_interval: cfg.eval_interval > 0 ? cfg.eval_interval : cfg.total_steps };
}

/** Runs the main job end to end; see the file header. */
export async function runMainJob(opts: MainJobOptions = {}): Promise<MainJobResult> {
  const t0 = performance.now();
  const configFile = opts.config ?? DEFAULT_MAIN_JOB_CONFIG;
  const given = opts.before ?? null;
  const loaded = loadMainJobConfig(configFile, opts.sets ?? [], opts.seed);
  const cfg = given !== null ? { ...loaded, eval_at_start: false } : loaded;
  const runDir = path.resolve(opts.outDir ?? path.join('runs', `${cfg.algorithm}-seed${cfg.seed}-${stamp()}`));
  if (fs.existsSync(path.join(runDir, 'state')) || fs.existsSync(path.join(runDir, 'summary.json')))
    throw new Error(`${runDir} already holds a run: choose another --out (or resume it with \`oreal train --resume ${runDir}\`)`);
  opts.onRunDir?.(runDir);
  const progress = opts.progress ?? silentProgress;
  const total = cfg.total_steps;
  const isEvalStep = (s: number): boolean => s % cfg.eval_interval === 0 || s === total;

  // Progress state. Step times exclude in-loop evaluations; the ETA adds one evaluation per eval step still ahead.
  const snap: ProgressSnapshot = {
    phase: 'before-eval',
    step: 0,
    totalSteps: total,
    reward: null,
    kept: null,
    pass1: null,
    greedy: null,
    evalStep: null,
    etaS: null,
  };
  const stepTimes = new Map<number, number>();
  let evalSeconds: number | null = null;
  const eta = (): number | null => {
    if (evalSeconds === null) return null;
    let pendingEvals = 0;
    for (let s = snap.step + 1; s <= total; s++) if (isEvalStep(s)) pendingEvals++;
    const times = [...stepTimes.values()];
    if (times.length === 0) return snap.step < total ? null : pendingEvals * evalSeconds;
    const meanStep = times.reduce((a, b) => a + b, 0) / times.length;
    return (total - snap.step) * meanStep + pendingEvals * evalSeconds;
  };
  const show = (phase?: JobPhase): void => {
    if (phase !== undefined) snap.phase = phase;
    snap.etaS = eta();
    progress.update(snap);
  };
  show();

  const onStage = (stage: TrainStage, step: number): void => {
    if (stage === 'generated') show('judge');
    else if (stage === 'scored') show('update');
    else if (stage === 'updated') show(isEvalStep(step) ? (step === total ? 'after-eval' : 'eval') : 'save');
    else if (stage === 'saved' && step < total) show('rollout');
  };
  const onStep = (m: StepMetrics): void => {
    stepTimes.set(m.step, m.total_time);
    snap.step = m.step;
    snap.reward = m.avg_judger_reward;
    snap.kept = m.num_kept;
    show();
  };
  let beforeEvalTime = 0;
  const onEval = (e: EvalMetrics): void => {
    if (e.step === 0) beforeEvalTime = e.eval_time;
    evalSeconds = e.eval_time;
    const st = stepTimes.get(e.step);
    if (st !== undefined) stepTimes.set(e.step, Math.max(0, st - e.eval_time));
    snap.pass1 = e.pass1_sampled;
    snap.greedy = e.greedy_acc;
    snap.evalStep = e.step;
    show(e.step === 0 ? 'rollout' : undefined);
  };

  const res = await runTraining(cfg, {
    outDir: runDir,
    onStage,
    onStep,
    onEval,
    onLog: opts.onLog ?? (() => undefined),
    ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    ...(opts.rollout !== undefined ? { rollout: opts.rollout } : {}),
  });
  show('report');

  const before = given ?? res.evals.find((e) => e.step === 0);
  if (before === undefined) throw new Error('the trainer did not evaluate the starting policy (eval_at_start)');
  const afterEval = res.step > 0 ? res.evals.find((e) => e.step === res.step) : undefined;
  const b = scores(before)!;
  const a = scores(afterEval);
  const trainS = [...stepTimes.values()].reduce((x, y) => x + y, 0);
  const ckDir = path.join(runDir, 'checkpoints', `step-${res.step}`);
  const summaryFile = path.join(runDir, 'summary.json');
  const summary: MainJobSummary = {
    before: b,
    after: a,
    steps: res.step,
    wall_s: 0,
    algorithm: cfg.algorithm,
    token_level_rm: cfg.token_level_rm !== false,
    seed: cfg.seed,
    total_steps: total,
    gain: a === null ? null : { pass_at_1: diff(b.pass_at_1, a.pass_at_1), greedy: diff(b.greedy, a.greedy) },
    eval_problems: before.num_problems,
    eval_samples: before.samples,
    timing: { before_eval_s: given !== null ? 0 : beforeEvalTime, train_s: trainS, after_eval_s: afterEval?.eval_time ?? null },
    interrupted: res.step < total,
    config: path.resolve(configFile),
    run_dir: runDir,
  };
  // wall_s covers everything up to the report; the report itself takes well under a second.
  summary.wall_s = (performance.now() - t0) / 1000;
  writeFileAtomic(summaryFile, JSON.stringify(summary, null, 2) + '\n');
  const reportFile = writeReport(runDir, path.join(runDir, 'report.html'), { onWarning: (w) => progress.log(`report: warning: ${w}`) });
  show('done');
  return {
    runDir,
    summary,
    summaryFile,
    reportFile,
    metricsFile: path.join(runDir, 'metrics.jsonl'),
    checkpointDir: fs.existsSync(ckDir) ? ckDir : null,
  };
}

/** The closing lines `oreal start` prints: before → after, and where everything is. */
export function formatResult(r: MainJobResult, cwd: string = process.cwd()): string {
  const s = r.summary;
  const rel = (p: string): string => {
    const x = path.relative(cwd, p);
    return x === '' || x.startsWith('..') ? p : x;
  };
  const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '   -  ' : `${(100 * x).toFixed(1).padStart(5)}%`);
  const pts = (x: number | null | undefined): string => (x === null || x === undefined ? '' : ` (${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} points)`);
  const mins = `${Math.floor(s.wall_s / 60)}m${String(Math.round(s.wall_s % 60)).padStart(2, '0')}s`;
  const lines = [
    '',
    `OREAL main job ${s.interrupted ? `stopped after step ${s.steps} of ${s.total_steps}` : 'done'}: ${s.algorithm}` +
      `${s.token_level_rm ? ' with the token-level reward model' : ''}, ${s.steps} steps, seed ${s.seed}, ${mins}`,
    `held-out (${s.eval_problems} problems)   before → after`,
    `  pass@1 (${s.eval_samples} samples)     ${pct(s.before.pass_at_1)} → ${s.after ? pct(s.after.pass_at_1) : '  -'}${pts(s.gain?.pass_at_1)}`,
    `  greedy                 ${pct(s.before.greedy)} → ${s.after ? pct(s.after.greedy) : '  -'}${pts(s.gain?.greedy)}`,
    '',
    `run directory  ${rel(r.runDir)}`,
    `summary        ${rel(r.summaryFile)}`,
    `metrics        ${rel(r.metricsFile)}`,
    `checkpoint     ${r.checkpointDir === null ? '(none)' : `${rel(r.checkpointDir)}/${fs.existsSync(path.join(r.checkpointDir, 'token_rm')) ? '{policy,token_rm}' : 'policy'}`}`,
    `report         ${rel(r.reportFile)}`,
    '',
  ];
  return lines.join('\n');
}
