// `filter_trajectory` (docs/algorithm.md step 5): which responses of each prompt group go into the RL batch.
//
//   'pair'  (reference `filter_trajectory=True`, the OREAL default): drop groups whose pass rate is 0 or 1; from each
//           remaining group keep one correct and one incorrect response, each chosen uniformly at random with the
//           RNG passed in (correct first, then incorrect, as the reference appends them).
//   'mixed' (reference TrajectoryDatasetWithFilter(only_keep_1_pair=False), not used by its configs): drop groups of
//           pass rate 0 or 1, keep every response of the others.
//   'none'  (reference `filter_trajectory=False`, e.g. the no-token-RM config): keep every response of every group.
//
// Correct means reward > 0 (the reference's filter tests `reward == 1` and its loss `reward > 0`; identical for the
// ±1 rewards the judge produces). Advantages must be computed on the whole group before filtering.

import type { Uniform } from '../util/rng.js';

export type FilterMode = 'pair' | 'mixed' | 'none';

export interface KeptResponse<T> {
  /** Index of the group (prompt) and of the response within it. */
  group: number;
  index: number;
  item: T;
  /** Fraction of the group's responses with reward > 0. */
  passRate: number;
}

export interface FilterResult<T> {
  kept: KeptResponse<T>[];
  /** Groups dropped because every response had the same correctness. */
  droppedAllCorrect: number;
  droppedAllWrong: number;
}

function pick(rng: Uniform, n: number): number {
  const u = rng();
  if (!(u >= 0 && u < 1)) throw new Error(`filter_trajectory: the RNG returned ${u}, expected a number in [0, 1)`);
  return Math.min(n - 1, Math.floor(u * n));
}

/** Applies `filter_trajectory` to groups of responses (each with a numeric `reward`). */
export function filterTrajectory<T extends { reward: number }>(
  groups: ReadonlyArray<ReadonlyArray<T>>,
  mode: FilterMode,
  rng: Uniform,
): FilterResult<T> {
  const kept: KeptResponse<T>[] = [];
  let droppedAllCorrect = 0;
  let droppedAllWrong = 0;
  groups.forEach((g, gi) => {
    if (g.length === 0) return;
    const correct: number[] = [];
    const incorrect: number[] = [];
    g.forEach((r, i) => (r.reward > 0 ? correct : incorrect).push(i));
    const passRate = correct.length / g.length;
    if (mode !== 'none') {
      if (incorrect.length === 0) {
        droppedAllCorrect++;
        return;
      }
      if (correct.length === 0) {
        droppedAllWrong++;
        return;
      }
    }
    if (mode === 'pair') {
      const c = correct[pick(rng, correct.length)]!;
      const w = incorrect[pick(rng, incorrect.length)]!;
      kept.push({ group: gi, index: c, item: g[c]!, passRate });
      kept.push({ group: gi, index: w, item: g[w]!, passRate });
    } else {
      g.forEach((item, index) => kept.push({ group: gi, index, item, passRate }));
    }
  });
  return { kept, droppedAllCorrect, droppedAllWrong };
}
