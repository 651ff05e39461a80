// Hugging Face `config.json` for Qwen2-family decoders (model_type `qwen2`) and Llama (model_type `llama`).
// Parsed with zod; every error names the file and the field. Unknown keys are kept so a loaded config can be written
// back unchanged (plus whatever fields the caller changed).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-write.js';

export type ModelType = 'qwen2' | 'llama';

/** A validated model configuration in camelCase, with derived sizes. */
export interface ModelConfig {
  readonly modelType: ModelType;
  readonly architectures: readonly string[];
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /** Per-head size: `head_dim` when the file gives it, otherwise hidden_size / num_attention_heads. */
  readonly headDim: number;
  /** Top-level `rope_theta` (transformers 4) or `rope_parameters.rope_theta` (transformers 5). */
  readonly ropeTheta: number;
  /**
   * The RoPE variant, from `rope_parameters.rope_type` or `rope_scaling.rope_type`/`type`; 'default' when neither
   * names one. parseConfig refuses every other value (yarn, linear, dynamic, ...): oreal implements only plain RoPE.
   */
  readonly ropeType: 'default';
  /** `rope_scaling` exactly as in the file (null when absent). */
  readonly ropeScaling: Readonly<Record<string, unknown>> | null;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: 'silu';
  /**
   * Llama's `attention_bias` (bias on q, k, v and o projections). Qwen2 has no such field: its q/k/v projections always
   * carry a bias and o_proj never does; for qwen2 this is false.
   */
  readonly attentionBias: boolean;
  /** Llama's `mlp_bias` (false for qwen2). */
  readonly mlpBias: boolean;
  /** True when q_proj, k_proj and v_proj have a bias (always for qwen2; `attention_bias` for llama). */
  readonly hasQkvBias: boolean;
  /** True when o_proj has a bias (llama with `attention_bias`; never for qwen2). */
  readonly hasOBias: boolean;
  readonly useSlidingWindow: boolean;
  readonly slidingWindow: number | null;
  /** `torch_dtype` (or the newer `dtype`) as written, e.g. "bfloat16"; null when absent. */
  readonly torchDtype: string | null;
  readonly bosTokenId: number | null;
  /** `eos_token_id` normalised to a list (HF allows a number or a list). */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  /** True when `architectures` names a token-classification head (e.g. Qwen2ForTokenClassification). */
  readonly isTokenClassification: boolean;
  /** Number of labels of a classification head (`num_labels`, else the size of `id2label`, else 2); null otherwise. */
  readonly numLabels: number | null;
  /** The whole parsed JSON object, unknown keys included, as read (used by `configToJson` for round-tripping). */
  readonly raw: Readonly<Record<string, unknown>>;
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const tokenId = nonNegInt.nullable().optional();

const baseSchema = z
  .object({
    model_type: z.enum(['qwen2', 'llama']),
    architectures: z.array(z.string()).optional(),
    vocab_size: posInt,
    hidden_size: posInt,
    intermediate_size: posInt,
    num_hidden_layers: posInt,
    num_attention_heads: posInt,
    num_key_value_heads: posInt.nullable().optional(),
    head_dim: posInt.nullable().optional(),
    rope_theta: z.number().positive().optional(),
    rope_scaling: z.record(z.string(), z.unknown()).nullable().optional(),
    rope_parameters: z.record(z.string(), z.unknown()).nullable().optional(),
    layer_types: z.array(z.string()).nullable().optional(),
    attention_dropout: z.number().nonnegative().optional(),
    partial_rotary_factor: z.number().positive().nullable().optional(),
    rms_norm_eps: z.number().positive().optional(),
    tie_word_embeddings: z.boolean().optional(),
    max_position_embeddings: posInt.optional(),
    hidden_act: z.literal('silu', { message: 'only "silu" is supported' }).optional(),
    attention_bias: z.boolean().optional(),
    mlp_bias: z.boolean().optional(),
    use_sliding_window: z.boolean().optional(),
    sliding_window: posInt.nullable().optional(),
    torch_dtype: z.string().nullable().optional(),
    dtype: z.string().nullable().optional(),
    bos_token_id: tokenId,
    eos_token_id: z.union([nonNegInt, z.array(nonNegInt)]).nullable().optional(),
    pad_token_id: tokenId,
    num_labels: posInt.optional(),
    id2label: z.record(z.string(), z.string()).optional(),
  })
  .loose();

type RawConfig = z.infer<typeof baseSchema>;

/** Error for an invalid config file; the message starts with the file name. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: field "${field}": ${detail}`);
    this.name = 'ConfigError';
  }
}

const HF_DEFAULTS: Record<ModelType, { ropeTheta: number; maxPos: number; rmsNormEps: number }> = {
  qwen2: { ropeTheta: 10000, maxPos: 32768, rmsNormEps: 1e-6 },
  llama: { ropeTheta: 10000, maxPos: 2048, rmsNormEps: 1e-6 },
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates a parsed `config.json` object. `source` names the file in error messages.
 * Throws ConfigError naming the first offending field.
 */
export function parseConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (!isRecord(json)) throw new ConfigError(source, '(root)', 'expected a JSON object');
  if (json.model_type === undefined) throw new ConfigError(source, 'model_type', 'missing (expected "qwen2" or "llama")');
  const parsed = baseSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    const got = issue.path.length > 0 ? valueAt(json, issue.path) : json;
    const detail = got === undefined ? `missing (${issue.message})` : `${issue.message} (got ${JSON.stringify(got)})`;
    throw new ConfigError(source, field, detail);
  }
  return fromRaw(parsed.data, json, source);
}

function valueAt(obj: unknown, p: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/**
 * RoPE settings in either spelling: transformers 4 writes a top-level `rope_theta` and `rope_scaling`, transformers 5
 * writes `rope_parameters: {rope_theta, rope_type}`. Both are read; when both give a theta they must agree. Anything
 * but plain RoPE is refused, since computing it as plain RoPE would be a different model without a word.
 */
function resolveRope(c: RawConfig, source: string, defaultTheta: number): { ropeTheta: number; ropeType: 'default' } {
  const rp = c.rope_parameters ?? null;
  let theta = c.rope_theta;
  if (rp !== null) {
    for (const [k, v] of Object.entries(rp)) {
      if (isRecord(v))
        throw new ConfigError(source, `rope_parameters.${k}`, 'per-layer-type RoPE parameters are not implemented by oreal');
    }
    const rpTheta = rp['rope_theta'];
    if (rpTheta !== undefined) {
      if (typeof rpTheta !== 'number' || !(rpTheta > 0) || !Number.isFinite(rpTheta))
        throw new ConfigError(source, 'rope_parameters.rope_theta', `expected a positive number (got ${JSON.stringify(rpTheta)})`);
      if (theta !== undefined && theta !== rpTheta)
        throw new ConfigError(source, 'rope_parameters.rope_theta', `${rpTheta} disagrees with the top-level rope_theta ${theta}`);
      theta = rpTheta;
    }
    const prf = rp['partial_rotary_factor'];
    if (prf !== undefined && prf !== null && prf !== 1)
      throw new ConfigError(source, 'rope_parameters.partial_rotary_factor', `${JSON.stringify(prf)} is not implemented by oreal (only 1)`);
  }
  const refuseType = (field: string, t: unknown): void => {
    if (t !== undefined && t !== 'default')
      throw new ConfigError(source, field, `${JSON.stringify(t)} is not implemented by oreal (only "default" RoPE); it would compute a different model`);
  };
  if (rp !== null) refuseType('rope_parameters.rope_type', rp['rope_type'] ?? rp['type']);
  const rs = c.rope_scaling ?? null;
  if (rs !== null) {
    const t = rs['rope_type'] ?? rs['type'];
    refuseType('rope_scaling.rope_type', t);
    // A scaling object that names no type still asks for scaling (a factor, say): refuse rather than ignore it.
    if (t === undefined && Object.keys(rs).length > 0)
      throw new ConfigError(source, 'rope_scaling', `${JSON.stringify(rs)} names no rope_type; oreal implements only "default" RoPE`);
  }
  return { ropeTheta: theta ?? defaultTheta, ropeType: 'default' };
}

/** Refuses config fields that change the computation in ways oreal does not implement, naming the field. */
function refuseUnimplemented(c: RawConfig, source: string): void {
  if (c.use_sliding_window === true)
    throw new ConfigError(source, 'use_sliding_window', 'sliding-window attention is not implemented by oreal');
  const lt = c.layer_types ?? null;
  if (lt !== null) {
    if (lt.length !== c.num_hidden_layers)
      throw new ConfigError(source, 'layer_types', `${lt.length} entries for ${c.num_hidden_layers} layers`);
    const i = lt.findIndex((t) => t !== 'full_attention');
    if (i >= 0)
      throw new ConfigError(source, `layer_types[${i}]`, `${JSON.stringify(lt[i])} is not implemented by oreal (only "full_attention")`);
  }
  if (c.partial_rotary_factor != null && c.partial_rotary_factor !== 1)
    throw new ConfigError(source, 'partial_rotary_factor', `${c.partial_rotary_factor} is not implemented by oreal (only 1)`);
  if (c.attention_dropout !== undefined && c.attention_dropout !== 0)
    throw new ConfigError(source, 'attention_dropout', `${c.attention_dropout} is not implemented by oreal (only 0)`);
}

function fromRaw(c: RawConfig, raw: Record<string, unknown>, source: string): ModelConfig {
  const type = c.model_type;
  const d = HF_DEFAULTS[type];
  refuseUnimplemented(c, source);
  const rope = resolveRope(c, source, d.ropeTheta);
  const heads = c.num_attention_heads;
  const kvHeads = c.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) {
    throw new ConfigError(source, 'num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`);
  }
  let headDim: number;
  if (c.head_dim != null) {
    headDim = c.head_dim;
  } else {
    if (c.hidden_size % heads !== 0) {
      throw new ConfigError(source, 'hidden_size', `${c.hidden_size} is not divisible by num_attention_heads ${heads}`);
    }
    headDim = c.hidden_size / heads;
  }
  if (headDim % 2 !== 0) throw new ConfigError(source, 'head_dim', `${headDim} must be even for rotary embeddings`);
  const architectures = c.architectures ?? [];
  const isTokenClassification = architectures.some((a) => a.endsWith('ForTokenClassification'));
  let numLabels: number | null = null;
  if (isTokenClassification) {
    numLabels = c.num_labels ?? (c.id2label ? Object.keys(c.id2label).length : 2);
    if (numLabels < 1) throw new ConfigError(source, 'id2label', 'a token-classification head needs at least 1 label');
  }
  // transformers' Qwen2 ignores `attention_bias` (q/k/v always biased, o_proj never), and so do we.
  const attentionBias = type === 'llama' ? (c.attention_bias ?? false) : false;
  const eos = c.eos_token_id;
  return {
    modelType: type,
    architectures,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numHiddenLayers: c.num_hidden_layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    ropeTheta: rope.ropeTheta,
    ropeType: rope.ropeType,
    ropeScaling: c.rope_scaling ?? null,
    rmsNormEps: c.rms_norm_eps ?? d.rmsNormEps,
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    maxPositionEmbeddings: c.max_position_embeddings ?? d.maxPos,
    hiddenAct: 'silu',
    attentionBias,
    mlpBias: type === 'llama' ? (c.mlp_bias ?? false) : false,
    hasQkvBias: type === 'qwen2' ? true : attentionBias,
    hasOBias: type === 'qwen2' ? false : attentionBias,
    useSlidingWindow: c.use_sliding_window ?? false,
    slidingWindow: c.sliding_window ?? null,
    torchDtype: c.torch_dtype ?? c.dtype ?? null,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    padTokenId: c.pad_token_id ?? null,
    isTokenClassification,
    numLabels,
    raw: { ...raw },
  };
}

/** Reads and validates `config.json` (a file, or a directory containing one). */
export function loadConfig(fileOrDir: string): ModelConfig {
  let file = fileOrDir;
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '(file)', `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '(root)', `invalid JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, file);
}

/**
 * The HF JSON object for a config: every key of `raw` (unknown ones included, in their order), with the known fields
 * overwritten from the typed values, so edits made through a spread (`{...cfg, vocabSize: 10}`) are saved.
 */
export function configToJson(cfg: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg.raw };
  const set = (k: string, v: unknown): void => {
    out[k] = v;
  };
  set('model_type', cfg.modelType);
  if (cfg.architectures.length > 0 || 'architectures' in out) set('architectures', [...cfg.architectures]);
  set('vocab_size', cfg.vocabSize);
  set('hidden_size', cfg.hiddenSize);
  set('intermediate_size', cfg.intermediateSize);
  set('num_hidden_layers', cfg.numHiddenLayers);
  set('num_attention_heads', cfg.numAttentionHeads);
  set('num_key_value_heads', cfg.numKeyValueHeads);
  if ('head_dim' in out || cfg.headDim * cfg.numAttentionHeads !== cfg.hiddenSize) set('head_dim', cfg.headDim);
  // Both spellings, so transformers 4 (top-level rope_theta) and 5 (rope_parameters) read the same theta.
  set('rope_theta', cfg.ropeTheta);
  const rp = isRecord(out['rope_parameters']) ? out['rope_parameters'] : {};
  set('rope_parameters', { ...rp, rope_theta: cfg.ropeTheta, rope_type: cfg.ropeType });
  if ('rope_scaling' in out || cfg.ropeScaling !== null) set('rope_scaling', cfg.ropeScaling);
  set('rms_norm_eps', cfg.rmsNormEps);
  set('tie_word_embeddings', cfg.tieWordEmbeddings);
  set('max_position_embeddings', cfg.maxPositionEmbeddings);
  set('hidden_act', cfg.hiddenAct);
  if (cfg.modelType === 'llama') {
    set('attention_bias', cfg.attentionBias);
    set('mlp_bias', cfg.mlpBias);
  }
  if ('use_sliding_window' in out || cfg.useSlidingWindow) set('use_sliding_window', cfg.useSlidingWindow);
  if ('sliding_window' in out || cfg.slidingWindow !== null) set('sliding_window', cfg.slidingWindow);
  if (cfg.torchDtype !== null) {
    // transformers ≥ 4.56 reads `dtype`, older ones only `torch_dtype`: write both.
    set('torch_dtype', cfg.torchDtype);
    set('dtype', cfg.torchDtype);
  }
  if ('bos_token_id' in out || cfg.bosTokenId !== null) set('bos_token_id', cfg.bosTokenId);
  if ('eos_token_id' in out || cfg.eosTokenIds.length > 0) {
    const prev = out['eos_token_id'];
    set('eos_token_id', cfg.eosTokenIds.length === 1 && !Array.isArray(prev) ? cfg.eosTokenIds[0] : [...cfg.eosTokenIds]);
  }
  if ('pad_token_id' in out || cfg.padTokenId !== null) set('pad_token_id', cfg.padTokenId);
  if (cfg.numLabels !== null) {
    const id2label = out['id2label'];
    if (isRecord(id2label) && Object.keys(id2label).length !== cfg.numLabels) {
      // Keep id2label consistent with num_labels, as transformers would when num_labels changes.
      const fresh: Record<string, string> = {};
      for (let i = 0; i < cfg.numLabels; i++) fresh[String(i)] = `LABEL_${i}`;
      set('id2label', fresh);
      const l2i: Record<string, number> = {};
      for (let i = 0; i < cfg.numLabels; i++) l2i[`LABEL_${i}`] = i;
      set('label2id', l2i);
    }
    if ('num_labels' in out || !isRecord(id2label)) set('num_labels', cfg.numLabels);
  }
  return out;
}

/** Writes `config.json` atomically (temp file + rename), 2-space indented like transformers. */
export function writeConfig(file: string, cfg: ModelConfig): void {
  const text = JSON.stringify(configToJson(cfg), null, 2) + '\n';
  writeFileAtomic(file, text);
}
