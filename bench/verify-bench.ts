// Verifier benchmark: latency and throughput of verification, in-thread and through VerifierPool, on MATH-500 gold
// answers checked against themselves (as `\boxed{gold}` responses) and against perturbed golds that must be judged
// incorrect.
//
//   node dist/bench/verify-bench.js [--json] [--threads N]
//
// Data: MATH-500 from $OREAL_DATA_DIR, else ../shared/data next to the repository (fails loudly if missing).

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { VerifierPool, verifyResponse } from '../src/verify/index.js';
import type { Verdict } from '../src/verify/types.js';

/** Directory of the shared benchmark data. */
function dataDir(): string {
  const env = process.env.OREAL_DATA_DIR;
  if (env !== undefined && env !== '') return resolve(env);
  // dist/bench/verify-bench.js → repository root is two levels up.
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return resolve(root, '..', 'shared', 'data');
}

function loadMath500(): string[] {
  const file = resolve(dataDir(), 'math500_test.jsonl');
  if (!existsSync(file)) {
    throw new Error(`verify-bench: data file missing: ${file} (set OREAL_DATA_DIR to the directory holding it)`);
  }
  const golds: string[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const rec = JSON.parse(line) as { answer?: unknown };
      if (typeof rec.answer !== 'string') throw new Error(`verify-bench: ${file}:${i + 1}: field "answer" is not a string`);
      golds.push(rec.answer);
    });
  if (golds.length === 0) throw new Error(`verify-bench: ${file} holds no records`);
  return golds;
}

// ---------------------------------------------------------------------------------------------------------------
// Perturbations: each returns a different answer that must not be judged equal to the gold, or null when it does
// not apply to this gold.

type Perturbation = (gold: string) => string | null;

/** Change the last digit d of the value to (d+1) mod 10. Digits from the first `\text`/`\mbox`/`\mathrm` on are
 * left alone: they are units (`\mbox{ cm}^2`), which the verifier ignores by design. */
const changeDigit: Perturbation = (gold) => {
  const unit = gold.search(/\\(?:text|mbox|mathrm|textbf)\b/);
  for (let i = (unit < 0 ? gold.length : unit) - 1; i >= 0; i--) {
    const c = gold.charCodeAt(i);
    if (c >= 48 && c <= 57) return gold.slice(0, i) + String((c - 48 + 1) % 10) + gold.slice(i + 1);
  }
  return null;
};

/** Negate a scalar answer: drop a leading minus, or prepend one (only for golds with a non-zero digit that are not
 * lists, relations or text, so the negation is a different value). */
const flipSign: Perturbation = (gold) => {
  const g = gold.trim();
  if (g.startsWith('-')) return g.slice(1);
  if (!/[1-9]/.test(g)) return null;
  if (topLevelParts(g).length > 1) return null;
  if (/[=<>]|\\(?:le|ge|leq|geq|neq|ne|text|mathrm|textbf|in)\b|\\pm|\\infty/.test(g)) return null;
  if (/^[([]|^\\left|^\\\{/.test(g)) return null; // tuples, intervals, sets
  return `-${g}`;
};

/** Drop the last element of a tuple, list, set or interval (with or without outer brackets). */
const dropElement: Perturbation = (gold) => {
  const g = gold.trim();
  const m = /^(\\left\s*)?(\(|\[|\\\{)([\s\S]*?)(\\right\s*)?(\)|\]|\\\})$/.exec(g);
  if (m !== null) {
    const parts = topLevelParts(m[3] ?? '');
    if (parts.length < 2) return null;
    return `${m[1] ?? ''}${m[2]}${parts.slice(0, -1).join(',')}${m[4] ?? ''}${m[5]}`;
  }
  const parts = topLevelParts(g);
  if (parts.length < 2) return null;
  return parts.slice(0, -1).join(',');
};

/** Split at commas outside any (), [], {} nesting. */
function topLevelParts(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

const PERTURBATIONS: ReadonlyArray<readonly [string, Perturbation]> = [
  ['change-digit', changeDigit],
  ['flip-sign', flipSign],
  ['drop-element', dropElement],
];

interface Case {
  kind: string;
  gold: string;
  answer: string;
  response: string;
  expect: boolean;
}

function buildCases(golds: string[]): Case[] {
  const cases: Case[] = [];
  const wrap = (a: string): string => `Putting everything together, the final answer is $\\boxed{${a}}$.`;
  for (const gold of golds) cases.push({ kind: 'self', gold, answer: gold, response: wrap(gold), expect: true });
  for (const [kind, perturb] of PERTURBATIONS) {
    for (const gold of golds) {
      const answer = perturb(gold);
      if (answer === null || answer.trim() === gold.trim()) continue;
      cases.push({ kind, gold, answer, response: wrap(answer), expect: false });
    }
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------------------

function quantile(sortedMs: number[], q: number): number {
  if (sortedMs.length === 0) return NaN;
  const i = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil(q * sortedMs.length) - 1));
  return sortedMs[i] as number;
}

interface Timing {
  n: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  throughputPerS: number;
}

function summarize(latencies: number[], wallMs: number): Timing {
  const s = [...latencies].sort((a, b) => a - b);
  return {
    n: s.length,
    medianMs: quantile(s, 0.5),
    p99Ms: quantile(s, 0.99),
    maxMs: s[s.length - 1] ?? NaN,
    throughputPerS: s.length / (wallMs / 1000),
  };
}

interface Outcome {
  kind: string;
  total: number;
  judgedCorrect: number;
  wrongVerdicts: Array<{ gold: string; answer: string; correct: boolean; reason: string }>;
}

function tally(cases: Case[], verdicts: Verdict[]): Outcome[] {
  const by = new Map<string, Outcome>();
  cases.forEach((c, i) => {
    const v = verdicts[i] as Verdict;
    let o = by.get(c.kind);
    if (o === undefined) {
      o = { kind: c.kind, total: 0, judgedCorrect: 0, wrongVerdicts: [] };
      by.set(c.kind, o);
    }
    o.total++;
    if (v.correct) o.judgedCorrect++;
    if (v.correct !== c.expect) o.wrongVerdicts.push({ gold: c.gold, answer: c.answer, correct: v.correct, reason: v.reason });
  });
  return [...by.values()];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? Number(args[ti + 1]) : Math.max(1, Math.min(2, availableParallelism()));
  if (!Number.isInteger(threads) || threads < 1) throw new Error('verify-bench: --threads needs a positive integer');

  const golds = loadMath500();
  const cases = buildCases(golds);

  // In-thread: a warm-up pass (JIT), then a timed pass.
  for (const c of cases.slice(0, 100)) verifyResponse(c.response, c.gold);
  const inLat: number[] = [];
  const inVerdicts: Verdict[] = [];
  const inStart = performance.now();
  for (const c of cases) {
    const t = performance.now();
    inVerdicts.push(verifyResponse(c.response, c.gold));
    inLat.push(performance.now() - t);
  }
  const inThread = summarize(inLat, performance.now() - inStart);

  // Pool, cache off: sequential calls for latency (includes both worker round trips), then all at once for
  // throughput (latency there includes the time spent queued behind the other calls).
  const pool = new VerifierPool({ threads, cacheSize: 0 });
  for (const c of cases.slice(0, 100)) await pool.verify(c.response, c.gold);
  const seqLat: number[] = [];
  const seqStart = performance.now();
  for (const c of cases) {
    const t = performance.now();
    await pool.verify(c.response, c.gold);
    seqLat.push(performance.now() - t);
  }
  const poolSequential = summarize(seqLat, performance.now() - seqStart);
  const parLat: number[] = [];
  const parStart = performance.now();
  const poolVerdicts = await Promise.all(
    cases.map(async (c) => {
      const t = performance.now();
      const v = await pool.verify(c.response, c.gold);
      parLat.push(performance.now() - t);
      return v;
    }),
  );
  const poolConcurrent = summarize(parLat, performance.now() - parStart);
  const poolStats = pool.stats();
  await pool.close();

  // Pool with the cache: second pass over the same pairs.
  const cached = new VerifierPool({ threads });
  await Promise.all(cases.map((c) => cached.verify(c.response, c.gold)));
  const cacheLat: number[] = [];
  const cacheStart = performance.now();
  await Promise.all(
    cases.map(async (c) => {
      const t = performance.now();
      await cached.verify(c.response, c.gold);
      cacheLat.push(performance.now() - t);
    }),
  );
  const poolCached = summarize(cacheLat, performance.now() - cacheStart);
  const cachedStats = cached.stats();
  await cached.close();

  const outcomes = tally(cases, inVerdicts);
  const mismatches = cases.filter((_, i) => (inVerdicts[i] as Verdict).correct !== (poolVerdicts[i] as Verdict).correct).length;

  const report = {
    data: { golds: golds.length, cases: cases.length },
    threads,
    inThread,
    poolSequential,
    poolConcurrent,
    poolCachedSecondPass: { ...poolCached, cacheHits: cachedStats.cacheHits },
    poolTimeouts: poolStats.timeouts + cachedStats.timeouts,
    poolCrashes: poolStats.crashes + cachedStats.crashes,
    poolVsInThreadMismatches: mismatches,
    outcomes: outcomes.map((o) => ({
      kind: o.kind,
      total: o.total,
      judgedCorrect: o.judgedCorrect,
      wrong: o.wrongVerdicts.length,
      examples: o.wrongVerdicts.slice(0, 10),
    })),
  };

  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const f = (x: number): string => x.toFixed(3);
  const row = (name: string, t: Timing): string =>
    `${name.padEnd(26)} n=${String(t.n).padStart(5)}  median ${f(t.medianMs)} ms  p99 ${f(t.p99Ms)} ms  max ${f(t.maxMs)} ms  ${t.throughputPerS.toFixed(0)}/s`;
  const lines = [
    `MATH-500: ${golds.length} golds, ${cases.length} cases; pool threads=${threads}`,
    row('in-thread', inThread),
    row('pool, sequential, no cache', poolSequential),
    row('pool, all queued, no cache', poolConcurrent),
    row('pool, all queued, cached', poolCached),
    '(latency of "all queued" rows includes queueing behind the other calls; throughput is what matters there)',
    `pool timeouts=${report.poolTimeouts} crashes=${report.poolCrashes} pool/in-thread verdict mismatches=${mismatches}`,
    '',
    'kind           cases  judged correct  wrong verdicts',
    ...outcomes.map(
      (o) =>
        `${o.kind.padEnd(14)} ${String(o.total).padStart(5)}  ${String(o.judgedCorrect).padStart(14)}  ${String(o.wrongVerdicts.length).padStart(14)}`,
    ),
  ];
  for (const o of outcomes) {
    for (const w of o.wrongVerdicts.slice(0, 10)) {
      lines.push(`  [${o.kind}] gold ${JSON.stringify(w.gold)} answer ${JSON.stringify(w.answer)} → ${w.correct ? 'correct' : 'incorrect'} (${w.reason})`);
    }
    if (o.wrongVerdicts.length > 10) lines.push(`  [${o.kind}] … ${o.wrongVerdicts.length - 10} more (use --json for 10 per kind)`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
