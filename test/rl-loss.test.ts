// The OREAL loss and its baselines against the PyTorch port of the reference trainer's loss
// (scripts/torch_oreal_loss_reference.py → test/fixtures/rl/), plus unit tests of advantages, filter, token weights,
// config validation, and finite-difference checks of the closed-form dL/dlogp and dL/ds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import { Command } from 'commander';
import { createJsBackend } from '../src/engine/js-backend.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { grpoAdvantages, reinforceAdvantages, rlooAdvantages, rlooClosedForm, groupAdvantages } from '../src/rl/advantages.js';
import { filterTrajectory } from '../src/rl/filter.js';
import { seededRng } from '../src/util/rng.js';
import { cumulativeMean, rmSequenceLoss, thresholdRescale, topkRescale, tokenWeights, bceWithLogits } from '../src/rl/token-rm.js';
import {
  computeLosses,
  parseLossConfig,
  resolveLossConfig,
  TABLE2_ABLATION,
  type LossConfig,
  type LossConfigInput,
  type LossSequence,
  type LossTotals,
} from '../src/rl/loss.js';
import { stepLosses, type StepLossReport } from '../src/rl/step-losses.js';
import { readBatchFile, registerDebugLoss, debugLoss } from '../src/cli/debug-loss.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..', '..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'rl');

interface Case {
  name: string;
  config: LossConfigInput;
  expected: StepLossReport;
  advantages: number[];
  dlogp: number[][];
  dscore: Array<number[] | null>;
}

const cases = JSON.parse(readFileSync(path.join(FIX, 'cases.json'), 'utf8')) as Case[];
const KEYS: Array<keyof StepLossReport> = [
  'positive_loss',
  'negative_loss',
  'kl_penalty_loss',
  'rl_loss',
  'token_level_rm_loss',
  'actor_grad_norm',
  'rm_grad_norm',
];

function relErr(got: number, want: number): number {
  return Math.abs(got - want) / Math.max(Math.abs(want), 1e-6);
}

function assertReport(got: StepLossReport, want: StepLossReport, what: string, tol = 1e-4): number {
  let worst = 0;
  for (const k of KEYS) {
    const e = relErr(got[k], want[k]);
    worst = Math.max(worst, e);
    assert.ok(e <= tol, `${what}: ${k} = ${got[k]}, expected ${want[k]} (rel err ${e.toExponential(2)})`);
  }
  return worst;
}

const backend = createJsBackend();
const policy = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'policy')), backend);
const ref = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'ref')), backend);
const rm = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(FIX, 'rm')), backend);
const groups = readBatchFile(path.join(FIX, 'batch.json'));

test('fixture cases: losses, grad norms and per-token gradients match PyTorch', async () => {
  let worst = 0;
  let worstTok = 0;
  for (const c of cases) {
    const cfg = parseLossConfig(c.config, c.name);
    const r = await stepLosses({ policy, ref, rm: cfg.tokenLevelRm ? rm : null }, groups, cfg, { collectTokens: true });
    worst = Math.max(worst, assertReport(r, c.expected, c.name));
    assert.equal(r.kept.length, c.advantages.length);
    r.kept.forEach((k, i) => assert.ok(Math.abs(k.advantage - c.advantages[i]!) < 1e-9, `${c.name}: advantage ${i}`));
    const toks = r.tokens!;
    toks.forEach((t, i) => {
      const want = c.dlogp[i]!;
      assert.equal(t.dLogp.length, want.length);
      let scale = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      for (let j = 0; j < want.length; j++) {
        const e = Math.abs(t.dLogp[j]! - want[j]!) / Math.max(scale, 1e-8);
        worstTok = Math.max(worstTok, e);
        assert.ok(e < 1e-4, `${c.name}: dL/dlogp[${i}][${j}] = ${t.dLogp[j]}, expected ${want[j]}`);
      }
      const ws = c.dscore[i];
      if (ws) {
        for (let j = 0; j < ws.length; j++) {
          const e = relErr(t.dScore![j]!, ws[j]!);
          worstTok = Math.max(worstTok, e);
          assert.ok(e < 1e-4, `${c.name}: dL/ds[${i}][${j}] = ${t.dScore![j]}, expected ${ws[j]}`);
        }
      } else assert.equal(t.dScore, null);
    });
  }
  console.log(`  ${cases.length} cases: max rel err ${worst.toExponential(2)} (losses, grad norms), ${worstTok.toExponential(2)} (per-token grads)`);
});

test('micro-batching with global token counts gives the same step', async () => {
  const c = cases.find((x) => x.name === 'oreal_default')!;
  const cfg = parseLossConfig(c.config);
  const r = await stepLosses({ policy, ref, rm }, groups, cfg, { microBatchTokens: 20 });
  assertReport(r, c.expected, 'micro-batched');
});

test('ref === policy: zero KL, the other terms unchanged', async () => {
  const cfg = parseLossConfig({ token_level_rm: false });
  const a = await stepLosses({ policy, ref: policy }, groups, cfg);
  assert.ok(Math.abs(a.kl_penalty_loss) < 1e-12);
  const c = cases.find((x) => x.name === 'oreal_no_rm')!;
  assert.ok(relErr(a.positive_loss, c.expected.positive_loss) < 1e-4);
  assert.ok(relErr(a.negative_loss, c.expected.negative_loss) < 1e-4);
});

test('filtered step keeps one pair per mixed group', async () => {
  const cfg = parseLossConfig({});
  const r = await stepLosses({ policy, ref, rm }, groups, cfg, { filter: { mode: 'pair', rng: seededRng(7) } });
  assert.equal(r.kept.length, 6); // groups 0, 1, 4 are mixed
  assert.equal(r.droppedAllWrong, 1);
  assert.equal(r.droppedAllCorrect, 1);
  for (let i = 0; i < r.kept.length; i += 2) {
    assert.ok(r.kept[i]!.reward > 0 && r.kept[i + 1]!.reward <= 0);
    assert.equal(r.kept[i]!.group, r.kept[i + 1]!.group);
  }
  // advantages come from the whole group (before filtering)
  const g0 = r.kept.filter((k) => k.group === 0);
  assert.ok(Math.abs(g0[0]!.advantage - rlooClosedForm(4, 0.5, true)) < 1e-12);
  assert.ok(Math.abs(g0[1]!.advantage - rlooClosedForm(4, 0.5, false)) < 1e-12);
});

function captureStdout<T>(fn: () => Promise<T>): Promise<{ out: string; value: T }> {
  const chunks: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array): boolean => {
    chunks.push(String(c));
    return true;
  }) as typeof process.stdout.write;
  return fn().then(
    (value) => {
      process.stdout.write = orig;
      return { out: chunks.join(''), value };
    },
    (e: unknown) => {
      process.stdout.write = orig;
      throw e;
    },
  );
}

test('oreal debug loss: CLI (in process, and the real binary when wired) matches the fixture', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'oreal-loss-'));
  try {
    const c = cases.find((x) => x.name === 'oreal_topk')!;
    const cfgFile = path.join(tmp, 'config.json');
    writeFileSync(cfgFile, JSON.stringify(c.config));
    const args = ['--policy', path.join(FIX, 'policy'), '--ref', path.join(FIX, 'ref'), '--rm', path.join(FIX, 'rm')];
    args.push('--batch', path.join(FIX, 'batch.json'), '--config', cfgFile, '--json', '--backend', 'js');
    const program = new Command().exitOverride();
    registerDebugLoss(program.command('debug'));
    const { out } = await captureStdout(() => program.parseAsync(['node', 'oreal', 'debug', 'loss', ...args]));
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 1);
    const got = JSON.parse(lines[0]!) as StepLossReport;
    assert.deepEqual(Object.keys(got), KEYS);
    assertReport(got, c.expected, 'cli in-process');

    const main = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
    const help = execFileSync(process.execPath, [main, 'debug', '--help'], { encoding: 'utf8' });
    assert.match(help, /^\s+loss\b/m, '`oreal debug loss` must be registered under `oreal debug`');
    const c2 = cases.find((x) => x.name === 'oreal_no_rm_grpo_mse')!;
    writeFileSync(cfgFile, JSON.stringify(c2.config));
    const out2 = execFileSync(process.execPath, [main, 'debug', 'loss', ...args.slice(0, 4), ...args.slice(6), '--threads', '1'], {
      encoding: 'utf8',
    });
    assertReport(JSON.parse(out2.trim()) as StepLossReport, c2.expected, 'cli binary');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('debug loss: config and batch validation', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'oreal-loss-'));
  try {
    const cfgFile = path.join(tmp, 'c.json');
    writeFileSync(cfgFile, JSON.stringify({ kl_type: 'unbias', kl_coeff: 0.01 }));
    const inputs = { policy: path.join(FIX, 'policy'), ref: path.join(FIX, 'ref'), batch: path.join(FIX, 'batch.json'), config: cfgFile };
    await assert.rejects(async () => debugLoss(inputs, backend), /c\.json: unknown key "kl_coeff"/);
    writeFileSync(cfgFile, JSON.stringify({ kl_type: 'k3' }));
    await assert.rejects(async () => debugLoss(inputs, backend), /field "kl_type"/);
    writeFileSync(cfgFile, JSON.stringify({}));
    await assert.rejects(async () => debugLoss(inputs, backend), /--rm is required/);
    const bad = path.join(tmp, 'b.json');
    writeFileSync(bad, JSON.stringify({ groups: [{ prompt_ids: [1, 2], responses: [{ ids: [3, -1], reward: 1 }] }] }));
    assert.throws(() => readBatchFile(bad), /b\.json: field "groups\.0\.responses\.0\.ids\.1"/);
    writeFileSync(bad, JSON.stringify({ groups: [{ prompt_ids: [1], responses: [{ ids: [3], reward: 1, adv: 2 }] }] }));
    assert.throws(() => readBatchFile(bad), /unknown key "adv"/);
    writeFileSync(bad, JSON.stringify({ groups: [{ prompt_ids: [1], responses: [{ ids: [3, 999], reward: 1 }, { ids: [4], reward: -1 }] }] }));
    writeFileSync(cfgFile, JSON.stringify({ token_level_rm: false }));
    await assert.rejects(async () => debugLoss({ ...inputs, batch: bad }, backend), /responses\[0\]\.ids\[1\] = 999/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('config: presets, overrides and rescale choice', () => {
  const d = resolveLossConfig();
  assert.equal(d.algorithm, 'oreal');
  assert.deepEqual(
    [d.rewardShapingType, d.behaviorCloning, d.tokenLevelRm, d.posMultAdv, d.positiveLossFactor, d.negativeLossFactor, d.klType, d.klCoef, d.lossNormalization],
    ['rloo', true, true, true, 1, 0.5, 'unbias', 0.01, 'per_class'],
  );
  assert.deepEqual(d.rescale, { mode: 'threshold', correctThreshold: 0.5, incorrectThreshold: 0.5 });
  // The reference's top-k ratios (0.25 / 0.5), the same defaults the trainer's config resolves (test/loss-config-sources).
  assert.deepEqual(resolveLossConfig({ topk_rescale: true }).rescale, { mode: 'topk', correctTopkRatio: 0.25, incorrectTopkRatio: 0.5 });
  assert.throws(() => resolveLossConfig({ topk_rescale: true, threshold_rescale: true }), /both true/);
  assert.throws(() => resolveLossConfig({ threshold_rescale: false }), /needs threshold_rescale or topk_rescale/);
  assert.equal(resolveLossConfig({ threshold_rescale: false, token_level_rm: false }).tokenLevelRm, false);
  const g = resolveLossConfig({ algorithm: 'grpo', negative_loss_factor: 0.25 });
  assert.deepEqual([g.rewardShapingType, g.behaviorCloning, g.tokenLevelRm, g.negativeLossFactor, g.lossNormalization], ['grpo', false, false, 0.25, 'all']);
  const f = resolveLossConfig({ algorithm: 'rft' });
  assert.deepEqual([f.behaviorCloning, f.posMultAdv, f.negativeLossFactor, f.klCoef], [true, false, 0, 0]);
  assert.throws(() => parseLossConfig({ algorithm: 'ppo' }, 'x.json'), /x\.json: field "algorithm"/);
  assert.throws(() => parseLossConfig({ foo: 1, bar: 2 }, 'x.json'), /unknown keys "foo", "bar"/);
  assert.equal(parseLossConfig({ loss_type: 'per_token' }).algorithm, 'oreal');
  for (const row of TABLE2_ABLATION) parseLossConfig(row.config, row.row);
});

// ----------------------------------------------------------------------------------------------------------------
// Advantages

test('advantages: RLOO closed forms, GRPO, REINFORCE', () => {
  for (const K of [2, 4, 16]) {
    for (let P = 1; P < K; P++) {
      const rewards = Array.from({ length: K }, (_, i) => (i < P ? 1 : -1));
      const a = rlooAdvantages(rewards);
      const p = P / K;
      for (let i = 0; i < K; i++) {
        const want = i < P ? (2 * K * (1 - p)) / (K - 1) : (-2 * K * p) / (K - 1);
        assert.ok(Math.abs(a[i]! - want) < 1e-12, `K=${K} P=${P} i=${i}: ${a[i]} vs ${want}`);
        assert.ok(Math.abs(a[i]! - rlooClosedForm(K, p, i < P)) < 1e-12);
      }
    }
  }
  assert.deepEqual(rlooAdvantages([1, 1, 1]), [0, 0, 0]);
  assert.deepEqual(rlooAdvantages([0.5, 2]), [-1.5, 1.5]);
  const g = grpoAdvantages([1, -1, -1, -1]);
  // mean −0.5, Bessel std = sqrt((2.25 + 3·0.25)/3) = 1
  assert.ok(Math.abs(g[0]! - 1.5 / (1 + 1e-8)) < 1e-12 && Math.abs(g[1]! + 0.5 / (1 + 1e-8)) < 1e-12);
  assert.deepEqual(grpoAdvantages([-1, -1]), [0, 0]);
  assert.deepEqual(reinforceAdvantages([1, -1, 1]), [1, -1, 1]);
  assert.deepEqual(groupAdvantages([1, -1], 'none'), [1, -1]);
  assert.throws(() => rlooAdvantages([1]), /at least 2/);
  assert.throws(() => grpoAdvantages([1, Number.NaN]), /not a finite number/);
});

// ----------------------------------------------------------------------------------------------------------------
// Filter

test('filter_trajectory: seeded, one correct + one incorrect, drops all-same groups', () => {
  const mk = (rs: number[]): Array<{ reward: number; id: string }> => rs.map((r, i) => ({ reward: r, id: `${r}-${i}` }));
  const gs = [mk([1, -1, 1, -1, -1]), mk([1, 1, 1]), mk([-1, -1]), mk([-1, 1]), mk([1, -1, -1, -1])];
  const a = filterTrajectory(gs, 'pair', seededRng(42));
  const b = filterTrajectory(gs, 'pair', seededRng(42));
  assert.deepEqual(a, b);
  assert.equal(a.kept.length, 6);
  assert.equal(a.droppedAllCorrect, 1);
  assert.equal(a.droppedAllWrong, 1);
  assert.deepEqual(a.kept.map((k) => k.group), [0, 0, 3, 3, 4, 4]);
  for (let i = 0; i < a.kept.length; i += 2) {
    assert.ok(a.kept[i]!.item.reward > 0);
    assert.ok(a.kept[i + 1]!.item.reward <= 0);
  }
  assert.equal(a.kept[0]!.passRate, 0.4);
  // every candidate gets picked under different seeds (uniform choice)
  const seen = new Set<number>();
  for (let s = 0; s < 200; s++) seen.add(filterTrajectory([gs[0]!], 'pair', seededRng(s)).kept[1]!.index);
  assert.deepEqual([...seen].sort(), [1, 3, 4]);
  const none = filterTrajectory(gs, 'none', seededRng(1));
  assert.equal(none.kept.length, 5 + 3 + 2 + 2 + 4);
  const mixed = filterTrajectory(gs, 'mixed', seededRng(1));
  assert.equal(mixed.kept.length, 5 + 2 + 4);
  assert.throws(() => filterTrajectory([gs[0]!], 'pair', () => 1), /RNG returned 1/);
});

// ----------------------------------------------------------------------------------------------------------------
// Token-level RM pieces

test('token RM: cumulative mean, BCE, threshold and top-k rescale', () => {
  assert.deepEqual(Array.from(cumulativeMean([1, 3, -1, 5])), [1, 2, 1, 2]);
  const t = thresholdRescale([0.2, 0.5, 0.6, 0.75, 1], 0.5);
  assert.deepEqual(Array.from(t).map((x) => +x.toFixed(12)), [0, 0, 0.2, 0.5, 1]);
  assert.deepEqual(Array.from(thresholdRescale([0.1, 0.55], 0.4)).map((x) => +x.toFixed(12)), [0, 0.25]);
  // top-k: ⌊5·0.6⌋ = 3 kept (0.9, 0.7, 0.3), min-max over the kept: 1, 0.6667, 0
  const k = topkRescale([0.3, 0.9, 0.1, 0.7, 0.2], 0.6);
  assert.deepEqual(Array.from(k).map((x) => +x.toFixed(6)), [0, 1, 0, 0.666667, 0]);
  assert.deepEqual(Array.from(topkRescale([0.4, 0.4, 0.4, 0.1], 0.5)), [1, 1, 0, 0]); // equal kept values → 1
  assert.deepEqual(Array.from(topkRescale([0.4, 0.9, 0.4], 0.25)), [0, 0, 0]); // k = 0
  assert.deepEqual(Array.from(topkRescale([0.4, 0.9], 1)), [0, 1]);
  // sigmoid(c_t) weights: scores with cumulative mean 0 → q = 0.5 → both weights 0
  const w = tokenWeights([2, -2, 0], { mode: 'threshold', correctThreshold: 0.5, incorrectThreshold: 0.5 });
  const q0 = 1 / (1 + Math.exp(-2));
  assert.ok(Math.abs(w.pos[0]! - (2 * q0 - 1)) < 1e-12 && w.neg[0] === 0);
  assert.equal(w.pos[1], 0);
  assert.equal(w.neg[2], 0);
  const bce = rmSequenceLoss([1, 2, 3], 1);
  assert.ok(Math.abs(bce.loss - Math.log1p(Math.exp(-2))) < 1e-12);
  assert.ok(Math.abs(bceWithLogits(-800, 1) - 800) < 1e-9 && Number.isFinite(bceWithLogits(800, 0)));
});

// ----------------------------------------------------------------------------------------------------------------
// Finite differences of the closed forms

function lcg(seed: number): () => number {
  const r = seededRng(seed);
  return () => r() * 2 - 1;
}

function syntheticBatch(seed: number): LossSequence[] {
  const u = lcg(seed);
  const rewards = [1, -1, 1, -1, -1, 1];
  const adv = rlooAdvantages(rewards);
  return rewards.map((r, i) => {
    const n = 2 + ((i * 5 + seed) % 6);
    const logp = Array.from({ length: n }, () => -1.5 + u());
    return {
      reward: r,
      advantage: adv[i]!,
      logp,
      refLogp: logp.map((v) => v + 0.6 * u()),
      oldLogp: logp.map((v) => v + 0.2 * u()),
      rmScores: Array.from({ length: n }, () => 2 * u()),
    };
  });
}

test('finite differences: dL/dlogp (rl_loss) and dL/ds (token_level_rm_loss)', () => {
  const variants: LossConfigInput[] = [
    {},
    { kl_type: 'kl', pos_mult_adv: false },
    { kl_type: 'mse', kl_coef: 0.3, behavior_cloning: false },
    { topk_rescale: true, correct_topk_ratio: 0.4, loss_normalization: 'all' },
    { algorithm: 'grpo' },
    { algorithm: 'rft', kl_coef: 0.1 },
  ];
  const h = 1e-6;
  let worst = 0;
  for (const [vi, v] of variants.entries()) {
    const cfg: LossConfig = resolveLossConfig(v);
    const seqs = syntheticBatch(vi + 1);
    const base = computeLosses(seqs, cfg);
    const at = (i: number, t: number, field: 'logp' | 'rmScores', delta: number): LossTotals => {
      const copy = seqs.map((s) => ({ ...s, logp: Array.from(s.logp), rmScores: Array.from(s.rmScores!) }));
      copy[i]![field][t]! += delta;
      return computeLosses(copy, cfg).totals;
    };
    seqs.forEach((s, i) => {
      for (let t = 0; t < s.logp.length; t++) {
        const fd = (at(i, t, 'logp', h).rl_loss - at(i, t, 'logp', -h).rl_loss) / (2 * h);
        const an = base.grads[i]!.dLogp[t]!;
        const e = Math.abs(fd - an) / Math.max(1e-3, Math.abs(an));
        worst = Math.max(worst, e);
        assert.ok(e < 1e-5, `variant ${vi} seq ${i} tok ${t}: dL/dlogp ${an} vs fd ${fd}`);
        if (cfg.tokenLevelRm) {
          const fds = (at(i, t, 'rmScores', h).token_level_rm_loss - at(i, t, 'rmScores', -h).token_level_rm_loss) / (2 * h);
          const as = base.grads[i]!.dScore![t]!;
          assert.ok(Math.abs(fds - as) / Math.max(1e-3, Math.abs(as)) < 1e-5, `variant ${vi} seq ${i} tok ${t}: dL/ds ${as} vs fd ${fds}`);
        }
      }
    });
    // on-policy (old = logp): the PG terms' values are −Σ A·w·f/D
    const onPolicy = computeLosses(seqs.map((s) => ({ ...s, oldLogp: undefined })), cfg);
    assert.ok(Number.isFinite(onPolicy.totals.rl_loss));
  }
  console.log(`  finite differences: max rel err ${worst.toExponential(2)}`);
});

test('fixtures exist and stay small', () => {
  let total = 0;
  for (const f of ['batch.json', 'cases.json', 'policy/model.safetensors', 'ref/model.safetensors', 'rm/model.safetensors']) {
    assert.ok(existsSync(path.join(FIX, f)), f);
    total += readFileSync(path.join(FIX, f)).length;
  }
  assert.ok(total < 1.5 * 1024 * 1024, `fixtures ${total} bytes`);
});
