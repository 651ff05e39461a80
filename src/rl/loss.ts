// The OREAL actor loss, its baselines, and their closed-form per-token gradients (docs/algorithm.md steps 6–9).
//
// Every quantity is per kept sequence i with n_i action tokens (the response tokens), reward r_i, advantage A_i, and
// per-token logp_t = log π_θ(y_t | x, y_<t), ref_t = log π_ref(…), optionally old_t (the sampling policy's logp;
// default old = logp, i.e. strictly on-policy, ratio ρ_t = exp(logp_t − old_t) = 1 in value) and RM scores s_t.
// Positive = r > 0, negative = r ≤ 0. Token counts over the whole kept set: T_pos, T_neg, T_all, N_seq.
// Denominators: D⁺ = T_pos, D⁻ = T_neg with `loss_normalization: 'per_class'` (the reference), both T_all with 'all'.
//
//   positive_loss = Σ_{i: r>0} Σ_t ℓ⁺_t · f⁺/D⁺ where
//       behaviour cloning (behavior_cloning = true):  ℓ⁺_t = −logp_t · w⁺_t · (A_i if pos_mult_adv else 1)
//       policy gradient   (behavior_cloning = false): ℓ⁺_t = −ρ_t · A_i · w⁺_t
//   negative_loss = Σ_{i: r≤0} Σ_t −ρ_t · A_i · w⁻_t · f⁻/D⁻
//   kl_penalty_loss = kl_coef/T_all · Σ_{all i} Σ_t κ(k_t), k_t = ref_t − logp_t,
//       κ = e^k − k − 1 ('unbias', k3), k ('kl'), k²/2 ('mse')
//   rl_loss = positive_loss + negative_loss + kl_penalty_loss
//   token_level_rm_loss = (1/N_seq) Σ_i BCE_with_logits(mean_t s_t, [r_i > 0])        (src/rl/token-rm.ts)
//   f⁺ = positive_loss_factor, f⁻ = negative_loss_factor; w⁺ = w⁻ = 1 without the token-level RM.
//
// Closed-form gradients (the model's backward consumes them; w and A carry no gradient):
//   dL/dlogp_t = −w⁺_t·a·f⁺/D⁺ (BC, a = A or 1)  |  −ρ_t·A·w_t·f/D (PG terms)   plus kl_coef/T_all · κ'(k_t)·(−1)
//       with κ'(k) = e^k − 1 (unbias), 1 (kl), k (mse);
//   dL/ds_t = (σ(m_i) − [r_i > 0]) / (n_i · N_seq).
//
// Algorithms (`algorithm` picks defaults; any explicitly given key overrides them):
//
//   | algorithm | reward_shaping_type | behavior_cloning | token_level_rm | pos_mult_adv | f⁺  | f⁻  | kl_coef | loss_normalization |
//   |-----------|---------------------|------------------|----------------|--------------|-----|-----|---------|--------------------|
//   | oreal     | rloo                | true             | true           | true         | 1.0 | 0.5 | 0.01    | per_class          |
//   | grpo      | grpo                | false            | false          | –            | 1.0 | 1.0 | 0.01    | all                |
//   | rloo      | rloo                | false            | false          | –            | 1.0 | 1.0 | 0.01    | all                |
//   | reinforce | none (A = r)        | false            | false          | –            | 1.0 | 1.0 | 0.01    | all                |
//   | rft       | none                | true             | false          | false        | 1.0 | 0.0 | 0.0     | per_class          |
//
//   oreal follows the released trainer (train_oreal.py @2859cc0), NOT the paper, where they differ: ±1 rewards, RLOO
//   advantages on both sides (the paper's negatives carry (1 − p)·R; RLOO gives −2Kp/(K−1)), BC scaled by A
//   (`pos_mult_adv`; the paper's L₁ is plain BC: set pos_mult_adv false), per-class token-mean normalisation (not in
//   the paper), k3 KL to the frozen reference over all sequences (the paper writes KL to π_old), token weights from
//   the sigmoid of the CUMULATIVE mean RM score (the paper's Eq. 10 uses the per-token score), η = f⁻ = 0.5 (not
//   stated in the paper). The baselines (grpo, rloo, reinforce) are plain token-mean policy gradient over all kept
//   samples, L = −(1/T_all) Σ_i Σ_t ρ_t·A_i (+ KL), the GRPO/DAPO "token-level" mean without clipping (one update
//   per batch, so ρ = 1); rft is the mean NLL over the correct samples' tokens (rejection-sampling fine-tuning).
//
// Ablation switches (the paper's Table 2, rows added cumulatively on top of the oreal preset; see TABLE2_ABLATION):
//   reward_shaping_type none|rloo|grpo  "Reward Shaping" (none = the REINFORCE row; the authors' rebuttal calls the
//                                       shaping row "the GRPO approach", so grpo is the other reading; oreal = rloo);
//   behavior_cloning true|false         "Behavior Cloning": positives get BC (−logp) instead of PG (−ρ·A);
//   token_level_rm true|false           "Importance Sampling": w⁺/w⁻ from the RM instead of 1 (and the RM trains).
// With pos_mult_adv true (the reference) and ρ = 1, BC (−logp·A) and PG (−ρ·A) on positives have the same gradient;
// the paper's BC is unweighted (pos_mult_adv false), which TABLE2_ABLATION uses for its BC rows.
// The trainer's filter (src/rl/filter.ts) is separate: the reference's no-RM config turns `filter_trajectory` off.
//
// Where the token weights come from (issue 15's ablation; defaults reproduce the reference exactly):
//   token_weight_source rm|oracle|oracle_step
//                                       rm: w⁺/w⁻ from the token-level RM (as above; uniform 1 without it);
//                                       oracle: w⁺ = 1, w⁻ from the task's step checker, passed in per sequence as
//                                       `oracleNegWeights` (1 from the first wrong step on, 0 before; see
//                                       src/task/chains.ts `chainBlame`), the upper bound of what token credit buys
//                                       as the paper frames it (a value that drops at the error and stays down);
//                                       oracle_step: the same with w⁻ = 1 on the first wrong step's tokens only (the
//                                       later steps, right given the wrong value, are not pushed down).
//                                       The RM, if on, still trains but no longer weights the loss.
//   rm_score_position shifted|inclusive shifted: s_t read at the position that predicts y_t (it has seen y_<t), the
//                                       reference's `[-n-1:-1]`; inclusive: at y_t's own position (it has seen y_≤t),
//                                       the paper's w(s≤t). Applied where the scores are read (src/rl/step-losses.ts).

import { z } from 'zod';
import { ADVANTAGE_TYPES, type AdvantageType } from './advantages.js';
import { rmSequenceLoss, tokenWeights, type RescaleOptions } from './token-rm.js';

export type KlType = 'unbias' | 'kl' | 'mse';
export type LossNormalization = 'per_class' | 'all';
export type TokenWeightSource = 'rm' | 'oracle' | 'oracle_step';

/** Whether the weights come from the task's step checker (either oracle). */
export const isOracle = (s: TokenWeightSource): boolean => s !== 'rm';
export type RmScorePosition = 'shifted' | 'inclusive';

interface Preset {
  rewardShapingType: AdvantageType;
  behaviorCloning: boolean;
  tokenLevelRm: boolean;
  posMultAdv: boolean;
  positiveLossFactor: number;
  negativeLossFactor: number;
  klCoef: number;
  lossNormalization: LossNormalization;
}

/**
 * The algorithms and their presets: the one place an algorithm is named (adding one is one entry here; the config
 * schemas and `--set algorithm=` read the names from it).
 */
const PRESETS = {
  oreal: { rewardShapingType: 'rloo', behaviorCloning: true, tokenLevelRm: true, posMultAdv: true, positiveLossFactor: 1, negativeLossFactor: 0.5, klCoef: 0.01, lossNormalization: 'per_class' },
  grpo: { rewardShapingType: 'grpo', behaviorCloning: false, tokenLevelRm: false, posMultAdv: true, positiveLossFactor: 1, negativeLossFactor: 1, klCoef: 0.01, lossNormalization: 'all' },
  rloo: { rewardShapingType: 'rloo', behaviorCloning: false, tokenLevelRm: false, posMultAdv: true, positiveLossFactor: 1, negativeLossFactor: 1, klCoef: 0.01, lossNormalization: 'all' },
  reinforce: { rewardShapingType: 'none', behaviorCloning: false, tokenLevelRm: false, posMultAdv: true, positiveLossFactor: 1, negativeLossFactor: 1, klCoef: 0.01, lossNormalization: 'all' },
  rft: { rewardShapingType: 'none', behaviorCloning: true, tokenLevelRm: false, posMultAdv: false, positiveLossFactor: 1, negativeLossFactor: 0, klCoef: 0, lossNormalization: 'per_class' },
} as const satisfies Record<string, Preset>;

export type Algorithm = keyof typeof PRESETS;
export const ALGORITHMS = Object.keys(PRESETS) as [Algorithm, ...Algorithm[]];

/** A fully resolved loss configuration. */
export interface LossConfig {
  algorithm: Algorithm;
  rewardShapingType: AdvantageType;
  behaviorCloning: boolean;
  tokenLevelRm: boolean;
  posMultAdv: boolean;
  positiveLossFactor: number;
  negativeLossFactor: number;
  klType: KlType;
  klCoef: number;
  lossNormalization: LossNormalization;
  /** How the RM scores become token weights (used only with tokenLevelRm). */
  rescale: RescaleOptions;
  /** Where w⁺/w⁻ come from (see the file header). */
  tokenWeightSource: TokenWeightSource;
  /** Which position's RM score weights token t (see the file header). */
  rmScorePosition: RmScorePosition;
}

/** The loss keys of a config file, in the reference's names (snake_case); unknown keys are rejected. */
export const lossConfigSchema = z.strictObject({
  algorithm: z.enum(ALGORITHMS).optional(),
  reward_shaping_type: z.enum(ADVANTAGE_TYPES).optional(),
  behavior_cloning: z.boolean().optional(),
  token_level_rm: z.boolean().optional(),
  pos_mult_adv: z.boolean().optional(),
  positive_loss_factor: z.number().finite().nonnegative().optional(),
  negative_loss_factor: z.number().finite().nonnegative().optional(),
  kl_type: z.enum(['unbias', 'kl', 'mse']).optional(),
  kl_coef: z.number().finite().nonnegative().optional(),
  loss_normalization: z.enum(['per_class', 'all']).optional(),
  /** The reference's `loss_type`; only its value "per_token" exists. */
  loss_type: z.literal('per_token').optional(),
  threshold_rescale: z.boolean().optional(),
  correct_threshold: z.number().finite().gte(0).lt(1).optional(),
  incorrect_threshold: z.number().finite().gte(0).lt(1).optional(),
  topk_rescale: z.boolean().optional(),
  correct_topk_ratio: z.number().finite().gt(0).lte(1).optional(),
  incorrect_topk_ratio: z.number().finite().gt(0).lte(1).optional(),
  token_weight_source: z.enum(['rm', 'oracle', 'oracle_step']).optional(),
  rm_score_position: z.enum(['shifted', 'inclusive']).optional(),
});

export type LossConfigInput = z.infer<typeof lossConfigSchema>;

/**
 * Defaults of the loss keys that no algorithm preset sets: the one place they are declared (the trainer's config and
 * `oreal debug loss` both resolve through `resolveLossConfig`). Top-k ratios are the reference's (0.25 / 0.5).
 */
export const LOSS_DEFAULTS = {
  kl_type: 'unbias',
  correct_threshold: 0.5,
  incorrect_threshold: 0.5,
  correct_topk_ratio: 0.25,
  incorrect_topk_ratio: 0.5,
  token_weight_source: 'rm',
  rm_score_position: 'shifted',
} as const satisfies Partial<LossConfigInput>;



/**
 * The paper's Table 2 rows as config overrides, cumulative, in the paper's reading: "Behavior Cloning" is plain BC on
 * positives (the paper's L₁, pos_mult_adv false). The `oreal` preset itself (the released trainer) differs from the
 * last row only by pos_mult_adv = true. Note: with pos_mult_adv = true and ρ = 1 (one update per batch, as the
 * reference), −logp·A (BC) and −ρ·A (PG) have the same gradient −A, so under the reference's settings the BC switch
 * changes only the reported positive_loss, not the update.
 */
export const TABLE2_ABLATION: ReadonlyArray<{ row: string; config: LossConfigInput }> = [
  { row: '+ REINFORCE (baseline)', config: { algorithm: 'oreal', reward_shaping_type: 'none', behavior_cloning: false, token_level_rm: false } },
  { row: '+ Reward Shaping', config: { algorithm: 'oreal', reward_shaping_type: 'rloo', behavior_cloning: false, token_level_rm: false } },
  { row: '+ Behavior Cloning', config: { algorithm: 'oreal', reward_shaping_type: 'rloo', behavior_cloning: true, pos_mult_adv: false, token_level_rm: false } },
  { row: '+ Importance Sampling', config: { algorithm: 'oreal', reward_shaping_type: 'rloo', behavior_cloning: true, pos_mult_adv: false, token_level_rm: true } },
];

/**
 * Resolves a validated input against its algorithm's preset. Rescale: `threshold_rescale` (the reference config's
 * default) unless `topk_rescale` is true and `threshold_rescale` is not; both true is an error, as is neither with
 * the token-level RM (the reference raises NotImplementedError there).
 */
export function resolveLossConfig(input: LossConfigInput = {}): LossConfig {
  const algorithm = input.algorithm ?? 'oreal';
  const p = PRESETS[algorithm];
  const tokenLevelRm = input.token_level_rm ?? p.tokenLevelRm;
  const topk = input.topk_rescale ?? false;
  const threshold = input.threshold_rescale ?? !topk;
  if (threshold && topk) throw new Error('config: exactly one of threshold_rescale and topk_rescale must be true, not both true');
  if (!threshold && !topk && tokenLevelRm)
    throw new Error('config: token_level_rm needs threshold_rescale or topk_rescale to be true');
  const rescale: RescaleOptions = threshold
    ? {
        mode: 'threshold',
        correctThreshold: input.correct_threshold ?? LOSS_DEFAULTS.correct_threshold,
        incorrectThreshold: input.incorrect_threshold ?? LOSS_DEFAULTS.incorrect_threshold,
      }
    : {
        mode: 'topk',
        correctTopkRatio: input.correct_topk_ratio ?? LOSS_DEFAULTS.correct_topk_ratio,
        incorrectTopkRatio: input.incorrect_topk_ratio ?? LOSS_DEFAULTS.incorrect_topk_ratio,
      };
  return {
    algorithm,
    rewardShapingType: input.reward_shaping_type ?? p.rewardShapingType,
    behaviorCloning: input.behavior_cloning ?? p.behaviorCloning,
    tokenLevelRm,
    posMultAdv: input.pos_mult_adv ?? p.posMultAdv,
    positiveLossFactor: input.positive_loss_factor ?? p.positiveLossFactor,
    negativeLossFactor: input.negative_loss_factor ?? p.negativeLossFactor,
    klType: input.kl_type ?? LOSS_DEFAULTS.kl_type,
    klCoef: input.kl_coef ?? p.klCoef,
    lossNormalization: input.loss_normalization ?? p.lossNormalization,
    rescale,
    tokenWeightSource: input.token_weight_source ?? LOSS_DEFAULTS.token_weight_source,
    rmScorePosition: input.rm_score_position ?? LOSS_DEFAULTS.rm_score_position,
  };
}

/** Validates a parsed JSON config (naming the offending key) and resolves it. `where` prefixes error messages. */
export function parseLossConfig(json: unknown, where = 'config'): LossConfig {
  const r = lossConfigSchema.safeParse(json);
  if (!r.success) {
    const msgs = r.error.issues.map((iss) => {
      if (iss.code === 'unrecognized_keys') return `unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}`;
      const at = iss.path.length > 0 ? `field "${iss.path.join('.')}"` : 'top level';
      return `${at}: ${iss.message}`;
    });
    throw new Error(`${where}: ${msgs.join('; ')}`);
  }
  try {
    return resolveLossConfig(r.data);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message.replace(/^config: /, '')}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** One kept sequence's inputs to the loss: n action tokens each. */
export interface LossSequence {
  reward: number;
  advantage: number;
  /** log π_θ(y_t | …), n values. */
  logp: ArrayLike<number>;
  /** log π_ref(y_t | …), n values. */
  refLogp: ArrayLike<number>;
  /** The sampling policy's logp (default: logp itself, ratio 1). */
  oldLogp?: ArrayLike<number>;
  /** RM scores s_t, n values (required with tokenLevelRm). */
  rmScores?: ArrayLike<number>;
  /** w⁻ from the task's step checker, n values (required for negatives with token_weight_source oracle). */
  oracleNegWeights?: ArrayLike<number>;
}

export interface TokenCounts {
  numSeqs: number;
  tPos: number;
  tNeg: number;
  tAll: number;
}

/** N_seq, T_pos, T_neg, T_all of a kept set (pass the global counts when the set is split into micro-batches). */
export function countTokens(seqs: ReadonlyArray<{ reward: number; numTokens: number }>): TokenCounts {
  let tPos = 0;
  let tNeg = 0;
  for (const s of seqs) {
    if (s.reward > 0) tPos += s.numTokens;
    else tNeg += s.numTokens;
  }
  return { numSeqs: seqs.length, tPos, tNeg, tAll: tPos + tNeg };
}

export interface LossTotals {
  positive_loss: number;
  negative_loss: number;
  kl_penalty_loss: number;
  rl_loss: number;
  token_level_rm_loss: number;
}

export interface SequenceLossGrads {
  /** dL/dlogp_t (rl_loss), n values. */
  dLogp: Float64Array;
  /** dL/ds_t (token_level_rm_loss), n values; null without the RM. */
  dScore: Float64Array | null;
  /** The token weights used (null without the RM: all 1). */
  posWeight: Float64Array | null;
  negWeight: Float64Array | null;
}

/** Sums for the reference's per-step logs (avg_gen_entropy = sumNegLogp/actionTokens, etc.). */
export interface LossStats {
  actionTokens: number;
  /** Σ −logp over action tokens. */
  sumNegLogp: number;
  /** Σ (logp − ref) over action tokens. */
  sumRefKl: number;
  /** Σ A over sequences (the reference divides it by the action tokens for avg_adv). */
  sumAdv: number;
}

export interface LossOutput {
  totals: LossTotals;
  grads: SequenceLossGrads[];
  counts: TokenCounts;
  stats: LossStats;
}

function emptyTotals(): LossTotals {
  return { positive_loss: 0, negative_loss: 0, kl_penalty_loss: 0, rl_loss: 0, token_level_rm_loss: 0 };
}

/** Adds b into a (e.g. summing micro-batches). */
export function addTotals(a: LossTotals, b: LossTotals): LossTotals {
  return {
    positive_loss: a.positive_loss + b.positive_loss,
    negative_loss: a.negative_loss + b.negative_loss,
    kl_penalty_loss: a.kl_penalty_loss + b.kl_penalty_loss,
    rl_loss: a.rl_loss + b.rl_loss,
    token_level_rm_loss: a.token_level_rm_loss + b.token_level_rm_loss,
  };
}

/**
 * The losses of a set of kept sequences and their per-token gradients. `counts` defaults to the counts of `seqs`;
 * pass global counts when `seqs` is one micro-batch (then the totals of the micro-batches add up).
 */
export function computeLosses(seqs: ReadonlyArray<LossSequence>, cfg: LossConfig, counts?: TokenCounts): LossOutput {
  const C = counts ?? countTokens(seqs.map((s) => ({ reward: s.reward, numTokens: s.logp.length })));
  const dPos = cfg.lossNormalization === 'per_class' ? C.tPos : C.tAll;
  const dNeg = cfg.lossNormalization === 'per_class' ? C.tNeg : C.tAll;
  const totals = emptyTotals();
  const stats: LossStats = { actionTokens: 0, sumNegLogp: 0, sumRefKl: 0, sumAdv: 0 };
  const grads: SequenceLossGrads[] = [];
  seqs.forEach((s, i) => {
    const n = s.logp.length;
    if (n === 0) throw new Error(`loss: sequence ${i} has no action tokens`);
    if (s.refLogp.length !== n) throw new Error(`loss: sequence ${i}: ${s.refLogp.length} reference logps for ${n} tokens`);
    if (s.oldLogp !== undefined && s.oldLogp.length !== n) throw new Error(`loss: sequence ${i}: ${s.oldLogp.length} old logps for ${n} tokens`);
    if (!Number.isFinite(s.reward) || !Number.isFinite(s.advantage)) throw new Error(`loss: sequence ${i}: non-finite reward or advantage`);
    const positive = s.reward > 0;
    const dLogp = new Float64Array(n);
    let dScore: Float64Array | null = null;
    let posW: Float64Array | null = null;
    let negW: Float64Array | null = null;
    if (cfg.tokenLevelRm) {
      if (s.rmScores === undefined || s.rmScores.length !== n) throw new Error(`loss: sequence ${i}: token_level_rm needs ${n} RM scores`);
      const rm = rmSequenceLoss(s.rmScores, positive ? 1 : 0);
      totals.token_level_rm_loss += rm.loss / C.numSeqs;
      dScore = rm.dScore;
      for (let t = 0; t < n; t++) dScore[t] = dScore[t]! / C.numSeqs;
      if (cfg.tokenWeightSource === 'rm') {
        const w = tokenWeights(s.rmScores, cfg.rescale);
        posW = w.pos;
        negW = w.neg;
      }
    }
    if (isOracle(cfg.tokenWeightSource)) {
      // The checker judges steps, so it can only blame: positives keep weight 1 on every token.
      posW = new Float64Array(n).fill(1);
      negW = new Float64Array(n).fill(1);
      if (!positive) {
        const o = s.oracleNegWeights;
        if (o === undefined || o.length !== n) throw new Error(`loss: sequence ${i}: token_weight_source ${cfg.tokenWeightSource} needs ${n} oracle weights`);
        negW.set(o);
      }
    }
    const A = s.advantage;
    const ratio = (t: number): number => (s.oldLogp === undefined ? 1 : Math.exp(s.logp[t]! - s.oldLogp[t]!));
    if (positive) {
      const scale = cfg.positiveLossFactor / dPos;
      let sum = 0;
      if (cfg.behaviorCloning) {
        const a = cfg.posMultAdv ? A : 1;
        for (let t = 0; t < n; t++) {
          const w = posW ? posW[t]! : 1;
          sum += -s.logp[t]! * w * a;
          dLogp[t] = -w * a * scale;
        }
      } else {
        for (let t = 0; t < n; t++) {
          const w = posW ? posW[t]! : 1;
          const r = ratio(t);
          sum += -r * A * w;
          dLogp[t] = -r * A * w * scale;
        }
      }
      totals.positive_loss += sum * scale;
    } else {
      const scale = cfg.negativeLossFactor / dNeg;
      let sum = 0;
      for (let t = 0; t < n; t++) {
        const w = negW ? negW[t]! : 1;
        const r = ratio(t);
        sum += -r * A * w;
        dLogp[t] = -r * A * w * scale;
      }
      if (cfg.negativeLossFactor === 0) dLogp.fill(0);
      totals.negative_loss += cfg.negativeLossFactor === 0 ? 0 : sum * scale;
    }
    // KL to the reference, on every sequence.
    const klScale = cfg.klCoef / C.tAll;
    let kl = 0;
    for (let t = 0; t < n; t++) {
      const k = s.refLogp[t]! - s.logp[t]!;
      let v: number;
      let dk: number;
      switch (cfg.klType) {
        case 'unbias': {
          const e = Math.exp(k);
          v = e - k - 1;
          dk = e - 1;
          break;
        }
        case 'kl':
          v = k;
          dk = 1;
          break;
        case 'mse':
          v = (k * k) / 2;
          dk = k;
          break;
      }
      kl += v;
      dLogp[t] = dLogp[t]! - dk * klScale;
    }
    totals.kl_penalty_loss += kl * klScale;
    for (let t = 0; t < n; t++) {
      stats.sumNegLogp -= s.logp[t]!;
      stats.sumRefKl += s.logp[t]! - s.refLogp[t]!;
    }
    stats.actionTokens += n;
    stats.sumAdv += A;
    grads.push({ dLogp, dScore, posWeight: posW, negWeight: negW });
  });
  totals.rl_loss = totals.positive_loss + totals.negative_loss + totals.kl_penalty_loss;
  return { totals, grads, counts: C, stats };
}
