// Labelled agreement suite for the math answer verifier.
//
//   node dist/bench/verify-suite.js [--cases FILE] [--json]
//
// Reads a JSON Lines file of labelled cases (default: test/fixtures/verifier-cases.jsonl), runs each through
// `verifyResponse(response, gold)` from src/verify/index.ts and reports agreement with the labels:
// overall agreement, TP/FN/FP/TN, a per-category table, wall time and every disagreement.
// With --json it prints one summary JSON line instead.
//
// The module also exports the loader, validator and runner used by test/verify-suite.test.ts.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Verdict } from '../src/verify/types.js';

/** Every category a case may have; the suite must cover each of them. */
export const CATEGORIES = [
  'integer', 'fraction', 'decimal', 'percent', 'sqrt', 'pi', 'interval', 'set', 'tuple', 'matrix', 'equation',
  'inequality', 'expression', 'text-answer', 'units', 'degrees', 'multiple-answers', 'multiple-choice', 'complex',
  'other-notation', 'malformed', 'no-answer', 'empty', 'truncated', 'extraction-format', 'adversarial',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Categories whose cases carry no valid final answer, so every label is false. */
export const ALWAYS_FALSE_CATEGORIES: readonly Category[] = ['no-answer', 'empty', 'truncated'];

export interface VerifierCase {
  id: string;
  response: string;
  gold: string;
  expected: boolean;
  category: Category;
  note?: string;
  /** 1-based line number in the cases file. */
  line: number;
}

/** The verifier API under test (src/verify/index.ts). A Promise result is awaited as well. */
export type VerifyFn = (response: string, gold: string) => Verdict | Promise<Verdict>;

const KNOWN_FIELDS = new Set(['id', 'response', 'gold', 'expected', 'category', 'note', 'source', 'anchors']);
const CATEGORY_SET = new Set<string>(CATEGORIES);

/** Default fixture location, resolved from this module (dist/bench/ → repo root). */
export function defaultCasesPath(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/verifier-cases.jsonl');
}

/** Parses and validates a cases file's text. Throws an Error naming the file and line of the first problem. */
export function parseCases(text: string, file = '<cases>'): VerifierCase[] {
  const cases: VerifierCase[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const line = i + 1;
    if (raw.trim() === '') continue;
    const where = `${file}:${line}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new Error(`${where}: invalid JSON (${(err as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error(`${where}: expected a JSON object`);
    }
    const rec = value as Record<string, unknown>;
    for (const key of Object.keys(rec)) {
      if (!KNOWN_FIELDS.has(key)) throw new Error(`${where}: unknown field "${key}"`);
    }
    const { id, response, gold, expected, category, note } = rec;
    if (typeof id !== 'string' || id.trim() === '') throw new Error(`${where}: "id" must be a non-empty string`);
    const at = `${where} (${id})`;
    const prev = seen.get(id);
    if (prev !== undefined) throw new Error(`${at}: duplicate id, first used on line ${prev}`);
    seen.set(id, line);
    if (typeof response !== 'string') throw new Error(`${at}: "response" must be a string`);
    if (typeof gold !== 'string' || gold.trim() === '') throw new Error(`${at}: "gold" must be a non-empty string`);
    if (typeof expected !== 'boolean') throw new Error(`${at}: "expected" must be true or false`);
    if (typeof category !== 'string' || !CATEGORY_SET.has(category)) {
      throw new Error(`${at}: "category" must be one of ${CATEGORIES.join(', ')}; got ${JSON.stringify(category)}`);
    }
    if (note !== undefined && (typeof note !== 'string' || note.trim() === '')) {
      throw new Error(`${at}: "note" must be a non-empty string when present`);
    }
    const c: VerifierCase = { id, response, gold, expected, category: category as Category, line };
    if (typeof note === 'string') c.note = note;
    cases.push(c);
  }
  if (cases.length === 0) throw new Error(`${file}: no cases found`);
  return cases;
}

/** Reads and validates a cases file. Throws a clear Error if it is missing or malformed. */
export function loadCases(file = defaultCasesPath()): VerifierCase[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read verifier cases file ${file}: ${(err as Error).message}`);
  }
  return parseCases(text, file);
}

/**
 * Loads `verifyResponse` from src/verify/index.js. The import is dynamic so that this module (and the fixture
 * validation in the test) still loads when the verifier is missing or broken; the error says what went wrong.
 */
export async function loadVerifier(): Promise<VerifyFn> {
  const specifier = '../src/verify/index.js';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`cannot load the verifier (src/verify/index.ts): ${(err as Error).message}`);
  }
  const fn = mod['verifyResponse'] ?? mod['verifyCase'];
  if (typeof fn !== 'function') {
    throw new Error('src/verify/index.ts does not export verifyResponse(response: string, gold: string): Verdict');
  }
  return fn as VerifyFn;
}

export interface CaseResult {
  case: VerifierCase;
  correct: boolean;
  extracted: string | null;
  reason: string;
  agrees: boolean;
  ms: number;
  /** Set when the verifier threw; the verdict then counts as `correct: false`. */
  error?: string;
}

export interface CategoryStats {
  n: number;
  agree: number;
  tp: number;
  fn: number;
  fp: number;
  tn: number;
}

export interface SuiteResult {
  total: number;
  agree: number;
  agreement: number;
  tp: number;
  fn: number;
  fp: number;
  tn: number;
  errors: number;
  wallMs: number;
  maxCaseMs: number;
  perCategory: Map<Category, CategoryStats>;
  results: CaseResult[];
  disagreements: CaseResult[];
}

function emptyStats(): CategoryStats {
  return { n: 0, agree: 0, tp: 0, fn: 0, fp: 0, tn: 0 };
}

/** Runs every case through the verifier and tallies agreement with the labels. */
export async function runSuite(cases: readonly VerifierCase[], verify: VerifyFn): Promise<SuiteResult> {
  const results: CaseResult[] = [];
  const perCategory = new Map<Category, CategoryStats>();
  for (const cat of CATEGORIES) perCategory.set(cat, emptyStats());
  const totals = emptyStats();
  let errors = 0;
  let maxCaseMs = 0;
  const start = performance.now();
  for (const c of cases) {
    const t0 = performance.now();
    let correct = false;
    let extracted: string | null = null;
    let reason = '';
    let error: string | undefined;
    try {
      const v = await verify(c.response, c.gold);
      correct = v.correct === true;
      extracted = v.extracted ?? null;
      reason = String(v.reason ?? '');
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      reason = `verifier threw: ${error}`;
      errors += 1;
    }
    const ms = performance.now() - t0;
    maxCaseMs = Math.max(maxCaseMs, ms);
    const agrees = correct === c.expected;
    const r: CaseResult = { case: c, correct, extracted, reason, agrees, ms };
    if (error !== undefined) r.error = error;
    results.push(r);
    for (const s of [totals, perCategory.get(c.category)!]) {
      s.n += 1;
      if (agrees) s.agree += 1;
      if (c.expected && correct) s.tp += 1;
      else if (c.expected) s.fn += 1;
      else if (correct) s.fp += 1;
      else s.tn += 1;
    }
  }
  const wallMs = performance.now() - start;
  return {
    total: totals.n,
    agree: totals.agree,
    agreement: totals.n === 0 ? 0 : totals.agree / totals.n,
    tp: totals.tp,
    fn: totals.fn,
    fp: totals.fp,
    tn: totals.tn,
    errors,
    wallMs,
    maxCaseMs,
    perCategory,
    results,
    disagreements: results.filter((r) => !r.agrees),
  };
}

const pct = (num: number, den: number): string => (den === 0 ? '-' : `${((100 * num) / den).toFixed(1)}%`);
const oneLine = (s: string | null, max = 120): string => {
  if (s === null) return 'null';
  const flat = JSON.stringify(s);
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/** One line per disagreement: id, category, expected/got, gold, extracted, reason. */
export function formatDisagreements(result: SuiteResult): string {
  return result.disagreements
    .map((r) => {
      const kind = r.case.expected ? 'FN' : 'FP';
      return (
        `${kind} ${r.case.id} [${r.case.category}] expected=${r.case.expected} got=${r.correct}` +
        ` gold=${oneLine(r.case.gold)} extracted=${oneLine(r.extracted)} reason=${oneLine(r.reason)}`
      );
    })
    .join('\n');
}

/** Human-readable report. */
export function formatReport(result: SuiteResult, file: string): string {
  const out: string[] = [];
  out.push(`verifier suite: ${file}`);
  out.push(
    `cases ${result.total}  agreement ${pct(result.agree, result.total)} (${result.agree}/${result.total})` +
      `  TP ${result.tp}  FN ${result.fn}  FP ${result.fp}  TN ${result.tn}  errors ${result.errors}`,
  );
  out.push(
    `wall ${result.wallMs.toFixed(0)} ms  (mean ${(result.wallMs / Math.max(1, result.total)).toFixed(2)} ms/case,` +
      ` max ${result.maxCaseMs.toFixed(0)} ms)`,
  );
  out.push('');
  out.push(`${'category'.padEnd(18)} ${'n'.padStart(4)} ${'agree'.padStart(6)} ${'rate'.padStart(7)} ${'FN'.padStart(4)} ${'FP'.padStart(4)}`);
  for (const [cat, s] of result.perCategory) {
    if (s.n === 0) continue;
    out.push(
      `${cat.padEnd(18)} ${String(s.n).padStart(4)} ${String(s.agree).padStart(6)} ${pct(s.agree, s.n).padStart(7)}` +
        ` ${String(s.fn).padStart(4)} ${String(s.fp).padStart(4)}`,
    );
  }
  out.push('');
  if (result.disagreements.length === 0) {
    out.push('no disagreements');
  } else {
    out.push(`disagreements (${result.disagreements.length}):`);
    out.push(formatDisagreements(result));
  }
  const slow = result.results.filter((r) => r.ms > 1000);
  if (slow.length > 0) {
    out.push('');
    out.push(`slow cases (> 1 s): ${slow.map((r) => `${r.case.id} ${r.ms.toFixed(0)} ms`).join(', ')}`);
  }
  return out.join('\n');
}

/** One-line JSON summary. */
export function summaryJson(result: SuiteResult, file: string): string {
  const perCategory: Record<string, { n: number; agree: number; agreement: number; fn: number; fp: number }> = {};
  for (const [cat, s] of result.perCategory) {
    if (s.n === 0) continue;
    perCategory[cat] = { n: s.n, agree: s.agree, agreement: s.agree / s.n, fn: s.fn, fp: s.fp };
  }
  return JSON.stringify({
    cases: file,
    total: result.total,
    agree: result.agree,
    agreement: result.agreement,
    tp: result.tp,
    fn: result.fn,
    fp: result.fp,
    tn: result.tn,
    errors: result.errors,
    wallMs: Math.round(result.wallMs),
    maxCaseMs: Math.round(result.maxCaseMs),
    perCategory,
    disagreements: result.disagreements.map((r) => ({
      id: r.case.id,
      expected: r.case.expected,
      got: r.correct,
      gold: r.case.gold,
      extracted: r.extracted,
      reason: r.reason,
    })),
  });
}

function usage(): string {
  return 'usage: node dist/bench/verify-suite.js [--cases FILE] [--json]';
}

async function main(argv: string[]): Promise<number> {
  let file = defaultCasesPath();
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--cases') {
      const v = argv[++i];
      if (v === undefined) {
        console.error(`--cases needs a file\n${usage()}`);
        return 2;
      }
      file = resolve(v);
    } else if (a.startsWith('--cases=')) file = resolve(a.slice('--cases='.length));
    else if (a === '-h' || a === '--help') {
      console.log(usage());
      return 0;
    } else {
      console.error(`unknown argument ${a}\n${usage()}`);
      return 2;
    }
  }
  let cases: VerifierCase[];
  let verify: VerifyFn;
  try {
    cases = loadCases(file);
    verify = await loadVerifier();
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const result = await runSuite(cases, verify);
  console.log(json ? summaryJson(result, file) : formatReport(result, file));
  return 0;
}

const invokedDirectly =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      // Exit explicitly: a verifier worker pool must not keep the process alive after the report.
      process.exit(code);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
