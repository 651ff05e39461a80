// Reads the PyTorch reference fixtures of test/fixtures/qwen2 (made by scripts/torch_qwen2_reference.py) and
// test/fixtures/sample (scripts/torch_greedy_fixture.py): the JSON record (config, inputs, PyTorch's numbers) and the
// float32 weights from the .bin beside it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Qwen2Config } from '../../src/model/qwen2.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures');
export const QWEN2_FIXTURES = path.join(FIXTURES, 'qwen2');
export const SAMPLE_FIXTURES = path.join(FIXTURES, 'sample');

/** The HF config fields of a fixture record. */
export interface FixtureConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  head?: 'lm' | 'score';
  score_bias?: boolean;
}

export interface Qwen2FixtureRecord {
  name: string;
  config: FixtureConfig;
  input_ids: number[][];
  lengths: number[];
  tensors: Array<{ name: string; shape: number[] }>;
  loss?: number;
  grad_norms?: Record<string, number>;
}

/**
 * The fixture `name` of `dir` (default test/fixtures/qwen2): its record, typed as R (the fields the test reads), its
 * weights by HF tensor name (views into one buffer), and the model config of the record.
 */
export function readQwen2Fixture<R extends { config: FixtureConfig; tensors: Array<{ name: string; shape: number[] }> } = Qwen2FixtureRecord>(
  name: string,
  dir = QWEN2_FIXTURES,
): { fx: R; tensors: Map<string, Float32Array>; cfg: Qwen2Config } {
  const fx = JSON.parse(readFileSync(path.join(dir, name + '.json'), 'utf8')) as R;
  const buf = readFileSync(path.join(dir, name + '.bin'));
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const tensors = new Map<string, Float32Array>();
  let off = 0;
  for (const t of fx.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    tensors.set(t.name, all.subarray(off, off + n));
    off += n;
  }
  assert.equal(off, all.length, `${name}.bin holds ${all.length} floats, the record names ${off}`);
  const c = fx.config;
  const cfg: Qwen2Config = {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numHiddenLayers: c.num_hidden_layers,
    numAttentionHeads: c.num_attention_heads,
    numKeyValueHeads: c.num_key_value_heads,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    tieWordEmbeddings: c.tie_word_embeddings,
    attentionBias: c.attention_bias,
    head: c.head ?? 'lm',
  };
  if (c.score_bias) cfg.scoreBias = true;
  return { fx, tensors, cfg };
}
