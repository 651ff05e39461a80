// Red-team agreement suite for the math answer verifier (fixture: test/fixtures/verifier-redteam.jsonl).
// Cases target the public verifiers' known failure modes (last-number fallbacks, tolerances, separators) and each label
// rule of docs/verifier-policy.md. Labels come from mathematics and that policy, never from the verifier's output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCases } from '../bench/verify-suite.js';
import { cachedCases, checkRecords, fixturePath, runAgreement } from './helpers/verifier-suite.js';

/** Minimum share of cases on which verifyResponse must agree with the labels. */
export const MIN_AGREEMENT = 0.97;
/** Maximum number of false positives (label false, verifier says correct). */
export const MAX_FALSE_POSITIVES = 2;
const MIN_CASES = 200;

const FIXTURE = fixturePath('verifier-redteam.jsonl');

const cases = cachedCases(FIXTURE);

test('red-team cases: fixture parses and every record is well-formed', () => {
  const all = cases();
  assert.ok(all.length >= MIN_CASES, `expected at least ${MIN_CASES} cases in ${FIXTURE}, found ${all.length}`);
  checkRecords(all, FIXTURE, /^rt-\d{3}$/);
  const t = all.filter((c) => c.expected).length;
  assert.ok(t > 0 && t < all.length, `${FIXTURE}: needs both true and false labels (true ${t} of ${all.length})`);
});

test('red-team cases: the validator names the offending line', () => {
  const good = JSON.stringify({ id: 'rt-001', response: 'r', gold: '1', expected: true, category: 'integer' });
  assert.throws(() => parseCases(`${good}\n{oops`, 'rt.jsonl'), /rt\.jsonl:2: invalid JSON/);
  assert.throws(
    () => parseCases(`${good}\n${JSON.stringify({ id: 'rt-002', response: 'r', gold: '', expected: true, category: 'integer' })}`, 'rt.jsonl'),
    /rt\.jsonl:2 \(rt-002\): "gold" must be a non-empty string/,
  );
});

test(`red-team agreement >= ${MIN_AGREEMENT} with <= ${MAX_FALSE_POSITIVES} false positives`, async () => {
  const all = cases();
  const { result, summary } = await runAgreement(all);
  assert.equal(result.errors, 0, `the verifier threw:\n${summary}`);
  assert.ok(result.agreement >= MIN_AGREEMENT, `agreement below ${MIN_AGREEMENT}: ${summary}`);
  assert.ok(result.fp <= MAX_FALSE_POSITIVES, `more than ${MAX_FALSE_POSITIVES} false positives: ${summary}`);
  assert.ok(result.maxCaseMs < 2000, `a case took ${result.maxCaseMs.toFixed(0)} ms: comparisons must stay bounded`);
});
