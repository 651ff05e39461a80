// Compare a gold answer with an extracted answer: parse both into typed values and compare by type.
// Synchronous, pure and deterministic (seeded sample points); bounded by input, token, depth,
// exponent, factorial and element-count caps.

import type { Comparison } from './types.js';
import { ParseError, parseLatex, type Node, type RelOp } from './latex.js';
import { choiceLetter, MAX_INPUT_CHARS, normalizeAnswer, textKey } from './normalize.js';
import * as Q from './rational.js';
import type { Rational } from './rational.js';
import {
  cabs,
  evalExact,
  evalHP,
  evalNum,
  hpClose,
  type HPBudget,
  boundedSize,
  expandPm,
  freeVars,
  lastScale,
  mapChildren,
  printNode,
  resetBigopBudget,
  resetScale,
  samplePoints,
  some,
  TooBigError,
  type Complex,
} from './value.js';

const MAX_ELEMENTS = 64;
const MAX_VARS = 8;
const SAMPLE_POINTS = 6;
const REL_TOL_VARS = 1e-9;
const REL_TOL_CONST = 1e-10;
/** Exact rational (e.g. a decimal) against an irrational-looking expression: only near-exact agreement. */
const REL_TOL_MIXED = 2e-15;

const yes = (reason: string): Comparison => ({ equal: true, reason });
const no = (reason: string): Comparison => ({ equal: false, reason });

/** Compare a raw gold answer with a raw extracted answer. */
export function compareAnswers(gold: string, answer: string): Comparison {
  resetBigopBudget();
  try {
    return compareRaw(gold, answer);
  } catch (e) {
    if (e instanceof TooBigError) return no('too large to compare');
    if (e instanceof RangeError && /call stack/i.test(e.message)) return no('input too deeply nested');
    return no(`internal error: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function tryParse(s: string): Node | null {
  try {
    return parseLatex(s);
  } catch (e) {
    if (e instanceof ParseError || e instanceof TooBigError || e instanceof SyntaxError) return null;
    throw e;
  }
}

function compareRaw(gold: string, answer: string): Comparison {
  if (gold.length > MAX_INPUT_CHARS || answer.length > MAX_INPUT_CHARS) return no('input too long');
  const g = normalizeAnswer(gold);
  const a = normalizeAnswer(answer);
  if (a === '') return no('empty answer');
  if (g === '') return no('empty gold');

  const gc = choiceLetter(g);
  if (gc !== null) {
    // against a choice-letter gold, a bare lower-case letter ("\boxed{b}") names the same option
    const ac = choiceLetter(a) ?? (/^[a-j]$/.test(a) ? a.toUpperCase() : null);
    if (ac === null) return no('gold is a choice letter, answer is not');
    return ac === gc ? yes(`same choice ${gc}`) : no(`choice ${ac} vs ${gc}`);
  }
  if (g === a) return yes('identical after normalisation');
  // function-value / function-definition notation unwraps against a gold that is not a relation:
  // "f(3) = 19" vs 19, "f^{-1}(x) = \frac{x-1}{2}" vs \frac{x-1}{2}
  const aFn = functionRhs(a);
  if (aFn !== null && !hasRelationSymbol(g)) return prefix('function value: ', compareRaw(gold, aFn));
  const gFn = functionRhs(g);
  if (gFn !== null && !hasRelationSymbol(a)) return prefix('function value: ', compareRaw(gFn, answer));

  const G = tryParse(g);
  const A = tryParse(a);
  const isText = (n: Node | null): boolean => n === null || some(n, (m) => m.k === 'text');
  if (G === null || A === null || (isText(G) !== isText(A))) {
    if (textKey(g) === textKey(a)) return yes('equal text');
    if (G === null) return no('unparseable gold');
    if (A === null) return no('unparseable answer');
    return no('text vs value');
  }
  return compareNodes(G, A);
}

/** `<, >, =, \le, \ge, \ne` anywhere in a normalised answer. */
function hasRelationSymbol(s: string): boolean {
  return /[=<>]|\\(?:le|ge|ne|lt|gt)(?![a-zA-Z])/.test(s);
}

/**
 * Right-hand side of `f(3) = 19`, `g(x) = x^2`, `f^{-1}(x) = …`, `f'(2) = 5`: a one-letter function name applied
 * to plain arguments, one `=`, and a right side that neither mentions the function nor holds another relation.
 */
function functionRhs(s: string): string | null {
  const m = /^([A-Za-z])\s*(?:\^\s*\{\s*-\s*1\s*\}|\^\s*-1|'{1,3})?\s*\(\s*([A-Za-z0-9.,\s-]{1,40})\s*\)\s*=\s*(.+)$/.exec(s);
  if (m === null) return null;
  const name = m[1] as string;
  const rhs = (m[3] as string).trim();
  if (rhs === '' || hasRelationSymbol(rhs)) return null;
  if (new RegExp(`(?<![A-Za-z\\\\])${name}(?![A-Za-z])`).test(rhs)) return null;
  return rhs;
}

// ---------------------------------------------------------------- structure helpers

function isVarLike(n: Node): boolean {
  return n.k === 'var' || (n.k === 'seq' && n.open === '(' && n.items.every((i) => i.k === 'var'));
}

/** `x = expr` (lhs a variable or tuple of variables not occurring on the right). */
function assignmentRhs(n: Node): Node | null {
  if (n.k !== 'rel' || n.ops.length !== 1 || n.ops[0] !== '=') return null;
  const [l, r] = n.items as [Node, Node];
  // function notation f(x) = … in x (parsed as the product of two variables); `xy = 6` is an equation, not f(x)
  if (l.k === 'mul' && l.fs.length === 2 && l.fs.every((f) => f.k === 'var')) {
    const [fname, arg] = (l.fs as Array<Extract<Node, { k: 'var' }>>).map((f) => f.name);
    const rv = freeVars(r);
    if (!rv.has(fname as string) && rv.has(arg as string)) return r;
  }
  if (isVarLike(l)) {
    const lv = freeVars(l);
    const rv = freeVars(r);
    if (![...lv].some((v) => rv.has(v))) return r;
  }
  if (isLabel(l) && freeVars(r).size === 0) return r;
  return null;
}

/** A named quantity: `M`, `W_1`, `T_{ABC}` (capital or subscripted), or a segment `PQ` (capital points). */
function isName(n: Node): boolean {
  if (n.k === 'var') return /^[A-Z]/.test(n.name) || n.name.includes('_');
  return n.k === 'mul' && n.fs.length >= 2 && n.fs.every((f) => f.k === 'var' && /^[A-Z]$/.test(f.name));
}

/**
 * The left side of a gold that labels its value: a name, a length `|PQ|`, or a ratio of names `\frac{AM}{MB}`,
 * `W_1:W_2`. Equations in lower-case unknowns (`2x+3y=6`) are not labels.
 */
function isLabel(n: Node): boolean {
  if (isName(n)) return true;
  if (n.k === 'func' && n.name === 'abs' && n.args.length === 1) return isName(n.args[0] as Node);
  // a ratio may also be of lower-case quantities: x:y = 2:3, \frac{a}{b} = \frac{3}{4}
  const ratioTerm = (m: Node): boolean => isName(m) || (m.k === 'var' && m.name.length === 1);
  return n.k === 'div' && ratioTerm(n.a) && ratioTerm(n.b);
}

/**
 * `\frac{10}{2} = 5` or `x = 2 + 3 = 5`: every member after an optional leading variable is a
 * constant and all of them are equal; returns the last member. `7 = 11a + c` is not a chain value.
 */
function chainValue(n: Node): Node | null {
  if (n.k !== 'rel' || n.ops.some((o) => o !== '=')) return null;
  let items = n.items;
  if (items.length > 2 && isVarLike(items[0] as Node)) items = items.slice(1);
  if (items.length < 2 || items.length > 8) return null;
  if (items.some((it) => freeVars(it).size > 0 || !isScalarKind(it))) return null;
  const last = items[items.length - 1] as Node;
  for (const it of items.slice(0, -1)) if (!compareExpr(it, last).equal) return null;
  return last;
}

function isRelLike(n: Node): boolean {
  return n.k === 'rel' || n.k === 'in';
}

/** Items of a collection (list/set/± expression), with ± expanded; null when not a collection. */
function collectionItems(n: Node): Node[] | null {
  if (n.k === 'list' || n.k === 'set') return n.items.flatMap(expandPm);
  const e = expandPm(n);
  return e.length > 1 ? e : null;
}

function infSign(n: Node): number {
  if (n.k === 'const' && n.name === 'inf') return 1;
  if (n.k === 'neg') return -infSign(n.a);
  if (n.k === 'add' && n.terms.length === 1) return infSign(n.terms[0] as Node);
  return 0;
}

// ---------------------------------------------------------------- dispatcher

/** `\{1,2\} \cup \{3\}` (a union of finite sets only) is the finite set `\{1,2,3\}`. */
function flattenSetUnion(n: Node): Node {
  if (n.k !== 'union' || !n.items.every((i) => i.k === 'set' || i.k === 'empty')) return n;
  const items = n.items.flatMap((i) => (i.k === 'set' ? i.items : []));
  return items.length === 0 ? { k: 'empty' } : { k: 'set', items };
}

/** `a = 3, b = \frac72` (constants assigned to distinct variables): the tuple of values in that order; else null. */
function assignmentTuple(n: Node): Node | null {
  if (n.k !== 'list' || n.items.length > MAX_ELEMENTS) return null;
  const names = new Set<string>();
  const values: Node[] = [];
  for (const it of n.items) {
    const c = it.k === 'rel' ? constAssignment(it) : null;
    if (c === null || names.has(c[0])) return null;
    names.add(c[0]);
    values.push(c[1]);
  }
  return { k: 'seq', open: '(', close: ')', items: values };
}

function compareNodes(g0: Node, a0: Node): Comparison {
  let g = flattenSetUnion(g0);
  let a = flattenSetUnion(a0);
  // a list of assignments against unlabelled values: the values in the order of the variables
  const gT = assignmentTuple(g);
  const aT = assignmentTuple(a);
  if (gT !== null && aT === null) g = gT;
  else if (aT !== null && gT === null) a = aT;
  // assignments / membership unwrap against a non-relation counterpart
  const aRhs = assignmentRhs(a);
  if (aRhs && !isRelLike(g)) return prefix('assignment: ', compareNodes(g, aRhs));
  const aChain = chainValue(a);
  if (aChain && !isRelLike(g)) return prefix('chain of equalities: ', compareNodes(g, aChain));
  const gRhs = assignmentRhs(g);
  if (gRhs && !isRelLike(a)) return prefix('assignment: ', compareNodes(gRhs, a));
  if (a.k === 'in' && g.k !== 'in' && a.a.k === 'var') return prefix('membership: ', compareNodes(g, a.set));
  if (g.k === 'in' && a.k !== 'in' && g.a.k === 'var') return prefix('membership: ', compareNodes(g.set, a));
  if (g.k === 'in' && a.k === 'in') {
    if (printNode(g.a) !== printNode(a.a)) return no('membership of different variables');
    return compareNodes(g.set, a.set);
  }

  // collections with set semantics
  const gi = collectionItems(g);
  const ai = collectionItems(a);
  if (gi || ai) {
    if (gi && ai) return compareSets(gi, ai, g.k === 'set' || a.k === 'set');
    if (gi && g.k === 'list' && a.k === 'seq' && a.open === '(' && a.close === ')') {
      return no('tuple vs list of answers');
    }
    if (ai && a.k === 'list' && g.k === 'seq' && g.open === '(' && g.close === ')') {
      // tuple written without its parentheses: ordered comparison
      return compareOrdered(g.items, ai, 'tuple without parentheses');
    }
    const coll = (gi ?? ai) as Node[];
    const other = gi ? a : g;
    if (other.k === 'seq' || other.k === 'matrix' || other.k === 'union' || other.k === 'rel') {
      // compare below as intervals if possible
      const iv = compareIntervalsMaybe(g, a);
      if (iv) return iv;
      return no(`${gi ? 'collection' : other.k} vs ${gi ? other.k : 'collection'}`);
    }
    const uniq = dedupe(coll);
    if (uniq === null) return no('too many elements');
    if (uniq.length !== 1) return no(`${uniq.length} answers vs one`);
    return prefix('singleton: ', gi ? compareNodes(uniq[0] as Node, a) : compareNodes(g, uniq[0] as Node));
  }
  if (g.k === 'empty' || a.k === 'empty') {
    const isEmpty = (n: Node): boolean => n.k === 'empty' || (n.k === 'set' && n.items.length === 0);
    return isEmpty(g) && isEmpty(a) ? yes('both empty') : no('empty set vs non-empty');
  }

  // intervals, unions, solved relations
  const iv = compareIntervalsMaybe(g, a);
  if (iv) return iv;

  if (g.k === 'seq' || a.k === 'seq') {
    if (g.k === 'seq' && a.k === 'seq') {
      if (g.open !== a.open || g.close !== a.close) return no(`brackets ${g.open}${g.close} vs ${a.open}${a.close}`);
      return compareOrdered(g.items, a.items, 'tuple');
    }
    const m = g.k === 'matrix' ? g : a.k === 'matrix' ? a : null;
    const s = g.k === 'seq' ? g : a.k === 'seq' ? a : null;
    if (m && s && (s.open === '(' || s.open === '[')) {
      const flat = vectorOf(m);
      if (flat) return compareOrdered(g.k === 'seq' ? s.items : flat, g.k === 'seq' ? flat : s.items, 'vector');
    }
    return no(`${g.k} vs ${a.k}`);
  }
  if (g.k === 'matrix' || a.k === 'matrix') {
    // an unevaluated sum, difference, scalar multiple or product of matrices is compared by its value
    const gm = g.k === 'matrix' ? g : matrixValue(g);
    const am = a.k === 'matrix' ? a : matrixValue(a);
    if (gm === null || am === null) return no(`${g.k} vs ${a.k}`);
    g = gm;
    a = am;
    if (g.rows.length !== a.rows.length || (g.rows[0] as Node[]).length !== (a.rows[0] as Node[]).length) {
      return no('matrix shape differs');
    }
    return compareOrdered(g.rows.flat(), a.rows.flat(), 'matrix');
  }
  if (g.k === 'rel' || a.k === 'rel') {
    if (g.k !== 'rel' || a.k !== 'rel') return no('relation vs value');
    return compareRelations(g, a);
  }
  if (g.k === 'text' || a.k === 'text') {
    if (g.k !== 'text' || a.k !== 'text') return no('text vs value');
    return textKey(g.s) === textKey(a.s) ? yes('equal text') : no('different text');
  }
  if (g.k === 'reals' || a.k === 'reals') return g.k === a.k ? yes('both ℝ') : no('ℝ vs other');
  if (g.k === 'based' || a.k === 'based') return compareBased(g, a);
  if (g.k === 'union' || a.k === 'union') return no('union vs other');
  return compareScalar(g, a);
}

type MatrixNode = Extract<Node, { k: 'matrix' }>;

/** Total nodes the entries of an evaluated matrix expression may hold (products grow entries geometrically). */
const MAX_MATRIX_NODES = 4000;

/** The matrix an expression of matrices evaluates to, entries as unevaluated nodes; null when not (or undefined). */
function matrixValue(n: Node): MatrixNode | null {
  const m = matrixValue0(n);
  return m === null || m === n || withinNodeBudget(m) ? m : null;
}

function withinNodeBudget(m: MatrixNode): boolean {
  let budget = MAX_MATRIX_NODES;
  for (const e of m.rows.flat()) {
    budget -= boundedSize(e, budget);
    if (budget < 0) return false;
  }
  return true;
}

function matrixValue0(n: Node): MatrixNode | null {
  switch (n.k) {
    case 'matrix':
      return n;
    case 'neg': {
      const m = matrixValue(n.a);
      return m && { k: 'matrix', rows: m.rows.map((r) => r.map((e): Node => ({ k: 'neg', a: e }))) };
    }
    case 'add': {
      const ms = n.terms.map(matrixValue);
      if (ms.some((m) => m === null)) return null;
      const [first, ...rest] = ms as MatrixNode[];
      if (first === undefined || rest.some((m) => !sameShape(m, first))) return null;
      return {
        k: 'matrix',
        rows: first.rows.map((r, i) => r.map((_, j): Node => ({ k: 'add', terms: (ms as MatrixNode[]).map((m) => m.rows[i]![j]!) }))),
      };
    }
    case 'mul': {
      const scalars: Node[] = [];
      let acc: MatrixNode | null = null;
      for (const f of n.fs) {
        if (!some(f, (m) => m.k === 'matrix')) {
          scalars.push(f);
          continue;
        }
        const m = matrixValue(f);
        if (m === null) return null;
        acc = acc === null ? m : matrixProduct(acc, m);
        if (acc === null || !withinNodeBudget(acc)) return null;
      }
      if (acc === null) return null;
      if (scalars.length === 0) return acc;
      return { k: 'matrix', rows: acc.rows.map((r) => r.map((e): Node => ({ k: 'mul', fs: [...scalars, e] }))) };
    }
    default:
      return null;
  }
}

function sameShape(x: MatrixNode, y: MatrixNode): boolean {
  return x.rows.length === y.rows.length && x.rows[0]!.length === y.rows[0]!.length;
}

function matrixProduct(x: MatrixNode, y: MatrixNode): MatrixNode | null {
  const inner = x.rows[0]!.length;
  const cols = y.rows[0]!.length;
  if (y.rows.length !== inner || x.rows.length * cols > MAX_ELEMENTS || inner > MAX_ELEMENTS) return null;
  return {
    k: 'matrix',
    rows: x.rows.map((r) =>
      Array.from({ length: cols }, (_, j): Node => ({ k: 'add', terms: r.map((e, t): Node => ({ k: 'mul', fs: [e, y.rows[t]![j]!] })) })),
    ),
  };
}

function prefix(p: string, c: Comparison): Comparison {
  return { equal: c.equal, reason: p + c.reason };
}

function vectorOf(m: Extract<Node, { k: 'matrix' }>): Node[] | null {
  if (m.rows.length === 1) return m.rows[0] as Node[];
  if (m.rows.every((r) => r.length === 1)) return m.rows.map((r) => r[0] as Node);
  return null;
}

function compareOrdered(gs: Node[], as: Node[], what: string): Comparison {
  if (gs.length !== as.length) return no(`${what} length ${as.length} vs ${gs.length}`);
  if (gs.length > MAX_ELEMENTS * 4) return no('too many elements');
  for (let i = 0; i < gs.length; i++) {
    const c = compareNodes(gs[i] as Node, as[i] as Node);
    if (!c.equal) return no(`${what} element ${i + 1}: ${c.reason}`);
  }
  return yes(`equal ${what}`);
}

function dedupe(items: Node[]): Node[] | null {
  if (items.length > MAX_ELEMENTS) return null;
  const out: Node[] = [];
  for (const it of items) {
    if (!out.some((o) => compareNodes(o, it).equal)) out.push(it);
  }
  return out;
}

function compareSets(gs: Node[], as: Node[], _braced: boolean): Comparison {
  const gu = dedupe(gs);
  const au = dedupe(as);
  if (gu === null || au === null) return no('too many elements');
  if (gu.length !== au.length) return no(`${au.length} distinct answers vs ${gu.length}`);
  const used = new Array<boolean>(au.length).fill(false);
  for (const x of gu) {
    let found = false;
    for (let j = 0; j < au.length; j++) {
      if (!used[j] && compareNodes(x, au[j] as Node).equal) {
        used[j] = true;
        found = true;
        break;
      }
    }
    if (!found) return no(`missing ${printNode(x).slice(0, 40)}`);
  }
  return yes(`equal sets of ${gu.length}`);
}

function compareBased(g: Node, a: Node): Comparison {
  const digits = (n: Node): [string, number | null] | null => {
    if (n.k === 'based') return [n.digits.toUpperCase(), n.base];
    if (n.k === 'num' && !n.dec && /^\d+$/.test(n.lit)) return [n.lit.replace(/^0+(?=\d)/, ''), null];
    return null;
  };
  const gd = digits(g);
  const ad = digits(a);
  if (!gd || !ad) return no('base-subscripted number vs other');
  if (gd[1] !== null && ad[1] !== null && gd[1] !== ad[1]) return no('different bases');
  return gd[0] === ad[0] ? yes('same digits') : no('different digits');
}

// ---------------------------------------------------------------- intervals

interface Interval {
  lo: Node;
  hi: Node;
  loClosed: boolean;
  hiClosed: boolean;
}

const INF: Node = { k: 'const', name: 'inf' };
const NEG_INF: Node = { k: 'neg', a: INF };

function isIntervalish(n: Node): boolean {
  return n.k === 'union' || n.k === 'reals' || n.k === 'diff' || (n.k === 'seq' && n.items.length === 2 && n.open !== '<');
}

function toIntervals(n: Node): Interval[] | null {
  if (n.k === 'reals') return [{ lo: NEG_INF, hi: INF, loClosed: false, hiClosed: false }];
  if (n.k === 'seq') {
    if (n.items.length !== 2 || n.open === '<') return null;
    return [{ lo: n.items[0] as Node, hi: n.items[1] as Node, loClosed: n.open === '[', hiClosed: n.close === ']' }];
  }
  if (n.k === 'union' || n.k === 'list') {
    const out: Interval[] = [];
    for (const it of n.items) {
      const r = toIntervals(it);
      if (!r) return null;
      out.push(...r);
    }
    return out;
  }
  if (n.k === 'rel') return solvedRelation(n);
  if (n.k === 'in' && n.a.k === 'var') return toIntervals(n.set);
  if (n.k === 'diff') {
    const base = toIntervals(n.a);
    if (!base) return null;
    const pts = n.b.k === 'set' ? n.b.items : n.b.k === 'empty' ? [] : [n.b];
    return removePoints(base, pts);
  }
  return null;
}

/** Real value of a constant endpoint/point (±Infinity for ±∞), or null when not a finite real constant. */
function realValue(n: Node): number | null {
  const s = infSign(n);
  if (s !== 0) return s * Infinity;
  if (freeVars(n).size > 0 || !isScalarKind(n)) return null;
  const v = evalNum(n, new Map());
  if (!Number.isFinite(v.re) || Math.abs(v.im) > 1e-12 * Math.max(1, Math.abs(v.re))) return null;
  return v.re;
}

/** Intervals minus finitely many points (`ℝ \setminus \{1\}`): split at interior points, open closed endpoints. */
function removePoints(ivs: Interval[], pts: Node[]): Interval[] | null {
  if (pts.length > MAX_ELEMENTS) return null;
  let out = ivs;
  for (const p of pts) {
    const pv = realValue(p);
    if (pv === null || !Number.isFinite(pv)) return null;
    const next: Interval[] = [];
    for (const iv of out) {
      const lo = realValue(iv.lo);
      const hi = realValue(iv.hi);
      if (lo === null || hi === null) return null;
      if (compareScalar(iv.lo, p).equal) next.push({ ...iv, loClosed: false });
      else if (compareScalar(iv.hi, p).equal) next.push({ ...iv, hiClosed: false });
      else if (lo < pv && pv < hi) {
        next.push({ lo: iv.lo, hi: p, loClosed: iv.loClosed, hiClosed: false });
        next.push({ lo: p, hi: iv.hi, loClosed: false, hiClosed: iv.hiClosed });
      } else next.push(iv);
    }
    out = next;
  }
  return out;
}

/** Same list of intervals in any order. */
function sameIntervals(gi: Interval[], ai: Interval[]): boolean {
  if (gi.length !== ai.length) return false;
  const used = new Array<boolean>(ai.length).fill(false);
  for (const x of gi) {
    let ok = false;
    for (let j = 0; j < ai.length; j++) {
      if (!used[j] && intervalEqual(x, ai[j] as Interval)) {
        used[j] = true;
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

/** x < 3, 3 <= x, -2 <= x < 7 (one variable alone, constant bounds) as an interval; else null. */
function solvedRelation(n: Extract<Node, { k: 'rel' }>): Interval[] | null {
  const isLone = isLoneQuantity;
  const isConst = (m: Node): boolean => freeVars(m).size === 0;
  const ineq = (op: RelOp): boolean => op === '<' || op === '<=' || op === '>' || op === '>=';
  if (n.ops.length === 1) {
    const op = n.ops[0] as RelOp;
    const [l, r] = n.items as [Node, Node];
    // |x| < c, |x| >= c (c a constant): solved absolute-value inequalities
    const absVar = (m: Node): boolean => m.k === 'func' && m.name === 'abs' && m.args.length === 1 && isLone(m.args[0] as Node);
    if (ineq(op) && ((absVar(l) && isConst(r)) || (absVar(r) && isConst(l)))) {
      const c = absVar(l) ? r : l;
      const o = absVar(l) ? op : flip(op);
      const neg: Node = { k: 'neg', a: c };
      if (o === '<' || o === '<=') return [{ lo: neg, hi: c, loClosed: o === '<=', hiClosed: o === '<=' }];
      return [
        { lo: NEG_INF, hi: neg, loClosed: false, hiClosed: o === '>=' },
        { lo: c, hi: INF, loClosed: o === '>=', hiClosed: false },
      ];
    }
    if (op === '!=') {
      // x ≠ c: every real except c
      const c = isLone(l) && isConst(r) ? r : isLone(r) && isConst(l) ? l : null;
      if (c === null) return null;
      return [
        { lo: NEG_INF, hi: c, loClosed: false, hiClosed: false },
        { lo: c, hi: INF, loClosed: false, hiClosed: false },
      ];
    }
    if (!ineq(op)) return null;
    let v: Node;
    let c: Node;
    let o: RelOp = op;
    if (isLone(l) && isConst(r)) {
      v = l;
      c = r;
    } else if (isLone(r) && isConst(l)) {
      v = r;
      c = l;
      o = flip(op);
    } else return null;
    void v;
    if (o === '<' || o === '<=') return [{ lo: NEG_INF, hi: c, loClosed: false, hiClosed: o === '<=' }];
    return [{ lo: c, hi: INF, loClosed: o === '>=', hiClosed: false }];
  }
  if (n.ops.length === 2) {
    const [o1, o2] = n.ops as [RelOp, RelOp];
    const [a, x, b] = n.items as [Node, Node, Node];
    if (!isLone(x) || !isConst(a) || !isConst(b)) return null;
    const up = (o: RelOp): boolean => o === '<' || o === '<=';
    if (up(o1) && up(o2)) return [{ lo: a, hi: b, loClosed: o1 === '<=', hiClosed: o2 === '<=' }];
    const down = (o: RelOp): boolean => o === '>' || o === '>=';
    if (down(o1) && down(o2)) return [{ lo: b, hi: a, loClosed: o2 === '>=', hiClosed: o1 === '>=' }];
  }
  return null;
}

function flip(op: RelOp): RelOp {
  switch (op) {
    case '<':
      return '>';
    case '>':
      return '<';
    case '<=':
      return '>=';
    case '>=':
      return '<=';
    default:
      return op;
  }
}

/** Interval comparison when one side is an interval/union/ℝ and the other an interval-like value or solved relation. */
function compareIntervalsMaybe(g: Node, a: Node): Comparison | null {
  const relish = (n: Node): boolean =>
    n.k === 'rel' || (n.k === 'list' && n.items.every((i) => i.k === 'rel' || (i.k === 'seq' && i.items.length === 2)));
  const gI = isIntervalish(g);
  const aI = isIntervalish(a);
  if (!(gI || aI)) return null;
  if (g.k === 'seq' && a.k === 'seq') return null; // plain bracket comparison
  if (!((gI && (aI || relish(a))) || (aI && relish(g)))) return null;
  const gi = toIntervals(g);
  const ai = toIntervals(a);
  if (!gi) return no('gold is not an interval');
  if (!ai) return no(relish(a) ? 'relation is not solved for the variable' : 'answer is not an interval');
  if (gi.length !== ai.length) return no(`${ai.length} intervals vs ${gi.length}`);
  const used = new Array<boolean>(ai.length).fill(false);
  for (const x of gi) {
    let ok = false;
    for (let j = 0; j < ai.length; j++) {
      if (!used[j] && intervalEqual(x, ai[j] as Interval)) {
        used[j] = true;
        ok = true;
        break;
      }
    }
    if (!ok) return no('intervals differ');
  }
  return yes(`equal intervals (${gi.length})`);
}

function intervalEqual(x: Interval, y: Interval): boolean {
  if (x.loClosed !== y.loClosed || x.hiClosed !== y.hiClosed) return false;
  return compareScalar(x.lo, y.lo).equal && compareScalar(x.hi, y.hi).equal;
}

// ---------------------------------------------------------------- relations

/** Normalise `L op R` to f op' 0 with op' in {=, !=, <, <=}. */
function normRel(l: Node, op: RelOp, r: Node): [Node, RelOp] {
  const minus = (x: Node, y: Node): Node => ({ k: 'add', terms: [x, { k: 'neg', a: y }] });
  switch (op) {
    case '>':
      return [minus(r, l), '<'];
    case '>=':
      return [minus(r, l), '<='];
    default:
      return [minus(l, r), op];
  }
}

function compareRelations(g: Extract<Node, { k: 'rel' }>, a: Extract<Node, { k: 'rel' }>): Comparison {
  // a solved gold (x < 3, -2 <= x <= 7, x = 5) needs a solved answer: a restated equation or
  // inequality (x + 2 < 5, 2x = 6) is not a final answer
  const gSolved = solvedRelation(g);
  if (gSolved) {
    const aSolved = solvedRelation(a);
    if (!aSolved) return no('relation is not solved for the variable');
    if (!sameVariable(g, a)) return no('different variables');
    if (sameIntervals(gSolved, aSolved)) return yes('equal solved relations');
    return no('solved relations differ');
  }
  const gConst = constAssignment(g);
  if (gConst) {
    const aConst = constAssignment(a);
    if (!aConst) return no('equation is not solved for the variable');
    if (aConst[0] !== gConst[0]) return no('different variables');
    return prefix('solved equations: ', compareNodes(gConst[1], aConst[1]));
  }
  if (g.ops.length === 1 && a.ops.length === 1) {
    const [fg, og] = normRel(g.items[0] as Node, g.ops[0] as RelOp, g.items[1] as Node);
    const [fa, oa] = normRel(a.items[0] as Node, a.ops[0] as RelOp, a.items[1] as Node);
    if (og !== oa) return no(`relation ${oa} vs ${og}`);
    const vars = new Set([...freeVars(fg), ...freeVars(fa)]);
    if (vars.size === 0) {
      return compareOrdered(g.items, a.items, 'relation sides');
    }
    return proportional(fg, fa, [...vars], og === '<' || og === '<=');
  }
  if (g.ops.length !== a.ops.length) return no('different relation chains');
  const same = g.ops.every((o, i) => o === a.ops[i]);
  if (same) {
    const c = compareOrdered(g.items, a.items, 'chain');
    if (c.equal) return c;
  }
  const rev = g.ops.every((o, i) => flip(o) === a.ops[a.ops.length - 1 - i]);
  if (rev) return compareOrdered(g.items, [...a.items].reverse(), 'chain');
  return no('different relation chains');
}

/** A variable alone, or a function of one variable `g(x)` (parsed as the product of two letters). */
function isLoneQuantity(m: Node): boolean {
  return m.k === 'var' || (m.k === 'mul' && m.fs.length === 2 && m.fs.every((f) => f.k === 'var' && f.name.length === 1));
}

function loneVar(n: Extract<Node, { k: 'rel' }>): string | null {
  for (const it of n.items) if (isLoneQuantity(it)) return printNode(it);
  return null;
}

function sameVariable(g: Extract<Node, { k: 'rel' }>, a: Extract<Node, { k: 'rel' }>): boolean {
  return loneVar(g) === loneVar(a);
}

/** x = c or c = x with c free of variables: [x, c]. */
function constAssignment(n: Extract<Node, { k: 'rel' }>): [string, Node] | null {
  if (n.ops.length !== 1 || n.ops[0] !== '=') return null;
  const [l, r] = n.items as [Node, Node];
  if (l.k === 'var' && freeVars(r).size === 0) return [l.name, r];
  if (r.k === 'var' && freeVars(l).size === 0) return [r.name, l];
  return null;
}

/** Is fa = k·fg for a constant k (k > 0 when positive)? Checked at seeded points. */
function proportional(fg: Node, fa: Node, vars: string[], positive: boolean): Comparison {
  if (vars.length > MAX_VARS) return no('too many variables');
  const pts = samplePoints(vars, SAMPLE_POINTS + 2, 0x7a11);
  let k: Complex | null = null;
  let kExact: Rational | null = null;
  let valid = 0;
  for (const p of pts) {
    const ex = exactPair(fg, fa, p);
    if (ex) {
      const [x, y] = ex;
      if (x.n === 0n || y.n === 0n) {
        if (x.n === 0n && y.n === 0n) continue;
        return no('relations differ (zero mismatch)');
      }
      const r = Q.div(y, x) as Rational;
      if (kExact === null && k === null) {
        kExact = r;
        k = { re: Q.toNumber(r), im: 0 };
      } else if (kExact !== null) {
        if (!Q.eq(kExact, r)) return no('relations not proportional');
      } else if (!close(k as Complex, { re: Q.toNumber(r), im: 0 }, REL_TOL_VARS, 0)) {
        return no('relations not proportional');
      }
      valid++;
      continue;
    }
    const nenv = numEnv(p);
    resetScale();
    const x = evalNum(fg, nenv);
    const y = evalNum(fa, nenv);
    const scale = lastScale();
    if (!finite(x) || !finite(y)) continue;
    const zx = cabs(x) <= 1e-11 * scale;
    const zy = cabs(y) <= 1e-11 * scale;
    if (zx || zy) {
      if (zx && zy) continue;
      return no('relations differ (zero mismatch)');
    }
    const r = cdivc(y, x);
    if (k === null) k = r;
    else if (!close(k, r, REL_TOL_VARS, 0)) return no('relations not proportional');
    valid++;
  }
  if (valid < 2 || k === null) return no('relations could not be evaluated');
  if (Math.abs(k.im) > 1e-9 * cabs(k)) return no('relations not proportional');
  if (positive && k.re <= 0) return no('inequality direction differs');
  return yes('equivalent relations');
}

function cdivc(a: Complex, b: Complex): Complex {
  const d = b.re * b.re + b.im * b.im;
  return { re: (a.re * b.re + a.im * b.im) / d, im: (a.im * b.re - a.re * b.im) / d };
}

// ---------------------------------------------------------------- scalars

function containsPi(n: Node): boolean {
  return some(n, (m) => m.k === 'const' && m.name === 'pi');
}

const HUNDRED: Node = { k: 'num', v: Q.fromInt(100), dec: false, lit: '100' };
const ONE_EIGHTY: Node = { k: 'num', v: Q.fromInt(180), dec: false, lit: '180' };

function compareScalar(g: Node, a: Node): Comparison {
  // percent
  if (g.k === 'pct' && a.k === 'pct') return prefix('percent: ', compareExpr(g.a, a.a));
  if (a.k === 'pct') {
    const c = compareExpr(g, a.a);
    if (c.equal) return prefix('percent as number: ', c);
    const d = compareExpr(g, { k: 'div', a: a.a, b: HUNDRED, frac: true });
    return d.equal ? prefix('percent as fraction: ', d) : no(`percent: ${c.reason}`);
  }
  if (g.k === 'pct') {
    const c = compareExpr(g.a, a);
    if (c.equal) return prefix('percent as number: ', c);
    const d = compareExpr({ k: 'div', a: g.a, b: HUNDRED, frac: true }, a);
    return d.equal ? prefix('percent as fraction: ', d) : no(`percent: ${c.reason}`);
  }
  // degrees
  if (g.k === 'deg' && a.k === 'deg') return prefix('degrees: ', compareExpr(g.a, a.a));
  if (g.k === 'deg' || a.k === 'deg') {
    const d = (g.k === 'deg' ? g : a) as Extract<Node, { k: 'deg' }>;
    const o = g.k === 'deg' ? a : g;
    const c = compareExpr(d.a, o);
    if (c.equal) return prefix('degrees: ', c);
    if (containsPi(o) && !containsPi(d.a)) {
      const rad: Node = { k: 'div', a: { k: 'mul', fs: [d.a, { k: 'const', name: 'pi' }] }, b: ONE_EIGHTY, frac: true };
      const r = compareExpr(rad, o);
      if (r.equal) return prefix('degrees as radians: ', r);
    }
    return no(`degrees: ${c.reason}`);
  }
  return compareExpr(g, a);
}

const isScalarKind = (n: Node): boolean =>
  ['num', 'var', 'const', 'add', 'neg', 'mul', 'div', 'pow', 'fact', 'func', 'pct', 'deg', 'bigop'].includes(n.k);

type BigOp = Extract<Node, { k: 'bigop' }>;

/** Rename the index `from` to `to` in a body, also inside subscripts (`b_{m-j}` → `b_{m-i}`). */
function renameIndex(n: Node, from: string, to: string): Node {
  if (from === to) return n;
  const re = new RegExp(`(?<![A-Za-z])${from.replace(/[^A-Za-z0-9]/g, '\\$&')}(?![A-Za-z])`, 'g');
  const walk = (m: Node): Node => {
    if (m.k === 'var') {
      if (m.name === from) return { k: 'var', name: to };
      const u = m.name.indexOf('_');
      return u < 0 ? m : { k: 'var', name: m.name.slice(0, u + 1) + m.name.slice(u + 1).replace(re, to) };
    }
    // an inner sum over the same index binds it again
    if (m.k === 'bigop' && m.v === from) return { ...m, lo: walk(m.lo), hi: walk(m.hi) };
    return mapChildren(m, walk);
  };
  return walk(n);
}

/**
 * Two sums (or products) with the same bounds whose bodies agree as functions of the index and the other symbols
 * are equal, whatever the bounds (`\sum_{i=1}^{m} a_i b_{m-i}` = `\sum_{j=1}^{m} b_{m-j} a_j`).
 */
function compareBigOps(g: BigOp, a: BigOp): Comparison | null {
  if (g.op !== a.op) return null;
  if (!compareExpr(g.lo, a.lo).equal || !compareExpr(g.hi, a.hi).equal) return null;
  const c = compareExpr(g.body, renameIndex(a.body, a.v, g.v));
  return c.equal ? yes(`equal ${g.op}s (same bounds, equal terms)`) : null;
}

function finite(c: Complex): boolean {
  return Number.isFinite(c.re) && Number.isFinite(c.im);
}

function close(x: Complex, y: Complex, tol: number, scale: number): boolean {
  const d = Math.hypot(x.re - y.re, x.im - y.im);
  const m = Math.max(cabs(x), cabs(y));
  if (d <= tol * m) return true;
  // both numerically zero relative to the magnitudes seen while evaluating (cancellation)
  return scale > 0 && m <= 1e-11 * scale;
}

function numEnv(p: ReadonlyMap<string, Rational>): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of p) m.set(k, Q.toNumber(v));
  return m;
}

/** Exact values of both sides at a point, or null if either is not rational / too large. */
function exactPair(g: Node, a: Node, env: ReadonlyMap<string, Rational>): [Rational, Rational] | null {
  try {
    const x = evalExact(g, env);
    if (x === null) return null;
    const y = evalExact(a, env);
    if (y === null) return null;
    return [x, y];
  } catch (e) {
    if (e instanceof TooBigError) return null;
    throw e;
  }
}

function compareExpr(g: Node, a: Node): Comparison {
  if (!isScalarKind(g) || !isScalarKind(a)) return no(`${a.k} vs ${g.k}`);
  if (g.k === 'bigop' && a.k === 'bigop') {
    const c = compareBigOps(g, a);
    if (c !== null) return c;
  }
  const gs = infSign(g);
  const as = infSign(a);
  if (gs !== 0 || as !== 0) return gs === as ? yes('same infinity') : no('infinity mismatch');
  if (some(g, (m) => m.k === 'const' && m.name === 'inf') || some(a, (m) => m.k === 'const' && m.name === 'inf')) {
    return printNode(g) === printNode(a) ? yes('structurally equal') : no('expression with infinity');
  }
  const vars = [...new Set([...freeVars(g), ...freeVars(a)])].sort();
  if (vars.length === 0) return compareConstants(g, a);
  if (vars.length > MAX_VARS) return no('too many variables');
  const pts = samplePoints(vars, SAMPLE_POINTS);
  let valid = 0;
  let exactAll = true;
  for (const p of pts) {
    const ex = exactPair(g, a, p);
    if (ex) {
      if (!Q.eq(ex[0], ex[1])) return no(`differs at ${fmtPoint(p)}`);
      valid++;
      continue;
    }
    exactAll = false;
    const nenv = numEnv(p);
    resetScale();
    const x = evalNum(g, nenv);
    const y = evalNum(a, nenv);
    const scale = lastScale();
    if (!finite(x) || !finite(y)) {
      if (finite(x) !== finite(y) && !Number.isNaN(x.re) && !Number.isNaN(y.re)) return no(`differs at ${fmtPoint(p)}`);
      continue;
    }
    if (!close(x, y, REL_TOL_VARS, scale)) return no(`differs at ${fmtPoint(p)}`);
    valid++;
  }
  if (valid < 3) return no('could not evaluate at enough points');
  return yes(`equal at ${valid} points${exactAll ? ' (exact)' : ''}`);
}

function fmtPoint(p: ReadonlyMap<string, Rational>): string {
  return [...p].map(([k, v]) => `${k}=${Q.toString(v)}`).join(',');
}

function compareConstants(g: Node, a: Node): Comparison {
  let x: Rational | null = null;
  let y: Rational | null = null;
  let tooBig = false;
  try {
    x = evalExact(g, new Map());
  } catch (e) {
    if (!(e instanceof TooBigError)) throw e;
    tooBig = true;
  }
  try {
    y = evalExact(a, new Map());
  } catch (e) {
    if (!(e instanceof TooBigError)) throw e;
    tooBig = true;
  }
  if (x !== null && y !== null) {
    return Q.eq(x, y) ? yes(`equal rationals ${Q.toString(x).slice(0, 60)}`) : no('different rationals');
  }
  if (tooBig) {
    return printNode(g) === printNode(a) ? yes('structurally equal (too large to evaluate)') : no('too large to compare');
  }
  resetScale();
  const gv = evalNum(g, new Map());
  const av = evalNum(a, new Map());
  const scale = lastScale();
  if (!finite(gv) || !finite(av)) {
    return printNode(g) === printNode(a) ? yes('structurally equal (not finite)') : no('not finite, cannot compare');
  }
  const mixed = (x === null) !== (y === null);
  const tol = mixed ? REL_TOL_MIXED : REL_TOL_CONST;
  if (!close(gv, av, tol, scale)) return no('different values');
  // double precision cannot tell 10^{10} from \sqrt{10^{20}+1} or π from 3.141592653589793: re-check at ~60 digits
  // where the expressions allow it (a veto only: it never turns a "different" into an "equal")
  const budget: HPBudget = { ops: 2000, maxMag: -Infinity };
  const gh = evalHP(g, budget);
  const ah = gh === null ? null : evalHP(a, budget);
  if (gh !== null && ah !== null && !hpClose(gh, ah, budget.maxMag)) return no('different values (high precision)');
  return yes(mixed ? 'equal (rational vs closed form)' : 'numerically equal');
}
