// Where token weights come from (issue 15): the chain task's step checker as an oracle (w⁻ = 1 from the first wrong
// line on), the RM score read at the position that has seen the token (the paper's w(s≤t)) instead of the
// reference's shifted one, the diagnostics the trainer logs from them (share of w⁻ on or after the first error, the
// RM's online AUC), and the config keys that select them (defaults unchanged).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Mulberry32 as Rng } from '../src/util/rng.js';
import { chainBlame, chainMasks, chainStepChecker, checkChain, generateChain, makeChainSplit, parseChainQuestion, writeSolution } from '../src/task/chains.js';
import { computeLosses, parseLossConfig, resolveLossConfig } from '../src/rl/loss.js';
import { stepLosses } from '../src/rl/step-losses.js';
import { createJsBackend } from '../src/engine/js-backend.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { readBatchFile } from '../src/cli/debug-loss.js';
import { lossConfigOf, parseTrainConfig } from '../src/train/config.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, '..', '..', 'test', 'fixtures', 'rl');

test('a chain question parses back to the problem it was generated from', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 300; i++) {
    const p = generateChain(rng);
    assert.deepEqual(parseChainQuestion(p.question), p);
  }
  assert.equal(parseChainQuestion('What is 10% of 450?'), null);
  assert.equal(parseChainQuestion('Start with 5. Divide by 2. What is the result?'), null);
});

// Start 5: +3 = 8, −10 = −2, ×2 = −4.
const Q = 'Start with 5. Add 3, then Subtract 10, then Multiply by 2. What is the result?';

test('oracle blame: 1 on every token from the first wrong line on, 0 before', () => {
  const p = parseChainQuestion(Q)!;
  assert.equal(p.answer, '-4');
  // The sign dropped on line 1 (offset 6); token pieces straddle lines as a tokenizer's may.
  const pieces = ['5+3', '=8\n', 'Then', ' 8-10=2', '\n', 'So 2*2=4\n', 'The answer is \\boxed{4}.', '<|im_end|>'];
  assert.equal(checkChain(p, pieces.join('')).firstErrorOffset, 6);
  assert.deepEqual(Array.from(chainBlame(p, pieces)), [0, 0, 1, 1, 1, 1, 1, 1]);
  // Same text, one character a token: exactly the characters from offset 6 on.
  const chars = [...pieces.join('')];
  const w = chainBlame(p, chars);
  assert.equal(w.indexOf(1), 6);
  assert.equal(w.reduce((a, b) => a + b, 0), chars.length - 6);
  // Every line right but a wrong box: blame starts at the closing sentence.
  const badBox = ['5+3=8\n', '8-10=-2\n', '-2*2=-4\n', 'The answer is \\boxed{5}.'];
  assert.deepEqual(Array.from(chainBlame(p, badBox)), [0, 0, 0, 1]);
  // No equation at all (a bare answer): the whole response.
  assert.deepEqual(Array.from(chainBlame(p, ['\\boxed{', '3', '}'])), [1, 1, 1]);
  // A correct solution has no wrong line: blame (unused for positives) only on the closing sentence.
  const right = ['5+3=8\n', '8-10=-2\n', '-2*2=-4\n', 'The answer is \\boxed{-4}.'];
  assert.deepEqual(Array.from(chainBlame(p, right)), [0, 0, 0, 1]);
});

test('oracle_step mask: 1 on the first wrong line only (its newline included), the fallback otherwise', () => {
  const p = parseChainQuestion(Q)!;
  const pieces = ['5+3', '=8\n', 'Then', ' 8-10=2', '\n', 'So 2*2=4\n', 'The answer is \\boxed{4}.', '<|im_end|>'];
  const m = chainMasks(p, pieces);
  assert.deepEqual(Array.from(m.fromError), [0, 0, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(m.errorStep), [0, 0, 1, 1, 1, 0, 0, 0]);
  // One character a token: exactly the wrong line 'Then 8-10=2\n' (offsets 6 … 17).
  const chars = [...pieces.join('')];
  const step = chainMasks(p, chars).errorStep;
  assert.equal(step.indexOf(1), 6);
  assert.equal(step.lastIndexOf(1), 6 + 'Then 8-10=2'.length);
  // No wrong line: both masks are the sequence-level fallback.
  const badBox = ['5+3=8\n', '8-10=-2\n', '-2*2=-4\n', 'The answer is \\boxed{5}.'];
  assert.deepEqual(Array.from(chainMasks(p, badBox).errorStep), [0, 0, 0, 1]);
});

test('oracle blame on written solutions with the systematic error starts at the sign-drop line', () => {
  const rng = new Rng(5);
  const ps = makeChainSplit('train', 80, 9).filter((p) => p.crossingSteps.length > 0);
  for (const p of ps) {
    const w = writeSolution(p, rng, { signDropRate: 1 });
    const chars = [...w.text];
    const lineStart = w.text.split('\n').slice(0, w.firstError!).reduce((a, l) => a + l.length + 1, 0);
    const mask = chainBlame(p, chars);
    assert.equal(mask.indexOf(1), lineStart, w.text);
    assert.equal(mask.slice(lineStart).every((x) => x === 1), true);
  }
});

test('the step checker needs chain prompts: null for other tasks, a clear error when the oracle requires one', () => {
  const chain = [{ question: Q, source: 'a.jsonl:1' }];
  const arith = [...chain, { question: 'Compute 9*2+40.', source: 'b.jsonl:7' }];
  const check = chainStepChecker(chain, true)!;
  assert.deepEqual(Array.from(check(Q, ['5+3=8\n', '8-10=2\n', '2*2=4\n']).fromError), [0, 1, 1]);
  assert.deepEqual(Array.from(check(Q, ['5+3=8\n', '8-10=2\n', '2*2=4\n']).errorStep), [0, 1, 0]);
  assert.equal(chainStepChecker(arith, false), null);
  assert.throws(() => chainStepChecker(arith, true), /b\.jsonl:7: token_weight_source oracle needs a task whose steps can be checked/);
});

test('oracle weights in the loss: w⁻ is the mask on negatives, w⁺ = 1; missing weights are an error', () => {
  const cfg = resolveLossConfig({ algorithm: 'oreal', token_level_rm: false, token_weight_source: 'oracle', kl_coef: 0 });
  const mask = [0, 0, 1, 1, 1];
  const neg = { reward: -1, advantage: -0.75, logp: [-1, -2, -1, -0.5, -3], refLogp: [-1, -2, -1, -0.5, -3], oracleNegWeights: mask };
  const pos = { reward: 1, advantage: 0.75, logp: [-0.2, -0.1, -0.3], refLogp: [-0.2, -0.1, -0.3] };
  const out = computeLosses([pos, neg], cfg);
  // per_class: D⁻ = 5 negative tokens, f⁻ = 0.5: dL/dlogp_t = −A·w_t·f⁻/D⁻.
  const want = mask.map((w) => (0.75 * w * 0.5) / 5);
  out.grads[1]!.dLogp.forEach((g, t) => assert.ok(Math.abs(g - want[t]!) < 1e-15, `dL/dlogp[${t}] = ${g}, expected ${want[t]}`));
  assert.deepEqual(Array.from(out.grads[1]!.negWeight!), mask);
  assert.deepEqual(Array.from(out.grads[0]!.posWeight!), [1, 1, 1]);
  // BC with pos_mult_adv: dL/dlogp_t = −A·f⁺/D⁺ on the positive's 3 tokens.
  for (const g of out.grads[0]!.dLogp) assert.ok(Math.abs(g - -0.75 / 3) < 1e-15);
  assert.throws(() => computeLosses([pos, { ...neg, oracleNegWeights: undefined }], cfg), /oracle needs 5 oracle weights/);
});

test('config: defaults keep the RM weights at the shifted position; the oracle keeps the pair filter without RM-only steps', () => {
  const base = { actor: 'm', datasets: 'd.jsonl' };
  const d = parseTrainConfig(base);
  assert.equal(d.token_weight_source, 'rm');
  assert.equal(d.rm_score_position, 'shifted');
  assert.equal(d.filter_trajectory, 'pair');
  assert.equal(d.actor_freeze_steps, 10);
  const o = parseTrainConfig({ ...base, token_level_rm: false, token_weight_source: 'oracle' });
  assert.equal(o.filter_trajectory, 'pair');
  assert.equal(o.actor_freeze_steps, 0);
  assert.equal(lossConfigOf(o).tokenWeightSource, 'oracle');
  assert.equal(lossConfigOf(parseTrainConfig({ ...base, rm_score_position: 'inclusive' })).rmScorePosition, 'inclusive');
  assert.throws(() => parseTrainConfig({ ...base, token_weight_source: 'checker' }), /token_weight_source/);
  assert.throws(() => parseLossConfig({ rm_score_position: 'after' }), /rm_score_position/);
});

const backend = createJsBackend();
const policy = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'policy')), backend);
const ref = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'ref')), backend);
const rm = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'rm')), backend);
const groups = readBatchFile(path.join(FIX, 'batch.json'));

test('w(s≤t): the inclusive position reads the RM score one position later, at the token itself', async () => {
  const shifted = await stepLosses({ policy, ref, rm }, groups, parseLossConfig({ incorrect_threshold: 0 }), { collectTokens: true, rmBackward: false, actorBackward: false });
  const incl = await stepLosses({ policy, ref, rm }, groups, parseLossConfig({ incorrect_threshold: 0, rm_score_position: 'inclusive' }), { collectTokens: true, rmBackward: false, actorBackward: false });
  assert.equal(shifted.kept.length, incl.kept.length);
  let compared = 0;
  for (let i = 0; i < shifted.kept.length; i++) {
    const k = shifted.kept[i]!;
    const g = groups[k.group]!;
    const P = g.prompt_ids.length;
    const ids = Int32Array.from([...Array.from(g.prompt_ids), ...Array.from(g.responses[k.index]!.ids)]);
    const full = (await rm.forwardAsync(ids, Int32Array.of(ids.length), { saveForBackward: false })).score!;
    const s = shifted.tokens![i]!.rmScores!;
    const t = incl.tokens![i]!.rmScores!;
    for (let j = 0; j < k.numTokens; j++) {
      assert.ok(Math.abs(s[j]! - full[P - 1 + j]!) < 1e-9, `shifted ${i}/${j}`);
      assert.ok(Math.abs(t[j]! - full[P + j]!) < 1e-9, `inclusive ${i}/${j}`);
      if (j + 1 < k.numTokens) assert.equal(t[j], s[j + 1]);
      compared++;
    }
    // The weights follow the scores they were read from.
    assert.notDeepEqual(Array.from(incl.tokens![i]!.negWeight!), Array.from(shifted.tokens![i]!.negWeight!));
  }
  assert.ok(compared > 20);
  assert.equal(shifted.rmProbs!.length, shifted.kept.length);
});

test('stepLosses: the oracle uses the checker mask as w⁻, and the share of w⁻ on the error is logged for any weights', async () => {
  // A made-up checker: blame from the middle of each response; its 'step' is the two tokens there.
  const mask = (g: number, i: number, to: (n: number) => number): Float64Array => {
    const n = groups[g]!.responses[i]!.ids.length;
    return Float64Array.from({ length: n }, (_, t) => (t >= Math.floor(n / 2) && t < to(n) ? 1 : 0));
  };
  const blame = (g: number, i: number): { fromError: Float64Array; errorStep: Float64Array } => ({ fromError: mask(g, i, (n) => n), errorStep: mask(g, i, (n) => Math.floor(n / 2) + 2) });
  const oracle = await stepLosses({ policy, ref }, groups, parseLossConfig({ token_level_rm: false, token_weight_source: 'oracle' }), { collectTokens: true, blame });
  let negs = 0;
  oracle.kept.forEach((k, i) => {
    const w = oracle.tokens![i]!.negWeight!;
    if (k.reward <= 0) {
      negs++;
      assert.deepEqual(Array.from(w), Array.from(blame(k.group, k.index).fromError));
    }
  });
  assert.ok(negs > 3);
  // oracle_step weights only the step; the diagnostic still measures on/after the first error.
  const step = await stepLosses({ policy, ref }, groups, parseLossConfig({ token_level_rm: false, token_weight_source: 'oracle_step' }), { collectTokens: true, blame });
  let onStep = 0;
  step.kept.forEach((k, i) => {
    if (k.reward > 0) return;
    const m = blame(k.group, k.index).errorStep;
    assert.deepEqual(Array.from(step.tokens![i]!.negWeight!), Array.from(m));
    onStep += m.reduce((a, b) => a + b, 0);
  });
  assert.deepEqual(step.negWeightOnError, { onError: onStep, total: onStep });
  assert.deepEqual(oracle.negWeightOnError, { onError: oracle.negWeightOnError!.total, total: oracle.negWeightOnError!.total });
  assert.equal(oracle.rmProbs, null);
  // Uniform weights (no RM): the share is the blamed fraction of the negatives' tokens.
  const plain = await stepLosses({ policy, ref }, groups, parseLossConfig({ token_level_rm: false }), { blame });
  let on = 0;
  let all = 0;
  plain.kept.forEach((k) => {
    if (k.reward > 0) return;
    const m = blame(k.group, k.index).fromError;
    all += m.length;
    on += m.reduce((a, b) => a + b, 0);
  });
  assert.deepEqual(plain.negWeightOnError, { onError: on, total: all });
  // The oracle is not allowed without a checker.
  await assert.rejects(stepLosses({ policy, ref }, groups, parseLossConfig({ token_level_rm: false, token_weight_source: 'oracle' })), /needs a step checker/);
});
