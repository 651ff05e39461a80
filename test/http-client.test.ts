// The shared HTTP client's redaction and Retry-After parsing (its retries, timeouts and limits are exercised through
// both callers in eval.test.ts and verify-judge.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JsonHttpClient, displayUrl, httpClientOptions, parseRetryAfter } from '../src/util/http-client.js';

test('displayUrl drops credentials, query and fragment', () => {
  assert.equal(displayUrl('https://user:pw@host:8443/v1/chat/completions?key=abc#x'), 'https://host:8443/v1/chat/completions');
  assert.equal(displayUrl('not a url'), '(invalid url)');
});

test('httpClientOptions: the caller\'s defaults under its settings, each checked and named', () => {
  const defaults = { apiKeyEnv: 'K', concurrency: 8, timeoutMs: 1000, retries: 3, backoffMs: 5, maxBackoffMs: 50 };
  assert.deepEqual(httpClientOptions('X', { retries: 0, timeoutMs: undefined }, defaults), { ...defaults, retries: 0 });
  assert.throws(() => httpClientOptions('X', { concurrency: 0 }, defaults), /^Error: X: concurrency must be a positive integer, got 0$/);
  assert.throws(() => httpClientOptions('X', { retries: 1.5 }, defaults), /X: retries must be a non-negative integer, got 1\.5/);
  assert.throws(() => httpClientOptions('X', { timeoutMs: 0 }, defaults), /X: timeoutMs must be a positive number/);
  assert.throws(() => httpClientOptions('X', { backoffMs: -1 }, defaults), /X: backoffMs must be a non-negative number/);
  assert.throws(() => httpClientOptions('X', { maxBackoffMs: Number.NaN }, defaults), /X: maxBackoffMs must be a non-negative number/);
});

test('parseRetryAfter: seconds, fractional seconds, HTTP dates, garbage', () => {
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter(' 2 '), 2000);
  assert.equal(parseRetryAfter('0.25'), 250);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter(new Date(Date.now() - 60_000).toUTCString()), 0);
  const ahead = parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())!;
  assert.ok(ahead > 50_000 && ahead <= 60_000, String(ahead));
});

test('the API key never appears in an error, even when the server echoes it; close() stops retries', async () => {
  const key = 'sk-client-test-0123456789';
  process.env.OREAL_TEST_CLIENT_KEY = key;
  let calls = 0;
  const server = http.createServer((req, res) => {
    calls++;
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`bad request, you sent ${req.headers.authorization}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/x`;
  try {
    const client = new JsonHttpClient({ apiKeyEnv: 'OREAL_TEST_CLIENT_KEY', concurrency: 1, timeoutMs: 5000, retries: 3, backoffMs: 1, maxBackoffMs: 5 });
    await assert.rejects(client.request(`${url}?api_key=${key}`, { method: 'POST', body: '{}' }), (e: Error) => {
      assert.match(e.message, /^POST http:\/\/127\.0\.0\.1:\d+\/v1\/x returned HTTP 400: bad request, you sent Bearer \[redacted\]$/);
      assert.ok(!e.message.includes(key), e.message);
      return true;
    });
    assert.equal(calls, 1); // a 400 is final
    assert.deepEqual(client.stats(), { requests: 1, retries: 0, failures: 1 });
    client.close();
    await assert.rejects(client.request('http://127.0.0.1:1/v1/x', { method: 'GET' }), (e: Error) => {
      assert.doesNotMatch(e.message, /gave up/); // no retries after close()
      return true;
    });
    assert.equal(client.stats().retries, 0);
  } finally {
    delete process.env.OREAL_TEST_CLIENT_KEY;
    await new Promise<void>((r) => server.close(() => r()));
  }
});
