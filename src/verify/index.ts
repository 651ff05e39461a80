// Public API of the rule-based verifier: extraction, comparison, the in-thread verifyResponse and the worker pool.

import { extractAnswer } from './extract.js';
import { compareAnswers } from './compare.js';
import { capResponse, combineVerdict, unwrapGold } from './pool.js';
import type { Verdict } from './types.js';

export { extractAnswer } from './extract.js';
export { compareAnswers } from './compare.js';
export type { Comparison, Extraction, ExtractionMethod, Verdict } from './types.js';
export {
  VerifierPool,
  capResponse,
  unwrapGold,
  combineVerdict,
  MAX_RESPONSE_CHARS,
  RESPONSE_TAIL_CHARS,
} from './pool.js';
export type { VerifierPoolOptions, VerifierPoolStats } from './pool.js';

/**
 * Rule verdict on one response, in the calling thread (no time bound: use {@link VerifierPool} for untrusted
 * input). Over-long responses are cut as by {@link capResponse}; the gold may be wrapped in `\boxed{}`.
 * `extracted` is the extracted answer (null when none); `reason` joins the extraction and comparison reasons.
 */
export function verifyResponse(response: string, gold: string): Verdict {
  const extraction = extractAnswer(capResponse(response));
  if (extraction.answer === null) return combineVerdict(extraction, null);
  return combineVerdict(extraction, compareAnswers(unwrapGold(gold), extraction.answer));
}
