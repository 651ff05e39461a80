// Evaluation of parsed answers: exact rational evaluation (with size caps), complex floating-point
// evaluation, free variables, ± expansion and a canonical printer for structural equality.

import type { Node } from './latex.js';
import * as Q from './rational.js';
import { TooBigError, type Rational } from './rational.js';
import { seededRng } from '../util/rng.js';

export { TooBigError };

// ---------------------------------------------------------------- helpers over the AST

export function children(n: Node): Node[] {
  switch (n.k) {
    case 'add':
      return n.terms;
    case 'mul':
      return n.fs;
    case 'neg':
    case 'pmterm':
    case 'fact':
    case 'pct':
    case 'deg':
      return [n.a];
    case 'div':
    case 'pow':
      return [n.a, n.b];
    case 'func':
      return n.args;
    case 'rel':
    case 'seq':
    case 'list':
    case 'set':
    case 'union':
      return n.items;
    case 'in':
      return [n.a, n.set];
    case 'diff':
      return [n.a, n.b];
    case 'matrix':
      return n.rows.flat();
    case 'bigop':
      return [n.lo, n.hi, n.body];
    default:
      return [];
  }
}

/** A copy of `n` with every direct child replaced by `f(child)` (leaves are returned as they are). */
export function mapChildren(n: Node, f: (m: Node) => Node): Node {
  switch (n.k) {
    case 'add':
      return { ...n, terms: n.terms.map(f) };
    case 'mul':
      return { ...n, fs: n.fs.map(f) };
    case 'neg':
    case 'pmterm':
    case 'fact':
    case 'pct':
    case 'deg':
      return { ...n, a: f(n.a) };
    case 'div':
    case 'pow':
    case 'diff':
      return { ...n, a: f(n.a), b: f(n.b) };
    case 'func':
      return { ...n, args: n.args.map(f) };
    case 'rel':
    case 'seq':
    case 'list':
    case 'set':
    case 'union':
      return { ...n, items: n.items.map(f) };
    case 'in':
      return { ...n, a: f(n.a), set: f(n.set) };
    case 'matrix':
      return { ...n, rows: n.rows.map((r) => r.map(f)) };
    case 'bigop':
      return { ...n, lo: f(n.lo), hi: f(n.hi), body: f(n.body) };
    default:
      return n;
  }
}

/** Number of nodes in `n`, counting at most up to `cap + 1` (so the cost is bounded by the cap). */
export function boundedSize(n: Node, cap: number): number {
  let count = 0;
  some(n, () => ++count > cap);
  return count;
}

export function some(n: Node, pred: (m: Node) => boolean): boolean {
  if (pred(n)) return true;
  for (const c of children(n)) if (some(c, pred)) return true;
  return false;
}

export function freeVars(n: Node, out: Set<string> = new Set()): Set<string> {
  if (n.k === 'bigop') {
    freeVars(n.lo, out);
    freeVars(n.hi, out);
    for (const v of freeVars(n.body)) if (v !== n.v) out.add(v);
    return out;
  }
  if (n.k === 'var') out.add(n.name);
  for (const c of children(n)) freeVars(c, out);
  return out;
}

/** Replace every ± term by + (s=1) or − (s=−1). */
function substPm(n: Node, s: 1 | -1): Node {
  switch (n.k) {
    case 'pmterm': {
      const plus = (s === 1) !== n.minusFirst;
      const a = substPm(n.a, s);
      return plus ? a : { k: 'neg', a };
    }
    case 'add':
      return { k: 'add', terms: n.terms.map((t) => substPm(t, s)) };
    case 'mul':
      return { k: 'mul', fs: n.fs.map((t) => substPm(t, s)) };
    case 'neg':
    case 'fact':
    case 'pct':
    case 'deg':
      return { ...n, a: substPm(n.a, s) };
    case 'div':
      return { ...n, a: substPm(n.a, s), b: substPm(n.b, s) };
    case 'pow':
      return { ...n, a: substPm(n.a, s), b: substPm(n.b, s) };
    case 'func':
      return { ...n, args: n.args.map((t) => substPm(t, s)) };
    case 'rel':
      return { ...n, items: n.items.map((t) => substPm(t, s)) };
    case 'in':
      return { ...n, a: substPm(n.a, s), set: substPm(n.set, s) };
    default:
      return n;
  }
}

/** a ± b → [a+b, a−b]; nodes without ± → [n]. */
export function expandPm(n: Node): Node[] {
  if (!some(n, (m) => m.k === 'pmterm')) return [n];
  return [substPm(n, 1), substPm(n, -1)];
}

/** Canonical text of a node (structural equality). */
export function printNode(n: Node): string {
  switch (n.k) {
    case 'num':
      return Q.toString(n.v);
    case 'var':
      return n.name;
    case 'const':
      return `#${n.name}`;
    case 'add':
      return `(${n.terms.map(printNode).join('+')})`;
    case 'neg':
      return `-(${printNode(n.a)})`;
    case 'pmterm':
      return `${n.minusFirst ? '∓' : '±'}(${printNode(n.a)})`;
    case 'mul':
      return `(${n.fs.map(printNode).join('*')})`;
    case 'div':
      return `(${printNode(n.a)}/${printNode(n.b)})`;
    case 'pow':
      return `(${printNode(n.a)}^${printNode(n.b)})`;
    case 'fact':
      return `(${printNode(n.a)})!`;
    case 'func':
      return `${n.name}(${n.args.map(printNode).join(',')})`;
    case 'pct':
      return `(${printNode(n.a)})%`;
    case 'deg':
      return `(${printNode(n.a)})deg`;
    case 'rel':
      return n.items.map((it, i) => (i === 0 ? '' : n.ops[i - 1]) + printNode(it)).join('');
    case 'in':
      return `${printNode(n.a)}∈${printNode(n.set)}`;
    case 'seq':
      return `${n.open}${n.items.map(printNode).join(',')}${n.close}`;
    case 'list':
      return `list(${n.items.map(printNode).join(',')})`;
    case 'set':
      return `{${n.items.map(printNode).join(',')}}`;
    case 'union':
      return n.items.map(printNode).join('∪');
    case 'diff':
      return `(${printNode(n.a)})∖(${printNode(n.b)})`;
    case 'matrix':
      return `[${n.rows.map((r) => r.map(printNode).join('&')).join(';')}]`;
    case 'text':
      return `"${n.s}"`;
    case 'empty':
      return '∅';
    case 'reals':
      return 'ℝ';
    case 'based':
      return `${n.digits}_${n.base}`;
    case 'bigop':
      return `${n.op}[${n.v}=${printNode(n.lo)}..${printNode(n.hi)}](${printNode(n.body)})`;
  }
}

// ---------------------------------------------------------------- exact evaluation

export type ExactEnv = ReadonlyMap<string, Rational>;

/** Exact rational value, or null when the value is not (recognisably) rational. Throws TooBigError. */
export function evalExact(n: Node, env: ExactEnv): Rational | null {
  switch (n.k) {
    case 'num':
      return n.v;
    case 'var':
      return env.get(n.name) ?? null;
    case 'add': {
      let acc = Q.ZERO;
      for (const t of n.terms) {
        const v = evalExact(t, env);
        if (v === null) return null;
        acc = Q.add(acc, v);
      }
      return acc;
    }
    case 'neg': {
      const v = evalExact(n.a, env);
      return v === null ? null : Q.neg(v);
    }
    case 'mul': {
      let acc = Q.ONE;
      for (const t of n.fs) {
        const v = evalExact(t, env);
        if (v === null) return null;
        acc = Q.mul(acc, v);
      }
      return acc;
    }
    case 'div': {
      const a = evalExact(n.a, env);
      if (a === null) return null;
      const b = evalExact(n.b, env);
      if (b === null) return null;
      return Q.div(a, b);
    }
    case 'pow': {
      const b = evalExact(n.b, env);
      if (b === null) return null;
      const a = evalExact(n.a, env);
      if (a === null) return null;
      return powExact(a, b);
    }
    case 'fact': {
      const a = evalExact(n.a, env);
      if (a === null || !Q.isInteger(a) || a.n < 0n) return null;
      return Q.factorial(Q.toBigInt(a));
    }
    case 'pct': {
      const a = evalExact(n.a, env);
      return a === null ? null : Q.mul(a, Q.rat(1n, 100n));
    }
    case 'deg':
      return evalExact(n.a, env);
    case 'func':
      return funcExact(n.name, n.args, env);
    case 'bigop':
      return bigopExact(n, env);
    default:
      return null;
  }
}

/** Terms a sum or product may still expand during the current comparison (nested ones share it). */
let bigopTerms = 0;
const MAX_BIGOP_TERMS = 2_000;
/** Called once per comparison: restores the budget of expanded sum/product terms. */
export function resetBigopBudget(): void {
  bigopTerms = MAX_BIGOP_TERMS;
}
resetBigopBudget();

/** Integer bounds [lo, hi] of a sum/product when they are small enough to expand, else null. */
function bigopRange(lo: number, hi: number): [number, number] | null {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || Math.abs(lo) > 1e9 || Math.abs(hi) > 1e9) return null;
  const count = Math.max(0, hi - lo + 1);
  if (count > bigopTerms) return null;
  bigopTerms -= count;
  return [lo, hi];
}

function bigopExact(n: Extract<Node, { k: 'bigop' }>, env: ExactEnv): Rational | null {
  const lo = evalExact(n.lo, env);
  const hi = lo === null ? null : evalExact(n.hi, env);
  if (lo === null || hi === null || !Q.isInteger(lo) || !Q.isInteger(hi)) return null;
  const range = bigopRange(Q.toNumber(lo), Q.toNumber(hi));
  if (range === null) return null;
  const inner = new Map(env);
  let acc = n.op === 'sum' ? Q.ZERO : Q.ONE;
  for (let k = range[0]; k <= range[1]; k++) {
    inner.set(n.v, Q.fromInt(k));
    const t = evalExact(n.body, inner);
    if (t === null) return null;
    acc = n.op === 'sum' ? Q.add(acc, t) : Q.mul(acc, t);
  }
  return acc;
}

function bigopNum(n: Extract<Node, { k: 'bigop' }>, env: NumEnv): Complex {
  const lo = evalNum(n.lo, env);
  const hi = evalNum(n.hi, env);
  if (lo.im !== 0 || hi.im !== 0) return NAN;
  const range = bigopRange(lo.re, hi.re);
  if (range === null) return NAN;
  const inner = new Map(env);
  let acc = cx(n.op === 'sum' ? 0 : 1);
  for (let k = range[0]; k <= range[1]; k++) {
    inner.set(n.v, k);
    const t = evalNum(n.body, inner);
    acc = n.op === 'sum' ? cadd(acc, t) : cmul(acc, t);
  }
  return acc;
}

function powExact(a: Rational, b: Rational): Rational | null {
  if (Q.isInteger(b)) {
    const k = Q.toBigInt(b);
    return Q.powInt(a, k);
  }
  if (b.d > 64n) return null;
  const r = Q.root(a, Number(b.d));
  if (r === null) return null;
  return Q.powInt(r, b.n);
}

function funcExact(name: string, args: Node[], env: ExactEnv): Rational | null {
  const vals: Rational[] = [];
  for (const a of args) {
    const v = evalExact(a, env);
    if (v === null) return null;
    vals.push(v);
  }
  const x = vals[0];
  if (x === undefined) return null;
  switch (name) {
    case 'sqrt': {
      if (vals.length === 1) return Q.root(x, 2);
      const k = vals[1] as Rational;
      if (!Q.isInteger(k) || k.n < 1n || k.n > 64n) return null;
      return Q.root(x, Number(k.n));
    }
    case 'abs':
      return Q.abs(x);
    case 'floor':
      return Q.floor(x);
    case 'ceil':
      return Q.ceil(x);
    case 'binom': {
      const k = vals[1] as Rational;
      if (!Q.isInteger(x) || !Q.isInteger(k)) return null;
      return Q.binomial(Q.toBigInt(x), Q.toBigInt(k));
    }
    case 'ln':
      return Q.eq(x, Q.ONE) ? Q.ZERO : null;
    case 'exp':
      return x.n === 0n ? Q.ONE : null;
    case 'sin':
    case 'tan':
    case 'arcsin':
    case 'arctan':
    case 'sinh':
    case 'tanh':
      return x.n === 0n ? Q.ZERO : null;
    case 'cos':
    case 'cosh':
      return x.n === 0n ? Q.ONE : null;
    case 'log':
    case 'log10': {
      const base = name === 'log10' || vals.length === 1 ? Q.fromInt(10) : (vals[1] as Rational);
      return logExact(x, base);
    }
    default:
      return null;
  }
}

/** log_b(x) when it is an integer or a simple fraction k/q (b^k = x^q), else null. */
function logExact(x: Rational, b: Rational): Rational | null {
  if (Q.sign(x) <= 0 || Q.sign(b) <= 0 || Q.eq(b, Q.ONE)) return null;
  const lx = Math.log(Math.abs(Q.toNumber(x)));
  const lb = Math.log(Math.abs(Q.toNumber(b)));
  if (!Number.isFinite(lx) || !Number.isFinite(lb) || lb === 0) return null;
  const r = lx / lb;
  for (let q = 1; q <= 6; q++) {
    const k = Math.round(r * q);
    if (Math.abs(k - r * q) > 1e-6 || Math.abs(k) > 4000) continue;
    try {
      const lhs = Q.powInt(b, BigInt(k));
      const rhs = Q.powInt(x, BigInt(q));
      if (lhs !== null && rhs !== null && Q.eq(lhs, rhs)) return Q.rat(BigInt(k), BigInt(q));
    } catch (e) {
      if (!(e instanceof TooBigError)) throw e;
    }
  }
  return null;
}

// ---------------------------------------------------------------- complex floating-point evaluation

export interface Complex {
  re: number;
  im: number;
}

const cx = (re: number, im = 0): Complex => ({ re, im });
const NAN: Complex = cx(NaN, NaN);

function cadd(a: Complex, b: Complex): Complex {
  return cx(a.re + b.re, a.im + b.im);
}
function cmul(a: Complex, b: Complex): Complex {
  if (a.im === 0 && b.im === 0) return cx(a.re * b.re);
  return cx(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}
function cdiv(a: Complex, b: Complex): Complex {
  if (b.im === 0) {
    if (b.re === 0) return NAN;
    return cx(a.re / b.re, a.im / b.re);
  }
  const d = b.re * b.re + b.im * b.im;
  return cx((a.re * b.re + a.im * b.im) / d, (a.im * b.re - a.re * b.im) / d);
}
export function cabs(a: Complex): number {
  return Math.hypot(a.re, a.im);
}
function clog(a: Complex): Complex {
  if (a.im === 0 && a.re > 0) return cx(Math.log(a.re));
  return cx(Math.log(cabs(a)), Math.atan2(a.im, a.re));
}
function cexp(a: Complex): Complex {
  const m = Math.exp(a.re);
  if (a.im === 0) return cx(m);
  return cx(m * Math.cos(a.im), m * Math.sin(a.im));
}
function csqrt(a: Complex): Complex {
  if (a.im === 0) return a.re >= 0 ? cx(Math.sqrt(a.re)) : cx(0, Math.sqrt(-a.re));
  const r = cabs(a);
  const re = Math.sqrt((r + a.re) / 2);
  const im = Math.sign(a.im) * Math.sqrt((r - a.re) / 2);
  return cx(re, im);
}
function cpow(a: Complex, b: Complex): Complex {
  if (b.im === 0 && Number.isInteger(b.re) && Math.abs(b.re) <= 4096) {
    let k = Math.abs(b.re);
    let base = a;
    let r = cx(1);
    while (k > 0) {
      if (k & 1) r = cmul(r, base);
      base = cmul(base, base);
      k >>= 1;
    }
    return b.re < 0 ? cdiv(cx(1), r) : r;
  }
  if (a.im === 0 && b.im === 0 && a.re >= 0) return cx(Math.pow(a.re, b.re));
  if (a.re === 0 && a.im === 0) return cx(0);
  return cexp(cmul(b, clog(a)));
}
/**
 * Power with the real odd root for a negative real base and an exponent p/q with q odd (x^{2/3} = ∛x², as
 * \sqrt[3]{x}^2 and \sqrt[3]{x^2} are on the reals); otherwise the principal complex power.
 */
function realPow(a: Complex, b: Complex): Complex {
  if (a.im === 0 && a.re < 0 && b.im === 0 && Number.isFinite(b.re) && !Number.isInteger(b.re)) {
    for (let q = 3; q <= 15; q += 2) {
      const p = Math.round(b.re * q);
      if (Math.abs(p - b.re * q) <= 1e-9 * Math.max(1, Math.abs(p))) {
        const m = Math.pow(-a.re, b.re);
        return cx(p % 2 === 0 ? m : -m);
      }
    }
  }
  return cpow(a, b);
}

function csin(a: Complex): Complex {
  if (a.im === 0) return cx(Math.sin(a.re));
  return cx(Math.sin(a.re) * Math.cosh(a.im), Math.cos(a.re) * Math.sinh(a.im));
}
function ccos(a: Complex): Complex {
  if (a.im === 0) return cx(Math.cos(a.re));
  return cx(Math.cos(a.re) * Math.cosh(a.im), -Math.sin(a.re) * Math.sinh(a.im));
}
function realOnly(a: Complex, f: (x: number) => number): Complex {
  return a.im === 0 ? cx(f(a.re)) : NAN;
}

export type NumEnv = ReadonlyMap<string, number>;

/** Largest magnitude seen during the last evalNum call tree (for cancellation-aware zero tests). */
let scaleSeen = 0;
export function resetScale(): void {
  scaleSeen = 0;
}
export function lastScale(): number {
  return scaleSeen;
}

function track(c: Complex): Complex {
  const m = Math.abs(c.re) + Math.abs(c.im);
  if (m > scaleSeen && Number.isFinite(m)) scaleSeen = m;
  return c;
}

export function evalNum(n: Node, env: NumEnv): Complex {
  return track(evalNum0(n, env));
}

function evalNum0(n: Node, env: NumEnv): Complex {
  switch (n.k) {
    case 'num':
      return cx(Q.toNumber(n.v));
    case 'var': {
      const v = env.get(n.name);
      return v === undefined ? NAN : cx(v);
    }
    case 'const':
      switch (n.name) {
        case 'pi':
          return cx(Math.PI);
        case 'e':
          return cx(Math.E);
        case 'i':
          return cx(0, 1);
        case 'inf':
          return cx(Infinity);
      }
      return NAN;
    case 'add': {
      let acc = cx(0);
      for (const t of n.terms) acc = cadd(acc, evalNum(t, env));
      return acc;
    }
    case 'neg': {
      const a = evalNum(n.a, env);
      return cx(-a.re, -a.im);
    }
    case 'mul': {
      let acc = cx(1);
      for (const t of n.fs) acc = cmul(acc, evalNum(t, env));
      return acc;
    }
    case 'div':
      return cdiv(evalNum(n.a, env), evalNum(n.b, env));
    case 'pow':
      return realPow(evalNum(n.a, env), evalNum(n.b, env));
    case 'fact': {
      const a = evalNum(n.a, env);
      if (a.im !== 0 || a.re < 0 || !Number.isInteger(a.re)) return NAN;
      if (a.re > 170) return cx(Infinity);
      let r = 1;
      for (let k = 2; k <= a.re; k++) r *= k;
      return cx(r);
    }
    case 'pct': {
      const a = evalNum(n.a, env);
      return cx(a.re / 100, a.im / 100);
    }
    case 'deg': {
      // a degree mark inside an expression (e.g. \sin 30^\circ) means radians × π/180
      const a = evalNum(n.a, env);
      return cx((a.re * Math.PI) / 180, (a.im * Math.PI) / 180);
    }
    case 'func':
      return funcNum(n.name, n.args.map((a) => evalNum(a, env)));
    case 'bigop':
      return bigopNum(n, env);
    default:
      return NAN;
  }
}

function funcNum(name: string, args: Complex[]): Complex {
  const x = args[0];
  if (x === undefined) return NAN;
  switch (name) {
    case 'sqrt': {
      if (args.length === 1) return csqrt(x);
      const k = args[1] as Complex;
      if (k.im !== 0 || k.re === 0) return NAN;
      if (x.im === 0 && x.re < 0 && Number.isInteger(k.re) && Math.abs(k.re) % 2 === 1) {
        return cx(-Math.pow(-x.re, 1 / k.re));
      }
      return cpow(x, cx(1 / k.re));
    }
    case 'abs':
      return cx(cabs(x));
    case 'floor':
      return realOnly(x, Math.floor);
    case 'ceil':
      return realOnly(x, Math.ceil);
    case 'exp':
      return cexp(x);
    case 'ln':
      return clog(x);
    case 'log': {
      const base = args[1];
      if (base === undefined) return cdiv(clog(x), cx(Math.LN10));
      return cdiv(clog(x), clog(base));
    }
    case 'log10':
      return cdiv(clog(x), cx(Math.LN10));
    case 'sin':
      return csin(x);
    case 'cos':
      return ccos(x);
    case 'tan':
      return cdiv(csin(x), ccos(x));
    case 'cot':
      return cdiv(ccos(x), csin(x));
    case 'sec':
      return cdiv(cx(1), ccos(x));
    case 'csc':
      return cdiv(cx(1), csin(x));
    case 'arcsin':
      return realOnly(x, Math.asin);
    case 'arccos':
      return realOnly(x, Math.acos);
    case 'arctan':
      return realOnly(x, Math.atan);
    case 'arccot':
      return realOnly(x, (v) => Math.atan(1 / v));
    case 'sinh':
      return realOnly(x, Math.sinh);
    case 'cosh':
      return realOnly(x, Math.cosh);
    case 'tanh':
      return realOnly(x, Math.tanh);
    case 'binom': {
      const k = args[1] as Complex;
      if (x.im !== 0 || k.im !== 0 || !Number.isInteger(x.re) || !Number.isInteger(k.re)) return NAN;
      if (k.re < 0 || k.re > x.re) return cx(0);
      let r = 1;
      const kk = Math.min(k.re, x.re - k.re);
      if (kk > 2000) return cx(Infinity);
      for (let j = 1; j <= kk; j++) r = (r * (x.re - kk + j)) / j;
      return cx(r);
    }
    default:
      return NAN;
  }
}

// ---------------------------------------------------------------- seeded points

/** Random evaluation points for the given variables: exact rationals (mixed signs, fractions). */
export function samplePoints(vars: string[], count: number, seed = 0x5eed): Array<Map<string, Rational>> {
  const rnd = seededRng(seed);
  const pts: Array<Map<string, Rational>> = [];
  for (let p = 0; p < count; p++) {
    const m = new Map<string, Rational>();
    for (const v of vars) {
      // numerators 2..13, denominators 1..7; first points positive, later ones of random sign
      const num = 2 + Math.floor(rnd() * 12);
      const den = p < 2 ? 1 : 1 + Math.floor(rnd() * 7);
      const neg = p >= 3 && rnd() < 0.5;
      m.set(v, Q.rat(BigInt(neg ? -num : num), BigInt(den)));
    }
    pts.push(m);
  }
  return pts;
}

// ---------------------------------------------------------------- high-precision real evaluation

/** A decimal float m·10^e with |m| < 10^HP_DIGITS (truncated), for re-checking near-equal constants. */
export interface BigF {
  m: bigint;
  e: number;
}

const HP_DIGITS = 60;
const HP_MAX_BITS = 20_000;
const HP_MAX_POW = 100_000;
const HP_MAX_EXP = 1e12;
const PI_DIGITS = '314159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798';
const E_DIGITS = '271828182845904523536028747135266249775724709369995957496696762772407663035354759457138217852516642742746';

function ndigits(m: bigint): number {
  return (m < 0n ? -m : m).toString().length;
}

function hpNorm(m: bigint, e: number): BigF | null {
  if (m === 0n) return { m: 0n, e: 0 };
  const d = ndigits(m);
  if (d > HP_DIGITS) {
    const k = d - HP_DIGITS;
    m /= 10n ** BigInt(k);
    e += k;
  }
  if (!Number.isFinite(e) || Math.abs(e) > HP_MAX_EXP) return null;
  return { m, e };
}

/** Order of magnitude: the value lies in [10^(mag-1), 10^mag). */
export function hpMag(x: BigF): number {
  return x.m === 0n ? -Infinity : ndigits(x.m) + x.e;
}

function hpFromInt(x: bigint): BigF | null {
  if (Q.bitLength(x) > HP_MAX_BITS) return null;
  return hpNorm(x, 0);
}

function hpAdd(a: BigF, b: BigF): BigF | null {
  if (a.m === 0n) return b;
  if (b.m === 0n) return a;
  const ma = hpMag(a);
  const mb = hpMag(b);
  if (ma - mb > HP_DIGITS + 5) return a;
  if (mb - ma > HP_DIGITS + 5) return b;
  const e = Math.min(a.e, b.e);
  return hpNorm(a.m * 10n ** BigInt(a.e - e) + b.m * 10n ** BigInt(b.e - e), e);
}

function hpMul(a: BigF, b: BigF): BigF | null {
  return hpNorm(a.m * b.m, a.e + b.e);
}

function hpDiv(a: BigF, b: BigF): BigF | null {
  if (b.m === 0n) return null;
  if (a.m === 0n) return a;
  const shift = HP_DIGITS + 5 + ndigits(b.m) - ndigits(a.m);
  const m = shift >= 0 ? (a.m * 10n ** BigInt(shift)) / b.m : a.m / b.m;
  return hpNorm(m, a.e - b.e - Math.max(shift, 0));
}

/** floor(x^(1/k)) for x ≥ 0 by Newton's method. */
function intRootFloor(x: bigint, k: number): bigint {
  if (x < 2n) return x;
  const K = BigInt(k);
  const bits = Q.bitLength(x);
  let r = 1n << BigInt(Math.ceil(bits / k) + 1);
  for (let guard = 0; guard < 10_000; guard++) {
    const next = ((K - 1n) * r + x / r ** (K - 1n)) / K;
    if (next >= r) break;
    r = next;
  }
  while (r ** K > x) r -= 1n;
  return r;
}

function hpRoot(a: BigF, k: number): BigF | null {
  if (k < 1 || k > 64) return null;
  if (a.m === 0n) return a;
  const neg = a.m < 0n;
  if (neg && k % 2 === 0) return null;
  let m = neg ? -a.m : a.m;
  let e = a.e;
  // enough digits for HP_DIGITS in the root, and an exponent divisible by k
  let shift = Math.max(0, k * (HP_DIGITS + 2) - ndigits(m));
  shift += (((e - shift) % k) + k) % k;
  m *= 10n ** BigInt(shift);
  e -= shift;
  const r = intRootFloor(m, k);
  return hpNorm(neg ? -r : r, e / k);
}

function hpPowInt(a: BigF, k: number): BigF | null {
  if (Math.abs(k) > HP_MAX_POW) return null;
  let n = Math.abs(k);
  let base: BigF | null = a;
  let r: BigF | null = { m: 1n, e: 0 };
  while (n > 0) {
    if (n & 1) r = hpMul(r, base);
    n >>= 1;
    if (n > 0) base = hpMul(base, base);
    if (r === null || base === null) return null;
  }
  return k < 0 ? hpDiv({ m: 1n, e: 0 }, r) : r;
}

function hpConst(digits: string): BigF {
  return { m: BigInt(digits.slice(0, HP_DIGITS)), e: 1 - HP_DIGITS };
}

/**
 * Real value of a constant expression at ~60 significant digits, or null when some part is outside the supported
 * fragment (arithmetic, integer and rational powers, roots, π, e, small factorials). Used to re-check a double
 * precision "equal" verdict, so that values that differ beyond 1e-15 are told apart.
 */
export interface HPBudget {
  ops: number;
  /** Largest magnitude (hpMag) of any intermediate value: the scale against which cancellation is judged. */
  maxMag: number;
}

export function evalHP(n: Node, budget: HPBudget = { ops: 2000, maxMag: -Infinity }): BigF | null {
  if (--budget.ops < 0) return null;
  const v = evalHP0(n, budget);
  if (v !== null && v.m !== 0n) budget.maxMag = Math.max(budget.maxMag, hpMag(v));
  return v;
}

function evalHP0(n: Node, budget: HPBudget): BigF | null {
  switch (n.k) {
    case 'num': {
      const a = hpFromInt(n.v.n);
      const b = hpFromInt(n.v.d);
      return a && b ? hpDiv(a, b) : null;
    }
    case 'const':
      return n.name === 'pi' ? hpConst(PI_DIGITS) : n.name === 'e' ? hpConst(E_DIGITS) : null;
    case 'add': {
      let acc: BigF | null = { m: 0n, e: 0 };
      for (const t of n.terms) {
        const v = evalHP(t, budget);
        if (v === null || acc === null) return null;
        acc = hpAdd(acc, v);
      }
      return acc;
    }
    case 'neg': {
      const v = evalHP(n.a, budget);
      return v === null ? null : { m: -v.m, e: v.e };
    }
    case 'mul': {
      let acc: BigF | null = { m: 1n, e: 0 };
      for (const t of n.fs) {
        const v = evalHP(t, budget);
        if (v === null || acc === null) return null;
        acc = hpMul(acc, v);
      }
      return acc;
    }
    case 'div': {
      const a = evalHP(n.a, budget);
      const b = a === null ? null : evalHP(n.b, budget);
      return a === null || b === null ? null : hpDiv(a, b);
    }
    case 'pct': {
      const a = evalHP(n.a, budget);
      return a === null ? null : hpDiv(a, { m: 100n, e: 0 });
    }
    case 'pow': {
      let ex: Rational | null;
      try {
        ex = evalExact(n.b, new Map());
      } catch {
        return null;
      }
      if (ex === null || ex.d > 64n || Q.bitLength(ex.n) > 40) return null;
      const base = evalHP(n.a, budget);
      if (base === null) return null;
      const r = ex.d === 1n ? base : hpRoot(base, Number(ex.d));
      return r === null ? null : hpPowInt(r, Number(ex.n));
    }
    case 'fact': {
      let v: Rational | null;
      try {
        v = evalExact(n, new Map());
      } catch {
        return null;
      }
      return v !== null && v.d === 1n ? hpFromInt(v.n) : null;
    }
    case 'func': {
      if (n.name === 'abs' && n.args.length === 1) {
        const v = evalHP(n.args[0] as Node, budget);
        return v === null ? null : { m: v.m < 0n ? -v.m : v.m, e: v.e };
      }
      if (n.name !== 'sqrt') return null;
      const x = evalHP(n.args[0] as Node, budget);
      if (x === null) return null;
      if (n.args.length === 1) return hpRoot(x, 2);
      const k = evalExact(n.args[1] as Node, new Map());
      if (k === null || k.d !== 1n || k.n < 1n || k.n > 64n) return null;
      return hpRoot(x, Number(k.n));
    }
    default:
      return null;
  }
}

/** |x − y| within 10^-(tolDigits) of the larger of |x|, |y| and `scale` (the cancellation scale, an hpMag). */
export function hpClose(x: BigF, y: BigF, scale = -Infinity, tolDigits = HP_DIGITS - 15): boolean {
  const d = hpAdd(x, { m: -y.m, e: y.e });
  if (d === null) return false;
  if (d.m === 0n) return true;
  scale = Math.max(scale, hpMag(x), hpMag(y));
  return hpMag(d) <= scale - tolDigits;
}
