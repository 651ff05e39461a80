// A pool of persistent worker threads that run the rule-based verifier with a hard time bound per step.
//
// Each verification is two steps, each run in a worker with its own deadline:
//   1. extraction of the final answer from the (size-capped) response;
//   2. comparison of the extracted answer with the (unwrapped) gold, unless the (gold, answer) pair is cached.
// A step that overruns its deadline gets its worker terminated (the only way to stop a synchronous loop in V8)
// and a fresh worker started in its place; the verdict is then `correct: false` with a "timeout after N ms"
// reason and the pool's `timeouts` counter goes up. A worker that dies on its own (out of memory under
// `resourceLimits`, an uncaught error) is replaced the same way and counted under `crashes`.
//
// The helpers that shape inputs and verdicts (`capResponse`, `unwrapGold`, `combineVerdict`) live here so the
// pool and the in-thread `verifyResponse` (index.ts) apply exactly the same rules.

import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { Comparison, Extraction, Verdict } from './types.js';

// ---------------------------------------------------------------------------------------------------------------
// Input shaping shared by the pool and the in-thread verifier.

/**
 * Responses longer than this many UTF-16 code units are cut to their last {@link RESPONSE_TAIL_CHARS}.
 * 256 Ki characters is about 64k tokens of English/LaTeX, above any generation budget used in OREAL
 * (16k tokens in the reference), so genuine responses are never cut; only runaway or adversarial text is.
 */
export const MAX_RESPONSE_CHARS = 256 * 1024;

/**
 * How much of an over-long response is kept. The verifier only reads the end of a response (the last
 * `\boxed{}`, the last answer phrase; the "whole short response" fallback never applies to such lengths), and a
 * real final answer plus its concluding sentence is far below 64 Ki characters. Keeping the tail bounds the cost of
 * extraction and of copying the text to a worker, whatever the input size.
 */
export const RESPONSE_TAIL_CHARS = 64 * 1024;

/**
 * Bound an over-long response so extraction sees what it would have judged anyway:
 * - text from the first `<|im_start|>` on is a hallucinated new turn and is dropped first;
 * - then only the last {@link RESPONSE_TAIL_CHARS} characters are kept;
 * - if the cut falls inside a still-open `<think>` block, `<think>` is put back in front so the response is still
 *   seen as unfinished (a box inside unfinished thinking is never a final answer).
 * Responses within {@link MAX_RESPONSE_CHARS} are returned unchanged.
 */
export function capResponse(response: string, maxChars = MAX_RESPONSE_CHARS, tailChars = RESPONSE_TAIL_CHARS): string {
  if (response.length <= maxChars) return response;
  let text = response;
  const turn = text.indexOf('<|im_start|>');
  if (turn >= 0) text = text.slice(0, turn);
  if (text.length <= maxChars) return text;
  const cut = text.length - tailChars;
  let tail = text.slice(cut);
  const open = text.lastIndexOf('<think>', cut);
  if (open >= 0) {
    const close = text.indexOf('</think>', open);
    // Open block not closed before the cut (closing tag absent or inside the kept tail): keep it open.
    if (close < 0 || close + '</think>'.length > cut) tail = '<think>' + tail;
  }
  return tail;
}

/** Remove `\boxed{…}` / `\fbox{…}` (and surrounding `$`) around a gold answer, repeatedly; otherwise trim only. */
export function unwrapGold(gold: string): string {
  let g = gold.trim();
  for (let guard = 0; guard < 8; guard++) {
    if (g.length >= 2 && g.startsWith('$') && g.endsWith('$')) {
      const inner = g.replace(/^\$+/, '').replace(/\$+$/, '').trim();
      if (inner !== '' && !inner.includes('$')) {
        g = inner;
        continue;
      }
    }
    const m = /^\\(?:boxed|fbox)\s*\{/.exec(g);
    if (m === null) break;
    const open = m[0].length - 1;
    if (matchingBrace(g, open) !== g.length - 1) break;
    g = g.slice(open + 1, -1).trim();
  }
  return g;
}

/** Index of the `}` matching the `{` at `open` (skipping escaped braces), or -1. */
function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \ */) {
      i++;
      continue;
    }
    if (c === 123 /* { */) depth++;
    else if (c === 125 /* } */) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** Verdict from an extraction and (when an answer was found) a comparison. */
export function combineVerdict(extraction: Extraction, comparison: Comparison | null): Verdict {
  if (extraction.answer === null || comparison === null) {
    return { correct: false, extracted: extraction.answer, reason: extraction.reason };
  }
  return {
    correct: comparison.equal,
    extracted: extraction.answer,
    reason: `${extraction.reason}; ${comparison.reason}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Messages between the pool and its workers (see worker.ts).

/** @internal Request sent to a worker. */
export type WorkerRequest =
  | { id: number; op: 'extract'; response: string }
  | { id: number; op: 'compare'; gold: string; answer: string };

/** @internal Reply from a worker. */
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'result'; id: number; op: 'extract'; extraction: Extraction }
  | { type: 'result'; id: number; op: 'compare'; comparison: Comparison };

/** @internal Data handed to each worker at start. */
export interface WorkerInit {
  /** Enables the test hooks of worker.ts (spinning, crashing, out-of-memory on marker inputs). */
  testHooks: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// The pool.

/** Options of {@link VerifierPool}. */
export interface VerifierPoolOptions {
  /** Worker threads (default min(2, available cores)). */
  threads?: number;
  /** Hard time bound of each extraction and each comparison, in milliseconds (default 2000). */
  timeoutMs?: number;
  /** Entries of the (gold, extracted answer) LRU cache; 0 disables it (default 10000). */
  cacheSize?: number;
  /** V8 old-generation heap limit of each worker in MiB (default 512). */
  maxHeapMb?: number;
  /** For tests only: enable the marker inputs of worker.ts that spin, crash or exhaust memory. */
  testHooks?: boolean;
}

/** Counters since the pool was created. */
export interface VerifierPoolStats {
  /** Verifications answered (including cache hits, timeouts and crashes). */
  verified: number;
  /** Verifications answered from the (gold, answer) cache without a comparison. */
  cacheHits: number;
  /** Extractions or comparisons stopped at the time bound (worker terminated and replaced). */
  timeouts: number;
  /** Workers that died on their own (e.g. out of memory) while working; the task got a failed verdict. */
  crashes: number;
  /** Workers started to replace a terminated or dead one. */
  respawns: number;
  /** Responses cut by {@link capResponse}. */
  truncated: number;
}

/** Keys longer than this are not cached (bounds the cache's memory to cacheSize × 2 × this). */
const MAX_CACHE_KEY_CHARS = 4096;
/** After this many workers in a row die before becoming ready, the pool gives up (a broken install, not bad input). */
const MAX_START_FAILURES = 3;

interface Job {
  req: WorkerRequest;
  resolve: (reply: WorkerReply & { type: 'result' }) => void;
  reject: (err: Error) => void;
  /** Called instead of resolve when the worker is killed at the deadline or dies. */
  onFail: (why: 'timeout' | 'crash', detail: string) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  /** Set when the pool itself terminates this worker, so its exit is not treated as a crash. */
  retired: boolean;
}

type StepOutcome<T> = { ok: true; value: T } | { ok: false; why: 'timeout' | 'crash'; detail: string };

/**
 * Persistent worker threads running the rule verifier with a hard per-step time bound and an LRU cache.
 * `verify` never rejects for a bad input: every failure becomes a `correct: false` verdict that says why.
 * It rejects only after `close()` or when workers cannot start at all.
 */
export class VerifierPool {
  readonly threads: number;
  readonly timeoutMs: number;
  readonly cacheSize: number;
  private readonly maxHeapMb: number;
  private readonly testHooks: boolean;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly cache = new Map<string, Comparison>();
  private readonly counters: VerifierPoolStats = {
    verified: 0,
    cacheHits: 0,
    timeouts: 0,
    crashes: 0,
    respawns: 0,
    truncated: 0,
  };
  private nextId = 1;
  private pending = 0;
  private closing = false;
  private closed = false;
  private startFailures = 0;
  private fatal: Error | null = null;
  private drained: (() => void) | null = null;
  private closePromise: Promise<void> | null = null;

  constructor(opts: VerifierPoolOptions = {}) {
    const threads = opts.threads ?? Math.max(1, Math.min(2, availableParallelism()));
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`VerifierPool: threads must be a positive integer, got ${threads}`);
    const timeoutMs = opts.timeoutMs ?? 2000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`VerifierPool: timeoutMs must be positive, got ${timeoutMs}`);
    const cacheSize = opts.cacheSize ?? 10000;
    if (!Number.isInteger(cacheSize) || cacheSize < 0) throw new Error(`VerifierPool: cacheSize must be a non-negative integer, got ${cacheSize}`);
    this.threads = threads;
    this.timeoutMs = timeoutMs;
    this.cacheSize = cacheSize;
    this.maxHeapMb = opts.maxHeapMb ?? 512;
    this.testHooks = opts.testHooks ?? false;
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  /** A copy of the counters. */
  stats(): VerifierPoolStats {
    return { ...this.counters };
  }

  /** Verify one response against one gold answer (gold may be wrapped in `\boxed{}`). */
  async verify(response: string, gold: string): Promise<Verdict> {
    if (this.closing) throw new Error('VerifierPool: verify() after close()');
    if (this.fatal) throw this.fatal;
    if (typeof response !== 'string' || typeof gold !== 'string') throw new TypeError('VerifierPool: response and gold must be strings');
    if (this.pending++ === 0) this.setRefs(true);
    try {
      const verdict = await this.verifyInner(response, gold);
      this.counters.verified++;
      return verdict;
    } finally {
      if (--this.pending === 0) {
        this.setRefs(false);
        if (this.drained) this.drained();
      }
    }
  }

  /** Wait for queued and running verifications to finish (each is time-bounded), then stop the workers. */
  close(): Promise<void> {
    if (this.closePromise === null) this.closePromise = this.shutdown();
    return this.closePromise;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    if (this.pending > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.closed = true;
    const exits = this.slots.map((s) => {
      s.retired = true;
      if (s.timer) clearTimeout(s.timer);
      return s.worker.terminate();
    });
    this.slots.length = 0;
    await Promise.allSettled(exits);
  }

  private async verifyInner(response: string, gold: string): Promise<Verdict> {
    const capped = capResponse(response);
    if (capped !== response) this.counters.truncated++;
    const g = unwrapGold(gold);

    const ex = await this.run<Extraction>({ id: this.nextId++, op: 'extract', response: capped });
    if (!ex.ok) return { correct: false, extracted: null, reason: `${ex.detail} during extraction` };
    const extraction = ex.value;
    if (extraction.answer === null) return combineVerdict(extraction, null);

    const key = g.length + extraction.answer.length <= MAX_CACHE_KEY_CHARS ? `${g}\u0000${extraction.answer}` : null;
    if (key !== null && this.cacheSize > 0) {
      const hit = this.cache.get(key);
      if (hit !== undefined) {
        this.cache.delete(key);
        this.cache.set(key, hit); // most recently used goes last
        this.counters.cacheHits++;
        return combineVerdict(extraction, hit); // the extraction reason is this response's own

      }
    }

    const cmp = await this.run<Comparison>({ id: this.nextId++, op: 'compare', gold: g, answer: extraction.answer });
    let comparison: Comparison;
    if (cmp.ok) comparison = cmp.value;
    else comparison = { equal: false, reason: cmp.detail };
    if (key !== null && this.cacheSize > 0 && (cmp.ok || cmp.why === 'timeout')) {
      // Timeouts are cached too (marked as such): a pair that ran 2 s once would do so again, and repeats are
      // common in RL groups. Crashes are not cached (they may come from memory pressure of earlier tasks).
      this.cache.set(key, cmp.ok ? comparison : { equal: false, reason: `${comparison.reason} (cached)` });
      if (this.cache.size > this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
    }
    return combineVerdict(extraction, comparison);
  }

  /** Queue one step and wait for its outcome. */
  private run<T>(req: WorkerRequest): Promise<StepOutcome<T>> {
    return new Promise<StepOutcome<T>>((resolve, reject) => {
      const job: Job = {
        req,
        resolve: (reply) => {
          const value = (reply.op === 'extract' ? reply.extraction : reply.comparison) as T;
          resolve({ ok: true, value });
        },
        reject,
        onFail: (why, detail) => resolve({ ok: false, why, detail }),
      };
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Give queued jobs to idle, ready workers. */
  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.job !== null) continue;
      const job = this.queue.shift() as Job;
      slot.job = job;
      slot.timer = setTimeout(() => this.onTimeout(slot), this.timeoutMs);
      slot.worker.postMessage(job.req);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { testHooks: this.testHooks } satisfies WorkerInit,
      // Inherit the parent's Node flags except those that only make sense for a main script (`node --input-type=…
      // -e`): a worker given them fails to start.
      execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      resourceLimits: {
        maxOldGenerationSizeMb: this.maxHeapMb,
        maxYoungGenerationSizeMb: 32,
        stackSizeMb: 4,
      },
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker, ready: false, job: null, timer: null, retired: false };
    // An idle pool never keeps the process alive; while verifications are pending every worker is ref'd.
    if (this.pending === 0) worker.unref();
    worker.on('message', (msg: WorkerReply) => this.onMessage(slot, msg));
    worker.on('error', (err: Error) => this.onDeath(slot, `worker error: ${err.message}`));
    worker.on('exit', (code: number) => this.onDeath(slot, `worker exited with code ${code}`));
    return slot;
  }

  private onMessage(slot: Slot, msg: WorkerReply): void {
    if (slot.retired) return;
    if (msg.type === 'ready') {
      slot.ready = true;
      this.startFailures = 0;
      this.dispatch();
      return;
    }
    const job = slot.job;
    if (job === null || job.req.id !== msg.id) return; // stale reply
    this.release(slot);
    job.resolve(msg);
    this.dispatch();
  }

  private release(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
  }

  private setRefs(on: boolean): void {
    for (const s of this.slots) {
      if (on) s.worker.ref();
      else s.worker.unref();
    }
  }

  private onTimeout(slot: Slot): void {
    const job = slot.job;
    if (job === null || slot.retired) return;
    this.counters.timeouts++;
    this.replace(slot);
    job.onFail('timeout', `timeout after ${this.timeoutMs} ms`);
  }

  private onDeath(slot: Slot, detail: string): void {
    if (slot.retired) return;
    const job = slot.job;
    const wasReady = slot.ready;
    this.replace(slot);
    if (job !== null) {
      this.counters.crashes++;
      job.onFail('crash', `verifier crashed (${detail})`);
    } else if (!wasReady) {
      this.startFailures++;
      if (this.startFailures >= MAX_START_FAILURES) this.failAll(new Error(`VerifierPool: workers fail to start (${detail})`));
    }
  }

  /** Terminate a slot's worker (if still running) and put a fresh one in its place. */
  private replace(slot: Slot): void {
    slot.retired = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
    void slot.worker.terminate();
    const i = this.slots.indexOf(slot);
    if (i < 0 || this.closed || this.fatal) return;
    this.counters.respawns++;
    this.slots[i] = this.spawn();
  }

  private failAll(err: Error): void {
    this.fatal = err;
    for (const s of this.slots) {
      s.retired = true;
      if (s.timer) clearTimeout(s.timer);
      s.job?.reject(err);
      s.job = null;
      void s.worker.terminate();
    }
    this.slots.length = 0;
    for (const job of this.queue.splice(0)) job.reject(err);
  }
}
