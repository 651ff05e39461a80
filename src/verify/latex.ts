// Tokenizer and recursive-descent parser: normalised LaTeX / plain-text answers → typed AST.
// Bounded: token count cap, nesting depth cap; throws ParseError on anything it does not understand.

import { fromDecimal, fromRepeating, type Rational } from './rational.js';
import { mapChildren } from './value.js';

export type RelOp = '=' | '<' | '>' | '<=' | '>=' | '!=';

export type Node =
  | { k: 'num'; v: Rational; dec: boolean; lit: string }
  | { k: 'var'; name: string }
  | { k: 'const'; name: 'pi' | 'e' | 'i' | 'inf' }
  | { k: 'add'; terms: Node[] }
  | { k: 'neg'; a: Node }
  | { k: 'pmterm'; a: Node; minusFirst: boolean }
  | { k: 'mul'; fs: Node[] }
  | { k: 'div'; a: Node; b: Node; frac: boolean }
  | { k: 'pow'; a: Node; b: Node }
  | { k: 'fact'; a: Node }
  | { k: 'func'; name: string; args: Node[] }
  | { k: 'pct'; a: Node }
  | { k: 'deg'; a: Node }
  | { k: 'rel'; items: Node[]; ops: RelOp[] }
  | { k: 'in'; a: Node; set: Node }
  | { k: 'seq'; open: string; close: string; items: Node[] }
  | { k: 'list'; items: Node[] }
  | { k: 'set'; items: Node[] }
  | { k: 'union'; items: Node[] }
  | { k: 'diff'; a: Node; b: Node }
  | { k: 'matrix'; rows: Node[][] }
  | { k: 'text'; s: string }
  | { k: 'empty' }
  | { k: 'reals' }
  | { k: 'based'; digits: string; base: number }
  /** `\sum_{v=lo}^{hi} body` / `\prod_{v=lo}^{hi} body` (v is bound in body). */
  | { k: 'bigop'; op: 'sum' | 'prod'; v: string; lo: Node; hi: Node; body: Node };

export class ParseError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'ParseError';
  }
}

export const MAX_TOKENS = 4000;
export const MAX_DEPTH = 300;

export type Tok =
  | { t: 'num'; s: string }
  | { t: 'id'; s: string }
  | { t: 'word'; s: string }
  | { t: 'cmd'; s: string }
  | { t: 'op'; s: string }
  | { t: 'text'; s: string }
  | { t: 'begin'; s: string }
  | { t: 'end'; s: string };

const FUNCS = new Set([
  'sin', 'cos', 'tan', 'cot', 'sec', 'csc', 'arcsin', 'arccos', 'arctan', 'arccot', 'sinh', 'cosh', 'tanh',
  'ln', 'log', 'lg', 'exp', 'sqrt', 'abs',
]);
const GREEK = new Set([
  'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'varepsilon', 'zeta', 'eta', 'theta', 'vartheta', 'kappa', 'lambda',
  'mu', 'nu', 'xi', 'rho', 'sigma', 'tau', 'phi', 'varphi', 'chi', 'psi', 'omega', 'Gamma', 'Delta', 'Theta',
  'Lambda', 'Sigma', 'Phi', 'Psi', 'Omega',
]);
const TEXT_CMDS = new Set([
  'text', 'textbf', 'textit', 'textrm', 'textsf', 'texttt', 'textnormal', 'mbox', 'mathrm', 'mathbf', 'mathit',
  'mathsf', 'operatorname', 'emph', 'hbox',
]);
const DROP_CMDS = new Set(['displaystyle', 'textstyle', 'left', 'right', 'boxed', 'mathbb']);

function isLetter(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z]/.test(c);
}

function readBraced(s: string, i: number): [string, number] {
  // s[i] === '{'
  let depth = 0;
  for (let j = i; j < s.length; j++) {
    const c = s[j];
    if (c === '\\') {
      j++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return [s.slice(i + 1, j), j + 1];
    }
  }
  throw new ParseError('unbalanced braces');
}

function splitLetters(run: string, out: Tok[]): void {
  if (FUNCS.has(run) || run === 'pi' || run === 'infty' || run === 'inf') {
    out.push({ t: 'id', s: run });
    return;
  }
  // "sinx", "lnx", "sqrt2" style
  for (const f of ['arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'sqrt', 'sin', 'cos', 'tan', 'cot', 'sec', 'csc', 'log', 'exp', 'ln']) {
    if (run.startsWith(f) && run.length - f.length <= 2) {
      out.push({ t: 'id', s: f });
      for (const c of run.slice(f.length)) out.push({ t: 'id', s: c });
      return;
    }
  }
  if (run.length >= 3) {
    out.push({ t: 'word', s: run });
    return;
  }
  for (const c of run) out.push({ t: 'id', s: c });
}

export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    if (out.length > MAX_TOKENS) throw new ParseError('too many tokens');
    const c = src[i] as string;
    if (c === ' ' || c === '\t' || c === '\n') {
      i++;
      continue;
    }
    if (/[0-9.]/.test(c)) {
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+(?![a-zA-Z]))?/.exec(src.slice(i, i + 6000));
      if (!m) {
        out.push({ t: 'op', s: '.' });
        i++;
        continue;
      }
      out.push({ t: 'num', s: m[0] });
      i += m[0].length;
      continue;
    }
    if (isLetter(c)) {
      let j = i;
      while (isLetter(src[j])) j++;
      splitLetters(src.slice(i, j), out);
      i = j;
      continue;
    }
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new ParseError('trailing backslash');
      if (!isLetter(n)) {
        out.push({ t: 'cmd', s: n });
        i += 2;
        continue;
      }
      let j = i + 1;
      while (isLetter(src[j])) j++;
      const name = src.slice(i + 1, j);
      i = j;
      if (TEXT_CMDS.has(name) || name === 'begin' || name === 'end' || name === 'mathbb' || name === 'overline') {
        while (src[i] === ' ') i++;
        if (src[i] !== '{') {
          if (name === 'mathbb' && isLetter(src[i])) {
            out.push({ t: 'cmd', s: 'mathbb:' + src[i] });
            i++;
            continue;
          }
          if (TEXT_CMDS.has(name)) continue; // \text without braces: ignore the command
          throw new ParseError(`\\${name} without argument`);
        }
        const [content, next] = readBraced(src, i);
        i = next;
        if (name === 'begin') {
          out.push({ t: 'begin', s: content.trim() });
          if (content.trim() === 'array') {
            while (src[i] === ' ') i++;
            if (src[i] === '{') i = readBraced(src, i)[1];
          }
        } else if (name === 'end') out.push({ t: 'end', s: content.trim() });
        else if (name === 'mathbb') out.push({ t: 'cmd', s: 'mathbb:' + content.trim() });
        else if (name === 'overline') out.push({ t: 'cmd', s: 'overline:' + content.trim() });
        else if (content.trim() !== '') out.push({ t: 'text', s: content });
        continue;
      }
      if (DROP_CMDS.has(name)) continue;
      out.push({ t: 'cmd', s: name });
      continue;
    }
    out.push({ t: 'op', s: c });
    i++;
  }
  return out;
}

const REL_CMDS: Record<string, RelOp> = { le: '<=', ge: '>=', ne: '!=' };

const ATOM_CMDS = new Set([
  'frac', 'sqrt', 'binom', 'pi', 'infty', 'emptyset', '{', 'lfloor', 'lceil', 'lvert', 'vert', 'langle', 'exp', 'sum', 'prod',
]);

export class Parser {
  private toks: Tok[];
  private pos = 0;
  private depth = 0;

  constructor(src: string) {
    this.toks = tokenize(src);
  }

  parseAll(): Node {
    if (this.toks.length === 0) throw new ParseError('empty');
    const n = this.parseList(new Set());
    if (this.pos < this.toks.length) throw new ParseError(`unexpected ${this.describe(this.peek())}`);
    return n;
  }

  private describe(t: Tok | undefined): string {
    return t ? `${t.t} '${t.s}'` : 'end';
  }
  private peek(off = 0): Tok | undefined {
    return this.toks[this.pos + off];
  }
  private isOp(s: string, off = 0): boolean {
    const t = this.peek(off);
    return t !== undefined && t.t === 'op' && t.s === s;
  }
  private isCmd(s: string, off = 0): boolean {
    const t = this.peek(off);
    return t !== undefined && t.t === 'cmd' && t.s === s;
  }
  private expectOp(s: string): void {
    if (!this.isOp(s)) throw new ParseError(`expected '${s}', got ${this.describe(this.peek())}`);
    this.pos++;
  }
  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new ParseError('nesting too deep');
  }
  private leave(): void {
    this.depth--;
  }

  /** Comma/semicolon separated items. `stops` are closers that end the list. */
  private parseList(stops: Set<string>): Node {
    this.enter();
    // `;` separates groups of equally many comma-separated items ("m=1,n=4;m=3,n=4"), else it separates items
    const groups: Node[][] = [[this.parseUnion()]];
    while (this.isOp(',') || this.isOp(';')) {
      if (this.isOp(';')) groups.push([]);
      this.pos++;
      (groups[groups.length - 1] as Node[]).push(this.parseUnion());
    }
    this.leave();
    void stops;
    const width = (groups[0] as Node[]).length;
    const grouped = groups.length > 1 && width > 1 && groups.every((g) => g.length === width);
    const items = grouped ? groups.map((g): Node => ({ k: 'list', items: g })) : groups.flat();
    return items.length === 1 ? (items[0] as Node) : { k: 'list', items };
  }

  private parseUnion(): Node {
    const items: Node[] = [this.parseRel()];
    while (this.isCmd('cup')) {
      this.pos++;
      items.push(this.parseRel());
    }
    let out: Node = items.length === 1 ? (items[0] as Node) : { k: 'union', items };
    // A \setminus B (left-associative, binds like \cup here: "ℝ \setminus \{1\}")
    while (this.isCmd('setminus') || this.isCmd('backslash')) {
      this.pos++;
      out = { k: 'diff', a: out, b: this.parseRel() };
    }
    return out;
  }

  private relOp(): RelOp | null {
    const t = this.peek();
    if (!t) return null;
    if (t.t === 'cmd' && REL_CMDS[t.s] !== undefined) {
      this.pos++;
      return REL_CMDS[t.s] as RelOp;
    }
    if (t.t === 'op' && (t.s === '=' || t.s === '<' || t.s === '>')) {
      this.pos++;
      if (t.s !== '=' && this.isOp('=')) {
        this.pos++;
        return t.s === '<' ? '<=' : '>=';
      }
      return t.s as RelOp;
    }
    if (t.t === 'op' && t.s === '!' && this.isOp('=', 1)) {
      this.pos += 2;
      return '!=';
    }
    return null;
  }

  /** `a:b` is the ratio a/b (binds tighter than relations: `T_{ABC}:T = 3:10`); three-term ratios are refused. */
  private parseRatio(): Node {
    const a = this.parseAdd();
    if (!this.isOp(':')) return a;
    this.pos++;
    const b = this.parseAdd();
    if (this.isOp(':')) throw new ParseError('ratio of more than two terms');
    return { k: 'div', a, b, frac: true };
  }

  private parseRel(): Node {
    const first = this.parseRatio();
    if (this.isCmd('in')) {
      this.pos++;
      this.enter();
      const set = this.parseUnion();
      this.leave();
      return { k: 'in', a: first, set };
    }
    const items: Node[] = [first];
    const ops: RelOp[] = [];
    for (;;) {
      const op = this.relOp();
      if (op === null) break;
      ops.push(op);
      items.push(this.parseRatio());
    }
    return ops.length === 0 ? first : { k: 'rel', items, ops };
  }

  private parseAdd(): Node {
    this.enter();
    const terms: Node[] = [this.parseUnary()];
    for (;;) {
      if (this.isOp('+')) {
        this.pos++;
        terms.push(this.parseMul());
      } else if (this.isOp('-')) {
        this.pos++;
        terms.push({ k: 'neg', a: this.parseMul() });
      } else if (this.isCmd('pm') || this.isCmd('mp')) {
        const minusFirst = this.isCmd('mp');
        this.pos++;
        terms.push({ k: 'pmterm', a: this.parseMul(), minusFirst });
      } else break;
    }
    this.leave();
    return terms.length === 1 ? (terms[0] as Node) : { k: 'add', terms };
  }

  private parseUnary(): Node {
    if (this.isOp('-')) {
      this.pos++;
      this.enter();
      const r: Node = { k: 'neg', a: this.parseUnary() };
      this.leave();
      return r;
    }
    if (this.isOp('+')) {
      this.pos++;
      return this.parseUnary();
    }
    if (this.isCmd('pm') || this.isCmd('mp')) {
      const minusFirst = this.isCmd('mp');
      this.pos++;
      return { k: 'pmterm', a: this.parseMul(), minusFirst };
    }
    return this.parseMul();
  }

  private startsAtom(): boolean {
    const t = this.peek();
    if (!t) return false;
    switch (t.t) {
      case 'num':
      case 'id':
      case 'begin':
        return true;
      case 'text':
        return !/^\s*(?:and|or|,)?\s*$/i.test(t.s);
      case 'op':
        return t.s === '(';
      case 'cmd':
        return ATOM_CMDS.has(t.s) || FUNCS.has(t.s) || GREEK.has(t.s) || t.s.startsWith('mathbb:') || t.s === 'sqrt';
      default:
        return false;
    }
  }

  private parseMul(): Node {
    this.enter();
    const first = this.parseUnaryInMul();
    const fs: Node[] = [first];
    let result: Node | null = null;
    for (;;) {
      if (this.isOp('*') || this.isCmd('cdot') || this.isCmd('times') || this.isCmd('ast')) {
        this.pos++;
        fs.push(this.parseUnaryInMul());
      } else if (this.isOp('/') || this.isCmd('div')) {
        this.pos++;
        const b = this.parseUnaryInMul();
        const a: Node = fs.length === 1 ? (fs[0] as Node) : { k: 'mul', fs: fs.splice(0) };
        fs.length = 0;
        fs.push({ k: 'div', a, b, frac: false });
      } else if (this.startsAtom()) {
        if (this.peek()?.t === 'num' && endsWithNumber(fs[fs.length - 1] as Node)) throw new ParseError('two numbers side by side');
        const f = this.parsePow();
        // mixed number: 3\frac{1}{2}
        if (fs.length === 1 && isIntLiteral(fs[0] as Node) && isProperFracLiteral(f)) {
          fs[0] = { k: 'add', terms: [fs[0] as Node, f] };
          continue;
        }
        // mixed number percent: 16\frac{2}{3}\%
        if (fs.length === 1 && isIntLiteral(fs[0] as Node) && f.k === 'pct' && isProperFracLiteral(f.a)) {
          fs[0] = { k: 'pct', a: { k: 'add', terms: [fs[0] as Node, f.a] } };
          continue;
        }
        fs.push(f);
      } else break;
    }
    result = fs.length === 1 ? (fs[0] as Node) : { k: 'mul', fs };
    this.leave();
    return result;
  }

  private parseUnaryInMul(): Node {
    if (this.isOp('-')) {
      this.pos++;
      this.enter();
      const r: Node = { k: 'neg', a: this.parseUnaryInMul() };
      this.leave();
      return r;
    }
    return this.parsePow();
  }

  /** Superscript/subscript argument: a group or a single token. */
  private parseScript(): Node {
    const t = this.peek();
    if (!t) throw new ParseError('missing script');
    if (t.t === 'op' && t.s === '{') return this.parseAtom();
    if (t.t === 'op' && (t.s === '-' || t.s === '+')) {
      this.pos++;
      const inner = this.parseScript();
      return t.s === '-' ? { k: 'neg', a: inner } : inner;
    }
    if (t.t === 'id' || t.t === 'num' || t.t === 'cmd' || t.t === 'op') return this.parseAtom();
    throw new ParseError('bad script');
  }

  private parsePow(): Node {
    this.enter();
    let base = this.parseAtom();
    for (;;) {
      if (this.isOp('^')) {
        this.pos++;
        if (this.isCmd('circ')) {
          this.pos++;
          base = { k: 'deg', a: base };
          continue;
        }
        const e = this.parseScript();
        base = { k: 'pow', a: base, b: e };
      } else if (this.isOp('!')) {
        if (this.isOp('=', 1)) break;
        this.pos++;
        base = { k: 'fact', a: base };
      } else if (this.isOp('%')) {
        this.pos++;
        base = { k: 'pct', a: base };
      } else if (this.isOp("'")) {
        throw new ParseError('prime notation');
      } else break;
    }
    this.leave();
    return base;
  }

  private parseGroupArg(): Node {
    // argument of \frac, \sqrt, \binom: {…} or a single character/token
    const t = this.peek();
    if (!t) throw new ParseError('missing argument');
    if (t.t === 'op' && t.s === '{') {
      this.pos++;
      this.enter();
      const inner = this.parseList(new Set(['}']));
      this.leave();
      this.expectOp('}');
      return inner;
    }
    if (t.t === 'num' && t.s.length > 1) {
      // \frac12 → 1, 2 ; \sqrt3 → 3
      this.toks.splice(this.pos, 1, { t: 'num', s: t.s[0] as string }, { t: 'num', s: t.s.slice(1) });
      const first = this.toks[this.pos] as Tok;
      this.pos++;
      return numNode(first.s);
    }
    if (t.t === 'word') {
      this.toks.splice(this.pos, 1, ...[...t.s].map((c): Tok => ({ t: 'id', s: c })));
    }
    return this.parseAtom();
  }

  private parseFunc(name: string): Node {
    let power: Node | null = null;
    let base: Node | null = null;
    for (let guard = 0; guard < 2; guard++) {
      if (this.isOp('^')) {
        this.pos++;
        power = this.parseScript();
      } else if (this.isOp('_')) {
        this.pos++;
        base = this.parseScript();
      }
    }
    let arg: Node;
    if (this.isOp('(') || this.isOp('{')) arg = this.parseAtom();
    else {
      const fs: Node[] = [this.parseUnaryInMul()];
      while (this.startsAtom()) {
        const t = this.peek();
        if (t && (t.t === 'id' || t.t === 'cmd') && FUNCS.has(t.s)) break;
        fs.push(this.parsePow());
      }
      arg = fs.length === 1 ? (fs[0] as Node) : { k: 'mul', fs };
    }
    let fname = name === 'lg' ? 'log10' : name;
    if (power && isMinusOne(power) && ['sin', 'cos', 'tan'].includes(fname)) {
      fname = 'arc' + fname;
      power = null;
    }
    const args = base ? [arg, base] : [arg];
    if (base && fname !== 'log') throw new ParseError('subscript on function');
    const f: Node = { k: 'func', name: fname, args };
    return power ? { k: 'pow', a: f, b: power } : f;
  }

  private parseMatrix(env: string): Node {
    if (!['pmatrix', 'bmatrix', 'Bmatrix', 'matrix', 'smallmatrix', 'array'].includes(env)) {
      throw new ParseError(`environment ${env}`);
    }
    const rows: Node[][] = [];
    let row: Node[] = [];
    for (;;) {
      const t = this.peek();
      if (!t) throw new ParseError('unterminated matrix');
      if (t.t === 'end') {
        if (t.s !== env) throw new ParseError('mismatched \\end');
        this.pos++;
        break;
      }
      row.push(this.parseRel());
      if (this.isOp('&')) {
        this.pos++;
        continue;
      }
      if (this.isCmd('\\')) {
        this.pos++;
        rows.push(row);
        row = [];
        if (this.peek()?.t === 'end') {
          row = [];
        }
        continue;
      }
    }
    if (row.length) rows.push(row);
    if (rows.length === 0) throw new ParseError('empty matrix');
    const w = (rows[0] as Node[]).length;
    if (!rows.every((r) => r.length === w)) throw new ParseError('ragged matrix');
    return { k: 'matrix', rows };
  }

  private parseAtom(): Node {
    const t = this.peek();
    if (!t) throw new ParseError('unexpected end');
    this.enter();
    try {
      this.pos++;
      switch (t.t) {
        case 'num':
          return this.finishNumber(t.s);
        case 'word':
          return { k: 'text', s: t.s };
        case 'text':
          return this.textAtom(t.s);
        case 'begin':
          return this.parseMatrix(t.s);
        case 'end':
          throw new ParseError('stray \\end');
        case 'id':
          return this.idAtom(t.s);
        case 'cmd':
          return this.cmdAtom(t.s);
        case 'op':
          return this.opAtom(t.s);
      }
    } finally {
      this.leave();
    }
    throw new ParseError('unreachable');
  }

  private finishNumber(s: string): Node {
    // repeating decimal 0.\overline{3}
    const n = this.peek();
    if (n && n.t === 'cmd' && n.s.startsWith('overline:') && s.includes('.')) {
      this.pos++;
      const rep = n.s.slice('overline:'.length).replace(/\s/g, '');
      if (!/^\d+$/.test(rep)) throw new ParseError('bad repeating decimal');
      return { k: 'num', v: fromRepeating(s, rep), dec: true, lit: `${s}(${rep})` };
    }
    // repeating decimal 0.(3)
    if (s.includes('.') && this.isOp('(') && this.peek(1)?.t === 'num' && this.isOp(')', 2)) {
      const rep = (this.peek(1) as Tok).s;
      if (/^\d+$/.test(rep)) {
        this.pos += 3;
        return { k: 'num', v: fromRepeating(s, rep), dec: true, lit: `${s}(${rep})` };
      }
    }
    // base subscript: 204_5, 4210_{5}
    if (this.isOp('_') && /^\d+$/.test(s)) {
      this.pos++;
      const b = this.peek();
      let baseStr: string | null = null;
      if (b && b.t === 'num') {
        baseStr = b.s;
        this.pos++;
      } else if (b && b.t === 'op' && b.s === '{') {
        this.pos++;
        const inner = this.peek();
        if (inner && inner.t === 'num') {
          baseStr = inner.s;
          this.pos++;
        }
        this.expectOp('}');
      }
      if (baseStr === null || !/^\d+$/.test(baseStr)) throw new ParseError('bad base subscript');
      const base = Number(baseStr);
      if (base < 2 || base > 36) throw new ParseError('bad base');
      return { k: 'based', digits: s.replace(/^0+(?=\d)/, ''), base };
    }
    return numNode(s);
  }

  private textAtom(raw: string): Node {
    const s = raw.trim();
    if (s === '') throw new ParseError('empty text');
    if (/^[A-Za-z]$/.test(s)) return this.idAtom(s);
    if (/^[\d.,\s+\-/()^]+$/.test(s)) return new Parser(s).parseAll();
    return { k: 'text', s };
  }

  private idAtom(s: string): Node {
    if (s === 'pi') return { k: 'const', name: 'pi' };
    if (s === 'infty' || s === 'inf') return { k: 'const', name: 'inf' };
    if (FUNCS.has(s)) return s === 'sqrt' ? this.sqrtAtom() : this.parseFunc(s);
    if (s === 'e') return { k: 'const', name: 'e' };
    if (s === 'i') return { k: 'const', name: 'i' };
    return this.varWithSub(s);
  }

  private varWithSub(name: string): Node {
    if (this.isOp('_')) {
      this.pos++;
      const t = this.peek();
      if (!t) throw new ParseError('bad subscript');
      let sub: string;
      if (t.t === 'op' && t.s === '{') {
        this.pos++;
        const parts: string[] = [];
        while (!this.isOp('}')) {
          const u = this.peek();
          if (!u || this.pos - 0 > this.toks.length) throw new ParseError('bad subscript');
          parts.push(u.s);
          this.pos++;
        }
        this.pos++;
        sub = parts.join('');
      } else {
        sub = t.s.length > 1 && t.t === 'num' ? t.s[0] as string : t.s;
        if (t.t === 'num' && t.s.length > 1) this.toks.splice(this.pos, 1, { t: 'num', s: sub }, { t: 'num', s: t.s.slice(1) });
        this.pos++;
      }
      return { k: 'var', name: `${name}_${sub}` };
    }
    return { k: 'var', name };
  }

  private sqrtAtom(): Node {
    let index: Node | null = null;
    if (this.isOp('[')) {
      this.pos++;
      index = this.parseAdd();
      this.expectOp(']');
    }
    const arg = this.parseGroupArg();
    return { k: 'func', name: 'sqrt', args: index ? [arg, index] : [arg] };
  }

  /** `\sum_{i=1}^{m} a_i b_{m-i}`: index and bounds in either order, then a product as the body. */
  private bigOp(op: 'sum' | 'prod'): Node {
    let index: Node | null = null;
    let hi: Node | null = null;
    for (let guard = 0; guard < 2; guard++) {
      if (this.isOp('_') && index === null) {
        this.pos++;
        index = this.parseScript();
      } else if (this.isOp('^') && hi === null) {
        this.pos++;
        hi = this.parseScript();
      }
    }
    if (index === null || hi === null) throw new ParseError(`\\${op} without both bounds`);
    const iv = index.k === 'rel' && index.ops.length === 1 && index.ops[0] === '=' ? index.items[0] : undefined;
    // the index may be a letter that otherwise names a constant (i, e): inside the body it is the index
    const v = iv?.k === 'var' ? iv.name : iv?.k === 'const' && (iv.name === 'i' || iv.name === 'e') ? iv.name : null;
    if (v === null) throw new ParseError(`\\${op} index is not "v = start"`);
    const bind = (m: Node): Node => (m.k === 'const' && m.name === v ? { k: 'var', name: v } : mapChildren(m, bind));
    const body = bind(this.parseMul());
    return { k: 'bigop', op, v, lo: (index as Extract<Node, { k: 'rel' }>).items[1] as Node, hi, body };
  }

  private cmdAtom(s: string): Node {
    if (s === 'frac') {
      const a = this.parseGroupArg();
      const b = this.parseGroupArg();
      return { k: 'div', a, b, frac: true };
    }
    if (s === 'binom') {
      const a = this.parseGroupArg();
      const b = this.parseGroupArg();
      return { k: 'func', name: 'binom', args: [a, b] };
    }
    if (s === 'sqrt') return this.sqrtAtom();
    if (s === 'sum' || s === 'prod') return this.bigOp(s);
    if (s === 'pi') return { k: 'const', name: 'pi' };
    if (s === 'infty') return { k: 'const', name: 'inf' };
    if (s === 'emptyset') return { k: 'empty' };
    if (s === 'mathbb:R') return { k: 'reals' };
    if (GREEK.has(s)) return this.varWithSub(s);
    if (FUNCS.has(s)) return this.parseFunc(s);
    if (s === '{') {
      if (this.isCmd('}')) {
        this.pos++;
        return { k: 'empty' };
      }
      const inner = this.parseList(new Set());
      if (!this.isCmd('}')) throw new ParseError("expected '\\}'");
      this.pos++;
      return { k: 'set', items: inner.k === 'list' ? inner.items : [inner] };
    }
    if (s === 'lfloor' || s === 'lceil') {
      const inner = this.parseAdd();
      const close = s === 'lfloor' ? 'rfloor' : 'rceil';
      if (!this.isCmd(close)) throw new ParseError(`expected \\${close}`);
      this.pos++;
      return { k: 'func', name: s === 'lfloor' ? 'floor' : 'ceil', args: [inner] };
    }
    if (s === 'lvert' || s === 'vert' || s === '|') {
      const inner = this.parseAdd();
      if (!(this.isCmd('rvert') || this.isCmd('vert') || this.isCmd('|'))) throw new ParseError('expected closing bar');
      this.pos++;
      return { k: 'func', name: 'abs', args: [inner] };
    }
    if (s === 'langle') {
      const inner = this.parseList(new Set());
      if (!this.isCmd('rangle')) throw new ParseError('expected \\rangle');
      this.pos++;
      return { k: 'seq', open: '<', close: '>', items: inner.k === 'list' ? inner.items : [inner] };
    }
    throw new ParseError(`unsupported command \\${s}`);
  }

  private opAtom(s: string): Node {
    if (s === '(' || s === '[') {
      const inner = this.parseList(new Set([')', ']']));
      const c = this.peek();
      if (!c || c.t !== 'op' || (c.s !== ')' && c.s !== ']')) throw new ParseError('unclosed bracket');
      this.pos++;
      if (inner.k !== 'list') {
        if ((s === '(' && c.s === ')') || (s === '[' && c.s === ']')) return inner;
        throw new ParseError('mismatched brackets around one item');
      }
      return { k: 'seq', open: s, close: c.s, items: inner.items };
    }
    if (s === '{') {
      if (this.isOp('}')) throw new ParseError('empty group');
      const inner = this.parseList(new Set(['}']));
      this.expectOp('}');
      return inner;
    }
    if (s === '|') {
      const inner = this.parseAdd();
      this.expectOp('|');
      return { k: 'func', name: 'abs', args: [inner] };
    }
    throw new ParseError(`unexpected '${s}'`);
  }
}

function numNode(s: string): Node {
  const m = /^(\d*\.?\d*)(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) throw new ParseError(`bad number ${s}`);
  const mant = m[1] as string;
  let v = fromDecimal(mant);
  if (m[2] !== undefined) {
    const e = Number(m[2]);
    if (Math.abs(e) > 400) throw new ParseError('exponent too large');
    const p = 10n ** BigInt(Math.abs(e));
    v = e >= 0 ? { n: v.n * p, d: v.d } : { n: v.n, d: v.d * p };
    return { k: 'num', v: reduce(v), dec: true, lit: s };
  }
  return { k: 'num', v, dec: mant.includes('.'), lit: s };
}

function reduce(v: Rational): Rational {
  let a = v.n < 0n ? -v.n : v.n;
  let b = v.d;
  while (b !== 0n) [a, b] = [b, a % b];
  return a > 1n ? { n: v.n / a, d: v.d / a } : v;
}

function endsWithNumber(n: Node): boolean {
  if (n.k === 'num') return true;
  if (n.k === 'pow') return endsWithNumber(n.b);
  if (n.k === 'neg') return endsWithNumber(n.a);
  if (n.k === 'mul') return endsWithNumber(n.fs[n.fs.length - 1] as Node);
  return false;
}

function isIntLiteral(n: Node): boolean {
  return n.k === 'num' && !n.dec;
}

function isProperFracLiteral(n: Node): boolean {
  return n.k === 'div' && n.frac && isIntLiteral(n.a) && isIntLiteral(n.b);
}

function isMinusOne(n: Node): boolean {
  return n.k === 'neg' && n.a.k === 'num' && n.a.v.n === 1n && n.a.v.d === 1n;
}

/** Parse a normalised answer string into an AST; throws ParseError. */
export function parseLatex(src: string): Node {
  return new Parser(src).parseAll();
}
