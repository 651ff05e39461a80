// `oreal verify`: check one response, or a JSONL file of responses, against gold answers.
//
//   oreal verify --gold "<gold>" --response "<text>" [--json]
//   oreal verify --input FILE.jsonl [--output FILE.jsonl] [--allow-malformed]
//
// Batch mode writes one verdict per input line, in input order. A line that is not a JSON object with string
// "response" and "gold" becomes an error record (its "error" names file, line and field) and is counted as
// `malformed`, apart from `incorrect`. --output is written to a temporary file next to it and renamed over it once
// every line is done, so a failed run leaves an earlier output as it was; an --output that is the --input is refused.
//
// Exit status: 0 when every line was verified; 1 on an error that stops the run (bad flags, unreadable input);
// 2 when the run completed but some input lines were malformed (their error records are written with the rest);
// --allow-malformed turns that 2 into 0.
//
// Rule verdicts come from VerifierPool (worker threads, hard time bound per step). With --judge-url an LLM judge
// over an OpenAI-compatible API is asked too: in `rescue` mode (the reference's behaviour) only when the rules say
// incorrect, in `review` mode also when they say correct. The judge's API key is read by the judge client from the
// environment variable OREAL_JUDGE_API_KEY and is never printed.

import { closeSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync, createReadStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Option, type Command } from 'commander';
import { VerifierPool, unwrapGold } from '../verify/index.js';
import type { Verdict } from '../verify/types.js';
import { LlmJudge } from '../verify/judge.js';
import { nonNegInt, positiveInt } from './option-parsers.js';

type JudgeMode = 'rescue' | 'review';

interface VerifyCliOptions {
  gold?: string;
  response?: string;
  question?: string;
  json?: boolean;
  input?: string;
  output?: string;
  allowMalformed?: boolean;
  threads?: number;
  timeout: number;
  judgeUrl?: string;
  judgeModel?: string;
  judgeConcurrency: number;
  judgeMode: JudgeMode;
  judgeTimeout: number;
  judgeRetries: number;
}

/** One output line of batch mode. */
export interface VerifyRecord {
  id: unknown;
  correct: boolean;
  extracted: string | null;
  reason: string;
  error?: string;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check math answers against gold answers (rule verifier, optionally an LLM judge)')
    .option('--gold <gold>', 'gold answer (may be wrapped in \\boxed{})')
    .option('--response <text>', 'model response')
    .option('--question <text>', 'problem text (only given to the LLM judge)')
    .option('--json', 'print the single verdict as JSON')
    .option('--input <file>', 'JSONL file of {"id"?, "response", "gold", "question"?} records')
    .option('--output <file>', 'write JSONL verdicts here instead of stdout (batch mode; replaced once the run is complete)')
    .option('--allow-malformed', 'exit 0 even when some input lines were malformed (default: exit 2)')
    .option('--threads <n>', 'verifier worker threads (default min(2, cores))', positiveInt)
    .option('--timeout <ms>', 'hard time bound of each extraction and comparison', positiveInt, 2000)
    .option('--judge-url <url>', 'OpenAI-compatible server of an LLM judge, e.g. http://127.0.0.1:8000 (a /v1 suffix is optional; API key from env OREAL_JUDGE_API_KEY)')
    .option('--judge-model <name>', 'judge model name (default: first one listed by the server)')
    .option('--judge-concurrency <n>', 'judge requests in flight', positiveInt, 8)
    .addOption(
      new Option('--judge-mode <mode>', 'rescue: ask the judge only when rules say incorrect; review: always')
        .choices(['rescue', 'review'])
        .default('rescue'),
    )
    .option('--judge-timeout <ms>', 'per-request judge timeout', positiveInt, 60000)
    .option('--judge-retries <n>', 'judge retries after the first attempt', nonNegInt, 3)
    .addHelpText(
      'after',
      '\nExit status: 0 when every line was verified (whatever the verdicts); 1 on an error that stops the run;\n' +
        '2 when some --input lines were malformed (error records written, counted as "malformed"; --allow-malformed: 0).',
    )
    .action(async (opts: VerifyCliOptions, cmd: Command) => {
      if (opts.judgeUrl === undefined && opts.judgeModel !== undefined) cmd.error('error: --judge-model needs --judge-url');
      if (opts.input !== undefined) {
        if (opts.gold !== undefined || opts.response !== undefined) cmd.error('error: use either --input or --gold/--response');
        await runBatch(opts, cmd);
        return;
      }
      if (opts.output !== undefined) cmd.error('error: --output needs --input');
      if (opts.allowMalformed === true) cmd.error('error: --allow-malformed needs --input');
      if (opts.gold === undefined || opts.response === undefined) {
        cmd.error('error: give --gold and --response, or --input FILE.jsonl');
      }
      await runSingle(opts, opts.gold, opts.response);
    });
}

function makeJudge(opts: VerifyCliOptions): LlmJudge | null {
  if (opts.judgeUrl === undefined) return null;
  return new LlmJudge({
    url: opts.judgeUrl,
    model: opts.judgeModel,
    concurrency: opts.judgeConcurrency,
    timeoutMs: opts.judgeTimeout,
    retries: opts.judgeRetries,
  });
}

interface JudgeCounters {
  asked: number;
  changed: number;
  failed: number;
}

/** Apply the LLM judge to a rule verdict according to the mode. A response without an answer is never judged. */
async function applyJudge(
  judge: LlmJudge | null,
  mode: JudgeMode,
  rule: Verdict,
  gold: string,
  question: string | undefined,
  counters: JudgeCounters,
): Promise<Verdict> {
  if (judge === null || rule.extracted === null) return rule;
  if (rule.correct && mode === 'rescue') return rule;
  counters.asked++;
  const res = await judge.judge({ question, gold: unwrapGold(gold), answer: rule.extracted });
  if (res.verdict === 'error') {
    counters.failed++;
    return { ...rule, reason: `${rule.reason}; judge failed: ${res.error}; rule verdict kept` };
  }
  const correct = res.verdict === 'correct';
  if (correct !== rule.correct) counters.changed++;
  const note = correct === rule.correct ? 'agrees with rules' : `overrides rule verdict ${rule.correct ? 'correct' : 'incorrect'}`;
  return { ...rule, correct, reason: `${rule.reason}; judge: ${res.verdict} (${note})` };
}

async function runSingle(opts: VerifyCliOptions, gold: string, response: string): Promise<void> {
  const pool = new VerifierPool({ threads: 1, timeoutMs: opts.timeout });
  const counters: JudgeCounters = { asked: 0, changed: 0, failed: 0 };
  let verdict: Verdict;
  try {
    const rule = await pool.verify(response, gold);
    verdict = await applyJudge(makeJudge(opts), opts.judgeMode, rule, gold, opts.question, counters);
  } finally {
    await pool.close();
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(verdict)}\n`);
  } else {
    process.stdout.write(
      `${verdict.correct ? 'correct' : 'incorrect'}\n` +
        `extracted: ${verdict.extracted === null ? '(none)' : verdict.extracted}\n` +
        `reason: ${verdict.reason}\n`,
    );
  }
}

/** A validated input line, or the error record that replaces it. */
type Parsed =
  | { ok: true; id: unknown; response: string; gold: string; question: string | undefined }
  | { ok: false; record: VerifyRecord };

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Validate one input line; problems are reported as `FILE:LINE: …` naming the field. */
export function parseInputLine(line: string, file: string, lineNo: number): Parsed {
  const where = `${file}:${lineNo}`;
  const fail = (id: unknown, what: string): Parsed => ({
    ok: false,
    record: { id, correct: false, extracted: null, reason: 'malformed input line', error: `${where}: ${what}` },
  });
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return fail(null, `invalid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(null, `expected a JSON object, got ${describe(value)}`);
  }
  const rec = value as Record<string, unknown>;
  const id = rec.id ?? null;
  const problems: string[] = [];
  for (const field of ['response', 'gold'] as const) {
    if (!(field in rec) || rec[field] === undefined) problems.push(`missing field "${field}"`);
    else if (typeof rec[field] !== 'string') problems.push(`field "${field}" must be a string, got ${describe(rec[field])}`);
  }
  const q = rec.question;
  if (q !== undefined && q !== null && typeof q !== 'string') problems.push(`field "question" must be a string, got ${describe(q)}`);
  if (problems.length > 0) return fail(id, problems.join('; '));
  return {
    ok: true,
    id,
    response: rec.response as string,
    gold: rec.gold as string,
    question: typeof q === 'string' ? q : undefined,
  };
}

async function runBatch(opts: VerifyCliOptions, cmd: Command): Promise<void> {
  const file = opts.input as string;
  try {
    if (!statSync(file).isFile()) cmd.error(`error: --input ${file} is not a file`);
  } catch (err) {
    cmd.error(`error: cannot read --input ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const out = opts.output !== undefined ? openOutput(opts.output, file, cmd) : null;
  const outFd = out?.fd ?? null;
  // Every record is handed to the OS as soon as it is known, in input order: writeSync to the file, and
  // process.stdout, which is synchronous for files and pipes on Linux (a raw writeSync(1) could hit EAGAIN on a
  // non-blocking pipe).
  const write = (rec: VerifyRecord): void => {
    const line = `${JSON.stringify(rec)}\n`;
    if (outFd !== null) writeSync(outFd, line);
    else process.stdout.write(line);
  };

  const judge = makeJudge(opts);
  const pool = new VerifierPool({ threads: opts.threads, timeoutMs: opts.timeout });
  const counters: JudgeCounters = { asked: 0, changed: 0, failed: 0 };
  const t0 = performance.now();
  let n = 0;
  let correct = 0;
  let malformed = 0;
  let firstMalformed: string | undefined;
  let lastProgress = t0;
  const tty = process.stderr.isTTY === true;
  const progress = (force: boolean): void => {
    const now = performance.now();
    if (!force && now - lastProgress < (tty ? 250 : 5000)) return;
    lastProgress = now;
    const rate = n / Math.max(1e-9, (now - t0) / 1000);
    const text = `verify: ${n} done, ${correct} correct, ${rate.toFixed(0)}/s`;
    process.stderr.write(tty ? `\r${text}\x1b[K` : `${text}\n`);
  };
  const emit = (rec: VerifyRecord): void => {
    write(rec);
    n++;
    if (rec.correct) correct++;
    progress(false);
  };

  const process1 = async (parsed: Parsed): Promise<VerifyRecord> => {
    if (!parsed.ok) return parsed.record;
    const rule = await pool.verify(parsed.response, parsed.gold);
    const v = await applyJudge(judge, opts.judgeMode, rule, parsed.gold, parsed.question, counters);
    return { id: parsed.id, correct: v.correct, extracted: v.extracted, reason: v.reason };
  };

  // Bounded read-ahead keeps workers and the judge busy while output stays in input order.
  const windowSize = Math.max(256, 4 * opts.judgeConcurrency);
  const inFlight: Promise<VerifyRecord>[] = [];
  try {
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    let lineNo = 0;
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue; // blank lines carry no record
      const parsed = parseInputLine(lineNo === 1 ? line.replace(/^\uFEFF/, '') : line, file, lineNo);
      if (!parsed.ok) {
        malformed++;
        firstMalformed ??= parsed.record.error;
      }
      const pending = process1(parsed);
      pending.catch(() => undefined); // a rejection is reported when its turn comes, not as unhandled
      inFlight.push(pending);
      while (inFlight.length >= windowSize) emit(await (inFlight.shift() as Promise<VerifyRecord>));
    }
    while (inFlight.length > 0) emit(await (inFlight.shift() as Promise<VerifyRecord>));
    if (out !== null) out.commit();
  } finally {
    await Promise.allSettled(inFlight);
    await pool.close();
    out?.discard();
  }
  if (tty && n > 0) process.stderr.write('\n');
  const st = pool.stats();
  const wall = (performance.now() - t0) / 1000;
  let summary =
    `verify: n=${n} correct=${correct} incorrect=${n - correct - malformed} malformed=${malformed} timeouts=${st.timeouts} ` +
    `crashes=${st.crashes} cache_hits=${st.cacheHits} truncated=${st.truncated}`;
  if (judge !== null) summary += ` judged=${counters.asked} judge_changed=${counters.changed} judge_failed=${counters.failed}`;
  summary += ` wall=${wall.toFixed(2)}s`;
  process.stderr.write(`${summary}\n`);
  if (malformed > 0) {
    process.stderr.write(
      `verify: ${malformed} malformed input line${malformed === 1 ? '' : 's'} (first: ${firstMalformed}); ` +
        `their records carry "error"${opts.allowMalformed === true ? '' : '; exit status 2 (--allow-malformed: 0)'}\n`,
    );
    if (opts.allowMalformed !== true) process.exitCode = 2;
  }
}

/** True when `a` and `b` name the same file (through links, `.` segments and the like). */
function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false; // `b` does not exist yet
  }
}

/**
 * The --output file. A regular file (or a new one) is written as a temporary file in the same directory and renamed
 * over it by commit(), so the target is untouched until every line is done; discard() removes an uncommitted one.
 * Anything else (/dev/stdout, a pipe) is opened and written directly.
 */
function openOutput(output: string, input: string, cmd: Command): { fd: number; commit(): void; discard(): void } {
  if (sameFile(output, input)) cmd.error(`error: --output ${output} is the --input file: it would be overwritten while read`);
  let target = output;
  // /dev/stdout and the like name an open descriptor: renaming a file over what they resolve to would miss it.
  let special = /^\/(dev|proc)\//.test(output);
  try {
    if (!special) {
      target = realpathSync(output); // write through a symlink, as opening it would
      special = !statSync(target).isFile();
    }
  } catch {
    // a new file
  }
  if (special) {
    const fd = openSync(target, 'w');
    let closed = false;
    const close = (): void => {
      if (!closed) closeSync(fd);
      closed = true;
    };
    return { fd, commit: close, discard: close };
  }
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (err) {
    return cmd.error(`error: cannot write --output ${output}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let state: 'open' | 'committed' | 'discarded' = 'open';
  return {
    fd,
    commit: () => {
      closeSync(fd);
      renameSync(tmp, target);
      state = 'committed';
    },
    discard: () => {
      if (state !== 'open') return;
      state = 'discarded';
      closeSync(fd);
      rmSync(tmp, { force: true });
    },
  };
}
