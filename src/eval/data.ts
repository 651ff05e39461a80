// Benchmark and response files for evaluation (JSON Lines, one object per line).
//
// Benchmark records: the question is read from `questionField` (default `problem`; when that option is not given
// and a record has no `problem`, its `question` is used), the gold answer from `answerField` (when not given: `answer`
// if the first record has it, else `gold_answer`, the field of the RL prompt files and of data/arith-*.jsonl).
// A gold answer that contains `####` (the GSM8K convention: worked solution, then `#### <answer>`) is replaced by
// the text after the last `####`. Optional `subject` and `level` fields feed the metric breakdowns. Ids come from
// `idField` when given, else the first of `id`, `unique_id`, `idx` present, else `line<N>`.
//
// Every error names `file:line` and, where one is at fault, the field: `data.jsonl:7:answer: missing`.

import { readFileSync } from 'node:fs';

/** One benchmark problem. */
export interface BenchmarkProblem {
  id: string;
  question: string;
  gold: string;
  subject?: string;
  level?: string;
  /** 1-based line in the file. */
  line: number;
}

export interface BenchmarkReadOptions {
  /** Field holding the question (default `problem`, falling back to `question` per record). */
  questionField?: string;
  /** Field holding the gold answer (default: `answer`, or `gold_answer` when the first record has only that). */
  answerField?: string;
  /** Field holding the id (default: `id`, `unique_id`, `idx`, else the line number). */
  idField?: string;
  /** Read only the first `limit` problems. */
  limit?: number;
}

/** Error in an input file; the message starts with `file:line` (and `:field` when one is at fault). */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string | null,
    detail: string,
  ) {
    super(`${file}:${line}${field === null ? '' : `:${field}`}: ${detail}`);
    this.name = 'DataError';
  }
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse a JSONL file into objects with their line numbers (blank lines skipped). */
export function readJsonlObjects(file: string): Array<{ line: number; rec: Json }> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  const out: Array<{ line: number; rec: Json }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(raw);
    } catch (e) {
      throw new DataError(file, i + 1, null, `invalid JSON: ${(e as Error).message}`);
    }
    if (!isRecord(rec)) throw new DataError(file, i + 1, null, 'not a JSON object');
    out.push({ line: i + 1, rec });
  }
  return out;
}

/** A scalar field as text: strings as they are, finite numbers in decimal; anything else is an error. */
function textField(file: string, line: number, rec: Json, field: string, what: string): string {
  if (!(field in rec)) throw new DataError(file, line, field, `missing (${what})`);
  const v = rec[field];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return v.toString();
  throw new DataError(file, line, field, `expected a string or number (${what}), got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
}

/** Apply the `#### answer` convention: the text after the last `####`, trimmed; other answers are trimmed only. */
export function goldFromAnswerField(value: string): string {
  const i = value.lastIndexOf('####');
  return (i >= 0 ? value.slice(i + 4) : value).trim();
}

function optionalLabel(rec: Json, field: string): string | undefined {
  const v = rec[field];
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string' || v.trim() === '') return undefined;
  const m = /^\s*level\s+(\S+)\s*$/i.exec(v); // "Level 3" → "3"
  return m !== null ? (m[1] as string) : v.trim();
}

function recordId(file: string, line: number, rec: Json, idField: string | undefined): string {
  if (idField !== undefined) {
    const id = textField(file, line, rec, idField, 'id');
    if (id === '') throw new DataError(file, line, idField, 'empty id');
    return id;
  }
  for (const f of ['id', 'unique_id', 'idx']) {
    const v = rec[f];
    if ((typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v))) return String(v);
  }
  return `line${line}`;
}

/** Gold answer fields tried, in order, when none is named. */
const ANSWER_FIELDS = ['answer', 'gold_answer'] as const;

/** A benchmark file's problems, and the field their gold answers came from. */
export interface Benchmark {
  problems: BenchmarkProblem[];
  answerField: string;
}

/** Read a benchmark file (see the file header). Ids must be unique. */
export function readBenchmark(file: string, opts: BenchmarkReadOptions = {}): BenchmarkProblem[] {
  return loadBenchmark(file, opts).problems;
}

/** Read a benchmark file, and say which field held the gold answers (detected when `opts.answerField` is not given). */
export function loadBenchmark(file: string, opts: BenchmarkReadOptions = {}): Benchmark {
  let answerField = opts.answerField;
  const limit = opts.limit ?? Infinity;
  const out: BenchmarkProblem[] = [];
  const seen = new Map<string, number>();
  for (const { line, rec } of readJsonlObjects(file)) {
    if (out.length >= limit) break;
    let qField = opts.questionField ?? 'problem';
    if (opts.questionField === undefined && !('problem' in rec) && 'question' in rec) qField = 'question';
    const question = textField(file, line, rec, qField, opts.questionField === undefined ? 'question; tried "problem" and "question"' : 'question');
    if (question.trim() === '') throw new DataError(file, line, qField, 'empty question');
    if (answerField === undefined) {
      answerField = ANSWER_FIELDS.find((f) => f in rec);
      if (answerField === undefined) {
        throw new DataError(
          file,
          line,
          ANSWER_FIELDS[0],
          `missing (gold answer; tried ${ANSWER_FIELDS.map((f) => `"${f}"`).join(' and ')}; the record has ${Object.keys(rec).join(', ') || 'no fields'}; name the field with --answer-field)`,
        );
      }
    }
    const gold = goldFromAnswerField(textField(file, line, rec, answerField, 'gold answer'));
    if (gold === '') throw new DataError(file, line, answerField, 'empty gold answer');
    const id = recordId(file, line, rec, opts.idField);
    const prev = seen.get(id);
    if (prev !== undefined) throw new DataError(file, line, opts.idField ?? null, `duplicate id ${JSON.stringify(id)} (first on line ${prev})`);
    seen.set(id, line);
    const p: BenchmarkProblem = { id, question, gold, line };
    const subject = optionalLabel(rec, 'subject');
    if (subject !== undefined) p.subject = subject;
    const level = optionalLabel(rec, 'level');
    if (level !== undefined) p.level = level;
    out.push(p);
  }
  if (out.length === 0 || answerField === undefined) throw new Error(`${file}: no records`);
  return { problems: out, answerField };
}

/** One line of a `--responses` file: existing generations of one problem. */
export interface ResponsesRecord {
  id: string;
  gold: string;
  responses: string[];
  /** Optional greedy generation. */
  greedy?: string;
  subject?: string;
  level?: string;
  line: number;
}

/**
 * Read a `--responses` file: lines `{"id", "gold", "responses": [text, ...]}` with optional `greedy` (text),
 * `subject` and `level`. The gold follows the same `####` convention as benchmark answers. Ids must be unique.
 */
export function readResponses(file: string, opts: { limit?: number } = {}): ResponsesRecord[] {
  const limit = opts.limit ?? Infinity;
  const out: ResponsesRecord[] = [];
  const seen = new Map<string, number>();
  for (const { line, rec } of readJsonlObjects(file)) {
    if (out.length >= limit) break;
    const id = textField(file, line, rec, 'id', 'id');
    const prev = seen.get(id);
    if (prev !== undefined) throw new DataError(file, line, 'id', `duplicate id ${JSON.stringify(id)} (first on line ${prev})`);
    seen.set(id, line);
    const gold = goldFromAnswerField(textField(file, line, rec, 'gold', 'gold answer'));
    if (gold === '') throw new DataError(file, line, 'gold', 'empty gold answer');
    const rs = rec.responses;
    if (!Array.isArray(rs)) throw new DataError(file, line, 'responses', 'expected an array of strings');
    if (rs.length === 0) throw new DataError(file, line, 'responses', 'empty array');
    rs.forEach((r: unknown, i: number) => {
      if (typeof r !== 'string') throw new DataError(file, line, `responses[${i}]`, 'expected a string');
    });
    const r: ResponsesRecord = { id, gold, responses: rs as string[], line };
    if ('greedy' in rec) {
      if (typeof rec.greedy !== 'string') throw new DataError(file, line, 'greedy', 'expected a string');
      r.greedy = rec.greedy;
    }
    const subject = optionalLabel(rec, 'subject');
    if (subject !== undefined) r.subject = subject;
    const level = optionalLabel(rec, 'level');
    if (level !== undefined) r.level = level;
    out.push(r);
  }
  if (out.length === 0) throw new Error(`${file}: no records`);
  return out;
}
