// Writes the main job's RL prompt file (OREAL-RL-Prompts format: {question, gold_answer, pass_rate}) for a given
// policy: train-split problems that the SFT data does not contain, each with its pass rate over k samples of the
// policy at temperature 1. make-starting-policy.ts writes the same file right after training; this script rebuilds it
// alone (another size, another policy) without retraining.
//
// Usage: node dist/scripts/make-rl-prompts.js [--model models/arith-sft] [--n 4096] [--k 4] [--out FILE]
//        [--skip 12000] [--shard I/N]
// --skip: how many problems of the train stream the SFT data took (they are never RL prompts).
// --shard I/N: measure only every N-th prompt starting at I (for running shards in parallel; concatenate in order
// with --merge FILES... --out FILE).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createBackend } from '../src/engine/index.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { writeFileAtomic } from '../src/util/atomic-write.js';
import { makeSplit } from '../src/task/arith.js';
import { passAtOne, type EvalProblem } from '../src/eval/quick-eval.js';
import { TASK_MIX } from './task-mix.js';

interface Args {
  model: string;
  n: number;
  k: number;
  skip: number;
  out: string;
  shard: [number, number];
  merge: string[];
  threads: number | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    model: 'models/arith-sft',
    n: 4096,
    k: 4,
    skip: 12000,
    out: 'data/arith-rl-prompts.jsonl',
    shard: [0, 1],
    merge: [],
    threads: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const int = (s: string): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${k}: expected a non-negative integer, got ${s}`);
      return n;
    };
    if (k === '--model') a.model = v();
    else if (k === '--n') a.n = int(v());
    else if (k === '--k') a.k = int(v());
    else if (k === '--skip') a.skip = int(v());
    else if (k === '--out') a.out = v();
    else if (k === '--threads') a.threads = int(v());
    else if (k === '--shard') {
      const m = /^(\d+)\/(\d+)$/.exec(v());
      if (!m || Number(m[1]) >= Number(m[2])) throw new Error('--shard: expected I/N with 0 <= I < N');
      a.shard = [Number(m[1]), Number(m[2])];
    } else if (k === '--merge') {
      while (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) a.merge.push(argv[++i]!);
    } else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

/** Writes rows as JSONL atomically (a temporary file renamed into place), creating the folder. */
export function writeJsonl(file: string, rows: readonly unknown[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/**
 * Measures each problem's pass rate over `k` samples of the policy at temperature 1 (up to `maxNewTokens`, default
 * 64, the main job's) and writes the RL prompt file
 * ({question, gold_answer, pass_rate}). Returns the mean pass rate.
 */
export async function writeRlPromptFile(
  model: Qwen2Model,
  tok: Tokenizer,
  problems: readonly EvalProblem[],
  opts: { k: number; seed: number; file: string; maxNewTokens?: number },
): Promise<number> {
  const r = await passAtOne(model, tok, problems, { temperature: 1, samples: opts.k, maxNewTokens: opts.maxNewTokens ?? 64, seed: opts.seed });
  writeJsonl(
    opts.file,
    problems.map((p, i) => ({ question: p.question, gold_answer: p.answer, pass_rate: r.perProblem[i]! })),
  );
  return r.passAt1;
}

/** Interleaves shard files back into prompt order (shard I holds prompts I, I+N, I+2N, …). */
function merge(files: readonly string[], out: string): number {
  const shards = files.map((f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim() !== ''));
  const rows: string[] = [];
  for (let j = 0; ; j++) {
    let any = false;
    for (const s of shards) {
      if (j < s.length) {
        rows.push(s[j]!);
        any = true;
      }
    }
    if (!any) break;
  }
  fs.writeFileSync(out, rows.join('\n') + '\n');
  return rows.length;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.merge.length > 0) {
    console.log(`merged ${merge(args.merge, args.out)} prompts into ${args.out}`);
    return;
  }
  const t0 = Date.now();
  const all = makeSplit('train', args.skip + args.n, 1, TASK_MIX).slice(args.skip);
  const [si, sn] = args.shard;
  const problems = all.filter((_, i) => i % sn === si);
  const tok = Tokenizer.load(args.model);
  const backend = createBackend('wasm', args.threads !== undefined ? { threads: args.threads } : {});
  try {
    const model = Qwen2Model.fromCheckpoint(loadCheckpoint(args.model), backend);
    const mean = await writeRlPromptFile(model, tok, problems, { k: args.k, seed: 11 + si, file: args.out });
    console.log(
      `${problems.length} RL prompts, mean pass rate ${(100 * mean).toFixed(1)}% (k=${args.k}, T=1), ` +
        `${((Date.now() - t0) / 1000).toFixed(0)} s -> ${args.out}`,
    );
    model.dispose();
  } finally {
    backend.dispose();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}
