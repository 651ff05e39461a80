// The one HTTP client for OpenAI-compatible servers: the remote rollout backend (src/sample/remote-backend.ts) and the
// LLM judge (src/verify/judge.ts) both send their JSON requests through it, so they share one retry/backoff policy and
// one redaction policy.
//
// Retries: network errors, timeouts, unreadable bodies, 429 and 5xx are retried (up to `retries` times after the first
// attempt) with exponential backoff and jitter, raised to the server's Retry-After and capped at `maxBackoffMs`; other
// statuses and non-JSON bodies are final. Requests in flight are limited by a semaphore; each attempt has its own
// timeout. `close()` aborts what is in flight and nothing is retried after it.
//
// Redaction: the API key is read from the environment variable `apiKeyEnv` at each request and sent as a Bearer
// token; URLs are shown without credentials, query or fragment, and the key is replaced by `[redacted]` in every error
// message the client throws (and in any message passed through `redact`).

/** Tiny counting semaphore. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes directly to the next waiter
    else this.active--;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wait before retry number `attempt + 1` (attempt counts from 0): `backoffMs * 2^attempt` with jitter in
 * [50%, 100%], raised to `retryAfterMs` when the server sent one, capped at `maxBackoffMs`.
 */
export function backoffDelay(attempt: number, backoffMs: number, maxBackoffMs: number, retryAfterMs: number | null): number {
  const exp = backoffMs * 2 ** attempt;
  const jittered = exp * (0.5 + Math.random() * 0.5);
  return Math.min(maxBackoffMs, Math.max(jittered, retryAfterMs ?? 0));
}

/** A `Retry-After` header (seconds, possibly fractional, or an HTTP date) in milliseconds; null when absent or bad. */
export function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** A URL fit for messages: no credentials, query or fragment (they may carry keys). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

/** A failed exchange; `retryable` says whether another attempt may help. */
export class HttpRequestError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'HttpRequestError';
  }
}

/** The client's settings as a caller's options take them (each caller documents its defaults). */
export interface HttpClientSettings {
  /** Environment variable holding the API key; unset or empty → no Authorization header. */
  apiKeyEnv?: string;
  /** HTTP requests in flight at once. */
  concurrency?: number;
  /** Per-attempt timeout in milliseconds. */
  timeoutMs?: number;
  /** Retries after the first attempt. */
  retries?: number;
  /** Base backoff in milliseconds, doubled per retry with jitter. */
  backoffMs?: number;
  /** Upper bound of one wait, Retry-After included. */
  maxBackoffMs?: number;
}

export type HttpClientOptions = Required<HttpClientSettings>;

/** `settings` over `defaults`, checked; `who` names the caller in the error. */
export function httpClientOptions(who: string, settings: HttpClientSettings, defaults: HttpClientOptions): HttpClientOptions {
  const o: HttpClientOptions = { ...defaults };
  for (const [k, v] of Object.entries(settings) as Array<[keyof HttpClientOptions, unknown]>) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  const fail = (name: string, what: string, v: unknown): never => {
    throw new Error(`${who}: ${name} must be ${what}, got ${String(v)}`);
  };
  if (typeof o.apiKeyEnv !== 'string' || o.apiKeyEnv === '') fail('apiKeyEnv', 'a variable name', o.apiKeyEnv);
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) fail('concurrency', 'a positive integer', o.concurrency);
  if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0) fail('timeoutMs', 'a positive number', o.timeoutMs);
  if (!Number.isInteger(o.retries) || o.retries < 0) fail('retries', 'a non-negative integer', o.retries);
  if (!Number.isFinite(o.backoffMs) || o.backoffMs < 0) fail('backoffMs', 'a non-negative number', o.backoffMs);
  if (!Number.isFinite(o.maxBackoffMs) || o.maxBackoffMs < 0) fail('maxBackoffMs', 'a non-negative number', o.maxBackoffMs);
  return o;
}

/** Counters since construction. */
export interface HttpClientStats {
  /** Attempts sent. */
  requests: number;
  retries: number;
  /** Requests given up on. */
  failures: number;
}

export interface JsonRequest {
  method: 'GET' | 'POST';
  /** A JSON text. */
  body?: string;
}

/** JSON over HTTP with the retry, timeout, concurrency and redaction policy above. */
export class JsonHttpClient {
  private readonly sem: Semaphore;
  private readonly controllers = new Set<AbortController>();
  private closed = false;
  private readonly counters: HttpClientStats = { requests: 0, retries: 0, failures: 0 };

  constructor(readonly opts: Readonly<HttpClientOptions>) {
    this.sem = new Semaphore(opts.concurrency);
  }

  /** A copy of the counters. */
  stats(): HttpClientStats {
    return { ...this.counters };
  }

  /** `message` with the API key (when set and at least 4 characters long) replaced by `[redacted]`. */
  redact(message: string): string {
    const key = process.env[this.opts.apiKeyEnv];
    if (key === undefined || key.length < 4) return message;
    return message.split(key).join('[redacted]');
  }

  /** Aborts the requests in flight; later attempts are not retried. */
  close(): void {
    this.closed = true;
    for (const c of this.controllers) c.abort();
    this.controllers.clear();
  }

  /**
   * One exchange with retries; resolves to the parsed JSON reply. Rejects with an `HttpRequestError` whose message
   * names the method, the URL (see `displayUrl`) and the failure, says how many attempts were made when retries ran
   * out, and never contains the API key.
   */
  async request(url: string, init: JsonRequest): Promise<unknown> {
    const shown = displayUrl(url);
    for (let attempt = 0; ; attempt++) {
      let failure: HttpRequestError;
      await this.sem.acquire();
      try {
        this.counters.requests++;
        return await this.attempt(url, shown, init);
      } catch (err) {
        failure =
          err instanceof HttpRequestError
            ? err
            : new HttpRequestError(`${init.method} ${shown} failed: ${err instanceof Error ? err.message : String(err)}`, true);
      } finally {
        this.sem.release();
      }
      if (this.closed || !failure.retryable || attempt >= this.opts.retries) {
        this.counters.failures++;
        const tries = attempt + 1;
        const suffix = failure.retryable && !this.closed ? ` (gave up after ${tries} attempt${tries === 1 ? '' : 's'})` : '';
        throw new HttpRequestError(this.redact(`${failure.message}${suffix}`), false);
      }
      const wait = backoffDelay(attempt, this.opts.backoffMs, this.opts.maxBackoffMs, failure.retryAfterMs);
      this.counters.retries++;
      await sleep(wait);
    }
  }

  private headers(hasBody: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (hasBody) h['content-type'] = 'application/json';
    const key = process.env[this.opts.apiKeyEnv];
    if (key !== undefined && key !== '') h.authorization = `Bearer ${key}`;
    return h;
  }

  private async attempt(url: string, shown: string, init: JsonRequest): Promise<unknown> {
    const what = `${init.method} ${shown}`;
    const controller = new AbortController();
    this.controllers.add(controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.opts.timeoutMs);
    // An abort is a timeout or close(), whichever caused it; anything else is the network's (retryable).
    const aborted = (): HttpRequestError | null => {
      if (timedOut) return new HttpRequestError(`${what} timed out after ${this.opts.timeoutMs} ms`, true);
      if (this.closed) return new HttpRequestError(`${what} aborted by close()`, false);
      return null;
    };
    try {
      let res: Response;
      try {
        res = await fetch(url, { method: init.method, headers: this.headers(init.body !== undefined), body: init.body, signal: controller.signal });
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        throw aborted() ?? new HttpRequestError(`${what} network error: ${err instanceof Error ? err.message : String(err)}${cause}`, true);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw aborted() ?? new HttpRequestError(`${what} body read failed: ${err instanceof Error ? err.message : String(err)}`, true);
      }
      if (!res.ok) {
        const retryable = res.status === 429 || res.status >= 500;
        const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
        throw new HttpRequestError(
          `${what} returned HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`,
          retryable,
          retryable ? parseRetryAfter(res.headers.get('retry-after')) : null,
        );
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new HttpRequestError(`${what} returned a non-JSON body: ${JSON.stringify(text.slice(0, 120))}`, false);
      }
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
  }
}
