// LLM judge over an OpenAI-compatible chat-completions API.
//
// The judge is asked whether a candidate answer agrees with the standard (gold) answer and must reply "A"
// (correct) or "B" (incorrect). Requests are rate-limited by a small semaphore, time out individually, and are
// retried with exponential backoff on network errors, timeouts, 429 and 5xx. The API key is read from an
// environment variable and never appears in any error text.

import { backoffDelay, Semaphore, sleep } from '../util/http-retry.js';

/** Options of {@link LlmJudge}. */
export interface LlmJudgeOptions {
  /** Base URL such as `http://127.0.0.1:8000/v1`, a server root (`/v1` is added), or the full `.../chat/completions` URL. */
  url: string;
  /** Model name; when absent it is read (once) from `GET <base>/models`. */
  model?: string;
  /** Name of the environment variable holding the API key (default `OREAL_JUDGE_API_KEY`). */
  apiKeyEnv?: string;
  /** Maximum number of HTTP requests in flight at once (default 8). */
  concurrency?: number;
  /** Per-attempt timeout in milliseconds (default 60000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** Base backoff in milliseconds, doubled per retry with jitter (default 500). */
  backoffMs?: number;
  /** Upper bound on one wait, also applied to `Retry-After` (default 30000). */
  maxBackoffMs?: number;
  /** `max_tokens` sent with each request; omitted when absent. */
  maxTokens?: number;
}

/** One judging request. */
export interface JudgeRequest {
  question?: string;
  gold: string;
  answer: string;
}

/** Outcome of one judging request; `raw` is the judge's reply text. */
export type JudgeResult =
  | { verdict: 'correct' | 'incorrect'; raw: string }
  | { verdict: 'error'; error: string };

/** Counters since construction, for logging. */
export interface JudgeStats {
  requests: number;
  retries: number;
  errors: number;
}

/** Build the judging prompt: question (if any), standard answer, candidate answer, and the A/B instruction. */
export function buildJudgePrompt(req: JudgeRequest): string {
  const parts: string[] = [
    'You are grading the final answer of a math solution against a reference.',
    'Decide whether the candidate answer is mathematically equivalent to the standard answer.',
    'Treat different but equivalent forms as the same (for example 1/2, 0.5 and \\frac{1}{2}; reordered set elements; ' +
      'omitted or added units that do not change the value). If the candidate gives several different final ' +
      'answers, gives no final answer, or only partly matches the standard answer, it is not consistent.',
    'Judge only the final answer, not the reasoning.',
    '',
  ];
  if (req.question !== undefined && req.question.trim() !== '') {
    parts.push('[Question]', req.question.trim(), '');
  }
  parts.push('[Standard answer]', req.gold.trim(), '');
  parts.push('[Candidate answer]', req.answer.trim(), '');
  parts.push(
    'Is the candidate answer consistent with the standard answer?',
    'A: CORRECT',
    'B: INCORRECT',
    'Reply with the single letter A or B and nothing else.',
  );
  return parts.join('\n');
}

/**
 * Parse a judge reply: a lone or leading "A" / "B" (optionally wrapped in quotes, brackets or markdown emphasis,
 * optionally after "Answer:" or a `<think>…</think>` block), or a lone CORRECT / INCORRECT. A leading letter
 * followed by a contradicting word (e.g. "A: INCORRECT") is rejected. Returns null for anything else.
 */
export function parseJudgeReply(reply: string): 'correct' | 'incorrect' | null {
  let s = reply;
  const thinkEnd = s.lastIndexOf('</think>');
  if (thinkEnd >= 0) s = s.slice(thinkEnd + '</think>'.length);
  s = s.trim();
  // Optional label such as "Answer:", "Final answer -", "Judgement:".
  s = s.replace(/^(?:final\s+)?(?:answer|judge?ment|verdict|choice|reply|output)\s*[:：\-]?\s*/i, '');
  // Leading wrappers: markdown emphasis, quotes, brackets, backticks.
  s = s.replace(/^[\s*_`"'“‘(\[{<]+/, '');
  const lone = /^(in)?correct[\s*_`"'”’.!)\]}>]*$/i.exec(s);
  if (lone) return lone[1] ? 'incorrect' : 'correct';
  const m = /^([AB])(?![A-Za-z0-9])([\s\S]*)$/.exec(s);
  if (!m) return null;
  const letter = m[1];
  // The rest of the first line may explain the letter ("A: CORRECT") but must not contradict it or name the
  // other option; later lines (explanations) are ignored.
  const firstLine = (m[2] ?? '').split(/\r?\n/, 1)[0] ?? '';
  const upper = firstLine.toUpperCase();
  const negated = /\b(?:INCORRECT|NOT\s+CORRECT|WRONG)\b/;
  const saysIncorrect = negated.test(upper);
  const saysCorrect = /\bCORRECT\b/.test(upper.replace(new RegExp(negated.source, 'g'), ''));
  const other = letter === 'A' ? 'B' : 'A';
  if (new RegExp(`(^|[^A-Za-z0-9])${other}([^A-Za-z0-9]|$)`).test(firstLine)) return null;
  if (letter === 'A') return saysIncorrect ? null : 'correct';
  return saysCorrect ? null : 'incorrect';
}

/** An HTTP failure; `retryable` says whether another attempt may help. */
class JudgeHttpError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'JudgeHttpError';
  }
}

/** Parse a `Retry-After` header (seconds, possibly fractional, or an HTTP date) into milliseconds. */
function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - Date.now());
}

/** Remove any user-info from a URL so it can be shown in messages. */
function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** OpenAI-compatible chat-completions judge. `judge()` never throws; failures come back as `verdict: 'error'`. */
export class LlmJudge {
  readonly chatUrl: string;
  readonly modelsUrl: string;
  readonly concurrency: number;
  private readonly apiKeyEnv: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxTokens: number | undefined;
  private readonly sem: Semaphore;
  private model: string | undefined;
  private modelPromise: Promise<string> | null = null;
  private readonly counters: JudgeStats = { requests: 0, retries: 0, errors: 0 };

  constructor(opts: LlmJudgeOptions) {
    let base = opts.url.trim().replace(/\/+$/, '');
    if (!/^https?:\/\//i.test(base)) throw new Error(`LlmJudge: url must be http(s), got ${displayUrl(base)}`);
    if (/\/chat\/completions$/.test(base)) base = base.slice(0, -'/chat/completions'.length);
    if (/^https?:\/\/[^/]+$/i.test(base)) base += '/v1'; // a server root: the OpenAI API prefix, as --endpoint adds it
    this.chatUrl = `${base}/chat/completions`;
    this.modelsUrl = `${base}/models`;
    this.model = opts.model;
    this.apiKeyEnv = opts.apiKeyEnv ?? 'OREAL_JUDGE_API_KEY';
    this.concurrency = positiveInt(opts.concurrency ?? 8, 'concurrency');
    this.timeoutMs = positiveNumber(opts.timeoutMs ?? 60000, 'timeoutMs');
    this.retries = nonNegativeInt(opts.retries ?? 3, 'retries');
    this.backoffMs = nonNegativeNumber(opts.backoffMs ?? 500, 'backoffMs');
    this.maxBackoffMs = nonNegativeNumber(opts.maxBackoffMs ?? 30000, 'maxBackoffMs');
    this.maxTokens = opts.maxTokens === undefined ? undefined : positiveInt(opts.maxTokens, 'maxTokens');
    this.sem = new Semaphore(this.concurrency);
  }

  /** A copy of the request counters. */
  get stats(): JudgeStats {
    return { ...this.counters };
  }

  /** The model name, discovering it from `/models` on first use (cached; a failed discovery is retried later). */
  async resolveModel(): Promise<string> {
    if (this.model !== undefined) return this.model;
    if (this.modelPromise === null) {
      this.modelPromise = this.discoverModel().then(
        (m) => {
          this.model = m;
          return m;
        },
        (err: unknown) => {
          this.modelPromise = null;
          throw err;
        },
      );
    }
    return this.modelPromise;
  }

  /** Ask the judge whether `answer` agrees with `gold`. */
  async judge(req: JudgeRequest): Promise<JudgeResult> {
    try {
      const model = await this.resolveModel();
      const body: Record<string, unknown> = {
        model,
        messages: [{ role: 'user', content: buildJudgePrompt(req) }],
        temperature: 0,
      };
      if (this.maxTokens !== undefined) body.max_tokens = this.maxTokens;
      const json = await this.request(this.chatUrl, { method: 'POST', body: JSON.stringify(body) });
      const content = extractContent(json);
      if (content === null) {
        throw new JudgeHttpError(`judge reply from ${displayUrl(this.chatUrl)} has no choices[0].message.content`, false);
      }
      const verdict = parseJudgeReply(content);
      if (verdict === null) {
        throw new JudgeHttpError(`unparseable judge reply ${JSON.stringify(content.slice(0, 200))}`, false);
      }
      return { verdict, raw: content };
    } catch (err) {
      this.counters.errors++;
      return { verdict: 'error', error: this.redact(err instanceof Error ? err.message : String(err)) };
    }
  }

  private async discoverModel(): Promise<string> {
    const json = await this.request(this.modelsUrl, { method: 'GET' });
    const data = isRecord(json) ? json.data : undefined;
    if (Array.isArray(data)) {
      for (const entry of data) {
        if (isRecord(entry) && typeof entry.id === 'string' && entry.id !== '') return entry.id;
      }
    }
    throw new JudgeHttpError(`no model listed at ${displayUrl(this.modelsUrl)}`, false);
  }

  private headers(hasBody: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (hasBody) h['content-type'] = 'application/json';
    const key = process.env[this.apiKeyEnv];
    if (key !== undefined && key !== '') h.authorization = `Bearer ${key}`;
    return h;
  }

  /** Replace the API key (if set) wherever it appears in a message. */
  private redact(message: string): string {
    const key = process.env[this.apiKeyEnv];
    if (key === undefined || key.length < 4) return message;
    return message.split(key).join('[redacted]');
  }

  /** One HTTP exchange with retries; resolves to the parsed JSON body. */
  private async request(url: string, init: { method: 'GET' | 'POST'; body?: string }): Promise<unknown> {
    const shown = displayUrl(url);
    let attempt = 0;
    for (;;) {
      let failure: JudgeHttpError;
      await this.sem.acquire();
      try {
        this.counters.requests++;
        return await this.attempt(url, shown, init);
      } catch (err) {
        failure =
          err instanceof JudgeHttpError
            ? err
            : new JudgeHttpError(`${init.method} ${shown} failed: ${err instanceof Error ? err.message : String(err)}`, true);
      } finally {
        this.sem.release();
      }
      if (!failure.retryable || attempt >= this.retries) {
        const tries = attempt + 1;
        throw new JudgeHttpError(
          failure.retryable ? `${failure.message} (gave up after ${tries} attempt${tries === 1 ? '' : 's'})` : failure.message,
          false,
        );
      }
      const wait = backoffDelay(attempt, this.backoffMs, this.maxBackoffMs, failure.retryAfterMs);
      attempt++;
      this.counters.retries++;
      await sleep(wait);
    }
  }

  private async attempt(url: string, shown: string, init: { method: 'GET' | 'POST'; body?: string }): Promise<unknown> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      let res: Response;
      try {
        res = await fetch(url, {
          method: init.method,
          headers: this.headers(init.body !== undefined),
          body: init.body,
          signal: controller.signal,
        });
      } catch (err) {
        if (controller.signal.aborted) {
          throw new JudgeHttpError(`${init.method} ${shown} timed out after ${this.timeoutMs} ms`, true);
        }
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        throw new JudgeHttpError(
          `${init.method} ${shown} network error: ${err instanceof Error ? err.message : String(err)}${cause}`,
          true,
        );
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        if (controller.signal.aborted) {
          throw new JudgeHttpError(`${init.method} ${shown} timed out after ${this.timeoutMs} ms`, true);
        }
        throw new JudgeHttpError(`${init.method} ${shown} body read failed: ${err instanceof Error ? err.message : String(err)}`, true);
      }
      if (!res.ok) {
        const retryable = res.status === 429 || res.status >= 500;
        const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
        throw new JudgeHttpError(
          `${init.method} ${shown} returned HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`,
          retryable,
          retryable ? parseRetryAfter(res.headers.get('retry-after')) : null,
        );
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new JudgeHttpError(
          `${init.method} ${shown} returned non-JSON body: ${JSON.stringify(text.slice(0, 120))}`,
          false,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

function extractContent(json: unknown): string | null {
  if (!isRecord(json) || !Array.isArray(json.choices) || json.choices.length === 0) return null;
  const first: unknown = json.choices[0];
  if (!isRecord(first)) return null;
  const message = first.message;
  if (isRecord(message) && typeof message.content === 'string') return message.content;
  if (typeof first.text === 'string') return first.text; // completions-style servers
  return null;
}

function positiveInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`LlmJudge: ${name} must be a positive integer, got ${v}`);
  return v;
}
function nonNegativeInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0) throw new Error(`LlmJudge: ${name} must be a non-negative integer, got ${v}`);
  return v;
}
function positiveNumber(v: number, name: string): number {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`LlmJudge: ${name} must be a positive number, got ${v}`);
  return v;
}
function nonNegativeNumber(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new Error(`LlmJudge: ${name} must be a non-negative number, got ${v}`);
  return v;
}
