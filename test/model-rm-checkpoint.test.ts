// The token-level RM checkpoint as transformers' Qwen2ForTokenClassification expects it: `score.bias` is written (zero
// for our bias-free head, so transformers does not initialise it at random) and reads back as the same model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createJsBackend } from '../src/engine/js-backend.js';
import { parseConfig } from '../src/model/config.js';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';

const backend = createJsBackend();
const rmConfig = parseConfig({
  model_type: 'qwen2', architectures: ['Qwen2ForTokenClassification'], num_labels: 1, vocab_size: 31, hidden_size: 16,
  intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, rope_theta: 1e4,
  tie_word_embeddings: false,
});
const ids = [3, 5, 7, 11, 2, 9, 4, 1, 0, 0];
const lengths = [5, 3];

function scores(m: Qwen2Model): number[] {
  return Array.from(m.forward(ids, lengths, { saveForBackward: false }).score!);
}

test('a bias-free RM head is saved with a zero score.bias and loads back as the same bias-free model', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-rm-'));
  try {
    const rm = Qwen2Model.random(qwen2ConfigFromModelConfig(rmConfig), backend, 3);
    assert.ok(!rm.config.scoreBias);
    saveCheckpoint(path.join(dir, 'rm'), rmConfig, rm.toTensors(), { dtype: 'f32' });
    const file = readSafetensors(path.join(dir, 'rm', 'model.safetensors'));
    assert.deepEqual(file.get('score.bias')?.shape, [1]);
    assert.deepEqual(Array.from(file.get('score.bias')!.data), [0]);
    const back = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(dir, 'rm')), backend);
    assert.ok(!back.config.scoreBias, 'a zero bias reads back as the bias-free head (nothing new to train)');
    assert.deepEqual(back.parameterNames(), rm.parameterNames());
    assert.deepEqual(scores(back), scores(rm));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a non-zero score.bias (an HF-trained head) is read back and used', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-rm-'));
  try {
    const rm = Qwen2Model.random({ ...qwen2ConfigFromModelConfig(rmConfig), scoreBias: true }, backend, 4);
    rm.params.get('score.bias')![0] = 0.75;
    saveCheckpoint(path.join(dir, 'rm'), rmConfig, rm.toTensors(), { dtype: 'f32' });
    const back = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(dir, 'rm')), backend);
    assert.equal(back.config.scoreBias, true);
    const withBias = scores(back);
    back.params.get('score.bias')![0] = 0;
    const without = scores(back);
    for (let i = 0; i < withBias.length; i++) if (without[i] !== 0) assert.ok(Math.abs(withBias[i]! - without[i]! - 0.75) < 1e-6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
