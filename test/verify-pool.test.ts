import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  VerifierPool,
  capResponse,
  unwrapGold,
  verifyResponse,
  MAX_RESPONSE_CHARS,
  RESPONSE_TAIL_CHARS,
} from '../src/verify/index.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a spinning comparison is killed at the bound, the worker respawns and the next task succeeds', async () => {
  const pool = new VerifierPool({ threads: 1, timeoutMs: 300, testHooks: true });
  try {
    assert.equal((await pool.verify('so \\boxed{5}', '5')).correct, true); // worker is up
    const t0 = performance.now();
    const v = await pool.verify('so \\boxed{5}', '\u0000spin');
    const dt = performance.now() - t0;
    assert.equal(v.correct, false);
    assert.equal(v.extracted, '5');
    assert.match(v.reason, /timeout after 300 ms/);
    assert.ok(dt >= 290 && dt < 1500, `timeout answered after ${dt} ms`);
    // The spinning thread is really gone: the process uses almost no CPU while idle afterwards.
    const cpu0 = process.cpuUsage();
    await sleep(400);
    const cpu = process.cpuUsage(cpu0);
    assert.ok(cpu.user + cpu.system < 250_000, `CPU still busy after the timeout: ${cpu.user + cpu.system} µs`);
    const next = await pool.verify('thus \\boxed{7}', '7');
    assert.equal(next.correct, true);
    assert.equal(next.extracted, '7');
    const st = pool.stats();
    assert.equal(st.timeouts, 1);
    assert.equal(st.respawns, 1);
    assert.equal(st.crashes, 0);
  } finally {
    await pool.close();
  }
});

test('a spinning extraction is bounded too and gives extracted null', async () => {
  const pool = new VerifierPool({ threads: 1, timeoutMs: 200, testHooks: true });
  try {
    const v = await pool.verify('\u0000spin', '5');
    assert.deepEqual(v, { correct: false, extracted: null, reason: 'timeout after 200 ms during extraction' });
    assert.equal((await pool.verify('\\boxed{5}', '5')).correct, true);
    assert.equal(pool.stats().timeouts, 1);
  } finally {
    await pool.close();
  }
});

test('a worker that dies (exit, out of memory) is replaced and the death is reported', async () => {
  const pool = new VerifierPool({ threads: 1, timeoutMs: 5000, maxHeapMb: 16, testHooks: true });
  try {
    const crash = await pool.verify('\\boxed{1}', '\u0000crash');
    assert.equal(crash.correct, false);
    assert.match(crash.reason, /verifier crashed \(worker exited with code 7\)/);
    const oom = await pool.verify('\\boxed{1}', '\u0000oom');
    assert.equal(oom.correct, false);
    assert.match(oom.reason, /verifier crashed/);
    assert.equal((await pool.verify('\\boxed{1}', '1')).correct, true);
    const st = pool.stats();
    assert.equal(st.crashes, 2);
    assert.equal(st.respawns, 2);
    assert.equal(st.timeouts, 0);
  } finally {
    await pool.close();
  }
});

test('repeated (gold, answer) pairs are served from the cache without a comparison', async () => {
  const pool = new VerifierPool({ threads: 1, timeoutMs: 2000, testHooks: true });
  try {
    const gold = '\u0000sleep:250';
    let t = performance.now();
    const first = await pool.verify('first \\boxed{9}', gold);
    assert.ok(performance.now() - t >= 240);
    t = performance.now();
    const second = await pool.verify('a different response, same answer \\boxed{9}', gold);
    const dt = performance.now() - t;
    assert.ok(dt < 150, `cache hit took ${dt} ms`);
    assert.equal(second.correct, first.correct);
    assert.equal(second.extracted, '9');
    assert.equal(pool.stats().cacheHits, 1);
    // A different answer for the same gold is not a hit.
    await pool.verify('\\boxed{10}', gold);
    assert.equal(pool.stats().cacheHits, 1);
  } finally {
    await pool.close();
  }
});

test('the cache is an LRU of the configured size', async () => {
  const pool = new VerifierPool({ threads: 1, cacheSize: 2 });
  try {
    await pool.verify('\\boxed{1}', '1');
    await pool.verify('\\boxed{2}', '2');
    await pool.verify('\\boxed{1}', '1'); // hit; 1 becomes most recent
    await pool.verify('\\boxed{3}', '3'); // evicts 2
    await pool.verify('\\boxed{1}', '1'); // hit
    await pool.verify('\\boxed{2}', '2'); // miss
    assert.equal(pool.stats().cacheHits, 2);
  } finally {
    await pool.close();
  }
});

test('concurrent verifications each get their own verdict, whatever the completion order', async () => {
  const pool = new VerifierPool({ threads: 2, timeoutMs: 2000, testHooks: true, cacheSize: 0 });
  try {
    const n = 40;
    const out = await Promise.all(
      Array.from({ length: n }, (_, i) => pool.verify(`answer: \\boxed{${i}}`, `\u0000sleep:${(i * 7) % 13}`)),
    );
    out.forEach((v, i) => assert.equal(v.extracted, String(i)));
    const plain = await Promise.all(Array.from({ length: n }, (_, i) => pool.verify(`\\boxed{${i}}`, String(i % 2 === 0 ? i : i + 1))));
    plain.forEach((v, i) => assert.equal(v.correct, i % 2 === 0, `case ${i}: ${v.reason}`));
    assert.equal(pool.stats().verified, 2 * n);
  } finally {
    await pool.close();
  }
});

test('close() waits for pending work, then refuses new work', async () => {
  const pool = new VerifierPool({ threads: 1, testHooks: true });
  const pending = pool.verify('\\boxed{4}', '\u0000sleep:100');
  await Promise.all([pool.close(), pool.close()]); // concurrent calls both resolve
  const v = await pending;
  assert.equal(v.extracted, '4');
  await assert.rejects(pool.verify('\\boxed{4}', '4'), /after close/);
  await pool.close(); // idempotent
});

test('an idle pool that was never closed does not keep the process alive', async () => {
  const url = new URL('../src/verify/index.js', import.meta.url).href;
  const script = `const { VerifierPool } = await import(${JSON.stringify(url)});
    const p = new VerifierPool({ threads: 2 });
    const v = await p.verify('\\\\boxed{3}', '3');
    console.log(JSON.stringify(v));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
  assert.equal(JSON.parse(stdout).correct, true);
});

test('the pool and verifyResponse agree, and gold may be boxed', async () => {
  const pool = new VerifierPool({ threads: 1 });
  try {
    const cases: Array<[string, string]> = [
      ['The answer is \\boxed{12}.', '\\boxed{12}'],
      ['The answer is \\boxed{12}.', '13'],
      ['no answer here at all, only words and more words than a bare answer would have', '1'],
    ];
    for (const [r, g] of cases) assert.deepEqual(await pool.verify(r, g), verifyResponse(r, g));
    assert.equal(verifyResponse('so \\boxed{12}', '$\\boxed{12}$').correct, true);
  } finally {
    await pool.close();
  }
});

test('unwrapGold removes only a box that spans the whole gold', () => {
  assert.equal(unwrapGold(' \\boxed{\\frac{1}{2}} '), '\\frac{1}{2}');
  assert.equal(unwrapGold('\\boxed{\\boxed{3}}'), '3');
  assert.equal(unwrapGold('$\\boxed{x}$'), 'x');
  assert.equal(unwrapGold('\\boxed{1} + \\boxed{2}'), '\\boxed{1} + \\boxed{2}');
  assert.equal(unwrapGold('\\boxed{1'), '\\boxed{1');
  assert.equal(unwrapGold('7'), '7');
});

test('capResponse keeps short responses and the tail of long ones, preserving an open <think>', () => {
  const short = 'x'.repeat(1000) + '\\boxed{1}';
  assert.equal(capResponse(short), short);
  const filler = 'blah '.repeat(MAX_RESPONSE_CHARS / 4);
  const long = filler + 'so \\boxed{42}';
  const cut = capResponse(long);
  assert.equal(cut.length, RESPONSE_TAIL_CHARS);
  assert.ok(cut.endsWith('\\boxed{42}'));
  // Unfinished thinking stays unfinished after the cut.
  const open = capResponse('<think>' + filler + '\\boxed{42}');
  assert.ok(open.startsWith('<think>'));
  // Finished thinking before the cut: nothing to reopen.
  const closed = capResponse('<think>a</think>' + filler + '\\boxed{42}');
  assert.ok(!closed.startsWith('<think>'));
  // A hallucinated new turn is dropped before the tail is taken.
  const turn = capResponse('so \\boxed{5}<|im_start|>user\n' + filler + '\\boxed{6}');
  assert.ok(turn.endsWith('\\boxed{5}'));
});

test('a 1 MB response is cut to its tail in the pool and still verified', async () => {
  const pool = new VerifierPool({ threads: 1 });
  try {
    const big = 'a '.repeat(512 * 1024) + 'Hence \\boxed{42}.';
    const v = await pool.verify(big, '42');
    assert.equal(v.correct, true);
    assert.equal(v.extracted, '42');
    assert.equal(pool.stats().truncated, 1);
  } finally {
    await pool.close();
  }
});

test('bad options are rejected', () => {
  assert.throws(() => new VerifierPool({ threads: 0 }), /threads/);
  assert.throws(() => new VerifierPool({ timeoutMs: -1 }), /timeoutMs/);
  assert.throws(() => new VerifierPool({ cacheSize: 1.5 }), /cacheSize/);
});
