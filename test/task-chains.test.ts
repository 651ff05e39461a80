// The long-chain task (src/task/chains.ts): deterministic, split-disjoint problems; solutions the verifier accepts;
// the systematic sign-drop error placed where intended; and a line checker that finds the first wrong step of any
// response, the ground truth for oracle token weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Mulberry32 as Rng } from '../src/util/rng.js';
import { CHAIN_VALUE_BOUND, chainResponseStats, chainSplit, checkChain, generateChain, makeChainSplit, parseChainQuestion, writeSolution } from '../src/task/chains.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { verifyResponse } from '../src/verify/index.js';
import { chainErrorReport, readEvalSamples } from '../scripts/chain-errors.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('problems: deterministic, 6-8 steps, values bounded, splits disjoint, answer is the chain result', () => {
  const a = makeChainSplit('train', 300, 1);
  assert.deepEqual(makeChainSplit('train', 300, 1), a);
  const held = makeChainSplit('heldout', 100, 1);
  const trainQ = new Set(a.map((p) => p.question));
  for (const p of held) assert.ok(!trainQ.has(p.question) && chainSplit(p.question) === 'heldout');
  for (const p of a) {
    assert.ok(p.steps.length >= 6 && p.steps.length <= 8, p.question);
    let v = p.start;
    for (const s of p.steps) {
      v = s.op === '+' ? v + s.operand : s.op === '-' ? v - s.operand : v * s.operand;
      assert.ok(Math.abs(v) <= CHAIN_VALUE_BOUND);
    }
    assert.equal(p.answer, String(v));
    assert.match(p.question, /^Start with \d+\. .*What is the result\?$/);
  }
  const withCrossing = a.filter((p) => p.crossingSteps.length > 0).length / a.length;
  assert.ok(withCrossing > 0.5, `only ${withCrossing} of problems have a zero-crossing subtraction`);
});

test('a correct solution checks clean line by line and the verifier accepts its answer', async () => {
  const rng = new Rng(3);
  for (const p of makeChainSplit('train', 60, 2)) {
    const w = writeSolution(p, rng);
    assert.equal(w.firstError, null);
    assert.equal(String(w.final), p.answer);
    const c = checkChain(p, w.text);
    assert.equal(c.firstError, null, w.text);
    assert.equal(c.lines.filter((l) => l.equation !== null).length, p.steps.length);
    assert.equal((await verifyResponse(w.text, p.answer)).correct, true, w.text);
  }
});

test('the sign-drop error lands on the first zero-crossing subtraction, and the checker finds that line', async () => {
  const rng = new Rng(4);
  const ps = makeChainSplit('train', 200, 3).filter((p) => p.crossingSteps.length > 0);
  let wrongAnswers = 0;
  for (const p of ps) {
    const w = writeSolution(p, rng, { signDropRate: 1 });
    assert.equal(w.firstError, p.crossingSteps[0]);
    const c = checkChain(p, w.text);
    assert.equal(c.firstError, w.firstError, w.text);
    assert.equal(c.firstErrorOffset, c.lines[c.firstError!]!.offset);
    assert.ok(w.text.slice(c.firstErrorOffset!).startsWith(c.lines[c.firstError!]!.text));
    if (!(await verifyResponse(w.text, p.answer)).correct) wrongAnswers++;
  }
  assert.ok(wrongAnswers / ps.length > 0.9, `only ${wrongAnswers} of ${ps.length} sign-dropped solutions end wrong`);
});

test('the sign-drop rate is per crossing step', () => {
  const rng = new Rng(5);
  let steps = 0;
  let dropped = 0;
  for (const p of makeChainSplit('train', 2000, 4)) {
    for (const i of p.crossingSteps) {
      // Measure each crossing step alone: a fresh write with the error allowed, counting only drops at this step
      // when the earlier crossing steps were kept right.
      const w = writeSolution(p, rng, { signDropRate: 0.3 });
      if (w.firstError === null || w.firstError >= i) {
        steps++;
        if (w.firstError === i) dropped++;
      }
    }
  }
  const rate = dropped / steps;
  assert.ok(Math.abs(rate - 0.3) < 0.03, `drop rate ${rate} over ${steps} steps`);
});

test('the checker: a broken chain, a false equation, phrasings, and lines without equations', () => {
  const p = generateChain(new Rng(9));
  const good = writeSolution(p, new Rng(1)).text.split('\n');
  // The second equation line continues from a value the first did not produce.
  const broken = [...good];
  broken[1] = broken[1]!.replace(/(-?\d+)(\s*[+\-*]\s*\d+\s*=\s*)(-?\d+)/, (_m, a: string, mid: string) => {
    const a2 = Number(a) + 1;
    const s = p.steps[1]!;
    const c = s.op === '+' ? a2 + s.operand : s.op === '-' ? a2 - s.operand : a2 * s.operand;
    return `${a2}${mid}${c}`;
  });
  assert.equal(checkChain(p, broken.join('\n')).firstError, 1);
  const falseEq = [...good];
  falseEq[0] = falseEq[0]!.replace(/=\s*(-?\d+)/, (_m, c: string) => `= ${Number(c) + 2}`);
  assert.equal(checkChain(p, falseEq.join('\n')).firstError, 0);
  // A true equation that is not the problem's step: a misread operand, a skipped step, a step past the last.
  const eqLine = (a: number, op: string, b: number): string => `${a}${op}${b}=${op === '+' ? a + b : op === '-' ? a - b : a * b}`;
  const s0 = p.steps[0]!;
  assert.equal(checkChain(p, [eqLine(p.start, s0.op, s0.operand + 1), ...good.slice(1)].join('\n')).firstError, 0);
  const w = writeSolution(p, new Rng(1));
  const skipped = [...good.slice(0, 1), ...good.slice(2)];
  assert.equal(checkChain(p, skipped.join('\n')).firstError, 1);
  const extra = [...good.slice(0, -1), eqLine(w.final, '+', 1), good.at(-1)!];
  assert.equal(checkChain(p, extra.join('\n')).firstError, p.steps.length);
  assert.equal(checkChain(p, 'I think the answer is \\boxed{3}.').firstError, null);
});

test('solutions are about 100 tokens with the bundled tokenizer', () => {
  const tok = Tokenizer.load(path.join(repoRoot, 'models', 'arith-sft'));
  const rng = new Rng(6);
  const lens = makeChainSplit('train', 200, 5).map((p) => tok.encode(writeSolution(p, rng).text, { addSpecialTokens: false }).length);
  const mean = lens.reduce((a, b) => a + b, 0) / lens.length;
  assert.ok(mean >= 60 && mean <= 110, `mean solution length ${mean} tokens`);
  process.stdout.write(`# mean solution length ${mean.toFixed(1)} tokens (min ${Math.min(...lens)}, max ${Math.max(...lens)})\n`);
});

test('a question parses back to its problem; other text does not', () => {
  for (const p of makeChainSplit('heldout', 200, 7)) assert.deepEqual(parseChainQuestion(p.question), p);
  assert.equal(parseChainQuestion('Compute 2+3.'), null);
  assert.equal(parseChainQuestion('Start with 4. Add 2, then Divide by 2. What is the result?'), null);
});

test('response stats: first error kind, sign drops per crossing line, accuracy of the other lines', () => {
  const ps = makeChainSplit('train', 300, 8).filter((p) => p.crossingSteps.length > 0);
  let crossingLines = 0;
  for (const p of ps) {
    const right = chainResponseStats(p, writeSolution(p, new Rng(2)).text);
    assert.deepEqual(right, { firstError: 'none', crossingLines: p.crossingSteps.length, signDrops: 0, otherLines: p.steps.length - p.crossingSteps.length, otherRight: p.steps.length - p.crossingSteps.length });
    const dropped = chainResponseStats(p, writeSolution(p, new Rng(2), { signDropRate: 1 }).text);
    assert.equal(dropped.firstError, 'sign-drop');
    // After a drop the chain runs on from the wrong value, so later crossings may differ; every line is still counted.
    assert.equal(dropped.crossingLines + dropped.otherLines, p.steps.length);
    assert.equal(dropped.signDrops, dropped.crossingLines);
    assert.equal(dropped.otherRight, dropped.otherLines);
    crossingLines += dropped.crossingLines;
  }
  assert.ok(crossingLines >= ps.length);
  // A wrong sum on the first line (not a crossing one) is an "other" error; the next line, which goes on from the
  // right value instead of the written one, is wrong too.
  const p = ps.find((q) => q.crossingSteps[0] !== 0)!;
  const lines = writeSolution(p, new Rng(3)).text.split('\n');
  lines[0] = lines[0]!.replace(/=(-?\d+)/, (_m, c: string) => `=${Number(c) + 1}`);
  const st = chainResponseStats(p, lines.join('\n'));
  assert.equal(st.firstError, 'other');
  assert.equal(st.signDrops, 0);
  assert.equal(st.otherLines - st.otherRight, 2);
});

test('chain-errors: shares of first errors over the wrong samples of an eval run, joined by id', () => {
  const ps = makeChainSplit('heldout', 40, 3).filter((p) => p.crossingSteps.length > 0).slice(0, 10);
  const dir = mkdtempSync(path.join(tmpdir(), 'oreal-chain-errors-'));
  try {
    const data = path.join(dir, 'd.jsonl');
    writeFileSync(data, ps.map((p) => JSON.stringify({ question: p.question, gold_answer: p.answer, id: p.id })).join('\n') + '\n');
    // Per problem: one right sample, one sign-dropped, and (first 5 problems) one with a wrong first line.
    const recs: unknown[] = [];
    ps.forEach((p, i) => {
      recs.push({ id: p.id, sample: 0, correct: true, response: writeSolution(p, new Rng(i)).text });
      recs.push({ id: p.id, sample: 1, correct: false, response: writeSolution(p, new Rng(i), { signDropRate: 1 }).text });
      if (i < 5) recs.push({ id: p.id, sample: 2, correct: false, response: `${p.start}+1=${p.start + 2}\nThe answer is \\boxed{1}.` });
      recs.push({ id: p.id, sample: 'greedy', correct: false, response: '' });
    });
    const samples = path.join(dir, 's.jsonl');
    writeFileSync(samples, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = chainErrorReport(readEvalSamples(data, samples));
    assert.equal(r['samples'], 25);
    assert.equal(r['wrong_samples'], 15);
    assert.equal(r['wrong_first_error_sign_drop'], 0.667);
    assert.equal(r['wrong_first_error_other_line'], 0.333);
    writeFileSync(samples, JSON.stringify({ id: 'chain-nope', sample: 0, correct: true, response: '' }) + '\n');
    assert.throws(() => readEvalSamples(data, samples), /s\.jsonl:1:id: "chain-nope" is not in/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
