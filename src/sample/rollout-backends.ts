// Rollout backends by name: the one list that the training config's `rollout.backend` (its schema enum and required
// keys), the trainer and `oreal eval` read. Adding a backend: one file that implements RolloutBackend
// (src/sample/types.ts) and exports a RolloutBackendEntry, plus its line in ROLLOUT_BACKENDS below.

import type { Backend } from '../engine/backend.js';
import type { Qwen2Model } from '../model/qwen2.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { localRollout } from './local-backend.js';
import { remoteRollout } from './remote-backend.js';
import type { RolloutBackend } from './types.js';

/** What a backend is built from; each kind reads its own fields. */
export interface RolloutBackendOptions {
  /** Engine: the live policy and its tokenizer (training samples from the weights being trained). */
  policy?: { model: Qwen2Model; tokenizer: Tokenizer | null };
  /** Engine: or a checkpoint directory, loaded onto `compute` (evaluation). */
  checkpoint?: { dir: string; compute: Backend; maxBatch?: number };
  /** Server: base URL and model name (required), API key variable, requests in flight, timeout, retries. */
  url?: string;
  model?: string;
  apiKeyEnv?: string;
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
  /** Server: ask for the sampled token ids too. */
  tokenIds?: boolean;
}

export interface RolloutBackendEntry {
  /**
   * 'engine': samples in this process from token-id prompts (rendered here with the chat template), batching many
   * requests per call. 'server': takes text prompts or chat messages, one request per call, concurrently; its weights
   * arrive through syncWeights(dir).
   */
  kind: 'engine' | 'server';
  /** Keys of the training config's `rollout` table this backend needs. */
  requires: ReadonlyArray<'url' | 'model'>;
  create(opts: RolloutBackendOptions): RolloutBackend;
}

export const ROLLOUT_BACKENDS = {
  local: localRollout,
  remote: remoteRollout,
} as const satisfies Record<string, RolloutBackendEntry>;

export type RolloutBackendName = keyof typeof ROLLOUT_BACKENDS;
export const ROLLOUT_BACKEND_NAMES = Object.keys(ROLLOUT_BACKENDS) as [RolloutBackendName, ...RolloutBackendName[]];

