// Builds a small byte-level BPE tokenizer in Hugging Face format (tokenizer.json + tokenizer_config.json +
// generation_config.json) for the synthetic math task: Qwen2's pre-tokenizer (so every digit is its own token and
// arithmetic stays learnable), the 256 byte symbols (any text round-trips exactly), a few hundred merges learned on
// task text, and the Qwen special tokens <|endoftext|>, <|im_start|>, <|im_end|> with a ChatML chat template.
//
// Usage: node dist/scripts/make-tokenizer.js [out-dir]   (default data/arith-tokenizer)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ARITH_FAMILIES, makeSplit } from '../src/task/arith.js';

/** Qwen2's pre-tokenizer regex (single digits, letter runs with one leading non-letter, punctuation runs). */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** ChatML as in Qwen2-Instruct, without an injected default system prompt (every token counts for a tiny model). */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}\n" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n" +
  '{%- endfor %}\n' +
  '{%- if add_generation_prompt %}\n' +
  "{{- '<|im_start|>assistant\\n' }}\n" +
  '{%- endif %}\n';

/** GPT-2's reversible byte → printable character map used by byte-level BPE. */
export function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array<string>(256);
  const kept = new Set(keep);
  for (const b of keep) out[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!kept.has(b)) out[b] = String.fromCodePoint(256 + n++);
  return out;
}

/** Pre-tokens of a text (the regex split), each mapped to its byte-level symbols. */
function preTokens(text: string, b2u: readonly string[]): string[][] {
  const re = new RegExp(QWEN2_SPLIT_REGEX.replace('(?i:', '(?:'), 'gu');
  const out: string[][] = [];
  for (const m of text.matchAll(re)) {
    const bytes = Buffer.from(m[0], 'utf8');
    out.push([...bytes].map((b) => b2u[b]!));
  }
  return out;
}

export interface BpeOptions {
  /** At most this many merges (default 200). */
  maxMerges?: number;
  /** Stop when the best pair occurs fewer times than this (default 8). */
  minFrequency?: number;
}

/** Learns BPE merges on a corpus (ties broken by the lexicographically smallest pair, so the result is deterministic). */
export function learnMerges(corpus: readonly string[], opts: BpeOptions = {}): Array<[string, string]> {
  const b2u = byteToUnicode();
  const maxMerges = opts.maxMerges ?? 200;
  const minFreq = opts.minFrequency ?? 8;
  const counts = new Map<string, number>();
  for (const text of corpus) {
    for (const t of preTokens(text, b2u)) {
      const k = t.join('\u0000');
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  const words: Array<{ syms: string[]; n: number }> = [...counts].map(([k, n]) => ({ syms: k.split('\u0000'), n }));
  const merges: Array<[string, string]> = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = w.syms[i]! + '\u0000' + w.syms[i + 1]!;
        pairs.set(k, (pairs.get(k) ?? 0) + w.n);
      }
    }
    let best: string | null = null;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== null && k < best)) [best, bestN] = [k, n];
    if (best === null || bestN < minFreq) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    for (const w of words) {
      const s = w.syms;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(s[i]!);
      }
      w.syms = next;
    }
  }
  return merges;
}

export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
}

/** The three JSON files of a byte-level BPE tokenizer with the given merges. */
export function buildTokenizerFiles(merges: ReadonlyArray<readonly [string, string]>): TokenizerFiles {
  const b2u = byteToUnicode();
  const vocab: Record<string, number> = {};
  // Byte symbols in byte order, so id == byte value for the first 256 ids.
  for (let b = 0; b < 256; b++) vocab[b2u[b]!] = b;
  let next = 256;
  for (const [a, b] of merges) {
    const t = a + b;
    if (!(t in vocab)) vocab[t] = next++;
  }
  const added = SPECIAL_TOKENS.map((content, i) => ({
    id: next + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
  const addedDecoder: Record<string, unknown> = {};
  for (const t of added) {
    const { id, ...rest } = t;
    addedDecoder[String(id)] = rest;
  }
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 2048,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  const imEnd = next + 2;
  const eot = next;
  const generationConfig: Record<string, unknown> = {
    bos_token_id: eot,
    eos_token_id: [imEnd, eot],
    pad_token_id: eot,
    do_sample: true,
    temperature: 1.0,
    top_p: 1.0,
  };
  return { tokenizerJson, tokenizerConfig, generationConfig };
}

/** The text the merges are learned on: task questions and solutions of every family and level, and chat roles. */
export function tokenizerCorpus(n = 6000, seed = 12345): string[] {
  // Chat-template role names appear in every example: weight them so they become single tokens.
  const out: string[] = [];
  for (let i = 0; i < 100; i++) out.push('<|im_start|>system\n', '<|im_start|>user\n', '<|im_start|>assistant\n');
  const ps = makeSplit('train', n, seed, { families: Object.fromEntries(ARITH_FAMILIES.map((f) => [f, 1])) });
  for (const p of ps) out.push(p.question, p.solution);
  return out;
}

/** Learns merges on the task corpus and writes the tokenizer files into `dir`; returns the vocabulary size. */
export function writeArithTokenizer(dir: string, opts: BpeOptions = {}): number {
  const merges = learnMerges(tokenizerCorpus(), opts);
  const files = buildTokenizerFiles(merges);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson, null, 1) + '\n');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(files.generationConfig, null, 2) + '\n');
  return 256 + merges.length + SPECIAL_TOKENS.length;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const dir = process.argv[2] ?? 'data/arith-tokenizer';
  const v = writeArithTokenizer(dir);
  console.log(`wrote ${dir}/tokenizer.json (vocabulary ${v}), tokenizer_config.json, generation_config.json`);
}
