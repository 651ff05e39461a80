// Evaluation metrics over verified samples: pass@k (unbiased estimator), maj@k (majority vote over the first k
// samples' answers, grouped by verifier equivalence), greedy accuracy, and breakdowns by subject and level.
//
// pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): with n samples of which c are
// correct, the probability that a k-subset drawn without replacement holds at least one correct sample is
//     1 − C(n−c, k) / C(n, k) = 1 − ∏_{i=n−c+1}^{n} (1 − k/i),
// the product form avoiding the huge binomials. k > n is an error (the estimator is undefined).
//
// maj@k: the answers extracted from the first k samples (in sample order) are clustered: each answer joins the
// first earlier group whose representative (the group's first answer) it is equivalent to, else starts a new
// group. Unextractable answers (null) never join or form a group, so they never win. The winning group is the
// largest; ties go to the group whose first member came earliest. The problem counts as solved when the winning
// group's representative sample was verified correct. When no sample has an answer, the problem is unsolved.

import { compareAnswers } from '../verify/index.js';

/** Unbiased pass@k for one problem with `n` samples of which `c` are correct. Throws when k > n or inputs are bad. */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`passAtK: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(c) || c < 0 || c > n) throw new RangeError(`passAtK: c must be an integer in [0, n=${n}], got ${c}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`passAtK: k must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`passAtK: k=${k} exceeds the number of samples n=${n}`);
  if (n - c < k) return 1;
  let miss = 1;
  for (let i = n - c + 1; i <= n; i++) miss *= 1 - k / i;
  return 1 - miss;
}

/** Equivalence of two extracted answers (sync for in-thread use, or async e.g. through the verifier pool). */
export type AnswerEquivalence = (a: string, b: string) => boolean | Promise<boolean>;

/** In-thread equivalence through `compareAnswers` (no time bound: fine for trusted, small inputs and tests). */
export const compareEquivalence: AnswerEquivalence = (a, b) => a === b || compareAnswers(a, b).equal;

/** Result of a majority vote. */
export interface MajorityVote {
  /** Index (into the voted answers) of the winning group's representative, or null when no answer was extracted. */
  winner: number | null;
  /** Groups of sample indices, in order of first occurrence; each group's first index is its representative. */
  groups: number[][];
}

/**
 * Majority vote over `answers` (null = no extractable answer). Groups are formed greedily in sample order
 * (see the file header); the largest group wins, ties going to the group that appeared first.
 */
export async function majorityVote(answers: ReadonlyArray<string | null>, equivalent: AnswerEquivalence = compareEquivalence): Promise<MajorityVote> {
  const groups: number[][] = [];
  for (let i = 0; i < answers.length; i++) {
    const a = answers[i];
    if (a === null || a === undefined) continue;
    let placed = false;
    for (const g of groups) {
      const rep = answers[g[0] as number] as string;
      if (rep === a || (await equivalent(rep, a))) {
        g.push(i);
        placed = true;
        break;
      }
    }
    if (!placed) groups.push([i]);
  }
  let best: number[] | null = null;
  for (const g of groups) if (best === null || g.length > best.length) best = g; // strict: earliest group wins ties
  return { winner: best === null ? null : (best[0] as number), groups };
}

/** One verified sample of one problem. */
export interface SampleOutcome {
  /** Extracted answer, null when none. */
  answer: string | null;
  correct: boolean;
}

/** All verified samples of one problem, in sample order. */
export interface ProblemOutcome {
  id: string;
  subject?: string;
  level?: string;
  samples: SampleOutcome[];
  /** The greedy (argmax) sample, when one was generated. */
  greedy?: SampleOutcome;
}

/** Metrics over a set of problems. Keys of the maps are k as a decimal string. */
export interface MetricsBlock {
  /** Number of problems. */
  n: number;
  pass_at_k: Record<string, number>;
  maj_at_k: Record<string, number>;
  /** Fraction of problems whose greedy sample is correct (only problems with one; absent when none has). */
  greedy?: number;
  /** Number of problems with a greedy sample, when `greedy` is present. */
  greedy_n?: number;
  /** Mean fraction of correct samples over problems (= pass@1 with all samples). */
  mean_accuracy: number;
  /** Fraction of samples without an extractable answer. */
  no_answer_rate: number;
}

export interface EvalMetrics extends MetricsBlock {
  by_subject?: Record<string, MetricsBlock>;
  by_level?: Record<string, MetricsBlock>;
}

export interface MetricsOptions {
  /** The k of pass@k. */
  ks: readonly number[];
  /** The k of maj@k (default: the same as `ks`). */
  majKs?: readonly number[];
  equivalent?: AnswerEquivalence;
}

/** Per-problem values that blocks are averaged from. */
interface ProblemScores {
  subject?: string;
  level?: string;
  pass: Map<number, number>;
  maj: Map<number, number>;
  greedy: number | null;
  acc: number;
  noAnswer: number;
  samples: number;
}

function validateKs(ks: readonly number[], what: string): number[] {
  const out = [...new Set(ks)].sort((a, b) => a - b);
  for (const k of out) if (!Number.isInteger(k) || k < 1) throw new RangeError(`${what}: k must be a positive integer, got ${k}`);
  return out;
}

/**
 * Compute pass@k, maj@k, greedy accuracy and (when any problem has a subject / level) breakdowns by them.
 * Throws when a problem has fewer samples than some k (naming the problem), or when there are no problems.
 */
export async function computeMetrics(problems: readonly ProblemOutcome[], opts: MetricsOptions): Promise<EvalMetrics> {
  if (problems.length === 0) throw new RangeError('computeMetrics: no problems');
  const ks = validateKs(opts.ks, 'pass@k');
  const majKs = validateKs(opts.majKs ?? opts.ks, 'maj@k');
  const maxK = Math.max(0, ...ks, ...majKs);
  const eq = opts.equivalent ?? compareEquivalence;
  for (const p of problems) {
    const n = p.samples.length;
    if (n < maxK) throw new RangeError(`problem ${p.id}: ${n} sample${n === 1 ? '' : 's'}, fewer than k=${maxK}`);
  }
  // Problems are voted on concurrently (an async equivalence, e.g. a worker pool, then overlaps); order is kept.
  const scores: ProblemScores[] = await Promise.all(problems.map(async (p): Promise<ProblemScores> => {
    const n = p.samples.length;
    const c = p.samples.filter((s) => s.correct).length;
    const pass = new Map<number, number>();
    for (const k of ks) pass.set(k, passAtK(n, c, k));
    const maj = new Map<number, number>();
    for (const k of majKs) {
      const first = p.samples.slice(0, k);
      const vote = await majorityVote(
        first.map((s) => s.answer),
        eq,
      );
      maj.set(k, vote.winner !== null && (first[vote.winner] as SampleOutcome).correct ? 1 : 0);
    }
    return {
      subject: p.subject,
      level: p.level,
      pass,
      maj,
      greedy: p.greedy === undefined ? null : p.greedy.correct ? 1 : 0,
      acc: n === 0 ? 0 : c / n,
      noAnswer: p.samples.filter((s) => s.answer === null).length,
      samples: n,
    };
  }));
  const out: EvalMetrics = block(scores, ks, majKs);
  const bySubject = breakdown(scores, (s) => s.subject, ks, majKs);
  if (bySubject !== null) out.by_subject = bySubject;
  const byLevel = breakdown(scores, (s) => s.level, ks, majKs);
  if (byLevel !== null) out.by_level = byLevel;
  return out;
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length === 0 ? 0 : s / xs.length;
}

function block(scores: readonly ProblemScores[], ks: readonly number[], majKs: readonly number[]): MetricsBlock {
  const pass: Record<string, number> = {};
  for (const k of ks) pass[String(k)] = mean(scores.map((s) => s.pass.get(k) as number));
  const maj: Record<string, number> = {};
  for (const k of majKs) maj[String(k)] = mean(scores.map((s) => s.maj.get(k) as number));
  const totalSamples = scores.reduce((a, s) => a + s.samples, 0);
  const b: MetricsBlock = {
    n: scores.length,
    pass_at_k: pass,
    maj_at_k: maj,
    mean_accuracy: mean(scores.map((s) => s.acc)),
    no_answer_rate: totalSamples === 0 ? 0 : scores.reduce((a, s) => a + s.noAnswer, 0) / totalSamples,
  };
  const greedy = scores.filter((s) => s.greedy !== null).map((s) => s.greedy as number);
  if (greedy.length > 0) {
    b.greedy = mean(greedy);
    b.greedy_n = greedy.length;
  }
  return b;
}

/** Blocks per key, sorted by key (numeric keys numerically); null when no problem has a key. */
function breakdown(
  scores: readonly ProblemScores[],
  key: (s: ProblemScores) => string | undefined,
  ks: readonly number[],
  majKs: readonly number[],
): Record<string, MetricsBlock> | null {
  const groups = new Map<string, ProblemScores[]>();
  for (const s of scores) {
    const k = key(s);
    if (k === undefined) continue;
    let g = groups.get(k);
    if (g === undefined) groups.set(k, (g = []));
    g.push(s);
  }
  if (groups.size === 0) return null;
  const keys = [...groups.keys()].sort((a, b) => {
    const na = Number(a);
    const nb = Number(b);
    if (a !== '' && b !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const out: Record<string, MetricsBlock> = {};
  for (const k of keys) out[k] = block(groups.get(k) as ProblemScores[], ks, majKs);
  return out;
}
