// Rollouts from an OpenAI-compatible server (vLLM, SGLang, LMDeploy, llama.cpp server, `oreal serve`).
//
// A request whose `messages` is set goes to `POST /v1/chat/completions` (the server applies its chat template);
// otherwise its `prompt` (text, or token ids, which vLLM/SGLang accept) goes to `POST /v1/completions`.
// Sampling maps to the usual fields: n, temperature (0 when greedy), top_p, max_tokens, stop, seed, logprobs;
// `top_k` and `stop_token_ids` (vLLM/SGLang extensions) are sent only when set. `finish_reason` "length" becomes
// 'length', anything else 'stop'.
//
// Token ids: the plain OpenAI API returns text only, so `tokenIds` is empty unless the server sent tokens written
// as `token_id:<n>` (vLLM with `return_tokens_as_token_ids`, requested when `tokenIds: true`). `logprobs` holds the
// sampled tokens' log-probabilities when requested and returned, else it is empty.
//
// HTTP requests are limited by a semaphore, time out individually, and are retried with exponential backoff and
// jitter (honouring Retry-After) on network errors, timeouts, 429 and 5xx. The API key is read from the environment
// variable `OREAL_API_KEY` (configurable), sent as a Bearer token, and removed from every error message.
// `syncWeights(dir)` posts `{"model_path": dir}` to `<server root>/update_weights_from_disk` (SGLang's endpoint,
// also served by `oreal serve`).

import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from './types.js';
import type { RolloutBackendEntry } from './rollout-backends.js';
import { backoffDelay, Semaphore, sleep } from '../util/http-retry.js';

/** A chat message for `/v1/chat/completions`. */
export interface RemoteChatMessage {
  role: string;
  content: string;
}

/** A generation request that may carry chat messages (then the chat endpoint is used and `prompt` is ignored). */
export interface RemoteGenerationRequest extends GenerationRequest {
  messages?: RemoteChatMessage[];
}

export interface OpenAIRolloutBackendOptions {
  /** Server URL: `http://host:port` or `http://host:port/v1` (a trailing `/v1` is the API prefix). */
  baseUrl: string;
  /** Model name sent with each request. */
  model: string;
  /** Environment variable holding the API key (default `OREAL_API_KEY`); no key → no Authorization header. */
  apiKeyEnv?: string;
  /** HTTP requests in flight at once (default 8). */
  concurrency?: number;
  /** Per-attempt timeout in milliseconds (default 600000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** Base backoff in milliseconds, doubled per retry with jitter (default 500). */
  backoffMs?: number;
  /** Upper bound of one wait, Retry-After included (default 30000). */
  maxBackoffMs?: number;
  /** Ask for the sampled tokens' log-probabilities (default false). */
  logprobs?: boolean;
  /** Ask for tokens as `token_id:<n>` (vLLM's `return_tokens_as_token_ids`) to fill `tokenIds` (default false). */
  tokenIds?: boolean;
  /** Largest `n` per HTTP request; larger requests are split (seeds offset per part). Default: no split. */
  maxNPerRequest?: number;
  /** Extra JSON fields merged into every generation request body. */
  extraBody?: Record<string, unknown>;
}

/** Counters since construction. */
export interface RemoteBackendStats {
  requests: number;
  retries: number;
  failures: number;
}

class HttpError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'RemoteBackendError';
  }
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseRetryAfter(v: string | null): number | null {
  if (v === null) return null;
  const s = Number(v.trim());
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : null;
}

/** URL without credentials or query, for messages. */
function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

function checkInt(v: number, name: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`OpenAIRolloutBackend: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}
function checkNum(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new Error(`OpenAIRolloutBackend: ${name} must be a non-negative number, got ${v}`);
  return v;
}

/** `RolloutBackend` over an OpenAI-compatible HTTP server. */
export class OpenAIRolloutBackend implements RolloutBackend {
  readonly name: string;
  /** Server root (without `/v1`). */
  readonly rootUrl: string;
  readonly completionsUrl: string;
  readonly chatUrl: string;
  readonly updateWeightsUrl: string;
  readonly model: string;
  private readonly apiKeyEnv: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly wantLogprobs: boolean;
  private readonly wantTokenIds: boolean;
  private readonly maxN: number;
  private readonly extraBody: Record<string, unknown>;
  private readonly sem: Semaphore;
  private readonly controllers = new Set<AbortController>();
  private closed = false;
  private readonly counters: RemoteBackendStats = { requests: 0, retries: 0, failures: 0 };

  constructor(opts: OpenAIRolloutBackendOptions) {
    let base = opts.baseUrl.trim().replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]/i.test(base)) throw new Error(`OpenAIRolloutBackend: baseUrl must be an http(s) URL, got ${displayUrl(base)}`);
    base = base.replace(/\/(chat\/)?completions$/, '');
    if (base.endsWith('/v1')) base = base.slice(0, -3);
    this.rootUrl = base;
    this.completionsUrl = `${base}/v1/completions`;
    this.chatUrl = `${base}/v1/chat/completions`;
    this.updateWeightsUrl = `${base}/update_weights_from_disk`;
    if (opts.model.trim() === '') throw new Error('OpenAIRolloutBackend: model name is empty');
    this.model = opts.model;
    this.name = `openai:${displayUrl(base)}#${opts.model}`;
    this.apiKeyEnv = opts.apiKeyEnv ?? 'OREAL_API_KEY';
    this.timeoutMs = checkInt(opts.timeoutMs ?? 600_000, 'timeoutMs', 1);
    this.retries = checkInt(opts.retries ?? 3, 'retries', 0);
    this.backoffMs = checkNum(opts.backoffMs ?? 500, 'backoffMs');
    this.maxBackoffMs = checkNum(opts.maxBackoffMs ?? 30_000, 'maxBackoffMs');
    this.wantLogprobs = opts.logprobs ?? false;
    this.wantTokenIds = opts.tokenIds ?? false;
    this.maxN = opts.maxNPerRequest === undefined ? Infinity : checkInt(opts.maxNPerRequest, 'maxNPerRequest', 1);
    this.extraBody = opts.extraBody ?? {};
    this.sem = new Semaphore(checkInt(opts.concurrency ?? 8, 'concurrency', 1));
  }

  /** A copy of the request counters. */
  stats(): RemoteBackendStats {
    return { ...this.counters };
  }

  async generate(requests: GenerationRequest[]): Promise<Generation[][]> {
    if (this.closed) throw new Error('OpenAIRolloutBackend: generate() after close()');
    return Promise.all(requests.map((r) => this.generateOne(r as RemoteGenerationRequest)));
  }

  async syncWeights(checkpointDir: string): Promise<void> {
    if (this.closed) throw new Error('OpenAIRolloutBackend: syncWeights() after close()');
    const json = await this.request(this.updateWeightsUrl, JSON.stringify({ model_path: checkpointDir }));
    if (isRecord(json) && json.success === false) {
      const msg = typeof json.message === 'string' ? `: ${json.message}` : '';
      throw new Error(this.redact(`OpenAIRolloutBackend: ${displayUrl(this.updateWeightsUrl)} refused the weights${msg}`));
    }
  }

  /** Abort requests in flight; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.controllers) c.abort();
    this.controllers.clear();
  }

  private async generateOne(req: RemoteGenerationRequest): Promise<Generation[]> {
    checkInt(req.n, 'n', 1);
    const parts: Array<Promise<Generation[]>> = [];
    for (let start = 0; start < req.n; start += this.maxN) {
      const n = Math.min(this.maxN, req.n - start);
      parts.push(this.generatePart(req, n, req.params.seed === undefined ? undefined : req.params.seed + start));
    }
    return (await Promise.all(parts)).flat();
  }

  /** Request body fields from the sampling parameters. */
  private samplingBody(p: SamplingParams, n: number, seed: number | undefined, chat: boolean): Json {
    const greedy = p.greedy === true || p.temperature === 0;
    const body: Json = {
      model: this.model,
      n,
      max_tokens: p.maxNewTokens,
      temperature: greedy ? 0 : p.temperature,
      top_p: greedy ? 1 : p.topP,
    };
    if (!greedy && p.topK > 0) body.top_k = p.topK;
    if (p.stopStrings.length > 0) body.stop = [...p.stopStrings];
    if (p.stopTokenIds.length > 0) body.stop_token_ids = [...p.stopTokenIds];
    if (seed !== undefined) body.seed = seed;
    if (this.wantLogprobs) {
      if (chat) body.logprobs = true;
      else body.logprobs = 1;
    }
    if (this.wantTokenIds) body.return_tokens_as_token_ids = true;
    return { ...this.extraBody, ...body };
  }

  private async generatePart(req: RemoteGenerationRequest, n: number, seed: number | undefined): Promise<Generation[]> {
    const chat = req.messages !== undefined;
    const body = this.samplingBody(req.params, n, seed, chat);
    if (chat) body.messages = (req.messages as RemoteChatMessage[]).map((m) => ({ role: m.role, content: m.content }));
    else body.prompt = typeof req.prompt === 'string' ? req.prompt : [...req.prompt];
    const url = chat ? this.chatUrl : this.completionsUrl;
    const json = await this.request(url, JSON.stringify(body));
    return this.parseChoices(json, n, chat, url);
  }

  private parseChoices(json: unknown, n: number, chat: boolean, url: string): Generation[] {
    const where = displayUrl(url);
    if (!isRecord(json) || !Array.isArray(json.choices)) throw new Error(`OpenAIRolloutBackend: reply from ${where} has no "choices" array`);
    const out: Array<Generation | undefined> = new Array<Generation | undefined>(n);
    json.choices.forEach((c: unknown, pos: number) => {
      if (!isRecord(c)) throw new Error(`OpenAIRolloutBackend: reply from ${where}: choices[${pos}] is not an object`);
      const index = typeof c.index === 'number' && Number.isInteger(c.index) ? c.index : pos;
      if (index < 0 || index >= n) throw new Error(`OpenAIRolloutBackend: reply from ${where}: choice index ${index} outside 0..${n - 1}`);
      let text: unknown;
      if (chat) text = isRecord(c.message) ? c.message.content : undefined;
      else text = c.text;
      if (text === null) text = ''; // some servers send content null for an empty reply
      if (typeof text !== 'string') throw new Error(`OpenAIRolloutBackend: reply from ${where}: choices[${pos}] has no ${chat ? 'message.content' : 'text'}`);
      const { logprobs, tokenIds } = this.parseLogprobs(c.logprobs, chat);
      out[index] = { text, tokenIds, logprobs, finishReason: c.finish_reason === 'length' ? 'length' : 'stop' };
    });
    for (let i = 0; i < n; i++) {
      if (out[i] === undefined) throw new Error(`OpenAIRolloutBackend: reply from ${where} has ${json.choices.length} choices, expected ${n}`);
    }
    return out as Generation[];
  }

  /** Sampled-token log-probabilities (and token ids when written as `token_id:<n>`), from either reply format. */
  private parseLogprobs(lp: unknown, chat: boolean): { logprobs: number[]; tokenIds: number[] } {
    const logprobs: number[] = [];
    const tokens: string[] = [];
    if (chat) {
      const content = isRecord(lp) ? lp.content : undefined;
      if (Array.isArray(content)) {
        for (const e of content) {
          if (!isRecord(e)) continue;
          if (typeof e.logprob === 'number') logprobs.push(e.logprob);
          if (typeof e.token === 'string') tokens.push(e.token);
        }
      }
    } else if (isRecord(lp)) {
      if (Array.isArray(lp.token_logprobs)) for (const x of lp.token_logprobs) logprobs.push(typeof x === 'number' ? x : Number.NaN);
      if (Array.isArray(lp.tokens)) for (const t of lp.tokens) if (typeof t === 'string') tokens.push(t);
    }
    const tokenIds: number[] = [];
    if (tokens.length > 0 && tokens.every((t) => /^token_id:\d+$/.test(t))) {
      for (const t of tokens) tokenIds.push(Number(t.slice('token_id:'.length)));
    }
    return { logprobs: this.wantLogprobs ? logprobs : [], tokenIds };
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json' };
    const key = process.env[this.apiKeyEnv];
    if (key !== undefined && key !== '') h.authorization = `Bearer ${key}`;
    return h;
  }

  private redact(message: string): string {
    const key = process.env[this.apiKeyEnv];
    if (key === undefined || key.length < 4) return message;
    return message.split(key).join('[redacted]');
  }

  /** POST a JSON body with retries; resolves to the parsed JSON reply. */
  private async request(url: string, body: string): Promise<unknown> {
    const shown = displayUrl(url);
    for (let attempt = 0; ; attempt++) {
      let failure: HttpError;
      await this.sem.acquire();
      try {
        this.counters.requests++;
        return await this.attempt(url, shown, body);
      } catch (err) {
        failure = err instanceof HttpError ? err : new HttpError(`POST ${shown} failed: ${err instanceof Error ? err.message : String(err)}`, true);
      } finally {
        this.sem.release();
      }
      if (this.closed || !failure.retryable || attempt >= this.retries) {
        this.counters.failures++;
        const tries = attempt + 1;
        const suffix = failure.retryable && !this.closed ? ` (gave up after ${tries} attempt${tries === 1 ? '' : 's'})` : '';
        throw new Error(this.redact(`OpenAIRolloutBackend: ${failure.message}${suffix}`));
      }
      const wait = backoffDelay(attempt, this.backoffMs, this.maxBackoffMs, failure.retryAfterMs);
      this.counters.retries++;
      await sleep(wait);
    }
  }

  private async attempt(url: string, shown: string, body: string): Promise<unknown> {
    const controller = new AbortController();
    this.controllers.add(controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      let text: string;
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', headers: this.headers(), body, signal: controller.signal });
        text = await res.text();
      } catch (err) {
        if (timedOut) throw new HttpError(`POST ${shown} timed out after ${this.timeoutMs} ms`, true);
        if (this.closed) throw new HttpError(`POST ${shown} aborted by close()`, false);
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        throw new HttpError(`POST ${shown} network error: ${err instanceof Error ? err.message : String(err)}${cause}`, true);
      }
      if (!res.ok) {
        const retryable = res.status === 429 || res.status >= 500;
        const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
        throw new HttpError(
          `POST ${shown} returned HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`,
          retryable,
          retryable ? parseRetryAfter(res.headers.get('retry-after')) : null,
        );
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new HttpError(`POST ${shown} returned a non-JSON body: ${JSON.stringify(text.slice(0, 120))}`, false);
      }
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
  }
}

/** The registry entry (src/sample/rollout-backends.ts). */
export const remoteRollout: RolloutBackendEntry = {
  kind: 'server',
  requires: ['url', 'model'],
  create(o) {
    if (o.url === undefined || o.model === undefined) throw new Error('remote rollouts need a server URL and a model name');
    return new OpenAIRolloutBackend({
      baseUrl: o.url,
      model: o.model,
      apiKeyEnv: o.apiKeyEnv,
      concurrency: o.concurrency,
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      tokenIds: o.tokenIds,
    });
  },
};
