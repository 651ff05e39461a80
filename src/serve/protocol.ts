// OpenAI-compatible request parsing and validation for `oreal serve`, and the error format
// `{"error": {"message", "type", "param", "code"}}`.
//
// Supported request fields (others are ignored, as OpenAI clients send many optional ones):
//   common: model, n (1..128), max_tokens (≥ 0; `max_completion_tokens` is an alias for chat), temperature (≥ 0, 0 =
//     greedy), top_p (0, 1], top_k (extension; 0 or −1 = off), stop (string or list of up to 16 non-empty strings),
//     seed (integer), stream, stream_options.include_usage, and the vLLM/SGLang extensions stop_token_ids,
//     ignore_eos, skip_special_tokens, return_tokens_as_token_ids.
//   /v1/completions: prompt = string | token ids | list of strings | list of token-id lists; logprobs = integer 0..20
//     (0 gives the sampled tokens' logprobs only; k > 0 adds the top k alternatives per token).
//   /v1/chat/completions: messages [{role, content: string | [{type: "text", text}]}], logprobs: bool,
//     top_logprobs 0..20, add_generation_prompt (extension, default true).
// Fields that would change results but are not implemented (echo, suffix, best_of > n, non-zero presence / frequency
// penalties, repetition_penalty ≠ 1, logit_bias, tools) are refused with 400 rather than silently ignored.
import type { ChatMessage } from '../model/tokenizer.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, code);

type Json = Record<string, unknown>;

export function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sampling fields shared by both endpoints. */
export interface ParsedSampling {
  model: string | null;
  n: number;
  /** null: the endpoint's default. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  topK: number;
  stop: string[];
  stopTokenIds: number[];
  seed: number | undefined;
  ignoreEos: boolean;
  skipSpecialTokens: boolean;
  /** null: no logprobs; else the number of alternatives per token (0 = the sampled token's only). */
  logprobs: number | null;
  tokensAsIds: boolean;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequestBody extends ParsedSampling {
  prompts: Array<string | number[]>;
}

export interface ChatRequestBody extends ParsedSampling {
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
}

const MAX_N = 128;
const MAX_STOP = 16;
const MAX_TOP_LOGPROBS = 20;

function intField(b: Json, key: string, def: number, min: number, max: number): number {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`'${key}' must be an integer`, key, 'invalid_type');
  if (v < min || v > max) throw badRequest(`'${key}' must be between ${min} and ${max}, got ${v}`, key, 'invalid_value');
  return v;
}

function numField(b: Json, key: string, def: number, ok: (x: number) => boolean, what: string): number {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`'${key}' must be a number`, key, 'invalid_type');
  if (!ok(v)) throw badRequest(`'${key}' must be ${what}, got ${v}`, key, 'invalid_value');
  return v;
}

function boolField(b: Json, key: string, def: boolean): boolean {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw badRequest(`'${key}' must be a boolean`, key, 'invalid_type');
  return v;
}

function isTokenIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isInteger(x));
}

function refuseUnsupported(b: Json): void {
  const zeroOk = ['presence_penalty', 'frequency_penalty'];
  for (const k of zeroOk) {
    const v = b[k];
    if (v !== undefined && v !== null && v !== 0) throw badRequest(`'${k}' is not supported (only 0)`, k, 'unsupported_parameter');
  }
  const rp = b['repetition_penalty'];
  if (rp !== undefined && rp !== null && rp !== 1) throw badRequest(`'repetition_penalty' is not supported (only 1)`, 'repetition_penalty', 'unsupported_parameter');
  const lb = b['logit_bias'];
  if (lb !== undefined && lb !== null && !(isRecord(lb) && Object.keys(lb).length === 0))
    throw badRequest(`'logit_bias' is not supported`, 'logit_bias', 'unsupported_parameter');
  if (b['echo'] === true) throw badRequest(`'echo' is not supported`, 'echo', 'unsupported_parameter');
  if (typeof b['suffix'] === 'string' && b['suffix'] !== '') throw badRequest(`'suffix' is not supported`, 'suffix', 'unsupported_parameter');
  for (const k of ['tools', 'functions', 'response_format']) {
    const v = b[k];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0) && !(k === 'response_format' && isRecord(v) && v['type'] === 'text'))
      throw badRequest(`'${k}' is not supported`, k, 'unsupported_parameter');
  }
}

function parseSampling(b: Json, chat: boolean): ParsedSampling {
  refuseUnsupported(b);
  const model = b['model'];
  if (model !== undefined && model !== null && typeof model !== 'string') throw badRequest(`'model' must be a string`, 'model', 'invalid_type');
  const n = intField(b, 'n', 1, 1, MAX_N);
  const bestOf = intField(b, 'best_of', n, 1, MAX_N);
  if (bestOf !== n) throw badRequest(`'best_of' different from 'n' is not supported`, 'best_of', 'unsupported_parameter');
  let maxTokens: number | null = null;
  for (const key of chat ? ['max_completion_tokens', 'max_tokens'] : ['max_tokens']) {
    if (b[key] !== undefined && b[key] !== null) {
      maxTokens = intField(b, key, 0, 0, 2 ** 31 - 1);
      break;
    }
  }
  const temperature = numField(b, 'temperature', 1, (x) => x >= 0, '>= 0');
  const topP = numField(b, 'top_p', 1, (x) => x > 0 && x <= 1, 'in (0, 1]');
  let topK = intField(b, 'top_k', 0, -1, 2 ** 31 - 1);
  if (topK < 0) topK = 0;
  let stop: string[] = [];
  const st = b['stop'];
  if (typeof st === 'string') stop = [st];
  else if (Array.isArray(st)) {
    if (st.length > MAX_STOP) throw badRequest(`'stop' has ${st.length} entries, at most ${MAX_STOP} are allowed`, 'stop', 'invalid_value');
    if (!st.every((x) => typeof x === 'string')) throw badRequest(`'stop' must be a string or a list of strings`, 'stop', 'invalid_type');
    stop = st as string[];
  } else if (st !== undefined && st !== null) throw badRequest(`'stop' must be a string or a list of strings`, 'stop', 'invalid_type');
  if (stop.some((s) => s.length === 0)) throw badRequest(`'stop' strings must not be empty`, 'stop', 'invalid_value');
  if (stop.some((s) => s.length > 1000)) throw badRequest(`'stop' strings must be at most 1000 characters`, 'stop', 'invalid_value');
  let stopTokenIds: number[] = [];
  const sti = b['stop_token_ids'];
  if (sti !== undefined && sti !== null) {
    if (!Array.isArray(sti) || !sti.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0))
      throw badRequest(`'stop_token_ids' must be a list of non-negative integers`, 'stop_token_ids', 'invalid_type');
    if (sti.length > 1024) throw badRequest(`'stop_token_ids' is too long`, 'stop_token_ids', 'invalid_value');
    stopTokenIds = sti as number[];
  }
  let seed: number | undefined;
  const sd = b['seed'];
  if (sd !== undefined && sd !== null) {
    if (typeof sd !== 'number' || !Number.isSafeInteger(sd)) throw badRequest(`'seed' must be an integer`, 'seed', 'invalid_type');
    seed = sd;
  }
  let logprobs: number | null = null;
  if (chat) {
    if (boolField(b, 'logprobs', false)) logprobs = intField(b, 'top_logprobs', 0, 0, MAX_TOP_LOGPROBS);
    else if (b['top_logprobs'] !== undefined && b['top_logprobs'] !== null)
      throw badRequest(`'top_logprobs' needs 'logprobs': true`, 'top_logprobs', 'invalid_value');
  } else {
    const lp = b['logprobs'];
    if (lp !== undefined && lp !== null) {
      if (typeof lp === 'boolean') logprobs = lp ? 0 : null;
      else logprobs = intField(b, 'logprobs', 0, 0, MAX_TOP_LOGPROBS);
    }
  }
  const stream = boolField(b, 'stream', false);
  let includeUsage = false;
  const so = b['stream_options'];
  if (so !== undefined && so !== null) {
    if (!isRecord(so)) throw badRequest(`'stream_options' must be an object`, 'stream_options', 'invalid_type');
    includeUsage = boolField(so, 'include_usage', false);
  }
  return {
    model: typeof model === 'string' ? model : null,
    n,
    maxTokens,
    temperature,
    topP,
    topK,
    stop,
    stopTokenIds,
    seed,
    ignoreEos: boolField(b, 'ignore_eos', false),
    skipSpecialTokens: boolField(b, 'skip_special_tokens', true),
    logprobs,
    tokensAsIds: boolField(b, 'return_tokens_as_token_ids', false),
    stream,
    includeUsage,
  };
}

/** Validates a `/v1/completions` body. */
export function parseCompletionRequest(body: unknown): CompletionRequestBody {
  if (!isRecord(body)) throw badRequest('request body must be a JSON object');
  const p = body['prompt'];
  let prompts: Array<string | number[]>;
  if (p === undefined || p === null) throw badRequest(`'prompt' is required`, 'prompt', 'missing_required_parameter');
  if (typeof p === 'string') prompts = [p];
  else if (isTokenIdList(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = p as string[];
  else if (Array.isArray(p) && p.length > 0 && p.every(isTokenIdList)) prompts = p as number[][];
  else throw badRequest(`'prompt' must be a string, a list of token ids, or a non-empty list of either`, 'prompt', 'invalid_type');
  if (prompts.length > 1024) throw badRequest(`'prompt' has more than 1024 prompts`, 'prompt', 'invalid_value');
  if (prompts.some((x) => x.length === 0)) throw badRequest(`'prompt' must not be empty`, 'prompt', 'invalid_value');
  return { ...parseSampling(body, false), prompts };
}

/** Validates a `/v1/chat/completions` body. */
export function parseChatRequest(body: unknown): ChatRequestBody {
  if (!isRecord(body)) throw badRequest('request body must be a JSON object');
  const m = body['messages'];
  if (m === undefined || m === null) throw badRequest(`'messages' is required`, 'messages', 'missing_required_parameter');
  if (!Array.isArray(m) || m.length === 0) throw badRequest(`'messages' must be a non-empty list`, 'messages', 'invalid_type');
  const messages: ChatMessage[] = m.map((x: unknown, i: number) => {
    const where = `messages[${i}]`;
    if (!isRecord(x)) throw badRequest(`'${where}' must be an object`, where, 'invalid_type');
    if (typeof x['role'] !== 'string' || x['role'] === '') throw badRequest(`'${where}.role' must be a non-empty string`, `${where}.role`, 'invalid_type');
    const c = x['content'];
    let content: string;
    if (typeof c === 'string') content = c;
    else if (c === null || c === undefined) content = '';
    else if (Array.isArray(c)) {
      content = c
        .map((part: unknown, k: number) => {
          if (!isRecord(part) || part['type'] !== 'text' || typeof part['text'] !== 'string')
            throw badRequest(`'${where}.content[${k}]' must be {"type": "text", "text": string} (only text is supported)`, `${where}.content`, 'invalid_type');
          return part['text'];
        })
        .join('');
    } else throw badRequest(`'${where}.content' must be a string or a list of text parts`, `${where}.content`, 'invalid_type');
    const msg: ChatMessage = { role: x['role'], content };
    if (typeof x['reasoning_content'] === 'string') msg.reasoning_content = x['reasoning_content'];
    return msg;
  });
  return { ...parseSampling(body, true), messages, addGenerationPrompt: boolField(body, 'add_generation_prompt', true) };
}
