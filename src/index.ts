// The library API of `oreal`: the same building blocks the CLI uses, one import away.

// Verifier: extraction, typed comparison, bounded pool, LLM judge, reward.
export * from './verify/index.js';
export { LlmJudge } from './verify/judge.js';
export { computeReward, computeRewards } from './verify/reward.js';

// Compute engine and model I/O.
export { createBackend, BACKEND_NAMES } from './engine/index.js';
export type { Backend } from './engine/backend.js';
export type { BackendName } from './engine/index.js';
export { Qwen2Model, crossEntropyLoss } from './model/qwen2.js';
export type { Qwen2Config } from './model/qwen2.js';
export { loadCheckpoint, saveCheckpoint } from './model/checkpoint.js';
export { Tokenizer } from './model/tokenizer.js';
export { loadConfig, parseConfig } from './model/config.js';
export { AdamW, clipGradNorm, lrAt } from './train/optim.js';

// Sampling and rollouts.
export { generate } from './sample/generate.js';
export { LocalRolloutBackend } from './sample/local-backend.js';
export { OpenAIRolloutBackend } from './sample/remote-backend.js';
export { ROLLOUT_BACKENDS, ROLLOUT_BACKEND_NAMES } from './sample/rollout-backends.js';
export type { RolloutBackend, GenerationRequest, Generation, SamplingParams } from './sample/types.js';

// RL: losses, training, evaluation, reports.
export { computeLosses, resolveLossConfig, ALGORITHMS, TABLE2_ABLATION } from './rl/loss.js';
export { stepLosses } from './rl/step-losses.js';
export { runTraining } from './train/trainer.js';
export { loadTrainConfig } from './train/config.js';
export { runSft, loadSftConfig } from './train/sft.js';
export { passAtK, majorityVote, computeMetrics } from './eval/metrics.js';
export { renderReport, writeReport } from './report/html.js';
