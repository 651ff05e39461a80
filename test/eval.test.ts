// Evaluation: pass@k against exhaustive enumeration, maj@k grouping and ties, benchmark reading, the remote
// backend and `oreal eval` (generation with resume, and --responses) against a fake OpenAI-compatible server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { computeMetrics, majorityVote, passAtK, type ProblemOutcome } from '../src/eval/metrics.js';
import { DataError, goldFromAnswerField, loadBenchmark, readBenchmark, readResponses } from '../src/eval/data.js';
import { OpenAIRolloutBackend, type RemoteGenerationRequest } from '../src/sample/remote-backend.js';
import type { SamplingParams } from '../src/sample/types.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { parseConfig } from '../src/model/config.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { createJsBackend } from '../src/engine/js-backend.js';
import { Tokenizer } from '../src/model/tokenizer.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const dataDir = resolve(repoRoot, '..', 'shared', 'data');
const evalModule = pathToFileURL(resolve(repoRoot, 'dist', 'src', 'cli', 'eval.js')).href;

function sharedFile(name: string): string {
  const f = join(dataDir, name);
  if (!existsSync(f)) throw new Error(`shared data file missing: ${f} (the tests read ../shared/data next to the repository)`);
  return f;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'oreal-eval-test-'));
}

// ------------------------------------------------------------------------------------------------ pass@k

/** All k-subsets of {0..n-1}. */
function* subsets(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc.slice();
    return;
  }
  for (let i = start; i <= n - (k - acc.length); i++) {
    acc.push(i);
    yield* subsets(n, k, i + 1, acc);
    acc.pop();
  }
}

/** pass@k by enumerating all k-subsets of samples whose correctness is `correct`. */
function exactPassAtK(correct: boolean[], k: number): number {
  let hit = 0;
  let all = 0;
  for (const s of subsets(correct.length, k)) {
    all++;
    if (s.some((i) => correct[i])) hit++;
  }
  return hit / all;
}

test('pass@k equals exhaustive enumeration of k-subsets (n ≤ 9, all c, all k)', () => {
  for (let n = 1; n <= 9; n++) {
    for (let c = 0; c <= n; c++) {
      // correct samples scattered, not just first: the estimator depends on c only
      const order = [...Array(n).keys()].sort((a, b) => (a % 2) - (b % 2) || b - a); // evens descending, then odds
      const correct = Array.from({ length: n }, () => false);
      order.slice(0, c).forEach((i) => (correct[i] = true));
      assert.equal(correct.filter(Boolean).length, c);
      for (let k = 1; k <= n; k++) {
        const est = passAtK(n, c, k);
        assert.ok(Math.abs(est - exactPassAtK(correct, k)) < 1e-12, `n=${n} c=${c} k=${k}: ${est}`);
      }
    }
  }
});

test('pass@k: k > n and bad inputs are errors; large n is stable', () => {
  assert.throws(() => passAtK(4, 1, 5), /k=5 exceeds the number of samples n=4/);
  assert.throws(() => passAtK(4, 5, 1), /c must be/);
  assert.throws(() => passAtK(0, 0, 1), /n must be/);
  assert.throws(() => passAtK(4, 1, 0), /k must be/);
  assert.ok(Math.abs(passAtK(1000, 1, 1) - 0.001) < 1e-15);
  // 1 - C(9990, 100)/C(10000, 100) computed with logs as an independent check
  let logRatio = 0;
  for (let i = 0; i < 100; i++) logRatio += Math.log(9990 - i) - Math.log(10000 - i);
  assert.ok(Math.abs(passAtK(10000, 10, 100) - (1 - Math.exp(logRatio))) < 1e-12);
  assert.equal(passAtK(16, 0, 16), 0);
  assert.equal(passAtK(16, 16, 1), 1);
});

test('computeMetrics averages per-problem pass@k over a constructed file and checks k against n', async () => {
  const rows: boolean[][] = [
    [true, false, false, true, false, false],
    [false, false, false, false, false, false],
    [true, true, true, true, true, true],
    [false, false, false, false, false, true],
  ];
  const problems: ProblemOutcome[] = rows.map((r, i) => ({
    id: `p${i}`,
    subject: i % 2 === 0 ? 'Even' : 'Odd',
    level: String(1 + (i % 3)),
    samples: r.map((correct) => ({ answer: correct ? '1' : '2', correct })),
  }));
  const m = await computeMetrics(problems, { ks: [1, 2, 3, 6] });
  for (const k of [1, 2, 3, 6]) {
    const exact = rows.reduce((a, r) => a + exactPassAtK(r, k), 0) / rows.length;
    assert.ok(Math.abs((m.pass_at_k[String(k)] as number) - exact) < 1e-12, `pass@${k}`);
  }
  assert.equal(m.n, 4);
  assert.deepEqual(Object.keys(m.by_subject ?? {}), ['Even', 'Odd']);
  assert.equal(m.by_subject?.Even?.n, 2);
  const evenExact = (exactPassAtK(rows[0] as boolean[], 2) + exactPassAtK(rows[2] as boolean[], 2)) / 2;
  assert.ok(Math.abs((m.by_subject?.Even?.pass_at_k['2'] as number) - evenExact) < 1e-12);
  assert.deepEqual(Object.keys(m.by_level ?? {}), ['1', '2', '3']);
  // maj@6: p0 answers 1,2,2,1,2,2 → "2" wins (wrong); p2 all "1" (right); p3 five "2" (wrong); p1 all wrong
  assert.equal(m.maj_at_k['6'], 0.25);
  assert.equal(m.greedy, undefined);
  await assert.rejects(computeMetrics(problems, { ks: [7] }), /problem p0: 6 samples, fewer than k=7/);
});

// ------------------------------------------------------------------------------------------------ maj@k

test('maj@k groups equivalent answers: \\frac12 and 0.5 vote together', async () => {
  const v = await majorityVote(['3', '\\frac12', '0.5', null, '3.0', '1/2']);
  assert.equal(v.winner, 1);
  assert.deepEqual(v.groups, [[0, 4], [1, 2, 5]]);
  const problems: ProblemOutcome[] = [
    {
      id: 'half',
      samples: [
        { answer: '3', correct: false },
        { answer: '\\frac12', correct: true },
        { answer: '0.5', correct: true },
        { answer: null, correct: false },
      ],
    },
  ];
  const m = await computeMetrics(problems, { ks: [1, 4], majKs: [1, 2, 3, 4] });
  assert.equal(m.maj_at_k['1'], 0); // only "3"
  assert.equal(m.maj_at_k['2'], 0); // tie 3 vs 1/2: earliest group ("3") wins
  assert.equal(m.maj_at_k['3'], 1); // {1/2, 0.5} outvotes "3"
  assert.equal(m.maj_at_k['4'], 1);
  assert.equal(m.no_answer_rate, 0.25);
});

test('maj@k: unextractable answers never win; ties go to the earliest first occurrence', async () => {
  assert.equal((await majorityVote([null, null, null, '7'])).winner, 3);
  assert.equal((await majorityVote([null, null])).winner, null);
  assert.equal((await majorityVote(['4', '5', '5', '4'])).winner, 0);
  assert.equal((await majorityVote(['5', '4', '4', '5', '6'])).winner, 0);
  assert.equal((await majorityVote(['6', '5', '4', '4', '5'])).winner, 1);
  // an async equivalence (as through the verifier pool) gives the same result
  const asyncEq = async (a: string, b: string): Promise<boolean> => Number(a) === Number(b);
  assert.equal((await majorityVote(['1', '2', '2.0', '1', '2'], asyncEq)).winner, 1);
  // no extractable answer anywhere: problem unsolved even if a sample was (wrongly) marked correct
  const m = await computeMetrics([{ id: 'x', samples: [{ answer: null, correct: true }] }], { ks: [1] });
  assert.equal(m.maj_at_k['1'], 0);
});

// ------------------------------------------------------------------------------------------------ data

test('benchmark reading: GSM8K #### convention, question auto-detection, MATH-500 and AIME fields', () => {
  const gsm = readBenchmark(sharedFile('gsm8k_test.jsonl'), { limit: 20 });
  assert.equal(gsm.length, 20);
  assert.equal(gsm[0]?.gold, '18'); // "... #### 18"
  assert.ok(gsm[0]?.question.startsWith('Janet'));
  assert.ok(gsm.every((p) => !p.gold.includes('####') && p.gold !== ''));
  const math = readBenchmark(sharedFile('math500_test.jsonl'));
  assert.equal(math.length, 500);
  assert.equal(new Set(math.map((p) => p.subject)).size, 7);
  assert.deepEqual([...new Set(math.map((p) => p.level))].sort(), ['1', '2', '3', '4', '5']);
  assert.ok(math[0]?.id.startsWith('test/')); // unique_id
  const aime = readBenchmark(sharedFile('aime2024.jsonl'));
  assert.equal(aime.length, 30);
  assert.ok(aime.some((p) => p.gold === '025')); // leading zeros kept as written
  assert.equal(goldFromAnswerField('a #### 1 #### 2,125 '), '2,125');
  assert.equal(goldFromAnswerField(' \\frac{1}{2} '), '\\frac{1}{2}');
});

test('benchmark reading: field options, numeric answers, malformed lines name file:line:field', () => {
  const dir = tempDir();
  try {
    const f = join(dir, 'b.jsonl');
    writeFileSync(
      f,
      [
        JSON.stringify({ q: 'What is 2+2?', solution: 'It is 4. #### 4', final: 4, id: 7 }),
        '',
        JSON.stringify({ q: 'What is 1/2 as a decimal?', solution: '0.5', final: '0.5' }),
      ].join('\n') + '\n',
    );
    const a = readBenchmark(f, { questionField: 'q', answerField: 'solution' });
    assert.deepEqual(
      a.map((p) => [p.id, p.question, p.gold, p.line]),
      [
        ['7', 'What is 2+2?', '4', 1],
        ['line3', 'What is 1/2 as a decimal?', '0.5', 3],
      ],
    );
    const b = readBenchmark(f, { questionField: 'q', answerField: 'final' });
    assert.equal(b[0]?.gold, '4'); // a JSON number becomes its decimal text
    // default question field "problem" is absent and so is "question": named in the error
    assert.throws(() => readBenchmark(f), (e: unknown) => e instanceof DataError && e.message.startsWith(`${f}:1:problem: missing`));
    assert.throws(() => readBenchmark(f, { questionField: 'q' }), (e: unknown) => e instanceof DataError && e.field === 'answer' && e.message.startsWith(`${f}:1:answer: missing`));

    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify({ problem: 'x', answer: '1' })}\n{"problem": "y", "answer": \n`);
    assert.throws(() => readBenchmark(bad), (e: unknown) => e instanceof DataError && e.line === 2 && e.message.startsWith(`${bad}:2: invalid JSON`));
    writeFileSync(bad, `${JSON.stringify({ problem: 'x', answer: '1' })}\n[1,2]\n`);
    assert.throws(() => readBenchmark(bad), new RegExp(`${escape(bad)}:2: not a JSON object`));
    writeFileSync(bad, `${JSON.stringify({ problem: 'x', answer: ['1'] })}\n`);
    assert.throws(() => readBenchmark(bad), new RegExp(`${escape(bad)}:1:answer: expected a string or number`));
    writeFileSync(bad, `${JSON.stringify({ problem: 'x', answer: 'so #### ' })}\n`);
    assert.throws(() => readBenchmark(bad), new RegExp(`${escape(bad)}:1:answer: empty gold`));
    writeFileSync(bad, `${JSON.stringify({ id: 'a', problem: 'x', answer: '1' })}\n${JSON.stringify({ id: 'a', problem: 'y', answer: '2' })}\n`);
    assert.throws(() => readBenchmark(bad), /:2: duplicate id "a" \(first on line 1\)/);
    // question fallback is per record: "problem" first, "question" when "problem" is absent
    writeFileSync(bad, `${JSON.stringify({ question: 'from question', answer: '1' })}\n${JSON.stringify({ problem: 'from problem', question: 'q', answer: '2' })}\n`);
    assert.deepEqual(readBenchmark(bad).map((p) => p.question), ['from question', 'from problem']);

    const rf = join(dir, 'r.jsonl');
    writeFileSync(rf, `${JSON.stringify({ id: 'a', gold: 'x #### 5', responses: ['5', 6] })}\n`);
    assert.throws(() => readResponses(rf), new RegExp(`${escape(rf)}:1:responses\\[1\\]: expected a string`));
    writeFileSync(rf, `${JSON.stringify({ id: 'a', gold: 'x #### 5', responses: ['5'] })}\n`);
    assert.equal(readResponses(rf)[0]?.gold, '5');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ------------------------------------------------------------------------------------------------ fake server

interface Seen {
  path: string;
  body: Record<string, unknown>;
  auth: string | undefined;
}

interface FakeServer {
  url: string;
  seen: Seen[];
  /** Statuses to answer (in order) before behaving normally; 429 carries Retry-After: 0. */
  failures: number[];
  /** Delay before answering, in ms. */
  delayMs: number;
  /** Reply to update_weights_from_disk. */
  weightsReply: Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * The fake model: the question's first line names the answer per sample index, e.g. "ANSWERS 3|0.5|none|1/2";
 * choice j of a request answers entry (j mod len). A request with temperature 0 answers the first entry.
 * "LONG" entries end with finish_reason "length".
 */
function fakeText(question: string, j: number, greedy: boolean): { text: string; finish: string } {
  const m = /ANSWERS (\S+)/.exec(question);
  const entries = m ? (m[1] as string).split('|') : ['42'];
  const e = entries[greedy ? 0 : j % entries.length] as string;
  if (e === 'none') return { text: 'I do not know.', finish: 'stop' };
  if (e === 'LONG') return { text: 'Let me think about this for a very long', finish: 'length' };
  return { text: `Some reasoning.\nThe final answer is \\boxed{${e}}.`, finish: 'stop' };
}

async function startFake(): Promise<FakeServer> {
  const state = { seen: [] as Seen[], failures: [] as number[], delayMs: 0, weightsReply: { success: true, message: 'ok' } as Record<string, unknown> };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      try {
        body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
      } catch {
        res.writeHead(400).end('bad json');
        return;
      }
      const path = req.url ?? '';
      state.seen.push({ path, body, auth: req.headers.authorization });
      const reply = (): void => {
        const fail = state.failures.shift();
        if (fail !== undefined) {
          const headers: Record<string, string> = fail === 429 ? { 'retry-after': '0' } : {};
          // echo the key back, as some proxies do, to check that it never reaches an error message
          res.writeHead(fail, headers).end(`failure ${fail} for ${req.headers.authorization ?? 'anonymous'}`);
          return;
        }
        if (path === '/update_weights_from_disk') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state.weightsReply));
          return;
        }
        const chat = path === '/v1/chat/completions';
        if (!chat && path !== '/v1/completions') {
          res.writeHead(404).end('no such path');
          return;
        }
        let question: string;
        if (chat) {
          const msgs = body.messages as Array<{ role: string; content: string }>;
          question = msgs.filter((m) => m.role === 'user').map((m) => m.content).join('\n');
        } else {
          question = Array.isArray(body.prompt) ? `ANSWERS ${(body.prompt as number[]).join('|')}` : String(body.prompt);
        }
        const n = typeof body.n === 'number' ? body.n : 1;
        const greedy = body.temperature === 0;
        const choices = Array.from({ length: n }, (_, j) => {
          const { text, finish } = fakeText(question, j, greedy);
          const lp = { tokens: ['a', 'b'], token_logprobs: [-0.5, -0.25] };
          const c: Record<string, unknown> = { index: j, finish_reason: finish };
          if (chat) {
            c.message = { role: 'assistant', content: text };
            if (body.logprobs === true) c.logprobs = { content: [{ token: 'token_id:5', logprob: -0.5 }, { token: 'token_id:9', logprob: -0.25 }] };
          } else {
            c.text = text;
            if (body.logprobs !== undefined) c.logprobs = lp;
          }
          return c;
        });
        choices.reverse(); // servers may answer out of order: the backend must sort by index
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'text_completion', choices }));
      };
      if (state.delayMs > 0) setTimeout(reply, state.delayMs);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

const params = (over: Partial<SamplingParams> = {}): SamplingParams => ({
  maxNewTokens: 64,
  temperature: 0.7,
  topP: 0.9,
  topK: 0,
  stopTokenIds: [],
  stopStrings: [],
  ...over,
});

// ------------------------------------------------------------------------------------------------ remote backend

test('remote backend: completions and chat requests, sampling fields, choice order, finish reasons, logprobs', async () => {
  const fake = await startFake();
  const prevKey = process.env.OREAL_API_KEY;
  process.env.OREAL_API_KEY = 'sk-test-secret-123456';
  try {
    const be = new OpenAIRolloutBackend({ baseUrl: `${fake.url}/v1/`, model: 'm1', logprobs: true, tokenIds: true });
    assert.equal(be.completionsUrl, `${fake.url}/v1/completions`);
    const [a, b, c] = await be.generate([
      { prompt: 'ANSWERS 1|LONG|3', n: 3, params: params({ stopStrings: ['</s>'], seed: 11, topK: 20, stopTokenIds: [7] }) },
      { prompt: '', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'ANSWERS 0.5|7' }], n: 2, params: params() } as RemoteGenerationRequest,
      { prompt: [4, 5], n: 1, params: params({ greedy: true, temperature: 0.7 }) },
    ]);
    assert.deepEqual(a?.map((g) => g.finishReason), ['stop', 'length', 'stop']);
    assert.match(a?.[0]?.text ?? '', /\\boxed\{1\}/);
    assert.match(a?.[2]?.text ?? '', /\\boxed\{3\}/);
    assert.deepEqual(a?.[0]?.logprobs, [-0.5, -0.25]);
    assert.deepEqual(a?.[0]?.tokenIds, []); // tokens not written as token_id:N
    assert.deepEqual(b?.map((g) => /\\boxed\{([^}]*)\}/.exec(g.text)?.[1]), ['0.5', '7']);
    assert.deepEqual(b?.[1]?.tokenIds, [5, 9]);
    assert.match(c?.[0]?.text ?? '', /\\boxed\{4\}/); // greedy: first entry

    const byPath = (p: string): Seen[] => fake.seen.filter((s) => s.path === p);
    const comp = byPath('/v1/completions');
    assert.equal(comp.length, 2);
    const first = comp.find((s) => s.body.prompt === 'ANSWERS 1|LONG|3')?.body;
    assert.deepEqual(first, {
      model: 'm1', n: 3, max_tokens: 64, temperature: 0.7, top_p: 0.9, top_k: 20, stop: ['</s>'], stop_token_ids: [7], seed: 11,
      logprobs: 1, return_tokens_as_token_ids: true, prompt: 'ANSWERS 1|LONG|3',
    });
    const greedyBody = comp.find((s) => Array.isArray(s.body.prompt))?.body;
    assert.equal(greedyBody?.temperature, 0);
    assert.equal(greedyBody?.top_p, 1);
    const chat = byPath('/v1/chat/completions');
    assert.equal(chat.length, 1);
    assert.equal(chat[0]?.body.logprobs, true);
    assert.equal(chat[0]?.body.prompt, undefined);
    assert.deepEqual(chat[0]?.body.messages, [{ role: 'system', content: 's' }, { role: 'user', content: 'ANSWERS 0.5|7' }]);
    assert.ok(fake.seen.every((s) => s.auth === 'Bearer sk-test-secret-123456'));

    // n split across requests, seeds offset per part
    fake.seen.length = 0;
    const split = new OpenAIRolloutBackend({ baseUrl: fake.url, model: 'm1', maxNPerRequest: 2 });
    const [gs] = await split.generate([{ prompt: 'ANSWERS 1|2|3|4|5', n: 5, params: params({ seed: 100 }) }]);
    assert.deepEqual(gs?.map((g) => /\\boxed\{(\d)\}/.exec(g.text)?.[1]), ['1', '2', '1', '2', '1']);
    assert.deepEqual(fake.seen.map((s) => [s.body.n, s.body.seed]), [[2, 100], [2, 102], [1, 104]]);
    assert.deepEqual(gs?.[0]?.logprobs, []); // not asked for
  } finally {
    if (prevKey === undefined) delete process.env.OREAL_API_KEY;
    else process.env.OREAL_API_KEY = prevKey;
    await fake.close();
  }
});

test('remote backend: retries 5xx/429 with backoff, not 4xx; timeouts; the API key never appears in errors', async () => {
  const fake = await startFake();
  const prevKey = process.env.OREAL_API_KEY;
  process.env.OREAL_API_KEY = 'sk-test-secret-abcdef';
  try {
    const be = new OpenAIRolloutBackend({ baseUrl: fake.url, model: 'm', retries: 3, backoffMs: 1, maxBackoffMs: 5 });
    fake.failures.push(503, 429, 500);
    const [g] = await be.generate([{ prompt: 'ANSWERS 9', n: 1, params: params() }]);
    assert.match(g?.[0]?.text ?? '', /\\boxed\{9\}/);
    assert.deepEqual(be.stats(), { requests: 4, retries: 3, failures: 0 });

    fake.failures.push(503, 503, 503, 503);
    await assert.rejects(be.generate([{ prompt: 'x', n: 1, params: params() }]), (e: Error) => {
      assert.match(e.message, /HTTP 503/);
      assert.match(e.message, /gave up after 4 attempts/);
      assert.ok(!e.message.includes('sk-test-secret-abcdef'), e.message);
      assert.match(e.message, /\[redacted\]/);
      return true;
    });
    fake.failures.push(400);
    const before = be.stats().requests;
    await assert.rejects(be.generate([{ prompt: 'x', n: 1, params: params() }]), /HTTP 400/);
    assert.equal(be.stats().requests, before + 1); // no retry on 4xx other than 429

    const slow = new OpenAIRolloutBackend({ baseUrl: fake.url, model: 'm', retries: 1, backoffMs: 1, timeoutMs: 50 });
    fake.delayMs = 300;
    await assert.rejects(slow.generate([{ prompt: 'x', n: 1, params: params() }]), /timed out after 50 ms.*gave up after 2 attempts/);
    fake.delayMs = 0;

    const dead = new OpenAIRolloutBackend({ baseUrl: 'http://127.0.0.1:1', model: 'm', retries: 1, backoffMs: 1 });
    await assert.rejects(dead.generate([{ prompt: 'x', n: 1, params: params() }]), /network error/);
  } finally {
    if (prevKey === undefined) delete process.env.OREAL_API_KEY;
    else process.env.OREAL_API_KEY = prevKey;
    await fake.close();
  }
});

test('remote backend: concurrency limit and syncWeights', async () => {
  const fake = await startFake();
  try {
    fake.delayMs = 30;
    const be = new OpenAIRolloutBackend({ baseUrl: `${fake.url}/v1`, model: 'm', concurrency: 2 });
    let inFlight = 0;
    let peak = 0;
    const orig = globalThis.fetch;
    globalThis.fetch = async (...args: Parameters<typeof fetch>): Promise<Response> => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      try {
        return await orig(...args);
      } finally {
        inFlight--;
      }
    };
    try {
      const reqs = Array.from({ length: 6 }, (_, i) => ({ prompt: `ANSWERS ${i}`, n: 1, params: params() }));
      const out = await be.generate(reqs);
      assert.deepEqual(out.map((g) => /\\boxed\{(\d)\}/.exec(g[0]?.text ?? '')?.[1]), ['0', '1', '2', '3', '4', '5']);
    } finally {
      globalThis.fetch = orig;
    }
    assert.equal(peak, 2);
    fake.delayMs = 0;
    await be.syncWeights('/ckpt/step-10');
    const w = fake.seen.filter((s) => s.path === '/update_weights_from_disk');
    assert.deepEqual(w.map((s) => s.body), [{ model_path: '/ckpt/step-10' }]);
    fake.weightsReply = { success: false, message: 'shape mismatch' };
    await assert.rejects(be.syncWeights('/ckpt/bad'), /refused the weights: shape mismatch/);
    await be.close();
    await assert.rejects(be.generate([{ prompt: 'x', n: 1, params: params() }]), /after close/);
  } finally {
    await fake.close();
  }
});

// ------------------------------------------------------------------------------------------------ oreal eval

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `oreal eval ARGS` in a child process (src/cli/main.ts is wired by the lead; this calls registerEval directly). */
function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const code = `import { runEvalCli } from ${JSON.stringify(evalModule)}; await runEvalCli(process.argv.slice(1));`;
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', code, '--', ...args],
      { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const c = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolvePromise({ code: c, stdout, stderr });
      },
    );
  });
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

function readSamples(dir: string): Array<Record<string, unknown>> {
  return readFileSync(join(dir, 'samples.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Three problems; the fake model's answers per sample index are in the question. */
function writeBenchmark(dir: string): string {
  const f = join(dir, 'bench.jsonl');
  const recs = [
    // gold 1/2: samples 3, 0.5, none, 1/2 → c=2; maj@4: {0.5, 1/2} wins; greedy answers "3" (wrong)
    { problem: 'ANSWERS 3|0.5|none|\\frac{1}{2}', answer: '\\frac{1}{2}', subject: 'Algebra', level: 2, unique_id: 'p/1' },
    // GSM8K-style gold: samples 18 18 17 LONG → c=2; maj right; greedy right
    { question: 'ANSWERS 18|18|17|LONG', answer: 'She makes 9 * 2 = 18. #### 18', subject: 'Arithmetic', level: 1, unique_id: 'p/2' },
    // never right
    { problem: 'ANSWERS 5|6', answer: '7', subject: 'Algebra', level: 2, unique_id: 'p/3' },
  ];
  writeFileSync(f, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
}

test('oreal eval --endpoint (chat and completions): samples.jsonl, summary.json and the JSON last line', async () => {
  const fake = await startFake();
  const dir = tempDir();
  try {
    const data = writeBenchmark(dir);
    for (const api of ['chat', 'completions']) {
      const out = join(dir, `out-${api}`);
      const r = await runCli(
        ['--data', data, '--endpoint', fake.url, '--model-name', 'fake', '--api', api, '--samples', '4', '--k', '1,2,4', '--greedy', '--out', out, '--json', '--concurrency', '3', '--threads', '1'],
        { OREAL_API_KEY: 'sk-cli-secret-999' },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!r.stdout.includes('sk-cli-secret-999') && !r.stderr.includes('sk-cli-secret-999'));
      const s = lastJson(r.stdout);
      assert.equal(s.n, 3);
      const pass = s.pass_at_k as Record<string, number>;
      const expected = (k: number): number => (passAtK(4, 2, k) * 2 + 0) / 3;
      for (const k of [1, 2, 4]) assert.ok(Math.abs((pass[String(k)] as number) - expected(k)) < 1e-12, `pass@${k} (${api})`);
      assert.deepEqual(s.maj_at_k, { '1': 1 / 3, '2': 1 / 3, '4': 2 / 3 });
      assert.equal(s.greedy, 1 / 3);
      assert.equal(s.truncated_rate, 1 / 12);
      assert.deepEqual(Object.keys(s.by_subject as object), ['Algebra', 'Arithmetic']);
      assert.deepEqual(Object.keys(s.by_level as object), ['1', '2']);
      assert.equal(typeof s.seconds_per_100_problems, 'number');
      assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), s);
      const recs = readSamples(out);
      assert.equal(recs.length, 15);
      const p1 = recs.filter((x) => x.id === 'p/1' && x.sample !== 'greedy').sort((x, y) => (x.sample as number) - (y.sample as number));
      assert.deepEqual(p1.map((x) => x.extracted), ['3', '0.5', null, '\\frac{1}{2}']);
      assert.deepEqual(p1.map((x) => x.correct), [false, true, false, true]);
      assert.equal(recs.find((x) => x.id === 'p/2' && x.sample === 3)?.finish_reason, 'length');
      assert.equal(recs.find((x) => x.id === 'p/2')?.gold, '18');
    }
    const chatReqs = fake.seen.filter((x) => x.path === '/v1/chat/completions');
    assert.equal(chatReqs.length, 6); // 3 sampled requests (n=4) + 3 greedy
    assert.match(String((chatReqs[0]?.body.messages as Array<{ content: string }>)[0]?.content), /Please reason step by step/);
    assert.ok(fake.seen.every((x) => x.auth === 'Bearer sk-cli-secret-999'));
    assert.equal(fake.seen.filter((x) => x.path === '/v1/completions').length, 6);

    // readable table without --json
    const t = await runCli(['--data', data, '--endpoint', fake.url, '--model-name', 'fake', '--samples', '4', '--k', '1,2,4', '--greedy', '--out', join(dir, 'out-chat'), '--threads', '1']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /pass@4 +0\.6667/);
    assert.match(t.stdout, /maj@4 +0\.6667/);
    assert.match(t.stdout, /Algebra +2 /);
  } finally {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval resumes: skips written (problem, sample) pairs, repairs a torn line, refuses changed settings', async () => {
  const fake = await startFake();
  const dir = tempDir();
  try {
    const data = writeBenchmark(dir);
    const out = join(dir, 'out');
    const args = ['--data', data, '--endpoint', fake.url, '--model-name', 'fake', '--samples', '4', '--k', '1,4', '--greedy', '--out', out, '--json', '--seed', '3', '--threads', '1'];
    const first = await runCli(args);
    assert.equal(first.code, 0, first.stderr);
    const full = readFileSync(join(out, 'samples.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
    assert.equal(full.length, 15);

    // nothing to do on a complete run: no requests, same metrics
    fake.seen.length = 0;
    const again = await runCli(args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fake.seen.length, 0);
    const s1 = lastJson(first.stdout);
    const s2 = lastJson(again.stdout);
    assert.deepEqual(s2.pass_at_k, s1.pass_at_k);
    assert.equal(s2.resumed_samples, 15);
    assert.equal(s2.generated_samples, 0);

    // interrupted run: keep the first 6 records and half of the 7th
    const kept = full.slice(0, 6);
    writeFileSync(join(out, 'samples.jsonl'), kept.join('\n') + '\n' + (full[6] as string).slice(0, 20));
    const keptPairs = new Set(kept.map((l) => {
      const r = JSON.parse(l) as { id: string; sample: number | string };
      return `${r.id}/${r.sample}`;
    }));
    fake.seen.length = 0;
    const resumed = await runCli(args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /dropped a torn last line/);
    const requested = fake.seen.reduce((a, x) => a + (x.body.n as number), 0);
    assert.equal(requested, 15 - 6);
    const recs = readSamples(out);
    const pairs = recs.map((r) => `${r.id}/${r.sample}`);
    assert.equal(pairs.length, 15);
    assert.equal(new Set(pairs).size, 15);
    for (const p of keptPairs) assert.ok(pairs.includes(p));
    const s3 = lastJson(resumed.stdout);
    assert.equal(s3.resumed_samples, 6);
    assert.equal(s3.generated_samples, 9);
    assert.equal(s3.n, 3);

    // k and concurrency may change; sampling settings may not
    const moreK = await runCli([...args, '--k', '1,2,3,4', '--concurrency', '1']);
    assert.equal(moreK.code, 0, moreK.stderr);
    assert.deepEqual(Object.keys(lastJson(moreK.stdout).pass_at_k as object), ['1', '2', '3', '4']);
    const changed = await runCli([...args, '--temperature', '0.5']);
    assert.notEqual(changed.code, 0);
    assert.match(changed.stderr, /refusing to resume.*--temperature \(temperature\) was 1, now 0\.5/);
    const changed2 = await runCli(args.map((a) => (a === '4' ? '8' : a)).concat(['--k', '1,8']));
    assert.notEqual(changed2.code, 0);
    assert.match(changed2.stderr, /--samples \(samples\) was 4, now 8/);
  } finally {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval --responses scores existing generations (JSON last line) and rejects k > n', async () => {
  const dir = tempDir();
  try {
    const f = join(dir, 'resp.jsonl');
    writeFileSync(
      f,
      [
        { id: 'a', gold: '\\frac{1}{2}', responses: ['\\boxed{3}', '\\boxed{0.5}', 'no idea', '\\boxed{\\frac12}'], level: 'Level 5' },
        { id: 'b', gold: 'Work. #### 1,000', responses: ['\\boxed{1000}', '\\boxed{999}', '\\boxed{999}', '\\boxed{1{,}000}'], greedy: '\\boxed{1000}' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const out = join(dir, 'o');
    const r = await runCli(['--responses', f, '--k', '1,2,4', '--json', '--out', out, '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    const s = lastJson(r.stdout);
    assert.equal(s.n, 2);
    const pass = s.pass_at_k as Record<string, number>;
    for (const k of [1, 2, 4]) assert.ok(Math.abs((pass[String(k)] as number) - passAtK(4, 2, k)) < 1e-12);
    // a: 3 | {0.5, \frac12} → maj@4 right, maj@2 tie → "3" wrong. b: 1000 | 999 999 | 1{,}000 → tie 2-2, earliest (1000) wins
    assert.deepEqual(s.maj_at_k, { '1': 0.5, '2': 0.5, '4': 1 });
    assert.equal(s.greedy, 1);
    assert.deepEqual(Object.keys(s.by_level as object), ['5']);
    assert.equal(readSamples(out).length, 9);

    const k8 = await runCli(['--responses', f, '--k', '1,8', '--json', '--threads', '1']);
    assert.notEqual(k8.code, 0);
    assert.match(k8.stderr, /resp\.jsonl:1:responses: 4 responses for problem a, fewer than k=8/);
    const missing = await runCli(['--responses', join(dir, 'nope.jsonl'), '--k', '1']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nope\.jsonl: cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval --model DIR: local engine with the chat template (tiny random Qwen2), resumable', async () => {
  const dir = tempDir();
  try {
    const modelDir = join(dir, 'model');
    // A tiny random model with the synthetic-task tokenizer (ChatML template); its answers are noise, the wiring is
    // what is checked. The tokenizer writer lives in scripts/, imported at run time.
    const mk = (await import(pathToFileURL(resolve(repoRoot, 'dist', 'scripts', 'make-tokenizer.js')).href)) as { writeArithTokenizer(d: string): number };
    const tokDir = join(dir, 'tok');
    mk.writeArithTokenizer(tokDir);
    const tok = Tokenizer.load(tokDir);
    const V = tok.vocabSize;
    const be = createJsBackend();
    const cfg = { vocabSize: V, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true, attentionBias: true, head: 'lm' as const };
    const model = Qwen2Model.random(cfg, be, 5, 1);
    const mc = parseConfig({
      model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: V, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1,
      num_attention_heads: 2, num_key_value_heads: 1, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true, eos_token_id: tok.eosTokenId,
    });
    saveCheckpoint(modelDir, mc, model.toTensors(), { dtype: 'f32' });
    mk.writeArithTokenizer(modelDir);
    be.dispose();

    const out = join(dir, 'out');
    const args = ['--data', sharedFile('gsm8k_test.jsonl'), '--model', modelDir, '--backend', 'js', '--samples', '2', '--k', '1,2', '--greedy', '--limit', '3', '--max-new-tokens', '6', '--seed', '9', '--out', out, '--json', '--threads', '1'];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const s = lastJson(r.stdout);
    assert.equal(s.n, 3);
    assert.equal(s.greedy_n, 3);
    const recs = readSamples(out);
    assert.equal(recs.length, 9);
    assert.ok(recs.every((x) => x.tokens !== undefined && (x.tokens as number) <= 6 && typeof x.response === 'string'));
    assert.equal(recs.find((x) => x.id === 'line1')?.gold, '18');
    // drop two records and resume: only they are generated again, with the same seeds as before
    const before = new Map(recs.map((x) => [`${x.id}/${x.sample}`, x.response]));
    const lines = readFileSync(join(out, 'samples.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
    writeFileSync(join(out, 'samples.jsonl'), lines.slice(0, 7).join('\n') + '\n');
    const again = await runCli(args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(lastJson(again.stdout).generated_samples, 2);
    const after = readSamples(out);
    assert.equal(after.length, 9);
    for (const x of after) assert.equal(x.response, before.get(`${x.id}/${x.sample}`), `${x.id}/${x.sample}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval --endpoint records a rejected request (HTTP 400) as error samples and goes on; an unreachable server aborts', async () => {
  // the fake model, but a question containing TOO_LONG is refused as a context-length error
  const seen: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      const question = (body.messages as Array<{ role: string; content: string }>).filter((m) => m.role === 'user').map((m) => m.content).join('\n');
      seen.push(question);
      if (question.includes('TOO_LONG')) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'context_length_exceeded', message: 'prompt is too long' } }));
        return;
      }
      const n = typeof body.n === 'number' ? body.n : 1;
      const choices = Array.from({ length: n }, (_, j) => {
        const { text, finish } = fakeText(question, j, body.temperature === 0);
        return { index: j, finish_reason: finish, message: { role: 'assistant', content: text } };
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', choices }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = tempDir();
  try {
    const data = join(dir, 'bench.jsonl');
    const recs = [
      { problem: 'ANSWERS 4|4|5|4', answer: '4', unique_id: 'ok/1' },
      { problem: 'TOO_LONG ANSWERS 9', answer: '9', unique_id: 'long/1' },
      { problem: 'ANSWERS 7|1|1|1', answer: '7', unique_id: 'ok/2' },
    ];
    writeFileSync(data, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'out');
    const args = ['--data', data, '--endpoint', url, '--model-name', 'fake', '--samples', '4', '--k', '1,4', '--out', out, '--json', '--threads', '1', '--retries', '1'];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /long\/1.*HTTP 400.*context_length_exceeded/);
    assert.match(r.stderr, /4 samples recorded as errors/);
    const s = lastJson(r.stdout);
    assert.equal(s.errors, 4);
    assert.equal(s.n, 3);
    // ok/1: 3 of 4 right, ok/2: 1 of 4, long/1: 0
    const pass = s.pass_at_k as Record<string, number>;
    assert.ok(Math.abs((pass['1'] as number) - (3 / 4 + 1 / 4 + 0) / 3) < 1e-12);
    assert.ok(Math.abs((pass['4'] as number) - 2 / 3) < 1e-12);
    assert.equal(seen.filter((q) => q.includes('TOO_LONG')).length, 1); // a 4xx is not retried
    const samples = readSamples(out);
    assert.equal(samples.length, 12);
    const errs = samples.filter((x) => x.id === 'long/1');
    assert.equal(errs.length, 4);
    for (const e of errs) {
      assert.equal(e.correct, false);
      assert.equal(e.extracted, null);
      assert.equal(e.gold, '9');
      assert.match(String(e.error), /HTTP 400/);
    }
    assert.ok(samples.filter((x) => x.id !== 'long/1').every((x) => x.error === undefined && typeof x.extracted === 'string'));
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')), s);

    // resume: error records count as written, nothing is requested again
    const before = seen.length;
    const again = await runCli(args);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(seen.length, before);
    const s2 = lastJson(again.stdout);
    assert.equal(s2.errors, 4);
    assert.equal(s2.resumed_samples, 12);
    assert.equal(s2.generated_samples, 0);
    assert.deepEqual(s2.pass_at_k, s.pass_at_k);

    // an unreachable server aborts the run (no error records)
    await new Promise<void>((res) => {
      server.closeAllConnections();
      server.close(() => res());
    });
    const out2 = join(dir, 'out2');
    const down = await runCli(['--data', data, '--endpoint', url, '--model-name', 'fake', '--samples', '2', '--k', '1', '--out', out2, '--json', '--threads', '1', '--retries', '0']);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /network error/);
    assert.ok(!existsSync(join(out2, 'samples.jsonl')) || readSamples(out2).every((x) => x.error === undefined));
  } finally {
    if (server.listening) {
      server.closeAllConnections();
      server.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('benchmark reading: the gold answer field is detected ("answer", else "gold_answer"); when neither, the error names the fields', () => {
  const dir = tempDir();
  try {
    const f = join(dir, 'gold-answer.jsonl');
    writeFileSync(f, [{ question: 'q1', gold_answer: '3' }, { question: 'q2', gold_answer: 'Work. #### 4' }].map((r) => JSON.stringify(r)).join('\n'));
    const b = loadBenchmark(f);
    assert.equal(b.answerField, 'gold_answer');
    assert.deepEqual(b.problems.map((p) => p.gold), ['3', '4']);
    assert.deepEqual(readBenchmark(f).map((p) => p.gold), ['3', '4']);
    assert.equal(loadBenchmark(sharedFile('math500_test.jsonl'), { limit: 1 }).answerField, 'answer');
    // The bundled held-out split, as the README runs it, now without --answer-field.
    const bundled = loadBenchmark(join(repoRoot, 'data', 'arith-heldout.jsonl'), { limit: 3 });
    assert.equal(bundled.answerField, 'gold_answer');
    assert.equal(bundled.problems.length, 3);
    // An explicit field is used as given, and a record missing it is an error naming that field.
    assert.throws(() => readBenchmark(f, { answerField: 'answer' }), /gold-answer\.jsonl:1:answer: missing \(gold answer\)/);
    const neither = join(dir, 'neither.jsonl');
    writeFileSync(neither, JSON.stringify({ problem: 'p', solution: 's', final: '5' }));
    assert.throws(
      () => readBenchmark(neither),
      /neither\.jsonl:1:answer: missing \(gold answer; tried "answer" and "gold_answer"; the record has problem, solution, final; name the field with --answer-field\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval: a run that failed before writing any sample does not block the corrected rerun', async () => {
  const fake = await startFake();
  const dir = tempDir();
  try {
    const data = writeBenchmark(dir);
    const out = join(dir, 'out');
    const common = ['--data', data, '--samples', '2', '--k', '1', '--out', out, '--json', '--threads', '1'];
    // A dead endpoint (nothing listens on port 9), a malformed URL, a missing model: each run stops early.
    const dead = await runCli([...common, '--endpoint', 'http://127.0.0.1:9', '--model-name', 'fake', '--retries', '0']);
    assert.notEqual(dead.code, 0);
    assert.match(dead.stderr, /network error/);
    const badUrl = await runCli([...common, '--endpoint', 'localhost:8000', '--model-name', 'fake']);
    assert.notEqual(badUrl.code, 0);
    assert.match(badUrl.stderr, /must be an http\(s\) URL/);
    const noModel = await runCli([...common, '--model', join(dir, 'no-such-model')]);
    assert.notEqual(noModel.code, 0);
    // The corrected command runs.
    const ok = await runCli([...common, '--endpoint', fake.url, '--model-name', 'fake']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(lastJson(ok.stdout).n, 3);
    assert.equal((JSON.parse(readFileSync(join(out, 'settings.json'), 'utf8')) as { backend: string }).backend, `endpoint:${fake.url}#fake`);
    assert.equal(readSamples(out).length, 6);
    // Once samples exist, changed settings are still refused.
    const changed = await runCli([...common, '--endpoint', fake.url, '--model-name', 'fake', '--temperature', '0.5']);
    assert.notEqual(changed.code, 0);
    assert.match(changed.stderr, /refusing to resume.*--temperature/);
  } finally {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('oreal eval on the bundled data needs no --answer-field, and records the field it used', async () => {
  const fake = await startFake();
  const dir = tempDir();
  try {
    const out = join(dir, 'out');
    const r = await runCli(['--data', join(repoRoot, 'data', 'arith-heldout.jsonl'), '--limit', '2', '--endpoint', fake.url, '--model-name', 'fake', '--samples', '1', '--out', out, '--json', '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson(r.stdout).n, 2);
    assert.equal((JSON.parse(readFileSync(join(out, 'settings.json'), 'utf8')) as { answer_field: string }).answer_field, 'gold_answer');
  } finally {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
