import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ARITH_FAMILIES,
  ARITH_LEVELS,
  centsLatex,
  fracLatex,
  generateProblem,
  makeSplit,
  problemSplit,
  type ArithProblem,
} from '../src/task/arith.js';
import { Mulberry32 as Rng } from '../src/util/rng.js';
import { compareAnswers, extractAnswer, verifyResponse } from '../src/verify/index.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { writeArithTokenizer } from '../scripts/make-tokenizer.js';
import { isAnswerOnly } from '../scripts/make-starting-policy.js';

// ---------------------------------------------------------------------------------------------------------------
// An independent oracle: evaluate the question text with exact rational arithmetic.

type Q = [bigint, bigint]; // numerator, denominator > 0

function norm([n, d]: Q): Q {
  if (d === 0n) throw new Error('division by zero');
  if (d < 0n) [n, d] = [-n, -d];
  let a = n < 0n ? -n : n;
  let b = d;
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? [0n, 1n] : [n / a, d / a];
}
const add = (x: Q, y: Q): Q => norm([x[0] * y[1] + y[0] * x[1], x[1] * y[1]]);
const sub = (x: Q, y: Q): Q => norm([x[0] * y[1] - y[0] * x[1], x[1] * y[1]]);
const mul = (x: Q, y: Q): Q => norm([x[0] * y[0], x[1] * y[1]]);
const div = (x: Q, y: Q): Q => norm([x[0] * y[1], x[1] * y[0]]);

/** Recursive-descent evaluation of + - * / ( ) unary minus and decimals. */
function evalExpr(src: string): Q {
  let i = 0;
  const peek = (): string => src[i] ?? '';
  const num = (): Q => {
    let s = '';
    while (/[0-9.]/.test(peek())) s += src[i++];
    if (s === '') throw new Error(`number expected at ${i} in ${src}`);
    const [ip, fp = ''] = s.split('.');
    return norm([BigInt(ip! + fp), 10n ** BigInt(fp.length)]);
  };
  const atom = (): Q => {
    if (peek() === '-') {
      i++;
      const v = atom();
      return [-v[0], v[1]];
    }
    if (peek() === '(') {
      i++;
      const v = sum();
      if (src[i++] !== ')') throw new Error('missing )');
      return v;
    }
    return num();
  };
  const prod = (): Q => {
    let v = atom();
    while (peek() === '*' || peek() === '/') v = src[i++] === '*' ? mul(v, atom()) : div(v, atom());
    return v;
  };
  const sum = (): Q => {
    let v = prod();
    while (peek() === '+' || peek() === '-') v = src[i++] === '+' ? add(v, prod()) : sub(v, prod());
    return v;
  };
  const v = sum();
  if (i !== src.length) throw new Error(`trailing input in ${src}`);
  return v;
}

function texToExpr(s: string): string {
  return s.replace(/\\frac\{(\d+)\}\{(\d+)\}/g, '($1/$2)');
}

function oracle(question: string): Q {
  let m = /^Compute (.+)\.$/.exec(question);
  if (m) return evalExpr(texToExpr(m[1]!));
  m = /^What is (\d+)% of (\d+)\?$/.exec(question);
  if (m) return evalExpr(`${m[1]}*${m[2]}/100`);
  m = /^Solve for x: (.+)=(.+)\.$/.exec(question);
  if (m) {
    const at = (side: string, x: number): Q =>
      evalExpr(side.replace(/(\d)x/g, '$1*x').replace(/x/g, `(${x})`));
    const [L, R] = [m[1]!, m[2]!];
    const f0 = sub(at(L, 0), at(R, 0));
    const f1 = sub(at(L, 1), at(R, 1));
    return div([-f0[0], f0[1]], sub(f1, f0)); // root of the linear function f
  }
  throw new Error(`oracle: unknown question form ${question}`);
}

/** The canonical gold form: integer, decimal (denominator divides 100) for decimal/percent, else \frac. */
function canonical(v: Q, family: string): string {
  const [n, d] = v;
  if (d === 1n) return String(n);
  if ((family === 'decimal' || family === 'percent') && 100n % d === 0n) {
    return centsLatex(Number((n * 100n) / d));
  }
  return fracLatex(Number(n), Number(d));
}

function allProblems(perCell = 40, seed = 3): ArithProblem[] {
  const out: ArithProblem[] = [];
  for (const f of ARITH_FAMILIES)
    for (const l of ARITH_LEVELS)
      out.push(...makeSplit('train', perCell, seed, { families: { [f]: 1 }, levels: { [l]: 1 } }));
  return out;
}

test('formatting helpers give the LaTeX forms datasets use', () => {
  assert.equal(fracLatex(6, 8), '\\frac{3}{4}');
  assert.equal(fracLatex(-3, 6), '-\\frac{1}{2}');
  assert.equal(fracLatex(3, -6), '-\\frac{1}{2}');
  assert.equal(fracLatex(4, 2), '2');
  assert.equal(fracLatex(0, 5), '0');
  assert.equal(centsLatex(475), '4.75');
  assert.equal(centsLatex(-50), '-0.5');
  assert.equal(centsLatex(300), '3');
  assert.equal(centsLatex(5), '0.05');
  assert.equal(centsLatex(-1210), '-12.1');
});

test('every family and level: gold equals an independent exact evaluation of the question, in canonical form', () => {
  const ps = allProblems();
  assert.equal(ps.length, ARITH_FAMILIES.length * ARITH_LEVELS.length * 40);
  const forms = new Set<string>();
  for (const p of ps) {
    const want = canonical(oracle(p.question), p.family);
    assert.equal(p.answer, want, `${p.question} → ${p.answer}, expected ${want}`);
    if (p.answer.startsWith('-')) forms.add('negative');
    if (p.answer.includes('\\frac')) forms.add('fraction');
    if (p.answer.includes('.')) forms.add('decimal');
    if (/^\d+$/.test(p.answer)) forms.add('integer');
  }
  assert.deepEqual([...forms].sort(), ['decimal', 'fraction', 'integer', 'negative']);
});

test('every solution ends in \\boxed{gold} and the verifier accepts it', () => {
  for (const p of allProblems(30, 5)) {
    assert.ok(p.solution.endsWith(`\\boxed{${p.answer}}`), p.solution);
    const ex = extractAnswer(p.solution);
    assert.equal(ex.method, 'boxed');
    assert.equal(ex.answer, p.answer);
    assert.ok(compareAnswers(p.answer, ex.answer!).equal, `${p.question}: ${p.answer}`);
    assert.ok(verifyResponse(p.solution, p.answer).correct, `${p.question}: ${p.solution}`);
    // A wrong answer is rejected.
    assert.ok(!verifyResponse(`\\boxed{${p.answer}+1}`, p.answer).correct);
  }
});

test('splits are disjoint, deterministic and cover each family', () => {
  const train = makeSplit('train', 3000, 1);
  const held = makeSplit('heldout', 800, 1);
  const trainQ = new Set(train.map((p) => p.question));
  assert.equal(trainQ.size, train.length, 'no duplicates within a split');
  for (const p of held) assert.ok(!trainQ.has(p.question), `shared problem ${p.question}`);
  for (const p of train) assert.equal(problemSplit(p.question), 'train');
  for (const p of held) assert.equal(problemSplit(p.question), 'heldout');
  // Other seeds still never cross.
  for (const p of makeSplit('heldout', 800, 99)) assert.ok(!trainQ.has(p.question));
  assert.deepEqual(makeSplit('train', 200, 7), makeSplit('train', 200, 7));
  assert.notDeepEqual(
    makeSplit('train', 50, 7).map((p) => p.question),
    makeSplit('train', 50, 8).map((p) => p.question),
  );
  const fams = new Set(held.map((p) => p.family));
  assert.equal(fams.size, ARITH_FAMILIES.length);
  // generateProblem is a pure function of the RNG state.
  assert.deepEqual(generateProblem(new Rng(4), 'frac', 3), generateProblem(new Rng(4), 'frac', 3));
  assert.throws(() => generateProblem(new Rng(1), 'arith', 6), /level/);
});

test('tokenizer: small vocabulary, loads, single-digit tokens, exact round trip of all task text', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-arith-tok-'));
  try {
    const v = writeArithTokenizer(dir);
    const tok = Tokenizer.load(dir);
    assert.equal(tok.vocabSize, v);
    assert.ok(tok.vocabSize <= 512, `vocabulary ${tok.vocabSize}`);
    for (const s of ['<|endoftext|>', '<|im_start|>', '<|im_end|>']) {
      const id = tok.tokenToId(s);
      assert.ok(id !== undefined && tok.isSpecial(id), s);
      assert.deepEqual(tok.encode(s), [id]);
    }
    assert.equal(tok.eosTokenId, tok.imEndTokenId);
    assert.equal(tok.padTokenId, tok.tokenToId('<|endoftext|>'));
    assert.equal(tok.tokenize('12345').length, 5, 'digits are single tokens');
    let maxSol = 0;
    for (const p of allProblems(20, 11)) {
      for (const s of [p.question, p.solution, p.answer]) assert.equal(tok.decode(tok.encode(s)), s);
      maxSol = Math.max(maxSol, tok.encode(p.solution).length);
    }
    assert.ok(maxSol <= 60, `longest solution ${maxSol} tokens`);
    // Arbitrary text (other scripts, emoji, control characters) round-trips through the byte alphabet.
    for (const s of ['héllo wörld ∑ 𝔽 😀', 'tabs\tand\r\nnewlines', '  leading and trailing  ', '']) {
      assert.equal(tok.decode(tok.encode(s)), s);
    }
    const chat = tok.applyChatTemplate(
      [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'Compute 1+2.' },
        { role: 'assistant', content: '1+2=3\n\\boxed{3}' },
      ],
      {},
    );
    assert.equal(
      chat,
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nCompute 1+2.<|im_end|>\n<|im_start|>assistant\n1+2=3\n\\boxed{3}<|im_end|>\n',
    );
    assert.ok(
      tok.applyChatTemplate([{ role: 'user', content: 'Q' }], { addGenerationPrompt: true }).endsWith('<|im_start|>assistant\n'),
    );
    assert.equal(tok.decode(tok.encode(chat, { addSpecialTokens: false })), chat);
    // The same corpus gives the same files (deterministic merges).
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-arith-tok-'));
    writeArithTokenizer(dir2);
    assert.equal(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'), fs.readFileSync(path.join(dir2, 'tokenizer.json'), 'utf8'));
    fs.rmSync(dir2, { recursive: true, force: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('answer-only SFT rows: a reproducible hash bucket of the question, of the requested size', () => {
  const qs = makeSplit('train', 4000, 1).map((p) => p.question);
  assert.equal(qs.filter((q) => isAnswerOnly(q, 0)).length, 0);
  assert.equal(qs.filter((q) => isAnswerOnly(q, 1)).length, qs.length);
  const half = qs.filter((q) => isAnswerOnly(q, 0.5));
  // Binomial(4000, 0.5): std ~32, so ±160 is 5 sigma.
  assert.ok(Math.abs(half.length - 2000) < 160, `${half.length} of 4000 answer-only at 0.5`);
  // Nested: a question answer-only at 0.3 is answer-only at 0.5 (one bucket per question, not a fresh draw).
  for (const q of qs) if (isAnswerOnly(q, 0.3)) assert.ok(isAnswerOnly(q, 0.5), q);
  // The bundled SFT data is built this way: its answer-only rows are exactly `\boxed{gold}`.
  const rows = readSftRows(path.join('data', 'arith-sft-heldout.jsonl'));
  const bare = rows.filter((r) => /^\\boxed\{[^\n]*\}$/.test(r.answer));
  assert.ok(bare.length > rows.length * 0.3 && bare.length < rows.length * 0.7, `${bare.length}/${rows.length} bare`);
  for (const r of rows) assert.equal(/^\\boxed\{[^\n]*\}$/.test(r.answer), isAnswerOnly(r.question, 0.5), r.question);
});

function readSftRows(file: string): Array<{ question: string; answer: string }> {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run bash scripts/make-starting-policy.sh`);
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = (JSON.parse(l) as { messages: Array<{ content: string }> }).messages;
      return { question: m[0]!.content, answer: m[1]!.content };
    });
}
