import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { VerifierPool } from '../src/verify/index.js';
import type { Verdict } from '../src/verify/types.js';

// Every verification through the pool must end within its bound and return a well-formed verdict, whatever the
// input. Each step (extraction, comparison) is bounded by TIMEOUT_MS from its dispatch; with two workers and two
// callers a call may also wait for the other caller's step and for a replacement worker to start, hence the bound.
const TIMEOUT_MS = 1000;
const BOUND_MS = 3 * TIMEOUT_MS + 2500;

let pool: VerifierPool;
before(() => {
  pool = new VerifierPool({ threads: 2, timeoutMs: TIMEOUT_MS });
});
after(async () => {
  await pool.close();
});

/** mulberry32: small seeded PRNG, so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKENS = [
  '0', '1', '2', '7', '9', '10', '3.14', '-', '+', '*', '/', '^', '_', '!', '=', '<', '\\le', ',', '.', ' ', ' ', '(', ')',
  '[', ']', '{', '}', '{', '}', '\\{', '\\}', '\\frac{', '\\dfrac', '\\sqrt{', '\\sqrt', '\\boxed{', '\\boxed ', '\\fbox{',
  '\\text{', '\\mathrm{', '\\left(', '\\right)', '\\left[', '\\right.', '\\pi', '\\infty', '\\cdot', '\\times', '\\pm',
  '\\cup', '\\in', '\\emptyset', '\\mathbb{R}', '\\circ', '%', '$', '$$', '\\(', '\\)', '\\\\', '&', '\\begin{pmatrix}',
  '\\end{pmatrix}', 'x', 'y', 'n', 'a', 'and', 'or', 'The answer is', 'Final Answer:', '<think>', '</think>',
  '<|im_start|>', '\n', 'π', '½', '√', '°', '∞', '\u0000', '\ud800', 'é', '{,}', '\\,', '\\!', '\\quad', 'e^{', 'i', '\\log',
  '\\sin', '\\binom{', '\\overline{', '10^{', '!!',
  // forms added for issue 12: sums and products, ratios, ;-groups, approximations, answer sentences, parts
  '\\sum_{k=1}^{', '\\prod_{i=0}^', ':', ';', '\\approx', '\\sqrt[3]{', '{, }', 'Answer $', ' is our answer.',
  'Final Answer: The value is ', '\n(a) ', '\n(b) ', 'C. ', 'seven', ' pct',
];

function soup(r: () => number, maxTokens: number): string {
  const n = Math.floor(r() * maxTokens);
  let s = '';
  for (let i = 0; i < n; i++) s += TOKENS[Math.floor(r() * TOKENS.length)];
  return s;
}

async function timed(response: string, gold: string): Promise<{ v: Verdict; ms: number }> {
  const t = performance.now();
  const v = await pool.verify(response, gold);
  return { v, ms: performance.now() - t };
}

function checkVerdict(v: Verdict, ms: number, label: string): void {
  assert.equal(typeof v.correct, 'boolean', label);
  assert.ok(v.extracted === null || typeof v.extracted === 'string', label);
  assert.equal(typeof v.reason, 'string', label);
  assert.ok(v.reason.length > 0, `${label}: empty reason`);
  if (/timeout after/.test(v.reason)) assert.equal(v.correct, false, label);
  assert.ok(ms < BOUND_MS, `${label}: took ${ms.toFixed(0)} ms (bound ${BOUND_MS})`);
}

/** Run cases with two callers at a time (one per worker), checking each. */
async function runAll(cases: Array<[string, string, string]>): Promise<Verdict[]> {
  const out: Verdict[] = new Array<Verdict>(cases.length);
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next < cases.length) {
      const i = next++;
      const [label, response, gold] = cases[i] as [string, string, string];
      const { v, ms } = await timed(response, gold);
      checkVerdict(v, ms, label);
      out[i] = v;
    }
  };
  await Promise.all([caller(), caller()]);
  return out;
}

const box = (s: string): string => `Therefore the answer is $\\boxed{${s}}$.`;

test('pathological inputs end within the bound with well-formed verdicts', async () => {
  const deep = '{'.repeat(10_000) + '1' + '}'.repeat(10_000);
  const mb = 1024 * 1024;
  const cases: Array<[string, string, string]> = [
    ['10k nested braces', box(deep), '1'],
    ['10k nested braces gold', box('1'), deep],
    ['10k open braces', '\\boxed{' + '{'.repeat(10_000), '1'],
    ['tower 10^10^10 vs 1', box('10^{10^{10}}'), '1'],
    ['tower 10^10^10 self', box('10^{10^{10}}'), '10^{10^{10}}'],
    ['2003^2002^2001 self', box('2003^{2002^{2001}}'), '2003^{2002^{2001}}'],
    ['2003^2002^2001 vs 2003^2002^2000', box('2003^{2002^{2001}}'), '2003^{2002^{2000}}'],
    ['9^9^9^9 vs 1', box('9^{9^{9^9}}'), '1'],
    ['9^9^9^9 self', box('9^{9^{9^9}}'), '9^{9^{9^9}}'],
    ['1000!! vs 1', box('1000!!'), '1'],
    ['1000!! self', box('1000!!'), '1000!!'],
    ['(10^100)! vs 2', box('(10^{100})!'), '2'],
    ['5000 terms', box(Array(5000).fill('1').join('+')), '5000'],
    ['5000 terms in x', box(Array.from({ length: 5000 }, (_, i) => `${i}x^{${i}}`).join('+')), 'x'],
    ['5000 nested fracs', box('\\frac{1}{'.repeat(5000) + '2' + '}'.repeat(5000)), '2'],
    ['5000 nested sqrt', box('\\sqrt{'.repeat(5000) + '2' + '}'.repeat(5000)), '2'],
    ['100k digits', box('9'.repeat(100_000)), '9'.repeat(99_999) + '8'],
    ['repeating decimal 10k', box('0.' + '3'.repeat(10_000)), '\\frac{1}{3}'],
    ['1000-row matrix', box('\\begin{pmatrix}' + Array(1000).fill('1 & 2').join('\\\\') + '\\end{pmatrix}'), '1'],
    ['x tower', box('x^{'.repeat(2000) + 'x' + '}'.repeat(2000)), 'x'],
    ['unbalanced close', box('}}}}1'), '1'],
    ['unbalanced box', 'so \\boxed{\\frac{1}{2}', '\\frac{1}{2}'],
    ['box opened 20k times', '\\boxed{'.repeat(20_000), '1'],
    ['answer phrase x10k', 'The answer is '.repeat(10_000), '1'],
    ['unfinished think', '<think>' + 'hmm '.repeat(1000) + '\\boxed{1}', '1'],
    ['1 MB filler then box', 'lorem ipsum '.repeat(mb / 12) + box('42'), '42'],
    ['1 MB of braces', '{'.repeat(mb), '1'],
    ['1 MB of \\boxed{', '\\boxed{'.repeat(mb / 7), '1'],
    ['1 MB one line of digits', box('1'.repeat(mb)), '1'],
    ['1 MB gold', box('1'), '2'.repeat(mb)],
    ['empty response', '', '1'],
    ['empty gold', box('1'), ''],
    ['lone surrogates and NUL', box('\ud800\u0000\udfff'), '\u0000'],
    ['sum of 10^9 terms', box('\\sum_{k=1}^{10^{9}} k'), '1'],
    ['triple sum of 2000^3 terms', box('\\sum_{i=1}^{2000}\\sum_{j=1}^{2000}\\sum_{k=1}^{2000} (i+j+k)'), '1'],
    ['sum of 2000 huge powers', box('\\sum_{k=1}^{2000} k^{k}'), '1'],
    ['product of 60 matrices', box('\\begin{pmatrix}1&1\\\\1&0\\end{pmatrix}'.repeat(60)), '\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}'],
    ['2000 labelled parts', Array.from({ length: 2000 }, (_, i) => `(${'abcdefgh'[i % 8]}) $\\boxed{${i}}$\n`).join(''), '1'],
    ['final-answer sentence x5k', 'Final Answer: The value is 1. '.repeat(5000), '2'],
    ['ratio chain', box(Array(3000).fill('1').join(':')), '1'],
  ];
  const out = await runAll(cases);
  // Clearly different values are never accepted.
  const mustBeWrong = [
    'tower 10^10^10 vs 1', '2003^2002^2001 vs 2003^2002^2000', '9^9^9^9 vs 1', '1000!! vs 1', '(10^100)! vs 2', '100k digits',
    '1 MB gold', 'sum of 10^9 terms', 'triple sum of 2000^3 terms', 'sum of 2000 huge powers', 'product of 60 matrices',
    'final-answer sentence x5k',
  ];
  for (const label of mustBeWrong) {
    const i = cases.findIndex((c) => c[0] === label);
    assert.equal(out[i]?.correct, false, `${label} judged correct: ${out[i]?.reason}`);
  }
  const filler = cases.findIndex((c) => c[0] === '1 MB filler then box');
  assert.equal(out[filler]?.correct, true, `1 MB response with a final box: ${out[filler]?.reason}`);
});

test('seeded random LaTeX soup (responses and golds) ends within the bound', async () => {
  const r = rng(20250704);
  const cases: Array<[string, string, string]> = [];
  for (let i = 0; i < 150; i++) {
    const response = r() < 0.5 ? soup(r, 60) : `${soup(r, 30)}\\boxed{${soup(r, 12)}}${soup(r, 5)}`;
    const gold = r() < 0.3 ? soup(r, 12) : `\\boxed{${soup(r, 8)}}`;
    cases.push([`soup #${i}`, response, gold]);
  }
  await runAll(cases);
});

test('property: a boxed integer is correct against itself and incorrect against any other integer', async () => {
  const r = rng(7);
  const cases: Array<[string, string, string]> = [];
  const expect: boolean[] = [];
  for (let i = 0; i < 100; i++) {
    const digits = 1 + Math.floor(r() * 30);
    let a = String(1 + Math.floor(r() * 9));
    for (let k = 1; k < digits; k++) a += String(Math.floor(r() * 10));
    if (r() < 0.3) a = `-${a}`;
    const same = r() < 0.5;
    let b = a;
    if (!same) {
      const pos = a.length - 1 - Math.floor(r() * Math.min(3, a.replace('-', '').length));
      const d = Number(a[pos]);
      b = a.slice(0, pos) + String((d + 1 + Math.floor(r() * 8)) % 10) + a.slice(pos + 1);
    }
    cases.push([`int ${a} vs ${b}`, box(a), b]);
    expect.push(same);
  }
  const out = await runAll(cases);
  out.forEach((v, i) => assert.equal(v.correct, expect[i], `${cases[i]?.[0]}: ${v.reason}`));
});
