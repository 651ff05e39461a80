// The server's scheduler and offline `generate()` drive one engine: the same seeded requests give the same tokens,
// log-probabilities, texts and finish reasons through either, whatever arrives when and however the batch is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/engine/js-backend.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { generate } from '../src/sample/generate.js';
import type { Generation, SamplingParams } from '../src/sample/types.js';
import { Scheduler, type SampleResult } from '../src/serve/scheduler.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { parseConfig } from '../src/model/config.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const cfg: Qwen2Config = {
  vocabSize: 53,
  hiddenSize: 32,
  intermediateSize: 48,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  attentionBias: true,
  head: 'lm',
};

const params = (over: Partial<SamplingParams>): SamplingParams => ({
  maxNewTokens: 10,
  temperature: 1,
  topP: 1,
  topK: 0,
  stopTokenIds: [],
  stopStrings: [],
  ...over,
});

/** A toy detokenizer: id i → one letter. */
const letters = (ids: readonly number[]): string => ids.map((i) => String.fromCharCode(97 + (i % 26))).join('');

const strip = (r: SampleResult): Generation => ({ tokenIds: r.tokenIds, text: r.text, finishReason: r.finishReason, logprobs: r.logprobs });

test('the scheduler and generate() give identical samples for the same seeded requests', async () => {
  const model = Qwen2Model.random(cfg, createJsBackend(), 5, 0.5);
  const requests: Array<{ prompt: number[]; n: number; params: SamplingParams }> = [
    { prompt: [3, 9, 27, 4, 8], n: 3, params: params({ seed: 101, temperature: 0.9, topK: 20 }) },
    { prompt: [1, 2], n: 2, params: params({ seed: 7, topP: 0.8, maxNewTokens: 14 }) },
    { prompt: [40, 41, 42, 43, 44, 45, 46], n: 1, params: params({ temperature: 0, greedy: true, maxNewTokens: 6 }) },
    { prompt: [11, 12, 13], n: 2, params: params({ seed: 3, stopStrings: ['e', 'k'] }) },
    { prompt: [50, 0, 50], n: 2, params: params({ seed: 99, stopTokenIds: [1, 2, 3, 4, 5, 6, 7, 8] }) },
  ];
  const want = await generate(model, requests, { decode: letters });
  // The rows must actually exercise the stop rules and sampling, or the comparison proves little.
  assert.ok(want.flat().some((g) => g.finishReason === 'stop'), 'some sample should stop early');
  assert.ok(want[0]!.some((g) => g.tokenIds.join() !== want[0]![0]!.tokenIds.join()), 'samples of one request should differ');

  // A small batch and prefill budget, and requests arriving while others run: the batch composition differs from
  // generate()'s at every step.
  const sched = new Scheduler(model, { maxBatch: 3, prefillTokensPerStep: 4, decode: letters });
  try {
    const jobs = [];
    for (const r of requests) {
      jobs.push(sched.submit({ prompt: r.prompt, n: r.n, params: r.params }));
      await new Promise((res) => setImmediate(res));
    }
    const got = await Promise.all(jobs.map((j) => j.done));
    assert.deepEqual(
      got.map((rs) => rs.map(strip)),
      want,
    );
    assert.ok(sched.stats().decodeSteps > 0);
    assert.equal(sched.stats().completedRequests, requests.length);
  } finally {
    await sched.stop();
  }
});

test('a weight update queued while a request is partly admitted: all its samples run on the old weights', async () => {
  const be = createJsBackend();
  const model = Qwen2Model.random(cfg, be, 5, 0.5);
  const modelB = Qwen2Model.random(cfg, be, 6, 0.5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-sched-'));
  try {
    const mc = parseConfig({
      model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: cfg.vocabSize, hidden_size: cfg.hiddenSize,
      intermediate_size: cfg.intermediateSize, num_hidden_layers: cfg.numHiddenLayers, num_attention_heads: cfg.numAttentionHeads,
      num_key_value_heads: cfg.numKeyValueHeads, rms_norm_eps: cfg.rmsNormEps, rope_theta: cfg.ropeTheta, tie_word_embeddings: true,
    });
    saveCheckpoint(dir, mc, modelB.toTensors(), { dtype: 'f32' });
    const req = { prompt: [3, 9, 27, 4], n: 5, params: params({ seed: 42, maxNewTokens: 8 }) };
    const [wantA] = await generate(model, [req], { decode: letters });
    const [wantB] = await generate(modelB, [req], { decode: letters });
    assert.notDeepEqual(wantA, wantB);
    // A batch of 2: the request's 5 samples are admitted 2 at a time, and the update is queued after the first wave.
    const sched = new Scheduler(model, { maxBatch: 2, decode: letters });
    try {
      const job = sched.submit(req);
      while (sched.stats().running === 0) await new Promise((r) => setImmediate(r));
      assert.ok(sched.stats().queued > 0, 'some samples still wait when the update is queued');
      const upd = sched.updateWeights(dir);
      const later = sched.submit(req);
      const got = (await job.done).map(strip);
      assert.equal((await upd).success, true);
      assert.deepEqual(got, wantA);
      assert.deepEqual((await later.done).map(strip), wantB);
    } finally {
      await sched.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
