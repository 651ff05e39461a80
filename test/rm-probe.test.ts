// `oreal rm-probe` (src/eval/rm-probe.ts) and the AUC it reports (src/eval/auc.ts): the AUC against hand-worked and
// brute-force pair counts, a split that never puts one prompt on both sides, an RM that learns an easy signal, the
// per-style breakdown, an end-to-end run on the bundled policy, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rocAuc } from '../src/eval/auc.js';
import { chainStyle, probeAucs, rmSequenceScores, runRmProbe, splitByPrompt, styleFor, trainRm, type ProbeRollout, type RmSequence } from '../src/ablate/rm-probe.js';
import { createJsBackend } from '../src/engine/js-backend.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { seededRng } from '../src/util/rng.js';
import { Mulberry32 as Rng } from '../src/util/rng.js';
import { makeChainSplit, writeSolution } from '../src/task/chains.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(repoRoot, 'bin', 'oreal.js');

test('AUC: a hand-worked case, ties count one half, and it equals the pair count on random data', () => {
  // Pairs (pos, neg): 0.35 > 0.1, 0.35 < 0.4, 0.8 > both: 3 of 4.
  assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75);
  assert.equal(rocAuc([1, 1, 1], [true, false, false]), 0.5);
  assert.equal(rocAuc([2, 1], [true, false]), 1);
  assert.equal(rocAuc([1, 2], [true, false]), 0);
  const rng = seededRng(3);
  for (let trial = 0; trial < 20; trial++) {
    const n = 5 + Math.floor(rng() * 40);
    // Coarse scores so that ties occur.
    const s = Array.from({ length: n }, () => Math.floor(rng() * 6));
    const y = Array.from({ length: n }, (_, i) => (i < 2 ? i === 0 : rng() < 0.4));
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        if (y[i] && !y[j]) {
          pairs++;
          wins += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    assert.ok(Math.abs(rocAuc(s, y) - wins / pairs) < 1e-12, `trial ${trial}`);
  }
  assert.throws(() => rocAuc([1, 2], [true, true]), /both classes/);
  assert.throws(() => rocAuc([1, 2], [true]), /2 scores but 1 labels/);
  assert.throws(() => rocAuc([NaN, 2], [true, false]), /score 0 is NaN/);
});

test('split by prompt: disjoint, complete, the asked size, reproducible; impossible splits are refused', () => {
  const a = splitByPrompt(100, 0.25, 7);
  assert.equal(a.heldout.length, 25);
  assert.equal(a.train.length, 75);
  const all = new Set([...a.train, ...a.heldout]);
  assert.equal(all.size, 100);
  assert.ok(a.heldout.every((i) => !a.train.includes(i)));
  assert.deepEqual(splitByPrompt(100, 0.25, 7), a);
  assert.notDeepEqual(splitByPrompt(100, 0.25, 8).heldout, a.heldout);
  // Not simply the last prompts: the shuffle spreads the held-out ones.
  assert.ok(a.heldout.some((i) => i < 50) && a.heldout.some((i) => i >= 50));
  assert.throws(() => splitByPrompt(10, 1, 0), /must be in \(0, 1\)/);
  assert.throws(() => splitByPrompt(1, 0.5, 0), /each side needs a prompt/);
});

/** Token sequences whose label is carried by one token: correct ones hold token 5 somewhere, wrong ones token 6. */
function signalSeqs(n: number, seed: number): RmSequence[] {
  const rng = seededRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const correct = i % 2 === 0;
    const len = 4 + Math.floor(rng() * 5);
    const ids = Array.from({ length: len }, () => 10 + Math.floor(rng() * 10));
    ids[Math.floor(rng() * len)] = correct ? 5 : 6;
    return { promptIds: [1, 2, 3], ids, correct };
  });
}

test('an RM trained on an easy separable signal ranks held-out sequences (AUC > 0.9)', async () => {
  const be = createJsBackend();
  try {
    const cfg = { vocabSize: 24, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false, attentionBias: true, head: 'score' as const };
    const rm = Qwen2Model.random(cfg, be, 1, 0.1);
    const held = signalSeqs(40, 2);
    const labels = held.map((s) => s.correct);
    const before = rocAuc(await rmSequenceScores(rm, held), labels);
    const losses = await trainRm(rm, signalSeqs(80, 1), { steps: 60, lr: 1e-2, batchSize: 16, seed: 0 });
    assert.equal(losses.length, 60);
    const after = rocAuc(await rmSequenceScores(rm, held), labels);
    assert.ok(after > 0.9, `held-out AUC after training ${after} (before ${before})`);
    assert.ok(losses.slice(-5).reduce((a, b) => a + b) / 5 < losses[0]! - 0.2, `loss ${losses[0]} -> ${losses.at(-1)}`);
    rm.dispose();
  } finally {
    be.dispose();
  }
});

test('per-style AUCs: each style ranks its own samples plus the shared ones', () => {
  const r = (correct: boolean, meanLogp: number): ProbeRollout => ({ prompt: 0, promptIds: [], ids: [1], text: '', correct, meanLogp });
  // Two correct (shared), two wrong of style A (RM ranks them low), two wrong of style B (RM ranks them high).
  const rollouts = [r(true, -1), r(true, -1), r(false, -2), r(false, -2), r(false, -0.5), r(false, -0.5)];
  const rm = [1, 1, 0, 0, 2, 2];
  const styles = [null, null, 'A', 'A', 'B', 'B'];
  const a = probeAucs(rollouts, rm, styles);
  assert.equal(a.overall.samples, 6);
  assert.equal(a.overall.rm_auc, 0.5);
  assert.deepEqual(a.by_style['A'], { samples: 4, correct: 2, rm_auc: 1, policy_logp_auc: 1 });
  assert.deepEqual(a.by_style['B'], { samples: 4, correct: 2, rm_auc: 0, policy_logp_auc: 0 });
  // A style with one class only has no AUC.
  assert.equal(probeAucs([r(false, 0)], [0], ['A']).by_style['A']!.rm_auc, null);
});

test('styles: chain prompts get first-error styles, other prompts answer styles', () => {
  const ps = makeChainSplit('train', 40, 9).filter((p) => p.crossingSteps.length > 0);
  assert.equal(styleFor(ps.map((p) => p.question)).name, 'chain first error');
  assert.equal(styleFor(['Compute 2+3.', ...ps.map((p) => p.question)]).name, 'answer style');
  const p = ps[0]!;
  const bad = writeSolution(p, new Rng(1), { signDropRate: 1 }).text;
  assert.equal(chainStyle(p.question, bad, false), 'first-error-sign-drop');
  assert.equal(chainStyle(p.question, writeSolution(p, new Rng(1)).text, true), null);
  assert.equal(chainStyle(p.question, 'no idea \\boxed{3}', false), 'no-wrong-line');
  assert.equal(styleFor(['Compute 2+3.']).of('Compute 2+3.', '\\boxed{5}', true), 'bare');
});

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'oreal-rm-probe-'));
}

test('end to end on the bundled policy: prompts split, every rollout scored, AUCs in [0, 1]', async () => {
  const dir = tmp();
  try {
    const lines = readFileSync(path.join(repoRoot, 'data', 'arith-rl-prompts.jsonl'), 'utf8').split('\n').slice(0, 12);
    const data = path.join(dir, 'p.jsonl');
    writeFileSync(data, lines.join('\n') + '\n');
    const r = await runRmProbe({ model: path.join(repoRoot, 'models', 'arith-sft'), data, samples: 4, heldoutFrac: 0.25, steps: 3, lr: 5e-3, batchSize: 8, maxNewTokens: 48, seed: 1, backend: 'js' });
    assert.deepEqual(r.prompts, { train: 9, heldout: 3 });
    assert.equal(r.train.samples + r.heldout.samples, 48);
    assert.equal(r.heldout.samples, 12);
    assert.equal(r.style_kind, 'answer style');
    for (const a of [r.heldout, ...Object.values(r.heldout_by_style)])
      for (const x of [a.rm_auc, a.policy_logp_auc]) assert.ok(x === null || (x >= 0 && x <= 1), String(x));
    assert.ok(Math.abs(r.rm_loss_start - Math.log(2)) < 0.05, `a zero score head starts at log 2, got ${r.rm_loss_start}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input: a prompt file error names file, line and field; bad options exit 1 with the error prefix', () => {
  const dir = tmp();
  try {
    const data = path.join(dir, 'bad.jsonl');
    writeFileSync(data, '{"question":"Compute 2+3.","gold_answer":"5"}\n{"question":"Compute 1+1."}\n');
    const run = (args: string[]): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [BIN, 'rm-probe', ...args], { encoding: 'utf8', timeout: 60_000, cwd: repoRoot });
    const model = path.join(repoRoot, 'models', 'arith-sft');
    let r = run(['--model', model, '--data', data, '--backend', 'js']);
    assert.equal(r.status, 1);
    assert.match(String(r.stderr), /^oreal: error: .*bad\.jsonl:2:gold_answer/m);
    r = run(['--model', model, '--data', data, '--heldout-frac', '1.5']);
    assert.equal(r.status, 1);
    assert.match(String(r.stderr), /oreal: error: .*--heldout-frac.*between 0 and 1/);
    // Every answer wrong: nothing for the RM to learn, said before any training.
    const hopeless = path.join(dir, 'hopeless.jsonl');
    writeFileSync(hopeless, ['2+3', '4+4', '1+7', '9-2'].map((q) => JSON.stringify({ question: `Compute ${q}.`, gold_answer: '987654' })).join('\n') + '\n');
    r = run(['--model', model, '--data', hopeless, '--samples', '1', '--max-new-tokens', '24', '--backend', 'js']);
    assert.equal(r.status, 1);
    assert.match(String(r.stderr), /hopeless\.jsonl: the 3 train rollouts are all wrong/);
    r = run(['--model', path.join(dir, 'nope'), '--data', data]);
    assert.equal(r.status, 1);
    assert.match(String(r.stderr), /model directory not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
