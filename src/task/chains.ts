// A second synthetic task, kept apart from the main job's, on which token-level credit assignment can matter: long
// chains of integer operations (6–8 of them, about 100 tokens with the bundled tokenizer), solved one step per line,
// so that a wrong answer usually holds one bad step among many good ones. Every step line states its equation
// `a op b = c` in full (written `22-30=-8`; the phrasing around it varies), which makes each line checkable on its
// own: `checkChain` finds the first wrong line of any response, the ground truth that an oracle token weighting
// (w⁻ = 1 from the first wrong line on) and the ablation's "share of negative weight on or after the first error"
// need.
//
// The systematic error. `writeSolution` can make the mistake a starting policy is meant to have: on a subtraction
// whose result crosses below zero (a ≥ 0, a − b < 0) it drops the sign, writing |a − b|, and carries the wrong value
// on confidently. The error is local (the line is checkably wrong) and systematic (always the same kind of step).
//
// Determinism and splits follow src/task/arith.ts: everything derives from a seed through its Mulberry32, and a problem is
// held out when a hash of its question falls in a fixed 20 % bucket (salted apart from the arithmetic task's).
import { Mulberry32 } from '../util/rng.js';
import { fnv1a } from './arith.js';

export type ChainSplit = 'train' | 'heldout';
export type ChainOp = '+' | '-' | '*';

export interface ChainStep {
  op: ChainOp;
  operand: number;
}

export interface ChainProblem {
  /** `chain-` + 8 hex digits of the question's hash. */
  id: string;
  question: string;
  start: number;
  steps: readonly ChainStep[];
  /** The exact result, as the gold answer string. */
  answer: string;
  /** Indices of the steps that are subtractions crossing below zero (where the systematic error strikes). */
  crossingSteps: readonly number[];
}

const OP_WORDS: Record<ChainOp, readonly string[]> = {
  '+': ['add', 'plus'],
  '-': ['subtract', 'minus'],
  '*': ['multiply by', 'times'],
};

function apply(a: number, s: ChainStep): number {
  return s.op === '+' ? a + s.operand : s.op === '-' ? a - s.operand : a * s.operand;
}

/** The split a question belongs to. */
export function chainSplit(question: string): ChainSplit {
  return fnv1a('oreal-chains-split/' + question) % 5 === 0 ? 'heldout' : 'train';
}

/** Largest magnitude a chain's value may reach. Small numbers keep each step an easy two-digit sum for a 1M-parameter
 * policy, so that its errors are mostly the systematic one and a few slips, not arithmetic it cannot do. */
export const CHAIN_VALUE_BOUND = 60;

/**
 * One problem: a start value and 6–8 operations. Values stay within ±CHAIN_VALUE_BOUND; multiplications are by 2 or 3
 * and only of values up to 15; operands are at most 20; many subtractions are drawn to cross below zero.
 */
export function generateChain(rng: Mulberry32): ChainProblem {
  const n = rng.int(6, 8);
  const start = rng.int(2, 20);
  const steps: ChainStep[] = [];
  const crossing: number[] = [];
  let v = start;
  while (steps.length < n) {
    const r = rng.next();
    let s: ChainStep;
    if (r < 0.15 && Math.abs(v) <= 15) s = { op: '*', operand: rng.int(2, 3) };
    else if (r < 0.55) s = { op: '+', operand: rng.int(2, 20) };
    else if (v >= 0 && rng.bool(0.45)) s = { op: '-', operand: v + rng.int(1, 15) }; // crosses below zero
    else s = { op: '-', operand: rng.int(2, 20) };
    const next = apply(v, s);
    if (Math.abs(next) > CHAIN_VALUE_BOUND) continue;
    if (s.op === '-' && v >= 0 && next < 0) crossing.push(steps.length);
    steps.push(s);
    v = next;
  }
  const ops = steps.map((s) => `${OP_WORDS[s.op][0]} ${s.operand}`);
  const question = `Start with ${start}. ${ops.map((o) => o[0]!.toUpperCase() + o.slice(1)).join(', then ')}. What is the result?`;
  return {
    id: 'chain-' + fnv1a(question).toString(16).padStart(8, '0'),
    question,
    start,
    steps,
    answer: String(v),
    crossingSteps: crossing,
  };
}

export interface WriteOptions {
  /** Drop the sign of a subtraction that crosses below zero, each such step independently with this probability. */
  signDropRate?: number;
}

/** A written solution and which line (if any) is the first wrong one. */
export interface WrittenSolution {
  text: string;
  /** The value the solution ends with (the box's content). */
  final: number;
  /** Index of the first step line whose equation is false, or null when every step is right. */
  firstError: number | null;
}

/**
 * A worked solution, one step per line, each line `a op b = c` inside a varied phrasing, ending with
 * `The answer is \boxed{c}.` With `signDropRate`, crossing subtractions may be written with the sign dropped.
 */
export function writeSolution(p: ChainProblem, rng: Mulberry32, opts: WriteOptions = {}): WrittenSolution {
  const drop = opts.signDropRate ?? 0;
  const lines: string[] = [];
  let v = p.start;
  let firstError: number | null = null;
  p.steps.forEach((s, i) => {
    let c = apply(v, s);
    if (s.op === '-' && v >= 0 && c < 0 && drop > 0 && rng.bool(drop)) {
      c = -c;
      firstError ??= i;
    }
    const eq = `${v}${s.op}${s.operand}=${c}`;
    // Compact equations and short phrasings (the bundled tokenizer spells most text a character a token): a solution
    // stays near 100 tokens.
    const line = rng.pick([`${eq}`, `${eq}.`, `So ${eq}`, `Then ${eq}`, `${rng.pick(OP_WORDS[s.op])}: ${eq}`]);
    lines.push(line);
    v = c;
  });
  lines.push(`The answer is \\boxed{${v}}.`);
  return { text: lines.join('\n'), final: v, firstError };
}

/** A step line's claim, as parsed back from text. */
export interface CheckedLine {
  /** Character offset of the line in the response. */
  offset: number;
  text: string;
  /** The equation found on the line; null for a line without one. */
  equation: { a: number; op: ChainOp; b: number; c: number } | null;
  /** The equation is arithmetically true and its left operand is the previous line's result (or the start value). */
  ok: boolean;
}

export interface ChainCheck {
  lines: CheckedLine[];
  /** Index into `lines` of the first line that is not ok, or null when all equation lines are. */
  firstError: number | null;
  /** Character offset where that line starts (for mapping to tokens), or null. */
  firstErrorOffset: number | null;
}

const EQ = /(-?\d+)\s*([+\-*])\s*(\d+)\s*=\s*(-?\d+)/;

/**
 * Checks a response to `p` line by line: the k-th line with an equation must do the problem's k-th step (its operation
 * and operand: a skipped, repeated or misread step is wrong), be true, and continue the chain from the previous
 * result (the first from `p.start`); an equation line after the last step is wrong. Lines without an equation (the
 * closing sentence) are not judged.
 */
export function checkChain(p: ChainProblem, response: string): ChainCheck {
  const lines: CheckedLine[] = [];
  let offset = 0;
  let prev = p.start;
  let firstError: number | null = null;
  let k = 0;
  for (const text of response.split('\n')) {
    const m = EQ.exec(text);
    let equation: CheckedLine['equation'] = null;
    let ok = true;
    if (m !== null) {
      const op = m[2] as ChainOp;
      equation = { a: Number(m[1]), op, b: Number(m[3]), c: Number(m[4]) };
      const step = p.steps[k++];
      ok =
        step !== undefined &&
        step.op === op &&
        step.operand === equation.b &&
        equation.a === prev &&
        apply(equation.a, { op, operand: equation.b }) === equation.c;
      prev = equation.c;
    }
    if (!ok && firstError === null) firstError = lines.length;
    lines.push({ offset, text, equation, ok });
    offset += text.length + 1;
  }
  return { lines, firstError, firstErrorOffset: firstError === null ? null : lines[firstError]!.offset };
}

/** `n` distinct problems of one split, deterministic in (`split`, `n`, `seed`). */
export function makeChainSplit(split: ChainSplit, n: number, seed: number): ChainProblem[] {
  if (split !== 'train' && split !== 'heldout') throw new Error(`chains: unknown split ${String(split)}`);
  const rng = new Mulberry32(fnv1a(`chains/${split}/${seed}`));
  const out: ChainProblem[] = [];
  const seen = new Set<string>();
  let misses = 0;
  while (out.length < n) {
    const p = generateChain(rng);
    if (chainSplit(p.question) !== split || seen.has(p.question)) {
      if (++misses > 200 * n + 10000) throw new Error(`chains: cannot draw ${n} distinct ${split} problems`);
      continue;
    }
    seen.add(p.question);
    out.push(p);
  }
  return out;
}

const WORD_OP: Record<string, ChainOp> = { add: '+', subtract: '-', 'multiply by': '*' };

/**
 * The problem a chain question states, rebuilt from its text alone (prompt files carry only question and gold
 * answer), or null when the text is not a chain question. Inverse of the question `generateChain` writes.
 */
export function parseChainQuestion(question: string): ChainProblem | null {
  const m = /^Start with (\d+)\. (.*)\. What is the result\?$/.exec(question);
  if (m === null) return null;
  const start = Number(m[1]);
  const steps: ChainStep[] = [];
  const crossing: number[] = [];
  let v = start;
  for (const part of m[2]!.split(', then ')) {
    const s = /^(Add|Subtract|Multiply by) (\d+)$/.exec(part);
    if (s === null) return null;
    const step: ChainStep = { op: WORD_OP[s[1]!.toLowerCase()]!, operand: Number(s[2]) };
    const next = apply(v, step);
    if (step.op === '-' && v >= 0 && next < 0) crossing.push(steps.length);
    steps.push(step);
    v = next;
  }
  return {
    id: 'chain-' + fnv1a(question).toString(16).padStart(8, '0'),
    question,
    start,
    steps,
    answer: String(v),
    crossingSteps: crossing,
  };
}

/**
 * What went wrong first in a response, by its first wrong line (`checkChain`): `none` when every equation line holds;
 * `sign-drop` when that line is a subtraction crossing below zero from the right value with only the result's sign
 * wrong (the starting policy's systematic error); `other` for any other wrong line.
 */
export type ChainErrorKind = 'none' | 'sign-drop' | 'other';

/** Per-line tallies of a response, judged locally (each line against the value the previous line produced). */
export interface ChainResponseStats {
  firstError: ChainErrorKind;
  /** Equation lines that are subtractions crossing below zero from their own left operand, and how many of them
   *  drop the result's sign. */
  crossingLines: number;
  signDrops: number;
  /** Other equation lines, and how many of them are right. */
  otherLines: number;
  otherRight: number;
}

function isSignDrop(e: NonNullable<CheckedLine['equation']>): boolean {
  const true_ = apply(e.a, { op: e.op, operand: e.b });
  return e.op === '-' && e.a >= 0 && true_ < 0 && e.c === -true_;
}

/** Classifies a response to `p` by its first error and tallies its lines (see ChainResponseStats). */
export function chainResponseStats(p: ChainProblem, response: string): ChainResponseStats {
  const c = checkChain(p, response);
  const st: ChainResponseStats = { firstError: 'none', crossingLines: 0, signDrops: 0, otherLines: 0, otherRight: 0 };
  let prev = p.start;
  for (const l of c.lines) {
    const e = l.equation;
    if (e === null) continue;
    // A line is judged from the value it was handed; one that does not continue the chain counts as wrong.
    const crossing = e.op === '-' && e.a >= 0 && e.a - e.b < 0;
    if (crossing && e.a === prev) {
      st.crossingLines++;
      if (isSignDrop(e)) st.signDrops++;
    } else {
      st.otherLines++;
      if (l.ok) st.otherRight++;
    }
    prev = e.c;
  }
  if (c.firstError !== null) {
    const l = c.lines[c.firstError]!;
    const prevValue = c.firstError === 0 ? p.start : (c.lines.slice(0, c.firstError).reverse().find((x) => x.equation !== null)?.equation?.c ?? p.start);
    st.firstError = l.equation !== null && l.equation.a === prevValue && isSignDrop(l.equation) ? 'sign-drop' : 'other';
  }
  return st;
}

/**
 * The step checker's blame for a response given as its tokens' text pieces (in order; their concatenation is the
 * response): 1 for every token that starts at or after the first wrong line (`checkChain`), 0 before. A response with
 * no wrong line can still be wrong (a bad box, a chain stopped early): then the blame starts at the first line after
 * the last equation line (the closing sentence), and with no such line, or no equation at all, every token is blamed
 * (the sequence-level verdict).
 */
export function chainBlame(p: ChainProblem, pieces: readonly string[]): Float64Array {
  return chainMasks(p, pieces).fromError;
}

/**
 * `chainBlame` (fromError) and the first wrong line's mask (errorStep: 1 on the tokens that start on that line, its
 * newline included, 0 elsewhere). Without a wrong line both are the same sequence-level fallback.
 */
export function chainMasks(p: ChainProblem, pieces: readonly string[]): { fromError: Float64Array; errorStep: Float64Array } {
  const text = pieces.join('');
  const c = checkChain(p, text);
  let from = c.firstErrorOffset;
  let to = Infinity;
  if (from !== null) {
    const line = c.lines[c.firstError!]!;
    to = line.offset + line.text.length + 1;
  } else {
    let last = -1;
    c.lines.forEach((l, i) => {
      if (l.equation !== null) last = i;
    });
    const after = last >= 0 ? c.lines.slice(last + 1).find((l) => l.text.trim() !== '') : undefined;
    from = after?.offset ?? 0;
  }
  const fromError = new Float64Array(pieces.length);
  const errorStep = new Float64Array(pieces.length);
  let at = 0;
  pieces.forEach((piece, t) => {
    fromError[t] = at >= from! ? 1 : 0;
    errorStep[t] = at >= from! && at < to ? 1 : 0;
    at += piece.length;
  });
  return { fromError, errorStep };
}

/** A step checker over response token pieces: the masks of `chainMasks` for the problem a question states. */
export type StepChecker = (question: string, pieces: readonly string[]) => { fromError: Float64Array; errorStep: Float64Array };

/**
 * The chain task's step checker for a prompt set, or null when some prompt is not a chain problem (the checker only
 * knows this task). With `required` (token_weight_source oracle) that is an error naming the prompt's file:line.
 */
export function chainStepChecker(prompts: ReadonlyArray<{ question: string; source: string }>, required: boolean): StepChecker | null {
  const problems = new Map<string, ChainProblem>();
  for (const p of prompts) {
    if (problems.has(p.question)) continue;
    const c = parseChainQuestion(p.question);
    if (c === null) {
      if (!required) return null;
      throw new Error(
        `${p.source}: token_weight_source oracle needs a task whose steps can be checked, and this question is not a ` +
          `chain problem (the one task with a step checker, src/task/chains.ts): ${JSON.stringify(p.question.slice(0, 80))}`,
      );
    }
    problems.set(p.question, c);
  }
  return (question, pieces) => {
    const p = problems.get(question) ?? parseChainQuestion(question);
    if (p == null) throw new Error(`step checker: not a chain problem: ${JSON.stringify(question.slice(0, 80))}`);
    return chainMasks(p, pieces);
  };
}
