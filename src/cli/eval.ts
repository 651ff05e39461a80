// `oreal eval`: sample a model on a benchmark and score pass@k / maj@k / greedy accuracy, or score existing responses.
//
//   oreal eval --data FILE.jsonl [--question-field problem] [--answer-field answer]
//              (--model DIR | --endpoint URL --model-name NAME) --samples N --k 1,4,16 [--greedy]
//              [--temperature T] [--top-p P] [--top-k K] [--max-new-tokens M] [--seed S] [--concurrency C]
//              [--limit N] --out DIR [--json]
//   oreal eval --responses FILE.jsonl --k 1,4,8 [--out DIR] [--json]
//
// Generation mode writes one record per verified sample to DIR/samples.jsonl as soon as it is known, and
// DIR/summary.json at the end (temp file + rename). The settings that shape samples are kept in DIR/settings.json;
// rerunning the same command resumes (skips (problem, sample) pairs already written), and refuses to when a setting
// differs, naming it. `--k`, `--concurrency`, `--limit` and `--json` may change between runs.
//
// Prompts: the user turn is the question followed by `--prompt-suffix` (default: the Qwen2.5-Math instruction to
// reason step by step and box the answer), after an optional `--system-prompt`. `--model DIR` renders them with the
// model's chat template and samples with the local engine; `--endpoint` sends chat messages (`--api chat`, default)
// or a completions prompt (`--api completions`: rendered with `--tokenizer DIR`'s chat template when given, else the
// plain text).
//
// Requests: without `--seed`, one request per problem with n = its missing samples (servers and the local engine
// share the prompt across the n samples). With `--seed S`, one request per sample (n = 1) with a seed derived from S,
// the problem id and the sample index, so every sample is reproducible, a resumed run included (given a backend that
// honours seeds). The greedy sample is one more request per problem.
//
// Failed requests (--endpoint): when the server rejects a problem's request with a client error (HTTP 4xx other than
// 429, e.g. 400 context_length_exceeded) or a request still fails after --retries, that problem's samples are written
// as error records ("correct": false, "extracted": null, "error": message), counted as "errors" in the summary, and
// the run goes on. A network error (server unreachable after --retries) aborts the run instead. Error records count
// as written on resume (they are not retried); remove their lines from samples.jsonl, or use another --out, to retry.
//
// With --json the last line printed is the summary object: {"n", "pass_at_k", "maj_at_k", ...}.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { VerifierPool } from '../verify/index.js';
import { BACKEND_NAMES, type BackendName } from '../engine/index.js';
import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from '../sample/types.js';
import { loadBenchmark, readResponses, type BenchmarkProblem } from '../eval/data.js';
import { computeMetrics, type AnswerEquivalence, type EvalMetrics, type ProblemOutcome, type SampleOutcome } from '../eval/metrics.js';
import { modelDir, nonNegativeNumber, nonNegInt, positiveInt, probability } from './option-parsers.js';
import { configureErrors, reportFatal } from './program.js';
import { OpenAIRolloutBackend, type RemoteChatMessage, type RemoteGenerationRequest } from '../eval/remote-backend.js';

export const DEFAULT_PROMPT_SUFFIX = '\nPlease reason step by step, and put your final answer within \\boxed{}.';

/** Options of `oreal eval` as commander parses them. */
export interface EvalCliOptions {
  data?: string;
  responses?: string;
  questionField?: string;
  answerField?: string;
  idField?: string;
  model?: string;
  endpoint?: string;
  modelName?: string;
  api: 'chat' | 'completions';
  tokenizer?: string;
  samples?: number;
  k: number[];
  majK?: number[];
  greedy?: boolean;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed?: number;
  systemPrompt?: string;
  promptSuffix: string;
  concurrency: number;
  limit?: number;
  out?: string;
  json?: boolean;
  timeout: number;
  retries: number;
  verifyTimeout: number;
  threads?: number;
  backend?: BackendName;
}

/** One line of samples.jsonl. `sample` is the sample index, or "greedy". */
export interface SampleRecord {
  id: string;
  sample: number | 'greedy';
  gold: string;
  correct: boolean;
  extracted: string | null;
  reason: string;
  finish_reason: 'stop' | 'length';
  response: string;
  /** Generated tokens, when the backend reported them. */
  tokens?: number;
  /** Why generation failed (then correct is false, extracted null, response empty). */
  error?: string;
  subject?: string;
  level?: string;
}

/** Settings that determine the samples; a resumed run must match them. Keys map to the CLI flags below. */
export interface EvalSettings {
  data: string;
  question_field: string | null;
  answer_field: string;
  id_field: string | null;
  backend: string;
  api: string | null;
  tokenizer: string | null;
  samples: number;
  greedy: boolean;
  temperature: number;
  top_p: number;
  top_k: number;
  max_new_tokens: number;
  seed: number | null;
  system_prompt: string | null;
  prompt_suffix: string;
}

const SETTING_FLAGS: Record<keyof EvalSettings, string> = {
  data: '--data',
  question_field: '--question-field',
  answer_field: '--answer-field',
  id_field: '--id-field',
  backend: '--model/--endpoint/--model-name',
  api: '--api',
  tokenizer: '--tokenizer',
  samples: '--samples',
  greedy: '--greedy',
  temperature: '--temperature',
  top_p: '--top-p',
  top_k: '--top-k',
  max_new_tokens: '--max-new-tokens',
  seed: '--seed',
  system_prompt: '--system-prompt',
  prompt_suffix: '--prompt-suffix',
};

/** What `oreal eval` prints (with --json, as the last line) and writes to summary.json. */
export interface EvalSummary extends EvalMetrics {
  samples_per_problem: number;
  /** Wall-clock seconds per 100 problems of this run's generation + verification (responses mode: scoring); null when nothing ran. */
  seconds_per_100_problems: number | null;
  /** Fraction of samples cut at the token limit (generation mode). */
  truncated_rate?: number;
  /** Samples generated by this run, and taken from an earlier run's samples.jsonl. */
  generated_samples?: number;
  resumed_samples?: number;
  /** Samples recorded as errors (failed requests), this run's and resumed ones (generation mode). */
  errors?: number;
  verifier: { timeouts: number; crashes: number };
}

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
    .action(async (opts: EvalCliOptions, cmd: Command) => {
      const fail = (msg: string): never => cmd.error(`error: ${msg}`);
      const summary = opts.responses !== undefined ? await runResponsesEval(opts, fail) : await runGenerationEval(opts, fail);
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

// ------------------------------------------------------------------------------------------------ shared helpers

/** Whether a samples file holds anything (a torn first line counts: it is repaired on resume, not discarded). */
function hasRecords(file: string): boolean {
  return existsSync(file) && statSync(file).size > 0;
}

/** Write a file atomically (temp file + rename). */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/**
 * Equivalence of two extracted answers through the verifier pool (time-bounded): `b` is boxed and verified against
 * `a` as gold. When the box does not give `b` back verbatim (unbalanced braces), the two are not grouped.
 */
export function poolEquivalence(pool: VerifierPool): AnswerEquivalence {
  const cache = new Map<string, boolean>();
  return async (a, b) => {
    if (a === b) return true;
    const key = `${a}\u0000${b}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const v = await pool.verify(`\\boxed{${b}}`, a);
    const eq = v.extracted === b && v.correct;
    if (cache.size < 100_000) cache.set(key, eq);
    return eq;
  };
}

function outcomeOf(r: SampleRecord): SampleOutcome {
  return { answer: r.extracted, correct: r.correct };
}

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

// ------------------------------------------------------------------------------------------------ responses mode

/** Score a `--responses` file; with --out also writes samples.jsonl and summary.json there (replacing them). */
export async function runResponsesEval(opts: EvalCliOptions, fail: (msg: string) => never): Promise<EvalSummary> {
  const file = opts.responses as string;
  if (opts.data !== undefined || opts.model !== undefined || opts.endpoint !== undefined) fail('--responses scores existing generations: do not combine it with --data, --model or --endpoint');
  const records = readResponses(file, { limit: opts.limit });
  const maxK = Math.max(...opts.k, ...(opts.majK ?? []));
  for (const r of records) {
    if (r.responses.length < maxK) fail(`${file}:${r.line}:responses: ${r.responses.length} responses for problem ${r.id}, fewer than k=${maxK}`);
  }
  const pool = new VerifierPool({ threads: opts.threads, timeoutMs: opts.verifyTimeout });
  const t0 = performance.now();
  try {
    const all: SampleRecord[] = [];
    const outcomes: ProblemOutcome[] = await Promise.all(
      records.map(async (r) => {
        const verify = async (response: string, sample: number | 'greedy'): Promise<SampleRecord> => {
          const v = await pool.verify(response, r.gold);
          const rec: SampleRecord = { id: r.id, sample, gold: r.gold, correct: v.correct, extracted: v.extracted, reason: v.reason, finish_reason: 'stop', response };
          if (r.subject !== undefined) rec.subject = r.subject;
          if (r.level !== undefined) rec.level = r.level;
          return rec;
        };
        const samples = await Promise.all(r.responses.map((text, i) => verify(text, i)));
        const greedy = r.greedy === undefined ? undefined : await verify(r.greedy, 'greedy');
        all.push(...samples);
        if (greedy !== undefined) all.push(greedy);
        const o: ProblemOutcome = { id: r.id, samples: samples.map(outcomeOf) };
        if (greedy !== undefined) o.greedy = outcomeOf(greedy);
        if (r.subject !== undefined) o.subject = r.subject;
        if (r.level !== undefined) o.level = r.level;
        return o;
      }),
    );
    const metrics = await computeMetrics(outcomes, { ks: opts.k, majKs: opts.majK, equivalent: poolEquivalence(pool) });
    const seconds = (performance.now() - t0) / 1000;
    const st = pool.stats();
    const summary: EvalSummary = {
      ...metrics,
      samples_per_problem: Math.min(...records.map((r) => r.responses.length)),
      seconds_per_100_problems: (seconds * 100) / records.length,
      verifier: { timeouts: st.timeouts, crashes: st.crashes },
    };
    if (opts.out !== undefined) {
      const dir = resolve(opts.out);
      mkdirSync(dir, { recursive: true });
      const order = new Map(records.map((r, i) => [r.id, i]));
      all.sort((a, b) => (order.get(a.id) as number) - (order.get(b.id) as number) || sampleRank(a.sample) - sampleRank(b.sample));
      writeAtomic(join(dir, 'samples.jsonl'), all.map((r) => `${JSON.stringify(r)}\n`).join(''));
      writeAtomic(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    }
    return summary;
  } finally {
    await pool.close();
  }
}

function sampleRank(s: number | 'greedy'): number {
  return s === 'greedy' ? Number.MAX_SAFE_INTEGER : s;
}

// ------------------------------------------------------------------------------------------------ generation mode

/** FNV-1a of a string, as a non-negative 31-bit integer. */
function hash31(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & 0x7fffffff;
}

/**
 * Read samples.jsonl of an earlier run. A last line without its newline is repaired first: a complete record gets
 * its newline, a torn one (an interrupted write) is cut off the file, so later appends start on a fresh line.
 */
function loadSamples(file: string): SampleRecord[] {
  if (!existsSync(file)) return [];
  let text = readFileSync(file, 'utf8');
  if (text !== '' && !text.endsWith('\n')) {
    const tail = text.slice(text.lastIndexOf('\n') + 1);
    let complete = true;
    try {
      JSON.parse(tail);
    } catch {
      complete = tail.trim() === '';
    }
    if (complete) {
      writeFileSync(file, '\n', { flag: 'a' });
      text += '\n';
    } else {
      const keep = text.length - tail.length;
      const fd = openSync(file, 'r+');
      try {
        ftruncateSync(fd, Buffer.byteLength(text.slice(0, keep)));
      } finally {
        closeSync(fd);
      }
      text = text.slice(0, keep);
      process.stderr.write(`eval: dropped a torn last line of ${file}\n`);
    }
  }
  const out: SampleRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    const r = rec as Partial<SampleRecord> | null;
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || (typeof r.sample !== 'number' && r.sample !== 'greedy') || typeof r.correct !== 'boolean' || typeof r.gold !== 'string') {
      throw new Error(`${file}:${i + 1}: not a sample record (needs id, sample, gold, correct)`);
    }
    if (r.extracted === undefined) r.extracted = null;
    out.push(r as SampleRecord);
  }
  return out;
}

function compareSettings(prev: Partial<EvalSettings>, now: EvalSettings): string[] {
  const diffs: string[] = [];
  for (const key of Object.keys(SETTING_FLAGS) as Array<keyof EvalSettings>) {
    const a = prev[key] ?? null;
    const b = now[key];
    if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${SETTING_FLAGS[key]} (${key}) was ${JSON.stringify(a)}, now ${JSON.stringify(b)}`);
  }
  return diffs;
}

/** A way to turn a question into a generation request, and the backend to send it to. */
interface PromptedBackend {
  backend: RolloutBackend;
  request(p: BenchmarkProblem, n: number, params: SamplingParams): GenerationRequest;
  /** generate() calls in flight, and requests per call. */
  inflight: number;
  perCall: number;
  /** Record a failed request as error samples of its problem (instead of aborting), unless `isOutage(err)`. */
  recordErrors: boolean;
}

/** An error that means the server cannot be reached at all (after the backend's retries): abort, do not record. */
function isOutage(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /network error|aborted by close\(\)|after close\(\)/.test(msg);
}

function messagesFor(p: BenchmarkProblem, opts: EvalCliOptions): RemoteChatMessage[] {
  const m: RemoteChatMessage[] = [];
  if (opts.systemPrompt !== undefined) m.push({ role: 'system', content: opts.systemPrompt });
  m.push({ role: 'user', content: `${p.question}${opts.promptSuffix}` });
  return m;
}

interface ChatTokenizer {
  applyChatTemplate(messages: ReadonlyArray<{ role: string; content: string }>, opts?: { addGenerationPrompt?: boolean }): string;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  readonly eosTokenId: number | null;
  readonly imEndTokenId: number | null;
}

async function loadTokenizer(dir: string): Promise<ChatTokenizer> {
  const { Tokenizer } = await import('../model/tokenizer.js');
  return Tokenizer.load(dir);
}

/** The parts of src/sample/local-backend.ts and src/engine/index.ts used here (both imported at run time). */
interface LocalBackendModule {
  LocalRolloutBackend: { load(dir: string, backend: EngineBackend, opts?: { maxBatch?: number }): RolloutBackend };
}
interface EngineBackend {
  dispose(): void;
}
interface EngineModule {
  openBackend(name?: string): Promise<EngineBackend>;
}

/**
 * The local engine: `LocalRolloutBackend.load(dir, await openBackend(...))`. Imported dynamically so that this command
 * builds and its remote mode works whatever state the engine is in; close() also disposes the compute backend.
 */
async function makeLocalBackend(dir: string, opts: EvalCliOptions): Promise<RolloutBackend> {
  const localSpec = '../sample/local-backend.js';
  const engineSpec = '../engine/index.js';
  let local: LocalBackendModule;
  let engine: EngineModule;
  try {
    local = (await import(localSpec)) as LocalBackendModule;
    engine = (await import(engineSpec)) as EngineModule;
  } catch (e) {
    throw new Error(`--model needs the local engine (src/sample/local-backend.ts, src/engine), which could not be loaded: ${(e as Error).message}`);
  }
  if (typeof local.LocalRolloutBackend?.load !== 'function' || typeof engine.openBackend !== 'function') {
    throw new Error('--model: src/sample/local-backend.js or src/engine/index.js lacks LocalRolloutBackend.load / openBackend');
  }
  const compute = await engine.openBackend(opts.backend);
  let rb: RolloutBackend;
  try {
    rb = local.LocalRolloutBackend.load(dir, compute, { maxBatch: opts.concurrency });
  } catch (e) {
    compute.dispose();
    throw e;
  }
  return {
    name: rb.name,
    generate: (reqs) => rb.generate(reqs),
    syncWeights: (d) => rb.syncWeights(d),
    close: async () => {
      try {
        await rb.close();
      } finally {
        compute.dispose();
      }
    },
  };
}

async function makeBackend(opts: EvalCliOptions, fail: (msg: string) => never): Promise<PromptedBackend> {
  if (opts.model !== undefined) {
    const dir = resolve(opts.model);
    const tok = await loadTokenizer(dir);
    const backend = await makeLocalBackend(dir, opts);
    const stops = [tok.imEndTokenId, tok.eosTokenId].filter((x): x is number => x !== null);
    return {
      backend,
      inflight: 1,
      perCall: opts.concurrency,
      recordErrors: false,
      request: (p, n, params) => ({
        prompt: tok.encode(tok.applyChatTemplate(messagesFor(p, opts), { addGenerationPrompt: true }), { addSpecialTokens: false }),
        n,
        params: { ...params, stopTokenIds: [...new Set([...params.stopTokenIds, ...stops])] },
      }),
    };
  }
  if (opts.endpoint === undefined || opts.modelName === undefined) return fail('give --model DIR, or --endpoint URL with --model-name NAME');
  const backend = new OpenAIRolloutBackend({
    baseUrl: opts.endpoint,
    model: opts.modelName,
    concurrency: opts.concurrency,
    timeoutMs: opts.timeout,
    retries: opts.retries,
  });
  const tok = opts.tokenizer !== undefined ? await loadTokenizer(resolve(opts.tokenizer)) : null;
  return {
    backend,
    inflight: opts.concurrency,
    perCall: 1,
    recordErrors: true,
    request: (p, n, params): RemoteGenerationRequest => {
      const messages = messagesFor(p, opts);
      if (opts.api === 'chat') return { prompt: '', messages, n, params };
      const prompt = tok !== null ? tok.applyChatTemplate(messages, { addGenerationPrompt: true }) : messages.map((m) => m.content).join('\n\n');
      return { prompt, n, params };
    },
  };
}

interface Task {
  problem: BenchmarkProblem;
  /** Sample indices to fill, or the greedy sample. */
  samples: number[] | 'greedy';
}

/**
 * Run `tasks` with `inflight` concurrent workers, each taking up to `perCall` tasks at a time. After the first
 * failure no new batch starts; the batches already running are awaited, then the first error is thrown.
 */
async function runTasks(tasks: Task[], inflight: number, perCall: number, fn: (batch: Task[]) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < tasks.length) {
      const batch = tasks.slice(next, next + perCall);
      next += batch.length;
      try {
        await fn(batch);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(inflight, tasks.length)) }, worker));
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

export async function runGenerationEval(opts: EvalCliOptions, fail: (msg: string) => never): Promise<EvalSummary> {
  if (opts.data === undefined) return fail('give --data FILE.jsonl (or --responses FILE.jsonl)');
  if (opts.out === undefined) return fail('--out DIR is required with --data');
  if (opts.samples === undefined) return fail('--samples N is required with --data');
  if (opts.model !== undefined && opts.endpoint !== undefined) fail('give either --model or --endpoint, not both');
  if (opts.model !== undefined && opts.modelName !== undefined) fail('--model-name goes with --endpoint');
  if (opts.tokenizer !== undefined && (opts.endpoint === undefined || opts.api !== 'completions')) fail('--tokenizer goes with --endpoint --api completions');
  const samples = opts.samples;
  const maxK = Math.max(...opts.k, ...(opts.majK ?? []));
  if (maxK > samples) fail(`k=${maxK} exceeds --samples ${samples}`);

  const dataFile = resolve(opts.data);
  const { problems, answerField } = loadBenchmark(dataFile, {
    questionField: opts.questionField,
    answerField: opts.answerField,
    idField: opts.idField,
    limit: opts.limit,
  });
  const settings: EvalSettings = {
    data: dataFile,
    question_field: opts.questionField ?? null,
    answer_field: answerField,
    id_field: opts.idField ?? null,
    backend: opts.model !== undefined ? `local:${resolve(opts.model)}` : `endpoint:${opts.endpoint ?? ''}#${opts.modelName ?? ''}`,
    api: opts.model !== undefined ? null : opts.api,
    tokenizer: opts.tokenizer !== undefined ? resolve(opts.tokenizer) : null,
    samples,
    greedy: opts.greedy === true,
    temperature: opts.temperature,
    top_p: opts.topP,
    top_k: opts.topK,
    max_new_tokens: opts.maxNewTokens,
    seed: opts.seed ?? null,
    system_prompt: opts.systemPrompt ?? null,
    prompt_suffix: opts.promptSuffix,
  };

  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  const settingsFile = join(outDir, 'settings.json');
  const samplesFile = join(outDir, 'samples.jsonl');
  if (existsSync(settingsFile)) {
    let prev: Partial<EvalSettings>;
    try {
      prev = JSON.parse(readFileSync(settingsFile, 'utf8')) as Partial<EvalSettings>;
    } catch (e) {
      return fail(`${settingsFile}: invalid JSON: ${(e as Error).message}`);
    }
    const diffs = compareSettings(prev, settings);
    if (diffs.length > 0) {
      // The settings guard the samples written under them; a run that stopped before writing one (dead endpoint,
      // missing model, bad URL) leaves nothing to guard, and its corrected rerun starts afresh.
      if (hasRecords(samplesFile)) fail(`refusing to resume in ${outDir}: settings differ from the earlier run: ${diffs.join('; ')} (use another --out, or remove the directory)`);
      process.stderr.write(`eval: ${settingsFile}: the earlier run wrote no samples; starting afresh with the new settings (${diffs.join('; ')})\n`);
      writeAtomic(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
    }
  } else {
    if (hasRecords(samplesFile)) fail(`${samplesFile} exists without settings.json: refusing to mix runs`);
    writeAtomic(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
  }

  // Earlier records of this run's problems, checked against the data.
  const byId = new Map(problems.map((p) => [p.id, p]));
  const have = new Map<string, SampleRecord>();
  for (const r of loadSamples(samplesFile)) {
    const p = byId.get(r.id);
    if (p === undefined) continue;
    if (r.gold !== p.gold) fail(`refusing to resume: ${samplesFile} has gold ${JSON.stringify(r.gold)} for problem ${r.id}, the data now says ${JSON.stringify(p.gold)}`);
    if (r.sample !== 'greedy' && (!Number.isInteger(r.sample) || r.sample < 0 || r.sample >= samples)) fail(`${samplesFile}: sample index ${r.sample} of problem ${r.id} outside 0..${samples - 1}`);
    have.set(`${r.id}\u0000${r.sample}`, r);
  }
  const resumed = have.size;

  const tasks: Task[] = [];
  for (const p of problems) {
    const missing: number[] = [];
    for (let i = 0; i < samples; i++) if (!have.has(`${p.id}\u0000${i}`)) missing.push(i);
    if (opts.seed !== undefined) for (const i of missing) tasks.push({ problem: p, samples: [i] });
    else if (missing.length > 0) tasks.push({ problem: p, samples: missing });
    if (settings.greedy && !have.has(`${p.id}\u0000greedy`)) tasks.push({ problem: p, samples: 'greedy' });
  }

  const pool = new VerifierPool({ threads: opts.threads, timeoutMs: opts.verifyTimeout });
  let generated = 0;
  let seconds = 0;
  const problemsRun = new Set(tasks.map((t) => t.problem.id)).size;
  try {
    if (tasks.length > 0) {
      const pb = await makeBackend(opts, fail);
      const fd = openSync(samplesFile, 'a');
      const t0 = performance.now();
      let lastProgress = t0;
      let tasksDone = 0;
      try {
        const baseParams: SamplingParams = {
          maxNewTokens: opts.maxNewTokens,
          temperature: opts.temperature,
          topP: opts.topP,
          topK: opts.topK,
          stopTokenIds: [],
          stopStrings: [],
        };
        const paramsFor = (t: Task): SamplingParams => {
          if (t.samples === 'greedy') return { ...baseParams, temperature: 0, topP: 1, topK: 0, greedy: true, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
          if (opts.seed === undefined) return { ...baseParams };
          return { ...baseParams, seed: hash31(`${opts.seed}\u0000${t.problem.id}\u0000${t.samples[0]}`) };
        };
        await runTasks(tasks, pb.inflight, pb.perCall, async (batch) => {
          const reqs = batch.map((t) => pb.request(t.problem, t.samples === 'greedy' ? 1 : t.samples.length, paramsFor(t)));
          let gens: Generation[][];
          try {
            gens = await pb.backend.generate(reqs);
          } catch (e) {
            if (!pb.recordErrors || isOutage(e)) throw e;
            const msg = e instanceof Error ? e.message : String(e);
            for (const t of batch) {
              const indices: Array<number | 'greedy'> = t.samples === 'greedy' ? ['greedy'] : t.samples;
              const recs = indices.map((s) => errorRecord(t.problem, s, msg));
              writeSync(fd, recs.map((r) => `${JSON.stringify(r)}\n`).join(''));
              for (const r of recs) have.set(`${r.id}\u0000${r.sample}`, r);
              process.stderr.write(`eval: problem ${t.problem.id}: ${recs.length} sample${recs.length === 1 ? '' : 's'} recorded as errors: ${msg}\n`);
            }
            tasksDone += batch.length;
            return;
          }
          await Promise.all(
            batch.map(async (t, bi) => {
              const gs = gens[bi];
              const want = t.samples === 'greedy' ? 1 : t.samples.length;
              if (gs === undefined || gs.length !== want) throw new Error(`backend ${pb.backend.name} returned ${gs?.length ?? 0} generations for problem ${t.problem.id}, expected ${want}`);
              const indices: Array<number | 'greedy'> = t.samples === 'greedy' ? ['greedy'] : t.samples;
              const recs = await Promise.all(indices.map((s, i) => verifyGeneration(pool, t.problem, s, gs[i] as Generation)));
              writeSync(fd, recs.map((r) => `${JSON.stringify(r)}\n`).join(''));
              for (const r of recs) have.set(`${r.id}\u0000${r.sample}`, r);
              generated += recs.length;
            }),
          );
          tasksDone += batch.length;
          const now = performance.now();
          if (now - lastProgress > 5000 || tasksDone === tasks.length) {
            lastProgress = now;
            process.stderr.write(`eval: ${tasksDone}/${tasks.length} requests, ${generated} samples, ${((now - t0) / 1000).toFixed(1)} s\n`);
          }
        });
      } finally {
        closeSync(fd);
        await pb.backend.close();
      }
      seconds = (performance.now() - t0) / 1000;
    }

    const outcomes: ProblemOutcome[] = problems.map((p) => {
      const ss: SampleOutcome[] = [];
      for (let i = 0; i < samples; i++) ss.push(outcomeOf(have.get(`${p.id}\u0000${i}`) as SampleRecord));
      const o: ProblemOutcome = { id: p.id, samples: ss };
      const g = have.get(`${p.id}\u0000greedy`);
      if (settings.greedy && g !== undefined) o.greedy = outcomeOf(g);
      if (p.subject !== undefined) o.subject = p.subject;
      if (p.level !== undefined) o.level = p.level;
      return o;
    });
    const metrics = await computeMetrics(outcomes, { ks: opts.k, majKs: opts.majK, equivalent: poolEquivalence(pool) });
    let truncated = 0;
    let total = 0;
    for (const p of problems) {
      for (let i = 0; i < samples; i++) {
        total++;
        if (have.get(`${p.id}\u0000${i}`)?.finish_reason === 'length') truncated++;
      }
    }
    let errors = 0;
    for (const p of problems) {
      for (let i = 0; i < samples; i++) if (have.get(`${p.id}\u0000${i}`)?.error !== undefined) errors++;
      if (settings.greedy && have.get(`${p.id}\u0000greedy`)?.error !== undefined) errors++;
    }
    if (errors > 0) process.stderr.write(`eval: ${errors} sample${errors === 1 ? '' : 's'} recorded as errors (failed requests; "error" in ${samplesFile}; scored as wrong, not retried on resume)\n`);
    const st = pool.stats();
    const summary: EvalSummary = {
      ...metrics,
      samples_per_problem: samples,
      seconds_per_100_problems: problemsRun > 0 ? (seconds * 100) / problemsRun : null,
      truncated_rate: total === 0 ? 0 : truncated / total,
      generated_samples: generated,
      resumed_samples: resumed,
      errors,
      verifier: { timeouts: st.timeouts, crashes: st.crashes },
    };
    writeAtomic(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await pool.close();
  }
}

async function verifyGeneration(pool: VerifierPool, p: BenchmarkProblem, sample: number | 'greedy', g: Generation): Promise<SampleRecord> {
  const v = await pool.verify(g.text, p.gold);
  const rec: SampleRecord = {
    id: p.id,
    sample,
    gold: p.gold,
    correct: v.correct,
    extracted: v.extracted,
    reason: v.reason,
    finish_reason: g.finishReason,
    response: g.text,
  };
  if (g.tokenIds.length > 0) rec.tokens = g.tokenIds.length;
  if (p.subject !== undefined) rec.subject = p.subject;
  if (p.level !== undefined) rec.level = p.level;
  return rec;
}

/** The record of a sample whose request failed: wrong, no answer, the failure's message. */
function errorRecord(p: BenchmarkProblem, sample: number | 'greedy', error: string): SampleRecord {
  const rec: SampleRecord = { id: p.id, sample, gold: p.gold, correct: false, extracted: null, reason: 'error', finish_reason: 'stop', response: '', error };
  if (p.subject !== undefined) rec.subject = p.subject;
  if (p.level !== undefined) rec.level = p.level;
  return rec;
}
