// What the main job's policy learns, read from a run's saved rollouts: the share of answer-only responses (a bare
// `\boxed{...}` with no working; half the starting policy's SFT data is written that way) and the accuracy of each
// style, step by step. Reads RUN_DIR/trajectories/step-N.jsonl (save_trajectories: true).
//
// Usage: node dist/scripts/answer-style.js RUN_DIR [--steps 1,10,50,100,200] [--json]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isAnswerOnlyResponse } from '../src/task/answer-style.js';

export interface StyleRow {
  step: number;
  rollouts: number;
  /** Fraction of rollouts that are answer-only. */
  answer_only: number;
  /** Fraction correct among answer-only rollouts (null when there are none). */
  answer_only_acc: number | null;
  /** Fraction correct among rollouts that show working. */
  worked_acc: number | null;
  acc: number;
}

export function styleOfStep(file: string, step: number): StyleRow {
  const rows = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      const r = JSON.parse(l) as { text?: unknown; reward?: unknown };
      if (typeof r.text !== 'string' || typeof r.reward !== 'number')
        throw new Error(`${file}:${i + 1}: expected "text" (string) and "reward" (number)`);
      return { bare: isAnswerOnlyResponse(r.text), ok: r.reward > 0 };
    });
  const acc = (xs: typeof rows): number | null => (xs.length === 0 ? null : xs.filter((x) => x.ok).length / xs.length);
  const bare = rows.filter((r) => r.bare);
  const worked = rows.filter((r) => !r.bare);
  return {
    step,
    rollouts: rows.length,
    answer_only: rows.length === 0 ? 0 : bare.length / rows.length,
    answer_only_acc: acc(bare),
    worked_acc: acc(worked),
    acc: acc(rows) ?? 0,
  };
}

function main(): void {
  const argv = process.argv.slice(2);
  const runDir = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--steps');
  if (runDir === undefined) throw new Error('usage: answer-style.js RUN_DIR [--steps 1,10,50] [--json]');
  const dir = path.join(runDir, 'trajectories');
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no saved trajectories (the run needs save_trajectories: true)`);
  const available = fs
    .readdirSync(dir)
    .map((f) => /^step-(\d+)\.jsonl$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  const si = argv.indexOf('--steps');
  const wanted = si >= 0 ? (argv[si + 1] ?? '').split(',').map(Number) : [1, 10, 25, 50, 100, 150, 200];
  const steps = available.filter((s) => wanted.includes(s));
  const rows = steps.map((s) => styleOfStep(path.join(dir, `step-${s}.jsonl`), s));
  if (argv.includes('--json')) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const pct = (x: number | null): string => (x === null ? '   -' : `${(100 * x).toFixed(0).padStart(3)}%`);
  console.log('step  rollouts  answer-only  (correct)  worked correct  all correct');
  for (const r of rows)
    console.log(
      `${String(r.step).padStart(4)}  ${String(r.rollouts).padStart(8)}  ${pct(r.answer_only).padStart(11)}  ` +
        `${pct(r.answer_only_acc).padStart(9)}  ${pct(r.worked_acc).padStart(14)}  ${pct(r.acc).padStart(11)}`,
    );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
