// A procedurally generated synthetic math task family with exact gold answers, for training and evaluating tiny
// policies on CPU: multi-step integer arithmetic, linear equations, fractions, percentages and decimals, each at
// difficulty levels 1–5. Every problem comes with a short worked solution in one consistent style that ends in
// `\boxed{gold}`, and the gold is written the way real datasets write answers: `12`, `-7`, `\frac{3}{4}`,
// `-\frac{1}{2}`, `4.75`.
//
// Determinism: everything derives from a seed through a small counter-based PRNG (Mulberry32, src/util/rng.ts).
// Splits: a problem belongs to `heldout` when a hash of its question text falls in a fixed 20 % bucket, otherwise to
// `train`, so the two splits never share a problem whatever seeds they were drawn with.

import { Mulberry32 } from '../util/rng.js';

export type ArithFamily = 'arith' | 'lineq' | 'frac' | 'percent' | 'decimal';
export type ArithSplit = 'train' | 'heldout';

export const ARITH_FAMILIES: readonly ArithFamily[] = ['arith', 'lineq', 'frac', 'percent', 'decimal'];
export const ARITH_LEVELS: readonly number[] = [1, 2, 3, 4, 5];

export interface ArithProblem {
  /** Stable id derived from the question text (`arith-` + 8 hex digits of its hash). */
  id: string;
  family: ArithFamily;
  /** Difficulty 1 (one step, small numbers) … 5 (several steps, larger numbers). */
  level: number;
  question: string;
  /** Worked chain of thought ending in `\boxed{answer}`. */
  solution: string;
  /** Gold answer in LaTeX (integer, negative, reduced `\frac{a}{b}`, or decimal). */
  answer: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Hashing (the seeded generator is src/util/rng.ts's Mulberry32).

/** FNV-1a 32-bit hash of a string's UTF-16 code units. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The split a question belongs to: `heldout` for a fixed 20 % hash bucket, `train` otherwise. */
export function problemSplit(question: string): ArithSplit {
  return fnv1a('oreal-arith-split/' + question) % 5 === 0 ? 'heldout' : 'train';
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting helpers.

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** `\frac{n}{d}` (reduced, sign in front, integer when d divides n). */
export function fracLatex(n: number, d: number): string {
  if (d === 0) throw new Error('fracLatex: zero denominator');
  if (d < 0) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d) || 1;
  n /= g;
  d /= g;
  if (d === 1) return String(n);
  return n < 0 ? `-\\frac{${-n}}{${d}}` : `\\frac{${n}}{${d}}`;
}

/** `\frac{n}{d}` exactly as given (not reduced; for intermediate steps). */
function rawFrac(n: number, d: number): string {
  return n < 0 ? `-\\frac{${-n}}{${d}}` : `\\frac{${n}}{${d}}`;
}

/** A number of hundredths as a decimal without trailing zeros: 475 → "4.75", -50 → "-0.5", 300 → "3". */
export function centsLatex(c: number): string {
  const neg = c < 0;
  const a = Math.abs(c);
  const ip = Math.floor(a / 100);
  const fp = a % 100;
  let s = String(ip);
  if (fp !== 0) s += '.' + String(fp).padStart(2, '0').replace(/0+$/, '');
  return neg && a !== 0 ? '-' + s : s;
}

function boxed(ans: string): string {
  return `\\boxed{${ans}}`;
}

function finish(family: ArithFamily, level: number, question: string, steps: string[], answer: string): ArithProblem {
  return {
    id: 'arith-' + fnv1a(question).toString(16).padStart(8, '0'),
    family,
    level,
    question,
    solution: [...steps, boxed(answer)].join('\n'),
    answer,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Family: multi-step integer arithmetic with + − * (multiplications first, then left to right).

type Op = '+' | '-' | '*';

function genArith(rng: Mulberry32, level: number): ArithProblem {
  const spec: Record<number, { ops: number; max: number; mul: number; mulMax: number }> = {
    1: { ops: 1, max: 20, mul: 0, mulMax: 9 },
    2: { ops: 2, max: 30, mul: 0, mulMax: 9 },
    3: { ops: 2, max: 40, mul: 1, mulMax: 9 },
    4: { ops: 3, max: 50, mul: 1, mulMax: 12 },
    5: { ops: 3, max: 99, mul: 2, mulMax: 12 },
  };
  const sp = spec[level]!;
  const ops: Op[] = [];
  for (let i = 0; i < sp.ops; i++) ops.push(rng.bool() ? '+' : '-');
  // Place the multiplications at distinct random positions.
  const slots = [...ops.keys()];
  for (let m = 0; m < sp.mul && slots.length > 0; m++) {
    const k = slots.splice(rng.int(0, slots.length - 1), 1)[0]!;
    ops[k] = '*';
  }
  const nums: number[] = [];
  for (let i = 0; i <= sp.ops; i++) {
    const inMul = (i > 0 && ops[i - 1] === '*') || (i < ops.length && ops[i] === '*');
    nums.push(inMul ? rng.int(2, sp.mulMax) : rng.int(1, sp.max));
  }
  let question = 'Compute ' + String(nums[0]);
  for (let i = 0; i < ops.length; i++) question += ops[i]! + String(nums[i + 1]);
  question += '.';
  const steps: string[] = [];
  // Reduce the multiplications first, left to right.
  const v = nums.slice();
  const o = ops.slice();
  for (let i = 0; i < o.length; ) {
    if (o[i] === '*') {
      const r = v[i]! * v[i + 1]!;
      steps.push(`${v[i]}*${v[i + 1]}=${r}`);
      v.splice(i, 2, r);
      o.splice(i, 1);
    } else i++;
  }
  let acc = v[0]!;
  for (let i = 0; i < o.length; i++) {
    const b = v[i + 1]!;
    const r = o[i] === '+' ? acc + b : acc - b;
    steps.push(`${acc}${o[i]}${b}=${r}`);
    acc = r;
  }
  if (steps.length === 0) steps.push(`${acc}`);
  return finish('arith', level, question, steps, String(acc));
}

// ---------------------------------------------------------------------------------------------------------------
// Family: linear equations in x with an integer solution.

function lin(a: number, b: number): string {
  // a·x + b, written compactly: "3x+7", "-x-2", "x".
  const ax = a === 1 ? 'x' : a === -1 ? '-x' : `${a}x`;
  if (b === 0) return ax;
  return b > 0 ? `${ax}+${b}` : `${ax}${b}`;
}

function paren(n: number): string {
  return n < 0 ? `(${n})` : String(n);
}

function genLineq(rng: Mulberry32, level: number): ArithProblem {
  let x: number;
  let question: string;
  const steps: string[] = [];
  switch (level) {
    case 1: {
      // x + b = c
      x = rng.int(1, 20);
      const b = rng.nonZero(-15, 15);
      const c = x + b;
      question = `Solve for x: ${lin(1, b)}=${c}.`;
      steps.push(b > 0 ? `x=${c}-${b}=${x}` : `x=${c}+${-b}=${x}`);
      break;
    }
    case 2: {
      // a x = c
      x = rng.int(1, 20);
      const a = rng.int(2, 12);
      const c = a * x;
      question = `Solve for x: ${a}x=${c}.`;
      steps.push(`x=${c}/${a}=${x}`);
      break;
    }
    case 3:
    case 4: {
      // a x + b = c (level 4: negative a or x allowed)
      const neg = level === 4;
      x = neg ? rng.nonZero(-12, 12) : rng.int(1, 12);
      const a = neg ? (rng.bool() ? -1 : 1) * rng.int(2, 9) : rng.int(2, 9);
      const b = rng.nonZero(-20, 20);
      const c = a * x + b;
      question = `Solve for x: ${lin(a, b)}=${c}.`;
      const ax = a * x;
      steps.push(b > 0 ? `${a}x=${c}-${b}=${ax}` : `${a}x=${c}+${-b}=${ax}`);
      steps.push(`x=${ax}/${paren(a)}=${x}`);
      break;
    }
    default: {
      // a x + b = c x + d with a > c
      x = rng.nonZero(-10, 10);
      const c = rng.int(1, 6);
      const a = c + rng.int(1, 6);
      const b = rng.nonZero(-20, 20);
      const d = (a - c) * x + b;
      question = `Solve for x: ${lin(a, b)}=${lin(c, d)}.`;
      const k = a - c;
      const rhs = d - b;
      const kx = k === 1 ? 'x' : `${k}x`;
      steps.push(b > 0 ? `${kx}=${d}-${b}=${rhs}` : `${kx}=${d}+${-b}=${rhs}`);
      if (k !== 1) steps.push(`x=${rhs}/${k}=${x}`);
      break;
    }
  }
  return finish('lineq', level, question, steps, String(x));
}

// ---------------------------------------------------------------------------------------------------------------
// Family: fractions (add, subtract, multiply), answers reduced.

/** A numerator in [1, max] (default d − 1) coprime to d. */
function coprimeBelow(rng: Mulberry32, d: number, max = d - 1): number {
  for (;;) {
    const a = rng.int(1, max);
    if (gcd(a, d) === 1) return a;
  }
}

function genFrac(rng: Mulberry32, level: number): ArithProblem {
  const steps: string[] = [];
  let question: string;
  let num: number;
  let den: number;
  const reduceStep = (n: number, d: number): void => {
    const red = fracLatex(n, d);
    if (red !== rawFrac(n, d)) steps[steps.length - 1] += `=${red}`;
  };
  if (level === 1) {
    // same denominator
    const d = rng.int(3, 12);
    const a = coprimeBelow(rng, d);
    const b = coprimeBelow(rng, d);
    question = `Compute ${rawFrac(a, d)}+${rawFrac(b, d)}.`;
    num = a + b;
    den = d;
    steps.push(`\\frac{${a}+${b}}{${d}}=${rawFrac(num, den)}`);
    reduceStep(num, den);
  } else if (level === 5) {
    // product
    const b = rng.int(2, 9);
    const d = rng.int(2, 9);
    const a = coprimeBelow(rng, b, 9);
    const c = coprimeBelow(rng, d, 9);
    question = `Compute ${rawFrac(a, b)}*${rawFrac(c, d)}.`;
    num = a * c;
    den = b * d;
    steps.push(`\\frac{${a}*${c}}{${b}*${d}}=${rawFrac(num, den)}`);
    reduceStep(num, den);
  } else {
    // level 2: one denominator a multiple of the other; 3: coprime small; 4: general, subtraction allowed
    let b: number;
    let d: number;
    if (level === 2) {
      b = rng.int(2, 6);
      d = b * rng.int(2, 3);
      if (rng.bool()) [b, d] = [d, b];
    } else {
      for (;;) {
        b = rng.int(2, level === 3 ? 7 : 10);
        d = rng.int(2, level === 3 ? 7 : 10);
        if (b !== d && (level === 4 || gcd(b, d) === 1)) break;
      }
    }
    const a = coprimeBelow(rng, b);
    const c = coprimeBelow(rng, d);
    const op = level === 4 && rng.bool() ? '-' : '+';
    question = `Compute ${rawFrac(a, b)}${op}${rawFrac(c, d)}.`;
    const L = (b * d) / gcd(b, d);
    const a2 = a * (L / b);
    const c2 = c * (L / d);
    num = op === '+' ? a2 + c2 : a2 - c2;
    den = L;
    steps.push(`${rawFrac(a2, L)}${op}${rawFrac(c2, L)}=${rawFrac(num, den)}`);
    reduceStep(num, den);
  }
  return finish('frac', level, question, steps, fracLatex(num, den));
}

// ---------------------------------------------------------------------------------------------------------------
// Family: percentages ("What is p% of n?").

function genPercent(rng: Mulberry32, level: number): ArithProblem {
  let p: number;
  let n: number;
  switch (level) {
    case 1:
      p = rng.pick([10, 20, 50]);
      n = 10 * rng.int(1, 50);
      break;
    case 2:
      p = rng.pick([10, 20, 25, 50, 75]);
      n = 20 * rng.int(1, 30);
      break;
    case 3:
      p = 5 * rng.int(1, 19);
      n = 20 * rng.int(1, 10);
      break;
    case 4:
      p = 5 * rng.int(1, 19);
      n = 2 * rng.int(3, 50);
      break;
    default:
      p = rng.int(2, 99);
      n = rng.int(5, 99);
      break;
  }
  const prod = p * n;
  const question = `What is ${p}% of ${n}?`;
  const steps = [`${n}*${p}=${prod}`, `${prod}/100=${centsLatex(prod)}`];
  return finish('percent', level, question, steps, centsLatex(prod));
}

// ---------------------------------------------------------------------------------------------------------------
// Family: decimals (sums, differences, products with an integer or a decimal).

function genDecimal(rng: Mulberry32, level: number): ArithProblem {
  const steps: string[] = [];
  let question: string;
  let answer: string;
  const tenth = (lo: number, hi: number): number => 10 * rng.int(lo, hi); // in hundredths
  if (level === 1 || level === 2) {
    const a = level === 1 ? tenth(1, 99) : rng.int(1, 999);
    const b = level === 1 ? tenth(1, 99) : rng.int(1, 999);
    const op = level === 2 && rng.bool() ? '-' : '+';
    const r = op === '+' ? a + b : a - b;
    question = `Compute ${centsLatex(a)}${op}${centsLatex(b)}.`;
    steps.push(`${centsLatex(a)}${op}${centsLatex(b)}=${centsLatex(r)}`);
    answer = centsLatex(r);
  } else if (level === 3) {
    const v = [rng.int(1, 999), rng.int(1, 999), rng.int(1, 999)];
    const o = [rng.bool() ? '+' : '-', rng.bool() ? '+' : '-'];
    question = `Compute ${centsLatex(v[0]!)}${o[0]}${centsLatex(v[1]!)}${o[1]}${centsLatex(v[2]!)}.`;
    let acc = v[0]!;
    for (let i = 0; i < 2; i++) {
      const r = o[i] === '+' ? acc + v[i + 1]! : acc - v[i + 1]!;
      steps.push(`${centsLatex(acc)}${o[i]}${centsLatex(v[i + 1]!)}=${centsLatex(r)}`);
      acc = r;
    }
    answer = centsLatex(acc);
  } else if (level === 4) {
    // decimal × integer
    const a = rng.int(1, 999);
    const k = rng.int(2, 9);
    const r = a * k;
    question = `Compute ${centsLatex(a)}*${k}.`;
    steps.push(`${a}*${k}=${r}`);
    steps.push(`${r}/100=${centsLatex(r)}`);
    answer = centsLatex(r);
  } else {
    // decimal (tenths) × decimal (tenths), possibly negative
    const a = rng.nonZero(-99, 99);
    const b = rng.int(2, 99);
    const r = a * b; // hundredths
    question = `Compute ${centsLatex(a * 10)}*${centsLatex(b * 10)}.`;
    steps.push(`${a}*${b}=${r}`);
    steps.push(`${r}/100=${centsLatex(r)}`);
    answer = centsLatex(r);
  }
  return finish('decimal', level, question, steps, answer);
}

const GENERATORS: Record<ArithFamily, (rng: Mulberry32, level: number) => ArithProblem> = {
  arith: genArith,
  lineq: genLineq,
  frac: genFrac,
  percent: genPercent,
  decimal: genDecimal,
};

/** One problem of a family and level, drawn from `rng`. */
export function generateProblem(rng: Mulberry32, family: ArithFamily, level: number): ArithProblem {
  if (!Number.isInteger(level) || level < 1 || level > 5) throw new Error(`arith: level ${level} not in 1..5`);
  const gen = GENERATORS[family];
  if (gen === undefined) throw new Error(`arith: unknown family ${String(family)}`);
  return gen(rng, level);
}

// ---------------------------------------------------------------------------------------------------------------
// Splits.

export interface SplitOptions {
  /** Families to draw from, with relative weights (default: all five, equal weights). */
  families?: Readonly<Partial<Record<ArithFamily, number>>>;
  /** Levels to draw from, with relative weights (default: 1–5 equally). */
  levels?: Readonly<Partial<Record<number, number>>>;
}

function weighted<T extends string | number>(rng: Mulberry32, entries: ReadonlyArray<readonly [T, number]>): T {
  let total = 0;
  for (const [, w] of entries) total += w;
  let u = rng.next() * total;
  for (const [k, w] of entries) {
    u -= w;
    if (u < 0) return k;
  }
  return entries[entries.length - 1]![0];
}

/**
 * `n` distinct problems of one split, deterministic in (`split`, `n`, `seed`, options). Problems are drawn from the
 * family/level mix and kept when their question hashes into `split` (see `problemSplit`); duplicates are skipped.
 * Throws when the mix cannot supply `n` distinct problems.
 */
export function makeSplit(split: ArithSplit, n: number, seed: number, opts: SplitOptions = {}): ArithProblem[] {
  if (split !== 'train' && split !== 'heldout') throw new Error(`arith: unknown split ${String(split)}`);
  const fams = Object.entries(opts.families ?? Object.fromEntries(ARITH_FAMILIES.map((f) => [f, 1]))).filter(
    ([, w]) => (w ?? 0) > 0,
  ) as Array<[ArithFamily, number]>;
  for (const [f] of fams) if (!ARITH_FAMILIES.includes(f)) throw new Error(`arith: unknown family ${f}`);
  const lvls = Object.entries(opts.levels ?? { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1 })
    .filter(([, w]) => (w ?? 0) > 0)
    .map(([k, w]) => [Number(k), w ?? 0] as [number, number]);
  if (fams.length === 0 || lvls.length === 0) throw new Error('arith: empty family or level mix');
  const rng = new Mulberry32(fnv1a(`${split}/${seed}`));
  const out: ArithProblem[] = [];
  const seen = new Set<string>();
  let misses = 0;
  while (out.length < n) {
    const p = generateProblem(rng, weighted(rng, fams), weighted(rng, lvls));
    if (problemSplit(p.question) !== split || seen.has(p.question)) {
      if (++misses > 200 * n + 10000) throw new Error(`arith: cannot draw ${n} distinct ${split} problems from this mix`);
      continue;
    }
    seen.add(p.question);
    out.push(p);
  }
  return out;
}
