// Agreement of the rule verifier (verifyResponse, run through VerifierPool for its time bound) with two sets of
// automatically graded model solutions:
//   - qwen25math_math_cot_100.jsonl: 100 MATH problems × 8 Qwen2.5-Math responses, labels from Qwen's math_equal
//     (`answer` = raw MATH gold, `response` = 8 texts, `score` = 8 booleans);
//   - gsm8k_example_model_solutions.jsonl: 1,319 GSM8K problems × 4 solutions (`6b_finetuning` …), labels
//     `is_correct` from OpenAI's final-answer grading; gold = the text after the final `A:` of `ground_truth`;
//     the solutions are scored as written (they end with a line `A: <number>`).
// Both label sets are automatic and contain known errors (see shared/data/README.md), so this measures agreement,
// not accuracy. Disagreements go to a JSONL file for inspection.
//
//   node dist/scripts/graded-agreement.js [--json] [--out FILE] [--in-thread]
//
// Data: $OREAL_DATA_DIR, else ../shared/data next to the repository. A missing file is a fatal error.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { VerifierPool, verifyResponse } from '../src/verify/index.js';
import type { Verdict } from '../src/verify/types.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function dataDir(): string {
  const env = process.env.OREAL_DATA_DIR;
  if (env !== undefined && env !== '') return resolve(env);
  return resolve(repoRoot, '..', 'shared', 'data');
}

function readJsonl(name: string): Array<{ line: number; rec: Record<string, unknown> }> {
  const file = resolve(dataDir(), name);
  if (!existsSync(file)) throw new Error(`graded-agreement: data file missing: ${file} (set OREAL_DATA_DIR to the directory holding it)`);
  const out: Array<{ line: number; rec: Record<string, unknown> }> = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (text.trim() === '') return;
      const rec: unknown = JSON.parse(text);
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error(`graded-agreement: ${file}:${i + 1}: not an object`);
      out.push({ line: i + 1, rec: rec as Record<string, unknown> });
    });
  if (out.length === 0) throw new Error(`graded-agreement: ${file} holds no records`);
  return out;
}

interface Item {
  source: string;
  line: number;
  sample: string;
  gold: string;
  response: string;
  label: boolean;
}

function bad(name: string, line: number, what: string): never {
  throw new Error(`graded-agreement: ${name}:${line}: ${what}`);
}

function qwenItems(): Item[] {
  const name = 'qwen25math_math_cot_100.jsonl';
  const items: Item[] = [];
  for (const { line, rec } of readJsonl(name)) {
    const gold = rec.answer;
    const responses = rec.response;
    const scores = rec.score;
    if (typeof gold !== 'string') bad(name, line, 'field "answer" is not a string');
    if (!Array.isArray(responses) || !Array.isArray(scores) || responses.length !== scores.length) {
      bad(name, line, 'fields "response" and "score" must be arrays of equal length');
    }
    responses.forEach((r: unknown, k: number) => {
      const s: unknown = scores[k];
      if (typeof r !== 'string' || typeof s !== 'boolean') bad(name, line, `sample ${k}: response/score of the wrong type`);
      items.push({ source: 'qwen-math-cot', line, sample: String(k), gold, response: r, label: s });
    });
  }
  return items;
}

const GSM_SAMPLES = ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification'] as const;
const FINAL_A = /(?:^|\n)A:\s*([^\n]*?)\s*$/;

function gsmItems(): Item[] {
  const name = 'gsm8k_example_model_solutions.jsonl';
  const items: Item[] = [];
  for (const { line, rec } of readJsonl(name)) {
    const gt = rec.ground_truth;
    if (typeof gt !== 'string') bad(name, line, 'field "ground_truth" is not a string');
    const m = FINAL_A.exec(gt.trimEnd());
    if (m === null || m[1] === undefined || m[1] === '') bad(name, line, 'field "ground_truth" does not end with "A: <answer>"');
    const gold = m[1];
    for (const key of GSM_SAMPLES) {
      const sol = rec[key];
      if (typeof sol !== 'object' || sol === null) bad(name, line, `field "${key}" missing`);
      const { is_correct: label, solution } = sol as Record<string, unknown>;
      if (typeof label !== 'boolean' || typeof solution !== 'string') bad(name, line, `field "${key}" lacks is_correct/solution`);
      items.push({ source: 'gsm8k', line, sample: key, gold, response: solution, label });
    }
  }
  return items;
}

interface Agreement {
  source: string;
  n: number;
  agree: number;
  agreementPct: number;
  /** label true, verifier true */
  tp: number;
  /** label false, verifier true */
  fp: number;
  /** label true, verifier false */
  fn: number;
  /** label false, verifier false */
  tn: number;
  noAnswer: number;
  timeouts: number;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const inThread = args.includes('--in-thread');
  const oi = args.indexOf('--out');
  const outFile = oi >= 0 && args[oi + 1] !== undefined ? resolve(args[oi + 1] as string) : resolve(repoRoot, 'runs', 'graded-agreement-disagreements.jsonl');

  const items = [...qwenItems(), ...gsmItems()];
  const t0 = performance.now();
  let verdicts: Verdict[];
  if (inThread) {
    verdicts = items.map((it) => verifyResponse(it.response, it.gold));
  } else {
    const pool = new VerifierPool();
    try {
      verdicts = await Promise.all(items.map((it) => pool.verify(it.response, it.gold)));
    } finally {
      await pool.close();
    }
  }
  const wallS = (performance.now() - t0) / 1000;

  const bySource = new Map<string, Agreement>();
  const disagreements: string[] = [];
  items.forEach((it, i) => {
    const v = verdicts[i] as Verdict;
    let a = bySource.get(it.source);
    if (a === undefined) {
      a = { source: it.source, n: 0, agree: 0, agreementPct: 0, tp: 0, fp: 0, fn: 0, tn: 0, noAnswer: 0, timeouts: 0 };
      bySource.set(it.source, a);
    }
    a.n++;
    if (v.extracted === null) a.noAnswer++;
    if (/timeout after \d+ ms/.test(v.reason)) a.timeouts++;
    if (it.label && v.correct) a.tp++;
    else if (!it.label && v.correct) a.fp++;
    else if (it.label && !v.correct) a.fn++;
    else a.tn++;
    if (v.correct === it.label) a.agree++;
    else {
      disagreements.push(
        JSON.stringify({
          source: it.source,
          line: it.line,
          sample: it.sample,
          gold: it.gold,
          label: it.label,
          verdict: v.correct,
          extracted: v.extracted,
          reason: v.reason,
          responseTail: it.response.slice(-300),
        }),
      );
    }
  });
  const results = [...bySource.values()].map((a) => ({ ...a, agreementPct: (100 * a.agree) / a.n }));
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, disagreements.length > 0 ? `${disagreements.join('\n')}\n` : '');

  if (json) {
    process.stdout.write(`${JSON.stringify({ results, disagreements: disagreements.length, disagreementsFile: outFile, wallS }, null, 2)}\n`);
    return;
  }
  const lines = [
    'source           n      agree    agreement   TP     FP     FN     TN     no-answer timeouts',
    ...results.map(
      (r) =>
        `${r.source.padEnd(16)} ${String(r.n).padStart(5)}  ${String(r.agree).padStart(6)}  ${r.agreementPct.toFixed(2).padStart(8)} %  ` +
        `${[r.tp, r.fp, r.fn, r.tn].map((x) => String(x).padStart(5)).join('  ')}  ${String(r.noAnswer).padStart(9)} ${String(r.timeouts).padStart(8)}`,
    ),
    '(TP/FP/FN/TN: verifier verdict vs. the file\'s automatic label; FP = verifier says correct, label says wrong)',
    `${disagreements.length} disagreements written to ${outFile}; ${items.length} verifications in ${wallS.toFixed(2)} s`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
