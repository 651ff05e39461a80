// Hugging Face checkpoint directories: config.json + safetensors (one file, or shards with an index) + tokenizer files.
// Loading streams tensor by tensor; saving writes a complete temp directory next to the target and renames it in.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ModelConfig, loadConfig, writeConfig } from './config.js';
import { writeDirAtomic } from '../util/atomic-write.js';
import {
  type SafetensorsDtype,
  type Tensor,
  iterCheckpointTensors,
  writeShardedSafetensors,
} from './safetensors.js';

export type { Tensor } from './safetensors.js';

export interface Checkpoint {
  config: ModelConfig;
  tensors: Map<string, Tensor>;
}

/** Files copied from a tokenizer source directory when present. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'generation_config.json',
] as const;

export type CheckpointDtype = 'f32' | 'bf16' | 'f16';

const DTYPES: Record<CheckpointDtype, { st: SafetensorsDtype; torch: string }> = {
  f32: { st: 'F32', torch: 'float32' },
  bf16: { st: 'BF16', torch: 'bfloat16' },
  f16: { st: 'F16', torch: 'float16' },
};

export interface SaveOptions {
  /** Stored dtype (default bf16, as Qwen2 checkpoints ship). `torch_dtype` in config.json is set to match. */
  dtype?: CheckpointDtype;
  /** Split into shards of at most this many bytes of tensor data (default: one file). */
  maxShardBytes?: number;
  /** Directory to copy tokenizer files (and generation_config.json) from. */
  tokenizerDir?: string;
}

/** Loads config.json and every tensor (as f32) of a checkpoint directory, one tensor buffer at a time. */
export function loadCheckpoint(dir: string): Checkpoint {
  const config = loadConfig(path.join(dir, 'config.json'));
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of iterCheckpointTensors(dir)) tensors.set(name, t);
  return { config, tensors };
}

/** Streams the tensors of a checkpoint without keeping them (e.g. to convert each into an engine layout). */
export { iterCheckpointTensors } from './safetensors.js';

/**
 * Saves a checkpoint directory atomically: everything is written into `<dir>.tmp-*`, then renamed to `dir`
 * (a previous `dir` is moved aside first and deleted only once the new one is in place).
 */
export function saveCheckpoint(
  dir: string,
  config: ModelConfig,
  tensors: ReadonlyMap<string, Tensor>,
  opts: SaveOptions = {},
): void {
  const dtype = opts.dtype ?? 'bf16';
  if (!Object.hasOwn(DTYPES, dtype)) throw new Error(`saveCheckpoint: unknown dtype ${String(dtype)} (use f32, bf16 or f16)`);
  const d = DTYPES[dtype];
  writeDirAtomic(dir, (tmp) => {
    if (opts.tokenizerDir !== undefined) {
      for (const f of TOKENIZER_FILES) {
        const src = path.join(opts.tokenizerDir, f);
        if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
      }
    }
    writeShardedSafetensors(tmp, tensors, {
      dtype: d.st,
      ...(opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {}),
    });
    writeConfig(path.join(tmp, 'config.json'), { ...config, torchDtype: d.torch });
  });
}
