// The run's numbers as written to `metrics.jsonl`: one {"type":"train"} line per step (names from the reference
// trainer; definitions at the top of src/train/trainer.ts) and {"type":"eval"} lines, plus the trajectory records of
// `trajectories/step-N.jsonl`. The trainer fills them; the main job, the report and the tests read them.
import * as fs from 'node:fs';
import { rocAuc } from '../eval/auc.js';
import type { StepLossResult } from '../rl/step-losses.js';
import { cumulativeMean, sigmoid } from '../rl/token-rm.js';
import type { GroupedRollouts } from './rollouts.js';

/** One `metrics.jsonl` line per step. Non-finite numbers are written as null. */
export interface StepMetrics {
  type: 'train';
  step: number;
  actor_lr: number;
  actor_grad_norm: number;
  token_level_rm_lr: number;
  token_rm_grad_norm: number;
  avg_judger_reward: number;
  avg_adv: number;
  avg_gen_entropy: number;
  avg_ref_kl: number;
  positive_loss: number;
  negative_loss: number;
  kl_penalty_loss: number;
  rl_loss: number;
  token_level_rm_loss: number;
  max_memory: number;
  avg_new_tokens: number;
  num_rl_tokens: number;
  infer_tgs: number;
  rl_tgs: number;
  gen_time: number;
  judge_time: number;
  infer_time: number;
  rl_time: number;
  total_time: number;
  eta: number;
  // Beyond the reference's names.
  epoch: number;
  num_prompts: number;
  num_rollouts: number;
  num_kept: number;
  groups_kept: number;
  dropped_all_correct: number;
  dropped_all_wrong: number;
  dropped_judge_failure: number;
  judge_failures: number;
  truncated_frac: number;
  actor_frozen: boolean;
  /**
   * ROC AUC of the token-level RM's σ(mean score) against correctness over the kept sequences, read before this
   * step's RM update (the RM's online accuracy); null without the RM or without both classes.
   */
  rm_auc: number | null;
  /**
   * On a task with a step checker (src/task/chains.ts): the share of the kept negatives' token weight w⁻ that falls on
   * or after their first wrong step (src/rl/step-losses.ts); null on other tasks.
   */
  neg_weight_on_error: number | null;
  /** Updates not applied this step and why (e.g. "actor: non-finite loss", "all groups filtered out"). */
  skipped: string[];
}

/** Timing fields of `StepMetrics` (excluded when comparing runs). */
export const TIMING_FIELDS: readonly string[] = [
  'max_memory',
  'infer_tgs',
  'rl_tgs',
  'gen_time',
  'judge_time',
  'infer_time',
  'rl_time',
  'total_time',
  'eta',
];

/** An evaluation line of `metrics.jsonl`. */
export interface EvalMetrics {
  type: 'eval';
  step: number;
  num_problems: number;
  /** Samples per problem for the sampled metrics (0 = none). */
  samples: number;
  /** Sampled pass@1 (mean fraction correct over the samples) and pass@samples; null without samples. */
  pass1_sampled: number | null;
  pass_at_k: number | null;
  /** Greedy accuracy; null when greedy decoding is off. */
  greedy_acc: number | null;
  /** The same two numbers under the names the run report reads (`pass_at_1` = pass1_sampled, `greedy` = greedy_acc). */
  pass_at_1: number | null;
  greedy: number | null;
  avg_new_tokens: number;
  truncated_frac: number;
  eval_time: number;
}

/** Appends one JSON line and fsyncs it (a kill leaves at most a torn last line, which readMetricsFile drops). */
export function appendLine(file: string, obj: unknown): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, JSON.stringify(obj) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses metrics.jsonl, keeping lines whose step ≤ maxStep (a torn last line is dropped). */
export function readMetricsFile(file: string, maxStep = Infinity): Array<StepMetrics | EvalMetrics> {
  if (!fs.existsSync(file)) return [];
  const out: Array<StepMetrics | EvalMetrics> = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof rec !== 'object' || rec === null) continue;
    const r = rec as { type?: unknown; step?: unknown };
    if ((r.type === 'train' || r.type === 'eval') && typeof r.step === 'number' && r.step <= maxStep) out.push(rec as StepMetrics | EvalMetrics);
  }
  return out;
}


/** What one step did, as the step's stages measured it (the input of `stepMetrics`). */
export interface StepRecord {
  step: number;
  epoch: number;
  numPrompts: number;
  actorLr: number;
  rmLr: number;
  actorGradNorm: number;
  rmGradNorm: number;
  frozen: boolean;
  skipped: string[];
  /** Rewards of every rollout (null: the judge could not score it). */
  rewards: ReadonlyArray<number | null>;
  /** Every rollout's response length and finish reason. */
  responses: ReadonlyArray<{ numTokens: number; truncated: boolean }>;
  droppedGroups: number;
  judgeFailures: number;
  /** The losses' result; null when no group trained. */
  losses: StepLossResult | null;
  /** Prompt length of each kept sequence's group, in the order of `losses.kept`. */
  keptPromptTokens: readonly number[];
  genTime: number;
  judgeTime: number;
  rlTime: number;
}

function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** The step's metrics line (total_time and eta are filled in when the step ends). */
export function stepMetrics(r: StepRecord): StepMetrics {
  const res = r.losses;
  const kept = res?.kept ?? [];
  const allRewards = r.rewards.filter((x): x is number => x !== null);
  const newTokens = r.responses.map((x) => x.numTokens);
  const numGen = newTokens.reduce((a, b) => a + b, 0);
  const rlTokens = kept.reduce((a, k, i) => a + k.numTokens + r.keptPromptTokens[i]!, 0);
  const stats = res?.stats;
  const tokens = stats?.actionTokens ?? 0;
  return {
    type: 'train',
    step: r.step,
    actor_lr: r.actorLr,
    actor_grad_norm: r.actorGradNorm,
    token_level_rm_lr: r.rmLr,
    token_rm_grad_norm: r.rmGradNorm,
    avg_judger_reward: mean(allRewards),
    avg_adv: mean(kept.map((k) => k.advantage)),
    avg_gen_entropy: tokens > 0 ? stats!.sumNegLogp / tokens : 0,
    avg_ref_kl: tokens > 0 ? stats!.sumRefKl / tokens : 0,
    positive_loss: res?.positive_loss ?? 0,
    negative_loss: res?.negative_loss ?? 0,
    kl_penalty_loss: res?.kl_penalty_loss ?? 0,
    rl_loss: res?.rl_loss ?? 0,
    token_level_rm_loss: res?.token_level_rm_loss ?? 0,
    max_memory: (process.resourceUsage().maxRSS * 1024) / 2 ** 30,
    avg_new_tokens: mean(newTokens),
    num_rl_tokens: res?.counts.tAll ?? 0,
    infer_tgs: r.genTime > 0 ? numGen / r.genTime : 0,
    rl_tgs: r.rlTime > 0 ? rlTokens / r.rlTime : 0,
    gen_time: r.genTime,
    judge_time: r.judgeTime,
    infer_time: r.genTime + r.judgeTime,
    rl_time: r.rlTime,
    total_time: 0,
    eta: 0,
    epoch: r.epoch,
    num_prompts: r.numPrompts,
    num_rollouts: newTokens.length,
    num_kept: kept.length,
    groups_kept: new Set(kept.map((k) => k.group)).size,
    dropped_all_correct: res?.droppedAllCorrect ?? 0,
    dropped_all_wrong: res?.droppedAllWrong ?? 0,
    dropped_judge_failure: r.droppedGroups,
    judge_failures: r.judgeFailures,
    truncated_frac: mean(r.responses.map((x) => (x.truncated ? 1 : 0))),
    actor_frozen: r.frozen,
    rm_auc: res?.rmProbs && kept.some((k) => k.reward > 0) && kept.some((k) => k.reward <= 0) ? rocAuc(res.rmProbs, kept.map((k) => k.reward > 0)) : null,
    neg_weight_on_error: res?.negWeightOnError && res.negWeightOnError.total > 0 ? res.negWeightOnError.onError / res.negWeightOnError.total : null,
    skipped: r.skipped,
  };
}

/**
 * The records of `trajectories/step-N.jsonl`: every rollout with its prompt, text, reward, advantage, whether it was
 * trained on, and for kept sequences with the RM's per-token numbers, the token-level weights the report's heat-map
 * shows: q_t = σ(cumulative mean RM score), the RM's running estimate that the response is correct
 * (src/rl/token-rm.ts), as read before this step's RM update.
 */
export function trajectoryRecords(
  prompts: ReadonlyArray<{ question: string; gold: string }>,
  grouped: GroupedRollouts,
  res: StepLossResult | null,
  decodeToken: (id: number) => string,
): unknown[] {
  const { rollouts, trainGroups, trainGroupIndex } = grouped;
  const kept = res?.kept ?? [];
  const keptSet = new Set(kept.map((k) => `${trainGroupIndex[k.group]}:${k.index}`));
  const advOf = new Map<string, number>();
  res?.advantages.forEach((adv, i) => adv.forEach((a, j) => advOf.set(`${trainGroupIndex[i]}:${j}`, a)));
  const heat = new Map<string, { tokens: string[]; token_weights: number[] }>();
  if (res?.tokens !== undefined)
    kept.forEach((k, i) => {
      const scores = res.tokens![i]?.rmScores;
      if (!scores) return;
      const ids = trainGroups[k.group]!.responses[k.index]!.ids;
      const q = cumulativeMean(scores);
      heat.set(`${trainGroupIndex[k.group]}:${k.index}`, { tokens: Array.from(ids, decodeToken), token_weights: Array.from(q, (c) => sigmoid(c)) });
    });
  const out: unknown[] = [];
  for (const g of rollouts)
    for (const x of g) {
      const key = `${x.group}:${x.index}`;
      out.push({
        prompt: x.group,
        sample: x.index,
        question: prompts[x.group]!.question,
        gold: prompts[x.group]!.gold,
        text: x.gen.text,
        num_tokens: x.ids.length,
        finish_reason: x.gen.finishReason,
        reward: x.reward.reward,
        advantage: advOf.get(key) ?? null,
        kept: keptSet.has(key),
        judge: x.reward.reason,
        ...(heat.get(key) ?? {}),
      });
    }
  return out;
}
