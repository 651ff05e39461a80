// `oreal eval`: sample a model on a benchmark and score pass@k / maj@k / greedy accuracy, or score existing responses.
//
//   oreal eval --data FILE.jsonl [--question-field problem] [--answer-field answer]
//              (--model DIR | --endpoint URL --model-name NAME) --samples N --k 1,4,16 [--greedy]
//              [--temperature T] [--top-p P] [--top-k K] [--max-new-tokens M] [--seed S] [--concurrency C]
//              [--limit N] --out DIR [--json]
//   oreal eval --responses FILE.jsonl --k 1,4,8 [--out DIR] [--json]
//
// This file parses the options and prints the summary; the run itself (prompts, requests, resume from DIR, error
// records of failed requests, scoring) is src/eval/evaluate.ts, whose header describes it.
//
// With --json the last line printed is the summary object: {"n", "pass_at_k", "maj_at_k", ...}.

import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKEND_NAMES } from '../engine/index.js';
import type { EvalMetrics } from '../eval/metrics.js';
import { ROLLOUT_BACKEND_NAMES } from '../sample/rollout-backends.js';
import { DEFAULT_PROMPT_SUFFIX, EvalOptionError, runGenerationEval, runResponsesEval, type EvalOptions, type EvalSummary } from '../eval/evaluate.js';
import { modelDir, nonNegativeNumber, nonNegInt, positiveInt, probability } from './option-parsers.js';
import { configureErrors, reportFatal } from './program.js';

// ------------------------------------------------------------------------------------------------ argument parsing

function intList(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1)) {
    throw new InvalidArgumentError('expected a comma-separated list of positive integers, e.g. 1,4,16');
  }
  return [...new Set(parts.map(Number))].sort((a, b) => a - b);
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a model on a benchmark (pass@k, maj@k, greedy), or score existing responses')
    .option('--data <file>', 'benchmark JSONL file')
    .option('--responses <file>', 'score existing generations: JSONL lines {"id", "gold", "responses": [text, ...]}')
    .option('--question-field <name>', 'field holding the question (default "problem", else "question")')
    .option('--answer-field <name>', 'field holding the gold answer (default "answer", else "gold_answer", as the first record has); text after the last "####" is taken')
    .option('--id-field <name>', 'field holding the problem id (default "id", "unique_id", "idx", else the line number)')
    .option('--model <dir>', 'local Hugging Face checkpoint directory (local engine, model chat template)', modelDir)
    .option('--endpoint <url>', 'OpenAI-compatible server, e.g. http://127.0.0.1:30000 (API key from env OREAL_API_KEY); a request the server rejects (4xx) or that fails after --retries is recorded as error samples (counted in "errors", not retried on resume); a server that cannot be reached aborts the run')
    .option('--model-name <name>', 'model name sent to --endpoint')
    .addOption(new Option('--rollout <name>', 'rollout backend (default: local with --model, remote with --endpoint)').choices(ROLLOUT_BACKEND_NAMES))
    .addOption(new Option('--api <api>', 'endpoint API: chat messages or completions prompt').choices(['chat', 'completions']).default('chat'))
    .option('--tokenizer <dir>', 'with --api completions: render prompts with this chat template (a model directory)', modelDir)
    .option('--samples <n>', 'samples per problem', positiveInt)
    .option('--k <list>', 'k values of pass@k (and maj@k unless --maj-k)', intList, [1])
    .option('--maj-k <list>', 'k values of maj@k (default: --k)', intList)
    .option('--greedy', 'also generate one greedy (temperature 0) sample per problem')
    .option('--temperature <t>', 'sampling temperature', nonNegativeNumber, 1)
    .option('--top-p <p>', 'nucleus sampling mass', probability, 1)
    .option('--top-k <k>', 'top-k sampling (0 = off)', nonNegInt, 0)
    .option('--max-new-tokens <m>', 'generation budget per sample', positiveInt, 2048)
    .option('--seed <s>', 'base seed (per-request seeds derive from it)', nonNegInt)
    .option('--system-prompt <text>', 'system message')
    .option('--prompt-suffix <text>', 'text appended to each question', DEFAULT_PROMPT_SUFFIX)
    .option('--concurrency <c>', 'problems in flight (remote) / per batch (local)', positiveInt, 8)
    .option('--limit <n>', 'only the first N problems', positiveInt)
    .option('--out <dir>', 'output directory (samples.jsonl, summary.json, settings.json)')
    .option('--json', 'print the summary as JSON (last line)')
    .addOption(new Option('--backend <name>', 'compute backend of the local engine (default: $OREAL_BACKEND, else blas if built, else wasm)').choices(BACKEND_NAMES))
    .option('--timeout <ms>', 'per-request timeout for --endpoint', positiveInt, 600_000)
    .option('--retries <n>', 'retries per request for --endpoint', nonNegInt, 3)
    .option('--verify-timeout <ms>', 'hard time bound of each extraction / comparison', positiveInt, 2000)
    .option('--threads <n>', 'verifier worker threads (default min(2, cores))', positiveInt)
    .action(async (opts: EvalOptions, cmd: Command) => {
      let summary: EvalSummary;
      try {
        summary = opts.responses !== undefined ? await runResponsesEval(opts) : await runGenerationEval(opts);
      } catch (e) {
        if (e instanceof EvalOptionError) cmd.error(`error: ${e.message}`);
        throw e;
      }
      printSummary(summary, opts.json === true);
    });
}

/**
 * Run `oreal eval ARGS...` in this process (for scripts and tests, before or besides src/cli/main.ts): errors go to
 * stderr as `oreal: error: ...` and set a non-zero exit code, as the real entry point does.
 */
export async function runEvalCli(args: readonly string[]): Promise<void> {
  const program = new Command().name('oreal');
  registerEval(program);
  configureErrors(program);
  try {
    await program.parseAsync(['eval', ...args], { from: 'user' });
  } catch (err) {
    reportFatal(err);
  }
}

// ------------------------------------------------------------------------------------------------ printing

function fmt(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(4);
}

/** Readable table or JSON (last line) of a summary. */
export function printSummary(s: EvalSummary, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const ks = Object.keys(s.pass_at_k);
  const mks = Object.keys(s.maj_at_k);
  const lines: string[] = [];
  lines.push(`problems: ${s.n}   samples/problem: ${s.samples_per_problem}` + (s.seconds_per_100_problems === null ? '' : `   s/100 problems: ${s.seconds_per_100_problems.toFixed(1)}`));
  for (const k of ks) lines.push(`pass@${k}`.padEnd(10) + fmt(s.pass_at_k[k]));
  for (const k of mks) lines.push(`maj@${k}`.padEnd(10) + fmt(s.maj_at_k[k]));
  if (s.greedy !== undefined) lines.push('greedy'.padEnd(10) + `${fmt(s.greedy)}  (${s.greedy_n} problems)`);
  lines.push('no answer'.padEnd(10) + fmt(s.no_answer_rate));
  if (s.truncated_rate !== undefined) lines.push('truncated'.padEnd(10) + fmt(s.truncated_rate));
  const table = (title: string, m: Record<string, EvalMetrics> | undefined): void => {
    if (m === undefined) return;
    const keys = Object.keys(m);
    const w = Math.max(title.length, ...keys.map((k) => k.length)) + 2;
    const head = [title.padEnd(w), 'n'.padStart(5), ...ks.map((k) => `pass@${k}`.padStart(9)), ...mks.map((k) => `maj@${k}`.padStart(9))];
    if (s.greedy !== undefined) head.push('greedy'.padStart(9));
    lines.push('', head.join(' '));
    for (const key of keys) {
      const b = m[key] as EvalMetrics;
      const row = [key.padEnd(w), String(b.n).padStart(5), ...ks.map((k) => fmt(b.pass_at_k[k]).padStart(9)), ...mks.map((k) => fmt(b.maj_at_k[k]).padStart(9))];
      if (s.greedy !== undefined) row.push(fmt(b.greedy).padStart(9));
      lines.push(row.join(' '));
    }
  };
  table('subject', s.by_subject);
  table('level', s.by_level);
  process.stdout.write(`${lines.join('\n')}\n`);
}
