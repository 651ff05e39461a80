// Labelled agreement suite for the math answer verifier (fixture: test/fixtures/verifier-cases.jsonl).
// Labels come from mathematics and the label policy in docs/verifier-policy.md, not from any checker.

/** Minimum share of cases on which verifyResponse must agree with the labels. */
export const MIN_AGREEMENT = 0.97;
/** Maximum number of false positives (label false, verifier says correct): these become wrong rewards. */
export const MAX_FALSE_POSITIVES = 4;
/** Minimum size of the fixture and of each category. */
const MIN_CASES = 330;
const MIN_PER_CATEGORY = 5;

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALWAYS_FALSE_CATEGORIES, CATEGORIES, defaultCasesPath, loadCases, parseCases } from '../bench/verify-suite.js';
import { cachedCases, runAgreement } from './helpers/verifier-suite.js';

const cases = cachedCases(defaultCasesPath());

test('verifier cases: fixture parses and every record is well-formed', () => {
  const all = cases();
  assert.ok(all.length >= MIN_CASES, `expected at least ${MIN_CASES} cases in ${defaultCasesPath()}, found ${all.length}`);
  for (const c of all) {
    const where = `${defaultCasesPath()}:${c.line} (${c.id})`;
    assert.match(c.id, /^[a-z]+-\d{3}$/, `${where}: id should look like "int-001"`);
    assert.equal(typeof c.response, 'string', where);
    assert.ok(c.gold.trim().length > 0, `${where}: empty gold`);
    assert.equal(c.gold, c.gold.trim(), `${where}: gold has surrounding whitespace`);
  }
});

test('verifier cases: validator names the offending line', () => {
  const good = JSON.stringify({ id: 'x-001', response: 'r', gold: '1', expected: true, category: 'integer' });
  assert.throws(() => parseCases(`${good}\n{not json`, 'f.jsonl'), /f\.jsonl:2: invalid JSON/);
  assert.throws(
    () => parseCases(`${good}\n${JSON.stringify({ id: 'x-002', response: 'r', gold: '1', expected: 'yes', category: 'integer' })}`, 'f.jsonl'),
    /f\.jsonl:2 \(x-002\): "expected" must be true or false/,
  );
  assert.throws(
    () => parseCases(`${good}\n${JSON.stringify({ id: 'x-002', response: 'r', gold: '1', expected: true, category: 'nope' })}`, 'f.jsonl'),
    /f\.jsonl:2 \(x-002\): "category" must be one of/,
  );
  assert.throws(() => parseCases(`${good}\n${good}`, 'f.jsonl'), /f\.jsonl:2 \(x-001\): duplicate id, first used on line 1/);
  assert.throws(() => loadCases('/nonexistent/verifier-cases.jsonl'), /cannot read verifier cases file/);
});

test('verifier cases: every category is covered with true and false labels', () => {
  const all = cases();
  const problems: string[] = [];
  for (const cat of CATEGORIES) {
    const inCat = all.filter((c) => c.category === cat);
    const t = inCat.filter((c) => c.expected).length;
    const f = inCat.length - t;
    if (inCat.length < MIN_PER_CATEGORY) problems.push(`${cat}: ${inCat.length} cases (< ${MIN_PER_CATEGORY})`);
    if (ALWAYS_FALSE_CATEGORIES.includes(cat)) {
      if (t > 0) problems.push(`${cat}: ${t} cases labelled true, but this category has no valid answer`);
    } else {
      if (t < 1) problems.push(`${cat}: no case labelled true`);
      if (f < 1) problems.push(`${cat}: no case labelled false`);
    }
  }
  assert.deepEqual(problems, [], `coverage problems:\n${problems.join('\n')}`);
});

test(`verifier agreement >= ${MIN_AGREEMENT} with <= ${MAX_FALSE_POSITIVES} false positives`, async () => {
  const all = cases();
  const { result, summary } = await runAgreement(all);
  assert.ok(result.agreement >= MIN_AGREEMENT, `agreement below ${MIN_AGREEMENT}: ${summary}`);
  assert.ok(result.fp <= MAX_FALSE_POSITIVES, `more than ${MAX_FALSE_POSITIVES} false positives: ${summary}`);
});
