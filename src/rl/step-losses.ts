// One RL step's losses and gradients on real models (docs/algorithm.md steps 4–9): group advantages over all K responses,
// optional `filter_trajectory`, global token counts, then per micro-batch: reference forward (no grad), token-level
// RM forward, policy forward, closed-form per-token gradients (src/rl/loss.ts), policy and RM backward. The caller
// clips and steps the optimizers; the returned grad norms are taken before any clipping.
//
// Positions: a sequence is prompt ‖ response (P + n tokens). The action positions are P−1 … P+n−2, the positions
// whose next token is a response token: logp_t = log π(y_t | x, y_<t) there, and the RM score s_t is read at the same
// positions (it sees the prefix before y_t), as the reference's `[-n-1:-1]` slices; with rm_score_position
// 'inclusive' (the paper's w(s≤t)) the RM score is read one position later, at y_t itself (P … P+n−1).
//
// Step checker (optional `blame`): for a task whose steps can be checked, the 0/1 masks of each response's tokens
// from its first wrong step on and on that step alone. They give the oracles' w⁻ (token_weight_source oracle and
// oracle_step) and, whatever the weights, the share of the negatives' weight Σw⁻·mask / Σw⁻ that falls on or after
// the first wrong step (a credit diagnostic).

import type { Qwen2Model } from '../model/qwen2.js';
import { gradNorm } from '../engine/norm.js';
import { groupAdvantages } from './advantages.js';
import type { Uniform } from '../util/rng.js';
import { filterTrajectory, type FilterMode } from './filter.js';
import { sigmoid } from './token-rm.js';
import { addTotals, computeLosses, countTokens, isOracle, type LossConfig, type LossSequence, type LossStats, type LossTotals, type TokenCounts } from './loss.js';

export interface ResponseSample {
  /** Response token ids (the stop token included when one was produced). */
  ids: ArrayLike<number>;
  /** Judge reward, +1 correct / −1 otherwise. */
  reward: number;
}

export interface PromptGroup {
  prompt_ids: ArrayLike<number>;
  responses: ReadonlyArray<ResponseSample>;
}

export interface StepModels {
  policy: Qwen2Model;
  /** Frozen reference (may be the same object as `policy`: its forward runs first). */
  ref: Qwen2Model;
  /** Token-level RM (score head); required when the config has tokenLevelRm. */
  rm?: Qwen2Model | null;
}

export interface StepLossOptions {
  /** `filter_trajectory` mode (default 'none': every response kept) and its RNG. */
  filter?: { mode: FilterMode; rng: Uniform };
  /** Padded tokens (rows × longest row) per forward (default 8192; one sequence at least). */
  microBatchTokens?: number;
  /** Run the policy backward (default true; false while the actor is frozen). */
  actorBackward?: boolean;
  /** Run the RM backward (default true). */
  rmBackward?: boolean;
  /** Keep the gradients already in the models (default false: they are zeroed first). */
  accumulate?: boolean;
  /** Return the per-token numbers of every kept sequence in `tokens` (e.g. for trajectory dumps and tests). */
  collectTokens?: boolean;
  /**
   * The task's step checker: for response `index` of group `group`, its masks (one value per response token), or
   * null when it cannot say. Asked for the kept negatives only. Required with the oracle token weight sources.
   */
  blame?: (group: number, index: number) => StepBlame | null;
}

/** A step checker's verdict on a response's tokens. */
export interface StepBlame {
  /** 1 on the tokens from the first wrong step on, 0 before. */
  fromError: ArrayLike<number>;
  /** 1 on the first wrong step's tokens only. */
  errorStep: ArrayLike<number>;
}

/** Per-token numbers of one kept sequence (n action tokens). */
export interface SequenceTokens {
  logp: Float64Array;
  refLogp: Float64Array;
  rmScores: Float64Array | null;
  dLogp: Float64Array;
  dScore: Float64Array | null;
  posWeight: Float64Array | null;
  negWeight: Float64Array | null;
}

export interface KeptSequence {
  group: number;
  index: number;
  reward: number;
  advantage: number;
  passRate: number;
  numTokens: number;
}

/** The seven numbers `oreal debug loss` prints. */
export interface StepLossReport extends LossTotals {
  /** Global L2 norm of the policy (resp. RM) gradient before clipping; 0 when that backward did not run. */
  actor_grad_norm: number;
  rm_grad_norm: number;
}

export interface StepLossResult extends StepLossReport {
  /** The group advantage of every response, kept or not: advantages[group][response]. */
  advantages: number[][];
  counts: TokenCounts;
  stats: LossStats;
  kept: KeptSequence[];
  droppedAllCorrect: number;
  droppedAllWrong: number;
  /** With `collectTokens`, in the order of `kept`. */
  tokens?: SequenceTokens[];
  /** σ(mean RM score) of each kept sequence, the RM's probability that it is correct (in the order of `kept`); null without the RM. */
  rmProbs: number[] | null;
  /** With `blame`: Σ over the kept negatives of w⁻·mask and of w⁻ (w⁻ = 1 without token weights); null without. */
  negWeightOnError: { onError: number; total: number } | null;
}

interface Row {
  prompt: ArrayLike<number>;
  response: ArrayLike<number>;
  info: KeptSequence;
}

function checkIds(ids: ArrayLike<number>, vocab: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= vocab) throw new Error(`${what}[${i}] = ${v}: not a token id in [0, ${vocab})`);
  }
}

/** Computes the step's losses, runs the backward passes and reports the losses and gradient norms. */
export async function stepLosses(
  models: StepModels,
  groups: ReadonlyArray<PromptGroup>,
  cfg: LossConfig,
  opts: StepLossOptions = {},
): Promise<StepLossResult> {
  const { policy, ref } = models;
  const rm = models.rm ?? null;
  if (cfg.tokenLevelRm && rm === null) throw new Error('token_level_rm is on but no reward model was given');
  if (policy.config.head !== 'lm' || ref.config.head !== 'lm') throw new Error('the policy and the reference need an LM head');
  if (cfg.tokenLevelRm && rm!.config.head !== 'score') throw new Error('the token-level reward model needs a score head (Qwen2ForTokenClassification)');
  const vocab = Math.min(policy.config.vocabSize, ref.config.vocabSize, rm && cfg.tokenLevelRm ? rm.config.vocabSize : Infinity);
  const actorBackward = opts.actorBackward ?? true;
  const rmBackward = (opts.rmBackward ?? true) && cfg.tokenLevelRm;
  if (isOracle(cfg.tokenWeightSource) && opts.blame === undefined)
    throw new Error(`token_weight_source ${cfg.tokenWeightSource} needs a step checker for the task (none was given)`);
  // Offset of the RM score that weights token t from the position predicting it (see the file header).
  const scoreShift = cfg.rmScorePosition === 'inclusive' ? 1 : 0;

  // Advantages over each whole group, then the filter.
  const withAdv = groups.map((g, gi) => {
    if (g.prompt_ids.length === 0) throw new Error(`groups[${gi}]: empty prompt_ids`);
    checkIds(g.prompt_ids, vocab, `groups[${gi}].prompt_ids`);
    g.responses.forEach((r, ri) => {
      if (r.ids.length === 0) throw new Error(`groups[${gi}].responses[${ri}]: empty response`);
      checkIds(r.ids, vocab, `groups[${gi}].responses[${ri}].ids`);
    });
    const adv = g.responses.length > 0 ? groupAdvantages(g.responses.map((r) => r.reward), cfg.rewardShapingType) : [];
    return g.responses.map((r, ri) => ({ reward: r.reward, advantage: adv[ri]!, ids: r.ids }));
  });
  const filt = filterTrajectory(withAdv, opts.filter?.mode ?? 'none', opts.filter?.rng ?? (() => 0));
  const rows: Row[] = filt.kept.map((k) => ({
    prompt: groups[k.group]!.prompt_ids,
    response: k.item.ids,
    info: { group: k.group, index: k.index, reward: k.item.reward, advantage: k.item.advantage, passRate: k.passRate, numTokens: k.item.ids.length },
  }));
  const counts = countTokens(rows.map((r) => ({ reward: r.info.reward, numTokens: r.info.numTokens })));

  if (!opts.accumulate) {
    policy.zeroGrad();
    if (rm) rm.zeroGrad();
  }
  let totals: LossTotals = { positive_loss: 0, negative_loss: 0, kl_penalty_loss: 0, rl_loss: 0, token_level_rm_loss: 0 };
  const stats: LossStats = { actionTokens: 0, sumNegLogp: 0, sumRefKl: 0, sumAdv: 0 };

  const tokens: SequenceTokens[] = [];
  const rmProbs: number[] = [];
  const negOnError = { onError: 0, total: 0 };
  const budget = Math.max(1, opts.microBatchTokens ?? 8192);
  for (let start = 0; start < rows.length; ) {
    let end = start + 1;
    let maxLen = rows[start]!.prompt.length + rows[start]!.response.length;
    while (end < rows.length) {
      const L = Math.max(maxLen, rows[end]!.prompt.length + rows[end]!.response.length);
      if (L * (end - start + 1) > budget) break;
      maxLen = L;
      end++;
    }
    const mb = rows.slice(start, end);
    start = end;
    const B = mb.length;
    const T = maxLen;
    const ids = new Int32Array(B * T);
    const lengths = new Int32Array(B);
    const labels = new Int32Array(B * T).fill(-1);
    mb.forEach((r, b) => {
      const P = r.prompt.length;
      const n = r.response.length;
      lengths[b] = P + n;
      for (let t = 0; t < P; t++) ids[b * T + t] = r.prompt[t]!;
      for (let j = 0; j < n; j++) {
        ids[b * T + P + j] = r.response[j]!;
        labels[b * T + P - 1 + j] = r.response[j]!;
      }
    });
    const slice = (a: Float64Array, b: number): Float64Array => {
      const P = mb[b]!.prompt.length;
      return a.subarray(b * T + P - 1, b * T + P - 1 + mb[b]!.response.length);
    };
    const scoreSlice = (a: Float64Array, b: number): Float64Array => {
      const at = b * T + mb[b]!.prompt.length - 1 + scoreShift;
      return a.subarray(at, at + mb[b]!.response.length);
    };
    const refOut = await ref.forwardAsync(ids, lengths, { labels, entropy: false, saveForBackward: false });
    const refLogp = refOut.logp!;
    let scores: Float64Array | null = null;
    if (cfg.tokenLevelRm) scores = (await rm!.forwardAsync(ids, lengths, { saveForBackward: rmBackward })).score!;
    const logp = (await policy.forwardAsync(ids, lengths, { labels, entropy: false, saveForBackward: actorBackward })).logp!;
    // Only the negatives' masks are used (the checker blames; positives keep weight 1).
    const masks = mb.map((r) => {
      if (opts.blame === undefined || r.info.reward > 0) return null;
      const m = opts.blame(r.info.group, r.info.index);
      for (const mask of m === null ? [] : [m.fromError, m.errorStep])
        if (mask.length !== r.info.numTokens)
          throw new Error(`step checker: ${mask.length} mask values for a response of ${r.info.numTokens} tokens (group ${r.info.group}, response ${r.info.index})`);
      if (m === null && isOracle(cfg.tokenWeightSource))
        throw new Error(`token_weight_source ${cfg.tokenWeightSource}: the step checker cannot judge response ${r.info.index} of group ${r.info.group}`);
      return m;
    });
    const seqs: LossSequence[] = mb.map((r, b) => ({
      reward: r.info.reward,
      advantage: r.info.advantage,
      logp: slice(logp, b),
      refLogp: slice(refLogp, b),
      ...(scores ? { rmScores: scoreSlice(scores, b) } : {}),
      ...(isOracle(cfg.tokenWeightSource) && masks[b] != null
        ? { oracleNegWeights: cfg.tokenWeightSource === 'oracle_step' ? masks[b]!.errorStep : masks[b]!.fromError }
        : {}),
    }));
    const out = computeLosses(seqs, cfg, counts);
    seqs.forEach((q, b) => {
      if (q.rmScores) {
        let sum = 0;
        for (let t = 0; t < q.rmScores.length; t++) sum += q.rmScores[t]!;
        rmProbs.push(sigmoid(sum / q.rmScores.length));
      }
      const m = masks[b]?.fromError;
      if (m && q.reward <= 0) {
        const w = out.grads[b]!.negWeight;
        for (let t = 0; t < m.length; t++) {
          const wt = w ? w[t]! : 1;
          negOnError.total += wt;
          negOnError.onError += wt * m[t]!;
        }
      }
    });
    totals = addTotals(totals, out.totals);
    stats.actionTokens += out.stats.actionTokens;
    stats.sumNegLogp += out.stats.sumNegLogp;
    stats.sumRefKl += out.stats.sumRefKl;
    stats.sumAdv += out.stats.sumAdv;
    if (opts.collectTokens)
      seqs.forEach((q, b) => {
        const g = out.grads[b]!;
        tokens.push({
          logp: Float64Array.from(q.logp),
          refLogp: Float64Array.from(q.refLogp),
          rmScores: q.rmScores ? Float64Array.from(q.rmScores) : null,
          dLogp: g.dLogp,
          dScore: g.dScore,
          posWeight: g.posWeight,
          negWeight: g.negWeight,
        });
      });
    if (actorBackward) {
      const d = new Float64Array(B * T);
      mb.forEach((r, b) => d.set(out.grads[b]!.dLogp, b * T + r.prompt.length - 1));
      policy.backward(d, null);
    }
    if (rmBackward) {
      const d = new Float64Array(B * T);
      mb.forEach((r, b) => d.set(out.grads[b]!.dScore!, b * T + r.prompt.length - 1 + scoreShift));
      rm!.backward(null, d);
    }
  }
  totals.rl_loss = totals.positive_loss + totals.negative_loss + totals.kl_penalty_loss;
  return {
    ...totals,
    actor_grad_norm: actorBackward ? await gradNorm(policy.backend, policy.gradTensors.values()) : 0,
    rm_grad_norm: rmBackward ? await gradNorm(rm!.backend, rm!.gradTensors.values()) : 0,
    advantages: withAdv.map((g) => g.map((r) => r.advantage)),
    counts,
    stats,
    kept: rows.map((r) => r.info),
    droppedAllCorrect: filt.droppedAllCorrect,
    droppedAllWrong: filt.droppedAllWrong,
    ...(opts.collectTokens ? { tokens } : {}),
    rmProbs: cfg.tokenLevelRm ? rmProbs : null,
    negWeightOnError: opts.blame !== undefined ? negOnError : null,
  };
}
