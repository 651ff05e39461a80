// Group advantages (docs/algorithm.md step 4): one number per response, computed over the K responses of one prompt
// BEFORE any filtering (the reference computes them over all K rollouts, then keeps one pair).
//
//   rloo  A_k = r_k − (Σ_j r_j − r_k)/(K − 1)             (leave-one-out baseline; the reference's default)
//         with ±1 rewards and pass rate p: 2K(1−p)/(K−1) for a correct sample, −2Kp/(K−1) for an incorrect one.
//   grpo  A_k = (r_k − mean r)/(std r + 1e-8), std with Bessel's correction (torch.std's default, n − 1);
//         a group of equal rewards gives A = 0.
//   none  A_k = r_k (REINFORCE without a baseline; the paper's Table 2 first row).

/** How the group's rewards become advantages (`reward_shaping_type`; 'none' = REINFORCE, A = r). */
export type AdvantageType = 'rloo' | 'grpo' | 'none';

export const ADVANTAGE_TYPES: readonly AdvantageType[] = ['rloo', 'grpo', 'none'];

function checkRewards(rewards: ArrayLike<number>, what: string, minK: number): void {
  if (rewards.length < minK) throw new Error(`${what} advantages need at least ${minK} responses per group, got ${rewards.length}`);
  for (let i = 0; i < rewards.length; i++)
    if (!Number.isFinite(rewards[i]!)) throw new Error(`${what} advantages: reward ${i} is not a finite number (${rewards[i]})`);
}

/** RLOO: A_k = r_k − mean of the other K − 1 rewards. Needs K ≥ 2. */
export function rlooAdvantages(rewards: ArrayLike<number>): number[] {
  checkRewards(rewards, 'RLOO', 2);
  const K = rewards.length;
  let sum = 0;
  for (let i = 0; i < K; i++) sum += rewards[i]!;
  const out: number[] = [];
  for (let i = 0; i < K; i++) out.push(rewards[i]! - (sum - rewards[i]!) / (K - 1));
  return out;
}

/** GRPO: (r − mean)/(std + 1e-8) with the unbiased (n − 1) std. Needs K ≥ 2. */
export function grpoAdvantages(rewards: ArrayLike<number>): number[] {
  checkRewards(rewards, 'GRPO', 2);
  const K = rewards.length;
  let sum = 0;
  for (let i = 0; i < K; i++) sum += rewards[i]!;
  const mean = sum / K;
  let ss = 0;
  for (let i = 0; i < K; i++) ss += (rewards[i]! - mean) ** 2;
  const std = Math.sqrt(ss / (K - 1));
  const out: number[] = [];
  for (let i = 0; i < K; i++) out.push((rewards[i]! - mean) / (std + 1e-8));
  return out;
}

/** REINFORCE: A = r. */
export function reinforceAdvantages(rewards: ArrayLike<number>): number[] {
  checkRewards(rewards, 'REINFORCE', 1);
  return Array.from(rewards);
}

export function groupAdvantages(rewards: ArrayLike<number>, type: AdvantageType): number[] {
  switch (type) {
    case 'rloo':
      return rlooAdvantages(rewards);
    case 'grpo':
      return grpoAdvantages(rewards);
    case 'none':
      return reinforceAdvantages(rewards);
    default: {
      const bad: never = type;
      throw new Error(`unknown advantage type '${String(bad)}' (expected rloo, grpo or none)`);
    }
  }
}

/** Closed form of RLOO under ±1 rewards: the advantage of a correct (`correct`) or incorrect sample at pass rate p. */
export function rlooClosedForm(K: number, p: number, correct: boolean): number {
  return correct ? (2 * K * (1 - p)) / (K - 1) : (-2 * K * p) / (K - 1);
}
