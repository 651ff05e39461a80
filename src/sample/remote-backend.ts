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
// HTTP goes through the shared client (src/util/http-client.ts: concurrency limit, per-attempt timeout, retries with
// backoff on network errors, timeouts, 429 and 5xx). The API key is read from the environment variable
// `OREAL_API_KEY` (configurable), sent as a Bearer token, and removed from every error message.
// `syncWeights(dir)` posts `{"model_path": dir}` to `<server root>/update_weights_from_disk` (SGLang's endpoint,
// also served by `oreal serve`).

import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from './types.js';
import type { RolloutBackendEntry } from './rollout-backends.js';
import { JsonHttpClient, displayUrl, httpClientOptions, type HttpClientSettings } from '../util/http-client.js';

/** A chat message for `/v1/chat/completions`. */
export interface RemoteChatMessage {
  role: string;
  content: string;
}

/** A generation request that may carry chat messages (then the chat endpoint is used and `prompt` is ignored). */
export interface RemoteGenerationRequest extends GenerationRequest {
  messages?: RemoteChatMessage[];
}

/**
 * Options. The HTTP settings default to apiKeyEnv `OREAL_API_KEY`, concurrency 8, timeoutMs 600000, retries 3,
 * backoffMs 500, maxBackoffMs 30000.
 */
export interface OpenAIRolloutBackendOptions extends HttpClientSettings {
  /** Server URL: `http://host:port` or `http://host:port/v1` (a trailing `/v1` is the API prefix). */
  baseUrl: string;
  /** Model name sent with each request. */
  model: string;
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

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkInt(v: number, name: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new Error(`OpenAIRolloutBackend: ${name} must be an integer >= ${min}, got ${v}`);
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
  private readonly http: JsonHttpClient;
  private readonly wantLogprobs: boolean;
  private readonly wantTokenIds: boolean;
  private readonly maxN: number;
  private readonly extraBody: Record<string, unknown>;
  private closed = false;

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
    this.http = new JsonHttpClient(
      httpClientOptions('OpenAIRolloutBackend', opts, {
        apiKeyEnv: 'OREAL_API_KEY',
        concurrency: 8,
        timeoutMs: 600_000,
        retries: 3,
        backoffMs: 500,
        maxBackoffMs: 30_000,
      }),
    );
    this.wantLogprobs = opts.logprobs ?? false;
    this.wantTokenIds = opts.tokenIds ?? false;
    this.maxN = opts.maxNPerRequest === undefined ? Infinity : checkInt(opts.maxNPerRequest, 'maxNPerRequest', 1);
    this.extraBody = opts.extraBody ?? {};
  }

  /** A copy of the request counters. */
  stats(): RemoteBackendStats {
    return this.http.stats();
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
      throw new Error(this.http.redact(`OpenAIRolloutBackend: ${displayUrl(this.updateWeightsUrl)} refused the weights${msg}`));
    }
  }

  /** Abort requests in flight; later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    this.http.close();
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

  /** POST a JSON body with the client's retries; resolves to the parsed JSON reply. */
  private async request(url: string, body: string): Promise<unknown> {
    try {
      return await this.http.request(url, { method: 'POST', body });
    } catch (e) {
      throw new Error(`OpenAIRolloutBackend: ${(e as Error).message}`);
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
