// How a response is written, as opposed to whether it is right: answer-only (a bare `\boxed{...}` with no working;
// half the main job's SFT data is written that way) or worked. The main job's RL learns to drop the bare style
// (README "Main job"); scripts/answer-style.ts and `oreal rm-probe` break their numbers down by it.

/** A response is answer-only when nothing but a `\boxed{...}` is written. */
export function isAnswerOnlyResponse(text: string): boolean {
  return /^\s*\\boxed\{[^\n]*\}\s*$/.test(text);
}
