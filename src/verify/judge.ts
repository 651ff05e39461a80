// LLM judge over an OpenAI-compatible chat-completions API.
//
// The judge is asked whether a candidate answer agrees with the standard (gold) answer and must reply "A"
// (correct) or "B" (incorrect). HTTP goes through the shared client (src/util/http-client.ts: concurrency limit,
// per-attempt timeout, retries with backoff on network errors, timeouts, 429 and 5xx). The API key is read from an
// environment variable and never appears in any error text.

import { JsonHttpClient, displayUrl, httpClientOptions, type HttpClientSettings } from '../util/http-client.js';

/**
 * Options of {@link LlmJudge}. The HTTP settings default to apiKeyEnv `OREAL_JUDGE_API_KEY`, concurrency 8, timeoutMs
 * 60000, retries 3, backoffMs 500, maxBackoffMs 30000.
 */
export interface LlmJudgeOptions extends HttpClientSettings {
  /** Base URL such as `http://127.0.0.1:8000/v1`, a server root (`/v1` is added), or the full `.../chat/completions` URL. */
  url: string;
  /** Model name; when absent it is read (once) from `GET <base>/models`. */
  model?: string;
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

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** OpenAI-compatible chat-completions judge. `judge()` never throws; failures come back as `verdict: 'error'`. */
export class LlmJudge {
  readonly chatUrl: string;
  readonly modelsUrl: string;
  readonly concurrency: number;
  private readonly http: JsonHttpClient;
  private readonly maxTokens: number | undefined;
  private model: string | undefined;
  private modelPromise: Promise<string> | null = null;
  private errors = 0;

  constructor(opts: LlmJudgeOptions) {
    let base = opts.url.trim().replace(/\/+$/, '');
    if (!/^https?:\/\//i.test(base)) throw new Error(`LlmJudge: url must be http(s), got ${displayUrl(base)}`);
    if (/\/chat\/completions$/.test(base)) base = base.slice(0, -'/chat/completions'.length);
    if (/^https?:\/\/[^/]+$/i.test(base)) base += '/v1'; // a server root: the OpenAI API prefix, as --endpoint adds it
    this.chatUrl = `${base}/chat/completions`;
    this.modelsUrl = `${base}/models`;
    this.model = opts.model;
    const http = httpClientOptions('LlmJudge', opts, {
      apiKeyEnv: 'OREAL_JUDGE_API_KEY',
      concurrency: 8,
      timeoutMs: 60_000,
      retries: 3,
      backoffMs: 500,
      maxBackoffMs: 30_000,
    });
    this.concurrency = http.concurrency;
    this.http = new JsonHttpClient(http);
    this.maxTokens = opts.maxTokens === undefined ? undefined : positiveInt(opts.maxTokens, 'maxTokens');
  }

  /** A copy of the request counters. */
  get stats(): JudgeStats {
    const { requests, retries } = this.http.stats();
    return { requests, retries, errors: this.errors };
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
      const json = await this.http.request(this.chatUrl, { method: 'POST', body: JSON.stringify(body) });
      const content = extractContent(json);
      if (content === null) {
        throw new Error(`judge reply from ${displayUrl(this.chatUrl)} has no choices[0].message.content`);
      }
      const verdict = parseJudgeReply(content);
      if (verdict === null) {
        throw new Error(`unparseable judge reply ${JSON.stringify(content.slice(0, 200))}`);
      }
      return { verdict, raw: content };
    } catch (err) {
      this.errors++;
      return { verdict: 'error', error: this.http.redact(err instanceof Error ? err.message : String(err)) };
    }
  }

  private async discoverModel(): Promise<string> {
    const json = await this.http.request(this.modelsUrl, { method: 'GET' });
    const data = isRecord(json) ? json.data : undefined;
    if (Array.isArray(data)) {
      for (const entry of data) {
        if (isRecord(entry) && typeof entry.id === 'string' && entry.id !== '') return entry.id;
      }
    }
    throw new Error(`no model listed at ${displayUrl(this.modelsUrl)}`);
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
