// How a policy's chain-task answers go wrong (src/task/chains.ts): of the wrong samples, the share whose first wrong
// line is the systematic sign drop, another wrong line, or no wrong line at all (e.g. a cut-off answer); and per line,
// the sign-drop rate on subtractions that cross below zero and the accuracy of every other line. Reads the samples of
// `oreal eval` (DIR/samples.jsonl) on a chain eval file; make-starting-policy.ts reports the same for its own samples.
//
// Usage: node dist/scripts/chain-errors.js --data data/chain-heldout.jsonl --samples DIR/samples.jsonl [--json]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { readJsonlObjects } from '../src/eval/data.js';
import { chainResponseStats, parseChainQuestion, type ChainProblem } from '../src/task/chains.js';

export interface ChainSample {
  problem: ChainProblem;
  response: string;
  correct: boolean;
}

/** The error breakdown of a set of samples (see the file header); shares rounded to 3 decimals. */
export function chainErrorReport(samples: readonly ChainSample[]): Record<string, number> {
  let wrong = 0;
  const first = { none: 0, 'sign-drop': 0, other: 0 };
  let crossing = 0;
  let drops = 0;
  let other = 0;
  let otherRight = 0;
  for (const s of samples) {
    const st = chainResponseStats(s.problem, s.response);
    crossing += st.crossingLines;
    drops += st.signDrops;
    other += st.otherLines;
    otherRight += st.otherRight;
    if (s.correct) continue;
    wrong++;
    first[st.firstError]++;
  }
  const frac = (a: number, b: number): number => (b === 0 ? 0 : Math.round((1000 * a) / b) / 1000);
  return {
    samples: samples.length,
    correct: frac(samples.length - wrong, samples.length),
    wrong_samples: wrong,
    wrong_first_error_sign_drop: frac(first['sign-drop'], wrong),
    wrong_first_error_other_line: frac(first.other, wrong),
    wrong_no_wrong_line: frac(first.none, wrong),
    crossing_lines: crossing,
    crossing_sign_drop_rate: frac(drops, crossing),
    other_lines: other,
    other_line_accuracy: frac(otherRight, other),
  };
}

/** Joins `oreal eval` sample records to their chain problems by id. */
export function readEvalSamples(dataFile: string, samplesFile: string): ChainSample[] {
  const byId = new Map<string, ChainProblem>();
  for (const { line, rec } of readJsonlObjects(dataFile)) {
    const p = typeof rec['question'] === 'string' ? parseChainQuestion(rec['question']) : null;
    if (p === null) throw new Error(`${dataFile}:${line}:question: not a chain question`);
    byId.set(typeof rec['id'] === 'string' ? rec['id'] : p.id, p);
  }
  const out: ChainSample[] = [];
  for (const { line, rec } of readJsonlObjects(samplesFile)) {
    if (rec['sample'] === 'greedy') continue;
    const p = byId.get(String(rec['id']));
    if (p === undefined) throw new Error(`${samplesFile}:${line}:id: ${JSON.stringify(rec['id'])} is not in ${dataFile}`);
    if (typeof rec['response'] !== 'string' || typeof rec['correct'] !== 'boolean')
      throw new Error(`${samplesFile}:${line}: expected "response" (string) and "correct" (boolean)`);
    out.push({ problem: p, response: rec['response'], correct: rec['correct'] });
  }
  return out;
}

function main(): void {
  const argv = process.argv.slice(2);
  const arg = (k: string): string => {
    const i = argv.indexOf(k);
    if (i < 0 || argv[i + 1] === undefined) throw new Error(`usage: chain-errors.js --data FILE --samples DIR/samples.jsonl [--json] (missing ${k})`);
    return argv[i + 1]!;
  };
  const data = arg('--data');
  let samples = arg('--samples');
  if (fs.existsSync(samples) && fs.statSync(samples).isDirectory()) samples = path.join(samples, 'samples.jsonl');
  const r = chainErrorReport(readEvalSamples(data, samples));
  if (argv.includes('--json')) console.log(JSON.stringify(r));
  else for (const [k, v] of Object.entries(r)) console.log(`${k.padEnd(30)} ${v}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
