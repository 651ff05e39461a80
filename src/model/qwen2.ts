// The Qwen2 decoder (Hugging Face Qwen2ForCausalLM / Qwen2ForTokenClassification semantics), forward and backward,
// written against the engine contract (src/engine/backend.ts): parameters, gradients and activations are backend
// tensors and every step is a backend op, so the same code runs wherever the backend keeps its tensors.
//
// Layout: a micro-batch is B right-padded sequences of T token ids plus per-sequence lengths. Internally the valid
// tokens are packed into N = Σ lengths rows, so padded positions are never computed and get no gradient.
//
// One layer path: `layerForward` is the decoder layer for training, the reward model and the KV-cache decoder
// (src/sample/kv-decoder.ts); they differ only in how attention is done (packed causal attention that saves its
// log-sum-exp, or append-to-cache and attention over the cache).
//
// Memory: parameters and gradients (one tensor per HF name), plus the activations of the current micro-batch only (a
// reusable workspace). Attention keeps its output and the per-row log-sum-exp and recomputes the probabilities in
// backward. The LM head forms logits for at most `logitsChunkRows` rows at a time, only for rows that have a label,
// and recomputes them in backward (the fused tokenLogprobs op).
//
// Host edges: numbers come back only through `await backend.read` (`forwardAsync`, `readTensors`, `gradNorms`), so
// everything in src/ runs on a device backend too. `forward`, `toTensors` and the `params`/`grads` Float32Array maps
// read in place, which only a CPU backend can do: CPU-only conveniences for tests and the forward-memory bench.
import type { AttentionDims, Backend } from '../engine/backend.js';
import { CpuBackend, hostView } from '../engine/cpu-backend.js';
import type { DType, DeviceTensor, F32, I32 } from '../engine/tensor.js';
import type { ModelConfig } from './config.js';
import type { Tensor } from './safetensors.js';
import { ropeTables } from '../engine/kernels.js';
import { Mulberry32 } from '../util/rng.js';

/** The architecture numbers the decoder needs (camelCase twins of HF's config.json fields). */
export interface Qwen2Config {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** Defaults to hiddenSize / numAttentionHeads. */
  headDim?: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** LM head shares `model.embed_tokens.weight` (no `lm_head.weight`). Ignored for head 'score'. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (always true for Qwen2; Llama's `attention_bias`). */
  attentionBias: boolean;
  /** 'lm': Qwen2ForCausalLM. 'score': Qwen2ForTokenClassification with num_labels 1 (`score.weight` [1, hidden]). */
  head: 'lm' | 'score';
  /**
   * The score head has `score.bias` [1] (HF's Qwen2ForTokenClassification keeps nn.Linear's bias; OREAL's token RM
   * head is bias-free, the default here).
   */
  scoreBias?: boolean;
  /**
   * Positions the model was trained for (HF `max_position_embeddings`); generation refuses to run past it. Unset for
   * a hand-built config: no bound.
   */
  maxPositionEmbeddings?: number;
}

export interface TensorShape {
  name: string;
  shape: number[];
}

export function headDimOf(cfg: Qwen2Config): number {
  return cfg.headDim ?? cfg.hiddenSize / cfg.numAttentionHeads;
}

/** The HF tensor names and shapes of a model, in HF's module order. */
export function qwen2TensorShapes(cfg: Qwen2Config): TensorShape[] {
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const V = cfg.vocabSize;
  const hd = headDimOf(cfg);
  const qd = cfg.numAttentionHeads * hd;
  const kd = cfg.numKeyValueHeads * hd;
  const out: TensorShape[] = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    out.push({ name: p + 'input_layernorm.weight', shape: [H] });
    out.push({ name: p + 'self_attn.q_proj.weight', shape: [qd, H] });
    if (cfg.attentionBias) out.push({ name: p + 'self_attn.q_proj.bias', shape: [qd] });
    out.push({ name: p + 'self_attn.k_proj.weight', shape: [kd, H] });
    if (cfg.attentionBias) out.push({ name: p + 'self_attn.k_proj.bias', shape: [kd] });
    out.push({ name: p + 'self_attn.v_proj.weight', shape: [kd, H] });
    if (cfg.attentionBias) out.push({ name: p + 'self_attn.v_proj.bias', shape: [kd] });
    out.push({ name: p + 'self_attn.o_proj.weight', shape: [H, qd] });
    out.push({ name: p + 'post_attention_layernorm.weight', shape: [H] });
    out.push({ name: p + 'mlp.gate_proj.weight', shape: [I, H] });
    out.push({ name: p + 'mlp.up_proj.weight', shape: [I, H] });
    out.push({ name: p + 'mlp.down_proj.weight', shape: [H, I] });
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (cfg.head === 'lm' && !cfg.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [V, H] });
  if (cfg.head === 'score') out.push({ name: 'score.weight', shape: [1, H] });
  if (cfg.head === 'score' && cfg.scoreBias) out.push({ name: 'score.bias', shape: [1] });
  return out;
}

/**
 * The decoder's view of a validated HF config (src/model/config.ts). Throws on what this decoder does not implement:
 * o_proj or MLP biases, RoPE other than the default, sliding-window attention, more than one label.
 */
export function qwen2ConfigFromModelConfig(mc: ModelConfig, opts: { scoreBias?: boolean } = {}): Qwen2Config {
  if (mc.hasOBias) throw new Error('unsupported: o_proj bias (llama attention_bias)');
  if (mc.mlpBias) throw new Error('unsupported: MLP biases (llama mlp_bias)');
  // parseConfig already refused these with the file and field named; a hand-built ModelConfig is checked again here.
  if (mc.ropeType !== 'default') throw new Error(`unsupported: rope type ${JSON.stringify(mc.ropeType)}`);
  if (mc.useSlidingWindow) throw new Error('unsupported: sliding-window attention (use_sliding_window true)');
  if (mc.isTokenClassification && mc.numLabels !== 1)
    throw new Error(`unsupported: token classification with ${mc.numLabels} labels (the reward head has 1)`);
  const cfg: Qwen2Config = {
    vocabSize: mc.vocabSize,
    hiddenSize: mc.hiddenSize,
    intermediateSize: mc.intermediateSize,
    numHiddenLayers: mc.numHiddenLayers,
    numAttentionHeads: mc.numAttentionHeads,
    numKeyValueHeads: mc.numKeyValueHeads,
    headDim: mc.headDim,
    rmsNormEps: mc.rmsNormEps,
    ropeTheta: mc.ropeTheta,
    tieWordEmbeddings: mc.tieWordEmbeddings,
    attentionBias: mc.hasQkvBias,
    head: mc.isTokenClassification ? 'score' : 'lm',
    maxPositionEmbeddings: mc.maxPositionEmbeddings,
  };
  if (mc.isTokenClassification && opts.scoreBias) cfg.scoreBias = true;
  return cfg;
}

function validateConfig(cfg: Qwen2Config): void {
  const hd = headDimOf(cfg);
  const ints: Array<[string, number]> = [
    ['vocabSize', cfg.vocabSize],
    ['hiddenSize', cfg.hiddenSize],
    ['intermediateSize', cfg.intermediateSize],
    ['numHiddenLayers', cfg.numHiddenLayers],
    ['numAttentionHeads', cfg.numAttentionHeads],
    ['numKeyValueHeads', cfg.numKeyValueHeads],
    ['headDim', hd],
  ];
  for (const [k, v] of ints) if (!Number.isInteger(v) || v <= 0) throw new Error(`Qwen2Config.${k} = ${v}: not a positive integer`);
  if (cfg.numAttentionHeads % cfg.numKeyValueHeads !== 0)
    throw new Error(`numAttentionHeads ${cfg.numAttentionHeads} is not a multiple of numKeyValueHeads ${cfg.numKeyValueHeads}`);
  if (hd % 2 !== 0) throw new Error(`head dim ${hd} must be even for RoPE`);
}


// ---------------------------------------------------------------------------------------------------------------

/** Reusable backend tensors keyed by name, grown geometrically; `get` hands out a view of the first n elements. */
class Workspace {
  private readonly bufs = new Map<string, DeviceTensor>();
  constructor(private readonly backend: Backend) {}
  get(key: string, n: number, zero = false): F32 {
    return this.getT(key, n, 'f32', zero);
  }
  i32(key: string, n: number): I32 {
    return this.getT(key, n, 'i32', false);
  }
  private getT<D extends DType>(key: string, n: number, dtype: D, zero: boolean): DeviceTensor<D> {
    let b = this.bufs.get(key) as DeviceTensor<D> | undefined;
    if (b === undefined || b.size < n) {
      const cap = b === undefined ? n : Math.max(n, Math.ceil(b.size * 1.5));
      if (b !== undefined) this.backend.free(b);
      b = this.backend.empty<D>([Math.max(cap, 1)], dtype);
      this.bufs.set(key, b);
      return this.backend.view(b, 0, [n]);
    }
    const v = this.backend.view(b, 0, [n]);
    if (zero) this.backend.fill(v, 0);
    return v;
  }
  clear(): void {
    for (const b of this.bufs.values()) this.backend.free(b);
    this.bufs.clear();
  }
}

/** One decoder layer's weights, by role (the HF tensors `model.layers.{i}.*`). */
export interface LayerParams {
  ln1: F32;
  wq: F32;
  bq: F32 | null;
  wk: F32;
  bk: F32 | null;
  wv: F32;
  bv: F32 | null;
  wo: F32;
  ln2: F32;
  wg: F32;
  wu: F32;
  wd: F32;
}

/** The weights of layer `i` in a map of HF tensor names; a missing required tensor is an error naming it. */
export function layerParamsOf(src: ReadonlyMap<string, F32>, i: number): LayerParams {
  const p = `model.layers.${i}.`;
  const g = (k: string): F32 => {
    const t = src.get(p + k);
    if (t === undefined) throw new Error(`the model has no parameter ${p}${k}`);
    return t;
  };
  const o = (k: string): F32 | null => src.get(p + k) ?? null;
  return {
    ln1: g('input_layernorm.weight'),
    wq: g('self_attn.q_proj.weight'),
    bq: o('self_attn.q_proj.bias'),
    wk: g('self_attn.k_proj.weight'),
    bk: o('self_attn.k_proj.bias'),
    wv: g('self_attn.v_proj.weight'),
    bv: o('self_attn.v_proj.bias'),
    wo: g('self_attn.o_proj.weight'),
    ln2: g('post_attention_layernorm.weight'),
    wg: g('mlp.gate_proj.weight'),
    wu: g('mlp.up_proj.weight'),
    wd: g('mlp.down_proj.weight'),
  };
}

/**
 * The tensors one layer forward writes. xIn/xMid (copies of the residual stream before each block), rstd1/rstd2 and
 * lse are kept for the backward; a caller that needs no backward (the KV decoder) passes null for them.
 */
export interface LayerActs {
  xIn: F32 | null;
  rstd1: F32 | null;
  q: F32;
  k: F32;
  v: F32;
  ctx: F32;
  lse: F32 | null;
  xMid: F32 | null;
  rstd2: F32 | null;
  gate: F32;
  up: F32;
  /** The normed input of each block [N, H] (scratch). */
  h: F32;
  /** silu(gate)·up [N, I] (scratch; may be `gate` itself). */
  act: F32;
}

interface Saved {
  B: number;
  T: number;
  N: number;
  /** Packed row of (b, t): rowStart[b] + t for t < lengths[b]. */
  rowStart: Int32Array;
  lengths: Int32Array;
  pos: I32;
  tokens: I32;
  seqStarts: I32;
  layers: LayerActs[];
  xFinal: F32;
  rstdF: F32;
  hn: F32;
  /** Packed rows that have a label (host and device), their labels, their normed hidden rows and log-sum-exps. */
  labelCount: number;
  labelRows: I32;
  labelIds: I32;
  labelH: F32;
  labelLse: F32;
  /** Index into the label rows of each padded position (−1 when none). */
  labelIndexOf: Int32Array;
}
export interface ModelOptions {
  /** Rows of [rows, vocab] logits formed at once (default: ≈4M floats worth, at most 256). */
  logitsChunkRows?: number;
  /** Query rows per attention score block (default: as many as keep a block of scores under ≈4M floats). */
  attnChunk?: number;
  /** Allocate gradient arrays (default true). False: an inference-only model (half the memory); backward throws. */
  grads?: boolean;
  /**
   * Keep the matrices (embedding, projections, LM head) in ordinary Float32Arrays instead of backend memory (default
   * false; CPU backends only). For the wasm backend they then stay outside its 4 GiB memory and every GEMM copies them
   * in: slower, but it lets models larger than the wasm memory run. Norm weights and biases stay in backend memory.
   */
  paramsOutsideBackend?: boolean;
}

export interface ForwardOptions {
  /**
   * Per padded position [B·T], the token whose log-prob to report; negative = none (logp 0 there). Default for an
   * LM-head model: next-token labels (`nextTokenLabels`). Ignored for a score-head model.
   */
  labels?: Int32Array;
  /** Compute the entropy at labelled positions (default true). */
  entropy?: boolean;
  /** Return the final (normed) hidden states [B·T·H], zeros at padding (default false). */
  hidden?: boolean;
  /** Keep activations for `backward` (default true). False reuses one layer's buffers: inference only. */
  saveForBackward?: boolean;
}

export interface ForwardResult {
  B: number;
  T: number;
  /** [B·T] log π(label | prefix), 0 where there is no label. LM head only. */
  logp?: Float64Array;
  /** [B·T] entropy of the next-token distribution at labelled positions, 0 elsewhere. LM head only. */
  entropy?: Float64Array;
  /** [B·T] hidden·score.weight at every valid position, 0 at padding. Score head only. */
  score?: Float64Array;
  /** [B·T·H] final normed hidden states, when asked. */
  hidden?: Float32Array;
  /** Number of labelled positions (LM head). */
  numLabels: number;
}

/** label[b,t] = ids[b,t+1] for t < len_b − 1, else −1. */
export function nextTokenLabels(inputIds: ArrayLike<number>, lengths: ArrayLike<number>, T: number): Int32Array {
  const B = lengths.length;
  const out = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    const L = lengths[b]!;
    for (let t = 0; t + 1 < L; t++) out[b * T + t] = inputIds[b * T + t + 1]!;
  }
  return out;
}

/** Lengths from a right-padded 0/1 attention mask [B·T]; throws on left padding or holes. */
export function lengthsFromMask(mask: ArrayLike<number>, B: number, T: number): Int32Array {
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let L = 0;
    while (L < T && mask[b * T + L] !== 0) L++;
    for (let t = L; t < T; t++)
      if (mask[b * T + t] !== 0) throw new Error(`attention mask row ${b}: only right padding is supported`);
    out[b] = L;
  }
  return out;
}


/** A forward queued on the backend: where its outputs are, and how to scatter them back to padded positions. */
interface EncodedForward {
  B: number;
  T: number;
  H: number;
  lens: Int32Array;
  rowStart: Int32Array;
  labelIndexOf: Int32Array;
  numLabels: number;
  /** [labels] log-probs and entropies (LM head), [N] scores (score head), [N, H] normed hidden states. */
  logp: F32 | null;
  entropy: F32 | null;
  score: F32 | null;
  hidden: F32 | null;
}

/** The host result of an encoded forward, given the numbers of its output tensors. */
function collectForward(e: EncodedForward, get: (t: F32) => Float32Array): ForwardResult {
  const { B, T, H, lens, rowStart, labelIndexOf } = e;
  const result: ForwardResult = { B, T, numLabels: e.numLabels };
  if (e.logp) {
    const lp = get(e.logp);
    const en = e.entropy ? get(e.entropy) : null;
    const logp = new Float64Array(B * T);
    const ent = en ? new Float64Array(B * T) : undefined;
    for (let i = 0; i < B * T; i++) {
      const j = labelIndexOf[i]!;
      if (j < 0) continue;
      logp[i] = lp[j]!;
      if (ent) ent[i] = en![j]!;
    }
    result.logp = logp;
    if (ent) result.entropy = ent;
  }
  if (e.score) {
    const spa = get(e.score);
    const score = new Float64Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < lens[b]!; t++) score[b * T + t] = spa[rowStart[b]! + t]!;
    result.score = score;
  }
  if (e.hidden) {
    const hna = get(e.hidden);
    const hid = new Float32Array(B * T * H);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < lens[b]!; t++) {
        const r = rowStart[b]! + t;
        hid.set(hna.subarray(r * H, r * H + H), (b * T + t) * H);
      }
    result.hidden = hid;
  }
  return result;
}

export class Qwen2Model {
  readonly config: Qwen2Config;
  readonly backend: Backend;
  /** Parameters by HF tensor name (fp32 master weights), as backend tensors. */
  readonly tensors = new Map<string, F32>();
  /** Gradients by HF tensor name, accumulated by `backward` until `zeroGrad`. */
  readonly gradTensors = new Map<string, F32>();
  /** Host views of `tensors` (CPU backends only: empty on a device backend; for tests). */
  readonly params = new Map<string, Float32Array>();
  /** Host views of `gradTensors` (CPU backends only; for tests). */
  readonly grads = new Map<string, Float32Array>();
  readonly shapes: TensorShape[];
  private readonly hd: number;
  private readonly dims: AttentionDims;
  private readonly layers: LayerParams[] = [];
  private readonly glayers: LayerParams[] = [];
  private readonly ws: Workspace;
  private readonly logitsChunkRows: number;
  private readonly attnChunk: number | undefined;
  private saved: Saved | null = null;
  private rope: { maxPos: number; cos: F32 | null; sin: F32 | null } = { maxPos: 0, cos: null, sin: null };
  /** Tensors this model allocated from its backend (freed by dispose). */
  private readonly owned: F32[] = [];

  private constructor(config: Qwen2Config, backend: Backend, opts: ModelOptions) {
    validateConfig(config);
    this.config = config;
    this.backend = backend;
    this.hd = headDimOf(config);
    this.dims = { heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: this.hd };
    this.shapes = qwen2TensorShapes(config);
    this.ws = new Workspace(backend);
    this.logitsChunkRows = opts.logitsChunkRows ?? Math.max(1, Math.min(256, Math.floor((1 << 22) / config.vocabSize)));
    this.attnChunk = opts.attnChunk;
    const withGrads = opts.grads ?? true;
    const cpu = backend instanceof CpuBackend ? backend : null;
    for (const { name, shape } of this.shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      // Norm weights and biases are read by row ops: keep them in backend memory in any case.
      const outside = opts.paramsOutsideBackend === true && shape.length === 2 && cpu !== null;
      const p: F32 = outside && cpu ? cpu.wrap(new Float32Array(n), shape) : this.own(backend.empty(shape));
      this.tensors.set(name, p);
      if (cpu) this.params.set(name, cpu.f32(p));
      if (withGrads) {
        const g = this.own(backend.empty(shape));
        this.gradTensors.set(name, g);
        if (cpu) this.grads.set(name, cpu.f32(g));
      }
    }
    for (let i = 0; i < config.numHiddenLayers; i++) {
      this.layers.push(layerParamsOf(this.tensors, i));
      if (withGrads) this.glayers.push(layerParamsOf(this.gradTensors, i));
    }
  }

  private own(t: F32): F32 {
    this.owned.push(t);
    return t;
  }

  /**
   * A model whose parameters are copies of `tensors` (HF names; plain arrays, or `{shape, data}` tensors whose shape
   * is checked too). Every expected tensor must be present with the right size; extra tensors (e.g. `lm_head.weight`
   * of a tied checkpoint) are ignored.
   */
  static fromTensors(
    config: Qwen2Config,
    backend: Backend,
    tensors: ReadonlyMap<string, Float32Array | Tensor> | Readonly<Record<string, Float32Array | Tensor>>,
    opts: ModelOptions = {},
  ): Qwen2Model {
    const m = new Qwen2Model(config, backend, opts);
    const get = (k: string): Float32Array | Tensor | undefined =>
      tensors instanceof Map ? tensors.get(k) : (tensors as Readonly<Record<string, Float32Array | Tensor>>)[k];
    for (const { name, shape } of m.shapes) {
      const src = get(name);
      const dst = m.tensors.get(name)!;
      if (src === undefined) throw new Error(`missing tensor ${name} [${shape.join(', ')}]`);
      const data = src instanceof Float32Array ? src : src.data;
      if (!(src instanceof Float32Array) && src.shape.join(',') !== shape.join(','))
        throw new Error(`tensor ${name}: shape [${src.shape.join(', ')}], expected [${shape.join(', ')}]`);
      if (data.length !== dst.size)
        throw new Error(`tensor ${name}: ${data.length} elements, expected ${dst.size} ([${shape.join(', ')}])`);
      backend.write(dst, data);
    }
    return m;
  }

  /**
   * A model from a loaded HF checkpoint (`loadCheckpoint`). A non-zero `score.bias` turns on the (trainable) score
   * bias; an all-zero one is what `toTensors` writes for a bias-free head, and reads back as that head.
   */
  static fromCheckpoint(
    ck: { config: ModelConfig; tensors: ReadonlyMap<string, Tensor> },
    backend: Backend,
    opts: ModelOptions = {},
  ): Qwen2Model {
    const sb = ck.tensors.get('score.bias');
    const cfg = qwen2ConfigFromModelConfig(ck.config, { scoreBias: sb !== undefined && sb.data.some((v) => v !== 0) });
    return Qwen2Model.fromTensors(cfg, backend, ck.tensors, opts);
  }

  /**
   * The parameters as HF tensors (views of the live arrays, not copies). CPU backends only (tests); checkpoints are
   * saved from `readTensors`. A bias-free score head also gets a zero `score.bias`: transformers'
   * Qwen2ForTokenClassification has one and would otherwise initialise it at random on load.
   */
  toTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const { name, shape } of this.shapes) out.set(name, { shape: shape.slice(), data: hostView(this.backend, this.tensors.get(name)!) });
    return this.withScoreBias(out);
  }

  /** Host copies of the parameters as HF tensors, read with `backend.read` (any backend; e.g. for a checkpoint). */
  async readTensors(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const { name, shape } of this.shapes) out.set(name, { shape: shape.slice(), data: await this.backend.read(this.tensors.get(name)!) });
    return this.withScoreBias(out);
  }

  /** Adds the zero `score.bias` a bias-free score head is saved with (see toTensors). */
  private withScoreBias(out: Map<string, Tensor>): Map<string, Tensor> {
    if (this.config.head === 'score' && !this.config.scoreBias) out.set('score.bias', { shape: [1], data: new Float32Array(1) });
    return out;
  }

  /** Random initialisation (normal(0, std) weights, unit norms, zero biases) from a seed; for tests and toys. */
  static random(config: Qwen2Config, backend: Backend, seed = 0, std = 0.02, opts: ModelOptions = {}): Qwen2Model {
    const m = new Qwen2Model(config, backend, opts);
    const g = Mulberry32.fromState(seed ^ 0x9e3779b9);
    // In (0, 1): the Box–Muller logarithm needs a non-zero argument.
    const uni = (): number => (g.nextU32() + 0.5) / 4294967296;
    for (const { name } of m.shapes) {
      const t = m.tensors.get(name)!;
      if (name.endsWith('norm.weight')) backend.fill(t, 1);
      else if (name.endsWith('.bias')) backend.fill(t, 0);
      else {
        const p = new Float32Array(t.size);
        for (let i = 0; i < p.length; i++) p[i] = std * Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
        backend.write(t, p);
      }
    }
    return m;
  }

  /** The parameter tensor of an HF name (throws when the model has none). */
  tensor(name: string): F32 {
    const t = this.tensors.get(name);
    if (t === undefined) throw new Error(`the model has no parameter ${name}`);
    return t;
  }

  /** The [V, H] matrix of the LM head (the embedding when tied). */
  lmWeight(src: ReadonlyMap<string, F32> = this.tensors): F32 {
    return this.config.tieWordEmbeddings ? src.get('model.embed_tokens.weight')! : src.get('lm_head.weight')!;
  }

  parameterNames(): string[] {
    return this.shapes.map((s) => s.name);
  }

  numParameters(): number {
    let n = 0;
    for (const p of this.tensors.values()) n += p.size;
    return n;
  }

  zeroGrad(): void {
    for (const g of this.gradTensors.values()) this.backend.fill(g, 0);
  }

  /** L2 norm of each parameter's gradient: one `sumSquares` op per parameter and one read of them all. */
  async gradNorms(): Promise<Record<string, number>> {
    const names = [...this.gradTensors.keys()];
    const sums = this.backend.empty([names.length]);
    try {
      names.forEach((k, i) => this.backend.sumSquares([this.gradTensors.get(k)!], this.backend.view(sums, i, [1])));
      const host = await this.backend.read(sums);
      const out: Record<string, number> = {};
      names.forEach((k, i) => (out[k] = Math.sqrt(host[i]!)));
      return out;
    } finally {
      this.backend.free(sums);
    }
  }

  /** Free everything this model allocated from its backend (parameters included); the model is unusable after. */
  dispose(): void {
    this.releaseActivations();
    for (const t of this.owned) this.backend.free(t);
    this.owned.length = 0;
    this.tensors.clear();
    this.gradTensors.clear();
    this.params.clear();
    this.grads.clear();
  }

  /** Drop the saved activations and the workspace (they are rebuilt by the next forward). */
  releaseActivations(): void {
    this.saved = null;
    this.ws.clear();
    if (this.rope.cos) {
      this.backend.free(this.rope.cos);
      this.backend.free(this.rope.sin!);
      this.rope = { maxPos: 0, cos: null, sin: null };
    }
  }

  /** RoPE cos/sin tables [P, hd/2] on the backend covering positions < maxPos (HF's float32 construction). */
  ropeTables(maxPos: number): { cos: F32; sin: F32 } {
    if (this.rope.cos === null || this.rope.maxPos < maxPos) {
      const n = Math.max(maxPos, this.rope.maxPos * 2, 64);
      const { cos, sin } = ropeTables(n, this.hd, this.config.ropeTheta);
      if (this.rope.cos) {
        this.backend.free(this.rope.cos);
        this.backend.free(this.rope.sin!);
      }
      this.rope = { maxPos: n, cos: this.backend.upload(cos, [n, this.hd / 2]), sin: this.backend.upload(sin, [n, this.hd / 2]) };
    }
    return { cos: this.rope.cos!, sin: this.rope.sin! };
  }

  /** The attention shape (heads, kv heads, head dim). */
  attentionDims(): AttentionDims {
    return this.dims;
  }

  /**
   * One decoder layer over the N rows of the residual stream x [N, H] (updated in place), tokens at positions
   * pos (i32 [N]). `attend` turns A.q, A.k, A.v (after bias and RoPE) into A.ctx: the only part that differs between
   * training (packed causal attention) and decoding (KV cache). When A.xIn/A.xMid are given, the block inputs are
   * copied there for the backward.
   */
  layerForward(l: number, x: F32, N: number, pos: I32, A: LayerActs, attend: (A: LayerActs) => void): void {
    const be = this.backend;
    const cfg = this.config;
    const P = this.layers[l]!;
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const nh = cfg.numAttentionHeads;
    const nkv = cfg.numKeyValueHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = nkv * hd;
    const { cos, sin } = this.ropeTables(0);
    // Attention block: x += o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm1(x).
    if (A.xIn) be.copy(x, A.xIn);
    be.rmsnorm(x, P.ln1, A.h, A.rstd1, H, cfg.rmsNormEps);
    be.matmul(A.h, P.wq, A.q, N, qd, H, false, true, false);
    be.matmul(A.h, P.wk, A.k, N, kd, H, false, true, false);
    be.matmul(A.h, P.wv, A.v, N, kd, H, false, true, false);
    if (P.bq) be.addBias(A.q, P.bq);
    if (P.bk) be.addBias(A.k, P.bk);
    if (P.bv) be.addBias(A.v, P.bv);
    be.rope(A.q, A.q, pos, cos, sin, nh, hd, false);
    be.rope(A.k, A.k, pos, cos, sin, nkv, hd, false);
    attend(A);
    be.matmul(A.ctx, P.wo, x, N, H, qd, false, true, true);
    // MLP block: x += down(silu(gate(h2)) ⊙ up(h2)), h2 = norm2(x).
    if (A.xMid) be.copy(x, A.xMid);
    be.rmsnorm(x, P.ln2, A.h, A.rstd2, H, cfg.rmsNormEps);
    be.matmul(A.h, P.wg, A.gate, N, I, H, false, true, false);
    be.matmul(A.h, P.wu, A.up, N, I, H, false, true, false);
    be.swiglu(A.gate, A.up, A.act);
    be.matmul(A.act, P.wd, x, N, H, I, false, true, true);
  }

  /** Query rows per attention score block: `attnChunk`, else as many as keep one block under about 4M floats. */
  private attnRows(maxL: number): number {
    const group = this.config.numAttentionHeads / this.config.numKeyValueHeads;
    if (this.attnChunk !== undefined) return Math.max(1, Math.min(this.attnChunk, maxL));
    return Math.max(1, Math.min(maxL, Math.floor((1 << 22) / (group * Math.max(1, maxL)))));
  }

  /**
   * Forward over a right-padded batch: `inputIds` [B·T] (row-major), `lengths` [B] (B = lengths.length).
   * Activations are kept for one `backward` (the previous micro-batch's are overwritten). The returned numbers are
   * read synchronously (CPU backends only: tests); `forwardAsync` reads them with `backend.read` (any backend).
   */
  forward(inputIds: ArrayLike<number>, lengths: ArrayLike<number>, opts: ForwardOptions = {}): ForwardResult {
    const e = this.encodeForward(inputIds, lengths, opts);
    return collectForward(e, (t) => hostView(this.backend, t));
  }

  /** `forward`, with its outputs read back asynchronously: the path for a backend that keeps tensors on a device. */
  async forwardAsync(inputIds: ArrayLike<number>, lengths: ArrayLike<number>, opts: ForwardOptions = {}): Promise<ForwardResult> {
    const e = this.encodeForward(inputIds, lengths, opts);
    const host = new Map<F32, Float32Array>();
    for (const t of [e.logp, e.entropy, e.score, e.hidden]) if (t) host.set(t, await this.backend.read(t));
    return collectForward(e, (t) => host.get(t)!);
  }

  /** Queues the whole forward on the backend; the outputs stay there (see `collectForward`). */
  private encodeForward(inputIds: ArrayLike<number>, lengths: ArrayLike<number>, opts: ForwardOptions): EncodedForward {
    const cfg = this.config;
    const be = this.backend;
    const B = lengths.length;
    if (B === 0) throw new Error('forward: empty batch');
    if (inputIds.length % B !== 0) throw new Error(`forward: ${inputIds.length} ids do not split into ${B} rows`);
    const T = inputIds.length / B;
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const V = cfg.vocabSize;
    const nh = cfg.numAttentionHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = cfg.numKeyValueHeads * hd;
    const save = opts.saveForBackward ?? true;
    this.saved = null; // the workspace is about to be overwritten

    // Packing.
    const lens = new Int32Array(B);
    const rowStart = new Int32Array(B);
    let N = 0;
    let maxL = 0;
    for (let b = 0; b < B; b++) {
      const L = lengths[b]!;
      if (!Number.isInteger(L) || L < 0 || L > T) throw new Error(`forward: length ${L} of row ${b} not in [0, ${T}]`);
      lens[b] = L;
      rowStart[b] = N;
      N += L;
      if (L > maxL) maxL = L;
    }
    const tokens = new Int32Array(N);
    const pos = new Int32Array(N);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < lens[b]!; t++) {
        const id = inputIds[b * T + t]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} at [${b}, ${t}] not in [0, ${V})`);
        tokens[rowStart[b]! + t] = id;
        pos[rowStart[b]! + t] = t;
      }
    }
    const starts = new Int32Array(B + 1);
    starts.set(rowStart);
    starts[B] = N;
    const ws = this.ws;
    const tokensT = ws.i32('tokens', N);
    const posT = ws.i32('pos', N);
    const startsT = ws.i32('starts', B + 1);
    be.write(tokensT, tokens);
    be.write(posT, pos);
    be.write(startsT, starts);
    this.ropeTables(maxL);
    const chunk = this.attnRows(maxL);

    // Embedding → residual stream.
    const res = ws.get('res', N * H);
    be.gatherRows(this.tensor('model.embed_tokens.weight'), tokensT, res, H);

    const h = ws.get('h', N * H);
    const act = ws.get('act', N * I);
    const layersActs: LayerActs[] = [];
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const key = save ? `L${l}.` : 'L*.';
      const A: LayerActs = {
        xIn: ws.get(key + 'xIn', N * H),
        rstd1: ws.get(key + 'rstd1', N),
        q: ws.get(key + 'q', N * qd),
        k: ws.get(key + 'k', N * kd),
        v: ws.get(key + 'v', N * kd),
        ctx: ws.get(key + 'ctx', N * qd),
        lse: ws.get(key + 'lse', nh * N),
        xMid: ws.get(key + 'xMid', N * H),
        rstd2: ws.get(key + 'rstd2', N),
        gate: ws.get(key + 'gate', N * I),
        up: ws.get(key + 'up', N * I),
        h,
        act,
      };
      layersActs.push(A);
      this.layerForward(l, res, N, posT, A, (a) => be.attention(a.q, a.k, a.v, a.ctx, a.lse!, startsT, this.dims, chunk));
    }
    const xFinal = ws.get('xFinal', N * H);
    be.copy(res, xFinal);
    const rstdF = ws.get('rstdF', N);
    const hn = ws.get('hn', N * H);
    be.rmsnorm(res, this.tensor('model.norm.weight'), hn, rstdF, H, cfg.rmsNormEps);

    const out: EncodedForward = { B, T, H, lens, rowStart, labelIndexOf: new Int32Array(0), numLabels: 0, logp: null, entropy: null, score: null, hidden: null };
    const labelIndexOf = new Int32Array(B * T).fill(-1);
    let R = 0;
    const labelRowsT = ws.i32('head.rows', 0);
    let labelRows = labelRowsT;
    let labelIds = ws.i32('head.ids', 0);
    let labelH = ws.get('head.sel', 0);
    let labelLse = ws.get('head.lse', 0);

    if (cfg.head === 'lm') {
      const labels = opts.labels ?? nextTokenLabels(inputIds, lens, T);
      if (labels.length !== B * T) throw new Error(`forward: labels has ${labels.length} entries, expected ${B * T}`);
      const rows: number[] = [];
      const ids: number[] = [];
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < lens[b]!; t++) {
          const y = labels[b * T + t]!;
          if (y < 0) continue;
          if (y >= V) throw new Error(`forward: label ${y} at [${b}, ${t}] not in [0, ${V})`);
          labelIndexOf[b * T + t] = rows.length;
          rows.push(rowStart[b]! + t);
          ids.push(y);
        }
      }
      R = rows.length;
      labelRows = ws.i32('head.rows', R);
      labelIds = ws.i32('head.ids', R);
      be.write(labelRows, rows);
      be.write(labelIds, ids);
      labelH = ws.get('head.sel', R * H);
      labelLse = ws.get('head.lse', R);
      const wantEnt = opts.entropy ?? true;
      const logpT = ws.get('head.logp', R);
      const entT = wantEnt ? ws.get('head.ent', R) : null;
      be.gatherRows(hn, labelRows, labelH, H);
      be.tokenLogprobs(labelH, this.lmWeight(), labelIds, logpT, labelLse, entT, V, this.logitsChunkRows);
      out.logp = logpT;
      out.entropy = entT;
      out.numLabels = R;
    } else {
      const sp = ws.get('head.score', N);
      be.matmul(hn, this.tensor('score.weight'), sp, N, 1, H, false, true, false);
      const sb = this.tensors.get('score.bias');
      if (sb) be.addBias(sp, sb);
      out.score = sp;
    }
    if (opts.hidden) out.hidden = hn;
    out.labelIndexOf = labelIndexOf;

    this.saved = save
      ? {
          B,
          T,
          N,
          rowStart,
          lengths: lens,
          pos: posT,
          tokens: tokensT,
          seqStarts: startsT,
          layers: layersActs,
          xFinal,
          rstdF,
          hn,
          labelCount: R,
          labelRows,
          labelIds,
          labelH,
          labelLse,
          labelIndexOf,
        }
      : null;
    return out;
  }

  /**
   * Backward from dL/dlogp [B·T] (LM head) and/or dL/dscore [B·T] (score head) of the last forward, accumulating into
   * `grads`. Entries at padded or unlabelled positions are ignored.
   */
  backward(dLogp?: ArrayLike<number> | null, dScore?: ArrayLike<number> | null): void {
    const S = this.saved;
    if (!S) throw new Error('backward: no saved activations (call forward with saveForBackward first)');
    if (this.gradTensors.size === 0) throw new Error('backward: this model has no gradients (created with grads: false)');
    if (!dLogp && !dScore) return;
    const cfg = this.config;
    const be = this.backend;
    const { B, T, N } = S;
    const H = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const V = cfg.vocabSize;
    const nh = cfg.numAttentionHeads;
    const nkv = cfg.numKeyValueHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = nkv * hd;
    const ws = this.ws;
    const G = this.gradTensors;
    const dhn = ws.get('b.dhn', N * H, true);

    if (dLogp) {
      if (cfg.head !== 'lm') throw new Error('backward: dLogp given but the model has no LM head');
      if (dLogp.length !== B * T) throw new Error(`backward: dLogp has ${dLogp.length} entries, expected ${B * T}`);
      const R = S.labelCount;
      const g = new Float32Array(R);
      for (let i = 0; i < B * T; i++) {
        const j = S.labelIndexOf[i]!;
        if (j >= 0) g[j] = dLogp[i]!;
      }
      const gT = ws.get('b.glogp', R);
      be.write(gT, g);
      const dH = ws.get('b.dsel', R * H);
      be.tokenLogprobsBackward(S.labelH, this.lmWeight(), S.labelIds, S.labelLse, gT, dH, this.lmWeight(G), V, this.logitsChunkRows);
      be.scatterAddRows(dH, S.labelRows, dhn, H);
    }
    if (dScore) {
      if (cfg.head !== 'score') throw new Error('backward: dScore given but the model has no score head');
      if (dScore.length !== B * T) throw new Error(`backward: dScore has ${dScore.length} entries, expected ${B * T}`);
      const ds = new Float32Array(N);
      for (let b = 0; b < B; b++) for (let t = 0; t < S.lengths[b]!; t++) ds[S.rowStart[b]! + t] = dScore[b * T + t]!;
      const dsT = ws.get('b.dscore', N);
      be.write(dsT, ds);
      be.matmul(dsT, this.tensor('score.weight'), dhn, N, H, 1, false, false, true);
      be.matmul(dsT, S.hn, G.get('score.weight')!, 1, H, N, true, false, true);
      const gb = G.get('score.bias');
      if (gb) be.biasBackward(dsT, gb);
    }

    // Final norm.
    const dres = ws.get('b.dres', N * H, true);
    be.rmsnormBackward(S.xFinal, this.tensor('model.norm.weight'), S.rstdF, dhn, dres, G.get('model.norm.weight')!, H);

    const h = ws.get('h', N * H);
    const dh = ws.get('b.dh', N * H);
    const act = ws.get('act', N * I);
    const dact = ws.get('b.dact', N * I);
    const dup = ws.get('b.dup', N * I);
    const dctx = ws.get('b.dctx', N * qd);
    const dq = ws.get('b.dq', N * qd);
    const dk = ws.get('b.dk', N * kd);
    const dv = ws.get('b.dv', N * kd);
    const { cos, sin } = this.ropeTables(0);
    let maxL = 0;
    for (let s = 0; s < S.lengths.length; s++) if (S.lengths[s]! > maxL) maxL = S.lengths[s]!;
    const chunk = this.attnRows(maxL);
    for (let l = cfg.numHiddenLayers - 1; l >= 0; l--) {
      const P = this.layers[l]!;
      const GL = this.glayers[l]!;
      const A = S.layers[l]!;
      // MLP block: res_out = xMid + down(silu(gate(h2)) ⊙ up(h2)), h2 = norm2(xMid).
      be.rmsnorm(A.xMid!, P.ln2, h, A.rstd2, H, cfg.rmsNormEps);
      be.swiglu(A.gate, A.up, act);
      be.matmul(dres, P.wd, dact, N, I, H, false, false, false);
      be.matmul(dres, act, GL.wd, H, I, N, true, false, true);
      be.swigluBackward(A.gate, A.up, dact, dact, dup);
      be.matmul(dact, h, GL.wg, I, H, N, true, false, true);
      be.matmul(dup, h, GL.wu, I, H, N, true, false, true);
      be.matmul(dact, P.wg, dh, N, H, I, false, false, false);
      be.matmul(dup, P.wu, dh, N, H, I, false, false, true);
      be.rmsnormBackward(A.xMid!, P.ln2, A.rstd2!, dh, dres, GL.ln2, H);
      // Attention block: res_mid = xIn + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm1(xIn).
      be.rmsnorm(A.xIn!, P.ln1, h, A.rstd1, H, cfg.rmsNormEps);
      be.matmul(dres, P.wo, dctx, N, qd, H, false, false, false);
      be.matmul(dres, A.ctx, GL.wo, H, qd, N, true, false, true);
      be.attentionBackward(A.q, A.k, A.v, A.ctx, A.lse!, dctx, dq, dk, dv, S.seqStarts, this.dims, chunk);
      be.rope(dq, dq, S.pos, cos, sin, nh, hd, true);
      be.rope(dk, dk, S.pos, cos, sin, nkv, hd, true);
      if (GL.bq) be.biasBackward(dq, GL.bq);
      if (GL.bk) be.biasBackward(dk, GL.bk);
      if (GL.bv) be.biasBackward(dv, GL.bv);
      be.matmul(dq, h, GL.wq, qd, H, N, true, false, true);
      be.matmul(dk, h, GL.wk, kd, H, N, true, false, true);
      be.matmul(dv, h, GL.wv, kd, H, N, true, false, true);
      be.matmul(dq, P.wq, dh, N, H, qd, false, false, false);
      be.matmul(dk, P.wk, dh, N, H, kd, false, false, true);
      be.matmul(dv, P.wv, dh, N, H, kd, false, false, true);
      be.rmsnormBackward(A.xIn!, P.ln1, A.rstd1!, dh, dres, GL.ln1, H);
    }
    // Embedding: scatter-add.
    be.scatterAddRows(dres, S.tokens, G.get('model.embed_tokens.weight')!, H);
  }
}

export interface LossResult {
  /** Mean next-token cross-entropy over the labelled positions (NaN when there are none). */
  loss: number;
  /** Number of labelled positions. */
  tokens: number;
}

/**
 * Mean next-token cross-entropy of a right-padded batch; with `backward` (default true) its gradient is accumulated
 * into `model.grads` (scaled by `gradScale`, e.g. 1/numMicroBatches).
 */
export async function crossEntropyLoss(
  model: Qwen2Model,
  inputIds: ArrayLike<number>,
  lengths: ArrayLike<number>,
  opts: { backward?: boolean; gradScale?: number } = {},
): Promise<LossResult> {
  const backward = opts.backward ?? true;
  const res = await model.forwardAsync(inputIds, lengths, { entropy: false, saveForBackward: backward });
  const logp = res.logp!;
  const n = res.numLabels;
  let s = 0;
  for (let i = 0; i < logp.length; i++) s += logp[i]!;
  const loss = n > 0 ? -s / n : Number.NaN;
  if (backward && n > 0) {
    const d = new Float64Array(logp.length).fill(-(opts.gradScale ?? 1) / n);
    model.backward(d, null);
  }
  return { loss, tokens: n };
}
