// The evaluator: score generations against gold answers and summarise them as pass@k / maj@k / greedy accuracy.
// One scoring path serves every caller: `scoreGenerations` (a grader turns each generation into a verdict, the
// verdicts become sample records, the records become metrics through src/eval/metrics.ts) is what the trainer's
// held-out evaluation, `oreal eval --responses` and the task helpers call; `oreal eval --data` builds the same records
// one request at a time (so that they can be written as they come) and summarises them with the same `metricsOf`.
//
// The benchmark harness of `oreal eval` lives here too (src/cli/eval.ts only parses options and prints):
//
// Generation mode writes one record per verified sample to DIR/samples.jsonl as soon as it is known, and
// DIR/summary.json at the end (temp file + rename). The settings that shape samples are kept in DIR/settings.json;
// rerunning the same command resumes (skips (problem, sample) pairs already written), and refuses to when a setting
// differs, naming it. `k`, `concurrency`, `limit` and `json` may change between runs.
//
// Prompts: the user turn is the question followed by the prompt suffix (default: the Qwen2.5-Math instruction to
// reason step by step and box the answer), after an optional system prompt. A local model renders them with its chat
// template and samples with the local engine; an endpoint gets chat messages (api "chat") or a completions prompt
// (api "completions": rendered with the tokenizer's chat template when given, else the plain text).
//
// Requests: without a seed, one request per problem with n = its missing samples (servers and the local engine
// share the prompt across the n samples). With seed S, one request per sample (n = 1) with a seed derived from S,
// the problem id and the sample index, so every sample is reproducible, a resumed run included (given a backend that
// honours seeds). The greedy sample is one more request per problem.
//
// Failed requests (endpoint): when the server rejects a problem's request with a client error (HTTP 4xx other than
// 429, e.g. 400 context_length_exceeded) or a request still fails after the retries, that problem's samples are
// written as error records ("correct": false, "extracted": null, "error": message), counted as "errors" in the
// summary, and the run goes on. A network error (server unreachable after the retries) aborts the run instead. Error
// records count as written on resume (they are not retried); remove their lines from samples.jsonl, or use another
// output directory, to retry.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openBackend, type BackendName } from '../engine/index.js';
import { Tokenizer } from '../model/tokenizer.js';
import type { RemoteChatMessage, RemoteGenerationRequest } from '../sample/remote-backend.js';
import { ROLLOUT_BACKENDS, type RolloutBackendName } from '../sample/rollout-backends.js';
import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from '../sample/types.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { VerifierPool, type Verdict } from '../verify/index.js';
import { loadBenchmark, readResponses, type BenchmarkProblem } from './data.js';
import { computeMetrics, type AnswerEquivalence, type EvalMetrics, type MetricsOptions, type ProblemOutcome, type SampleOutcome } from './metrics.js';

export const DEFAULT_PROMPT_SUFFIX = '\nPlease reason step by step, and put your final answer within \\boxed{}.';

// ------------------------------------------------------------------------------------------------ scoring

/** What a generation is scored against: an id, the gold answer, and the keys of the breakdowns. */
export interface EvalProblem {
  id: string;
  gold: string;
  subject?: string;
  level?: string;
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

/** Verdicts on a batch of generations, one per item, in order. */
export type Grader<P extends EvalProblem> = (items: ReadonlyArray<{ problem: P; generation: Generation }>) => Promise<Verdict[]>;

/** The rule verifier through a (time-bounded) worker pool. */
export function poolGrader(pool: VerifierPool): Grader<EvalProblem> {
  return (items) => Promise.all(items.map((it) => pool.verify(it.generation.text, it.problem.gold)));
}

/** The generations of one problem: its samples in order, and the greedy one when there is one. */
export interface ProblemGenerations<P extends EvalProblem> {
  problem: P;
  samples: readonly Generation[];
  greedy?: Generation;
}

/** The records of one problem: its samples in order, and the greedy one when there is one. */
export interface ProblemRecords<P extends EvalProblem = EvalProblem> {
  problem: P;
  samples: SampleRecord[];
  greedy?: SampleRecord;
}

/** The record of a verified generation. */
export function sampleRecord(p: EvalProblem, sample: number | 'greedy', g: Generation, v: Verdict): SampleRecord {
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
function errorRecord(p: EvalProblem, sample: number | 'greedy', error: string): SampleRecord {
  const rec: SampleRecord = { id: p.id, sample, gold: p.gold, correct: false, extracted: null, reason: 'error', finish_reason: 'stop', response: '', error };
  if (p.subject !== undefined) rec.subject = p.subject;
  if (p.level !== undefined) rec.level = p.level;
  return rec;
}

function outcomeOf(r: SampleRecord): SampleOutcome {
  return { answer: r.extracted, correct: r.correct };
}

/** pass@k / maj@k / greedy (and breakdowns) of scored problems. */
export function metricsOf(rows: ReadonlyArray<ProblemRecords>, opts: MetricsOptions): Promise<EvalMetrics> {
  const outcomes = rows.map((r): ProblemOutcome => {
    const o: ProblemOutcome = { id: r.problem.id, samples: r.samples.map(outcomeOf) };
    if (r.greedy !== undefined) o.greedy = outcomeOf(r.greedy);
    if (r.problem.subject !== undefined) o.subject = r.problem.subject;
    if (r.problem.level !== undefined) o.level = r.problem.level;
    return o;
  });
  return computeMetrics(outcomes, opts);
}

/**
 * Grade every generation (one grader call for all of them) and summarise: the records per problem, in problem
 * order, and their metrics. `rows` must not be empty.
 */
export async function scoreGenerations<P extends EvalProblem>(
  rows: ReadonlyArray<ProblemGenerations<P>>,
  grade: Grader<P>,
  opts: MetricsOptions,
): Promise<{ records: ProblemRecords<P>[]; metrics: EvalMetrics }> {
  const items: Array<{ problem: P; generation: Generation; sample: number | 'greedy' }> = [];
  for (const r of rows) {
    r.samples.forEach((g, i) => items.push({ problem: r.problem, generation: g, sample: i }));
    if (r.greedy !== undefined) items.push({ problem: r.problem, generation: r.greedy, sample: 'greedy' });
  }
  const verdicts = await grade(items);
  if (verdicts.length !== items.length) throw new Error(`grader returned ${verdicts.length} verdicts for ${items.length} generations`);
  let k = 0;
  const records = rows.map((r): ProblemRecords<P> => {
    const out: ProblemRecords<P> = { problem: r.problem, samples: [] };
    for (const it of items.slice(k, k + r.samples.length + (r.greedy !== undefined ? 1 : 0))) {
      const rec = sampleRecord(it.problem, it.sample, it.generation, verdicts[k++] as Verdict);
      if (it.sample === 'greedy') out.greedy = rec;
      else out.samples.push(rec);
    }
    return out;
  });
  return { records, metrics: await metricsOf(records, opts) };
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

// ------------------------------------------------------------------------------------------------ benchmark harness

/** Options of a benchmark run (`oreal eval`'s flags, camel-cased). */
export interface EvalOptions {
  data?: string;
  responses?: string;
  questionField?: string;
  answerField?: string;
  idField?: string;
  model?: string;
  endpoint?: string;
  modelName?: string;
  /** Rollout backend by name; default: local with `model`, remote with `endpoint`. */
  rollout?: RolloutBackendName;
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

/** What a run returns and writes to summary.json (`oreal eval` prints it). */
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

/** Options that do not go together, or an output directory the run refuses: the CLI reports it as a usage error. */
export class EvalOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalOptionError';
  }
}

function fail(msg: string): never {
  throw new EvalOptionError(msg);
}

/** Whether a samples file holds anything (a torn first line counts: it is repaired on resume, not discarded). */
function hasRecords(file: string): boolean {
  return existsSync(file) && statSync(file).size > 0;
}

/** Score a responses file; with `out` also writes samples.jsonl and summary.json there (replacing them). */
export async function runResponsesEval(opts: EvalOptions): Promise<EvalSummary> {
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
    const asGeneration = (text: string): Generation => ({ text, tokenIds: [], finishReason: 'stop', logprobs: [] });
    const scored = await scoreGenerations(
      records.map((r) => ({ problem: r, samples: r.responses.map(asGeneration), ...(r.greedy !== undefined ? { greedy: asGeneration(r.greedy) } : {}) })),
      poolGrader(pool),
      { ks: opts.k, majKs: opts.majK, equivalent: poolEquivalence(pool) },
    );
    const seconds = (performance.now() - t0) / 1000;
    const st = pool.stats();
    const summary: EvalSummary = {
      ...scored.metrics,
      samples_per_problem: Math.min(...records.map((r) => r.responses.length)),
      seconds_per_100_problems: (seconds * 100) / records.length,
      verifier: { timeouts: st.timeouts, crashes: st.crashes },
    };
    if (opts.out !== undefined) {
      const dir = resolve(opts.out);
      mkdirSync(dir, { recursive: true });
      const all = scored.records.flatMap((r) => (r.greedy !== undefined ? [...r.samples, r.greedy] : r.samples));
      writeFileAtomic(join(dir, 'samples.jsonl'), all.map((r) => `${JSON.stringify(r)}\n`).join(''));
      writeFileAtomic(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    }
    return summary;
  } finally {
    await pool.close();
  }
}

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

function messagesFor(p: BenchmarkProblem, opts: EvalOptions): RemoteChatMessage[] {
  const m: RemoteChatMessage[] = [];
  if (opts.systemPrompt !== undefined) m.push({ role: 'system', content: opts.systemPrompt });
  m.push({ role: 'user', content: `${p.question}${opts.promptSuffix}` });
  return m;
}

/** The rollout backend a run uses: --rollout, else the local engine with --model and a server with --endpoint. */
function rolloutName(opts: EvalOptions): RolloutBackendName {
  return opts.rollout ?? (opts.model !== undefined ? 'local' : 'remote');
}

/** The engine on the checkpoint in `dir`, on its own compute backend (disposed by close()). */
async function openEngine(name: RolloutBackendName, dir: string, opts: EvalOptions): Promise<RolloutBackend> {
  const compute = await openBackend(opts.backend);
  let rb: RolloutBackend;
  try {
    rb = ROLLOUT_BACKENDS[name].create({ checkpoint: { dir, compute, maxBatch: opts.concurrency } });
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

async function makeBackend(opts: EvalOptions): Promise<PromptedBackend> {
  const name = rolloutName(opts);
  if (ROLLOUT_BACKENDS[name].kind === 'engine') {
    const dir = resolve(opts.model as string); // checked by runGenerationEval
    const tok = Tokenizer.load(dir);
    const backend = await openEngine(name, dir, opts);
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
  const backend = ROLLOUT_BACKENDS[name].create({
    url: opts.endpoint,
    model: opts.modelName,
    concurrency: opts.concurrency,
    timeoutMs: opts.timeout,
    retries: opts.retries,
  });
  const tok = opts.tokenizer !== undefined ? Tokenizer.load(resolve(opts.tokenizer)) : null;
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

/** Sample a model on a benchmark, verify every sample as it comes (resuming an earlier run in `out`), summarise. */
export async function runGenerationEval(opts: EvalOptions): Promise<EvalSummary> {
  if (opts.data === undefined) return fail('give --data FILE.jsonl (or --responses FILE.jsonl)');
  if (opts.out === undefined) return fail('--out DIR is required with --data');
  if (opts.samples === undefined) return fail('--samples N is required with --data');
  if (opts.model !== undefined && opts.endpoint !== undefined) fail('give either --model or --endpoint, not both');
  if (opts.model !== undefined && opts.modelName !== undefined) fail('--model-name goes with --endpoint');
  if (opts.tokenizer !== undefined && (opts.endpoint === undefined || opts.api !== 'completions')) fail('--tokenizer goes with --endpoint --api completions');
  const samples = opts.samples;
  const maxK = Math.max(...opts.k, ...(opts.majK ?? []));
  if (maxK > samples) fail(`k=${maxK} exceeds --samples ${samples}`);

  const rollout = rolloutName(opts);
  const engine = ROLLOUT_BACKENDS[rollout].kind === 'engine';
  if (engine && opts.model === undefined) fail(`--rollout ${rollout} samples in this process: give --model DIR`);

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
    backend: engine ? `${rollout}:${resolve(opts.model as string)}` : `${rollout === 'remote' ? 'endpoint' : rollout}:${opts.endpoint ?? ''}#${opts.modelName ?? ''}`,
    api: engine ? null : opts.api,
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
      writeFileAtomic(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
    }
  } else {
    if (hasRecords(samplesFile)) fail(`${samplesFile} exists without settings.json: refusing to mix runs`);
    writeFileAtomic(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
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
      const pb = await makeBackend(opts);
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
              const recs = await Promise.all(
                indices.map(async (s, i) => {
                  const g = gs[i] as Generation;
                  return sampleRecord(t.problem, s, g, await pool.verify(g.text, t.problem.gold));
                }),
              );
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

    const rows: ProblemRecords<BenchmarkProblem>[] = problems.map((p) => {
      const row: ProblemRecords<BenchmarkProblem> = { problem: p, samples: [] };
      for (let i = 0; i < samples; i++) row.samples.push(have.get(`${p.id}\u0000${i}`) as SampleRecord);
      const g = have.get(`${p.id}\u0000greedy`);
      if (settings.greedy && g !== undefined) row.greedy = g;
      return row;
    });
    const metrics = await metricsOf(rows, { ks: opts.k, majKs: opts.majK, equivalent: poolEquivalence(pool) });
    const all = rows.flatMap((r) => r.samples);
    const truncated = all.filter((r) => r?.finish_reason === 'length').length;
    let errors = all.filter((r) => r?.error !== undefined).length;
    for (const r of rows) if (r.greedy?.error !== undefined) errors++;
    if (errors > 0) process.stderr.write(`eval: ${errors} sample${errors === 1 ? '' : 's'} recorded as errors (failed requests; "error" in ${samplesFile}; scored as wrong, not retried on resume)\n`);
    const st = pool.stats();
    const summary: EvalSummary = {
      ...metrics,
      samples_per_problem: samples,
      seconds_per_100_problems: problemsRun > 0 ? (seconds * 100) / problemsRun : null,
      truncated_rate: all.length === 0 ? 0 : truncated / all.length,
      generated_samples: generated,
      resumed_samples: resumed,
      errors,
      verifier: { timeouts: st.timeouts, crashes: st.crashes },
    };
    writeFileAtomic(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await pool.close();
  }
}
