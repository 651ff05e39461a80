// Runs the `oreal eval --responses` scorer on the two graded files of ../shared/data and compares its per-sample
// verdicts with their (automatic) labels:
//   - qwen25math_math_cot_100.jsonl: 100 MATH problems × 8 Qwen2.5-Math responses; gold = `answer` (raw MATH gold),
//     responses = `response`, labels = `score` (Qwen's math_equal);
//   - gsm8k_example_model_solutions.jsonl: 1,319 GSM8K problems × 4 solutions (`6b_finetuning`, `6b_verification`,
//     `175b_finetuning`, `175b_verification`, in that order); gold = the text after the last `A:` line of
//     `ground_truth`; labels = `is_correct`.
// Each file is converted into the `--responses` format ({"id", "gold", "responses", "level"?}) in a temp dir, scored
// with `--out` so the per-sample verdicts land in samples.jsonl, and compared. Both label sets contain known errors
// (see shared/data/README.md): this measures agreement, not accuracy.
//
//   node dist/scripts/graded-eval.js [--json] [--max-list N] [--keep]
//
// Data: $OREAL_DATA_DIR, else ../shared/data next to the repository; a missing file is a fatal error.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonlObjects } from '../src/eval/data.js';
import { runEvalCli } from '../src/cli/eval.js';
import type { SampleRecord } from '../src/eval/evaluate.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function dataFile(name: string): string {
  const env = process.env.OREAL_DATA_DIR;
  const dir = env !== undefined && env !== '' ? resolve(env) : resolve(repoRoot, '..', 'shared', 'data');
  const f = join(dir, name);
  if (!existsSync(f)) throw new Error(`graded-eval: data file missing: ${f} (set OREAL_DATA_DIR to the directory holding it)`);
  return f;
}

interface Converted {
  source: string;
  /** --responses lines. */
  lines: Array<{ id: string; gold: string; responses: string[]; level?: string }>;
  /** labels[id][sample] */
  labels: Map<string, boolean[]>;
  /** Sample names for the listing (GSM8K: the solution's key). */
  sampleNames: (i: number) => string;
  ks: number[];
}

function bad(file: string, line: number, field: string, what: string): never {
  throw new Error(`graded-eval: ${file}:${line}:${field}: ${what}`);
}

function convertQwen(): Converted {
  const file = dataFile('qwen25math_math_cot_100.jsonl');
  const out: Converted = { source: 'qwen25math_math_cot_100', lines: [], labels: new Map(), sampleNames: (i) => String(i), ks: [1, 4, 8] };
  for (const { line, rec } of readJsonlObjects(file)) {
    const id = `L${line}`;
    const { answer, response, score, level } = rec;
    if (typeof answer !== 'string') bad(file, line, 'answer', 'not a string');
    if (!Array.isArray(response) || !response.every((r): r is string => typeof r === 'string')) bad(file, line, 'response', 'not an array of strings');
    if (!Array.isArray(score) || score.length !== response.length || !score.every((s): s is boolean => typeof s === 'boolean')) {
      bad(file, line, 'score', 'not an array of booleans as long as "response"');
    }
    const l: Converted['lines'][number] = { id, gold: answer, responses: response };
    if (typeof level === 'number' || typeof level === 'string') l.level = String(level);
    out.lines.push(l);
    out.labels.set(id, score);
  }
  return out;
}

const GSM_KEYS = ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification'] as const;

function convertGsm(): Converted {
  const file = dataFile('gsm8k_example_model_solutions.jsonl');
  const out: Converted = { source: 'gsm8k_example_model_solutions', lines: [], labels: new Map(), sampleNames: (i) => GSM_KEYS[i] ?? String(i), ks: [1, 2, 4] };
  for (const { line, rec } of readJsonlObjects(file)) {
    const id = `L${line}`;
    const gt = rec.ground_truth;
    if (typeof gt !== 'string') bad(file, line, 'ground_truth', 'not a string');
    const finals = gt.split('\n').filter((l) => /^\s*A:/.test(l));
    const last = finals[finals.length - 1];
    if (last === undefined) bad(file, line, 'ground_truth', 'no final "A: <answer>" line');
    const gold = last.replace(/^\s*A:\s*/, '').trim();
    if (gold === '') bad(file, line, 'ground_truth', 'empty final answer');
    const responses: string[] = [];
    const labels: boolean[] = [];
    for (const key of GSM_KEYS) {
      const s = rec[key];
      if (typeof s !== 'object' || s === null || Array.isArray(s)) bad(file, line, key, 'missing');
      const { is_correct: label, solution } = s as Record<string, unknown>;
      if (typeof label !== 'boolean' || typeof solution !== 'string') bad(file, line, key, 'lacks is_correct/solution');
      responses.push(solution);
      labels.push(label);
    }
    out.lines.push({ id, gold, responses });
    out.labels.set(id, labels);
  }
  return out;
}

interface Disagreement {
  id: string;
  sample: string;
  gold: string;
  extracted: string | null;
  label: boolean;
  verdict: boolean;
  reason: string;
}

interface Agreement {
  source: string;
  samples: number;
  agree: number;
  agreement: number;
  /** label true, scorer true / label false, scorer true / label true, scorer false / both false */
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  metrics: Record<string, unknown>;
  disagreements: Disagreement[];
}

async function score(c: Converted, tmp: string): Promise<Agreement> {
  const input = join(tmp, `${c.source}.responses.jsonl`);
  writeFileSync(input, c.lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  const outDir = join(tmp, c.source);
  // The scorer prints its summary (JSON, last line) to stdout; capture it rather than mixing it into this report.
  const write = process.stdout.write.bind(process.stdout);
  let captured = '';
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  try {
    await runEvalCli(['--responses', input, '--k', c.ks.join(','), '--out', outDir, '--json']);
  } finally {
    process.stdout.write = write;
  }
  if (process.exitCode !== undefined && process.exitCode !== 0) throw new Error(`graded-eval: the scorer failed on ${input}`);
  const lines = captured.trim().split('\n');
  const metrics = JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
  const recs = readFileSync(join(outDir, 'samples.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SampleRecord);
  const a: Agreement = { source: c.source, samples: 0, agree: 0, agreement: 0, tp: 0, fp: 0, fn: 0, tn: 0, metrics, disagreements: [] };
  for (const r of recs) {
    if (r.sample === 'greedy') continue;
    const label = c.labels.get(r.id)?.[r.sample];
    if (label === undefined) throw new Error(`graded-eval: no label for ${r.id} sample ${r.sample}`);
    a.samples++;
    if (label && r.correct) a.tp++;
    else if (!label && r.correct) a.fp++;
    else if (label && !r.correct) a.fn++;
    else a.tn++;
    if (label === r.correct) a.agree++;
    else a.disagreements.push({ id: r.id, sample: c.sampleNames(r.sample), gold: r.gold, extracted: r.extracted, label, verdict: r.correct, reason: r.reason });
  }
  const expected = [...c.labels.values()].reduce((s, l) => s + l.length, 0);
  if (a.samples !== expected) throw new Error(`graded-eval: ${c.source}: scored ${a.samples} samples, expected ${expected}`);
  a.agreement = a.agree / a.samples;
  return a;
}

function clip(s: string | null, n = 60): string {
  if (s === null) return '(none)';
  const one = s.replace(/\s+/g, ' ');
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const keep = args.includes('--keep');
  const mi = args.indexOf('--max-list');
  const maxList = mi >= 0 ? Number(args[mi + 1]) : Infinity;
  if (mi >= 0 && !(maxList >= 0)) throw new Error('graded-eval: --max-list needs a non-negative number');
  const tmp = mkdtempSync(join(tmpdir(), 'oreal-graded-eval-'));
  try {
    const results: Agreement[] = [];
    for (const c of [convertQwen(), convertGsm()]) results.push(await score(c, tmp));
    if (json) {
      process.stdout.write(`${JSON.stringify(results)}\n`);
      return;
    }
    for (const a of results) {
      const m = a.metrics as { n: number; pass_at_k: Record<string, number>; maj_at_k: Record<string, number> };
      process.stdout.write(
        `\n== ${a.source}: ${m.n} problems, ${a.samples} samples\n` +
          `agreement with labels: ${a.agree}/${a.samples} = ${(100 * a.agreement).toFixed(2)} %` +
          `  (both correct ${a.tp}, both wrong ${a.tn}, scorer-only correct ${a.fp}, label-only correct ${a.fn})\n` +
          `scorer metrics: ${Object.entries(m.pass_at_k).map(([k, v]) => `pass@${k} ${v.toFixed(4)}`).join('  ')}  ` +
          `${Object.entries(m.maj_at_k).map(([k, v]) => `maj@${k} ${v.toFixed(4)}`).join('  ')}\n`,
      );
      const shown = a.disagreements.slice(0, maxList);
      if (shown.length > 0) process.stdout.write(`disagreements (${a.disagreements.length}${shown.length < a.disagreements.length ? `, first ${shown.length}` : ''}):\n`);
      for (const d of shown) {
        process.stdout.write(
          `  ${d.id} #${d.sample}: label ${d.label ? 'correct' : 'wrong'}, scorer ${d.verdict ? 'correct' : 'wrong'}; ` +
            `gold ${clip(d.gold, 40)} | extracted ${clip(d.extracted, 40)} | ${clip(d.reason, 70)}\n`,
        );
      }
    }
    if (keep) process.stdout.write(`\nfiles kept in ${tmp}\n`);
  } finally {
    if (!keep) rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
