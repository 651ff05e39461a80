import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'oreal-verify-cli-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Rec {
  id: unknown;
  correct: boolean;
  extracted: string | null;
  reason: string;
  error?: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, 'verify', ...args], { timeout: 30_000, env: { ...process.env, ...env } });
}

/** Run `oreal verify ARGS`, expecting exit status `status` (execFile rejects on a non-zero one). */
async function cliStatus(args: string[], status: number): Promise<{ stdout: string; stderr: string }> {
  try {
    const out = await cli(args);
    assert.equal(0, status, `exit status 0, expected ${status}`);
    return out;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    assert.equal(e.code, status, e.stderr);
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const INPUT = [
  JSON.stringify({ id: 'a', response: 'Thus the answer is \\boxed{5}.', gold: '5' }),
  JSON.stringify({ id: 'b', response: 'So \\boxed{6}.', gold: '\\boxed{5}' }),
  '{"id": "c", "response": "broken', // bad JSON
  JSON.stringify({ id: 'd', response: 12, gold: '12' }), // non-string field
  '', // blank: skipped
  JSON.stringify({ id: 'e', gold: '1' }), // missing field
  JSON.stringify({ response: 'Hence \\boxed{3}.', gold: '3' }), // no id
].join('\n');

test('batch mode: records in input order, malformed lines become error records naming file, line and field', async () => {
  const input = join(dir, 'in.jsonl');
  const output = join(dir, 'out.jsonl');
  writeFileSync(input, `${INPUT}\n`);
  // Malformed lines make the run exit 2 (after every line is verified and written), see the next test.
  const { stdout, stderr } = await cliStatus(['--input', input, '--output', output], 2);
  assert.equal(stdout, '');
  const recs = readFileSync(output, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Rec);
  assert.deepEqual(recs.map((r) => r.id), ['a', 'b', null, 'd', 'e', null]);
  assert.deepEqual(recs.map((r) => r.correct), [true, false, false, false, false, true]);
  assert.equal(recs[0]?.extracted, '5');
  assert.equal(recs[1]?.extracted, '6');
  for (const r of recs) for (const k of ['id', 'correct', 'extracted', 'reason']) assert.ok(k in r, `missing ${k}`);
  assert.match(recs[2]?.error ?? '', new RegExp(`^${input.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: invalid JSON`));
  assert.equal(recs[2]?.extracted, null);
  assert.match(recs[3]?.error ?? '', /in\.jsonl:4: field "response" must be a string, got number/);
  assert.match(recs[4]?.error ?? '', /in\.jsonl:6: missing field "response"/);
  for (const i of [0, 1, 5]) assert.equal(recs[i]?.error, undefined);
  assert.match(stderr, /n=6 correct=2 incorrect=1 malformed=3 timeouts=0/);
  assert.match(stderr, /wall=\d+\.\d+s/);
});

test('malformed lines: counted apart from incorrect, exit 2 and a line naming them; --allow-malformed exits 0', async () => {
  const input = join(dir, 'in-bad.jsonl');
  writeFileSync(input, `${INPUT}\n`);
  const bad = await cliStatus(['--input', input], 2);
  assert.equal(bad.stdout.trimEnd().split('\n').length, 6, 'every record is still written');
  assert.match(bad.stderr, /verify: n=6 correct=2 incorrect=1 malformed=3 /);
  assert.match(bad.stderr, /3 malformed input lines \(first: .*in-bad\.jsonl:3: invalid JSON/);
  const allowed = await cliStatus(['--input', input, '--allow-malformed'], 0);
  assert.equal(allowed.stdout, bad.stdout);
  assert.match(allowed.stderr, /malformed=3 /);
  // A clean file exits 0 and reports malformed=0.
  const clean = join(dir, 'in-clean.jsonl');
  writeFileSync(clean, `${JSON.stringify({ id: 1, response: '\\boxed{2}', gold: '3' })}\n`);
  assert.match((await cliStatus(['--input', clean], 0)).stderr, /n=1 correct=0 incorrect=1 malformed=0 /);
});

test('--output naming the input file is refused and the file is left as it was', async () => {
  const input = join(dir, 'same.jsonl');
  const text = `${JSON.stringify({ id: 1, response: '\\boxed{2}', gold: '2' })}\n`;
  writeFileSync(input, text);
  for (const output of [input, join(dir, '.', 'same.jsonl')]) {
    const r = await cliStatus(['--input', input, '--output', output], 1);
    assert.match(r.stderr, /oreal: error: --output .*same\.jsonl is the --input file/);
    assert.equal(readFileSync(input, 'utf8'), text);
  }
  const link = join(dir, 'same-link.jsonl');
  symlinkSync(input, link);
  await cliStatus(['--input', input, '--output', link], 1);
  assert.equal(readFileSync(input, 'utf8'), text);
});

test('an existing --output file is replaced only once the run is complete', async () => {
  const output = join(dir, 'keep.jsonl');
  writeFileSync(output, 'earlier verdicts\n');
  // The input does not exist: the run fails before verifying anything, and the earlier output stays.
  await cliStatus(['--input', join(dir, 'missing.jsonl'), '--output', output], 1);
  assert.equal(readFileSync(output, 'utf8'), 'earlier verdicts\n');
  const input = join(dir, 'keep-in.jsonl');
  writeFileSync(input, `${JSON.stringify({ id: 7, response: '\\boxed{2}', gold: '2' })}\n`);
  await cliStatus(['--input', input, '--output', output], 0);
  assert.deepEqual((JSON.parse(readFileSync(output, 'utf8')) as Rec).id, 7);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('keep.jsonl.tmp')), [], 'temporary file left behind');
});

test('batch mode without --output writes JSONL to stdout', async () => {
  const input = join(dir, 'in2.jsonl');
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ id: i, response: `\\boxed{${i}}`, gold: String(i % 3 === 0 ? i : -i - 1) }));
  writeFileSync(input, lines.join('\n'));
  const { stdout } = await cli(['--input', input]);
  const recs = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Rec);
  assert.equal(recs.length, 300);
  recs.forEach((r, i) => {
    assert.equal(r.id, i);
    assert.equal(r.correct, i % 3 === 0, `record ${i}: ${r.reason}`);
  });
});

test('single mode prints the verdict (text and --json), exit code 0 either way', async () => {
  const ok = await cli(['--gold', '\\boxed{4}', '--response', 'we get \\boxed{4}']);
  assert.match(ok.stdout, /^correct\nextracted: 4\nreason: .+\n$/);
  const bad = await cli(['--gold', '4', '--response', 'we get \\boxed{5}', '--json']);
  const v = JSON.parse(bad.stdout) as Rec;
  assert.equal(v.correct, false);
  assert.equal(v.extracted, '5');
  assert.equal(typeof v.reason, 'string');
});

test('a missing input file is an error with exit code 1', async () => {
  await assert.rejects(cli(['--input', join(dir, 'nope.jsonl')]), (err: { code?: number; stderr?: string }) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr ?? '', /cannot read --input/);
    return true;
  });
});

test('--judge-url works with and without the /v1 prefix, as --endpoint does', async () => {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'A' } }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const root = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    for (const url of [root, `${root}/`, `${root}/v1`, `${root}/v1/`, `${root}/v1/chat/completions`]) {
      paths.length = 0;
      const out = await cli(['--gold', '5', '--response', '\\boxed{6}', '--judge-url', url, '--judge-model', 'm', '--judge-retries', '0', '--json']);
      assert.deepEqual(paths, ['POST /v1/chat/completions'], `--judge-url ${url}`);
      assert.equal((JSON.parse(out.stdout) as Rec).correct, true, `--judge-url ${url}`);
    }
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('judge: rescue asks only for rule-incorrect answers, review for all; failures keep the rule verdict; key never printed', async () => {
  const seen: Array<{ auth: string | undefined; prompt: string }> = [];
  let mode: 'A' | 'B' | 'fail' = 'A';
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { messages: Array<{ content: string }> };
      seen.push({ auth: req.headers.authorization, prompt: parsed.messages[0]?.content ?? '' });
      if (mode === 'fail') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":"bad request"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: mode } }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const secret = 'sk-test-secret-123456';
  const input = join(dir, 'judge.jsonl');
  writeFileSync(
    input,
    [
      JSON.stringify({ id: 1, response: '\\boxed{5}', gold: '5', question: 'Q1' }),
      JSON.stringify({ id: 2, response: '\\boxed{6}', gold: '5', question: 'Q2' }),
      JSON.stringify({ id: 3, response: 'I give up, there is no final answer in this response at all.', gold: '5' }),
    ].join('\n'),
  );
  const judgeArgs = ['--input', input, '--judge-url', url, '--judge-model', 'm', '--judge-retries', '0'];
  const env = { OREAL_JUDGE_API_KEY: secret };
  try {
    // rescue, judge says A (correct): only record 2 is judged, and flips to correct.
    let out = await cli(judgeArgs, env);
    let recs = out.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Rec);
    assert.equal(seen.length, 1);
    assert.match(seen[0]?.prompt ?? '', /Q2/);
    assert.equal(seen[0]?.auth, `Bearer ${secret}`);
    assert.deepEqual(recs.map((r) => r.correct), [true, true, false]);
    assert.match(recs[1]?.reason ?? '', /judge: correct/);
    assert.match(out.stderr, /judged=1 judge_changed=1 judge_failed=0/);

    // review, judge says B (incorrect): records 1 and 2 are judged; 1 flips to incorrect.
    seen.length = 0;
    mode = 'B';
    out = await cli([...judgeArgs, '--judge-mode', 'review'], env);
    recs = out.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Rec);
    assert.equal(seen.length, 2);
    assert.deepEqual(recs.map((r) => r.correct), [false, false, false]);

    // judge failure: rule verdict kept and said so.
    seen.length = 0;
    mode = 'fail';
    out = await cli([...judgeArgs, '--judge-mode', 'review'], env);
    recs = out.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Rec);
    assert.deepEqual(recs.map((r) => r.correct), [true, false, false]);
    assert.match(recs[0]?.reason ?? '', /judge failed: .*; rule verdict kept$/);
    assert.ok(!out.stdout.includes(secret) && !out.stderr.includes(secret), 'API key printed');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
