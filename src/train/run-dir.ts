// A training run's directory and everything written to it (layout at the top of src/train/trainer.ts): the log, the
// metrics file, trajectories, HF checkpoints, and the resume state. Every file is written atomically (temp + rename,
// src/util/atomic-write.ts); on resume, metrics lines after the saved step are discarded so the replayed steps write
// them again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveCheckpoint, type CheckpointDtype, type Tensor } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic-write.js';
import type { StreamPosition } from './data.js';
import { appendLine, readMetricsFile, type EvalMetrics, type StepMetrics } from './metrics.js';
import type { AdamW, AdamWState } from './optim.js';

const STATE_VERSION = 1;

/** `state/trainer.json`: the step, the data position and the optimizers' scalars (their moments are safetensors). */
export interface TrainerStateFile {
  version: number;
  /** Last completed step. */
  step: number;
  data: StreamPosition;
  /** Counter-based streams: their position is `step` (see the top of src/train/trainer.ts). */
  rng: { seed: number; streams: Record<string, string> };
  actor_optimizer: { step: number; lr: number };
  token_rm_optimizer: { step: number; lr: number } | null;
  /** Sum of total_time over completed steps (for eta; not part of the reproduced metrics). */
  elapsed: number;
  saved_at: string;
}

/** A saved state found on resume: the directory it was read from and its trainer.json. */
export interface SavedState {
  dir: string;
  state: TrainerStateFile;
}

/** One model's weights for a save: its HF config and host tensors. */
export interface ModelSnapshot {
  config: ModelConfig;
  tensors: ReadonlyMap<string, Tensor>;
}

function optimStateToTensors(st: AdamWState): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, a] of st.expAvg) out.set(`exp_avg.${k}`, { shape: [a.length], data: a });
  for (const [k, a] of st.expAvgSq) out.set(`exp_avg_sq.${k}`, { shape: [a.length], data: a });
  return out;
}

/** Restores an optimizer's moments and scalars from a saved state's safetensors file. */
export function importOptimizerState(opt: AdamW, file: string, scalars: { step: number; lr: number }): void {
  const t = readSafetensors(file);
  const expAvg = new Map<string, Float32Array>();
  const expAvgSq = new Map<string, Float32Array>();
  for (const [k, v] of t) {
    if (k.startsWith('exp_avg_sq.')) expAvgSq.set(k.slice('exp_avg_sq.'.length), v.data);
    else if (k.startsWith('exp_avg.')) expAvg.set(k.slice('exp_avg.'.length), v.data);
  }
  opt.importState({ step: scalars.step, lr: scalars.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, expAvg, expAvgSq });
}

export class RunDir {
  readonly dir: string;
  readonly metricsFile: string;

  /** Opens (creating) the run directory; `onLog` takes the log lines instead of stderr (they still go to train.log). */
  constructor(dir: string, private readonly onLog?: (line: string) => void) {
    this.dir = path.resolve(dir);
    fs.mkdirSync(this.dir, { recursive: true });
    for (const d of ['trajectories', 'checkpoints']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    this.metricsFile = path.join(this.dir, 'metrics.jsonl');
  }

  log(line: string): void {
    const stamped = `[${new Date().toISOString()}] ${line}`;
    if (this.onLog) this.onLog(line);
    else process.stderr.write(stamped + '\n');
    try {
      fs.appendFileSync(path.join(this.dir, 'train.log'), stamped + '\n');
    } catch {
      // The log file is a convenience; the metrics are what matter.
    }
  }

  /**
   * Starts (or, after `step` completed steps, continues) the metrics file: only the lines the saved state accounts for
   * are kept — later ones are replayed — and returned.
   */
  startMetrics(step: number): Array<StepMetrics | EvalMetrics> {
    const previous = step > 0 ? readMetricsFile(this.metricsFile, step) : [];
    writeFileAtomic(this.metricsFile, previous.map((r) => JSON.stringify(r) + '\n').join(''));
    return previous;
  }

  appendMetrics(rec: StepMetrics | EvalMetrics): void {
    appendLine(this.metricsFile, rec);
  }

  writeFile(name: string, text: string): void {
    writeFileAtomic(path.join(this.dir, name), text);
  }

  writeTrajectories(step: number, records: readonly unknown[]): void {
    writeFileAtomic(path.join(this.dir, 'trajectories', `step-${step}.jsonl`), records.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  /** The newest complete saved state (state/, or a state.old-* left by a kill during the swap), or null. */
  findState(): SavedState | null {
    const main = path.join(this.dir, 'state');
    let dir: string | null = null;
    if (fs.existsSync(path.join(main, 'trainer.json'))) dir = main;
    else
      dir =
        fs
          .readdirSync(this.dir)
          .filter((n) => n.startsWith('state.old-') && fs.existsSync(path.join(this.dir, n, 'trainer.json')))
          .map((n) => path.join(this.dir, n))
          .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0] ?? null;
    if (dir === null) return null;
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'trainer.json'), 'utf8')) as TrainerStateFile;
    if (state.version !== STATE_VERSION) throw new Error(`${dir}/trainer.json: state version ${state.version}, expected ${STATE_VERSION}`);
    return { dir, state };
  }

  /** HF checkpoints of the policy (and RM) at `checkpoints/step-N/{policy,token_rm}`; returns the directory. */
  saveCheckpoints(step: number, policy: ModelSnapshot, rm: ModelSnapshot | null, opts: { dtype: CheckpointDtype; tokenizerDir: string }): string {
    const dir = path.join(this.dir, 'checkpoints', `step-${step}`);
    writeDirAtomic(
      dir,
      (tmp) => {
        saveCheckpoint(path.join(tmp, 'policy'), policy.config, policy.tensors, opts);
        if (rm) saveCheckpoint(path.join(tmp, 'token_rm'), rm.config, rm.tensors, opts);
      },
      { sweepLeftovers: true },
    );
    return dir;
  }

  /** The full resume state at `state/`: f32 weights, optimizer moments, and `trainer.json` (version added here). */
  saveState(
    st: Omit<TrainerStateFile, 'version' | 'saved_at'>,
    actor: ModelSnapshot & { optimizer: AdamWState },
    rm: (ModelSnapshot & { optimizer: AdamWState }) | null,
  ): void {
    const file: TrainerStateFile = { version: STATE_VERSION, ...st, saved_at: new Date().toISOString() };
    writeDirAtomic(
      path.join(this.dir, 'state'),
      (tmp) => {
        saveCheckpoint(path.join(tmp, 'policy'), actor.config, actor.tensors, { dtype: 'f32' });
        writeSafetensors(path.join(tmp, 'optim_actor.safetensors'), optimStateToTensors(actor.optimizer));
        if (rm) {
          saveCheckpoint(path.join(tmp, 'token_rm'), rm.config, rm.tensors, { dtype: 'f32' });
          writeSafetensors(path.join(tmp, 'optim_token_rm.safetensors'), optimStateToTensors(rm.optimizer));
        }
        writeFileAtomic(path.join(tmp, 'trainer.json'), JSON.stringify(file, null, 2) + '\n');
      },
      { sweepLeftovers: true },
    );
  }
}
