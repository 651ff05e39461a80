// Shared by the verifier agreement suites (test/verify-suite.test.ts, test/verify-redteam*.test.ts,
// test/verify-wave2.test.ts): fixture paths, cached case loading, the shared record checks, and one run of the
// verifier over the cases with a printable summary.
// Not a test file itself (the test glob is dist/test/*.test.js).

import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ALWAYS_FALSE_CATEGORIES,
  formatDisagreements,
  loadCases,
  loadVerifier,
  runSuite,
  type SuiteResult,
  type VerifierCase,
} from '../../bench/verify-suite.js';

/** dist/test/helpers/ → repo root → test/fixtures/<name> */
export function fixturePath(name: string): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures', name);
}

/** A loader that reads and validates `file` on first call and returns the same cases afterwards. */
export function cachedCases(file: string): () => VerifierCase[] {
  let cached: VerifierCase[] | undefined;
  return () => {
    cached ??= loadCases(file);
    return cached;
  };
}

/** Runs the verifier (src/verify) over `cases`; `summary` is the agreement line plus the disagreements. */
export async function runAgreement(cases: readonly VerifierCase[]): Promise<{ result: SuiteResult; summary: string }> {
  const verify = await loadVerifier();
  const result = await runSuite(cases, verify);
  const summary =
    `agreement ${(100 * result.agreement).toFixed(1)}% (${result.agree}/${result.total}), ` +
    `TP ${result.tp} FN ${result.fn} FP ${result.fp} TN ${result.tn}, errors ${result.errors}\n` +
    formatDisagreements(result);
  return { result, summary };
}

/**
 * The record checks every labelled suite shares: ids of the suite's form, golds without surrounding whitespace,
 * categories that have no valid answer labelled false, and (with `uniquePairs`) no repeated (response, gold) pair.
 */
export function checkRecords(cases: readonly VerifierCase[], file: string, idPattern: RegExp, opts: { uniquePairs?: boolean } = {}): void {
  const seenPairs = new Set<string>();
  for (const c of cases) {
    const where = `${file}:${c.line} (${c.id})`;
    assert.match(c.id, idPattern, `${where}: id should match ${idPattern}`);
    assert.equal(c.gold, c.gold.trim(), `${where}: gold has surrounding whitespace`);
    if (opts.uniquePairs) {
      const pair = JSON.stringify([c.response, c.gold]);
      assert.ok(!seenPairs.has(pair), `${where}: duplicate (response, gold) pair`);
      seenPairs.add(pair);
    }
    if (ALWAYS_FALSE_CATEGORIES.includes(c.category)) {
      assert.equal(c.expected, false, `${where}: category ${c.category} has no valid answer, so it must be labelled false`);
    }
  }
}
