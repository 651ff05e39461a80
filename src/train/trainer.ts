// The OREAL training loop (docs/algorithm.md "One training step"):
//
//   prompts ─▶ rollout ─▶ judge ─▶ group ─▶ score ─▶ loss ─▶ update ─▶ log / checkpoint / eval
//   PromptStream  RolloutBackend  computeRewards  stepLosses (src/rl)     AdamW + clip   metrics.jsonl, HF checkpoints
//
// Run directory:
//   config.resolved.yaml        every key with its value (re-loadable)
//   metrics.jsonl               one {"type":"train", step, …reference names…} line per step, {"type":"eval", …} lines
//   trajectories/step-N.jsonl   every rollout: prompt index, text, num_tokens, reward, advantage, kept, finish reason
//   checkpoints/step-N/{policy,token_rm}   Hugging Face format (config.json + safetensors + tokenizer files)
//   state/                      resume state: f32 policy and RM, AdamW moments, trainer.json (step, data position, …)
//   train.log                   human-readable log lines
//
// Reproducibility: every random choice is drawn from a counter-based stream keyed by (seed, stream, step, index):
// rollout seeds, the trajectory filter, evaluation samples; the prompt order is a permutation keyed by (seed, epoch).
// So the "RNG state" at a step boundary is the step number itself, and a run resumed from `state/` replays the
// uninterrupted run exactly (with a deterministic compute backend; the js backend is bit-exact). Everything is written
// atomically (temp + rename); on resume, metrics lines after the saved step are discarded and those steps replayed.
//
// Metric definitions (names from the reference trainer):
//   avg_judger_reward  mean reward over all rollouts of the step (judge-dropped ones excluded)
//   avg_adv            mean advantage over the kept (trained) sequences
//   avg_gen_entropy    mean −log π_θ(y_t) over the kept sequences' response tokens
//   avg_ref_kl         mean log π_θ(y_t) − log π_ref(y_t) over the same tokens
//   max_memory         peak resident set size of the process, GiB
//   infer_tgs          generated tokens per second of generation; rl_tgs: kept prompt+response tokens per second of
//                      loss/backward/update
//   gen_time, judge_time  rollout generation and reward computation; infer_time = gen_time + judge_time;
//   rl_time            losses, backward and optimizer steps; total_time: the whole step (logging, checkpoint, eval
//                      included); eta: remaining steps × mean total_time (seconds)

import * as fs from 'node:fs';
import * as path from 'node:path';
import { openBackend } from '../engine/index.js';
import type { Backend } from '../engine/backend.js';
import { passAtK } from '../eval/metrics.js';
import { OpenAIRolloutBackend } from '../eval/remote-backend.js';
import { loadCheckpoint, saveCheckpoint, type Tensor } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../model/qwen2.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.js';
import { groupAdvantages } from '../rl/advantages.js';
import { seededRng } from '../rl/filter.js';
import type { LossConfig } from '../rl/loss.js';
import { stepLosses, type PromptGroup, type StepLossResult } from '../rl/step-losses.js';
import { cumulativeMean, sigmoid } from '../rl/token-rm.js';
import { LocalRolloutBackend } from '../sample/local-backend.js';
import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from '../sample/types.js';
import { VerifierPool } from '../verify/pool.js';
import { LlmJudge } from '../verify/judge.js';
import { computeRewards, type AnswerJudge, type RewardInput, type RewardOptions, type RewardResult, type RuleVerifier } from '../verify/reward.js';
import { configToYaml, lossConfigOf, type TrainConfig } from './config.js';
import { PromptStream, balanceByDifficulty, loadPrompts, mixSeed, type PromptRecord, type StreamPosition } from './data.js';
import { AdamW, clipGradNorm, lrAt, type AdamWState } from './optim.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types.

/** One `metrics.jsonl` line per step. Non-finite numbers are written as null. */
export interface StepMetrics {
  type: 'train';
  step: number;
  actor_lr: number;
  actor_grad_norm: number;
  token_level_rm_lr: number;
  token_rm_grad_norm: number;
  avg_judger_reward: number;
  avg_adv: number;
  avg_gen_entropy: number;
  avg_ref_kl: number;
  positive_loss: number;
  negative_loss: number;
  kl_penalty_loss: number;
  rl_loss: number;
  token_level_rm_loss: number;
  max_memory: number;
  avg_new_tokens: number;
  num_rl_tokens: number;
  infer_tgs: number;
  rl_tgs: number;
  gen_time: number;
  judge_time: number;
  infer_time: number;
  rl_time: number;
  total_time: number;
  eta: number;
  // Beyond the reference's names.
  epoch: number;
  num_prompts: number;
  num_rollouts: number;
  num_kept: number;
  groups_kept: number;
  dropped_all_correct: number;
  dropped_all_wrong: number;
  dropped_judge_failure: number;
  judge_failures: number;
  truncated_frac: number;
  actor_frozen: boolean;
  /** Updates not applied this step and why (e.g. "actor: non-finite loss", "all groups filtered out"). */
  skipped: string[];
}

/** Timing fields of `StepMetrics` (excluded when comparing runs). */
export const TIMING_FIELDS: readonly string[] = [
  'max_memory',
  'infer_tgs',
  'rl_tgs',
  'gen_time',
  'judge_time',
  'infer_time',
  'rl_time',
  'total_time',
  'eta',
];

/** An evaluation line of `metrics.jsonl`. */
export interface EvalMetrics {
  type: 'eval';
  step: number;
  num_problems: number;
  /** Samples per problem for the sampled metrics (0 = none). */
  samples: number;
  /** Sampled pass@1 (mean fraction correct over the samples) and pass@samples; null without samples. */
  pass1_sampled: number | null;
  pass_at_k: number | null;
  /** Greedy accuracy; null when greedy decoding is off. */
  greedy_acc: number | null;
  /** The same two numbers under the names the run report reads (`pass_at_1` = pass1_sampled, `greedy` = greedy_acc). */
  pass_at_1: number | null;
  greedy: number | null;
  avg_new_tokens: number;
  truncated_frac: number;
  eval_time: number;
}

/** Points where a test (or a signal) can interrupt a step, in order. */
export type TrainStage = 'generated' | 'scored' | 'updated' | 'logged' | 'checkpointed' | 'saved';

export interface TrainHooks {
  /** After each step (state saved). A throw here stops the run (it can be resumed). */
  onStep?: (m: StepMetrics) => void | Promise<void>;
  onEval?: (m: EvalMetrics) => void | Promise<void>;
  /** Log lines (default: stderr). They also go to `train.log`. */
  onLog?: (line: string) => void;
  /** Called at each stage of each step; throwing simulates a kill at that point. */
  onStage?: (stage: TrainStage, step: number) => void;
}

export interface RunTrainingOptions extends TrainHooks {
  /** Run directory (created; default runs/run-<time>). */
  outDir?: string;
  /** Continue from `outDir/state` (a fresh start when there is none). */
  resume?: boolean;
  /** Stop after this step (the schedule still spans total_steps). */
  stopAfterStep?: number;
  /** Stop cleanly after the step in progress when aborted. */
  signal?: AbortSignal;
  /** Stand-ins for tests or other engines. */
  rollout?: RolloutBackend;
  verifier?: RuleVerifier;
  judge?: AnswerJudge;
  backend?: Backend;
}

export interface TrainResult {
  /** Last completed step. */
  step: number;
  runDir: string;
  metrics: StepMetrics[];
  evals: EvalMetrics[];
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

const STREAM_GEN = 1;
const STREAM_FILTER = 2;
const STREAM_EVAL = 3;
const STREAM_INIT = 4;
const STATE_VERSION = 1;
/** An update larger than the weights' own norm is refused as exploding (see Trainer.guardedUpdate). */
const MAX_UPDATE_RATIO = 1;
/** Refused updates in a row (divergence, not a bad loss) after which training stops. */
const DIVERGENCE_PATIENCE = 3;

function now(): number {
  return performance.now() / 1000;
}

function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

function appendLine(file: string, obj: unknown): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, JSON.stringify(obj) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses metrics.jsonl, keeping lines whose step ≤ maxStep (a torn last line is dropped). */
export function readMetricsFile(file: string, maxStep = Infinity): Array<StepMetrics | EvalMetrics> {
  if (!fs.existsSync(file)) return [];
  const out: Array<StepMetrics | EvalMetrics> = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof rec !== 'object' || rec === null) continue;
    const r = rec as { type?: unknown; step?: unknown };
    if ((r.type === 'train' || r.type === 'eval') && typeof r.step === 'number' && r.step <= maxStep) out.push(rec as StepMetrics | EvalMetrics);
  }
  return out;
}

/** A model config for the token-level RM derived from the policy's (Qwen2ForTokenClassification, one label). */
function rmConfigFrom(actor: ModelConfig): ModelConfig {
  const raw: Record<string, unknown> = { ...actor.raw, num_labels: 1 };
  delete raw['id2label'];
  delete raw['label2id'];
  return { ...actor, architectures: ['Qwen2ForTokenClassification'], isTokenClassification: true, numLabels: 1, raw };
}

/** A score-head model from an LM checkpoint's trunk, with a zero (or small normal) scalar head. */
export function rmFromLm(ck: { config: ModelConfig; tensors: ReadonlyMap<string, Tensor> }, backend: Backend, init: 'zero' | 'normal', seed: number): Qwen2Model {
  const cfg = { ...qwen2ConfigFromModelConfig(ck.config), head: 'score' as const };
  const tensors = new Map<string, Tensor>(ck.tensors);
  const head = new Float32Array(cfg.hiddenSize);
  if (init === 'normal') {
    const rng = seededRng(seed);
    for (let i = 0; i < head.length; i++) {
      const u = Math.max(1e-12, rng());
      head[i] = 0.02 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
    }
  }
  tensors.set('score.weight', { shape: [1, cfg.hiddenSize], data: head });
  return Qwen2Model.fromTensors(cfg, backend, tensors);
}

function optimStateToTensors(st: AdamWState): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, a] of st.expAvg) out.set(`exp_avg.${k}`, { shape: [a.length], data: a });
  for (const [k, a] of st.expAvgSq) out.set(`exp_avg_sq.${k}`, { shape: [a.length], data: a });
  return out;
}

function optimStateFromFile(file: string, scalars: { step: number; lr: number }, opt: AdamW): AdamWState {
  const t = readSafetensors(file);
  const expAvg = new Map<string, Float32Array>();
  const expAvgSq = new Map<string, Float32Array>();
  for (const [k, v] of t) {
    if (k.startsWith('exp_avg_sq.')) expAvgSq.set(k.slice('exp_avg_sq.'.length), v.data);
    else if (k.startsWith('exp_avg.')) expAvg.set(k.slice('exp_avg.'.length), v.data);
  }
  return { step: scalars.step, lr: scalars.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, expAvg, expAvgSq };
}

interface TrainerStateFile {
  version: number;
  /** Last completed step. */
  step: number;
  data: StreamPosition;
  /** Counter-based streams: their position is `step` (see the file header). */
  rng: { seed: number; streams: Record<string, string> };
  actor_optimizer: { step: number; lr: number };
  token_rm_optimizer: { step: number; lr: number } | null;
  /** Sum of total_time over completed steps (for eta; not part of the reproduced metrics). */
  elapsed: number;
  saved_at: string;
}

/** The directory holding the newest complete state (state/, or a state.old-* left by a kill during the swap). */
function findStateDir(runDir: string): string | null {
  const main = path.join(runDir, 'state');
  if (fs.existsSync(path.join(main, 'trainer.json'))) return main;
  if (!fs.existsSync(runDir)) return null;
  const olds = fs
    .readdirSync(runDir)
    .filter((n) => n.startsWith('state.old-') && fs.existsSync(path.join(runDir, n, 'trainer.json')))
    .map((n) => path.join(runDir, n))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return olds[0] ?? null;
}

/** Writes a directory's content through `<dir>.tmp-*` and swaps it in (the old one is removed last). */
function writeDirAtomic(dir: string, fill: (tmp: string) => void): void {
  const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const tmp = `${dir}.tmp-${suffix}`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | null = null;
  if (fs.existsSync(dir)) {
    old = `${dir}.old-${suffix}`;
    fs.renameSync(dir, old);
  }
  fs.renameSync(tmp, dir);
  if (old !== null) fs.rmSync(old, { recursive: true, force: true });
  // Leftovers of earlier interrupted swaps.
  const parent = path.dirname(dir);
  const base = path.basename(dir);
  for (const n of fs.readdirSync(parent))
    if (n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`)) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------------
// The trainer.

interface Rollout {
  group: number;
  index: number;
  gen: Generation;
  ids: number[];
  reward: RewardResult;
}

export class Trainer {
  readonly cfg: TrainConfig;
  readonly lossCfg: LossConfig;
  readonly runDir: string;
  readonly tokenizer: Tokenizer;
  readonly policy: Qwen2Model;
  readonly ref: Qwen2Model;
  readonly rm: Qwen2Model | null;
  readonly actorOpt: AdamW;
  readonly rmOpt: AdamW | null;
  readonly rollout: RolloutBackend;
  private readonly ownsRollout: boolean;
  private readonly backend: Backend;
  private readonly ownsBackend: boolean;
  private readonly rejectedInARow = { actor: 0, token_rm: 0 };
  private readonly actorModelConfig: ModelConfig;
  private readonly rmModelConfig: ModelConfig | null;
  private readonly stream: PromptStream<PromptRecord>;
  private readonly evalSet: PromptRecord[] | null;
  private readonly stopId: number;
  private readonly rewardOpts: RewardOptions;
  private readonly pool: VerifierPool | null;
  private readonly hooks: RunTrainingOptions;
  private readonly tokenizerDir: string;
  /** Last completed step. */
  step: number;
  private elapsed: number;
  private stepsThisRun = 0;

  private constructor(cfg: TrainConfig, opts: RunTrainingOptions, backend: Backend, ownsBackend: boolean) {
    this.cfg = cfg;
    this.hooks = opts;
    this.lossCfg = lossConfigOf(cfg);
    this.runDir = path.resolve(opts.outDir ?? path.join('runs', `run-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}`));
    fs.mkdirSync(this.runDir, { recursive: true });
    for (const d of ['trajectories', 'checkpoints']) fs.mkdirSync(path.join(this.runDir, d), { recursive: true });

    this.tokenizerDir = cfg.tokenizer ?? cfg.actor;
    this.tokenizer = Tokenizer.load(this.tokenizerDir);
    const stopId = this.tokenizer.tokenToId(cfg.judger.stop_word);
    if (stopId === undefined)
      throw new Error(`judger.stop_word ${JSON.stringify(cfg.judger.stop_word)} is not a single token of the tokenizer in ${this.tokenizerDir}`);
    this.stopId = stopId;

    // Data.
    const balance = cfg.data_difficulty_balance_cfg;
    const prompts = loadPrompts(cfg.datasets, { requirePassRate: balance !== null });
    let items = prompts;
    if (balance !== null) {
      const b = balanceByDifficulty(prompts, balance);
      this.log(b.summary);
      items = b.prompts;
    } else {
      this.log(`prompts: ${prompts.length} (no difficulty balancing)`);
    }
    this.evalSet = cfg.eval_dataset !== null && cfg.eval_interval > 0 ? loadPrompts(cfg.eval_dataset, cfg.eval_max_prompts !== null ? { limit: cfg.eval_max_prompts } : {}) : null;

    // Judge.
    let judge: AnswerJudge | undefined = opts.judge;
    if (judge === undefined && cfg.judger.url !== null && cfg.judger.mode !== 'off') {
      judge = new LlmJudge({
        url: cfg.judger.url,
        ...(cfg.judger.model !== null ? { model: cfg.judger.model } : {}),
        apiKeyEnv: cfg.judger.api_key_env,
        concurrency: cfg.judger.concurrency,
        timeoutMs: cfg.judger.timeout_ms,
        retries: cfg.judger.retries,
        ...(cfg.judger.max_tokens !== null ? { maxTokens: cfg.judger.max_tokens } : {}),
      });
    }
    const remoteRollout =
      opts.rollout === undefined && cfg.rollout.backend === 'remote'
        ? new OpenAIRolloutBackend({
            baseUrl: cfg.rollout.url!,
            model: cfg.rollout.model!,
            apiKeyEnv: cfg.rollout.api_key_env,
            concurrency: cfg.rollout.concurrency,
            tokenIds: true,
          })
        : null;

    // Models.
    this.ownsBackend = ownsBackend;
    this.backend = backend;
    const loaded = this.loadModels(cfg, opts, items);
    this.policy = loaded.policy;
    this.ref = loaded.ref;
    this.rm = loaded.rm;
    this.actorModelConfig = loaded.actorModelConfig;
    this.rmModelConfig = loaded.rmModelConfig;
    this.actorOpt = loaded.actorOpt;
    this.rmOpt = loaded.rmOpt;
    this.step = loaded.step;
    this.elapsed = loaded.elapsed;
    this.stream = loaded.stream;

    // Rollouts (the local engine samples from the live policy weights).
    if (remoteRollout !== null) {
      this.rollout = remoteRollout;
      this.ownsRollout = true;
    } else if (opts.rollout) {
      this.rollout = opts.rollout;
      this.ownsRollout = false;
    } else {
      this.rollout = new LocalRolloutBackend(this.policy, this.tokenizer);
      this.ownsRollout = true;
    }
    this.pool = opts.verifier ? null : new VerifierPool({ threads: cfg.judger.verifier_threads, timeoutMs: cfg.judger.verifier_timeout_ms });
    this.rewardOpts = {
      stopWord: cfg.judger.stop_word,
      thinkMarkers: cfg.judger.thinking_finish_words,
      verifier: opts.verifier ?? this.pool!,
      judgeMode: judge ? cfg.judger.mode : 'off',
      onJudgeFailure: cfg.judger.on_failure,
      ...(judge ? { judge } : {}),
    };
  }

  private loadModels(
    cfg: TrainConfig,
    opts: RunTrainingOptions,
    items: PromptRecord[],
  ): {
    policy: Qwen2Model;
    ref: Qwen2Model;
    rm: Qwen2Model | null;
    actorModelConfig: ModelConfig;
    rmModelConfig: ModelConfig | null;
    actorOpt: AdamW;
    rmOpt: AdamW | null;
    step: number;
    elapsed: number;
    stream: PromptStream<PromptRecord>;
  } {
    const stateDir = opts.resume ? findStateDir(this.runDir) : null;
    const actorCk = loadCheckpoint(cfg.actor);
    const actorModelConfig = actorCk.config;
    // Every trained sequence is at most gen_max_length tokens; past the model's context it would be another model.
    if (cfg.gen_max_length > actorModelConfig.maxPositionEmbeddings)
      throw new Error(
        `config gen_max_length ${cfg.gen_max_length} exceeds the actor's context of ${actorModelConfig.maxPositionEmbeddings} ` +
          `positions (max_position_embeddings in ${path.join(cfg.actor, 'config.json')}); lower gen_max_length (and gen_max_new)`,
      );
    let state: TrainerStateFile | null = null;
    if (stateDir !== null) {
      state = JSON.parse(fs.readFileSync(path.join(stateDir, 'trainer.json'), 'utf8')) as TrainerStateFile;
      if (state.version !== STATE_VERSION) throw new Error(`${stateDir}/trainer.json: state version ${state.version}, expected ${STATE_VERSION}`);
      this.log(`resuming from ${stateDir} after step ${state.step}`);
    }
    const policy = state ? Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(stateDir!, 'policy')), this.backend) : Qwen2Model.fromCheckpoint(actorCk, this.backend);
    const ref = Qwen2Model.fromCheckpoint(cfg.reference === null ? actorCk : loadCheckpoint(cfg.reference), this.backend);
    let rm: Qwen2Model | null = null;
    let rmModelConfig: ModelConfig | null = null;
    if (this.lossCfg.tokenLevelRm) {
      if (state) {
        rm = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(stateDir!, 'token_rm')), this.backend);
      } else if (typeof cfg.token_level_rm === 'string') {
        const ck = loadCheckpoint(cfg.token_level_rm);
        rm = ck.config.isTokenClassification
          ? Qwen2Model.fromCheckpoint(ck, this.backend)
          : rmFromLm(ck, this.backend, cfg.token_level_rm_head_init, mixSeed(cfg.seed, STREAM_INIT));
      } else {
        rm = rmFromLm(actorCk, this.backend, cfg.token_level_rm_head_init, mixSeed(cfg.seed, STREAM_INIT));
      }
      if (rm.config.head !== 'score') throw new Error('token_level_rm: the reward model has no score head');
      rmModelConfig = rmConfigFrom(actorCk.config);
    }
    const actorOpt = new AdamW(policy.backend, policy.tensors, { lr: cfg.actor_lr, weightDecay: cfg.wd });
    const rmOpt = rm ? new AdamW(rm.backend, rm.tensors, { lr: cfg.token_level_rm_lr, weightDecay: cfg.wd }) : null;
    let step = 0;
    let elapsed = 0;
    let position: StreamPosition = { epoch: 0, offset: 0 };
    if (state) {
      actorOpt.importState(optimStateFromFile(path.join(stateDir!, 'optim_actor.safetensors'), state.actor_optimizer, actorOpt));
      if (rmOpt) {
        if (state.token_rm_optimizer === null) throw new Error(`${stateDir}: no token-level RM optimizer state`);
        rmOpt.importState(optimStateFromFile(path.join(stateDir!, 'optim_token_rm.safetensors'), state.token_rm_optimizer, rmOpt));
      }
      step = state.step;
      elapsed = state.elapsed;
      position = state.data;
    }
    const stream = new PromptStream(items, cfg.seed, position);
    return { policy, ref, rm, actorModelConfig, rmModelConfig, actorOpt, rmOpt, step, elapsed, stream };
  }

  /**
   * Builds a trainer (loading models, data and, with `resume`, the saved state) on `opts.backend`, or on the config's
   * backend, opened here (a GPU device opens asynchronously) and disposed by `close()`.
   */
  static async create(cfg: TrainConfig, opts: RunTrainingOptions): Promise<Trainer> {
    if (opts.backend !== undefined) return new Trainer(cfg, opts, opts.backend, false);
    const backend = await openBackend(cfg.backend, cfg.threads !== null ? { threads: cfg.threads } : {});
    try {
      return new Trainer(cfg, opts, backend, true);
    } catch (e) {
      backend.dispose();
      throw e;
    }
  }

  log(line: string): void {
    const stamped = `[${new Date().toISOString()}] ${line}`;
    if (this.hooks.onLog) this.hooks.onLog(line);
    else process.stderr.write(stamped + '\n');
    try {
      fs.appendFileSync(path.join(this.runDir, 'train.log'), stamped + '\n');
    } catch {
      // The log file is a convenience; the metrics are what matter.
    }
  }

  /**
   * Clip (by the gradient norm stepLosses measured), then apply one AdamW update unless it is unsafe: a non-finite
   * loss or gradient norm (the NaN guard), or an update that would make a weight non-finite or move the weights by
   * more than their own norm (divergence, usually a learning rate far too high). A refused update leaves weights and
   * optimizer moments exactly as they were and is recorded in `skipped`; DIVERGENCE_PATIENCE refusals in a row for a
   * reason other than the loss stop the run.
   * Returns the gradient norm before clipping.
   */
  private async guardedUpdate(
    who: 'actor' | 'token_rm',
    model: Qwen2Model,
    opt: AdamW,
    loss: number,
    gradNormBefore: number,
    lr: number,
    step: number,
    skipped: string[],
  ): Promise<number> {
    const gradNorm = await clipGradNorm(model.backend, model.gradTensors.values(), this.cfg.max_grad_norm, gradNormBefore);
    let why: string | null = null;
    let diverging = true;
    if (!Number.isFinite(loss)) {
      why = `${who}: non-finite loss`;
      diverging = false;
    } else if (!Number.isFinite(gradNorm)) why = `${who}: non-finite gradient norm`;
    else {
      const pv = await opt.preview(model.gradTensors, lr);
      if (!pv.finite) why = `${who}: update would make weights non-finite`;
      else if (pv.update > MAX_UPDATE_RATIO * pv.param)
        why = `${who}: exploding update (|Δw| ${pv.update.toExponential(2)} > |w| ${pv.param.toExponential(2)})`;
    }
    if (why === null) {
      opt.step(model.gradTensors, lr);
      this.rejectedInARow[who] = 0;
      return gradNorm;
    }
    skipped.push(why);
    const lossName = who === 'actor' ? 'rl_loss' : 'token_level_rm_loss';
    this.log(`step ${step}: ${why} (${lossName} ${loss}, grad norm ${gradNorm}, lr ${lr}): ${who === 'actor' ? 'actor' : 'RM'} update skipped`);
    this.rejectedInARow[who] = diverging ? this.rejectedInARow[who] + 1 : 0;
    if (this.rejectedInARow[who] >= DIVERGENCE_PATIENCE) {
      const lrKey = who === 'actor' ? 'actor_lr' : 'token_level_rm_lr';
      throw new Error(
        `training diverged at step ${step}: ${DIVERGENCE_PATIENCE} ${who} updates in a row were refused (last: ${why}). ` +
          `The likely cause is the learning rate (${lrKey} ${who === 'actor' ? this.cfg.actor_lr : this.cfg.token_level_rm_lr}, ` +
          `${lr} at this step): lower it. No refused update was applied or saved; the run directory holds the last good state.`,
      );
    }
    return gradNorm;
  }

  private stage(s: TrainStage, step: number): void {
    this.hooks.onStage?.(s, step);
  }

  private renderPrompt(question: string): string {
    const messages: ChatMessage[] = [];
    if (this.cfg.system_prompt !== null) messages.push({ role: 'system', content: this.cfg.system_prompt });
    messages.push({ role: 'user', content: question });
    return this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  }

  private samplingParams(maxNew: number, seed: number, greedy: boolean): SamplingParams {
    const c = this.cfg;
    return {
      maxNewTokens: maxNew,
      temperature: greedy ? 0 : c.temperature,
      topP: greedy ? 1 : c.gen_top_p,
      topK: greedy ? 0 : c.gen_top_k,
      stopTokenIds: [this.stopId],
      stopStrings: [],
      seed,
      ...(greedy ? { greedy: true } : {}),
    };
  }

  /** Response token ids for the loss: the backend's ids, or (remote without ids) the re-encoded text + stop token. */
  private responseIds(g: Generation): number[] {
    if (g.tokenIds.length > 0) return g.tokenIds;
    const ids = this.tokenizer.encode(g.text, { addSpecialTokens: false });
    if (g.finishReason === 'stop') ids.push(this.stopId);
    return ids;
  }

  /** Generates for rendered prompts; returns generations per prompt. */
  private async generate(prompts: Array<{ text: string; ids: number[] }>, n: number, seedOf: (i: number) => number, maxNew: number, greedy: boolean): Promise<Generation[][]> {
    const remote = this.isRemote();
    const reqs: GenerationRequest[] = prompts.map((p, i) => ({
      prompt: remote ? p.text : p.ids,
      n,
      params: this.samplingParams(Math.min(maxNew, this.cfg.gen_max_length - p.ids.length), seedOf(i), greedy),
    }));
    return this.rollout.generate(reqs);
  }

  private rewardInputs(gens: Generation[][], golds: readonly PromptRecord[]): RewardInput[] {
    const out: RewardInput[] = [];
    gens.forEach((gs, i) => {
      for (const g of gs) out.push({ response: g.text, gold: golds[i]!.gold, question: golds[i]!.question, finishedWithStop: g.finishReason === 'stop' });
    });
    return out;
  }

  /** Runs steps until total_steps (or stopAfterStep / abort). */
  async run(): Promise<TrainResult> {
    const cfg = this.cfg;
    const metricsFile = path.join(this.runDir, 'metrics.jsonl');
    // Keep only what the saved state accounts for; later lines are replayed.
    const previous = this.step > 0 ? readMetricsFile(metricsFile, this.step) : [];
    writeFileAtomic(metricsFile, previous.map((r) => JSON.stringify(r) + '\n').join(''));
    writeFileAtomic(path.join(this.runDir, 'config.resolved.yaml'), configToYaml(cfg));
    this.log(
      `run ${this.runDir}: algorithm ${cfg.algorithm}, ${this.policy.numParameters()} policy parameters, ` +
        `${this.rm ? 'token-level RM on' : 'no token-level RM'}, rollouts: ${this.rollout.name}, from step ${this.step + 1} to ${cfg.total_steps}`,
    );
    if (this.isRemote() && this.step > 0) await this.syncRemote(); // the server may hold older weights
    const metrics: StepMetrics[] = previous.filter((r): r is StepMetrics => r.type === 'train');
    const evals: EvalMetrics[] = previous.filter((r): r is EvalMetrics => r.type === 'eval');
    const last = Math.min(cfg.total_steps, this.hooks.stopAfterStep ?? Infinity);
    if (this.step === 0 && cfg.eval_at_start && this.evalSet !== null) {
      const e = await this.evaluate(0);
      appendLine(metricsFile, e);
      evals.push(e);
      await this.hooks.onEval?.(e);
    }
    while (this.step < last) {
      if (this.hooks.signal?.aborted) {
        this.log(`stopped by abort after step ${this.step}`);
        break;
      }
      const { metrics: m, evals: es } = await this.trainStep();
      metrics.push(m);
      evals.push(...es);
      await this.hooks.onStep?.(m);
      for (const e of es) await this.hooks.onEval?.(e);
    }
    return { step: this.step, runDir: this.runDir, metrics, evals };
  }

  /** One RL step (the next after `this.step`). */
  async trainStep(): Promise<{ metrics: StepMetrics; evals: EvalMetrics[] }> {
    const cfg = this.cfg;
    const step = this.step + 1;
    const tStart = now();
    const K = cfg.prompt_repeat_k;
    const nPrompts = cfg.gen_global_batch / K;
    const epoch = this.stream.position().epoch;
    const batch = this.stream.next(nPrompts);
    const rendered = batch.map((p) => {
      const text = this.renderPrompt(p.question);
      return { text, ids: this.tokenizer.encode(text, { addSpecialTokens: false }) };
    });
    const usable = rendered.map((r) => r.ids.length < cfg.gen_max_length);
    const nLong = usable.filter((u) => !u).length;
    if (nLong > 0) this.log(`step ${step}: ${nLong} prompt(s) longer than gen_max_length skipped`);
    const prompts = batch.filter((_, i) => usable[i]);
    const inputs = rendered.filter((_, i) => usable[i]);

    // Rollout.
    const tGen = now();
    const gens = inputs.length > 0 ? await this.generate(inputs, K, (i) => mixSeed(cfg.seed, STREAM_GEN, step, i), cfg.gen_max_new, false) : [];
    const genTime = now() - tGen;
    this.stage('generated', step);

    // Judge.
    const tJudge = now();
    const results = await computeRewards(this.rewardInputs(gens, prompts), this.rewardOpts);
    const judgeTime = now() - tJudge;
    this.stage('scored', step);

    // Group.
    const rollouts: Rollout[][] = [];
    let r = 0;
    gens.forEach((gs, gi) => {
      rollouts.push(gs.map((g, index) => ({ group: gi, index, gen: g, ids: this.responseIds(g), reward: results[r++]! })));
    });
    const judgeFailures = results.filter((x) => x.judgeVerdict === 'error').length;
    let droppedJudge = 0;
    const trainGroups: PromptGroup[] = [];
    const trainGroupIndex: number[] = [];
    rollouts.forEach((g, gi) => {
      if (g.some((x) => x.reward.reward === null || x.ids.length === 0)) {
        droppedJudge++;
        return;
      }
      trainGroups.push({ prompt_ids: inputs[gi]!.ids, responses: g.map((x) => ({ ids: x.ids, reward: x.reward.reward! })) });
      trainGroupIndex.push(gi);
    });
    if (droppedJudge > 0) this.log(`step ${step}: ${droppedJudge} group(s) dropped (judge failure with on_failure=drop, or empty responses)`);

    // Score, loss, update.
    const tRl = now();
    const frozen = step <= cfg.actor_freeze_steps;
    const sched = { warmupSteps: cfg.warmup_steps, totalSteps: cfg.total_steps };
    const actorLr = frozen ? 0 : lrAt(step - 1, { ...sched, lr: cfg.actor_lr, minLr: cfg.actor_min_lr });
    const rmLr = this.rm ? lrAt(step - 1, { ...sched, lr: cfg.token_level_rm_lr, minLr: cfg.token_level_rm_lr_min }) : 0;
    const skipped: string[] = [];
    let res: StepLossResult | null = null;
    if (trainGroups.length > 0) {
      res = await stepLosses({ policy: this.policy, ref: this.ref, rm: this.rm }, trainGroups, this.lossCfg, {
        filter: { mode: cfg.filter_trajectory, rng: seededRng(mixSeed(cfg.seed, STREAM_FILTER, step)) },
        microBatchTokens: cfg.rl_micro_batch * cfg.gen_max_length,
        actorBackward: !frozen,
        rmBackward: this.rm !== null,
        // The RM's per-token numbers of the kept sequences, for the report's heat-map (trajectory dumps).
        collectTokens: cfg.save_trajectories && this.rm !== null,
      });
    }
    let actorGradNorm = 0;
    let rmGradNorm = 0;
    if (res === null || res.kept.length === 0) {
      skipped.push('all groups filtered out');
      this.log(`step ${step}: no trainable group (every group all-correct, all-wrong or dropped): no update`);
    } else {
      // stepLosses measured both gradient norms after the last backward: clipping reuses them.
      if (!frozen) actorGradNorm = await this.guardedUpdate('actor', this.policy, this.actorOpt, res.rl_loss, res.actor_grad_norm, actorLr, step, skipped);
      if (this.rm && this.rmOpt)
        rmGradNorm = await this.guardedUpdate('token_rm', this.rm, this.rmOpt, res.token_level_rm_loss, res.rm_grad_norm, rmLr, step, skipped);
    }
    this.policy.releaseActivations();
    this.ref.releaseActivations();
    this.rm?.releaseActivations();
    const rlTime = now() - tRl;
    this.stage('updated', step);
    if (this.isRemote() && !frozen && !skipped.some((s) => s.startsWith('actor') || s.startsWith('all'))) await this.syncRemote();

    // Log.
    const kept = res?.kept ?? [];
    const keptSet = new Set(kept.map((k) => `${trainGroupIndex[k.group]}:${k.index}`));
    const advOf = new Map<string, number>();
    trainGroups.forEach((g, i) => {
      const adv = groupAdvantages(g.responses.map((x) => x.reward), this.lossCfg.rewardShapingType);
      adv.forEach((a, j) => advOf.set(`${trainGroupIndex[i]}:${j}`, a));
    });
    if (cfg.save_trajectories) {
      // Token-level RM weights of the kept sequences: q_t = σ(cumulative mean RM score), the RM's running estimate
      // that the response is correct (src/rl/token-rm.ts), as read before this step's RM update.
      const heat = new Map<string, { tokens: string[]; token_weights: number[] }>();
      if (res?.tokens !== undefined)
        kept.forEach((k, i) => {
          const scores = res!.tokens![i]?.rmScores;
          if (!scores) return;
          const ids = trainGroups[k.group]!.responses[k.index]!.ids;
          const q = cumulativeMean(scores);
          heat.set(`${trainGroupIndex[k.group]}:${k.index}`, {
            tokens: Array.from(ids, (id) => this.tokenizer.decode([id], { skipSpecialTokens: false })),
            token_weights: Array.from(q, (c) => sigmoid(c)),
          });
        });
      const lines: string[] = [];
      for (const g of rollouts)
        for (const x of g) {
          const key = `${x.group}:${x.index}`;
          lines.push(
            JSON.stringify({
              prompt: x.group,
              sample: x.index,
              question: prompts[x.group]!.question,
              gold: prompts[x.group]!.gold,
              text: x.gen.text,
              num_tokens: x.ids.length,
              finish_reason: x.gen.finishReason,
              reward: x.reward.reward,
              advantage: advOf.get(key) ?? null,
              kept: keptSet.has(key),
              judge: x.reward.reason,
              ...(heat.get(key) ?? {}),
            }),
          );
        }
      writeFileAtomic(path.join(this.runDir, 'trajectories', `step-${step}.jsonl`), lines.map((l) => l + '\n').join(''));
    }
    const allRewards = results.map((x) => x.reward).filter((x): x is 1 | -1 => x !== null);
    const newTokens = rollouts.flat().map((x) => x.ids.length);
    const numGen = newTokens.reduce((a, b) => a + b, 0);
    const rlTokens = kept.reduce((a, k) => a + k.numTokens + trainGroups[k.group]!.prompt_ids.length, 0);
    const stats = res?.stats;
    const tokens = stats?.actionTokens ?? 0;
    const m: StepMetrics = {
      type: 'train',
      step,
      actor_lr: actorLr,
      actor_grad_norm: actorGradNorm,
      token_level_rm_lr: rmLr,
      token_rm_grad_norm: rmGradNorm,
      avg_judger_reward: mean(allRewards),
      avg_adv: mean(kept.map((k) => k.advantage)),
      avg_gen_entropy: tokens > 0 ? stats!.sumNegLogp / tokens : 0,
      avg_ref_kl: tokens > 0 ? stats!.sumRefKl / tokens : 0,
      positive_loss: res?.positive_loss ?? 0,
      negative_loss: res?.negative_loss ?? 0,
      kl_penalty_loss: res?.kl_penalty_loss ?? 0,
      rl_loss: res?.rl_loss ?? 0,
      token_level_rm_loss: res?.token_level_rm_loss ?? 0,
      max_memory: (process.resourceUsage().maxRSS * 1024) / 2 ** 30,
      avg_new_tokens: mean(newTokens),
      num_rl_tokens: res?.counts.tAll ?? 0,
      infer_tgs: genTime > 0 ? numGen / genTime : 0,
      rl_tgs: rlTime > 0 ? rlTokens / rlTime : 0,
      gen_time: genTime,
      judge_time: judgeTime,
      infer_time: genTime + judgeTime,
      rl_time: rlTime,
      total_time: 0,
      eta: 0,
      epoch,
      num_prompts: batch.length,
      num_rollouts: newTokens.length,
      num_kept: kept.length,
      groups_kept: new Set(kept.map((k) => k.group)).size,
      dropped_all_correct: res?.droppedAllCorrect ?? 0,
      dropped_all_wrong: res?.droppedAllWrong ?? 0,
      dropped_judge_failure: droppedJudge,
      judge_failures: judgeFailures,
      truncated_frac: mean(rollouts.flat().map((x) => (x.gen.finishReason === 'length' ? 1 : 0))),
      actor_frozen: frozen,
      skipped,
    };
    if (judgeFailures > 0) this.log(`step ${step}: ${judgeFailures} judge failure(s), policy ${cfg.judger.on_failure}`);

    // Evaluate, checkpoint, save state.
    const evals: EvalMetrics[] = [];
    const isLast = step === cfg.total_steps || step === this.hooks.stopAfterStep;
    if (this.evalSet !== null && cfg.eval_interval > 0 && (step % cfg.eval_interval === 0 || step === cfg.total_steps)) evals.push(await this.evaluate(step));
    m.total_time = now() - tStart;
    this.elapsed += m.total_time;
    this.stepsThisRun++;
    m.eta = ((cfg.total_steps - step) * this.elapsed) / step;
    const metricsFile = path.join(this.runDir, 'metrics.jsonl');
    appendLine(metricsFile, m);
    for (const e of evals) appendLine(metricsFile, e);
    this.log(
      `step ${step}/${cfg.total_steps}: reward ${m.avg_judger_reward.toFixed(3)}, kept ${m.num_kept}, rl_loss ${m.rl_loss.toPrecision(4)}, ` +
        `rm_loss ${m.token_level_rm_loss.toPrecision(4)}, grad ${m.actor_grad_norm.toPrecision(3)}/${m.token_rm_grad_norm.toPrecision(3)}, ` +
        `gen ${genTime.toFixed(2)}s judge ${judgeTime.toFixed(2)}s rl ${rlTime.toFixed(2)}s` +
        (skipped.length > 0 ? `; skipped: ${skipped.join(', ')}` : ''),
    );
    this.stage('logged', step);
    if ((cfg.checkpoint_interval > 0 && step % cfg.checkpoint_interval === 0) || isLast) await this.saveCheckpoints(step);
    this.stage('checkpointed', step);
    this.step = step;
    if (step % cfg.state_interval === 0 || isLast) await this.saveState();
    this.stage('saved', step);
    return { metrics: m, evals };
  }

  /** Sampled pass@1 (over eval_samples) and greedy accuracy on the held-out prompts. */
  async evaluate(step: number): Promise<EvalMetrics> {
    const cfg = this.cfg;
    const set = this.evalSet;
    if (set === null) throw new Error('evaluate: no eval_dataset');
    const t0 = now();
    const rendered = set.map((p) => {
      const text = this.renderPrompt(p.question);
      return { text, ids: this.tokenizer.encode(text, { addSpecialTokens: false }) };
    });
    const keep = rendered.map((r) => r.ids.length < cfg.gen_max_length);
    const probs = set.filter((_, i) => keep[i]);
    const ins = rendered.filter((_, i) => keep[i]);
    const maxNew = cfg.eval_max_new ?? cfg.gen_max_new;
    const S = cfg.eval_samples;
    const allTokens: number[] = [];
    let truncated = 0;
    let pass1: number | null = null;
    let passK: number | null = null;
    let greedyAcc: number | null = null;
    if (S > 0 && ins.length > 0) {
      const gens = await this.generate(ins, S, (i) => mixSeed(cfg.seed, STREAM_EVAL, step, i), maxNew, false);
      const res = await computeRewards(this.rewardInputs(gens, probs), this.rewardOpts);
      let k = 0;
      const p1: number[] = [];
      const pk: number[] = [];
      gens.forEach((gs) => {
        let c = 0;
        for (const g of gs) {
          if (res[k++]!.reward === 1) c++;
          allTokens.push(this.responseIds(g).length);
          if (g.finishReason === 'length') truncated++;
        }
        p1.push(passAtK(S, c, 1));
        pk.push(passAtK(S, c, S));
      });
      pass1 = mean(p1);
      passK = mean(pk);
    }
    if (cfg.eval_greedy && ins.length > 0) {
      const gens = await this.generate(ins, 1, () => 0, maxNew, true);
      const res = await computeRewards(this.rewardInputs(gens, probs), this.rewardOpts);
      greedyAcc = mean(res.map((x) => (x.reward === 1 ? 1 : 0)));
      for (const gs of gens)
        for (const g of gs) {
          allTokens.push(this.responseIds(g).length);
          if (g.finishReason === 'length') truncated++;
        }
    }
    const e: EvalMetrics = {
      type: 'eval',
      step,
      num_problems: ins.length,
      samples: S,
      pass1_sampled: pass1,
      pass_at_k: passK,
      greedy_acc: greedyAcc,
      pass_at_1: pass1,
      greedy: greedyAcc,
      avg_new_tokens: mean(allTokens),
      truncated_frac: allTokens.length > 0 ? truncated / allTokens.length : 0,
      eval_time: now() - t0,
    };
    this.log(
      `eval at step ${step}: ${ins.length} problems, pass@1 (${S} samples) ${pass1 === null ? '-' : pass1.toFixed(4)}, ` +
        `pass@${S} ${passK === null ? '-' : passK.toFixed(4)}, greedy ${greedyAcc === null ? '-' : greedyAcc.toFixed(4)}`,
    );
    return e;
  }

  /** HF checkpoints of the policy (and RM) at `checkpoints/step-N/`. */
  async saveCheckpoints(step: number): Promise<void> {
    const dir = path.join(this.runDir, 'checkpoints', `step-${step}`);
    const dtype = this.cfg.checkpoint_dtype;
    const policy = await this.policy.readTensors();
    const rm = this.rm ? await this.rm.readTensors() : null;
    writeDirAtomic(dir, (tmp) => {
      saveCheckpoint(path.join(tmp, 'policy'), this.actorModelConfig, policy, { dtype, tokenizerDir: this.tokenizerDir });
      if (rm && this.rmModelConfig) saveCheckpoint(path.join(tmp, 'token_rm'), this.rmModelConfig, rm, { dtype, tokenizerDir: this.tokenizerDir });
    });
    this.log(`checkpoint: ${dir}`);
  }

  /** The full resume state at `state/` (f32 weights, optimizer moments, step, data position). */
  async saveState(): Promise<void> {
    const st: TrainerStateFile = {
      version: STATE_VERSION,
      step: this.step,
      data: this.stream.position(),
      rng: {
        seed: this.cfg.seed,
        streams: {
          generation: 'mixSeed(seed, 1, step, prompt) per request',
          filter: 'mulberry32(mixSeed(seed, 2, step))',
          eval: 'mixSeed(seed, 3, step, problem) per request',
          data: 'permutation mulberry32(mixSeed(seed, 0x5eed, epoch))',
        },
      },
      actor_optimizer: { step: this.actorOpt.stepCount, lr: this.actorOpt.lr },
      token_rm_optimizer: this.rmOpt ? { step: this.rmOpt.stepCount, lr: this.rmOpt.lr } : null,
      elapsed: this.elapsed,
      saved_at: new Date().toISOString(),
    };
    // Every number is read back before anything is written, so the directory is written in one go.
    const policy = await this.policy.readTensors();
    const actorOpt = await this.actorOpt.exportState();
    const rm = this.rm && this.rmOpt ? { tensors: await this.rm.readTensors(), opt: await this.rmOpt.exportState() } : null;
    writeDirAtomic(path.join(this.runDir, 'state'), (tmp) => {
      saveCheckpoint(path.join(tmp, 'policy'), this.actorModelConfig, policy, { dtype: 'f32' });
      writeSafetensors(path.join(tmp, 'optim_actor.safetensors'), optimStateToTensors(actorOpt));
      if (rm && this.rmModelConfig) {
        saveCheckpoint(path.join(tmp, 'token_rm'), this.rmModelConfig, rm.tensors, { dtype: 'f32' });
        writeSafetensors(path.join(tmp, 'optim_token_rm.safetensors'), optimStateToTensors(rm.opt));
      }
      writeFileAtomic(path.join(tmp, 'trainer.json'), JSON.stringify(st, null, 2) + '\n');
    });
  }

  /** Rollouts from a server (prompts go as text, weights are synced through a checkpoint directory). */
  private isRemote(): boolean {
    return this.rollout.name !== 'local';
  }

  /** Remote rollouts: write the current policy where the server reads it and tell it to reload. */
  private async syncRemote(): Promise<void> {
    const dir = this.cfg.rollout.sync_dir ?? path.join(this.runDir, 'sync', 'policy');
    saveCheckpoint(dir, this.actorModelConfig, await this.policy.readTensors(), { dtype: this.cfg.checkpoint_dtype, tokenizerDir: this.tokenizerDir });
    await this.rollout.syncWeights(path.resolve(dir));
  }

  async close(): Promise<void> {
    if (this.ownsRollout) await this.rollout.close();
    if (this.pool) await this.pool.close();
    if (this.ownsBackend) this.backend.dispose();
  }
}

/**
 * Trains per `config` into `opts.outDir` (resuming from its state with `opts.resume`). The programmatic entry point:
 * `onStep` receives each step's metrics (after its state is saved).
 */
export async function runTraining(config: TrainConfig, opts: RunTrainingOptions = {}): Promise<TrainResult> {
  const t = await Trainer.create(config, opts);
  try {
    return await t.run();
  } finally {
    await t.close();
  }
}
