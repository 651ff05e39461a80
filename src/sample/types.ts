// Values that flow through rollout generation, whichever engine produces them (local KV-cache engine or a remote
// OpenAI-compatible server). Trainer, evaluator and server depend only on these.

export interface SamplingParams {
  /** Maximum number of generated tokens (the stop token counts). */
  maxNewTokens: number;
  /** 0 or `greedy` means argmax. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP: number;
  /** Keep the k most likely tokens; 0 or negative = off. */
  topK: number;
  /** Generation ends after emitting one of these token ids (the id is kept in `tokenIds`). */
  stopTokenIds: number[];
  /** Generation ends when the decoded text contains one of these; the text is cut before it. */
  stopStrings: string[];
  /** Per-request seed: the same seed and inputs reproduce the same tokens exactly. */
  seed?: number;
  greedy?: boolean;
}

export interface GenerationRequest {
  /** Prompt as token ids (local engine) or text (rendered already, e.g. by a chat template). */
  prompt: number[] | string;
  /** Number of samples for this prompt. */
  n: number;
  params: SamplingParams;
}

export interface Generation {
  /** Generated token ids only (not the prompt), including the stop token when one was produced. */
  tokenIds: number[];
  text: string;
  finishReason: 'stop' | 'length';
  /** Log-probability of each generated token under the sampling distribution's model (before temperature). */
  logprobs: number[];
}

/** Where rollouts come from: the local engine or a remote OpenAI-compatible server. */
export interface RolloutBackend {
  readonly name: string;
  /** One array of `n` generations per request, in request order. */
  generate(requests: GenerationRequest[]): Promise<Generation[][]>;
  /** Make the backend sample from the weights saved in `checkpointDir` (HF format). */
  syncWeights(checkpointDir: string): Promise<void>;
  close(): Promise<void>;
}
