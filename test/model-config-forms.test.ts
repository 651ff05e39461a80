// config.json in the forms transformers 4 and 5 write: both must give the same model (checked against the PyTorch
// fixture's loss), configs oreal writes must carry both spellings, and fields that change the computation in ways
// oreal does not implement must be refused by name rather than silently ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createJsBackend } from '../src/engine/js-backend.js';
import { configToJson, parseConfig, ConfigError } from '../src/model/config.js';
import { Qwen2Model, crossEntropyLoss, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { QWEN2_FIXTURES, readQwen2Fixture } from './helpers/qwen2-fixture.js';

const backend = createJsBackend();
const readJson = (f: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(QWEN2_FIXTURES, f), 'utf8')) as Record<string, unknown>;

// The two files describe fixture qwen2_untied (rope_theta 1e6, where theta 10000 gives a visibly different loss).
for (const form of ['hf-config-transformers4.json', 'hf-config-transformers5.json']) {
  test(`${form}: rope_theta is read and the loss matches PyTorch`, async () => {
    const { fx, tensors } = readQwen2Fixture('qwen2_untied');
    const mc = parseConfig(readJson(form), form);
    assert.equal(mc.ropeTheta, 1e6);
    assert.equal(mc.ropeType, 'default');
    assert.equal(mc.torchDtype, 'float32');
    const model = Qwen2Model.fromTensors(qwen2ConfigFromModelConfig(mc), backend, tensors);
    const { loss } = await crossEntropyLoss(model, fx.input_ids.flat(), fx.lengths);
    const rel = Math.abs(loss - fx.loss!) / fx.loss!;
    assert.ok(rel < 1e-4, `loss ${loss} vs PyTorch ${fx.loss} (rel ${rel.toExponential(2)})`);
    model.dispose();
  });
}

test('the fixture can tell theta 1e6 from the old fallback 10000 (so the test above can fail)', async () => {
  const { fx, tensors } = readQwen2Fixture('qwen2_untied');
  const cfg = { ...qwen2ConfigFromModelConfig(parseConfig(readJson('hf-config-transformers4.json'))), ropeTheta: 10000 };
  const model = Qwen2Model.fromTensors(cfg, backend, tensors);
  const { loss } = await crossEntropyLoss(model, fx.input_ids.flat(), fx.lengths);
  assert.ok(Math.abs(loss - fx.loss!) / fx.loss! > 1e-4, `theta 10000 gave ${loss}, indistinguishable from ${fx.loss}`);
  model.dispose();
});

test('configs oreal writes carry rope_theta and rope_parameters, torch_dtype and dtype, and parse back the same', () => {
  for (const form of ['hf-config-transformers4.json', 'hf-config-transformers5.json']) {
    const mc = parseConfig(readJson(form), form);
    const out = configToJson({ ...mc, ropeTheta: 5e5 });
    assert.equal(out['rope_theta'], 5e5, form);
    assert.deepEqual(out['rope_parameters'], { rope_theta: 5e5, rope_type: 'default' }, form);
    assert.equal(out['torch_dtype'], 'float32', form);
    assert.equal(out['dtype'], 'float32', form);
    const back = parseConfig(out, 'written');
    assert.equal(back.ropeTheta, 5e5);
    assert.deepEqual(configToJson(back), out, `${form}: writing is a fixed point`);
  }
});

test('fields oreal does not implement are refused, naming the field', () => {
  const v5 = readJson('hf-config-transformers5.json');
  const v4 = readJson('hf-config-transformers4.json');
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['yarn in rope_parameters', { ...v5, rope_parameters: { rope_theta: 1e6, rope_type: 'yarn', factor: 4 } }, /field "rope_parameters\.rope_type": "yarn" is not implemented/],
    ['linear in rope_scaling', { ...v4, rope_scaling: { type: 'linear', factor: 2 } }, /field "rope_scaling\.rope_type": "linear"/],
    ['dynamic in rope_scaling', { ...v4, rope_scaling: { rope_type: 'dynamic', factor: 2 } }, /"dynamic"/],
    ['scaling without a type', { ...v4, rope_scaling: { factor: 2 } }, /field "rope_scaling": .*names no rope_type/],
    ['sliding layer', { ...v5, layer_types: ['full_attention', 'sliding_attention'] }, /field "layer_types\[1\]": "sliding_attention"/],
    ['layer_types of the wrong length', { ...v5, layer_types: ['full_attention'] }, /field "layer_types": 1 entries for 2 layers/],
    ['sliding window on', { ...v4, use_sliding_window: true }, /field "use_sliding_window"/],
    ['two thetas that disagree', { ...v5, rope_theta: 10000 }, /field "rope_parameters\.rope_theta": 1000000 disagrees with the top-level rope_theta 10000/],
    ['per-layer-type rope parameters', { ...v5, rope_parameters: { full_attention: { rope_theta: 1e6 } } }, /field "rope_parameters\.full_attention"/],
    ['partial rotary', { ...v5, rope_parameters: { rope_theta: 1e6, rope_type: 'default', partial_rotary_factor: 0.5 } }, /partial_rotary_factor/],
    ['attention dropout', { ...v4, attention_dropout: 0.1 }, /field "attention_dropout"/],
  ];
  for (const [label, json, re] of cases) {
    assert.throws(() => parseConfig(json, 'my/config.json'), (e: unknown) => {
      assert.ok(e instanceof ConfigError, label);
      assert.match(e.message, /^my\/config\.json: /, label);
      assert.match(e.message, re, label);
      return true;
    });
  }
  // The same values spelled as transformers writes them for plain RoPE are accepted.
  assert.equal(parseConfig({ ...v4, rope_scaling: { rope_type: 'default' } }).ropeTheta, 1e6);
  assert.equal(parseConfig({ ...v5, rope_theta: 1e6 }).ropeTheta, 1e6);
  assert.equal(parseConfig({ ...v4, rope_theta: undefined }).ropeTheta, 10000, 'qwen2 default when neither form gives one');
});
