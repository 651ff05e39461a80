// Prompt data for RL: JSONL files of {question, gold_answer, pass_rate} (the OREAL-RL-Prompts format), the
// reference's offline difficulty balancing by pass rate, and a seeded, shuffled epoch iterator whose position is a
// plain serialisable value (for resume).
//
// Every data error names `file:line:field`.

import { DataError, goldFromAnswerField, readJsonlObjects } from '../eval/data.js';
import type { DifficultyBin } from './config.js';
import { mixSeed, seededRng } from '../util/rng.js';

export { DataError } from '../eval/data.js';

/** One RL prompt. */
export interface PromptRecord {
  question: string;
  gold: string;
  /** Offline pass rate of the initial policy in [0, 1]; null when the file has none. */
  passRate: number | null;
  /** `file:line` it came from. */
  source: string;
}

export interface LoadPromptsOptions {
  /** Every record must carry a `pass_rate` (needed for difficulty balancing). Default false. */
  requirePassRate?: boolean;
  /** Read at most this many records per file. */
  limit?: number;
}

function textOf(file: string, line: number, rec: Record<string, unknown>, fields: readonly string[]): { field: string; text: string } {
  for (const f of fields) {
    if (!(f in rec)) continue;
    const v = rec[f];
    if (typeof v === 'string') {
      if (v.trim() === '') throw new DataError(file, line, f, 'empty');
      return { field: f, text: v };
    }
    if (typeof v === 'number' && Number.isFinite(v)) return { field: f, text: String(v) };
    throw new DataError(file, line, f, `expected a string or number, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  throw new DataError(file, line, fields[0]!, `missing${fields.length > 1 ? ` (also tried ${fields.slice(1).join(', ')})` : ''}`);
}

/**
 * Reads prompt JSONL files. Fields: `question` (or `problem`), `gold_answer` (or `answer`, with the GSM8K `####`
 * convention), `pass_rate` (a number in [0, 1], optional unless `requirePassRate`).
 */
export function loadPrompts(files: string | readonly string[], opts: LoadPromptsOptions = {}): PromptRecord[] {
  const list = typeof files === 'string' ? [files] : files;
  const out: PromptRecord[] = [];
  for (const file of list) {
    let n = 0;
    for (const { line, rec } of readJsonlObjects(file)) {
      if (opts.limit !== undefined && n >= opts.limit) break;
      const question = textOf(file, line, rec, ['question', 'problem']).text;
      const g = textOf(file, line, rec, ['gold_answer', 'answer']);
      const gold = goldFromAnswerField(g.text);
      if (gold === '') throw new DataError(file, line, g.field, 'empty gold answer');
      let passRate: number | null = null;
      if ('pass_rate' in rec && rec['pass_rate'] !== null) {
        const v = rec['pass_rate'];
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new DataError(file, line, 'pass_rate', `expected a number, got ${JSON.stringify(v)}`);
        if (v < 0 || v > 1) throw new DataError(file, line, 'pass_rate', `must be in [0, 1], got ${v}`);
        passRate = v;
      } else if (opts.requirePassRate) {
        throw new DataError(file, line, 'pass_rate', 'missing (needed by data_difficulty_balance_cfg; set it to null to train without balancing)');
      }
      out.push({ question, gold, passRate, source: `${file}:${line}` });
      n++;
    }
    if (n === 0) throw new Error(`${file}: no prompts`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Difficulty balancing.

export interface BinCount extends DifficultyBin {
  /** Prompts that fell in this bin, and how many copies they became. */
  prompts: number;
  copies: number;
}

export interface BalanceResult {
  /** The balanced prompt list: each prompt repeated per its bin, in file order. */
  prompts: PromptRecord[];
  bins: BinCount[];
  /** Prompts that fell in no bin (the reference's ≥ 0.8) and were dropped. */
  dropped: number;
  /** A one-line summary for the log. */
  summary: string;
}

/**
 * The reference's `data_difficulty_balance_cfg`: a prompt with lo ≤ pass_rate < hi is repeated `repeat` times (the
 * first matching bin wins); a prompt in no bin is dropped. Unlike the reference, the drop is counted and reported.
 */
export function balanceByDifficulty(prompts: readonly PromptRecord[], bins: readonly DifficultyBin[]): BalanceResult {
  const counts: BinCount[] = bins.map((b) => ({ ...b, prompts: 0, copies: 0 }));
  const out: PromptRecord[] = [];
  let dropped = 0;
  for (const p of prompts) {
    if (p.passRate === null) throw new Error(`${p.source}:pass_rate: missing (difficulty balancing needs it)`);
    const i = bins.findIndex((b) => p.passRate! >= b.lo && p.passRate! < b.hi);
    if (i < 0) {
      dropped++;
      continue;
    }
    const c = counts[i]!;
    c.prompts++;
    c.copies += c.repeat;
    for (let r = 0; r < c.repeat; r++) out.push(p);
  }
  const parts = counts.map((c) => `[${c.lo},${c.hi})×${c.repeat}: ${c.prompts} prompts → ${c.copies}`);
  const summary =
    `difficulty balancing: ${prompts.length} prompts → ${out.length} entries; ${parts.join('; ')}; ` +
    `dropped ${dropped} prompt${dropped === 1 ? '' : 's'} in no bin` +
    (dropped > 0 && bins.length > 0 ? ` (pass_rate ≥ ${Math.max(...bins.map((b) => b.hi))} or between bins)` : '');
  return { prompts: out, bins: counts, dropped, summary };
}

// ---------------------------------------------------------------------------------------------------------------
// Seeds and the epoch iterator.

/** Where the iterator stands: the epoch and the index of the next item within that epoch's permutation. */
export interface StreamPosition {
  epoch: number;
  offset: number;
}

/** A seeded permutation of 0..n−1 (Fisher–Yates over mulberry32). */
export function seededPermutation(n: number, seed: number): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  const rng = seededRng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(rng() * (i + 1)));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}

/**
 * Endless shuffled passes over a list: epoch e visits the items in the permutation seeded by (seed, e). `next(n)`
 * continues across epoch boundaries. The position is a plain value: `new PromptStream(items, seed, pos)` resumes
 * exactly where `position()` was taken.
 */
export class PromptStream<T> {
  private epoch: number;
  private offset: number;
  private perm: number[];

  constructor(
    private readonly items: readonly T[],
    private readonly seed: number,
    position: StreamPosition = { epoch: 0, offset: 0 },
  ) {
    if (items.length === 0) throw new Error('PromptStream: no items (every prompt was dropped?)');
    if (!Number.isInteger(position.epoch) || position.epoch < 0 || !Number.isInteger(position.offset) || position.offset < 0 || position.offset > items.length)
      throw new Error(`PromptStream: invalid position ${JSON.stringify(position)} for ${items.length} items`);
    this.epoch = position.epoch;
    this.offset = position.offset;
    this.perm = seededPermutation(items.length, mixSeed(seed, 0x5eed, this.epoch));
  }

  get size(): number {
    return this.items.length;
  }

  position(): StreamPosition {
    return { epoch: this.epoch, offset: this.offset };
  }

  next(n: number): T[] {
    const out: T[] = [];
    while (out.length < n) {
      if (this.offset >= this.items.length) {
        this.epoch++;
        this.offset = 0;
        this.perm = seededPermutation(this.items.length, mixSeed(this.seed, 0x5eed, this.epoch));
      }
      out.push(this.items[this.perm[this.offset++]!]!);
    }
    return out;
  }
}
