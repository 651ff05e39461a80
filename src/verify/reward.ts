// The OREAL reward: truncation check, answer-section split, rule verifier, optional LLM judge.
//
// Differences from the reference, all options: the judge can also review rule-"correct" verdicts (catching rule
// false positives), and a judge failure is never silent: its reason is reported and the policy for it is a choice
// (−1 as in the reference, drop the group, or keep the rule verdict).

import type { Verdict } from './types.js';
import type { JudgeRequest, JudgeResult } from './judge.js';

/** Anything that verifies a response against a gold answer (e.g. `VerifierPool`). */
export interface RuleVerifier {
  verify(response: string, gold: string): Promise<Verdict>;
}

/** Anything that judges like `LlmJudge` (structural, so tests and other backends can stand in). */
export interface AnswerJudge {
  judge(req: JudgeRequest): Promise<JudgeResult>;
}

/** When the LLM judge is asked. */
export type JudgeMode = 'off' | 'rescue' | 'review';

/** What a judge failure turns into. */
export type JudgeFailurePolicy = 'negative' | 'drop' | 'rule';

export interface RewardOptions {
  /** Stop word that a finished response ends with (default `<|im_end|>`). */
  stopWord?: string;
  /** "Thinking finished" markers; the text after the last one is judged. */
  thinkMarkers?: string[];
  /** Rule verifier; default: the in-thread `verifyResponse` of `./index.js`. */
  verifier?: RuleVerifier;
  /** LLM judge, required unless `judgeMode` is 'off'. */
  judge?: AnswerJudge;
  /**
   * 'rescue' (the reference): judge only when the rules do not say correct; 'review': judge every response, so
   * the judge can also overturn a rule "correct". Default 'rescue' when a judge is given, else 'off'.
   */
  judgeMode?: JudgeMode;
  /** 'negative' (reference): −1; 'drop': reward null so the trainer drops the group; 'rule': keep the rule verdict. */
  onJudgeFailure?: JudgeFailurePolicy;
  /** computeRewards only: how many items run at once (default: all; the judge and verifier pool limit themselves). */
  batchConcurrency?: number;
}

export interface RewardInput {
  response: string;
  gold: string;
  question?: string;
  /** Whether generation stopped on the stop token; when undefined the response text is checked for the stop word. */
  finishedWithStop?: boolean;
}

export interface RewardResult {
  /** +1 correct, −1 incorrect or truncated, null when the sample should be dropped. */
  reward: 1 | -1 | null;
  /** Final correctness; null when unknown (judge failed and no rule verdict was kept). */
  correct: boolean | null;
  extracted: string | null;
  reason: string;
  /** The rule verifier's verdict; null when it did not run (truncation) or failed. */
  ruleCorrect: boolean | null;
  /** Whether the LLM judge was asked. */
  judged: boolean;
  judgeVerdict?: 'correct' | 'incorrect' | 'error';
}

export const DEFAULT_STOP_WORD = '<|im_end|>';
export const DEFAULT_THINK_MARKERS: readonly string[] = ['</think>', '**Final Answer**', '<conclude>'];

/** The text after the last occurrence of any marker, or the whole text when none occurs. */
export function answerSection(text: string, markers: readonly string[] = DEFAULT_THINK_MARKERS): string {
  let cut = -1;
  for (const m of markers) {
    if (m === '') continue;
    const i = text.lastIndexOf(m);
    if (i >= 0 && i + m.length > cut) cut = i + m.length;
  }
  return cut >= 0 ? text.slice(cut) : text;
}

/** Whether the response ended on its own, and the response with the trailing stop word removed. */
export function stripStopWord(
  response: string,
  stopWord: string,
  finishedWithStop: boolean | undefined,
): { finished: boolean; text: string } {
  const trimmed = response.trimEnd();
  const endsWithStop = stopWord !== '' && trimmed.endsWith(stopWord);
  const text = endsWithStop ? trimmed.slice(0, trimmed.length - stopWord.length) : response;
  const finished = finishedWithStop ?? endsWithStop;
  return { finished, text };
}

type VerifyFn = (response: string, gold: string) => Verdict;
let defaultVerifyFn: Promise<VerifyFn> | null = null;

/** The in-thread `verifyResponse`, loaded lazily so this module does not depend on `./index.js` at load time. */
function loadDefaultVerify(): Promise<VerifyFn> {
  if (defaultVerifyFn === null) {
    const spec = new URL('./index.js', import.meta.url).href;
    defaultVerifyFn = import(spec).then((mod: Record<string, unknown>) => {
      const fn = mod.verifyResponse;
      if (typeof fn !== 'function') throw new Error('verify/index.js does not export verifyResponse');
      return fn as VerifyFn;
    });
    defaultVerifyFn.catch(() => {
      defaultVerifyFn = null;
    });
  }
  return defaultVerifyFn;
}

const defaultVerifier: RuleVerifier = {
  async verify(response, gold) {
    const fn = await loadDefaultVerify();
    return fn(response, gold);
  },
};

function resolveMode(opts: RewardOptions): JudgeMode {
  const mode = opts.judgeMode ?? (opts.judge ? 'rescue' : 'off');
  if (mode !== 'off' && !opts.judge) throw new Error(`computeReward: judgeMode '${mode}' needs a judge`);
  return mode;
}

/** Compute the reward of one response. Throws only on a configuration error (a judge mode without a judge). */
export async function computeReward(input: RewardInput, opts: RewardOptions = {}): Promise<RewardResult> {
  const mode = resolveMode(opts);
  const stopWord = opts.stopWord ?? DEFAULT_STOP_WORD;
  const { finished, text } = stripStopWord(input.response, stopWord, input.finishedWithStop);
  if (!finished) {
    return {
      reward: -1,
      correct: false,
      extracted: null,
      reason: 'truncated: no stop word',
      ruleCorrect: null,
      judged: false,
    };
  }
  const section = answerSection(text, opts.thinkMarkers ?? DEFAULT_THINK_MARKERS);

  // 1. Rules.
  let rule: Verdict | null = null;
  let ruleError: string | null = null;
  try {
    rule = await (opts.verifier ?? defaultVerifier).verify(section, input.gold);
  } catch (err) {
    ruleError = `rule verifier failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  const ruleCorrect = rule ? rule.correct : null;
  const extracted = rule ? rule.extracted : null;
  const ruleReason = rule ? `rule: ${rule.reason}` : (ruleError ?? 'rule verifier failed');

  const needJudge = mode === 'review' || (mode === 'rescue' && ruleCorrect !== true);
  if (!needJudge || !opts.judge) {
    const ok = ruleCorrect === true;
    return { reward: ok ? 1 : -1, correct: ok, extracted, reason: ruleReason, ruleCorrect, judged: false };
  }

  // 2. Judge.
  const res = await opts.judge.judge({ question: input.question, gold: input.gold, answer: section });
  if (res.verdict !== 'error') {
    const ok = res.verdict === 'correct';
    let how: string;
    if (ruleCorrect === null) how = `judge: ${res.verdict}`;
    else if (ruleCorrect === ok) how = `judge agrees: ${res.verdict}`;
    else how = ok ? 'judge rescued rule-incorrect: correct' : 'judge overturned rule-correct: incorrect';
    return {
      reward: ok ? 1 : -1,
      correct: ok,
      extracted,
      reason: `${how}; ${ruleReason}`,
      ruleCorrect,
      judged: true,
      judgeVerdict: res.verdict,
    };
  }

  const policy = opts.onJudgeFailure ?? 'negative';
  const base = { extracted, ruleCorrect, judged: true, judgeVerdict: 'error' as const };
  const failed = `judge failed: ${res.error}`;
  switch (policy) {
    case 'negative':
      return { ...base, reward: -1, correct: null, reason: `${failed}; policy negative: reward -1; ${ruleReason}` };
    case 'drop':
      return { ...base, reward: null, correct: null, reason: `${failed}; policy drop: reward null; ${ruleReason}` };
    case 'rule': {
      const ok = ruleCorrect === true;
      return {
        ...base,
        reward: ok ? 1 : -1,
        correct: ruleCorrect === null ? null : ok,
        reason: `${failed}; policy rule: kept rule verdict ${ok ? 'correct' : 'incorrect'}; ${ruleReason}`,
      };
    }
  }
}

/** Compute rewards for a batch, in input order. Judge concurrency is limited by the judge itself. */
export async function computeRewards(batch: readonly RewardInput[], opts: RewardOptions = {}): Promise<RewardResult[]> {
  resolveMode(opts); // fail fast on configuration errors
  const limit = opts.batchConcurrency ?? batch.length;
  if (!Number.isInteger(limit) || limit < 1) {
    if (batch.length === 0) return [];
    throw new Error(`computeRewards: batchConcurrency must be a positive integer, got ${limit}`);
  }
  const out: RewardResult[] = new Array<RewardResult>(batch.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= batch.length) return;
      const item = batch[i];
      if (item === undefined) return;
      out[i] = await computeReward(item, opts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, () => worker()));
  return out;
}
