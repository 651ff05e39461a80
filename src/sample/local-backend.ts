// The local rollout engine behind the RolloutBackend protocol: a Qwen2Model (its weights read in place) plus an
// optional tokenizer. Text prompts are encoded without added special tokens (they come rendered, e.g. by the chat
// template, which already holds whatever special tokens the model expects); generated text is decoded with special
// tokens skipped by default (as vLLM does).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Qwen2Model, qwen2ConfigFromModelConfig, type Qwen2Config } from '../model/qwen2.js';
import { Tokenizer } from '../model/tokenizer.js';
import { generate, type GenerateStats } from './generate.js';
import { KvDecoder, type KvDecoderOptions } from './kv-decoder.js';
import type { Generation, GenerationRequest, RolloutBackend } from './types.js';
import type { RolloutBackendEntry } from './rollout-backends.js';

export interface LocalRolloutOptions {
  /** Most sequences decoded at once (default 64). */
  maxBatch?: number;
  decoder?: KvDecoderOptions;
  /** Drop special tokens from `text` (default true). */
  skipSpecialTokens?: boolean;
  /** Run the tokenizer's post-processor on text prompts (default false). */
  addSpecialTokens?: boolean;
}

const CONFIG_KEYS: ReadonlyArray<keyof Qwen2Config> = [
  'vocabSize',
  'hiddenSize',
  'intermediateSize',
  'numHiddenLayers',
  'numAttentionHeads',
  'numKeyValueHeads',
  'tieWordEmbeddings',
  'attentionBias',
  'head',
];

/**
 * Copies the weights of the HF checkpoint in `dir` into `model`'s parameters in place. The checkpoint's architecture
 * must match the model's; RoPE theta and RMSNorm eps must match too (they are not parameters); every value must be
 * finite. Nothing is written unless all of that holds.
 */
export function loadWeightsInto(model: Qwen2Model, dir: string): void {
  const ck = loadCheckpoint(dir);
  const cfg = qwen2ConfigFromModelConfig(ck.config);
  const mine = model.config;
  for (const k of [...CONFIG_KEYS, 'ropeTheta', 'rmsNormEps'] as const) {
    if (cfg[k] !== mine[k]) throw new Error(`${dir}: config ${k} = ${String(cfg[k])}, the model has ${String(mine[k])}`);
  }
  // Check everything before writing anything, so a bad checkpoint leaves the weights untouched.
  for (const { name, shape } of model.shapes) {
    const t = ck.tensors.get(name);
    if (t === undefined) throw new Error(`${dir}: missing tensor ${name} [${shape.join(', ')}]`);
    if (t.shape.join(',') !== shape.join(','))
      throw new Error(`${dir}: tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    // NaN or ±Inf weights would make every later request fail or return garbage: refuse them here.
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${dir}: tensor ${name} holds a non-finite value (${t.data[bad]} at index ${bad}); weights not loaded`);
  }
  for (const { name } of model.shapes) model.backend.write(model.tensor(name), ck.tensors.get(name)!.data);
}

export class LocalRolloutBackend implements RolloutBackend {
  readonly name = 'local';
  readonly model: Qwen2Model;
  readonly tokenizer: Tokenizer | null;
  private readonly decoder: KvDecoder;
  private readonly opts: LocalRolloutOptions;
  /** Counts and timings of the last `generate` call. */
  lastStats: GenerateStats | null = null;

  constructor(model: Qwen2Model, tokenizer: Tokenizer | null, opts: LocalRolloutOptions = {}) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.opts = opts;
    this.decoder = new KvDecoder(model, opts.decoder);
  }

  /** Loads the checkpoint in `dir` onto `backend`, with its tokenizer when the directory has tokenizer.json. */
  static load(dir: string, backend: Backend, opts: LocalRolloutOptions = {}): LocalRolloutBackend {
    const model = Qwen2Model.fromCheckpoint(loadCheckpoint(dir), backend);
    const tok = fs.existsSync(path.join(dir, 'tokenizer.json')) ? Tokenizer.load(dir) : null;
    return new LocalRolloutBackend(model, tok, opts);
  }

  async generate(requests: GenerationRequest[]): Promise<Generation[][]> {
    const tok = this.tokenizer;
    const stats: GenerateStats = { prefillTokens: 0, generatedTokens: 0, decodeSteps: 0, prefillSeconds: 0, decodeSeconds: 0 };
    const skip = this.opts.skipSpecialTokens ?? true;
    const add = this.opts.addSpecialTokens ?? false;
    const res = await generate(this.model, requests, {
      decoder: this.decoder,
      stats,
      ...(this.opts.maxBatch !== undefined ? { maxBatch: this.opts.maxBatch } : {}),
      ...(tok
        ? {
            encode: (t: string) => tok.encode(t, { addSpecialTokens: add }),
            decode: (ids: readonly number[]) => tok.decode(ids, { skipSpecialTokens: skip }),
          }
        : {}),
    });
    this.lastStats = stats;
    return res;
  }

  async syncWeights(checkpointDir: string): Promise<void> {
    loadWeightsInto(this.model, checkpointDir);
  }

  async close(): Promise<void> {
    this.decoder.releaseBuffers();
  }
}

/** The registry entry (src/sample/rollout-backends.ts): the live policy, or a checkpoint loaded onto a compute backend. */
export const localRollout: RolloutBackendEntry = {
  kind: 'engine',
  requires: [],
  create(o) {
    if (o.policy !== undefined) return new LocalRolloutBackend(o.policy.model, o.policy.tokenizer);
    if (o.checkpoint !== undefined) {
      const { dir, compute, maxBatch } = o.checkpoint;
      return LocalRolloutBackend.load(dir, compute, maxBatch !== undefined ? { maxBatch } : {});
    }
    throw new Error('local rollouts need a policy model or a checkpoint directory');
  },
};
