// Shared value types of the verifier: each stage (extract → compare → judge → reward) passes plain values.

/** How an answer was found in a response. */
export type ExtractionMethod = 'boxed' | 'phrase' | 'bare' | 'none';

/** The final answer found in a model response, or null with the reason there is none. */
export interface Extraction {
  /** Answer text as written (box contents, phrase tail, or the whole short response); null when there is no answer. */
  answer: string | null;
  method: ExtractionMethod;
  /** Human-readable explanation, e.g. "last \\boxed{}", "unfinished <think>", "no final answer". */
  reason: string;
}

/** Outcome of comparing an extracted answer with a gold answer. */
export interface Comparison {
  equal: boolean;
  /** Why, e.g. "equal rationals 1/2", "interval bracket differs", "unparseable answer". */
  reason: string;
}

/** A full rule-based verdict on one (response, gold) pair. */
export interface Verdict {
  correct: boolean;
  extracted: string | null;
  reason: string;
}
