// Generation length is bounded at the boundary: prompt + max new tokens past the model's context
// (max_position_embeddings) is refused before any compute, with the numbers and the fix named, and a KV cache that
// cannot be allocated says so instead of "Invalid typed array length".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJsBackend } from '../src/engine/js-backend.js';
import { parseConfig } from '../src/model/config.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { generate } from '../src/sample/generate.js';
import { KvDecoder } from '../src/sample/kv-decoder.js';
import type { SamplingParams } from '../src/sample/types.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const backend = createJsBackend();
const mc = parseConfig({
  model_type: 'qwen2', vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2,
  num_key_value_heads: 1, rope_theta: 1e4, tie_word_embeddings: true, max_position_embeddings: 64,
});
const params = (maxNewTokens: number): SamplingParams => ({ maxNewTokens, temperature: 0, topP: 1, topK: 0, stopTokenIds: [], stopStrings: [] });

test('the model config carries max_position_embeddings', () => {
  assert.equal(qwen2ConfigFromModelConfig(mc).maxPositionEmbeddings, 64);
});

test('generate refuses prompt + max new tokens past the context, and accepts exactly the context', async () => {
  const model = Qwen2Model.random(qwen2ConfigFromModelConfig(mc), backend, 1, 0.02, { grads: false });
  const prompt = [1, 2, 3, 4];
  await assert.rejects(
    async () => generate(model, [{ prompt, n: 1, params: params(1_000_000_000) }]),
    /request 0: prompt \(4 tokens\) \+ max new tokens \(1000000000\) exceeds the model's context of 64 positions \(max_position_embeddings in config\.json\); lower the max new tokens to at most 61/,
  );
  await assert.rejects(async () => generate(model, [{ prompt, n: 1, params: params(62) }]), /context of 64/);
  // 4 + 61 − 1 = 64 positions are filled (the last token is never fed back): allowed.
  const [out] = await generate(model, [{ prompt, n: 1, params: params(61) }]);
  assert.equal(out![0]!.tokenIds.length, 61);
  model.dispose();
});

test('a KV cache too large to allocate is a clear error, not "Invalid typed array length"', () => {
  const model = Qwen2Model.random({ ...qwen2ConfigFromModelConfig(mc), maxPositionEmbeddings: undefined }, backend, 1, 0.02, { grads: false });
  const dec = new KvDecoder(model);
  assert.throws(() => dec.newCache(1e12), /KV cache for 1000000000000 positions \(\d+\.\d\d GiB\) could not be allocated on the js backend .*lower the max new tokens or the batch size/);
  model.dispose();
});

test('oreal generate --max-new-tokens 1000000000 on the bundled model fails with the context named', () => {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'generate', '--model', path.join(repoRoot, 'models', 'arith-sft'), '--prompt', '1+1', '--max-new-tokens', '1000000000', '--backend', 'js'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /exceeds the model's context of 512 positions/);
  assert.doesNotMatch(r.stderr, /Invalid typed array length/);
});
