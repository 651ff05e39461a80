// Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) through Tokenizers.js, and chat templates from
// tokenizer_config.json rendered with @huggingface/jinja (trim_blocks + lstrip_blocks, as transformers does).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export interface ChatMessage {
  role: string;
  content: string;
  /** Optional fields some templates read (e.g. Qwen3's reasoning_content). */
  reasoning_content?: string;
}

export interface EncodeOptions {
  /** Run the post-processor (adds BOS/EOS where the tokenizer defines them; none for Qwen2). Default true, like HF. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (eos, <|im_start|>, ...). Default false, like HF. */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the assistant turn opener (`<|im_start|>assistant\n` for Qwen). Default false, like HF. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking`, `tools`). */
  extra?: Record<string, unknown>;
}

export class TokenizerError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'TokenizerError';
  }
}

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A special-token field of tokenizer_config.json: a string, an AddedToken dict {content}, or null. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isRecord(v) && typeof v['content'] === 'string') return v['content'];
  return null;
}

function readJson(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError(file, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(file, `invalid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(json)) throw new TokenizerError(file, 'expected a JSON object');
  return json;
}

export class Tokenizer {
  private readonly tok: HfTokenizer;
  private readonly template: Template | null;
  private readonly specialIds: ReadonlySet<number>;
  /** The chat template source, or null when the tokenizer has none. */
  readonly chatTemplate: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly bosToken: string | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  /** Id of `<|im_end|>` (the end of a ChatML turn), or null when the vocabulary has none. */
  readonly imEndTokenId: number | null;
  readonly imStartTokenId: number | null;
  /** Number of ids: model vocabulary plus added tokens (the embedding matrix may be larger, e.g. 151936 for Qwen2). */
  readonly vocabSize: number;

  private constructor(
    tokenizerJson: Json,
    private readonly config: Json,
    chatTemplate: string | null,
    readonly source: string,
  ) {
    const model = tokenizerJson['model'];
    if (!isRecord(model)) throw new TokenizerError(source, 'field "model" missing in tokenizer.json');
    try {
      this.tok = new HfTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(source, `cannot build tokenizer: ${(e as Error).message}`);
    }
    this.chatTemplate = chatTemplate;
    try {
      this.template = chatTemplate === null ? null : new Template(chatTemplate);
    } catch (e) {
      throw new TokenizerError(source, `field "chat_template" does not parse: ${(e as Error).message}`);
    }
    const added = this.tok.get_added_tokens_decoder();
    const special = new Set<number>();
    for (const [id, t] of added) if (t.special) special.add(id);
    this.specialIds = special;
    this.eosToken = tokenContent(config['eos_token']);
    this.padToken = tokenContent(config['pad_token']);
    this.bosToken = tokenContent(config['bos_token']);
    const idOf = (t: string | null, field: string): number | null => {
      if (t === null) return null;
      const id = this.tok.token_to_id(t);
      if (id === undefined) throw new TokenizerError(source, `field "${field}": token ${JSON.stringify(t)} is not in the vocabulary`);
      return id;
    };
    this.eosTokenId = idOf(this.eosToken, 'eos_token');
    this.padTokenId = idOf(this.padToken, 'pad_token');
    this.bosTokenId = idOf(this.bosToken, 'bos_token');
    this.imEndTokenId = this.tok.token_to_id('<|im_end|>') ?? null;
    this.imStartTokenId = this.tok.token_to_id('<|im_start|>') ?? null;
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
  }

  /**
   * Loads a tokenizer from a directory with tokenizer.json and tokenizer_config.json (the chat template comes from
   * tokenizer_config.json's `chat_template`, or from chat_template.jinja when the config has none).
   */
  static load(dir: string): Tokenizer {
    const tjPath = path.join(dir, 'tokenizer.json');
    const tcPath = path.join(dir, 'tokenizer_config.json');
    const tj = readJson(tjPath);
    const tc = fs.existsSync(tcPath) ? readJson(tcPath) : {};
    let template = pickTemplate(tc['chat_template'], tcPath);
    const jinjaPath = path.join(dir, 'chat_template.jinja');
    if (template === null && fs.existsSync(jinjaPath)) template = fs.readFileSync(jinjaPath, 'utf8');
    return new Tokenizer(tj, tc, template, dir);
  }

  /** Builds a tokenizer from already-parsed JSON objects (`source` names them in errors). */
  static fromJson(tokenizerJson: unknown, tokenizerConfig: unknown, source = '(in memory)'): Tokenizer {
    if (!isRecord(tokenizerJson)) throw new TokenizerError(source, 'tokenizer.json is not a JSON object');
    const tc = tokenizerConfig === undefined || tokenizerConfig === null ? {} : tokenizerConfig;
    if (!isRecord(tc)) throw new TokenizerError(source, 'tokenizer_config.json is not a JSON object');
    return new Tokenizer(tokenizerJson, tc, pickTemplate(tc['chat_template'], source), source);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Token strings (byte-level, e.g. "Ġworld") of `encode`. */
  tokenize(text: string, opts: EncodeOptions = {}): string[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).tokens;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    const cleanup = this.config['clean_up_tokenization_spaces'];
    return this.tok.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: typeof cleanup === 'boolean' ? cleanup : false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Ids of all special added tokens. */
  specialTokenIds(): number[] {
    return [...this.specialIds].sort((a, b) => a - b);
  }

  /** Renders the chat template to a string, as `apply_chat_template(..., tokenize=False)` does. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.template === null) throw new TokenizerError(this.source, 'the tokenizer has no chat_template');
    const ctx: Record<string, unknown> = {
      ...this.specialTokensContext(),
      ...(opts.extra ?? {}),
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    try {
      return this.template.render(ctx);
    } catch (e) {
      throw new TokenizerError(this.source, `chat template failed: ${(e as Error).message}`);
    }
  }

  /** `encode(applyChatTemplate(...), {addSpecialTokens: false})`, as `apply_chat_template(tokenize=True)`. */
  encodeChat(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  private specialTokensContext(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const v = tokenContent(this.config[k]);
      if (v !== null) out[k] = v;
    }
    const extra = this.config['additional_special_tokens'];
    if (Array.isArray(extra)) out['additional_special_tokens'] = extra.map(tokenContent).filter((x) => x !== null);
    return out;
  }
}

/** `chat_template` is a string, or a list of {name, template} (the "default" one is used). */
function pickTemplate(v: unknown, source: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    for (const e of v) {
      if (isRecord(e) && e['name'] === 'default' && typeof e['template'] === 'string') return e['template'];
    }
    throw new TokenizerError(source, 'field "chat_template": a list of templates needs one named "default"');
  }
  throw new TokenizerError(source, 'field "chat_template" must be a string or a list of {name, template}');
}
