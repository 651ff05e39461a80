import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LlmJudge, buildJudgePrompt, parseJudgeReply } from '../src/verify/judge.js';

// A fake OpenAI-compatible server. It answers A when the candidate answer equals the standard answer in the
// prompt, B otherwise, and can be told to fail, hang, or return garbage.
interface Behaviour {
  failTimes: number;
  failStatus: number;
  retryAfter: string | null;
  hangMs: number;
  garbage: boolean;
  reply: string | null;
  delayMs: number;
  modelsStatus: number;
}
const fresh = (): Behaviour => ({
  failTimes: 0,
  failStatus: 500,
  retryAfter: null,
  hangMs: 0,
  garbage: false,
  reply: null,
  delayMs: 0,
  modelsStatus: 200,
});
let behaviour = fresh();
let inFlight = 0;
let maxInFlight = 0;
let chatCalls = 0;
let modelsCalls = 0;
const seenAuth: Array<string | undefined> = [];
const seenModels: string[] = [];
const seenBodies: Array<Record<string, unknown>> = [];
let server: http.Server;
let base = '';

function section(prompt: string, name: string): string {
  const m = new RegExp(`\\[${name}\\]\\n([\\s\\S]*?)\\n\\n`).exec(prompt);
  return m?.[1]?.trim() ?? '';
}

before(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        seenAuth.push(req.headers.authorization);
        if (req.method === 'GET' && req.url === '/v1/models') {
          modelsCalls++;
          res.writeHead(behaviour.modelsStatus, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-judge-72b', object: 'model' }] }));
          return;
        }
        if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
          res.writeHead(404).end('not found');
          return;
        }
        chatCalls++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          seenBodies.push(body);
          seenModels.push(String(body.model));
          if (behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
          if (behaviour.failTimes > 0) {
            behaviour.failTimes--;
            const headers: Record<string, string> = { 'content-type': 'text/plain' };
            if (behaviour.retryAfter !== null) headers['retry-after'] = behaviour.retryAfter;
            // Echo the Authorization header to check that it is redacted from error text.
            res.writeHead(behaviour.failStatus, headers);
            res.end(`upstream failure (auth was ${req.headers.authorization ?? 'none'})`);
            return;
          }
          if (behaviour.hangMs) await new Promise((r) => setTimeout(r, behaviour.hangMs));
          if (behaviour.garbage) {
            res.writeHead(200, { 'content-type': 'application/json' }).end('<html>not json');
            return;
          }
          const messages = body.messages as Array<{ content: string }>;
          const prompt = messages[0]?.content ?? '';
          const content =
            behaviour.reply ?? (section(prompt, 'Standard answer') === section(prompt, 'Candidate answer') ? 'A' : 'B');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content } }] }));
        } finally {
          inFlight--;
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  behaviour = fresh();
  inFlight = 0;
  maxInFlight = 0;
  chatCalls = 0;
  modelsCalls = 0;
  seenAuth.length = 0;
  seenModels.length = 0;
  seenBodies.length = 0;
});

test('parseJudgeReply: leading or lone A/B, contradictions and other text rejected', () => {
  const cases: Array<[string, 'correct' | 'incorrect' | null]> = [
    ['A', 'correct'],
    ['B', 'incorrect'],
    [' A\n', 'correct'],
    ['A: CORRECT', 'correct'],
    ['B: INCORRECT', 'incorrect'],
    ['**A**', 'correct'],
    ['(B)', 'incorrect'],
    ['"A".', 'correct'],
    ['Answer: B', 'incorrect'],
    ['<think>A or B? B is tempting.</think>A', 'correct'],
    ['A\nBecause B would be wrong the answer matches.', 'correct'],
    ['CORRECT', 'correct'],
    ['Incorrect.', 'incorrect'],
    ['A: INCORRECT', null],
    ['B: CORRECT', null],
    ['A or B', null],
    ['A B', null],
    ['', null],
    ['Both answers are equal', null], // the reference's `"A" in s` would not even see this; we refuse it
    ['As the candidate says 5, B', null],
    ['Absolutely', null],
    ['Because', null],
    ['C', null],
  ];
  for (const [reply, want] of cases) assert.equal(parseJudgeReply(reply), want, JSON.stringify(reply));
});

test('buildJudgePrompt includes question, gold, candidate and the A/B instruction', () => {
  const p = buildJudgePrompt({ question: 'What is 1+1?', gold: '2', answer: 'two' });
  assert.match(p, /\[Question\]\nWhat is 1\+1\?/);
  assert.match(p, /\[Standard answer\]\n2\n/);
  assert.match(p, /\[Candidate answer\]\ntwo\n/);
  assert.match(p, /A: CORRECT/);
  assert.match(p, /B: INCORRECT/);
  assert.doesNotMatch(buildJudgePrompt({ gold: '2', answer: '2' }), /\[Question\]/);
});

test('judge: correct and incorrect verdicts, model discovered once and cached, temperature 0', async () => {
  const judge = new LlmJudge({ url: base, backoffMs: 1 });
  const [a, b, c] = await Promise.all([
    judge.judge({ question: 'q', gold: '42', answer: '42' }),
    judge.judge({ gold: '42', answer: '41' }),
    judge.judge({ gold: 'x', answer: 'x' }),
  ]);
  assert.deepEqual(a, { verdict: 'correct', raw: 'A' });
  assert.deepEqual(b, { verdict: 'incorrect', raw: 'B' });
  assert.equal(c.verdict, 'correct');
  assert.equal(modelsCalls, 1);
  assert.deepEqual(seenModels, ['fake-judge-72b', 'fake-judge-72b', 'fake-judge-72b']);
  assert.equal(seenBodies[0]?.temperature, 0);
  assert.equal(seenBodies[0]?.max_tokens, undefined);
  await judge.judge({ gold: '1', answer: '1' });
  assert.equal(modelsCalls, 1);
});

test('judge: explicit model skips discovery; full chat URL accepted; maxTokens sent', async () => {
  const judge = new LlmJudge({ url: `${base}/chat/completions/`, model: 'given-model', maxTokens: 8 });
  assert.equal(judge.chatUrl, `${base}/chat/completions`);
  const r = await judge.judge({ gold: '3', answer: '3' });
  assert.equal(r.verdict, 'correct');
  assert.equal(modelsCalls, 0);
  assert.deepEqual(seenModels, ['given-model']);
  assert.equal(seenBodies[0]?.max_tokens, 8);
});

test('judge: retries on 500 then succeeds', async () => {
  behaviour.failTimes = 2;
  const judge = new LlmJudge({ url: base, model: 'm', retries: 3, backoffMs: 5 });
  const r = await judge.judge({ gold: '5', answer: '5' });
  assert.equal(r.verdict, 'correct');
  assert.equal(chatCalls, 3);
  assert.equal(judge.stats.retries, 2);
});

test('judge: honours Retry-After on 429', async () => {
  behaviour.failTimes = 1;
  behaviour.failStatus = 429;
  behaviour.retryAfter = '0.3';
  const judge = new LlmJudge({ url: base, model: 'm', backoffMs: 1 });
  const t0 = Date.now();
  const r = await judge.judge({ gold: '5', answer: '6' });
  assert.equal(r.verdict, 'incorrect');
  assert.equal(chatCalls, 2);
  assert.ok(Date.now() - t0 >= 280, `waited ${Date.now() - t0} ms`);
});

test('judge: retries exhausted gives an error naming URL and status, never the key', async () => {
  const key = 'sk-test-SECRET-0123456789';
  process.env.OREAL_TEST_JUDGE_KEY = key;
  try {
    behaviour.failTimes = 100;
    behaviour.failStatus = 503;
    const judge = new LlmJudge({ url: base, model: 'm', retries: 2, backoffMs: 1, apiKeyEnv: 'OREAL_TEST_JUDGE_KEY' });
    const r = await judge.judge({ gold: '1', answer: '1' });
    assert.equal(r.verdict, 'error');
    assert.equal(chatCalls, 3);
    if (r.verdict !== 'error') return;
    assert.match(r.error, /503/);
    assert.ok(r.error.includes(`${base}/chat/completions`), r.error);
    assert.match(r.error, /3 attempts/);
    assert.ok(!r.error.includes(key), r.error);
    assert.ok(!r.error.includes('SECRET'), r.error);
    // The header was sent.
    assert.equal(seenAuth[0], `Bearer ${key}`);
  } finally {
    delete process.env.OREAL_TEST_JUDGE_KEY;
  }
});

test('judge: no Authorization header when the env var is unset', async () => {
  delete process.env.OREAL_JUDGE_API_KEY;
  const judge = new LlmJudge({ url: base, model: 'm' });
  await judge.judge({ gold: '1', answer: '1' });
  assert.deepEqual(seenAuth, [undefined]);
});

test('judge: 4xx other than 429 is not retried', async () => {
  behaviour.failTimes = 5;
  behaviour.failStatus = 400;
  const judge = new LlmJudge({ url: base, model: 'm', retries: 3, backoffMs: 1 });
  const r = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(r.verdict, 'error');
  assert.equal(chatCalls, 1);
  if (r.verdict === 'error') assert.match(r.error, /HTTP 400/);
});

test('judge: a hanging server times out, is retried, then gives an error', async () => {
  behaviour.hangMs = 600;
  const judge = new LlmJudge({ url: base, model: 'm', timeoutMs: 100, retries: 1, backoffMs: 1 });
  const t0 = Date.now();
  const r = await judge.judge({ gold: '1', answer: '1' });
  const took = Date.now() - t0;
  assert.equal(r.verdict, 'error');
  if (r.verdict === 'error') assert.match(r.error, /timed out after 100 ms/);
  assert.equal(chatCalls, 2);
  assert.ok(took < 1500, `took ${took} ms`);
});

test('judge: garbage body and unparseable reply are errors, not verdicts', async () => {
  behaviour.garbage = true;
  const judge = new LlmJudge({ url: base, model: 'm', backoffMs: 1 });
  const g = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(g.verdict, 'error');
  if (g.verdict === 'error') assert.match(g.error, /non-JSON/);
  assert.equal(chatCalls, 1);

  behaviour = fresh();
  behaviour.reply = 'The answer is A or maybe B';
  const u = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(u.verdict, 'error');
  if (u.verdict === 'error') assert.match(u.error, /unparseable judge reply/);
});

test('judge: concurrency limit is never exceeded', async () => {
  behaviour.delayMs = 30;
  const judge = new LlmJudge({ url: base, model: 'm', concurrency: 3 });
  const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => judge.judge({ gold: '1', answer: String(i % 2) })));
  assert.equal(chatCalls, 12);
  assert.equal(maxInFlight, 3);
  assert.equal(rs.filter((r) => r.verdict === 'correct').length, 6);
});

test('judge: failed model discovery is an error and is retried on the next call', async () => {
  behaviour.modelsStatus = 404;
  const judge = new LlmJudge({ url: base, backoffMs: 1 });
  const r1 = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(r1.verdict, 'error');
  if (r1.verdict === 'error') assert.match(r1.error, /\/v1\/models returned HTTP 404/);
  behaviour.modelsStatus = 200;
  const r2 = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(r2.verdict, 'correct');
  assert.equal(modelsCalls, 2);
});

test('judge: connection refused is a network error after retries', async () => {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const judge = new LlmJudge({ url: `http://127.0.0.1:${port}/v1`, model: 'm', retries: 1, backoffMs: 1 });
  const r = await judge.judge({ gold: '1', answer: '1' });
  assert.equal(r.verdict, 'error');
  if (r.verdict === 'error') assert.match(r.error, /network error.*2 attempts/s);
});

test('LlmJudge rejects bad options', () => {
  assert.throws(() => new LlmJudge({ url: 'ftp://x' }), /http/);
  assert.throws(() => new LlmJudge({ url: base, concurrency: 0 }), /concurrency/);
  assert.throws(() => new LlmJudge({ url: base, retries: -1 }), /retries/);
});
