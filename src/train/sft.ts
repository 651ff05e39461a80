// Supervised fine-tuning (SFT) of a Qwen2-family causal LM on JSONL chat data, with the loss on the assistant tokens
// only. Lines are either `{"messages": [{"role", "content"}, ...]}` (the chat template is applied; every assistant
// turn, up to and including its `<|im_end|>`, is trained on) or `{"prompt", "response"}` (loss on the response only;
// wrapped as one user turn and one assistant turn, or concatenated as plain text with `chat_template: false`).
//
// Training: AdamW with warm-up + cosine learning rate, global-norm clipping, batches of `batch_size` sequences split
// into micro-batches of `micro_batch_size` with gradient accumulation (the loss is the token mean over the whole
// batch), a periodic held-out loss, and HF-format checkpoints (config.json + model.safetensors + tokenizer files).
// The starting point is an HF checkpoint directory (`model`) or a fresh random model (`architecture`).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BACKEND_NAMES, openBackend, type Backend } from '../engine/index.js';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../model/qwen2.js';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.js';
import { Mulberry32 } from '../util/rng.js';
import { AdamW, clipGradNorm, lrAt } from './optim.js';

// ---------------------------------------------------------------------------------------------------------------
// Configuration.

const architectureSchema = z
  .object({
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().optional(),
    /** Default: the tokenizer's vocabulary size. */
    vocab_size: z.number().int().positive().optional(),
    tie_word_embeddings: z.boolean().default(true),
    rope_theta: z.number().positive().default(10000),
    rms_norm_eps: z.number().positive().default(1e-6),
    max_position_embeddings: z.number().int().positive().default(2048),
  })
  .strict();

export const sftConfigSchema = z
  .object({
    /** HF checkpoint directory to start from; omit to start from a random model described by `architecture`. */
    model: z.string().min(1).optional(),
    /** Architecture of a fresh model (only without `model`). */
    architecture: architectureSchema.optional(),
    /** Std of the normal initialisation of a fresh model. */
    init_std: z.number().positive().default(0.02),
    /** Tokenizer directory (default: the `model` directory). */
    tokenizer: z.string().min(1).optional(),
    train_file: z.string().min(1),
    eval_file: z.string().min(1).optional(),
    output_dir: z.string().min(1),
    seed: z.number().int().default(0),
    /** Total optimizer steps; default: `epochs` passes over the training set. */
    max_steps: z.number().int().positive().optional(),
    epochs: z.number().positive().default(1),
    /** Sequences per optimizer step. */
    batch_size: z.number().int().positive().default(32),
    /** Sequences per forward/backward pass (must divide batch_size, or is capped by it). */
    micro_batch_size: z.number().int().positive().default(8),
    lr: z.number().positive().default(1e-3),
    min_lr: z.number().nonnegative().default(1e-4),
    warmup_steps: z.number().int().nonnegative().default(20),
    weight_decay: z.number().nonnegative().default(0.0),
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.95),
    grad_clip: z.number().nonnegative().default(1.0),
    /** Longer examples are cut to this many tokens (their loss on the cut tail is lost; a count is reported). */
    max_seq_len: z.number().int().positive().default(512),
    /** Evaluate the held-out loss every this many steps (0: only at the end). */
    eval_every: z.number().int().nonnegative().default(100),
    /** At most this many held-out examples per evaluation. */
    eval_max_examples: z.number().int().positive().default(256),
    /** Save a checkpoint into output_dir every this many steps (0: only at the end). */
    save_every: z.number().int().nonnegative().default(0),
    log_every: z.number().int().positive().default(10),
    /** Stored dtype of saved weights. */
    dtype: z.enum(['f32', 'bf16', 'f16']).default('f32'),
    backend: z.enum(BACKEND_NAMES).default('wasm'),
    /** Kernel threads (default: all cores). */
    threads: z.number().int().positive().optional(),
    /** `{prompt, response}` lines: wrap in the chat template (true) or concatenate as plain text (false). */
    chat_template: z.boolean().default(true),
    /** System prompt added to `{prompt, response}` lines in chat mode. */
    system_prompt: z.string().optional(),
  })
  .strict();

export type SftConfig = z.infer<typeof sftConfigSchema>;
/** The config as written in YAML (defaults not yet applied). */
export type SftConfigInput = z.input<typeof sftConfigSchema>;

/** A bad config: names the file and the key. */
export class SftConfigError extends Error {
  constructor(
    readonly source: string,
    readonly key: string,
    detail: string,
  ) {
    super(`${source}: ${key === '' ? '' : `key "${key}": `}${detail}`);
    this.name = 'SftConfigError';
  }
}

/** Bad training data: names the file, the 1-based line and the field. */
export class SftDataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}:${line}: ${field === '' ? '' : `field "${field}": `}${detail}`);
    this.name = 'SftDataError';
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies `key.path=value` overrides (values parsed as YAML scalars: numbers, booleans, null, strings). */
export function applyOverrides(raw: Record<string, unknown>, sets: readonly string[], source = '--set'): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new SftConfigError(source, s, 'expected key=value');
    const keyPath = s.slice(0, eq).trim().split('.');
    let value: unknown;
    try {
      value = parseYaml(s.slice(eq + 1));
    } catch {
      value = s.slice(eq + 1);
    }
    let cur: Record<string, unknown> = raw;
    for (let i = 0; i < keyPath.length - 1; i++) {
      const k = keyPath[i]!;
      const nxt = cur[k];
      if (nxt === undefined) cur[k] = {};
      else if (!isRecord(nxt)) throw new SftConfigError(source, keyPath.slice(0, i + 1).join('.'), 'is not a mapping');
      cur = cur[k] as Record<string, unknown>;
    }
    cur[keyPath[keyPath.length - 1]!] = value;
  }
}

/** Validates a parsed config object; throws SftConfigError naming the first offending key. */
export function parseSftConfig(raw: unknown, source = 'config'): SftConfig {
  if (!isRecord(raw)) throw new SftConfigError(source, '', 'expected a mapping of keys');
  const r = sftConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const base = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => (base === '' ? k : `${base}.${k}`));
      const known = Object.keys(base === 'architecture' ? architectureSchema.shape : sftConfigSchema.shape);
      throw new SftConfigError(source, keys[0]!, `unknown key (known keys: ${known.join(', ')})`);
    }
    throw new SftConfigError(source, base, issue.message);
  }
  const c = r.data;
  if (c.model === undefined && c.architecture === undefined)
    throw new SftConfigError(source, 'model', 'give a checkpoint directory in "model" or a fresh "architecture"');
  if (c.model !== undefined && c.architecture !== undefined)
    throw new SftConfigError(source, 'architecture', 'only for a fresh model (remove it or "model")');
  if (c.model === undefined && c.tokenizer === undefined)
    throw new SftConfigError(source, 'tokenizer', 'required for a fresh model');
  return c;
}

/** Reads a YAML config file, applies `--set` overrides and validates it. */
export function loadSftConfig(file: string, sets: readonly string[] = []): SftConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SftConfigError(file, '', `cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new SftConfigError(file, '', `invalid YAML: ${(e as Error).message}`);
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isRecord(raw)) throw new SftConfigError(file, '', 'expected a mapping of keys');
  applyOverrides(raw, sets);
  return parseSftConfig(raw, file);
}

// ---------------------------------------------------------------------------------------------------------------
// Data.

/** One tokenized training sequence; `target[t]` = 1 when token t is predicted with loss (from tokens < t). */
export interface SftExample {
  ids: number[];
  target: Uint8Array;
}

export interface EncodeOptions {
  chatTemplate?: boolean;
  systemPrompt?: string;
  maxSeqLen?: number;
}

function checkMessages(v: unknown, file: string, line: number): ChatMessage[] {
  if (!Array.isArray(v)) throw new SftDataError(file, line, 'messages', 'expected an array of {role, content}');
  if (v.length === 0) throw new SftDataError(file, line, 'messages', 'is empty');
  const out: ChatMessage[] = [];
  v.forEach((m: unknown, i) => {
    if (!isRecord(m)) throw new SftDataError(file, line, `messages[${i}]`, 'expected an object {role, content}');
    if (typeof m['role'] !== 'string') throw new SftDataError(file, line, `messages[${i}].role`, 'expected a string');
    if (typeof m['content'] !== 'string')
      throw new SftDataError(file, line, `messages[${i}].content`, 'expected a string');
    out.push({ role: m['role'], content: m['content'] });
  });
  if (!out.some((m) => m.role === 'assistant'))
    throw new SftDataError(file, line, 'messages', 'has no assistant turn to train on');
  return out;
}

/**
 * Tokenizes a conversation with the chat template; the targets are each assistant turn's content and the end of
 * that turn (`<|im_end|>`), found by rendering the conversation prefix with the generation prompt.
 */
export function encodeMessages(tok: Tokenizer, messages: readonly ChatMessage[]): SftExample {
  const full = tok.applyChatTemplate(messages);
  // Segment boundaries: [start of assistant content, end of that turn] from prefix renderings.
  const segs: Array<{ text: string; train: boolean }> = [];
  let pos = 0;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    const before = tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    const through = tok.applyChatTemplate(messages.slice(0, i + 1));
    if (!full.startsWith(before) || !full.startsWith(through) || before.length < pos)
      throw new Error('the chat template does not render conversations as prefixes of each other');
    // Train on the content and the end-of-turn token, not on trailing whitespace after it.
    let end = through.length;
    const imEnd = '<|im_end|>';
    const k = through.lastIndexOf(imEnd);
    if (k >= before.length) end = k + imEnd.length;
    if (before.length > pos) segs.push({ text: full.slice(pos, before.length), train: false });
    segs.push({ text: full.slice(before.length, end), train: true });
    pos = end;
  }
  if (pos < full.length) segs.push({ text: full.slice(pos), train: false });
  return encodeSegments(tok, segs);
}

function encodeSegments(tok: Tokenizer, segs: ReadonlyArray<{ text: string; train: boolean }>): SftExample {
  const ids: number[] = [];
  const tgt: number[] = [];
  for (const s of segs) {
    if (s.text === '') continue;
    const t = tok.encode(s.text, { addSpecialTokens: false });
    for (const id of t) {
      ids.push(id);
      tgt.push(s.train ? 1 : 0);
    }
  }
  return { ids, target: Uint8Array.from(tgt) };
}

/** Tokenizes a `{prompt, response}` pair: chat-wrapped (default) or plain text followed by the EOS token. */
export function encodePromptResponse(tok: Tokenizer, prompt: string, response: string, opts: EncodeOptions = {}): SftExample {
  if (opts.chatTemplate ?? true) {
    const msgs: ChatMessage[] = [];
    if (opts.systemPrompt !== undefined) msgs.push({ role: 'system', content: opts.systemPrompt });
    msgs.push({ role: 'user', content: prompt }, { role: 'assistant', content: response });
    return encodeMessages(tok, msgs);
  }
  const ex = encodeSegments(tok, [
    { text: prompt, train: false },
    { text: response, train: true },
  ]);
  const eos = tok.eosTokenId ?? tok.tokenToId('<|endoftext|>');
  if (eos !== undefined && eos !== null) {
    ex.ids.push(eos);
    const t = new Uint8Array(ex.target.length + 1);
    t.set(ex.target);
    t[ex.target.length] = 1;
    ex.target = t;
  }
  return ex;
}

/** Reads and tokenizes a JSONL file of `{messages}` or `{prompt, response}` lines (blank lines are skipped). */
export function loadSftJsonl(file: string, tok: Tokenizer, opts: EncodeOptions = {}): { examples: SftExample[]; truncated: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SftDataError(file, 0, '', `cannot read: ${(e as Error).message}`);
  }
  const lines = text.split('\n');
  const examples: SftExample[] = [];
  let truncated = 0;
  const maxLen = opts.maxSeqLen ?? Infinity;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const s = lines[i]!.trim();
    if (s === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      throw new SftDataError(file, lineNo, '', `invalid JSON: ${(e as Error).message}`);
    }
    if (!isRecord(obj)) throw new SftDataError(file, lineNo, '', 'expected a JSON object');
    let ex: SftExample;
    if ('messages' in obj) {
      ex = encodeMessages(tok, checkMessages(obj['messages'], file, lineNo));
    } else if ('prompt' in obj || 'response' in obj) {
      if (typeof obj['prompt'] !== 'string') throw new SftDataError(file, lineNo, 'prompt', 'expected a string');
      if (typeof obj['response'] !== 'string') throw new SftDataError(file, lineNo, 'response', 'expected a string');
      ex = encodePromptResponse(tok, obj['prompt'], obj['response'], opts);
    } else {
      throw new SftDataError(file, lineNo, '', 'expected {"messages": [...]} or {"prompt": ..., "response": ...}');
    }
    if (ex.ids.length > maxLen) {
      truncated++;
      ex = { ids: ex.ids.slice(0, maxLen), target: ex.target.slice(0, maxLen) };
    }
    if (!ex.target.some((t) => t === 1)) throw new SftDataError(file, lineNo, '', 'no tokens to train on (after truncation)');
    examples.push(ex);
  }
  if (examples.length === 0) throw new SftDataError(file, 0, '', 'no examples');
  return { examples, truncated };
}

// ---------------------------------------------------------------------------------------------------------------
// Loss.

/** A right-padded micro-batch with per-position labels (−1 = no loss). */
export interface SftBatch {
  ids: Int32Array;
  lengths: Int32Array;
  labels: Int32Array;
  /** Number of labelled positions. */
  tokens: number;
}

/** Packs examples into a right-padded batch; label[b, t] = ids[b, t+1] where target[t+1] = 1. */
export function makeBatch(examples: readonly SftExample[], padId = 0): SftBatch {
  const B = examples.length;
  let T = 1;
  for (const e of examples) T = Math.max(T, e.ids.length);
  const ids = new Int32Array(B * T).fill(padId);
  const lengths = new Int32Array(B);
  const labels = new Int32Array(B * T).fill(-1);
  let tokens = 0;
  examples.forEach((e, b) => {
    lengths[b] = e.ids.length;
    for (let t = 0; t < e.ids.length; t++) ids[b * T + t] = e.ids[t]!;
    for (let t = 0; t + 1 < e.ids.length; t++) {
      if (e.target[t + 1] === 1) {
        labels[b * T + t] = e.ids[t + 1]!;
        tokens++;
      }
    }
  });
  return { ids, lengths, labels, tokens };
}

/**
 * Summed negative log-likelihood of the labelled tokens of a micro-batch; with `gradScale` set, accumulates
 * `gradScale · d(sum NLL)` into the model's gradients (use 1 / total tokens of the optimizer batch).
 */
export async function maskedNll(model: Qwen2Model, batch: SftBatch, gradScale?: number): Promise<number> {
  const backward = gradScale !== undefined;
  const res = await model.forwardAsync(batch.ids, batch.lengths, { labels: batch.labels, entropy: false, saveForBackward: backward });
  const logp = res.logp!;
  let s = 0;
  for (let i = 0; i < logp.length; i++) s += logp[i]!;
  if (backward && batch.tokens > 0) {
    const d = new Float64Array(logp.length);
    for (let i = 0; i < d.length; i++) if (batch.labels[i]! >= 0) d[i] = -gradScale;
    model.backward(d, null);
  }
  return -s;
}

/** Token-mean loss over examples (no gradients), in micro-batches. */
export async function evalLoss(model: Qwen2Model, examples: readonly SftExample[], microBatch: number, padId = 0): Promise<number> {
  let nll = 0;
  let n = 0;
  for (let i = 0; i < examples.length; i += microBatch) {
    const b = makeBatch(examples.slice(i, i + microBatch), padId);
    if (b.tokens === 0) continue;
    nll += await maskedNll(model, b);
    n += b.tokens;
  }
  return n > 0 ? nll / n : Number.NaN;
}

// ---------------------------------------------------------------------------------------------------------------
// The training loop.

export interface SftLogRecord {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  elapsedS: number;
  evalLoss?: number;
}

export interface SftHooks {
  /** Called every `log_every` steps and at each evaluation. */
  onLog?: (r: SftLogRecord) => void;
  /** Called after each evaluation (every `eval_every` steps); return 'stop' to end training there (then saved). */
  onEval?: (step: number, model: Qwen2Model, tokenizer: Tokenizer) => 'stop' | void | Promise<'stop' | void>;
  /** Informational messages (data sizes, saves). */
  onInfo?: (msg: string) => void;
}

export interface SftResult {
  steps: number;
  finalTrainLoss: number;
  finalEvalLoss: number | null;
  outputDir: string;
  elapsedS: number;
  numParameters: number;
}

/** Fisher–Yates with `rng`, which carries on across calls (one stream over all epochs). */
function shuffle<T>(xs: T[], rng: Mulberry32): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
}

/** The HF config of a fresh model. */
export function freshModelConfig(arch: NonNullable<SftConfig['architecture']>, tok: Tokenizer): ModelConfig {
  const eos = tok.eosTokenId ?? tok.imEndTokenId;
  const json: Record<string, unknown> = {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: arch.vocab_size ?? tok.vocabSize,
    hidden_size: arch.hidden_size,
    intermediate_size: arch.intermediate_size,
    num_hidden_layers: arch.num_hidden_layers,
    num_attention_heads: arch.num_attention_heads,
    num_key_value_heads: arch.num_key_value_heads ?? arch.num_attention_heads,
    hidden_act: 'silu',
    max_position_embeddings: arch.max_position_embeddings,
    rms_norm_eps: arch.rms_norm_eps,
    rope_theta: arch.rope_theta,
    tie_word_embeddings: arch.tie_word_embeddings,
    use_sliding_window: false,
    torch_dtype: 'float32',
  };
  if (tok.padTokenId !== null) {
    json['bos_token_id'] = tok.padTokenId;
    json['pad_token_id'] = tok.padTokenId;
  }
  if (eos !== null) json['eos_token_id'] = eos;
  if ((arch.vocab_size ?? tok.vocabSize) < tok.vocabSize)
    throw new SftConfigError('config', 'architecture.vocab_size', `${arch.vocab_size} is below the tokenizer's ${tok.vocabSize} ids`);
  return parseConfig(json, 'architecture');
}

/** Runs SFT as configured; the final model is saved into `output_dir`. */
export async function runSft(cfg: SftConfig, hooks: SftHooks = {}): Promise<SftResult> {
  const info = hooks.onInfo ?? (() => undefined);
  const tokDir = cfg.tokenizer ?? cfg.model!;
  const tok = Tokenizer.load(tokDir);
  const encOpts: EncodeOptions = {
    chatTemplate: cfg.chat_template,
    maxSeqLen: cfg.max_seq_len,
    ...(cfg.system_prompt !== undefined ? { systemPrompt: cfg.system_prompt } : {}),
  };
  const train = loadSftJsonl(cfg.train_file, tok, encOpts);
  const evalSet = cfg.eval_file !== undefined ? loadSftJsonl(cfg.eval_file, tok, encOpts).examples.slice(0, cfg.eval_max_examples) : [];
  info(
    `train ${train.examples.length} examples (${train.truncated} cut to ${cfg.max_seq_len} tokens)` +
      (cfg.eval_file !== undefined ? `, held-out ${evalSet.length}` : ''),
  );

  const backend: Backend = await openBackend(cfg.backend, cfg.threads !== undefined ? { threads: cfg.threads } : {});
  try {
    let modelConfig: ModelConfig;
    let model: Qwen2Model;
    if (cfg.model !== undefined) {
      const ck = loadCheckpoint(cfg.model);
      modelConfig = ck.config;
      model = Qwen2Model.fromCheckpoint(ck, backend);
    } else {
      modelConfig = freshModelConfig(cfg.architecture!, tok);
      model = Qwen2Model.random(qwen2ConfigFromModelConfig(modelConfig), backend, cfg.seed, cfg.init_std);
    }
    if (model.config.head !== 'lm') throw new Error(`${cfg.model}: SFT needs a causal LM head`);
    const V = model.config.vocabSize;
    for (const ex of train.examples)
      for (const id of ex.ids) if (id >= V) throw new Error(`token id ${id} is outside the model's vocabulary ${V}`);
    info(`model: ${model.numParameters()} parameters, vocab ${V}`);
    const padId = tok.padTokenId ?? 0;

    const bs = Math.min(cfg.batch_size, train.examples.length);
    const mb = Math.min(cfg.micro_batch_size, bs);
    const totalSteps = cfg.max_steps ?? Math.max(1, Math.ceil((cfg.epochs * train.examples.length) / bs));
    const opt = new AdamW(backend, model.tensors, {
      lr: cfg.lr,
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      weightDecay: cfg.weight_decay,
      noDecay: (n) => n.endsWith('norm.weight') || n.endsWith('.bias'),
    });
    const sched = { lr: cfg.lr, minLr: Math.min(cfg.min_lr, cfg.lr), warmupSteps: cfg.warmup_steps, totalSteps };
    const rng = Mulberry32.fromState(cfg.seed ^ 0x5bd1e995);
    let order: number[] = [];
    let cursor = 0;
    const nextBatch = (): SftExample[] => {
      const out: SftExample[] = [];
      while (out.length < bs) {
        if (cursor >= order.length) {
          order = [...train.examples.keys()];
          shuffle(order, rng);
          cursor = 0;
        }
        out.push(train.examples[order[cursor++]!]!);
      }
      return out;
    };
    const save = async (): Promise<void> => {
      saveCheckpoint(cfg.output_dir, modelConfig, await model.readTensors(), { dtype: cfg.dtype, tokenizerDir: tokDir });
      info(`saved ${cfg.output_dir}`);
    };

    const t0 = Date.now();
    let lastLoss = Number.NaN;
    let lastEval: number | null = null;
    let step = 0;
    let stopped = false;
    let lossAcc = 0;
    let tokAcc = 0;
    while (step < totalSteps && !stopped) {
      const batch = nextBatch();
      let tokens = 0;
      const micro: SftBatch[] = [];
      for (let i = 0; i < batch.length; i += mb) {
        const b = makeBatch(batch.slice(i, i + mb), padId);
        micro.push(b);
        tokens += b.tokens;
      }
      model.zeroGrad();
      let nll = 0;
      for (const b of micro) if (b.tokens > 0) nll += await maskedNll(model, b, 1 / tokens);
      const gnorm = await clipGradNorm(backend, model.gradTensors.values(), cfg.grad_clip > 0 ? cfg.grad_clip : Infinity);
      const lr = lrAt(step, sched);
      if (Number.isFinite(gnorm)) opt.step(model.gradTensors, lr);
      else info(`step ${step + 1}: non-finite gradient norm, update skipped`);
      step++;
      lastLoss = nll / tokens;
      lossAcc += nll;
      tokAcc += tokens;
      const rec: SftLogRecord = {
        step,
        totalSteps,
        loss: lossAcc / tokAcc,
        lr,
        gradNorm: gnorm,
        tokens,
        elapsedS: (Date.now() - t0) / 1000,
      };
      const doEval = evalSet.length > 0 && ((cfg.eval_every > 0 && step % cfg.eval_every === 0) || step === totalSteps);
      if (doEval) {
        lastEval = await evalLoss(model, evalSet, mb, padId);
        rec.evalLoss = lastEval;
      }
      if (step % cfg.log_every === 0 || doEval || step === totalSteps) {
        hooks.onLog?.(rec);
        lossAcc = 0;
        tokAcc = 0;
      }
      if ((cfg.eval_every > 0 && step % cfg.eval_every === 0) || step === totalSteps) {
        if (hooks.onEval !== undefined && (await hooks.onEval(step, model, tok)) === 'stop') {
          stopped = true;
          info(`stopped by the evaluation hook at step ${step}`);
        }
      }
      if (cfg.save_every > 0 && step % cfg.save_every === 0 && step < totalSteps && !stopped) await save();
    }
    await save();
    const res: SftResult = {
      steps: step,
      finalTrainLoss: lastLoss,
      finalEvalLoss: lastEval,
      outputDir: path.resolve(cfg.output_dir),
      elapsedS: (Date.now() - t0) / 1000,
      numParameters: model.numParameters(),
    };
    model.dispose();
    return res;
  } finally {
    backend.dispose();
  }
}
