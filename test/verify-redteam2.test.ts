// Second, independent red-team suite for the math answer verifier (fixture: test/fixtures/verifier-redteam2.jsonl).
// Written before reading the verifier code, weighted across answer categories like a held-out set of real grading
// cases, labelled by mathematics and docs/verifier-policy.md. Long Qwen2.5-Math-style responses are filed under
// their mathematical category with a note, since the suite's category list has no "real-response".

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cachedCases, checkRecords, fixturePath, runAgreement } from './helpers/verifier-suite.js';

/** Minimum share of cases on which verifyResponse must agree with the labels. */
export const MIN_AGREEMENT = 0.97;
/** Maximum number of false positives (label false, verifier says correct). */
export const MAX_FALSE_POSITIVES = 2;
const MIN_CASES = 250;

const FIXTURE = fixturePath('verifier-redteam2.jsonl');

const cases = cachedCases(FIXTURE);

test('red-team 2 cases: fixture parses and every record is well-formed', () => {
  const all = cases();
  assert.ok(all.length >= MIN_CASES, `expected at least ${MIN_CASES} cases in ${FIXTURE}, found ${all.length}`);
  checkRecords(all, FIXTURE, /^rt2-\d{3}$/, { uniquePairs: true });
  const t = all.filter((c) => c.expected).length;
  assert.ok(t > 0 && t < all.length, `${FIXTURE}: needs both true and false labels (true ${t} of ${all.length})`);
  // Every big category of the held-out table is represented.
  const cats = new Set(all.map((c) => c.category));
  for (const k of ['integer', 'adversarial', 'equation', 'fraction', 'malformed', 'interval', 'decimal', 'sqrt', 'expression',
    'multiple-answers', 'tuple', 'extraction-format', 'units', 'percent', 'pi', 'text-answer', 'set', 'no-answer', 'matrix',
    'multiple-choice', 'degrees', 'complex', 'other-notation'] as const) {
    assert.ok(cats.has(k), `${FIXTURE}: no case in category ${k}`);
  }
});

test(`red-team 2 agreement >= ${MIN_AGREEMENT} with <= ${MAX_FALSE_POSITIVES} false positives`, async () => {
  const all = cases();
  const { result, summary } = await runAgreement(all);
  assert.equal(result.errors, 0, `the verifier threw:\n${summary}`);
  assert.ok(result.agreement >= MIN_AGREEMENT, `agreement below ${MIN_AGREEMENT}: ${summary}`);
  assert.ok(result.fp <= MAX_FALSE_POSITIVES, `more than ${MAX_FALSE_POSITIVES} false positives: ${summary}`);
  assert.ok(result.maxCaseMs < 2000, `a case took ${result.maxCaseMs.toFixed(0)} ms: comparisons must stay bounded`);
});
