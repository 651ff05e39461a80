// Shared by the verifier agreement suites (test/verify-suite.test.ts, test/verify-redteam*.test.ts):
// fixture paths, cached case loading, and one run of the verifier over the cases with a printable summary.
// Not a test file itself (the test glob is dist/test/*.test.js).

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
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
