// The group stage of a step: a step's generations and their rewards become the prompt groups the losses train on
// (src/rl/step-losses.ts). A group with a sample the judge could not score (on_failure=drop) or an empty response is
// dropped whole, since its advantages would be over a different group.
import type { PromptGroup } from '../rl/step-losses.js';
import type { Generation } from '../sample/types.js';
import type { RewardResult } from '../verify/reward.js';

/** One sampled response with what the step knows of it. */
export interface Rollout {
  /** Index of its prompt in the step's batch. */
  group: number;
  /** Index among its prompt's samples. */
  index: number;
  gen: Generation;
  /** Response token ids for the loss. */
  ids: number[];
  reward: RewardResult;
}

export interface GroupedRollouts {
  /** Every rollout, by prompt. */
  rollouts: Rollout[][];
  /** The groups that train, and for each its prompt's index in `rollouts`. */
  trainGroups: PromptGroup[];
  trainGroupIndex: number[];
  /** Groups dropped for a missing reward or an empty response. */
  dropped: number;
  /** Rollouts whose judge call failed. */
  judgeFailures: number;
}

/**
 * Pairs each generation (`gens[prompt][sample]`) with its reward (`rewards`, flattened in the same order) and its token
 * ids, and builds the trainable groups.
 */
export function groupRollouts(
  promptIds: ReadonlyArray<readonly number[]>,
  gens: ReadonlyArray<readonly Generation[]>,
  rewards: readonly RewardResult[],
  responseIds: (g: Generation) => number[],
): GroupedRollouts {
  const rollouts: Rollout[][] = [];
  let r = 0;
  gens.forEach((gs, gi) => {
    rollouts.push(gs.map((g, index) => ({ group: gi, index, gen: g, ids: responseIds(g), reward: rewards[r++]! })));
  });
  const trainGroups: PromptGroup[] = [];
  const trainGroupIndex: number[] = [];
  let dropped = 0;
  rollouts.forEach((g, gi) => {
    if (g.some((x) => x.reward.reward === null || x.ids.length === 0)) {
      dropped++;
      return;
    }
    trainGroups.push({ prompt_ids: promptIds[gi]!, responses: g.map((x) => ({ ids: x.ids, reward: x.reward.reward! })) });
    trainGroupIndex.push(gi);
  });
  return { rollouts, trainGroups, trainGroupIndex, dropped, judgeFailures: rewards.filter((x) => x.judgeVerdict === 'error').length };
}
