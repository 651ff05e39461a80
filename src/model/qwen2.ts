// The Qwen2 decoder (Hugging Face Qwen2ForCausalLM / Qwen2ForTokenClassification semantics), forward and backward.
//
// Layout: a micro-batch is B right-padded sequences of T token ids plus per-sequence lengths. Internally the valid
// tokens are packed into N = Σ lengths rows, so padded positions are never computed and get no gradient. Every matmul
// goes through `backend.gemm`; the elementwise ops (RMSNorm, RoPE, SiLU, softmax, causal masking) are plain loops,
// each forward next to its backward, in the spirit of llm.c. When the backend also implements `RowKernels`
// (src/engine/kernels.ts, e.g. the wasm SIMD backend), RMSNorm, RoPE and SwiGLU run on those instead (same math);
// the attention softmax stays here because it is fused with the causal mask and the saved log-sum-exp.
//
// Memory: parameters and gradients (one Float32Array per HF tensor name), plus the activations of the current
// micro-batch only (a reusable workspace). Attention keeps its output and the per-row log-sum-exp and recomputes the
// probabilities in backward (no [L, L] matrix is stored; the scores are formed in query chunks). The LM head forms
// logits for at most `logitsChunkRows` rows at a time, and only for rows that have a label (forward) or a non-zero
// dL/dlogp (backward), recomputing them in backward.
import type { Backend } from '../engine/backend.js';
import type { ModelConfig } from './config.js';
import type { Tensor } from './safetensors.js';
import { ropeTables, type RowKernels } from '../engine/kernels.js';

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
// Elementwise layers: forward next to backward.

/** y = w ⊙ x / sqrt(mean(x²) + eps), per row of H. Saves 1/rms per row. */
function rmsnormForward(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array, N: number, H: number, eps: number): void {
  for (let r = 0; r < N; r++) {
    const o = r * H;
    let ss = 0;
    for (let i = 0; i < H; i++) {
      const v = x[o + i]!;
      ss += v * v;
    }
    const rs = 1 / Math.sqrt(ss / H + eps);
    rstd[r] = rs;
    for (let i = 0; i < H; i++) y[o + i] = w[i]! * (x[o + i]! * rs);
  }
}

/** dx += ∂L/∂x, dw += ∂L/∂w given dy, the forward input x and saved 1/rms. */
function rmsnormBackward(
  x: Float32Array,
  w: Float32Array,
  rstd: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  dw: Float32Array,
  N: number,
  H: number,
): void {
  for (let r = 0; r < N; r++) {
    const o = r * H;
    const rs = rstd[r]!;
    let dot = 0;
    for (let i = 0; i < H; i++) dot += dy[o + i]! * w[i]! * x[o + i]!;
    const c = (dot * rs * rs * rs) / H;
    for (let i = 0; i < H; i++) {
      const xi = x[o + i]!;
      const g = dy[o + i]!;
      dx[o + i]! += g * w[i]! * rs - xi * c;
      dw[i]! += g * xi * rs;
    }
  }
}

/** RoPE tables [maxPos, hd/2], HF style: inv_freq and angles in float32, cos/sin of those. */
/**
 * In-place rotary embedding over rows of nHeads·hd (q·cos + rotate_half(q)·sin, rotate_half(x) = [−x₂, x₁]).
 * `inverse` applies the transpose rotation, which is the backward of the forward.
 */
function ropeApply(
  x: Float32Array,
  N: number,
  nHeads: number,
  hd: number,
  pos: Int32Array,
  cos: Float32Array,
  sin: Float32Array,
  inverse: boolean,
): void {
  const half = hd / 2;
  const sgn = inverse ? -1 : 1;
  for (let r = 0; r < N; r++) {
    const t = pos[r]! * half;
    for (let h = 0; h < nHeads; h++) {
      const base = (r * nHeads + h) * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[t + i]!;
        const s = sgn * sin[t + i]!;
        const a = x[base + i]!;
        const b = x[base + half + i]!;
        x[base + i] = a * c - b * s;
        x[base + half + i] = b * c + a * s;
      }
    }
  }
}

/** act = silu(gate) ⊙ up. */
function swigluForward(gate: Float32Array, up: Float32Array, act: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    act[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/** From dact (overwritten with dgate) to dgate and dup. */
function swigluBackward(gate: Float32Array, up: Float32Array, dact: Float32Array, dup: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const sg = 1 / (1 + Math.exp(-g));
    const d = dact[i]!;
    dup[i] = d * g * sg;
    dact[i] = d * up[i]! * sg * (1 + g * (1 - sg));
  }
}

/** y[r, :] += b for each of N rows of width D. */
export function addBias(y: Float32Array, b: Float32Array, N: number, D: number): void {
  for (let r = 0; r < N; r++) {
    const o = r * D;
    for (let i = 0; i < D; i++) y[o + i]! += b[i]!;
  }
}

function biasBackward(dy: Float32Array, db: Float32Array, N: number, D: number): void {
  for (let r = 0; r < N; r++) {
    const o = r * D;
    for (let i = 0; i < D; i++) db[i]! += dy[o + i]!;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Reusable buffers keyed by name, grown geometrically; allocated through the backend (and freed, if it can). */
class Workspace {
  private readonly bufs = new Map<string, Float32Array>();
  private readonly free: ((a: Float32Array) => void) | null;
  constructor(private readonly backend: Backend) {
    const f = (backend as Backend & { free?: unknown }).free;
    this.free = typeof f === 'function' ? (a: Float32Array) => (f as (a: Float32Array) => void).call(backend, a) : null;
  }
  get(key: string, len: number, zero = false): Float32Array {
    let b = this.bufs.get(key);
    if (b === undefined || b.length < len) {
      const cap = b === undefined ? len : Math.max(len, Math.ceil(b.length * 1.5));
      if (b !== undefined && this.free) this.free(b);
      b = this.backend.alloc(Math.max(cap, 1));
      this.bufs.set(key, b);
      return b.subarray(0, len);
    }
    const v = b.subarray(0, len);
    if (zero) v.fill(0);
    return v;
  }
  clear(): void {
    if (this.free) for (const b of this.bufs.values()) this.free(b);
    this.bufs.clear();
  }
}

/** One decoder layer's weights, by role (views of the HF tensors `model.layers.{i}.*`). */
export interface LayerParams {
  ln1: Float32Array;
  wq: Float32Array;
  bq: Float32Array | null;
  wk: Float32Array;
  bk: Float32Array | null;
  wv: Float32Array;
  bv: Float32Array | null;
  wo: Float32Array;
  ln2: Float32Array;
  wg: Float32Array;
  wu: Float32Array;
  wd: Float32Array;
}

/** The weights of layer `i` in a map of HF tensor names; a missing required tensor is an error naming it. */
export function layerParamsOf(src: ReadonlyMap<string, Float32Array>, i: number): LayerParams {
  const p = `model.layers.${i}.`;
  const g = (k: string): Float32Array => {
    const t = src.get(p + k);
    if (t === undefined) throw new Error(`the model has no parameter ${p}${k}`);
    return t;
  };
  const o = (k: string): Float32Array | null => src.get(p + k) ?? null;
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

interface LayerActs {
  xIn: Float32Array;
  rstd1: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  ctx: Float32Array;
  lse: Float32Array;
  xMid: Float32Array;
  rstd2: Float32Array;
  gate: Float32Array;
  up: Float32Array;
}

interface Saved {
  B: number;
  T: number;
  N: number;
  /** Packed row of (b, t): rowStart[b] + t for t < lengths[b]. */
  rowStart: Int32Array;
  lengths: Int32Array;
  seqStart: Int32Array;
  pos: Int32Array;
  tokens: Int32Array;
  layers: LayerActs[];
  xFinal: Float32Array;
  rstdF: Float32Array;
  hn: Float32Array;
  /** Packed rows that have a label, their labels, and the log-sum-exp of their logits. */
  labelRows: Int32Array;
  labelIds: Int32Array;
  labelLse: Float64Array;
  /** Index into labelRows of each padded position (−1 when none). */
  labelIndexOf: Int32Array;
  cos: Float32Array;
  sin: Float32Array;
}

export interface ModelOptions {
  /** Rows of [rows, vocab] logits formed at once (default: ≈4M floats worth, at most 256). */
  logitsChunkRows?: number;
  /** Query rows per attention score block (default: as many as keep a block of scores under ≈4M floats). */
  attnChunk?: number;
  /** Use this file's plain loops for the elementwise ops even when the backend has row kernels. */
  plainLoops?: boolean;
  /** Allocate gradient arrays (default true). False: an inference-only model (half the memory); backward throws. */
  grads?: boolean;
  /**
   * Keep the matrices (embedding, projections, LM head) in ordinary Float32Arrays instead of backend memory (default
   * false). For the wasm backend they then stay outside its 4 GiB memory and every GEMM copies them in: slower, but it
   * lets models larger than the wasm memory run. Norm weights and biases stay in backend memory.
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

export class Qwen2Model {
  readonly config: Qwen2Config;
  readonly backend: Backend;
  /** Parameters by HF tensor name (fp32 master weights). */
  readonly params = new Map<string, Float32Array>();
  /** Gradients by HF tensor name, accumulated by `backward` until `zeroGrad`. */
  readonly grads = new Map<string, Float32Array>();
  readonly shapes: TensorShape[];
  private readonly hd: number;
  private readonly layers: LayerParams[] = [];
  private readonly glayers: LayerParams[] = [];
  private readonly ws: Workspace;
  private readonly logitsChunkRows: number;
  private readonly attnChunk: number | undefined;
  private saved: Saved | null = null;
  /** The backend's own row kernels (e.g. wasm SIMD) when it has them; otherwise the plain loops in this file. */
  private readonly rk: RowKernels | null;
  private rope: { maxPos: number; cos: Float32Array; sin: Float32Array } = {
    maxPos: 0,
    cos: new Float32Array(0),
    sin: new Float32Array(0),
  };

  private constructor(config: Qwen2Config, backend: Backend, opts: ModelOptions) {
    validateConfig(config);
    this.config = config;
    this.backend = backend;
    this.hd = headDimOf(config);
    this.shapes = qwen2TensorShapes(config);
    this.ws = new Workspace(backend);
    this.logitsChunkRows = opts.logitsChunkRows ?? Math.max(1, Math.min(256, Math.floor((1 << 22) / config.vocabSize)));
    this.attnChunk = opts.attnChunk;
    const maybe = backend as Backend & Partial<RowKernels>;
    this.rk = opts.plainLoops !== true && typeof maybe.rmsnormForward === 'function' ? (maybe as Backend & RowKernels) : null;
    const withGrads = opts.grads ?? true;
    for (const { name, shape } of this.shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      // Norm weights and biases are read by row kernels and loops: keep them in backend memory in any case.
      const gemmOnly = shape.length === 2;
      this.params.set(name, opts.paramsOutsideBackend && gemmOnly ? new Float32Array(n) : this.own(backend.alloc(n)));
      if (withGrads) this.grads.set(name, this.own(backend.alloc(n)));
    }
    for (let i = 0; i < config.numHiddenLayers; i++) {
      this.layers.push(this.layerView(this.params, i));
      if (withGrads) this.glayers.push(this.layerView(this.grads, i));
    }
  }

  /** Arrays this model allocated from its backend (freed by dispose). */
  private readonly owned: Float32Array[] = [];
  private own(a: Float32Array): Float32Array {
    this.owned.push(a);
    return a;
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
      const dst = m.params.get(name)!;
      if (src === undefined) throw new Error(`missing tensor ${name} [${shape.join(', ')}]`);
      const data = src instanceof Float32Array ? src : src.data;
      if (!(src instanceof Float32Array) && src.shape.join(',') !== shape.join(','))
        throw new Error(`tensor ${name}: shape [${src.shape.join(', ')}], expected [${shape.join(', ')}]`);
      if (data.length !== dst.length)
        throw new Error(`tensor ${name}: ${data.length} elements, expected ${dst.length} ([${shape.join(', ')}])`);
      dst.set(data);
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
   * The parameters as HF tensors (views of the live arrays, not copies), e.g. for `saveCheckpoint`. A bias-free score
   * head also gets a zero `score.bias`: transformers' Qwen2ForTokenClassification has one and would otherwise
   * initialise it at random on load.
   */
  toTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const { name, shape } of this.shapes) out.set(name, { shape: shape.slice(), data: this.params.get(name)! });
    if (this.config.head === 'score' && !this.config.scoreBias) out.set('score.bias', { shape: [1], data: new Float32Array(1) });
    return out;
  }

  /** Random initialisation (normal(0, std) weights, unit norms, zero biases) from a seed; for tests and toys. */
  static random(config: Qwen2Config, backend: Backend, seed = 0, std = 0.02, opts: ModelOptions = {}): Qwen2Model {
    const m = new Qwen2Model(config, backend, opts);
    let s = (seed ^ 0x9e3779b9) >>> 0;
    const uni = (): number => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
    for (const { name } of m.shapes) {
      const p = m.params.get(name)!;
      if (name.endsWith('norm.weight')) p.fill(1);
      else if (name.endsWith('.bias')) p.fill(0);
      else for (let i = 0; i < p.length; i++) p[i] = std * Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
    }
    return m;
  }

  private layerView(src: Map<string, Float32Array>, i: number): LayerParams {
    return layerParamsOf(src, i);
  }

  /** The [V, H] matrix of the LM head (the embedding when tied). */
  private lmWeight(src: Map<string, Float32Array>): Float32Array {
    return this.config.tieWordEmbeddings ? src.get('model.embed_tokens.weight')! : src.get('lm_head.weight')!;
  }

  parameterNames(): string[] {
    return this.shapes.map((s) => s.name);
  }

  numParameters(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.length;
    return n;
  }

  zeroGrad(): void {
    for (const g of this.grads.values()) g.fill(0);
  }

  /** L2 norm of each parameter's gradient. */
  gradNorms(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, g] of this.grads) {
      let s = 0;
      for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
      out[k] = Math.sqrt(s);
    }
    return out;
  }

  /** Free everything this model allocated from its backend (parameters included); the model is unusable after. */
  dispose(): void {
    this.releaseActivations();
    const f = (this.backend as Backend & { free?: unknown }).free;
    if (typeof f === 'function') for (const a of this.owned) (f as (a: Float32Array) => void).call(this.backend, a);
    this.owned.length = 0;
    this.params.clear();
    this.grads.clear();
  }

  /** Drop the saved activations and the workspace (they are rebuilt by the next forward). */
  releaseActivations(): void {
    this.saved = null;
    this.ws.clear();
  }

  private ensureRope(maxPos: number): void {
    if (this.rope.maxPos >= maxPos) return;
    const n = Math.max(maxPos, this.rope.maxPos * 2, 64);
    const { cos, sin } = ropeTables(n, this.hd, this.config.ropeTheta);
    this.rope = { maxPos: n, cos, sin };
  }

  /**
   * Forward over a right-padded batch: `inputIds` [B·T] (row-major), `lengths` [B] (B = lengths.length).
   * Activations are kept for one `backward` (the previous micro-batch's are overwritten).
   */
  forward(inputIds: ArrayLike<number>, lengths: ArrayLike<number>, opts: ForwardOptions = {}): ForwardResult {
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
    const nkv = cfg.numKeyValueHeads;
    const hd = this.hd;
    const qd = nh * hd;
    const kd = nkv * hd;
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
    this.ensureRope(maxL);
    const { cos, sin } = this.rope;
    const ws = this.ws;
    const E = this.params.get('model.embed_tokens.weight')!;

    // Embedding → residual stream.
    const res = ws.get('res', N * H);
    for (let r = 0; r < N; r++) res.set(E.subarray(tokens[r]! * H, tokens[r]! * H + H), r * H);

    const h = ws.get('h', N * H);
    const act = ws.get('act', N * I);
    const layersActs: LayerActs[] = [];
    for (let l = 0; l < cfg.numHiddenLayers; l++) {
      const P = this.layers[l]!;
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
      };
      layersActs.push(A);
      // Attention block.
      A.xIn.set(res);
      this.k_rmsnormForward(res, P.ln1, h, A.rstd1, N, H, cfg.rmsNormEps);
      be.gemm(false, true, N, qd, H, h, P.wq, A.q, false);
      be.gemm(false, true, N, kd, H, h, P.wk, A.k, false);
      be.gemm(false, true, N, kd, H, h, P.wv, A.v, false);
      if (P.bq) addBias(A.q, P.bq, N, qd);
      if (P.bk) addBias(A.k, P.bk, N, kd);
      if (P.bv) addBias(A.v, P.bv, N, kd);
      this.k_ropeApply(A.q, N, nh, hd, pos, cos, sin, false);
      this.k_ropeApply(A.k, N, nkv, hd, pos, cos, sin, false);
      this.attentionForward(A, lens, rowStart, N, maxL);
      be.gemm(false, true, N, H, qd, A.ctx, P.wo, res, true);
      // MLP block.
      A.xMid.set(res);
      this.k_rmsnormForward(res, P.ln2, h, A.rstd2, N, H, cfg.rmsNormEps);
      be.gemm(false, true, N, I, H, h, P.wg, A.gate, false);
      be.gemm(false, true, N, I, H, h, P.wu, A.up, false);
      this.k_swigluForward(A.gate, A.up, act, N * I);
      be.gemm(false, true, N, H, I, act, P.wd, res, true);
    }
    const xFinal = ws.get('xFinal', N * H);
    xFinal.set(res);
    const rstdF = ws.get('rstdF', N);
    const hn = ws.get('hn', N * H);
    this.k_rmsnormForward(res, this.params.get('model.norm.weight')!, hn, rstdF, N, H, cfg.rmsNormEps);

    const result: ForwardResult = { B, T, numLabels: 0 };
    let labelRows = new Int32Array(0);
    let labelIds = new Int32Array(0);
    let labelLse = new Float64Array(0);
    const labelIndexOf = new Int32Array(B * T).fill(-1);

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
      labelRows = Int32Array.from(rows);
      labelIds = Int32Array.from(ids);
      labelLse = new Float64Array(rows.length);
      const wantEnt = opts.entropy ?? true;
      const logpPacked = new Float64Array(rows.length);
      const entPacked = new Float64Array(rows.length);
      const W = this.lmWeight(this.params);
      const R = this.logitsChunkRows;
      const hc = ws.get('head.h', Math.min(R, rows.length) * H);
      const logits = ws.get('head.logits', Math.min(R, rows.length) * V);
      for (let c0 = 0; c0 < rows.length; c0 += R) {
        const c = Math.min(R, rows.length - c0);
        for (let r = 0; r < c; r++) hc.set(hn.subarray(labelRows[c0 + r]! * H, labelRows[c0 + r]! * H + H), r * H);
        be.gemm(false, true, c, V, H, hc, W, logits, false);
        for (let r = 0; r < c; r++) {
          const o = r * V;
          let m = -Infinity;
          for (let j = 0; j < V; j++) if (logits[o + j]! > m) m = logits[o + j]!;
          let se = 0;
          let sz = 0;
          for (let j = 0; j < V; j++) {
            const z = logits[o + j]!;
            const e = Math.exp(z - m);
            se += e;
            sz += e * z;
          }
          const lse = m + Math.log(se);
          labelLse[c0 + r] = lse;
          logpPacked[c0 + r] = logits[o + labelIds[c0 + r]!]! - lse;
          if (wantEnt) entPacked[c0 + r] = lse - sz / se;
        }
      }
      const logp = new Float64Array(B * T);
      const ent = wantEnt ? new Float64Array(B * T) : undefined;
      for (let i = 0; i < B * T; i++) {
        const j = labelIndexOf[i]!;
        if (j < 0) continue;
        logp[i] = logpPacked[j]!;
        if (ent) ent[i] = entPacked[j]!;
      }
      result.logp = logp;
      if (ent) result.entropy = ent;
      result.numLabels = rows.length;
    } else {
      const sw = this.params.get('score.weight')!;
      const sp = ws.get('head.score', N);
      be.gemm(false, true, N, 1, H, hn, sw, sp, false);
      const sb = this.params.get('score.bias');
      if (sb) for (let r = 0; r < N; r++) sp[r]! += sb[0]!;
      const score = new Float64Array(B * T);
      for (let b = 0; b < B; b++) for (let t = 0; t < lens[b]!; t++) score[b * T + t] = sp[rowStart[b]! + t]!;
      result.score = score;
    }

    if (opts.hidden) {
      const hid = new Float32Array(B * T * H);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < lens[b]!; t++) {
          const r = rowStart[b]! + t;
          hid.set(hn.subarray(r * H, r * H + H), (b * T + t) * H);
        }
      result.hidden = hid;
    }

    const seqStart = rowStart;
    this.saved = save
      ? {
          B,
          T,
          N,
          rowStart,
          lengths: lens,
          seqStart,
          pos,
          tokens,
          layers: layersActs,
          xFinal,
          rstdF,
          hn,
          labelRows,
          labelIds,
          labelLse,
          labelIndexOf,
          cos,
          sin,
        }
      : null;
    return result;
  }

  /**
   * Backward from dL/dlogp [B·T] (LM head) and/or dL/dscore [B·T] (score head) of the last forward, accumulating into
   * `grads`. Entries at padded or unlabelled positions are ignored.
   */
  backward(dLogp?: ArrayLike<number> | null, dScore?: ArrayLike<number> | null): void {
    const S = this.saved;
    if (!S) throw new Error('backward: no saved activations (call forward with saveForBackward first)');
    if (this.grads.size === 0) throw new Error('backward: this model has no gradients (created with grads: false)');
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
    const dhn = ws.get('b.dhn', N * H, true);

    if (dLogp) {
      if (cfg.head !== 'lm') throw new Error('backward: dLogp given but the model has no LM head');
      if (dLogp.length !== B * T) throw new Error(`backward: dLogp has ${dLogp.length} entries, expected ${B * T}`);
      // Labelled rows with a non-zero upstream gradient.
      const sel: number[] = [];
      const gsel: number[] = [];
      for (let i = 0; i < B * T; i++) {
        const j = S.labelIndexOf[i]!;
        const g = dLogp[i]!;
        if (j >= 0 && g !== 0) {
          sel.push(j);
          gsel.push(g);
        }
      }
      const W = this.lmWeight(this.params);
      const dW = this.lmWeight(this.grads);
      const R = this.logitsChunkRows;
      const hc = ws.get('head.h', Math.min(R, sel.length) * H);
      const dz = ws.get('head.logits', Math.min(R, sel.length) * V);
      const dhc = ws.get('head.dh', Math.min(R, sel.length) * H);
      for (let c0 = 0; c0 < sel.length; c0 += R) {
        const c = Math.min(R, sel.length - c0);
        for (let r = 0; r < c; r++) {
          const row = S.labelRows[sel[c0 + r]!]!;
          hc.set(S.hn.subarray(row * H, row * H + H), r * H);
        }
        be.gemm(false, true, c, V, H, hc, W, dz, false);
        for (let r = 0; r < c; r++) {
          const j = sel[c0 + r]!;
          const lse = S.labelLse[j]!;
          const g = gsel[c0 + r]!;
          const o = r * V;
          // d logp / d z = onehot(label) − softmax(z)
          for (let v = 0; v < V; v++) dz[o + v] = -g * Math.exp(dz[o + v]! - lse);
          dz[o + S.labelIds[j]!]! += g;
        }
        be.gemm(true, false, V, H, c, dz, hc, dW, true);
        be.gemm(false, false, c, H, V, dz, W, dhc, false);
        for (let r = 0; r < c; r++) {
          const row = S.labelRows[sel[c0 + r]!]!;
          const o = row * H;
          for (let i = 0; i < H; i++) dhn[o + i]! += dhc[r * H + i]!;
        }
      }
    }
    if (dScore) {
      if (cfg.head !== 'score') throw new Error('backward: dScore given but the model has no score head');
      if (dScore.length !== B * T) throw new Error(`backward: dScore has ${dScore.length} entries, expected ${B * T}`);
      const ds = ws.get('b.dscore', N);
      for (let b = 0; b < B; b++) for (let t = 0; t < S.lengths[b]!; t++) ds[S.rowStart[b]! + t] = dScore[b * T + t]!;
      const sw = this.params.get('score.weight')!;
      be.gemm(false, false, N, H, 1, ds, sw, dhn, true);
      be.gemm(true, false, 1, H, N, ds, S.hn, this.grads.get('score.weight')!, true);
      const gb = this.grads.get('score.bias');
      if (gb) for (let r = 0; r < N; r++) gb[0]! += ds[r]!;
    }

    // Final norm.
    const dres = ws.get('b.dres', N * H, true);
    this.k_rmsnormBackward(S.xFinal, this.params.get('model.norm.weight')!, S.rstdF, dhn, dres, this.grads.get('model.norm.weight')!, N, H);

    const h = ws.get('h', N * H);
    const dh = ws.get('b.dh', N * H);
    const act = ws.get('act', N * I);
    const dact = ws.get('b.dact', N * I);
    const dup = ws.get('b.dup', N * I);
    const dctx = ws.get('b.dctx', N * qd);
    const dq = ws.get('b.dq', N * qd);
    const dk = ws.get('b.dk', N * kd);
    const dv = ws.get('b.dv', N * kd);
    for (let l = cfg.numHiddenLayers - 1; l >= 0; l--) {
      const P = this.layers[l]!;
      const G = this.glayers[l]!;
      const A = S.layers[l]!;
      // MLP block: res_out = xMid + down(silu(gate(h2)) ⊙ up(h2)), h2 = norm2(xMid).
      this.k_rmsnormForward(A.xMid, P.ln2, h, A.rstd2, N, H, cfg.rmsNormEps);
      this.k_swigluForward(A.gate, A.up, act, N * I);
      be.gemm(false, false, N, I, H, dres, P.wd, dact, false);
      be.gemm(true, false, H, I, N, dres, act, G.wd, true);
      this.k_swigluBackward(A.gate, A.up, dact, dup, N * I);
      be.gemm(true, false, I, H, N, dact, h, G.wg, true);
      be.gemm(true, false, I, H, N, dup, h, G.wu, true);
      be.gemm(false, false, N, H, I, dact, P.wg, dh, false);
      be.gemm(false, false, N, H, I, dup, P.wu, dh, true);
      this.k_rmsnormBackward(A.xMid, P.ln2, A.rstd2, dh, dres, G.ln2, N, H);
      // Attention block: res_mid = xIn + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm1(xIn).
      this.k_rmsnormForward(A.xIn, P.ln1, h, A.rstd1, N, H, cfg.rmsNormEps);
      be.gemm(false, false, N, qd, H, dres, P.wo, dctx, false);
      be.gemm(true, false, H, qd, N, dres, A.ctx, G.wo, true);
      this.attentionBackward(A, dctx, dq, dk, dv, S);
      this.k_ropeApply(dq, N, nh, hd, S.pos, S.cos, S.sin, true);
      this.k_ropeApply(dk, N, nkv, hd, S.pos, S.cos, S.sin, true);
      if (G.bq) biasBackward(dq, G.bq, N, qd);
      if (G.bk) biasBackward(dk, G.bk, N, kd);
      if (G.bv) biasBackward(dv, G.bv, N, kd);
      be.gemm(true, false, qd, H, N, dq, h, G.wq, true);
      be.gemm(true, false, kd, H, N, dk, h, G.wk, true);
      be.gemm(true, false, kd, H, N, dv, h, G.wv, true);
      be.gemm(false, false, N, H, qd, dq, P.wq, dh, false);
      be.gemm(false, false, N, H, kd, dk, P.wk, dh, true);
      be.gemm(false, false, N, H, kd, dv, P.wv, dh, true);
      this.k_rmsnormBackward(A.xIn, P.ln1, A.rstd1, dh, dres, G.ln1, N, H);
    }
    // Embedding: scatter-add.
    const dE = this.grads.get('model.embed_tokens.weight')!;
    for (let r = 0; r < N; r++) {
      const o = S.tokens[r]! * H;
      const s = r * H;
      for (let i = 0; i < H; i++) dE[o + i]! += dres[s + i]!;
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Elementwise ops: the backend's row kernels when it has them (same math), else the plain loops above.

  private k_rmsnormForward(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array, N: number, H: number, eps: number): void {
    if (this.rk) this.rk.rmsnormForward(x, w, y, rstd, N, H, eps);
    else rmsnormForward(x, w, y, rstd, N, H, eps);
  }

  /** dx += ∂L/∂x (dy is scratch: the row-kernel path overwrites it), dw += ∂L/∂w. */
  private k_rmsnormBackward(
    x: Float32Array,
    w: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    N: number,
    H: number,
  ): void {
    if (this.rk) {
      this.rk.rmsnormBackward(x, w, rstd, dy, dy, dw, N, H);
      this.rk.add(dx, dy, dx, N * H);
    } else rmsnormBackward(x, w, rstd, dy, dx, dw, N, H);
  }

  private k_swigluForward(gate: Float32Array, up: Float32Array, act: Float32Array, n: number): void {
    if (this.rk) this.rk.swigluForward(gate, up, act, n);
    else swigluForward(gate, up, act, n);
  }

  private k_swigluBackward(gate: Float32Array, up: Float32Array, dact: Float32Array, dup: Float32Array, n: number): void {
    if (this.rk) this.rk.swigluBackward(gate, up, dact, dact, dup, n);
    else swigluBackward(gate, up, dact, dup, n);
  }

  private k_ropeApply(
    x: Float32Array,
    N: number,
    nHeads: number,
    hd: number,
    pos: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    inverse: boolean,
  ): void {
    if (this.rk) this.rk.rope(x, x, N, nHeads, hd, pos, cos, sin, inverse);
    else ropeApply(x, N, nHeads, hd, pos, cos, sin, inverse);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Causal attention per sequence and head, with query chunks: S = Q Kᵀ·scale, P = softmax(S + causal mask), O = P V.

  /**
   * Query rows per score block: `attnChunk` when given, else as many as keep one block (all heads of a KV group ×
   * rows × keys) under about 4M floats.
   */
  private attnRows(maxL: number, group: number): number {
    if (this.attnChunk !== undefined) return Math.max(1, Math.min(this.attnChunk, maxL));
    return Math.max(1, Math.min(maxL, Math.floor((1 << 22) / (group * Math.max(1, maxL)))));
  }

  private attentionForward(A: LayerActs, lens: Int32Array, seqStart: Int32Array, N: number, maxL: number): void {
    const be = this.backend;
    const nh = this.config.numAttentionHeads;
    const nkv = this.config.numKeyValueHeads;
    const hd = this.hd;
    const group = nh / nkv;
    const qd = nh * hd;
    const kd = nkv * hd;
    const scale = 1 / Math.sqrt(hd);
    const CH = this.attnRows(maxL, group);
    const ws = this.ws;
    // The query heads of one KV group are stacked: block row hl·c + r is head g·group + hl at query i0 + r, so one
    // GEMM forms the scores of all of them.
    const Kh = ws.get('att.k', maxL * hd);
    const Vh = ws.get('att.v', maxL * hd);
    const Qc = ws.get('att.q', group * CH * hd);
    const Sc = ws.get('att.s', group * CH * maxL);
    const Oc = ws.get('att.o', group * CH * hd);
    const q = A.q;
    const ctx = A.ctx;
    const lseOut = A.lse;
    for (let s = 0; s < lens.length; s++) {
      const L = lens[s]!;
      const off = seqStart[s]!;
      for (let g = 0; g < nkv; g++) {
        for (let i = 0; i < L; i++) {
          const src = (off + i) * kd + g * hd;
          Kh.set(A.k.subarray(src, src + hd), i * hd);
          Vh.set(A.v.subarray(src, src + hd), i * hd);
        }
        for (let i0 = 0; i0 < L; i0 += CH) {
          const c = Math.min(CH, L - i0);
          const nk = i0 + c;
          const rows = group * c;
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (off + i0 + r) * qd + h * hd;
              Qc.set(q.subarray(src, src + hd), (hl * c + r) * hd);
            }
          }
          const S = Sc.subarray(0, rows * nk);
          be.gemm(false, true, rows, nk, hd, Qc.subarray(0, rows * hd), Kh.subarray(0, nk * hd), S, false);
          for (let hl = 0; hl < group; hl++) {
            const lseBase = (g * group + hl) * N + off + i0;
            for (let r = 0; r < c; r++) {
              const o = (hl * c + r) * nk;
              const end = o + i0 + r + 1; // keys j <= i
              let m = -Infinity;
              for (let j = o; j < end; j++) {
                const z = S[j]!;
                if (z > m) m = z;
              }
              m *= scale;
              let se = 0;
              for (let j = o; j < end; j++) {
                const e = Math.exp(S[j]! * scale - m);
                S[j] = e;
                se += e;
              }
              lseOut[lseBase + r] = m + Math.log(se);
              const inv = 1 / se;
              for (let j = o; j < end; j++) S[j] = S[j]! * inv;
              S.fill(0, end, o + nk);
            }
          }
          be.gemm(false, false, rows, hd, nk, S, Vh.subarray(0, nk * hd), Oc.subarray(0, rows * hd), false);
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (hl * c + r) * hd;
              ctx.set(Oc.subarray(src, src + hd), (off + i0 + r) * qd + h * hd);
            }
          }
        }
      }
    }
  }

  /** dq, dk, dv (w.r.t. the post-RoPE q, k and v) from dctx, recomputing P from the saved log-sum-exp. */
  private attentionBackward(A: LayerActs, dctx: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, S: Saved): void {
    const be = this.backend;
    const nh = this.config.numAttentionHeads;
    const nkv = this.config.numKeyValueHeads;
    const hd = this.hd;
    const group = nh / nkv;
    const qd = nh * hd;
    const kd = nkv * hd;
    const N = S.N;
    const scale = 1 / Math.sqrt(hd);
    let maxL = 0;
    for (let s = 0; s < S.lengths.length; s++) if (S.lengths[s]! > maxL) maxL = S.lengths[s]!;
    const CH = this.attnRows(maxL, group);
    const ws = this.ws;
    const Kh = ws.get('att.k', maxL * hd);
    const Vh = ws.get('att.v', maxL * hd);
    const dKh = ws.get('att.dk', maxL * hd);
    const dVh = ws.get('att.dv', maxL * hd);
    const Qc = ws.get('att.q', group * CH * hd);
    const dOc = ws.get('att.do', group * CH * hd);
    const dQc = ws.get('att.o', group * CH * hd);
    const Pc = ws.get('att.s', group * CH * maxL);
    const dPc = ws.get('att.ds', group * CH * maxL);
    const Dr = new Float64Array(group * CH);
    const q = A.q;
    const ctx = A.ctx;
    for (let s = 0; s < S.lengths.length; s++) {
      const L = S.lengths[s]!;
      const off = S.seqStart[s]!;
      for (let g = 0; g < nkv; g++) {
        for (let i = 0; i < L; i++) {
          const src = (off + i) * kd + g * hd;
          Kh.set(A.k.subarray(src, src + hd), i * hd);
          Vh.set(A.v.subarray(src, src + hd), i * hd);
        }
        dKh.fill(0, 0, L * hd);
        dVh.fill(0, 0, L * hd);
        for (let i0 = 0; i0 < L; i0 += CH) {
          const c = Math.min(CH, L - i0);
          const nk = i0 + c;
          const rows = group * c;
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (off + i0 + r) * qd + h * hd;
              const dst = (hl * c + r) * hd;
              Qc.set(q.subarray(src, src + hd), dst);
              dOc.set(dctx.subarray(src, src + hd), dst);
              let d = 0;
              for (let e = 0; e < hd; e++) d += dctx[src + e]! * ctx[src + e]!;
              Dr[hl * c + r] = d;
            }
          }
          const P = Pc.subarray(0, rows * nk);
          const dP = dPc.subarray(0, rows * nk);
          const Qb = Qc.subarray(0, rows * hd);
          const dOb = dOc.subarray(0, rows * hd);
          be.gemm(false, true, rows, nk, hd, Qb, Kh.subarray(0, nk * hd), P, false);
          be.gemm(false, true, rows, nk, hd, dOb, Vh.subarray(0, nk * hd), dP, false);
          for (let hl = 0; hl < group; hl++) {
            const lseBase = (g * group + hl) * N + off + i0;
            for (let r = 0; r < c; r++) {
              const o = (hl * c + r) * nk;
              const end = o + i0 + r + 1;
              const lse = A.lse[lseBase + r]!;
              const D = Dr[hl * c + r]!;
              for (let j = o; j < end; j++) {
                const p = Math.exp(P[j]! * scale - lse);
                P[j] = p;
                dP[j] = p * (dP[j]! - D) * scale;
              }
              P.fill(0, end, o + nk);
              dP.fill(0, end, o + nk);
            }
          }
          be.gemm(false, false, rows, hd, nk, dP, Kh.subarray(0, nk * hd), dQc.subarray(0, rows * hd), false);
          for (let hl = 0; hl < group; hl++) {
            const h = g * group + hl;
            for (let r = 0; r < c; r++) {
              const src = (hl * c + r) * hd;
              dq.set(dQc.subarray(src, src + hd), (off + i0 + r) * qd + h * hd);
            }
          }
          be.gemm(true, false, nk, hd, rows, dP, Qb, dKh.subarray(0, nk * hd), true);
          be.gemm(true, false, nk, hd, rows, P, dOb, dVh.subarray(0, nk * hd), true);
        }
        for (let i = 0; i < L; i++) {
          const dst = (off + i) * kd + g * hd;
          dk.set(dKh.subarray(i * hd, i * hd + hd), dst);
          dv.set(dVh.subarray(i * hd, i * hd + hd), dst);
        }
      }
    }
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
export function crossEntropyLoss(
  model: Qwen2Model,
  inputIds: ArrayLike<number>,
  lengths: ArrayLike<number>,
  opts: { backward?: boolean; gradScale?: number } = {},
): LossResult {
  const backward = opts.backward ?? true;
  const res = model.forward(inputIds, lengths, { entropy: false, saveForBackward: backward });
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
