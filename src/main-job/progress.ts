// Progress display of `oreal start`: one live bar on a terminal (cli-progress), one plain line per event otherwise
// (CI logs, pipes), so a log file reads as a history rather than a heap of carriage returns.
//
//   TTY:   rollout     ████████░░░░░░░░ 12/40 reward -0.312 pass@1 41.5% (before) ETA 6m12s (3m05s)
//   plain: [oreal start 3m05s] step 12/40: reward -0.312, kept 36, pass@1 41.5% greedy 50.2% (before), ETA 6m12s

import { MultiBar, type SingleBar } from 'cli-progress';

/** What the job is doing now. */
export type JobPhase = 'loading' | 'before-eval' | 'rollout' | 'judge' | 'update' | 'eval' | 'save' | 'after-eval' | 'report' | 'done';

export interface ProgressSnapshot {
  phase: JobPhase;
  /** Completed training steps, and the run's total. */
  step: number;
  totalSteps: number;
  /** Mean judge reward of the last step (±1 scale); null before the first step. */
  reward: number | null;
  /** Sequences trained on in the last step. */
  kept: number | null;
  /** Latest held-out sampled pass@1 and greedy accuracy, and the step they were measured at (0 = before training). */
  pass1: number | null;
  greedy: number | null;
  evalStep: number | null;
  /** Estimated seconds left (training and the final evaluation); null while unknown. */
  etaS: number | null;
}

export interface ProgressView {
  update(s: ProgressSnapshot): void;
  /** A line printed above the bar (TTY) or as is (plain). */
  log(line: string): void;
  stop(): void;
}

/** `3m05s`, `45s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function pct(x: number | null): string {
  return x === null ? '-' : `${(100 * x).toFixed(1)}%`;
}

function evalLabel(s: ProgressSnapshot): string {
  if (s.pass1 === null && s.greedy === null) return 'pass@1 -';
  const at = s.evalStep === 0 ? 'before' : `step ${s.evalStep}`;
  return `pass@1 ${pct(s.pass1)} greedy ${pct(s.greedy)} (${at})`;
}

/** The fields of one status line (shared by both renderers). */
export function describe(s: ProgressSnapshot): { reward: string; evals: string; eta: string } {
  return {
    reward: s.reward === null ? '-' : s.reward.toFixed(3),
    evals: evalLabel(s),
    eta: s.etaS === null ? '?' : formatDuration(s.etaS),
  };
}

/** A live bar on `stream` (a terminal). The elapsed time and ETA keep ticking between steps. */
class TtyProgress implements ProgressView {
  private readonly multi: MultiBar;
  private readonly bar: SingleBar;
  private readonly t0 = Date.now();
  private last: ProgressSnapshot | null = null;
  private lastAt = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(stream: NodeJS.WriteStream, totalSteps: number) {
    this.multi = new MultiBar({
      stream,
      // (eta, duration and the like are cli-progress's own rate-based fields: ours are job_eta and job_elapsed.)
      format: '{phase} {bar} {value}/{total} reward {reward} pass@1 {pass1} ETA {job_eta} ({job_elapsed})',
      barsize: 16,
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      linewrap: false,
      fps: 4,
      autopadding: true,
    });
    this.bar = this.multi.create(totalSteps, 0, this.payload(null));
    this.timer = setInterval(() => this.redraw(), 1000);
    this.timer.unref();
  }

  private payload(s: ProgressSnapshot | null): Record<string, string> {
    const job_elapsed = formatDuration((Date.now() - this.t0) / 1000);
    if (s === null) return { phase: 'loading'.padEnd(11), reward: '-', pass1: '-', job_eta: '?', job_elapsed };
    const d = describe(s);
    // The ETA counts down between updates.
    const job_eta = s.etaS === null ? '?' : formatDuration(Math.max(0, s.etaS - (Date.now() - this.lastAt) / 1000));
    const pass1 = s.pass1 === null ? '-' : `${pct(s.pass1)} (${s.evalStep === 0 ? 'before' : `step ${s.evalStep}`})`;
    return { phase: s.phase.padEnd(11), reward: d.reward, pass1, job_eta, job_elapsed };
  }

  private redraw(): void {
    if (this.last !== null) this.bar.update(this.last.step, this.payload(this.last));
  }

  update(s: ProgressSnapshot): void {
    this.last = s;
    this.lastAt = Date.now();
    this.bar.setTotal(s.totalSteps);
    this.bar.update(s.step, this.payload(s));
    // Draw now: the work of the phase just announced (the update, a local rollout) may hold the event loop, and the
    // bar's own timer would only draw the label once that phase is over.
    this.multi.update();
  }

  log(line: string): void {
    this.multi.log(line.endsWith('\n') ? line : `${line}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    this.redraw();
    this.multi.stop();
  }
}

/** Phases announced on a line of their own by the plain view (the others happen every step). */
const PHASE_LINES: Partial<Record<JobPhase, string>> = {
  'before-eval': 'evaluating the starting policy on the held-out split…',
  'after-eval': 'last step trained; evaluating the final policy on the held-out split…',
  report: 'writing summary.json and report.html…',
};

/** One line per step (about 40 per run at most) or evaluation, and per phase change outside the step loop. */
class PlainProgress implements ProgressView {
  private readonly t0 = Date.now();
  private lastStep = -1;
  private lastEvalStep: number | null = null;
  private lastPhase: JobPhase | null = null;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  private stamp(): string {
    return `[oreal start ${formatDuration((Date.now() - this.t0) / 1000)}]`;
  }

  update(s: ProgressSnapshot): void {
    const d = describe(s);
    if (s.evalStep !== null && s.evalStep !== this.lastEvalStep) {
      this.lastEvalStep = s.evalStep;
      this.stream.write(`${this.stamp()} eval${s.evalStep === 0 ? ' before training' : ` at step ${s.evalStep}`}: ${d.evals}\n`);
    }
    // About 40 step lines per run (every step of a short one), plus the first and the last.
    const every = Math.max(1, Math.round(s.totalSteps / 40));
    if (s.step !== this.lastStep && s.step > 0 && (s.step % every === 0 || s.step === 1 || s.step === s.totalSteps)) {
      this.lastStep = s.step;
      this.stream.write(
        `${this.stamp()} step ${s.step}/${s.totalSteps}: reward ${d.reward}` +
          (s.kept !== null ? `, kept ${s.kept}` : '') +
          `, ${d.evals}, ETA ${d.eta}\n`,
      );
    }
    if (s.phase !== this.lastPhase) {
      this.lastPhase = s.phase;
      const what = PHASE_LINES[s.phase];
      if (what !== undefined) this.stream.write(`${this.stamp()} ${what}\n`);
    }
  }

  log(line: string): void {
    this.stream.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  stop(): void {
    // nothing to clean up
  }
}

/** A progress view on `stream`: a live bar when it is a terminal (and `plain` is not forced), lines otherwise. */
export function createProgress(stream: NodeJS.WriteStream, totalSteps: number, opts: { plain?: boolean } = {}): ProgressView {
  if (stream.isTTY && opts.plain !== true) return new TtyProgress(stream, totalSteps);
  return new PlainProgress(stream);
}

/** A view that shows nothing. */
export const silentProgress: ProgressView = { update: () => undefined, log: () => undefined, stop: () => undefined };
