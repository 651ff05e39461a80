// AdamW (decoupled weight decay, PyTorch's update order), global gradient-norm clipping, and the warm-up + cosine
// learning-rate schedule. The parameters themselves are the fp32 master weights; the optimizer keeps fp32 first and
// second moments per parameter name on the backend, which `exportState` / `importState` move in and out (for resume).
//
// The update and the clipping run as backend ops (`adamw`, `sumSquares`, `scale`); the one number read back per step
// is the global gradient norm (a metric, and the non-finite guard needs it).
import type { AdamWHyper, Backend } from '../engine/backend.js';
import { gradNorm } from '../engine/norm.js';
import type { F32 } from '../engine/tensor.js';

export interface AdamWOptions {
  /** Base learning rate (a schedule may pass a different one to each `step`). */
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (PyTorch AdamW's default 0.01). */
  weightDecay?: number;
  /** Parameters that get no weight decay (default: none; the OREAL reference decays everything). */
  noDecay?: (name: string) => boolean;
}

/** Serializable optimizer state: hyper-parameters, step count and the moments by parameter name. */
export interface AdamWState {
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  expAvg: Map<string, Float32Array>;
  expAvgSq: Map<string, Float32Array>;
}

/** The size of one AdamW update (see `AdamW.preview`). */
export interface UpdatePreview {
  /** ‖Δp‖₂ over all parameters with a gradient. */
  update: number;
  /** ‖p‖₂ before the update, over the same parameters. */
  param: number;
  /** Every updated value is finite. */
  finite: boolean;
}

export class AdamW {
  readonly backend: Backend;
  readonly params: ReadonlyMap<string, F32>;
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of steps taken. */
  stepCount = 0;
  private readonly noDecay: (name: string) => boolean;
  private readonly m = new Map<string, F32>();
  private readonly v = new Map<string, F32>();

  constructor(backend: Backend, params: ReadonlyMap<string, F32>, opts: AdamWOptions) {
    this.backend = backend;
    this.params = params;
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.noDecay = opts.noDecay ?? (() => false);
    for (const [k, p] of params) {
      this.m.set(k, backend.empty(p.shape));
      this.v.set(k, backend.empty(p.shape));
    }
  }

  /**
   * One update from `grads` (same names as the params; a missing gradient skips that parameter):
   * p ← p·(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
   */
  step(grads: ReadonlyMap<string, F32>, lr: number = this.lr): void {
    this.stepCount++;
    this.forEachUpdate(grads, lr, this.stepCount, (p, g, m, v, h) => this.backend.adamw(p, g, m, v, h));
  }

  /**
   * What `step(grads, lr)` would do, without doing it: the global L2 norms of the update Δp and of the parameters
   * before it (so `update / param` is the step's relative size), and whether every new value is finite. Nothing is
   * written (the backend's `adamwPreview` op, the same arithmetic as `adamw`), so a caller can refuse an exploding
   * update and leave weights and moments exactly as they were. Reads back two numbers.
   */
  async preview(grads: ReadonlyMap<string, F32>, lr: number = this.lr): Promise<UpdatePreview> {
    const out = this.backend.empty([2]);
    try {
      this.forEachUpdate(grads, lr, this.stepCount + 1, (p, g, m, v, h) => this.backend.adamwPreview(p, g, m, v, h, out));
      const [du2, p2] = await this.backend.read(out);
      const update = Math.sqrt(du2!);
      const param = Math.sqrt(p2!);
      return { update, param, finite: Number.isFinite(update) && Number.isFinite(param) };
    } finally {
      this.backend.free(out);
    }
  }

  /** Calls `f` for every parameter with a gradient, with the hyper-parameters of optimizer step `t`. */
  private forEachUpdate(grads: ReadonlyMap<string, F32>, lr: number, t: number, f: (p: F32, g: F32, m: F32, v: F32, h: AdamWHyper) => void): void {
    const beta1 = this.beta1;
    const beta2 = this.beta2;
    const stepSize = lr / (1 - Math.pow(beta1, t));
    const bc2sqrt = Math.sqrt(1 - Math.pow(beta2, t));
    for (const [k, p] of this.params) {
      const g = grads.get(k);
      if (g === undefined) continue;
      if (g.size !== p.size) throw new Error(`AdamW: gradient ${k} has ${g.size} elements, parameter ${p.size}`);
      const decay = this.noDecay(k) ? 1 : 1 - lr * this.weightDecay;
      f(p, g, this.m.get(k)!, this.v.get(k)!, { beta1, beta2, eps: this.eps, decay, stepSize, bc2sqrt });
    }
  }

  /** A host copy of the state, read with `backend.read` (any backend). */
  async exportState(): Promise<AdamWState> {
    const copy = async (src: Map<string, F32>): Promise<Map<string, Float32Array>> => {
      const out = new Map<string, Float32Array>();
      for (const [k, a] of src) out.set(k, await this.backend.read(a));
      return out;
    };
    return {
      step: this.stepCount,
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      expAvg: await copy(this.m),
      expAvgSq: await copy(this.v),
    };
  }

  /** Restore the step count and moments (hyper-parameters stay those of the constructor, except lr). */
  importState(state: AdamWState): void {
    for (const [k, p] of this.params) {
      const m = state.expAvg.get(k);
      const v = state.expAvgSq.get(k);
      if (m === undefined || v === undefined) throw new Error(`AdamW state: no moments for parameter ${k}`);
      if (m.length !== p.size || v.length !== p.size) throw new Error(`AdamW state: moments of ${k} have the wrong size`);
      this.backend.write(this.m.get(k)!, m);
      this.backend.write(this.v.get(k)!, v);
    }
    this.stepCount = state.step;
    this.lr = state.lr;
  }

  /** The state as flat named tensors (e.g. for a safetensors file): `exp_avg.<name>`, `exp_avg_sq.<name>`. */
  stateTensors(): Map<string, F32> {
    const out = new Map<string, F32>();
    for (const [k, a] of this.m) out.set(`exp_avg.${k}`, a);
    for (const [k, a] of this.v) out.set(`exp_avg_sq.${k}`, a);
    return out;
  }

  /** Gives the moments back to the backend; the optimizer is unusable after. */
  dispose(): void {
    for (const a of [...this.m.values(), ...this.v.values()]) this.backend.free(a);
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm over host gradient arrays (accumulated in double precision), for metrics read on the host. */
export function globalGradNorm(grads: Iterable<Float32Array>): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

/**
 * Scale the gradients so that their global L2 norm is at most `maxNorm` (PyTorch's clip_grad_norm_: coefficient
 * maxNorm / (norm + 1e-6), capped at 1). Returns the norm before clipping. A non-finite norm leaves the gradients
 * untouched and is returned as is: the caller should skip the step.
 */
export async function clipGradNorm(backend: Backend, grads: Iterable<F32>, maxNorm: number, knownNorm?: number): Promise<number> {
  const list = [...grads];
  // A caller that already measured these gradients' norm (stepLosses does) passes it: no second pass and read.
  const norm = knownNorm ?? (await gradNorm(backend, list));
  if (!Number.isFinite(norm) || !(maxNorm > 0)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of list) backend.scale(g, coef);
  return norm;
}

/** An update refused by `UpdateGuard` and why. */
export interface GuardedUpdate {
  /** The gradient norm before clipping. */
  gradNorm: number;
  /** Why the update was not applied, or null when it was. */
  refused: string | null;
}

/**
 * Clip-then-step with the trainer's safety checks, for one model and its optimizer. An update is refused when the loss
 * or the gradient norm is non-finite (the NaN guard), or when `AdamW.preview` shows it would make a weight non-finite
 * or move the weights by more than their own norm (divergence, usually a learning rate far too high). A refused update
 * leaves weights and moments exactly as they were; `patience` refusals in a row for a reason other than the loss throw.
 */
export class UpdateGuard {
  private refusedInARow = 0;

  constructor(
    /** 'actor' or 'token_rm': names the model in messages. */
    readonly who: string,
    readonly opt: AdamW,
    private readonly opts: { maxGradNorm: number; maxUpdateRatio: number; patience: number; lrKey: string; baseLr: number },
  ) {}

  /**
   * Clips `grads` (by `gradNormBefore`, the norm the caller measured) and steps unless unsafe. `onRefused` hears a
   * refusal before a divergence error is thrown.
   */
  async update(grads: ReadonlyMap<string, F32>, loss: number, gradNormBefore: number, lr: number, step: number, onRefused: (why: string, gradNorm: number) => void): Promise<GuardedUpdate> {
    const { who, opt } = this;
    const gradNorm = await clipGradNorm(opt.backend, grads.values(), this.opts.maxGradNorm, gradNormBefore);
    let why: string | null = null;
    let diverging = true;
    if (!Number.isFinite(loss)) {
      why = `${who}: non-finite loss`;
      diverging = false;
    } else if (!Number.isFinite(gradNorm)) why = `${who}: non-finite gradient norm`;
    else {
      const pv = await opt.preview(grads, lr);
      if (!pv.finite) why = `${who}: update would make weights non-finite`;
      else if (pv.update > this.opts.maxUpdateRatio * pv.param)
        why = `${who}: exploding update (|Δw| ${pv.update.toExponential(2)} > |w| ${pv.param.toExponential(2)})`;
    }
    if (why === null) {
      opt.step(grads, lr);
      this.refusedInARow = 0;
      return { gradNorm, refused: null };
    }
    onRefused(why, gradNorm);
    this.refusedInARow = diverging ? this.refusedInARow + 1 : 0;
    if (this.refusedInARow >= this.opts.patience)
      throw new Error(
        `training diverged at step ${step}: ${this.opts.patience} ${who} updates in a row were refused (last: ${why}). ` +
          `The likely cause is the learning rate (${this.opts.lrKey} ${this.opts.baseLr}, ${lr} at this step): lower it. ` +
          `No refused update was applied or saved; the run directory holds the last good state.`,
      );
    return { gradNorm, refused: why };
  }
}

export interface LrScheduleOptions {
  /** Peak learning rate, reached at the end of the warm-up. */
  lr: number;
  /** Final learning rate of the cosine. */
  minLr: number;
  warmupSteps: number;
  /** Total optimizer steps (warm-up included); past it the rate stays at minLr. */
  totalSteps: number;
}

/**
 * Learning rate for optimizer step `step` (0-based: the first update uses step 0).
 * Warm-up: lr·(step+1)/warmupSteps for step < warmupSteps (so the first update is not wasted at 0).
 * Then cosine: minLr + (lr − minLr)·(1 + cos(π·p))/2 with p = (step − warmupSteps)/(totalSteps − warmupSteps),
 * clamped to [0, 1].
 */
export function lrAt(step: number, o: LrScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  const span = o.totalSteps - o.warmupSteps;
  const p = span > 0 ? Math.min(1, Math.max(0, (step - o.warmupSteps) / span)) : 1;
  return o.minLr + ((o.lr - o.minLr) * (1 + Math.cos(Math.PI * p))) / 2;
}
