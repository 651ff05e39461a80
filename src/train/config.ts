// The training configuration: a YAML file with the reference trainer's key names (InternLM/OREAL
// `oreal/configs/oreal_w_tokenrm_OREAL-7B-SFT_seqlen16k.py`), validated with zod. Unknown keys are errors that name
// the key; `--set key=value` overrides (dotted paths for nested keys) are parsed as YAML scalars, so numbers,
// booleans, null and flow lists coerce to their types before validation.
//
// Keys the reference has and this trainer does not need (tp_size, sp_size, dtype, cpu_offload, …) are rejected
// rather than silently ignored.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { BACKEND_NAMES } from '../engine/index.js';
import { ROLLOUT_BACKENDS, ROLLOUT_BACKEND_NAMES } from '../sample/rollout-backends.js';
import YAML from 'yaml';
import { ADVANTAGE_TYPES, type AdvantageType } from '../rl/advantages.js';
import type { FilterMode } from '../rl/filter.js';
import {
  ALGORITHMS,
  isOracle,
  LOSS_DEFAULTS,
  resolveLossConfig,
  type KlType,
  type LossConfig,
  type LossConfigInput,
  type LossNormalization,
  type RmScorePosition,
  type TokenWeightSource,
} from '../rl/loss.js';

// ---------------------------------------------------------------------------------------------------------------
// Schema.

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const prob = z.number().min(0).max(1);

/** One difficulty bin: prompts with lo ≤ pass_rate < hi are repeated `repeat` times. */
export interface DifficultyBin {
  lo: number;
  hi: number;
  repeat: number;
}

/** A bin as an object `{lo, hi, repeat}` or in the reference's tuple form `[[lo, hi], repeat]`. */
const binSchema = z
  .union([
    z.strictObject({ lo: prob, hi: z.number().gt(0), repeat: nonNegInt }),
    z.tuple([z.tuple([prob, z.number().gt(0)]), nonNegInt]),
  ])
  .transform((b): DifficultyBin => (Array.isArray(b) ? { lo: b[0][0], hi: b[0][1], repeat: b[1] } : b))
  .refine((b) => b.lo < b.hi, { message: 'bin lower bound must be below its upper bound' });

/** The reference's `data_difficulty_balance_cfg`: [0,0.2)→6, [0.2,0.4)→4, [0.4,0.6)→4, [0.6,0.8)→2; ≥0.8 dropped. */
export const REFERENCE_DIFFICULTY_BINS: readonly DifficultyBin[] = [
  { lo: 0.0, hi: 0.2, repeat: 6 },
  { lo: 0.2, hi: 0.4, repeat: 4 },
  { lo: 0.4, hi: 0.6, repeat: 4 },
  { lo: 0.6, hi: 0.8, repeat: 2 },
];

const judgerSchema = z.strictObject({
  /** OpenAI-compatible base URL of the LLM judge; null = rules only. */
  url: z.string().min(1).nullable().default(null),
  /** Judge model name (read from /v1/models when null). */
  model: z.string().min(1).nullable().default(null),
  /** 'rescue' (reference: judge when the rules do not say correct), 'review' (judge everything), 'off'. */
  mode: z.enum(['off', 'rescue', 'review']).default('rescue'),
  /** Judge failure → 'negative' (reference: −1), 'drop' (drop the group), 'rule' (keep the rule verdict). */
  on_failure: z.enum(['negative', 'drop', 'rule']).default('negative'),
  /** Environment variable holding the judge API key. */
  api_key_env: z.string().min(1).default('OREAL_JUDGE_API_KEY'),
  concurrency: posInt.default(8),
  timeout_ms: posInt.default(60000),
  /** Retries after the first attempt (network errors, timeouts, 429, 5xx). */
  retries: nonNegInt.default(3),
  max_tokens: posInt.nullable().default(100),
  /** Rule-verifier worker threads and per-check time bound. */
  verifier_threads: posInt.default(1),
  verifier_timeout_ms: posInt.default(2000),
  /** Stop word a finished response ends with, and "thinking finished" markers (text after the last one is judged). */
  stop_word: z.string().default('<|im_end|>'),
  thinking_finish_words: z.array(z.string()).default(['<conclude>', '**Final Answer**', '</think>']),
});

const rolloutSchema = z.strictObject({
  /** A name of src/sample/rollout-backends.ts: 'local' (the in-process engine on the live policy weights), 'remote' (an OpenAI-compatible server). */
  backend: z.enum(ROLLOUT_BACKEND_NAMES).default('local'),
  url: z.string().min(1).nullable().default(null),
  model: z.string().min(1).nullable().default(null),
  api_key_env: z.string().min(1).default('OREAL_ROLLOUT_API_KEY'),
  concurrency: posInt.default(16),
  /** Remote only: how the server receives new weights (directory it reads, written every step). */
  sync_dir: z.string().min(1).nullable().default(null),
});

const baseSchema = z
  .strictObject({
    // Models.
    /** Policy initialisation: a Hugging Face checkpoint directory. */
    actor: z.string().min(1),
    /** Frozen KL reference; null = the actor's initial weights (the reference's default). */
    reference: z.string().min(1).nullable().default(null),
    /**
     * Token-level RM: false = none; true = initialised from the actor (scalar head); a path = that checkpoint;
     * null = the algorithm's preset (true for oreal).
     */
    token_level_rm: z.union([z.boolean(), z.string().min(1)]).nullable().default(null),
    /** Tokenizer directory; null = the actor's. */
    tokenizer: z.string().min(1).nullable().default(null),

    // Data.
    /** Prompt JSONL file(s): {question, gold_answer, pass_rate}. */
    datasets: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((d) => (Array.isArray(d) ? d : [d])),
    /** Bins of pass rate → repeat count; null = no balancing (every prompt once). */
    data_difficulty_balance_cfg: z
      .array(binSchema)
      .nullable()
      .default(REFERENCE_DIFFICULTY_BINS.map((b) => ({ ...b }))),
    /** System prompt prepended to each question; null = none. */
    system_prompt: z.string().nullable().default(null),

    // Rollouts.
    prompt_repeat_k: posInt.default(16),
    /** Rollouts per step (= prompts per step × prompt_repeat_k). */
    gen_global_batch: posInt.default(1024),
    gen_max_new: posInt.default(14000),
    gen_max_length: posInt.default(16384),
    temperature: z.number().min(0).default(1.0),
    gen_top_p: z.number().gt(0).max(1).default(0.9),
    gen_top_k: z.number().int().default(0),
    rollout: rolloutSchema.prefault({}),

    // Judge.
    judger: judgerSchema.prefault({}),

    // Algorithm. Keys left out (or null) take the algorithm's preset (src/rl/loss.ts): oreal = the reference.
    /** oreal (reference), grpo, rloo, reinforce, rft (behaviour cloning on correct samples only). */
    algorithm: z.enum(ALGORITHMS).default('oreal'),
    /** true = the reference's pair filter; false = keep all; or a mode by name. null: 'pair' for oreal, else 'none'. */
    filter_trajectory: z.union([z.boolean(), z.enum(['pair', 'mixed', 'none'])]).nullable().default(null),
    /** Group baseline: rloo, grpo, or none (A = r, the REINFORCE row of the paper's Table 2). */
    reward_shaping_type: z.enum(ADVANTAGE_TYPES).nullable().default(null),
    /** Ablation: behaviour cloning on positives (true) or policy gradient on them (false). */
    behavior_cloning: z.boolean().nullable().default(null),
    /** Token-mean denominators: 'per_class' (reference: T_pos and T_neg) or 'all' (T_all). */
    loss_normalization: z.enum(['per_class', 'all']).nullable().default(null),
    // Token-weight rescaling: threshold (the reference) unless topk_rescale is set; defaults in src/rl/loss.ts.
    threshold_rescale: z.boolean().nullable().default(null),
    correct_threshold: z.number().min(0).lt(1).nullable().default(null),
    incorrect_threshold: z.number().min(0).lt(1).nullable().default(null),
    topk_rescale: z.boolean().nullable().default(null),
    correct_topk_ratio: z.number().gt(0).max(1).nullable().default(null),
    incorrect_topk_ratio: z.number().gt(0).max(1).nullable().default(null),
    positive_loss_factor: z.number().min(0).nullable().default(null),
    negative_loss_factor: z.number().min(0).nullable().default(null),
    pos_mult_adv: z.boolean().nullable().default(null),
    kl_coef: z.number().min(0).nullable().default(null),
    kl_type: z.enum(['unbias', 'kl', 'mse']).nullable().default(null),
    /**
     * Where the token weights come from: 'rm' (the token-level RM; uniform without it), 'oracle' (the task's step
     * checker: w⁻ = 1 from the first wrong step on, 0 before) or 'oracle_step' (w⁻ = 1 on the first wrong step only);
     * the oracles need a task with a checker (src/task/chains.ts). null: 'rm'.
     */
    token_weight_source: z.enum(['rm', 'oracle', 'oracle_step']).nullable().default(null),
    /** Which RM score weights token t: 'shifted' (the reference: it has seen y_<t) or 'inclusive' (the paper's w(s≤t)). null: 'shifted'. */
    rm_score_position: z.enum(['shifted', 'inclusive']).nullable().default(null),
    /** Scalar head of a token-level RM built from the actor: 'zero' (the paper) or 'normal' (std 0.02). */
    token_level_rm_head_init: z.enum(['zero', 'normal']).default('zero'),

    // Optimisation.
    /** RM-only steps before the actor trains; null: 10 with the token-level RM (the reference), else 0. */
    actor_freeze_steps: nonNegInt.nullable().default(null),
    actor_lr: z.number().min(0).default(5e-7),
    actor_min_lr: z.number().min(0).default(1e-7),
    token_level_rm_lr: z.number().min(0).default(2e-6),
    token_level_rm_lr_min: z.number().min(0).default(4e-7),
    warmup_steps: nonNegInt.default(10),
    total_steps: posInt.default(90),
    wd: z.number().min(0).default(0.01),
    max_grad_norm: z.number().positive().default(1.0),
    /** Sequences per forward/backward micro-batch (reference `rl_mirco_batch`). */
    rl_micro_batch: posInt.default(2),

    // Run.
    seed: nonNegInt.default(0),
    /** HF checkpoints every N steps (and at the end); 0 = only at the end. */
    checkpoint_interval: nonNegInt.default(10),
    /** Stored dtype of the HF checkpoints (the resume state is always f32). */
    checkpoint_dtype: z.enum(['f32', 'bf16', 'f16']).default('bf16'),
    /** Full resume state every N steps (1 = every step, so a kill loses at most the step in progress). */
    state_interval: posInt.default(1),
    /** Dump every step's trajectories (text, num_tokens, reward, advantage). */
    save_trajectories: z.boolean().default(true),

    // In-loop evaluation.
    /** Held-out prompt file (question/problem + gold_answer/answer); null = no evaluation. */
    eval_dataset: z.string().min(1).nullable().default(null),
    /** Evaluate every N steps (and after the last step); 0 = off. */
    eval_interval: nonNegInt.default(10),
    /** Samples per problem for the sampled pass@1 (0 = greedy only). */
    eval_samples: nonNegInt.default(4),
    /** Also decode greedily (pass@1 greedy, as the paper reports). */
    eval_greedy: z.boolean().default(true),
    /** At most this many eval problems (null = all). */
    eval_max_prompts: posInt.nullable().default(null),
    /** Max new tokens for evaluation (null = gen_max_new). */
    eval_max_new: posInt.nullable().default(null),
    /** Evaluate the initial policy before step 1. */
    eval_at_start: z.boolean().default(false),

    // Compute.
    backend: z.enum(BACKEND_NAMES).default('wasm'),
    /** Kernel threads (null = all available cores). */
    threads: posInt.nullable().default(null),
  })
  .superRefine((c, ctx) => {
    if (c.gen_global_batch % c.prompt_repeat_k !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['gen_global_batch'],
        message: `must be a multiple of prompt_repeat_k (${c.prompt_repeat_k}), got ${c.gen_global_batch}`,
      });
    if (c.gen_max_new >= c.gen_max_length)
      ctx.addIssue({ code: 'custom', path: ['gen_max_new'], message: `must be below gen_max_length (${c.gen_max_length})` });
    if (c.actor_min_lr > c.actor_lr)
      ctx.addIssue({ code: 'custom', path: ['actor_min_lr'], message: `must not exceed actor_lr (${c.actor_lr})` });
    if (c.token_level_rm_lr_min > c.token_level_rm_lr)
      ctx.addIssue({ code: 'custom', path: ['token_level_rm_lr_min'], message: `must not exceed token_level_rm_lr (${c.token_level_rm_lr})` });
    for (const key of ROLLOUT_BACKENDS[c.rollout.backend].requires)
      if (c.rollout[key] === null) ctx.addIssue({ code: 'custom', path: ['rollout', key], message: `required when rollout.backend is "${c.rollout.backend}"` });
    if (c.judger.mode !== 'off' && c.judger.url === null && c.judger.model !== null)
      ctx.addIssue({ code: 'custom', path: ['judger', 'url'], message: 'judger.model is set but judger.url is not' });
  });

type RawConfig = z.output<typeof baseSchema>;

/** The config with every loss key resolved (no nulls left among them). */
export interface ResolvedLossKeys {
  token_level_rm: boolean | string;
  filter_trajectory: FilterMode;
  reward_shaping_type: AdvantageType;
  behavior_cloning: boolean;
  loss_normalization: LossNormalization;
  positive_loss_factor: number;
  negative_loss_factor: number;
  pos_mult_adv: boolean;
  kl_coef: number;
  kl_type: KlType;
  actor_freeze_steps: number;
  threshold_rescale: boolean;
  topk_rescale: boolean;
  correct_threshold: number;
  incorrect_threshold: number;
  correct_topk_ratio: number;
  incorrect_topk_ratio: number;
  token_weight_source: TokenWeightSource;
  rm_score_position: RmScorePosition;
}

/** The trainer keys that are loss keys of src/rl/loss.ts (same names), without token_level_rm (a path is allowed here). */
type LossKey = Exclude<keyof ResolvedLossKeys & keyof LossConfigInput, 'token_level_rm'>;

/**
 * The one table of loss keys: each trainer key that src/rl/loss.ts reads under the same name, with how its resolved
 * value is read back from the LossConfig (a rescale mode's unused keys keep what was given, else the default).
 * `lossInputOf` reads the keys, `fillPresets` the values.
 */
const LOSS_KEYS: { [K in LossKey]: (l: LossConfig, c: RawConfig) => ResolvedLossKeys[K] } = {
  reward_shaping_type: (l) => l.rewardShapingType,
  behavior_cloning: (l) => l.behaviorCloning,
  pos_mult_adv: (l) => l.posMultAdv,
  positive_loss_factor: (l) => l.positiveLossFactor,
  negative_loss_factor: (l) => l.negativeLossFactor,
  kl_type: (l) => l.klType,
  kl_coef: (l) => l.klCoef,
  loss_normalization: (l) => l.lossNormalization,
  threshold_rescale: (l) => l.rescale.mode === 'threshold',
  topk_rescale: (l) => l.rescale.mode === 'topk',
  correct_threshold: ({ rescale: r }, c) => (r.mode === 'threshold' ? r.correctThreshold : (c.correct_threshold ?? LOSS_DEFAULTS.correct_threshold)),
  incorrect_threshold: ({ rescale: r }, c) => (r.mode === 'threshold' ? r.incorrectThreshold : (c.incorrect_threshold ?? LOSS_DEFAULTS.incorrect_threshold)),
  correct_topk_ratio: ({ rescale: r }, c) => (r.mode === 'topk' ? r.correctTopkRatio : (c.correct_topk_ratio ?? LOSS_DEFAULTS.correct_topk_ratio)),
  incorrect_topk_ratio: ({ rescale: r }, c) => (r.mode === 'topk' ? r.incorrectTopkRatio : (c.incorrect_topk_ratio ?? LOSS_DEFAULTS.incorrect_topk_ratio)),
  token_weight_source: (l) => l.tokenWeightSource,
  rm_score_position: (l) => l.rmScorePosition,
};

/** The loss input of a raw or resolved config: a null key is left out (the algorithm's preset decides). */
function lossInputOf(c: Pick<RawConfig, 'algorithm' | 'token_level_rm' | LossKey>): LossConfigInput {
  const input: Record<string, unknown> = { algorithm: c.algorithm };
  if (c.token_level_rm !== null) input.token_level_rm = c.token_level_rm !== false;
  for (const k of Object.keys(LOSS_KEYS) as LossKey[]) if (c[k] !== null) input[k] = c[k];
  return input as LossConfigInput;
}

/**
 * Resolves the loss keys through src/rl/loss.ts (`resolveLossConfig`: the algorithm's preset, then LOSS_DEFAULTS), so
 * the trainer and `oreal debug loss` resolve an omitted key the same way; the result is written back so that
 * config.resolved.yaml shows every value in use.
 */
function fillPresets(c: RawConfig, ctx: z.RefinementCtx): Omit<RawConfig, keyof ResolvedLossKeys> & ResolvedLossKeys {
  let loss: LossConfig;
  try {
    loss = resolveLossConfig(lossInputOf(c));
  } catch (e) {
    ctx.addIssue({ code: 'custom', path: ['threshold_rescale'], message: (e as Error).message.replace(/^config: /, '') });
    return z.NEVER;
  }
  const resolved: Record<string, unknown> = {};
  for (const k of Object.keys(LOSS_KEYS) as LossKey[]) resolved[k] = LOSS_KEYS[k](loss, c);
  // The pair filter and the frozen steps belong to OREAL with its token-level RM; "OREAL without the RM" means the
  // reference's config without it: every sample kept, no RM-only steps (set either key to get them anyway). The oracle
  // stands in for the RM's weights, so OREAL with it keeps the pair filter (but has no RM to warm up).
  const withRm = loss.tokenLevelRm;
  const weighted = withRm || isOracle(loss.tokenWeightSource);
  const ft = c.filter_trajectory ?? (c.algorithm === 'oreal' && weighted ? 'pair' : 'none');
  return {
    ...c,
    ...(resolved as { [K in LossKey]: ResolvedLossKeys[K] }),
    token_level_rm: c.token_level_rm ?? loss.tokenLevelRm,
    filter_trajectory: ft === true ? 'pair' : ft === false ? 'none' : ft,
    actor_freeze_steps: c.actor_freeze_steps ?? (withRm ? 10 : 0),
  };
}

export const trainConfigSchema = baseSchema
  .transform(fillPresets)
  .superRefine((c, ctx) => {
    if (c.prompt_repeat_k < 2 && (c.reward_shaping_type !== 'none' || c.filter_trajectory !== 'none'))
      ctx.addIssue({ code: 'custom', path: ['prompt_repeat_k'], message: 'group baselines and filters need at least 2 rollouts per prompt' });
  });

/** The validated configuration (every default filled in). */
export type TrainConfig = z.output<typeof trainConfigSchema>;
/** What a YAML file may contain (defaults optional). */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Errors.

export class TrainConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: readonly string[],
  ) {
    super(`${source}: invalid training config:\n  ${issues.join('\n  ')}`);
    this.name = 'TrainConfigError';
  }
}

function keyPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out === '' ? String(k) : `.${String(k)}`;
  }
  return out === '' ? '(root)' : out;
}

function formatIssues(err: z.ZodError): string[] {
  const out: string[] = [];
  for (const issue of err.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) out.push(`${keyPath([...issue.path, k])}: unknown key`);
      continue;
    }
    out.push(`${keyPath(issue.path)}: ${issue.message}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing, overrides, serialisation.

/** Validates a parsed config object. Paths in it stay as written (see `resolveConfigPaths`). */
export function parseTrainConfig(raw: unknown, source = '(config)'): TrainConfig {
  const res = trainConfigSchema.safeParse(raw);
  if (!res.success) throw new TrainConfigError(source, formatIssues(res.error));
  return res.data;
}

/** Parses `key=value` (dotted key for nested tables) and sets it on `obj`; the value is read as a YAML scalar/flow. */
export function applyOverride(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new TrainConfigError('--set', [`"${assignment}": expected key=value`]);
  const key = assignment.slice(0, eq).trim();
  const text = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = text.trim() === '' ? '' : YAML.parse(text);
  } catch (e) {
    throw new TrainConfigError('--set', [`${key}: cannot parse value ${JSON.stringify(text)}: ${(e as Error).message}`]);
  }
  const parts = key.split('.');
  if (parts.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype'))
    throw new TrainConfigError('--set', [`${key}: invalid key`]);
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    const next = cur[p];
    if (next === undefined || next === null) {
      const fresh: Record<string, unknown> = {};
      cur[p] = fresh;
      cur = fresh;
    } else if (typeof next === 'object' && !Array.isArray(next)) {
      cur = next as Record<string, unknown>;
    } else {
      throw new TrainConfigError('--set', [`${key}: ${parts.slice(0, i + 1).join('.')} is not a table`]);
    }
  }
  cur[parts[parts.length - 1]!] = value;
}

/** Makes the relative paths of a config (models, data) relative to `baseDir` (the config file's directory). */
export function resolveConfigPaths(cfg: TrainConfig, baseDir: string): TrainConfig {
  const r = (p: string): string => (path.isAbsolute(p) ? p : path.resolve(baseDir, p));
  const rn = (p: string | null): string | null => (p === null ? null : r(p));
  return {
    ...cfg,
    actor: r(cfg.actor),
    reference: rn(cfg.reference),
    token_level_rm: typeof cfg.token_level_rm === 'string' ? r(cfg.token_level_rm) : cfg.token_level_rm,
    tokenizer: rn(cfg.tokenizer),
    datasets: cfg.datasets.map(r),
    eval_dataset: rn(cfg.eval_dataset),
  };
}

/**
 * Loads a YAML config file, applies `--set` overrides, validates, and resolves relative paths against the file's
 * directory (paths given in overrides are resolved the same way).
 */
export function loadTrainConfig(file: string, overrides: readonly string[] = []): TrainConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TrainConfigError(file, [`cannot read: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (e) {
    throw new TrainConfigError(file, [`invalid YAML: ${(e as Error).message}`]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TrainConfigError(file, ['expected a mapping at the top level']);
  const obj = raw as Record<string, unknown>;
  for (const o of overrides) applyOverride(obj, o);
  const cfg = parseTrainConfig(obj, overrides.length > 0 ? `${file} (with --set)` : file);
  return resolveConfigPaths(cfg, path.dirname(path.resolve(file)));
}

/** The loss configuration (src/rl/loss.ts) of a training config. */
export function lossConfigOf(cfg: TrainConfig): LossConfig {
  return resolveLossConfig(lossInputOf(cfg));
}

/** The config as YAML (all defaults filled in), e.g. for `config.resolved.yaml`. Parses back to the same config. */
export function configToYaml(cfg: TrainConfig): string {
  return YAML.stringify(cfg, { lineWidth: 0 });
}
