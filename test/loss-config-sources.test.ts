// One source of truth for the loss keys: `oreal train`'s config (src/train/config.ts) and `oreal debug loss`
// (src/rl/loss.ts parseLossConfig) must resolve every key, omitted or given, to the same loss configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLossConfig, ALGORITHMS, type LossConfigInput } from '../src/rl/loss.js';
import { lossConfigOf, parseTrainConfig } from '../src/train/config.js';

const variants: LossConfigInput[] = [
  {},
  { topk_rescale: true },
  { threshold_rescale: false, topk_rescale: true },
  { topk_rescale: true, correct_topk_ratio: 0.4 },
  { topk_rescale: true, incorrect_topk_ratio: 0.3 },
  { correct_threshold: 0.2, incorrect_threshold: 0.7 },
  { threshold_rescale: true },
  { kl_type: 'mse', kl_coef: 0.2 },
  { kl_type: 'kl' },
  { reward_shaping_type: 'grpo', loss_normalization: 'all' },
  { behavior_cloning: false, pos_mult_adv: false },
  { token_level_rm: false },
  { token_level_rm: true },
  { token_level_rm: false, threshold_rescale: false },
  { positive_loss_factor: 2, negative_loss_factor: 0.25 },
];

test('train config and debug-loss config resolve every loss key the same way', () => {
  for (const algorithm of ALGORITHMS) {
    for (const v of variants) {
      const keys: LossConfigInput = { algorithm, ...v };
      const fromDebug = parseLossConfig(keys, 'debug');
      const fromTrain = lossConfigOf(parseTrainConfig({ actor: 'a', datasets: 'd', ...keys }, 'train'));
      assert.deepEqual(fromTrain, fromDebug, JSON.stringify(keys));
    }
  }
});

test('both entry points refuse the same contradictory rescale settings', () => {
  for (const keys of [{ threshold_rescale: true, topk_rescale: true }, { threshold_rescale: false }] as LossConfigInput[]) {
    assert.throws(() => parseLossConfig(keys, 'debug'), /threshold_rescale/);
    assert.throws(() => parseTrainConfig({ actor: 'a', datasets: 'd', ...keys }, 'train'), /threshold_rescale/);
  }
});

test('the resolved train config shows every loss value in use (config.resolved.yaml has no nulls there)', () => {
  const c = parseTrainConfig({ actor: 'a', datasets: 'd', topk_rescale: true }, 'train');
  assert.equal(c.threshold_rescale, false);
  assert.equal(c.correct_topk_ratio, 0.25);
  assert.equal(c.incorrect_topk_ratio, 0.5);
  assert.equal(c.kl_type, 'unbias');
  assert.equal(c.kl_coef, 0.01);
});

test('OREAL without the token-level RM is the reference config without it: no pair filter, no frozen steps', () => {
  const base = { actor: 'a', datasets: 'd' };
  const withRm = parseTrainConfig({ ...base }, 'train');
  assert.equal(withRm.filter_trajectory, 'pair');
  assert.equal(withRm.actor_freeze_steps, 10);
  const noRm = parseTrainConfig({ ...base, token_level_rm: false }, 'train');
  assert.equal(noRm.filter_trajectory, 'none');
  assert.equal(noRm.actor_freeze_steps, 0);
  // The earlier behaviour, asked for by name.
  const pairs = parseTrainConfig({ ...base, token_level_rm: false, filter_trajectory: 'pair', actor_freeze_steps: 10 }, 'train');
  assert.equal(pairs.filter_trajectory, 'pair');
  assert.equal(pairs.actor_freeze_steps, 10);
  assert.equal(parseTrainConfig({ ...base, algorithm: 'grpo' }, 'train').actor_freeze_steps, 0);
});
