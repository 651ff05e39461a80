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
//   rm_auc             ROC AUC of the token-level RM's σ(mean score) against correctness over the kept sequences, read
//                      before this step's RM update (the RM's online accuracy); null without the RM or a class
//   neg_weight_on_error  on a task with a step checker (src/task/chains.ts): the share of the kept negatives' token
//                      weight w⁻ on or after their first wrong step (src/rl/step-losses.ts); null on other tasks

import * as path from 'node:path';
import { openBackend } from '../engine/index.js';
import type { Backend } from '../engine/backend.js';
import { scoreGenerations, type EvalProblem, type Grader } from '../eval/evaluate.js';
import { saveCheckpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { Qwen2Model } from '../model/qwen2.js';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.js';
import { mixSeed, seededRng } from '../util/rng.js';
import { isOracle, type LossConfig } from '../rl/loss.js';
import { stepLosses, type PromptGroup, type StepBlame, type StepLossResult } from '../rl/step-losses.js';
import { ROLLOUT_BACKENDS } from '../sample/rollout-backends.js';
import { chainStepChecker, type StepChecker } from '../task/chains.js';
import type { Generation, GenerationRequest, RolloutBackend, SamplingParams } from '../sample/types.js';
import { VerifierPool } from '../verify/pool.js';
import { LlmJudge } from '../verify/judge.js';
import { computeRewards, type AnswerJudge, type RewardInput, type RewardOptions, type RuleVerifier } from '../verify/reward.js';
import { configToYaml, lossConfigOf, type TrainConfig } from './config.js';
import { PromptStream, balanceByDifficulty, loadPrompts, type PromptRecord } from './data.js';
import { stepMetrics, trajectoryRecords, type EvalMetrics, type StepMetrics } from './metrics.js';
import { loadTrainModels } from './models.js';
import { UpdateGuard, lrAt, type AdamW } from './optim.js';
import { groupRollouts } from './rollouts.js';
import { RunDir } from './run-dir.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types.

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
// The trainer.

// Seed streams (mixSeed(seed, stream, …)); 4 seeds the RM head's init (src/train/models.ts).
const STREAM_GEN = 1;
const STREAM_FILTER = 2;
const STREAM_EVAL = 3;
/** An update larger than the weights' own norm is refused as exploding (see UpdateGuard, src/train/optim.ts). */
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

/** A prompt rendered with the chat template, and its token ids. */
interface RenderedPrompt {
  text: string;
  ids: number[];
}

/** The prompts stage's output: the batch drawn, and those short enough to roll out. */
interface StepPrompts {
  epoch: number;
  batch: PromptRecord[];
  prompts: PromptRecord[];
  inputs: RenderedPrompt[];
}

/** The score + update stage's output. */
interface StepUpdate {
  losses: StepLossResult | null;
  frozen: boolean;
  actorLr: number;
  rmLr: number;
  actorGradNorm: number;
  rmGradNorm: number;
  /** Updates not applied and why. */
  skipped: string[];
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
  private readonly run_: RunDir;
  private readonly ownsRollout: boolean;
  private readonly backend: Backend;
  private readonly ownsBackend: boolean;
  private readonly actorGuard: UpdateGuard;
  private readonly rmGuard: UpdateGuard | null;
  private readonly actorModelConfig: ModelConfig;
  private readonly rmModelConfig: ModelConfig | null;
  private readonly stream: PromptStream<PromptRecord>;
  private readonly evalSet: PromptRecord[] | null;
  /** The task's step checker (null when the prompts are not of a task that has one). */
  private readonly stepChecker: StepChecker | null;
  private readonly pieceCache = new Map<number, string>();
  private readonly stopId: number;
  private readonly rewardOpts: RewardOptions;
  private readonly pool: VerifierPool | null;
  private readonly hooks: RunTrainingOptions;
  private readonly tokenizerDir: string;
  /** Last completed step. */
  step: number;
  private elapsed: number;

  private constructor(cfg: TrainConfig, opts: RunTrainingOptions, backend: Backend, ownsBackend: boolean) {
    this.cfg = cfg;
    this.hooks = opts;
    this.lossCfg = lossConfigOf(cfg);
    this.run_ = new RunDir(opts.outDir ?? path.join('runs', `run-${new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')}`), opts.onLog);
    this.runDir = this.run_.dir;

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
    this.stepChecker = chainStepChecker(prompts, isOracle(this.lossCfg.tokenWeightSource));
    this.evalSet = cfg.eval_dataset !== null && cfg.eval_interval > 0 ? loadPrompts(cfg.eval_dataset, cfg.eval_max_prompts !== null ? { limit: cfg.eval_max_prompts } : {}) : null;

    const judge = opts.judge ?? this.openJudge();

    // Models, from the config or the saved state.
    this.ownsBackend = ownsBackend;
    this.backend = backend;
    const saved = opts.resume ? this.run_.findState() : null;
    if (saved !== null) this.log(`resuming from ${saved.dir} after step ${saved.state.step}`);
    const models = loadTrainModels(cfg, backend, this.lossCfg.tokenLevelRm, saved);
    this.policy = models.policy;
    this.ref = models.ref;
    this.rm = models.rm;
    this.actorModelConfig = models.actorModelConfig;
    this.rmModelConfig = models.rmModelConfig;
    this.actorOpt = models.actorOpt;
    this.rmOpt = models.rmOpt;
    this.step = saved?.state.step ?? 0;
    this.elapsed = saved?.state.elapsed ?? 0;
    this.stream = new PromptStream(items, cfg.seed, saved?.state.data ?? { epoch: 0, offset: 0 });
    const guard = { maxGradNorm: cfg.max_grad_norm, maxUpdateRatio: MAX_UPDATE_RATIO, patience: DIVERGENCE_PATIENCE };
    this.actorGuard = new UpdateGuard('actor', this.actorOpt, { ...guard, lrKey: 'actor_lr', baseLr: cfg.actor_lr });
    this.rmGuard = this.rmOpt ? new UpdateGuard('token_rm', this.rmOpt, { ...guard, lrKey: 'token_level_rm_lr', baseLr: cfg.token_level_rm_lr }) : null;

    // Rollouts: a stand-in, else the config's backend from the registry (the local engine samples from the live policy).
    this.rollout = opts.rollout ?? this.openRollout();
    this.ownsRollout = opts.rollout === undefined;
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

  /** The LLM judge the config asks for, if any. */
  private openJudge(): AnswerJudge | undefined {
    const j = this.cfg.judger;
    if (j.url === null || j.mode === 'off') return undefined;
    return new LlmJudge({
      url: j.url,
      ...(j.model !== null ? { model: j.model } : {}),
      apiKeyEnv: j.api_key_env,
      concurrency: j.concurrency,
      timeoutMs: j.timeout_ms,
      retries: j.retries,
      ...(j.max_tokens !== null ? { maxTokens: j.max_tokens } : {}),
    });
  }

  /** The rollout backend the config names (src/sample/rollout-backends.ts). */
  private openRollout(): RolloutBackend {
    const r = this.cfg.rollout;
    return ROLLOUT_BACKENDS[r.backend].create({
      policy: { model: this.policy, tokenizer: this.tokenizer },
      ...(r.url !== null ? { url: r.url } : {}),
      ...(r.model !== null ? { model: r.model } : {}),
      apiKeyEnv: r.api_key_env,
      concurrency: r.concurrency,
      tokenIds: true,
    });
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
    this.run_.log(line);
  }

  private stage(s: TrainStage, step: number): void {
    this.hooks.onStage?.(s, step);
  }

  private renderPrompt(question: string): RenderedPrompt {
    const messages: ChatMessage[] = [];
    if (this.cfg.system_prompt !== null) messages.push({ role: 'system', content: this.cfg.system_prompt });
    messages.push({ role: 'user', content: question });
    const text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    return { text, ids: this.tokenizer.encode(text, { addSpecialTokens: false }) };
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
  private async generate(prompts: readonly RenderedPrompt[], n: number, seedOf: (i: number) => number, maxNew: number, greedy: boolean): Promise<Generation[][]> {
    const remote = this.isRemote();
    const reqs: GenerationRequest[] = prompts.map((p, i) => ({
      prompt: remote ? p.text : p.ids,
      n,
      params: this.samplingParams(Math.min(maxNew, this.cfg.gen_max_length - p.ids.length), seedOf(i), greedy),
    }));
    return this.rollout.generate(reqs);
  }

  private rewardInput(p: PromptRecord, g: Generation): RewardInput {
    return { response: g.text, gold: p.gold, question: p.question, finishedWithStop: g.finishReason === 'stop' };
  }

  private rewardInputs(gens: Generation[][], golds: readonly PromptRecord[]): RewardInput[] {
    return gens.flatMap((gs, i) => gs.map((g) => this.rewardInput(golds[i]!, g)));
  }

  /** Runs steps until total_steps (or stopAfterStep / abort). */
  async run(): Promise<TrainResult> {
    const cfg = this.cfg;
    const previous = this.run_.startMetrics(this.step);
    this.run_.writeFile('config.resolved.yaml', configToYaml(cfg));
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
      this.run_.appendMetrics(e);
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

  /**
   * One RL step (the next after `this.step`), stage by stage: prompts → rollout → judge → group → score and update →
   * log, evaluate, checkpoint and save. Each stage's work is a function of the module that owns it.
   */
  async trainStep(): Promise<{ metrics: StepMetrics; evals: EvalMetrics[] }> {
    const step = this.step + 1;
    const tStart = now();
    const p = this.nextPrompts(step);

    const tGen = now();
    const gens = p.inputs.length > 0 ? await this.generate(p.inputs, this.cfg.prompt_repeat_k, (i) => mixSeed(this.cfg.seed, STREAM_GEN, step, i), this.cfg.gen_max_new, false) : [];
    const genTime = now() - tGen;
    this.stage('generated', step);

    const tJudge = now();
    const rewards = await computeRewards(this.rewardInputs(gens, p.prompts), this.rewardOpts);
    const judgeTime = now() - tJudge;
    this.stage('scored', step);

    const grouped = groupRollouts(p.inputs.map((x) => x.ids), gens, rewards, (g) => this.responseIds(g));
    if (grouped.dropped > 0) this.log(`step ${step}: ${grouped.dropped} group(s) dropped (judge failure with on_failure=drop, or empty responses)`);

    const tRl = now();
    const u = await this.scoreAndUpdate(step, grouped.trainGroups, grouped.trainGroupIndex.map((i) => p.prompts[i]!.question));
    const rlTime = now() - tRl;
    this.stage('updated', step);
    if (this.isRemote() && !u.frozen && !u.skipped.some((s) => s.startsWith('actor') || s.startsWith('all'))) await this.syncRemote();

    if (this.cfg.save_trajectories)
      this.run_.writeTrajectories(step, trajectoryRecords(p.prompts, grouped, u.losses, (id) => this.tokenizer.decode([id], { skipSpecialTokens: false })));
    const m = stepMetrics({
      step,
      epoch: p.epoch,
      numPrompts: p.batch.length,
      ...u,
      rewards: rewards.map((x) => x.reward),
      responses: grouped.rollouts.flat().map((x) => ({ numTokens: x.ids.length, truncated: x.gen.finishReason === 'length' })),
      droppedGroups: grouped.dropped,
      judgeFailures: grouped.judgeFailures,
      keptPromptTokens: (u.losses?.kept ?? []).map((k) => grouped.trainGroups[k.group]!.prompt_ids.length),
      genTime,
      judgeTime,
      rlTime,
    });
    if (grouped.judgeFailures > 0) this.log(`step ${step}: ${grouped.judgeFailures} judge failure(s), policy ${this.cfg.judger.on_failure}`);
    const evals = await this.finishStep(step, m, tStart);
    return { metrics: m, evals };
  }

  /** The prompts stage: the next batch from the data stream, rendered; prompts too long to generate from are skipped. */
  private nextPrompts(step: number): StepPrompts {
    const epoch = this.stream.position().epoch;
    const batch = this.stream.next(this.cfg.gen_global_batch / this.cfg.prompt_repeat_k);
    const rendered = batch.map((p) => this.renderPrompt(p.question));
    const usable = rendered.map((r) => r.ids.length < this.cfg.gen_max_length);
    const nLong = usable.filter((u) => !u).length;
    if (nLong > 0) this.log(`step ${step}: ${nLong} prompt(s) longer than gen_max_length skipped`);
    return { epoch, batch, prompts: batch.filter((_, i) => usable[i]), inputs: rendered.filter((_, i) => usable[i]) };
  }

  /** The step checker's masks of a response (its tokens' text pieces decoded one by one, as the heat-map's). */
  private blame(question: string, ids: ArrayLike<number>): StepBlame {
    const pieces = Array.from(ids, (id) => {
      let piece = this.pieceCache.get(id);
      if (piece === undefined) this.pieceCache.set(id, (piece = this.tokenizer.decode([id], { skipSpecialTokens: false })));
      return piece;
    });
    return this.stepChecker!(question, pieces);
  }

  /** The score and update stage: losses and backward (src/rl/step-losses.ts), then the guarded optimizer steps. */
  private async scoreAndUpdate(step: number, groups: PromptGroup[], questions: readonly string[]): Promise<StepUpdate> {
    const cfg = this.cfg;
    const frozen = step <= cfg.actor_freeze_steps;
    const sched = { warmupSteps: cfg.warmup_steps, totalSteps: cfg.total_steps };
    const actorLr = frozen ? 0 : lrAt(step - 1, { ...sched, lr: cfg.actor_lr, minLr: cfg.actor_min_lr });
    const rmLr = this.rm ? lrAt(step - 1, { ...sched, lr: cfg.token_level_rm_lr, minLr: cfg.token_level_rm_lr_min }) : 0;
    const u: StepUpdate = { losses: null, frozen, actorLr, rmLr, actorGradNorm: 0, rmGradNorm: 0, skipped: [] };
    if (groups.length > 0) {
      u.losses = await stepLosses({ policy: this.policy, ref: this.ref, rm: this.rm }, groups, this.lossCfg, {
        filter: { mode: cfg.filter_trajectory, rng: seededRng(mixSeed(cfg.seed, STREAM_FILTER, step)) },
        microBatchTokens: cfg.rl_micro_batch * cfg.gen_max_length,
        actorBackward: !frozen,
        rmBackward: this.rm !== null,
        // The RM's per-token numbers of the kept sequences, for the report's heat-map (trajectory dumps).
        collectTokens: cfg.save_trajectories && this.rm !== null,
        ...(this.stepChecker !== null ? { blame: (g: number, i: number) => this.blame(questions[g]!, groups[g]!.responses[i]!.ids) } : {}),
      });
    }
    const res = u.losses;
    if (res === null || res.kept.length === 0) {
      u.skipped.push('all groups filtered out');
      this.log(`step ${step}: no trainable group (every group all-correct, all-wrong or dropped): no update`);
    } else {
      // stepLosses measured both gradient norms after the last backward: clipping reuses them.
      const refused = (who: string, loss: string, lossValue: number, lr: number) => (why: string, gradNorm: number) => {
        u.skipped.push(why);
        this.log(`step ${step}: ${why} (${loss} ${lossValue}, grad norm ${gradNorm}, lr ${lr}): ${who} update skipped`);
      };
      if (!frozen)
        u.actorGradNorm = (await this.actorGuard.update(this.policy.gradTensors, res.rl_loss, res.actor_grad_norm, actorLr, step, refused('actor', 'rl_loss', res.rl_loss, actorLr))).gradNorm;
      if (this.rm && this.rmGuard)
        u.rmGradNorm = (
          await this.rmGuard.update(this.rm.gradTensors, res.token_level_rm_loss, res.rm_grad_norm, rmLr, step, refused('RM', 'token_level_rm_loss', res.token_level_rm_loss, rmLr))
        ).gradNorm;
    }
    this.policy.releaseActivations();
    this.ref.releaseActivations();
    this.rm?.releaseActivations();
    return u;
  }

  /** The end of a step: evaluation when due, the metrics line and log, checkpoint and resume state. */
  private async finishStep(step: number, m: StepMetrics, tStart: number): Promise<EvalMetrics[]> {
    const cfg = this.cfg;
    const evals: EvalMetrics[] = [];
    const isLast = step === cfg.total_steps || step === this.hooks.stopAfterStep;
    if (this.evalSet !== null && cfg.eval_interval > 0 && (step % cfg.eval_interval === 0 || step === cfg.total_steps)) evals.push(await this.evaluate(step));
    m.total_time = now() - tStart;
    this.elapsed += m.total_time;
    m.eta = ((cfg.total_steps - step) * this.elapsed) / step;
    this.run_.appendMetrics(m);
    for (const e of evals) this.run_.appendMetrics(e);
    this.log(
      `step ${step}/${cfg.total_steps}: reward ${m.avg_judger_reward.toFixed(3)}, kept ${m.num_kept}, rl_loss ${m.rl_loss.toPrecision(4)}, ` +
        `rm_loss ${m.token_level_rm_loss.toPrecision(4)}, grad ${m.actor_grad_norm.toPrecision(3)}/${m.token_rm_grad_norm.toPrecision(3)}, ` +
        `gen ${m.gen_time.toFixed(2)}s judge ${m.judge_time.toFixed(2)}s rl ${m.rl_time.toFixed(2)}s` +
        (m.skipped.length > 0 ? `; skipped: ${m.skipped.join(', ')}` : ''),
    );
    this.stage('logged', step);
    if ((cfg.checkpoint_interval > 0 && step % cfg.checkpoint_interval === 0) || isLast) await this.saveCheckpoints(step);
    this.stage('checkpointed', step);
    this.step = step;
    if (step % cfg.state_interval === 0 || isLast) await this.saveState();
    this.stage('saved', step);
    return evals;
  }

  /** Sampled pass@1 (over eval_samples) and greedy accuracy on the held-out prompts. */
  async evaluate(step: number): Promise<EvalMetrics> {
    const cfg = this.cfg;
    const set = this.evalSet;
    if (set === null) throw new Error('evaluate: no eval_dataset');
    const t0 = now();
    const rendered = set.map((p) => this.renderPrompt(p.question));
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
    if (ins.length > 0 && (S > 0 || cfg.eval_greedy)) {
      const sampled = S > 0 ? await this.generate(ins, S, (i) => mixSeed(cfg.seed, STREAM_EVAL, step, i), maxNew, false) : null;
      const greedy = cfg.eval_greedy ? await this.generate(ins, 1, () => 0, maxNew, true) : null;
      // Scored by the evaluator with the training reward: correct = reward +1 (a truncated answer is wrong).
      const grade: Grader<PromptRecord & EvalProblem> = async (items) => {
        const res = await computeRewards(items.map((it) => this.rewardInput(it.problem, it.generation)), this.rewardOpts);
        return res.map((r) => ({ correct: r.reward === 1, extracted: r.extracted, reason: r.reason }));
      };
      const { metrics } = await scoreGenerations(
        probs.map((p, i) => ({ problem: { ...p, id: p.source }, samples: sampled?.[i] ?? [], ...(greedy !== null ? { greedy: greedy[i]![0]! } : {}) })),
        grade,
        { ks: S > 0 ? [1, S] : [], majKs: [] },
      );
      if (S > 0) {
        pass1 = metrics.pass_at_k['1']!;
        passK = metrics.pass_at_k[String(S)]!;
      }
      if (greedy !== null) greedyAcc = metrics.greedy!;
      for (const g of [...(sampled ?? []).flat(), ...(greedy ?? []).flat()]) {
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
    const policy = { config: this.actorModelConfig, tensors: await this.policy.readTensors() };
    const rm = this.rm && this.rmModelConfig ? { config: this.rmModelConfig, tensors: await this.rm.readTensors() } : null;
    const dir = this.run_.saveCheckpoints(step, policy, rm, { dtype: this.cfg.checkpoint_dtype, tokenizerDir: this.tokenizerDir });
    this.log(`checkpoint: ${dir}`);
  }

  /** The full resume state at `state/` (f32 weights, optimizer moments, step, data position). */
  async saveState(): Promise<void> {
    // Every number is read back before anything is written, so the directory is written in one go.
    const actor = { config: this.actorModelConfig, tensors: await this.policy.readTensors(), optimizer: await this.actorOpt.exportState() };
    const rm =
      this.rm && this.rmOpt && this.rmModelConfig ? { config: this.rmModelConfig, tensors: await this.rm.readTensors(), optimizer: await this.rmOpt.exportState() } : null;
    this.run_.saveState(
      {
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
      },
      actor,
      rm,
    );
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
