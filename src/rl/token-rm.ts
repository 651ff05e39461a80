// The token-level reward model's side of the loss (docs/algorithm.md step 8), per sequence of n action tokens with RM
// scores s_1..s_n (the scalar head read at the positions that predict the response tokens, so s_t sees y_<t only).
//
//   cumulative mean  c_t = (s_1 + … + s_t)/t        sequence mean  m = (1/n) Σ_t s_t
//   RM loss          BCE_with_logits(m, y), y = 1 if reward > 0 else 0; the step sums it over sequences and divides
//                    by N_seq; dBCE/ds_t = (σ(m) − y)/n.
//   token weights    from q_t = σ(c_t), detached (they carry no gradient into the RM or the actor):
//     threshold rescale (reference default, τ = 0.5):
//        w⁺_t = clamp((q_t − τ⁺)/(1 − τ⁺), 0, 1),  w⁻_t = clamp(((1 − q_t) − τ⁻)/(1 − τ⁻), 0, 1)
//        (at τ = 0.5 this is the paper's Eq. 10, max(2σ − 1, 0) / max(1 − 2σ, 0), applied to the cumulative mean).
//     top-k rescale (reference `topk_rescale`, commented out in its configs), per sequence, on v = q (w⁺) or
//        v = 1 − q (w⁻) with ratio ρ:
//        k = ⌊n·ρ⌋ tokens with the largest v are kept (ties: the earlier token first); "min-max normalised" means
//        min-max over the KEPT values only: w_t = (v_t − min_kept)/(max_kept − min_kept), so the k-th largest token
//        gets weight 0 and the largest gets 1; if all kept values are equal they all get 1; every other token gets
//        0. Deviation: k = 0 (n·ρ < 1) gives all zeros; the reference would fail on an empty top-k.

/** c_t = (s_1 + … + s_t)/t. */
export function cumulativeMean(scores: ArrayLike<number>): Float64Array {
  const n = scores.length;
  const out = new Float64Array(n);
  let s = 0;
  for (let t = 0; t < n; t++) {
    s += scores[t]!;
    out[t] = s / (t + 1);
  }
  return out;
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** BCE with logits, numerically stable: max(x, 0) − x·y + log(1 + e^−|x|). */
export function bceWithLogits(x: number, y: number): number {
  return Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
}

export interface RmSequenceLoss {
  /** BCE_with_logits(mean score, label) of this one sequence (not yet divided by N_seq). */
  loss: number;
  /** d loss / d s_t = (σ(m) − y)/n for every token. */
  dScore: Float64Array;
  /** The sequence mean m and σ(m) (the RM's predicted probability of correctness). */
  meanScore: number;
  prob: number;
}

/** The RM loss of one sequence from its n token scores and its outcome label (1 correct, 0 not). */
export function rmSequenceLoss(scores: ArrayLike<number>, label: 0 | 1): RmSequenceLoss {
  const n = scores.length;
  if (n === 0) throw new Error('token-level RM: a sequence with no action tokens');
  let s = 0;
  for (let t = 0; t < n; t++) s += scores[t]!;
  const m = s / n;
  const prob = sigmoid(m);
  const g = (prob - label) / n;
  return { loss: bceWithLogits(m, label), dScore: new Float64Array(n).fill(g), meanScore: m, prob };
}

/** clamp((p − τ)/(1 − τ), 0, 1) elementwise (reference `threshold_rescale`). */
export function thresholdRescale(prob: ArrayLike<number>, threshold: number): Float64Array {
  if (!(threshold < 1)) throw new Error(`threshold rescale: threshold ${threshold} must be below 1`);
  const out = new Float64Array(prob.length);
  for (let i = 0; i < prob.length; i++) out[i] = Math.min(1, Math.max(0, (prob[i]! - threshold) / (1 - threshold)));
  return out;
}

/** Keep the ⌊n·ratio⌋ largest values, min-max normalised over the kept ones; zeros elsewhere (see the file header). */
export function topkRescale(prob: ArrayLike<number>, ratio: number): Float64Array {
  const n = prob.length;
  const out = new Float64Array(n);
  const k = Math.floor(n * ratio);
  if (k <= 0) return out;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => prob[b]! - prob[a]! || a - b);
  const top = idx.slice(0, Math.min(k, n));
  let lo = Infinity;
  let hi = -Infinity;
  for (const i of top) {
    lo = Math.min(lo, prob[i]!);
    hi = Math.max(hi, prob[i]!);
  }
  for (const i of top) out[i] = hi !== lo ? (prob[i]! - lo) / (hi - lo) : 1;
  return out;
}

export type RescaleOptions =
  | { mode: 'threshold'; correctThreshold: number; incorrectThreshold: number }
  | { mode: 'topk'; correctTopkRatio: number; incorrectTopkRatio: number };

export interface TokenWeights {
  /** w⁺ (weights of the positive/BC term) and w⁻ (weights of the negative/PG term), one per token. */
  pos: Float64Array;
  neg: Float64Array;
  /** q_t = σ(c_t), the RM's running probability that the response is correct. */
  prob: Float64Array;
}

/** Token weights w⁺, w⁻ from the RM scores of one sequence (cumulative mean → sigmoid → rescale). */
export function tokenWeights(scores: ArrayLike<number>, opts: RescaleOptions): TokenWeights {
  const c = cumulativeMean(scores);
  const prob = new Float64Array(c.length);
  const inv = new Float64Array(c.length);
  for (let t = 0; t < c.length; t++) {
    prob[t] = sigmoid(c[t]!);
    inv[t] = 1 - prob[t]!;
  }
  if (opts.mode === 'threshold')
    return { pos: thresholdRescale(prob, opts.correctThreshold), neg: thresholdRescale(inv, opts.incorrectThreshold), prob };
  return { pos: topkRescale(prob, opts.correctTopkRatio), neg: topkRescale(inv, opts.incorrectTopkRatio), prob };
}
