// The server's scheduler and offline `generate()` drive one engine: the same seeded requests give the same tokens,
// log-probabilities, texts and finish reasons through either, whatever arrives when and however the batch is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/engine/js-backend.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { generate } from '../src/sample/generate.js';
import type { Generation, SamplingParams } from '../src/sample/types.js';
import { Scheduler, type SampleResult } from '../src/serve/scheduler.js';

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
