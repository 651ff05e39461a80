// `oreal serve`: an OpenAI-compatible HTTP server over the local KV-cache engine, on Node's built-in `http`.
//
// Routes:
//   GET  /health                    {"status": "ok" | "shutting_down", running, queued, weight_version, ...}
//   GET  /v1/models                 the served model
//   GET  /get_model_info            SGLang's {model_path, tokenizer_path, is_generation}
//   POST /v1/completions            prompt (string | ids | list of either), see protocol.ts for the fields
//   POST /v1/chat/completions       messages through the chat template (add_generation_prompt by default)
//   POST /update_weights_from_disk  {"model_path": DIR} → {"success", "message", "weight_version"} (SGLang's name)
//
// Generation runs on one `Scheduler` (continuous batching, see scheduler.ts for the admission and weight-update
// rules). Text prompts are encoded without added special tokens; generated text is decoded with special tokens skipped
// (unless `skip_special_tokens: false`). Stop token ids are the request's `stop_token_ids` plus, unless `ignore_eos`,
// the config's eos ids, the tokenizer's eos token and <|im_end|>. Choice i·n + j is sample j of prompt i.
// `max_tokens` defaults to 16 for completions (as OpenAI) and to the rest of the context for chat; prompt + max_tokens
// must fit in `maxModelLen`. `logprobs` are log softmax(raw logits) of the generated tokens (temperature 1, before
// top-k/top-p), including a stop token id that ended a sequence; `tokens` are each token decoded alone, or
// `token_id:<n>` with `return_tokens_as_token_ids` (always without a tokenizer).
//
// Streaming (`stream: true`) sends `data: {chunk}\n\n` Server-Sent Events, one per generated token and choice (text
// deltas hold back the last (longest stop string − 1) characters until they cannot start a stop string, and an
// incomplete UTF-8 character), a final chunk per choice with its finish_reason, a usage chunk with
// `stream_options.include_usage`, then `data: [DONE]`. An error after the headers went out is sent as
// `data: {"error": ...}` followed by `data: [DONE]`.
//
// Robustness: bodies over `maxBodyBytes` → 413 (read and discarded up to 16× the limit, the connection is dropped
// beyond; with `Expect: 100-continue` refused before the body is sent), malformed JSON / invalid fields → 400, unknown route → 404, wrong method → 405 (with Allow), unknown model
// name → 404, queue full → 503, per-request timeout → 504 (the request's sequences are cancelled), engine failure →
// 500; errors use the OpenAI format {"error": {"message", "type", "param", "code"}}. A client that disconnects cancels
// its sequences. With `apiKeyEnv` set and that variable non-empty, every route but /health needs
// `Authorization: Bearer <key>` (401 otherwise); the key is never logged.
//
// Shutdown (`shutdown()`, wired to SIGTERM/SIGINT by the CLI): stop accepting connections, answer new requests on open
// connections with 503, let in-flight requests finish for up to `shutdownGraceMs`, then cancel what is left (503),
// close every connection, stop the scheduler.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Backend } from '../engine/backend.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { Qwen2Model } from '../model/qwen2.js';
import { Tokenizer } from '../model/tokenizer.js';
import type { SamplingParams } from '../sample/types.js';
import { ApiError, badRequest, parseChatRequest, parseCompletionRequest, isRecord, type ParsedSampling } from './protocol.js';
import { CancelledError, QueueFullError, Scheduler, type Job, type SampleResult, type TokenEvent, type TopLogprob } from './scheduler.js';

export interface ServerOptions {
  /** Name in /v1/models and accepted in `model` (default: the model directory's base name). */
  servedModelName?: string;
  /** Shown as `root` / `model_path`; also accepted in `model`. */
  modelPath?: string;
  /** Largest prompt + max_tokens (default min(max_position_embeddings, 4096), 4096 without a config). */
  maxModelLen?: number;
  maxBatch?: number;
  kvCacheBytes?: number;
  /** Request body limit (default 1 MiB). */
  maxBodyBytes?: number;
  /** Per-request generation timeout (default 600 s). */
  requestTimeoutMs?: number;
  /** How long in-flight requests may run after shutdown starts (default 30 s). */
  shutdownGraceMs?: number;
  /** Environment variable with an API key to require (unset or empty → no auth). */
  apiKeyEnv?: string;
  /** One line per request (method, path, status, ms) when given. */
  log?: (line: string) => void;
}

export interface ServeModel {
  model: Qwen2Model;
  tokenizer: Tokenizer | null;
  /** The checkpoint's config (eos ids, max_position_embeddings), null for a random model. */
  config: ModelConfig | null;
}

/** Loads a checkpoint directory (with its tokenizer when it has tokenizer.json) or a `random:SPEC` model. */
export function loadServeModel(spec: string, backend: Backend, random?: (spec: string, b: Backend) => Qwen2Model): ServeModel {
  if (spec === 'random' || spec.startsWith('random:')) {
    if (!random) throw new Error('random model specs need a builder');
    return { model: random(spec, backend), tokenizer: null, config: null };
  }
  const ck = loadCheckpoint(spec);
  const model = Qwen2Model.fromCheckpoint(ck, backend);
  const tokenizer = fs.existsSync(path.join(spec, 'tokenizer.json')) ? Tokenizer.load(spec) : null;
  return { model, tokenizer, config: ck.config };
}

interface Route {
  methods: string[];
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
}

type Json = Record<string, unknown>;

/** Text deltas for streaming: holds back what could still become part of a stop string or an incomplete character. */
class TextStreamer {
  private sent = 0;
  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private readonly holdback: number,
  ) {}
  next(tokens: readonly number[]): string {
    let text = this.decode(tokens);
    let end = text.length;
    while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
    end -= this.holdback;
    if (end > 0 && end <= text.length) {
      const c = text.charCodeAt(end - 1);
      if (c >= 0xd800 && c <= 0xdbff) end--;
    }
    if (end <= this.sent) return '';
    text = text.slice(this.sent, end);
    this.sent = end;
    return text;
  }
  finish(finalText: string): string {
    if (finalText.length <= this.sent) return '';
    const d = finalText.slice(this.sent);
    this.sent = finalText.length;
    return d;
  }
}

const utf8Bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];

export class OrealServer {
  readonly scheduler: Scheduler;
  readonly model: Qwen2Model;
  readonly tokenizer: Tokenizer | null;
  readonly servedModelName: string;
  readonly maxModelLen: number;
  private readonly modelPath: string;
  private readonly config: ModelConfig | null;
  private readonly opts: ServerOptions;
  private readonly http: http.Server;
  private readonly routes: Map<string, Route>;
  private readonly defaultStopIds: number[];
  private readonly maxBodyBytes: number;
  private readonly requestTimeoutMs: number;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(m: ServeModel, opts: ServerOptions = {}) {
    this.model = m.model;
    this.tokenizer = m.tokenizer;
    this.config = m.config;
    this.opts = opts;
    this.modelPath = opts.modelPath ?? '';
    this.servedModelName = opts.servedModelName ?? (this.modelPath ? path.basename(path.resolve(this.modelPath)) : 'oreal');
    this.maxModelLen = Math.max(2, Math.floor(opts.maxModelLen ?? Math.min(m.config?.maxPositionEmbeddings ?? 4096, 4096)));
    this.maxBodyBytes = Math.max(1024, Math.floor(opts.maxBodyBytes ?? 1024 * 1024));
    this.requestTimeoutMs = Math.max(1, Math.floor(opts.requestTimeoutMs ?? 600_000));
    const ids = new Set<number>();
    for (const id of m.config?.eosTokenIds ?? []) ids.add(id);
    if (m.tokenizer?.eosTokenId != null) ids.add(m.tokenizer.eosTokenId);
    if (m.tokenizer?.imEndTokenId != null) ids.add(m.tokenizer.imEndTokenId);
    this.defaultStopIds = [...ids];
    const tok = m.tokenizer;
    this.scheduler = new Scheduler(m.model, {
      ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
      ...(opts.kvCacheBytes !== undefined ? { kvCacheBytes: opts.kvCacheBytes } : {}),
      ...(tok ? { decode: (ids: readonly number[]) => tok.decode(ids, { skipSpecialTokens: true }) } : {}),
    });
    this.routes = new Map<string, Route>([
      ['/health', { methods: ['GET'], handler: (q, s) => this.health(q, s) }],
      ['/v1/models', { methods: ['GET'], handler: (q, s) => this.models(q, s) }],
      ['/get_model_info', { methods: ['GET'], handler: (q, s) => this.modelInfo(q, s) }],
      ['/v1/completions', { methods: ['POST'], handler: (q, s) => this.completions(q, s, false) }],
      ['/v1/chat/completions', { methods: ['POST'], handler: (q, s) => this.completions(q, s, true) }],
      ['/update_weights_from_disk', { methods: ['POST'], handler: (q, s) => this.updateWeights(q, s) }],
    ]);
    this.http = http.createServer({ requestTimeout: 120_000, headersTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      void this.dispatch(req, res);
    });
    // `Expect: 100-continue` with a declared body over the limit: refuse before the client sends it.
    this.http.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > this.maxBodyBytes) {
        res.setHeader('connection', 'close');
        this.sendJson(res, 413, new ApiError(413, `request body larger than ${this.maxBodyBytes} bytes`, 'invalid_request_error', null, 'request_too_large').body());
        return;
      }
      res.writeContinue();
      void this.dispatch(req, res);
    });
  }

  /** Starts listening (port 0 = any free port); resolves to the bound URL, e.g. http://127.0.0.1:41234. */
  listen(port = 8000, host = '127.0.0.1'): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.http.once('error', onError);
      this.http.listen(port, host, () => {
        this.http.off('error', onError);
        resolve(this.url());
      });
    });
  }

  url(): string {
    const a = this.http.address() as AddressInfo | null;
    if (a === null) throw new Error('server is not listening');
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /** See the top of this file. Idempotent. */
  shutdown(graceMs = this.opts.shutdownGraceMs ?? 30_000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const closed = new Promise<void>((r) => this.http.close(() => r()));
      this.http.closeIdleConnections();
      if (this.inflight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
      }
      if (this.inflight > 0) {
        this.scheduler.cancelAll('server shutting down');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
        clearTimeout(timer);
      }
      this.http.closeAllConnections();
      await closed;
      await this.scheduler.stop();
    })();
    return this.closing;
  }

  private whenIdle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Dispatch, bodies, errors

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    this.inflight++;
    let pathname = '?';
    try {
      if (this.closing) res.setHeader('connection', 'close');
      const u = new URL(req.url ?? '/', 'http://localhost');
      pathname = u.pathname.length > 1 ? u.pathname.replace(/\/+$/, '') : u.pathname;
      const route = this.routes.get(pathname);
      if (!route) throw new ApiError(404, `no route for ${req.method ?? ''} ${pathname}`, 'not_found_error', null, 'not_found');
      if (!route.methods.includes(req.method ?? '')) {
        res.setHeader('allow', route.methods.join(', '));
        throw new ApiError(405, `method ${req.method ?? ''} not allowed on ${pathname} (allowed: ${route.methods.join(', ')})`, 'invalid_request_error', null, 'method_not_allowed');
      }
      if (pathname !== '/health') this.checkAuth(req);
      if (this.closing && pathname !== '/health') throw new ApiError(503, 'server is shutting down', 'service_unavailable', null, 'shutting_down');
      await route.handler(req, res);
    } catch (e) {
      this.sendError(res, e);
    } finally {
      this.inflight--;
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      this.opts.log?.(`${req.method ?? '?'} ${pathname} ${res.statusCode} ${(performance.now() - t0).toFixed(1)}ms`);
    }
  }

  private checkAuth(req: http.IncomingMessage): void {
    const env = this.opts.apiKeyEnv;
    if (env === undefined) return;
    const key = process.env[env];
    if (key === undefined || key === '') return;
    const h = req.headers.authorization ?? '';
    const got = Buffer.from(h.startsWith('Bearer ') ? h.slice(7) : '', 'utf8');
    const want = Buffer.from(key, 'utf8');
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw new ApiError(401, 'invalid or missing API key', 'authentication_error', null, 'invalid_api_key');
  }

  private sendError(res: http.ServerResponse, e: unknown): void {
    let err: ApiError;
    if (e instanceof ApiError) err = e;
    else {
      const msg = e instanceof Error ? e.message : String(e);
      err = new ApiError(500, `internal error: ${msg}`, 'server_error', null, 'internal_error');
      process.stderr.write(`oreal serve: ${err.message}\n`);
    }
    if (res.headersSent || res.destroyed) {
      if (!res.writableEnded && !res.destroyed) res.end();
      return;
    }
    this.sendJson(res, err.status, err.body());
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private readBody(req: http.IncomingMessage): Promise<unknown> {
    const limit = this.maxBodyBytes;
    const tooLarge = (): ApiError =>
      new ApiError(413, `request body larger than ${limit} bytes`, 'invalid_request_error', null, 'request_too_large');
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > limit * 16) {
        req.destroy();
        reject(tooLarge());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limit) {
          over = true;
          chunks.length = 0;
          if (size > limit * 16) {
            req.destroy();
            reject(tooLarge());
          }
        } else chunks.push(c);
      });
      req.on('end', () => {
        if (over) {
          reject(tooLarge());
          return;
        }
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') {
          reject(badRequest('request body is empty (expected a JSON object)', null, 'invalid_json'));
          return;
        }
        try {
          resolve(JSON.parse(text) as unknown);
        } catch (e) {
          reject(badRequest(`request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'));
        }
      });
      req.on('error', (e) => reject(e));
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Small routes

  private async health(_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const st = this.scheduler.stats();
    this.sendJson(res, this.closing ? 503 : 200, {
      status: this.closing ? 'shutting_down' : 'ok',
      running: st.running,
      queued: st.queued,
      weight_version: st.weightVersion,
      completed_requests: st.completedRequests,
      cancelled_requests: st.cancelledRequests,
      generated_tokens: st.generatedTokens,
      decode_steps: st.decodeSteps,
    });
  }

  private async models(_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.sendJson(res, 200, {
      object: 'list',
      data: [{ id: this.servedModelName, object: 'model', created: this.created, owned_by: 'oreal', root: this.modelPath, max_model_len: this.maxModelLen }],
    });
  }

  private async modelInfo(_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.sendJson(res, 200, { model_path: this.modelPath, tokenizer_path: this.tokenizer ? this.modelPath : null, is_generation: true });
  }

  private async updateWeights(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await this.readBody(req);
    if (!isRecord(body)) throw badRequest('request body must be a JSON object');
    const dir = body['model_path'];
    if (dir === undefined || dir === null) throw badRequest(`'model_path' is required`, 'model_path', 'missing_required_parameter');
    if (typeof dir !== 'string' || dir === '') throw badRequest(`'model_path' must be a non-empty string`, 'model_path', 'invalid_type');
    const r = await this.scheduler.updateWeights(dir);
    const version = this.scheduler.stats().weightVersion;
    this.sendJson(res, r.success ? 200 : 400, { success: r.success, message: r.message, weight_version: version });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Completions

  private checkModel(name: string | null): void {
    if (name === null || name === '' || name === this.servedModelName) return;
    if (this.modelPath !== '' && (name === this.modelPath || path.resolve(name) === path.resolve(this.modelPath))) return;
    throw new ApiError(404, `the model '${name}' does not exist (this server has '${this.servedModelName}')`, 'not_found_error', 'model', 'model_not_found');
  }

  private promptIds(p: string | number[], where: string): number[] {
    const V = this.model.config.vocabSize;
    if (typeof p === 'string') {
      if (!this.tokenizer) throw badRequest('this model has no tokenizer: send the prompt as token ids', where, 'no_tokenizer');
      const ids = this.tokenizer.encode(p, { addSpecialTokens: false });
      if (ids.length === 0) throw badRequest('the prompt encodes to no tokens', where, 'invalid_value');
      return ids;
    }
    for (const t of p) if (t < 0 || t >= V) throw badRequest(`prompt token id ${t} is not in [0, ${V})`, where, 'invalid_value');
    return p;
  }

  private samplingParams(r: ParsedSampling, maxTokens: number): SamplingParams {
    if (r.stop.length > 0 && !this.tokenizer) throw badRequest(`'stop' strings need a tokenizer (this model has none)`, 'stop', 'no_tokenizer');
    const stopIds = new Set(r.stopTokenIds);
    if (!r.ignoreEos) for (const id of this.defaultStopIds) stopIds.add(id);
    const greedy = r.temperature === 0;
    return {
      maxNewTokens: maxTokens,
      temperature: r.temperature,
      topP: r.topP,
      topK: r.topK,
      stopTokenIds: [...stopIds],
      stopStrings: r.stop,
      ...(r.seed !== undefined ? { seed: r.seed } : {}),
      ...(greedy ? { greedy: true } : {}),
    };
  }

  private tokenString(id: number, asIds: boolean): string {
    if (asIds || !this.tokenizer) return `token_id:${id}`;
    return this.tokenizer.decode([id], { skipSpecialTokens: false });
  }

  private completionLogprobs(tokens: readonly number[], lps: readonly number[], tops: readonly TopLogprob[][] | null, k: number, asIds: boolean, offset0: number): Json {
    const strs = tokens.map((t) => this.tokenString(t, asIds));
    const offsets: number[] = [];
    let off = offset0;
    for (const s of strs) {
      offsets.push(off);
      off += s.length;
    }
    return {
      tokens: strs,
      token_logprobs: [...lps],
      top_logprobs: k > 0 && tops ? tops.map((row) => Object.fromEntries(row.map((a) => [this.tokenString(a.id, asIds), a.logprob]))) : null,
      text_offset: offsets,
    };
  }

  private chatLogprobs(tokens: readonly number[], lps: readonly number[], tops: readonly TopLogprob[][] | null, asIds: boolean): Json {
    return {
      content: tokens.map((t, i) => {
        const s = this.tokenString(t, asIds);
        return {
          token: s,
          logprob: lps[i]!,
          bytes: utf8Bytes(s),
          top_logprobs: (tops?.[i] ?? []).map((a) => {
            const as = this.tokenString(a.id, asIds);
            return { token: as, logprob: a.logprob, bytes: utf8Bytes(as) };
          }),
        };
      }),
    };
  }

  private async completions(req: http.IncomingMessage, res: http.ServerResponse, chat: boolean): Promise<void> {
    const body = await this.readBody(req);
    const r = chat ? parseChatRequest(body) : parseCompletionRequest(body);
    this.checkModel(r.model);
    let prompts: number[][];
    if ('messages' in r) {
      const tok = this.tokenizer;
      if (!tok || tok.chatTemplate === null) throw badRequest('this model has no tokenizer with a chat template: use /v1/completions', 'messages', 'no_chat_template');
      let text: string;
      try {
        text = tok.applyChatTemplate(r.messages, { addGenerationPrompt: r.addGenerationPrompt });
      } catch (e) {
        throw badRequest(`chat template failed: ${(e as Error).message}`, 'messages', 'invalid_value');
      }
      prompts = [this.promptIds(text, 'messages')];
    } else {
      prompts = r.prompts.map((p) => this.promptIds(p, 'prompt'));
    }
    const L = this.maxModelLen;
    const longest = Math.max(...prompts.map((p) => p.length));
    if (longest >= L) throw badRequest(`the prompt has ${longest} tokens; this model's maximum context length is ${L} tokens`, chat ? 'messages' : 'prompt', 'context_length_exceeded');
    const maxTokens = r.maxTokens ?? (chat ? L - longest : 16);
    if (longest + maxTokens > L)
      throw badRequest(
        `this model's maximum context length is ${L} tokens; the prompt has ${longest} tokens and max_tokens is ${maxTokens}`,
        'max_tokens',
        'context_length_exceeded',
      );
    const params = this.samplingParams(r, maxTokens);
    const n = r.n;
    const k = r.logprobs ?? 0;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = this.servedModelName;

    /** Tokens whose text counts (no final stop token id) for skip_special_tokens: false. */
    const textTokens = (g: SampleResult): number[] =>
      g.finishReason === 'stop' && g.tokenIds.length > 0 && params.stopTokenIds.includes(g.tokenIds[g.tokenIds.length - 1]!) ? g.tokenIds.slice(0, -1) : g.tokenIds;

    // Streaming state (filled only with stream: true).
    const stream = r.stream;
    const tok = this.tokenizer;
    const holdback = params.stopStrings.reduce((m, s) => Math.max(m, s.length - 1), 0);
    const streamers: TextStreamer[] = [];
    const textSoFar: number[] = []; // completions: characters sent per choice (text_offset)
    if (stream) {
      for (let i = 0; i < prompts.length * n; i++) {
        streamers.push(new TextStreamer(tok ? (ids) => tok.decode(ids, { skipSpecialTokens: r.skipSpecialTokens }) : () => '', holdback));
        textSoFar.push(0);
      }
    }
    const send = (obj: unknown): void => {
      if (!res.destroyed && !res.writableEnded) res.write(`data: ${JSON.stringify(obj)}\n\n`);
    };
    const chunk = (choice: Json): Json =>
      chat ? { id, object: 'chat.completion.chunk', created, model, choices: [choice] } : { id, object: 'text_completion', created, model, choices: [choice] };
    const onToken = (pi: number) => (ev: TokenEvent): void => {
      const index = pi * n + ev.sample;
      const st = streamers[index]!;
      let delta: string;
      let finish: string | null = null;
      if (ev.result) {
        // The final text (stop token dropped, cut before a stop string) decides what is still to be sent.
        const finalText = r.skipSpecialTokens ? ev.result.text : tok ? tok.decode(textTokens(ev.result), { skipSpecialTokens: false }) : '';
        delta = st.finish(finalText);
        finish = ev.result.finishReason;
      } else delta = st.next(ev.tokens);
      const lp = r.logprobs !== null;
      if (delta === '' && finish === null && !lp) return;
      const c: Json = { index };
      if (chat) {
        c.delta = { content: delta };
        c.logprobs = lp ? this.chatLogprobs([ev.token], [ev.logprob], ev.top ? [ev.top] : null, r.tokensAsIds) : null;
      } else {
        c.text = delta;
        c.logprobs = lp ? this.completionLogprobs([ev.token], [ev.logprob], ev.top ? [ev.top] : null, k, r.tokensAsIds, textSoFar[index]!) : null;
        textSoFar[index]! += delta.length;
      }
      c.finish_reason = finish;
      send(chunk(c));
    };

    // Submit every prompt; a refusal cancels those already queued.
    const jobs: Job[] = [];
    const cancelAll = (reason: string): void => {
      for (const j of jobs) j.cancel(reason);
    };
    try {
      prompts.forEach((prompt, pi) => {
        jobs.push(
          this.scheduler.submit({
            prompt,
            n,
            params,
            topLogprobs: k,
            ...(stream ? { onToken: onToken(pi) } : {}),
          }),
        );
      });
    } catch (e) {
      cancelAll('request refused');
      if (e instanceof QueueFullError) throw new ApiError(503, e.message, 'service_unavailable', null, 'queue_full');
      throw badRequest((e as Error).message);
    }
    const timer = setTimeout(() => cancelAll('timeout'), this.requestTimeoutMs);
    const onClose = (): void => {
      if (!res.writableFinished) cancelAll('client disconnected');
    };
    res.on('close', onClose);
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: this.closing ? 'close' : 'keep-alive' });
      if (chat) for (let i = 0; i < prompts.length * n; i++) send(chunk({ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
    }
    let results: SampleResult[][];
    try {
      results = await Promise.all(jobs.map((j) => j.done));
    } catch (e) {
      cancelAll('request failed');
      let err: ApiError;
      if (e instanceof CancelledError) {
        if (e.reason === 'timeout') err = new ApiError(504, `request timed out after ${this.requestTimeoutMs} ms`, 'timeout_error', null, 'timeout');
        else if (e.reason === 'client disconnected') return;
        else err = new ApiError(503, `request cancelled: ${e.reason}`, 'service_unavailable', null, 'cancelled');
      } else err = new ApiError(500, `generation failed: ${e instanceof Error ? e.message : String(e)}`, 'server_error', null, 'internal_error');
      if (stream) {
        send(err.body());
        if (!res.destroyed && !res.writableEnded) res.end('data: [DONE]\n\n');
        return;
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const promptTokens = prompts.reduce((s, p) => s + p.length, 0);
    let completionTokens = 0;
    for (const rs of results) for (const g of rs) completionTokens += g.tokenIds.length;
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    res.off('close', onClose);
    if (stream) {
      if (r.includeUsage) send({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model, choices: [], usage });
      if (!res.destroyed && !res.writableEnded) res.end('data: [DONE]\n\n');
      return;
    }
    const textOf = (g: SampleResult): string => {
      if (r.skipSpecialTokens || !tok) return g.text;
      const t = tok.decode(textTokens(g), { skipSpecialTokens: false });
      // a stop string cut applies at the same place (the special tokens only add characters)
      if (g.finishReason === 'stop' && params.stopStrings.length > 0) {
        let cut = -1;
        for (const ss of params.stopStrings) {
          const at = t.indexOf(ss);
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) return t.slice(0, cut);
      }
      return t;
    };
    const choices: Json[] = [];
    results.forEach((rs, pi) => {
      rs.forEach((g, j) => {
        const index = pi * n + j;
        const text = textOf(g);
        if (chat) {
          choices.push({
            index,
            message: { role: 'assistant', content: text },
            logprobs: r.logprobs !== null ? this.chatLogprobs(g.tokenIds, g.logprobs, g.topLogprobs, r.tokensAsIds) : null,
            finish_reason: g.finishReason,
          });
        } else {
          choices.push({
            index,
            text,
            logprobs: r.logprobs !== null ? this.completionLogprobs(g.tokenIds, g.logprobs, g.topLogprobs, k, r.tokensAsIds, 0) : null,
            finish_reason: g.finishReason,
          });
        }
      });
    });
    this.sendJson(res, 200, { id, object: chat ? 'chat.completion' : 'text_completion', created, model, choices, usage });
  }
}

