// Reading an OREAL run directory for the report: config.resolved.yaml, metrics.jsonl (step and eval lines),
// trajectories/step-N.jsonl and summary.json. Every piece may be missing (a run that just started, or is still
// running); malformed lines are skipped with a warning that names the file and line.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

/** One training step's numeric metrics (reference key names: avg_judger_reward, positive_loss, ...). */
export interface StepMetrics {
  step: number;
  values: Readonly<Record<string, number>>;
}

/** One in-loop evaluation line: `{"type":"eval","step":N,"pass_at_1":x,"greedy":y}`. */
export interface EvalPoint {
  step: number;
  pass_at_1?: number;
  greedy?: number;
}

export interface EvalScores {
  pass_at_1?: number;
  greedy?: number;
}

/** summary.json, written at the end of a run. */
export interface RunSummary {
  before?: EvalScores;
  after?: EvalScores;
  steps?: number;
  wall_s?: number;
}

/** One dumped trajectory (a line of trajectories/step-N.jsonl). */
export interface Trajectory {
  /** The problem the response answers, and its gold answer (the trainer writes both; "prompt" is then an index). */
  question?: string;
  gold?: string;
  /** The rendered prompt, when a dump gives it as text. */
  prompt?: string;
  text: string;
  num_tokens?: number;
  reward?: number;
  advantage?: number;
  /** Decoded token strings of the response. */
  tokens?: string[];
  /** Token-level RM weights (probabilities) per response token, in [0, 1]. */
  token_weights?: number[];
}

export interface TrajectoryStep {
  step: number;
  file: string;
  trajectories: Trajectory[];
}

/** Scalar config entries (nested keys dotted), e.g. `algorithm`, `judger.mode`. */
export type ConfigScalar = string | number | boolean | null;

export interface RunData {
  runDir: string;
  config: ReadonlyMap<string, ConfigScalar> | null;
  steps: StepMetrics[];
  evals: EvalPoint[];
  summary: RunSummary | null;
  /** Steps that have a trajectories file, ascending. */
  trajectorySteps: number[];
  /** Trajectories of the last such step (null when none). */
  lastTrajectories: TrajectoryStep | null;
  /** Trajectories of an early step (see `earlyTrajectoryStep`), null when there is none apart from the last. */
  earlyTrajectories: TrajectoryStep | null;
  warnings: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finiteNumber = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** What the trainer writes into a run directory; a folder with none of them is not a run. */
const RUN_ENTRIES = ['config.resolved.yaml', 'metrics.jsonl', 'summary.json', 'trajectories', 'checkpoints', 'state'];

/**
 * Load everything the report needs from a run directory. Throws when `runDir` is not a directory, or holds none of
 * the files and folders a run has (the trainer makes trajectories/ and checkpoints/ before its first step).
 */
export function loadRun(runDir: string): RunData {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new Error(`run directory not found: ${runDir}`);
  if (!RUN_ENTRIES.some((e) => existsSync(join(runDir, e)))) {
    throw new Error(
      `${runDir} is not a run directory: it has none of config.resolved.yaml, metrics.jsonl, summary.json, trajectories/ ` +
        '(give the --out folder of `oreal train` or `oreal start`)',
    );
  }
  const warnings: string[] = [];
  const config = readConfig(join(runDir, 'config.resolved.yaml'), warnings);
  const { steps, evals } = readMetrics(join(runDir, 'metrics.jsonl'), warnings);
  const summary = readSummary(join(runDir, 'summary.json'), warnings);
  const trajDir = join(runDir, 'trajectories');
  const trajectorySteps = listTrajectorySteps(trajDir);
  const load = (step: number | null | undefined): TrajectoryStep | null => {
    if (step === undefined || step === null) return null;
    const file = join(trajDir, `step-${step}.jsonl`);
    return { step, file, trajectories: readTrajectories(file, warnings) };
  };
  const lastTrajectories = load(trajectorySteps[trajectorySteps.length - 1]);
  const earlyTrajectories = load(earlyTrajectoryStep(trajectorySteps));
  return { runDir, config, steps, evals, summary, trajectorySteps, lastTrajectories, earlyTrajectories, warnings };
}

/**
 * The early step the report shows next to the last one: the dumped step nearest to a tenth of the last (the token-level
 * RM has had some updates by then, and the policy has not yet changed much). Null when only one step is dumped.
 */
export function earlyTrajectoryStep(steps: readonly number[]): number | null {
  if (steps.length < 2) return null;
  const last = steps[steps.length - 1]!;
  const target = last / 10;
  let best = steps[0]!;
  for (const s of steps.slice(0, -1)) if (Math.abs(s - target) < Math.abs(best - target)) best = s;
  return best;
}

function readText(file: string, warnings: string[]): string | null {
  if (!existsSync(file)) return null;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    warnings.push(`${file}: cannot read (${err instanceof Error ? err.message : String(err)})`);
    return null;
  }
}

/** config.resolved.yaml flattened to dotted scalar keys (lists of scalars joined with ", "). */
export function readConfig(file: string, warnings: string[]): Map<string, ConfigScalar> | null {
  const text = readText(file, warnings);
  if (text === null) return null;
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    warnings.push(`${file}: not valid YAML (${err instanceof Error ? err.message : String(err)})`);
    return null;
  }
  const out = new Map<string, ConfigScalar>();
  if (!isRecord(doc)) {
    if (doc !== null && doc !== undefined) warnings.push(`${file}: expected a mapping at the top level`);
    return out;
  }
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out.set(key, v);
      else if (Array.isArray(v)) {
        if (v.every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x))) out.set(key, v.map(String).join(', '));
        else out.set(key, JSON.stringify(v));
      } else if (isRecord(v)) walk(v, key);
    }
  };
  walk(doc, '');
  return out;
}

/**
 * metrics.jsonl: step lines (`"type":"train"`, `"type":"step"` or no type) and eval lines (`"type":"eval"`). Numeric keys of step
 * lines are kept, other keys ignored; lines of another type are ignored. A step logged twice (a resumed run) keeps
 * its last line. Malformed lines are skipped with a warning `FILE:LINE: ...`.
 */
export function readMetrics(file: string, warnings: string[]): { steps: StepMetrics[]; evals: EvalPoint[] } {
  const text = readText(file, warnings);
  const byStep = new Map<number, StepMetrics>();
  const evalByStep = new Map<number, EvalPoint>();
  if (text !== null) {
    const lines = text.split('\n');
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === '') return;
      const where = `${file}:${i + 1}`;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        // A partially written last line of a live run is expected; still worth a warning.
        warnings.push(`${where}: skipped malformed line (not JSON)${i === lines.length - 1 ? ' — possibly still being written' : ''}`);
        return;
      }
      if (!isRecord(obj)) {
        warnings.push(`${where}: skipped line (not a JSON object)`);
        return;
      }
      const type = obj['type'];
      const step = finiteNumber(obj['step']);
      if (type === 'eval') {
        if (step === undefined) {
          warnings.push(`${where}: skipped eval line without a numeric "step"`);
          return;
        }
        const e: EvalPoint = { step };
        const p = finiteNumber(obj['pass_at_1']);
        const g = finiteNumber(obj['greedy']);
        if (p !== undefined) e.pass_at_1 = p;
        if (g !== undefined) e.greedy = g;
        evalByStep.set(step, e);
        return;
      }
      // The trainer (src/train/trainer.ts) writes its step lines as "type":"train".
      if (type !== undefined && type !== 'step' && type !== 'train') return; // another kind of line: not ours to chart
      if (step === undefined) {
        warnings.push(`${where}: skipped step line without a numeric "step"`);
        return;
      }
      const values: Record<string, number> = {};
      for (const [k, v] of Object.entries(obj)) {
        const n = finiteNumber(v);
        if (n !== undefined && k !== 'step') values[k] = n;
      }
      byStep.set(step, { step, values });
    });
  }
  return {
    steps: [...byStep.values()].sort((a, b) => a.step - b.step),
    evals: [...evalByStep.values()].sort((a, b) => a.step - b.step),
  };
}

function readScores(v: unknown): EvalScores | undefined {
  if (!isRecord(v)) return undefined;
  const s: EvalScores = {};
  const p = finiteNumber(v['pass_at_1']);
  const g = finiteNumber(v['greedy']);
  if (p !== undefined) s.pass_at_1 = p;
  if (g !== undefined) s.greedy = g;
  return s;
}

export function readSummary(file: string, warnings: string[]): RunSummary | null {
  const text = readText(file, warnings);
  if (text === null) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    warnings.push(`${file}: not valid JSON; summary ignored`);
    return null;
  }
  if (!isRecord(obj)) {
    warnings.push(`${file}: expected a JSON object; summary ignored`);
    return null;
  }
  const s: RunSummary = {};
  const before = readScores(obj['before']);
  const after = readScores(obj['after']);
  const steps = finiteNumber(obj['steps']);
  const wall = finiteNumber(obj['wall_s']);
  if (before !== undefined) s.before = before;
  if (after !== undefined) s.after = after;
  if (steps !== undefined) s.steps = steps;
  if (wall !== undefined) s.wall_s = wall;
  return s;
}

/** Steps N with a `step-N.jsonl` file under `dir`, ascending. */
export function listTrajectorySteps(dir: string): number[] {
  if (!existsSync(dir)) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const steps: number[] = [];
  for (const name of names) {
    const m = /^step-(\d+)\.jsonl$/.exec(name);
    if (m?.[1] !== undefined) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

/** One trajectories file; lines without a string "text" are skipped with a warning, bad optional fields dropped. */
export function readTrajectories(file: string, warnings: string[]): Trajectory[] {
  const text = readText(file, warnings);
  if (text === null) return [];
  const out: Trajectory[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      warnings.push(`${where}: skipped malformed line (not JSON)`);
      return;
    }
    if (!isRecord(obj) || typeof obj['text'] !== 'string') {
      warnings.push(`${where}: skipped line without a string "text"`);
      return;
    }
    const t: Trajectory = { text: obj['text'] };
    if (typeof obj['question'] === 'string') t.question = obj['question'];
    if (typeof obj['gold'] === 'string') t.gold = obj['gold'];
    if (typeof obj['prompt'] === 'string') t.prompt = obj['prompt'];
    const n = finiteNumber(obj['num_tokens']);
    const r = finiteNumber(obj['reward']);
    const a = finiteNumber(obj['advantage']);
    if (n !== undefined) t.num_tokens = n;
    if (r !== undefined) t.reward = r;
    if (a !== undefined) t.advantage = a;
    const tokens = obj['tokens'];
    if (Array.isArray(tokens)) {
      if (tokens.every((x): x is string => typeof x === 'string')) t.tokens = tokens;
      else warnings.push(`${where}: "tokens" is not a list of strings; ignored`);
    }
    const weights = obj['token_weights'];
    if (Array.isArray(weights)) {
      if (weights.every((x): x is number => typeof x === 'number' && Number.isFinite(x))) t.token_weights = weights;
      else warnings.push(`${where}: "token_weights" is not a list of numbers; ignored`);
    }
    out.push(t);
  });
  return out;
}
