// The models of a training run and their optimizers, from the config or from a saved state: the policy, the frozen
// reference, the token-level RM (a score-head model on the policy's trunk unless a checkpoint is given) and AdamW for
// the two that train.
import * as path from 'node:path';
import type { Backend } from '../engine/backend.js';
import { loadCheckpoint, type Tensor } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../model/qwen2.js';
import { mixSeed, seededRng } from '../util/rng.js';
import type { TrainConfig } from './config.js';
import { AdamW } from './optim.js';
import { importOptimizerState, type SavedState } from './run-dir.js';

/** The seed stream of the RM head's random init (see the stream table at the top of src/train/trainer.ts). */
const STREAM_INIT = 4;

export interface TrainModels {
  policy: Qwen2Model;
  ref: Qwen2Model;
  rm: Qwen2Model | null;
  /** The HF configs the checkpoints are saved with. */
  actorModelConfig: ModelConfig;
  rmModelConfig: ModelConfig | null;
  actorOpt: AdamW;
  rmOpt: AdamW | null;
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

/**
 * Loads the run's models on `backend`: from the config, or from `saved` (a resumed run: the policy, RM and optimizer
 * moments as saved; the reference always from the config). `withRm` is the loss config's token-level RM switch.
 */
export function loadTrainModels(cfg: TrainConfig, backend: Backend, withRm: boolean, saved: SavedState | null): TrainModels {
  const actorCk = loadCheckpoint(cfg.actor);
  const actorModelConfig = actorCk.config;
  // Every trained sequence is at most gen_max_length tokens; past the model's context it would be another model.
  if (cfg.gen_max_length > actorModelConfig.maxPositionEmbeddings)
    throw new Error(
      `config gen_max_length ${cfg.gen_max_length} exceeds the actor's context of ${actorModelConfig.maxPositionEmbeddings} ` +
        `positions (max_position_embeddings in ${path.join(cfg.actor, 'config.json')}); lower gen_max_length (and gen_max_new)`,
    );
  const policy = saved ? Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(saved.dir, 'policy')), backend) : Qwen2Model.fromCheckpoint(actorCk, backend);
  const ref = Qwen2Model.fromCheckpoint(cfg.reference === null ? actorCk : loadCheckpoint(cfg.reference), backend);
  let rm: Qwen2Model | null = null;
  let rmModelConfig: ModelConfig | null = null;
  if (withRm) {
    if (saved) {
      rm = Qwen2Model.fromCheckpoint(loadCheckpoint(path.join(saved.dir, 'token_rm')), backend);
    } else if (typeof cfg.token_level_rm === 'string') {
      const ck = loadCheckpoint(cfg.token_level_rm);
      rm = ck.config.isTokenClassification ? Qwen2Model.fromCheckpoint(ck, backend) : rmFromLm(ck, backend, cfg.token_level_rm_head_init, mixSeed(cfg.seed, STREAM_INIT));
    } else {
      rm = rmFromLm(actorCk, backend, cfg.token_level_rm_head_init, mixSeed(cfg.seed, STREAM_INIT));
    }
    if (rm.config.head !== 'score') throw new Error('token_level_rm: the reward model has no score head');
    rmModelConfig = rmConfigFrom(actorCk.config);
  }
  const actorOpt = new AdamW(policy.backend, policy.tensors, { lr: cfg.actor_lr, weightDecay: cfg.wd });
  const rmOpt = rm ? new AdamW(rm.backend, rm.tensors, { lr: cfg.token_level_rm_lr, weightDecay: cfg.wd }) : null;
  if (saved) {
    const { dir, state } = saved;
    importOptimizerState(actorOpt, path.join(dir, 'optim_actor.safetensors'), state.actor_optimizer);
    if (rmOpt) {
      if (state.token_rm_optimizer === null) throw new Error(`${dir}: no token-level RM optimizer state`);
      importOptimizerState(rmOpt, path.join(dir, 'optim_token_rm.safetensors'), state.token_rm_optimizer);
    }
  }
  return { policy, ref, rm, actorModelConfig, rmModelConfig, actorOpt, rmOpt };
}
