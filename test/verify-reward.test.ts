import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Verdict } from '../src/verify/types.js';
import type { JudgeRequest, JudgeResult } from '../src/verify/judge.js';
import { LlmJudge } from '../src/verify/judge.js';
import { answerSection, computeReward, computeRewards, type RewardOptions } from '../src/verify/reward.js';

const END = '<|im_end|>';

/** Fake rule verifier: the answer is the content of the last \boxed{...}; compared as trimmed strings. */
function fakeVerifier(): { verify(r: string, g: string): Promise<Verdict>; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    async verify(response: string, gold: string): Promise<Verdict> {
      seen.push(response);
      const m = /\\boxed\{([^}]*)\}(?![\s\S]*\\boxed\{)/.exec(response);
      const extracted = m?.[1]?.trim() ?? null;
      const correct = extracted !== null && extracted === gold.trim();
      return { correct, extracted, reason: correct ? 'equal strings' : extracted === null ? 'no answer' : 'differs' };
    },
  };
}

/** Fake judge with a scripted verdict per call; records requests. */
function fakeJudge(answer: (req: JudgeRequest) => JudgeResult): { judge(req: JudgeRequest): Promise<JudgeResult>; calls: JudgeRequest[] } {
  const calls: JudgeRequest[] = [];
  return {
    calls,
    async judge(req: JudgeRequest): Promise<JudgeResult> {
      calls.push(req);
      return answer(req);
    },
  };
}
const says = (verdict: 'correct' | 'incorrect') => (): JudgeResult => ({ verdict, raw: verdict === 'correct' ? 'A' : 'B' });
const fails = (): JudgeResult => ({ verdict: 'error', error: 'POST http://127.0.0.1:1/v1/chat/completions returned HTTP 503' });

test('truncation: no stop word, or finishedWithStop false, is -1 and never judged', async () => {
  const verifier = fakeVerifier();
  const judge = fakeJudge(says('correct'));
  const opts: RewardOptions = { verifier, judge, judgeMode: 'review' };
  const r1 = await computeReward({ response: 'the answer is \\boxed{4}', gold: '4' }, opts);
  assert.equal(r1.reward, -1);
  assert.equal(r1.reason, 'truncated: no stop word');
  assert.equal(r1.judged, false);
  const r2 = await computeReward({ response: `\\boxed{4}${END}`, gold: '4', finishedWithStop: false }, opts);
  assert.equal(r2.reward, -1);
  assert.match(r2.reason, /truncated/);
  assert.equal(verifier.seen.length, 0);
  assert.equal(judge.calls.length, 0);
  // finishedWithStop true overrides the text check (the stop token may be absent from decoded text).
  const r3 = await computeReward({ response: '\\boxed{4}', gold: '4', finishedWithStop: true }, { verifier });
  assert.equal(r3.reward, 1);
  // A custom stop word.
  const r4 = await computeReward({ response: '\\boxed{4}</s>', gold: '4' }, { verifier, stopWord: '</s>' });
  assert.equal(r4.reward, 1);
  assert.equal(verifier.seen.at(-1), '\\boxed{4}');
});

test('stop word is stripped and only the text after the last think marker is judged', async () => {
  const verifier = fakeVerifier();
  const response = `<think>maybe \\boxed{3}</think>so **Final Answer** \\boxed{5}${END}`;
  const r = await computeReward({ response, gold: '5' }, { verifier });
  assert.equal(r.reward, 1);
  assert.equal(r.correct, true);
  assert.equal(r.extracted, '5');
  assert.equal(verifier.seen[0], ' \\boxed{5}');
  // Without the split the rule sees the thinking's answer when the final one is missing.
  const r2 = await computeReward({ response: `<think>\\boxed{5}</think>I give up.${END}`, gold: '5' }, { verifier });
  assert.equal(r2.reward, -1);
  assert.equal(r2.extracted, null);
  assert.equal(answerSection('a<conclude>b</think>c'), 'c');
  assert.equal(answerSection('a</think>b<conclude>c'), 'c');
  assert.equal(answerSection('no markers'), 'no markers');
  assert.equal(answerSection('x[END]y', ['[END]']), 'y');
});

test('judge off: rule verdict only', async () => {
  const verifier = fakeVerifier();
  const judge = fakeJudge(says('correct'));
  const r = await computeReward({ response: `\\boxed{1/2}${END}`, gold: '0.5' }, { verifier, judge, judgeMode: 'off' });
  assert.equal(r.reward, -1);
  assert.equal(r.ruleCorrect, false);
  assert.equal(r.judged, false);
  assert.equal(judge.calls.length, 0);
});

test('rescue mode (default with a judge): judge asked only when the rule says incorrect', async () => {
  const verifier = fakeVerifier();
  const judge = fakeJudge(says('correct'));
  const ok = await computeReward({ response: `\\boxed{7}${END}`, gold: '7' }, { verifier, judge });
  assert.equal(ok.reward, 1);
  assert.equal(ok.judged, false);
  assert.equal(judge.calls.length, 0);

  const rescued = await computeReward(
    { response: `<think>hm</think>\\boxed{1/2}${END}`, gold: '0.5', question: 'Half?' },
    { verifier, judge },
  );
  assert.equal(rescued.reward, 1);
  assert.equal(rescued.correct, true);
  assert.equal(rescued.ruleCorrect, false);
  assert.equal(rescued.judged, true);
  assert.equal(rescued.judgeVerdict, 'correct');
  assert.match(rescued.reason, /rescued/);
  assert.deepEqual(judge.calls, [{ question: 'Half?', gold: '0.5', answer: '\\boxed{1/2}' }]);
});

test('review mode: judge also asked on rule-correct and can overturn it', async () => {
  const verifier = fakeVerifier();
  const judge = fakeJudge(says('incorrect'));
  const r = await computeReward({ response: `\\boxed{7}${END}`, gold: '7' }, { verifier, judge, judgeMode: 'review' });
  assert.equal(judge.calls.length, 1);
  assert.equal(r.ruleCorrect, true);
  assert.equal(r.reward, -1);
  assert.equal(r.correct, false);
  assert.equal(r.judgeVerdict, 'incorrect');
  assert.match(r.reason, /overturned/);

  const agree = fakeJudge(says('correct'));
  const r2 = await computeReward({ response: `\\boxed{7}${END}`, gold: '7' }, { verifier, judge: agree, judgeMode: 'review' });
  assert.equal(r2.reward, 1);
  assert.match(r2.reason, /judge agrees/);
});

test('judge failure: negative, drop and rule policies, each reported in the reason', async () => {
  const verifier = fakeVerifier();
  const judge = fakeJudge(fails);
  const wrong = { response: `\\boxed{8}${END}`, gold: '9' };
  const right = { response: `\\boxed{9}${END}`, gold: '9' };

  const neg = await computeReward(wrong, { verifier, judge });
  assert.equal(neg.reward, -1);
  assert.equal(neg.correct, null);
  assert.equal(neg.judgeVerdict, 'error');
  assert.match(neg.reason, /^judge failed: .*HTTP 503.*policy negative/);

  const drop = await computeReward(wrong, { verifier, judge, onJudgeFailure: 'drop' });
  assert.equal(drop.reward, null);
  assert.equal(drop.correct, null);
  assert.match(drop.reason, /judge failed: .*policy drop/);

  const ruleWrong = await computeReward(wrong, { verifier, judge, onJudgeFailure: 'rule' });
  assert.equal(ruleWrong.reward, -1);
  assert.equal(ruleWrong.correct, false);
  assert.match(ruleWrong.reason, /judge failed: .*policy rule/);

  // In review mode a failed review of a rule-correct answer keeps +1 under 'rule' but not under 'negative'.
  const ruleRight = await computeReward(right, { verifier, judge, judgeMode: 'review', onJudgeFailure: 'rule' });
  assert.equal(ruleRight.reward, 1);
  assert.equal(ruleRight.correct, true);
  const negRight = await computeReward(right, { verifier, judge, judgeMode: 'review' });
  assert.equal(negRight.reward, -1);
});

test('rule verifier that throws is reported, and the judge can still decide', async () => {
  const broken = { verify: async (): Promise<Verdict> => Promise.reject(new Error('parser exploded')) };
  const off = await computeReward({ response: `x${END}`, gold: '1' }, { verifier: broken });
  assert.equal(off.reward, -1);
  assert.equal(off.ruleCorrect, null);
  assert.match(off.reason, /rule verifier failed: parser exploded/);
  const judged = await computeReward({ response: `x${END}`, gold: '1' }, { verifier: broken, judge: fakeJudge(says('correct')) });
  assert.equal(judged.reward, 1);
  assert.equal(judged.judged, true);
});

test('judge mode without a judge is a configuration error', async () => {
  await assert.rejects(computeReward({ response: `x${END}`, gold: '1' }, { verifier: fakeVerifier(), judgeMode: 'rescue' }), /needs a judge/);
});

test('computeRewards keeps order and runs items concurrently within batchConcurrency', async () => {
  let active = 0;
  let peak = 0;
  const slowVerifier = {
    async verify(response: string, gold: string): Promise<Verdict> {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return fakeVerifier().verify(response, gold);
    },
  };
  const batch = Array.from({ length: 10 }, (_, i) => ({ response: `\\boxed{${i % 3}}${END}`, gold: '0' }));
  const rs = await computeRewards(batch, { verifier: slowVerifier, batchConcurrency: 4 });
  assert.deepEqual(rs.map((r) => r.reward), batch.map((_, i) => (i % 3 === 0 ? 1 : -1)));
  assert.equal(peak, 4);
  assert.deepEqual(await computeRewards([], { verifier: slowVerifier }), []);
});

test('end to end with a real LlmJudge over HTTP: rescue via the judge, judge concurrency respected', async () => {
  let inFlight = 0;
  let peak = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        const prompt = (JSON.parse(Buffer.concat(chunks).toString()) as { messages: Array<{ content: string }> }).messages[0]?.content ?? '';
        // "Judge" says correct when the candidate mentions "one half".
        const content = prompt.includes('one half') ? 'A' : 'B';
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [{ message: { content } }] }));
      }, 10);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const judge = new LlmJudge({ url: `http://127.0.0.1:${port}/v1`, model: 'm', concurrency: 2 });
    const batch = Array.from({ length: 8 }, (_, i) => ({
      response: i % 2 === 0 ? `The answer is one half.${END}` : `\\boxed{3}${END}`,
      gold: '1/2',
    }));
    const rs = await computeRewards(batch, { verifier: fakeVerifier(), judge });
    assert.deepEqual(rs.map((r) => r.reward), [1, -1, 1, -1, 1, -1, 1, -1]);
    assert.ok(rs.every((r) => r.judged));
    assert.equal(peak, 2);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
