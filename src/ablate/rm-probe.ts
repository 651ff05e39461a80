// `oreal rm-probe`: how well a token-level reward model can learn a task before any RL. It samples a policy's
// rollouts on a prompt file, splits the prompts (not the rollouts) into train and held-out, trains the RM exactly as
// the trainer builds and trains it (src/train/trainer.ts's rmFromLm: the policy's trunk with a zero score head; the
// loss of src/rl/token-rm.ts, BCE of the mean token score against the outcome; AdamW with the trainer's weight decay
// and gradient clip), and reports the held-out ROC AUC of the RM's sequence score next to the AUC of the policy's own
// mean log-probability of its response, overall and per answer style.
//
// Why the comparison: OREAL's token weights come from the RM's running score. An RM whose held-out AUC is near 0.5
// gives every token about the same weight, so token weighting cannot help; a policy log-probability that separates
// right from wrong better than the RM says the signal is there and the RM is what fails to learn it.

import type { Backend } from '../engine/backend.js';
import { openBackend, type BackendName } from '../engine/index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Qwen2Model } from '../model/qwen2.js';
import { Tokenizer } from '../model/tokenizer.js';
import { seededRng, type Uniform } from '../util/rng.js';
import { rmSequenceLoss } from '../rl/token-rm.js';
import { generate } from '../sample/generate.js';
import type { GenerationRequest } from '../sample/types.js';
import { isAnswerOnlyResponse } from '../task/answer-style.js';
import { chainResponseStats, parseChainQuestion } from '../task/chains.js';
import { promptIds } from '../eval/quick-eval.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { loadPrompts } from '../train/data.js';
import { rmFromLm } from '../train/models.js';
import { verifyResponse } from '../verify/index.js';
import { rocAuc } from '../eval/auc.js';

/** One sampled response, scored. */
export interface ProbeRollout {
  prompt: number;
  promptIds: number[];
  /** Response token ids, the stop token included when one was produced (what the trainer trains on). */
  ids: number[];
  text: string;
  correct: boolean;
  /** Mean log-probability of the response tokens under the policy (temperature 1). */
  meanLogp: number;
}

/**
 * A response's answer style for the per-style AUCs: a style name, or null for a response that belongs to every
 * style (chains: a correct response has no error kind, so each style's AUC is correct vs that style's wrong ones).
 */
export type StyleOf = (question: string, response: string, correct: boolean) => string | null;

/** Arithmetic (the main job): answer-only vs worked, right and wrong responses alike. */
export const answerStyle: StyleOf = (_q, response) => (isAnswerOnlyResponse(response) ? 'bare' : 'worked');

/** Chains: a wrong response by its first error (src/task/chains.ts); correct responses count in every style. */
export const chainStyle: StyleOf = (question, response, correct) => {
  if (correct) return null;
  const p = parseChainQuestion(question);
  if (p === null) throw new Error(`not a chain question: ${question}`);
  const kind = chainResponseStats(p, response).firstError;
  return kind === 'none' ? 'no-wrong-line' : `first-error-${kind}`;
};

/** The chain styles when every question is a chain question, else the answer styles. */
export function styleFor(questions: readonly string[]): { name: string; of: StyleOf } {
  return questions.length > 0 && questions.every((q) => parseChainQuestion(q) !== null)
    ? { name: 'chain first error', of: chainStyle }
    : { name: 'answer style', of: answerStyle };
}

/**
 * Splits prompts 0..n−1 into train and held-out by a seeded shuffle: round(n·heldoutFrac) held out, at least one of
 * each. Every rollout of a prompt lands on the prompt's side, so no held-out question is seen in training.
 */
export function splitByPrompt(n: number, heldoutFrac: number, seed: number): { train: number[]; heldout: number[] } {
  if (!(heldoutFrac > 0 && heldoutFrac < 1)) throw new Error(`heldout fraction must be in (0, 1), got ${heldoutFrac}`);
  const h = Math.round(n * heldoutFrac);
  if (h < 1 || h > n - 1) throw new Error(`cannot split ${n} prompts with heldout fraction ${heldoutFrac}: each side needs a prompt`);
  const idx = shuffled(n, seededRng(seed));
  return { train: idx.slice(h).sort((a, b) => a - b), heldout: idx.slice(0, h).sort((a, b) => a - b) };
}

function shuffled(n: number, rng: Uniform): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** A sequence for the RM: prompt ‖ response, and whether the response is correct. */
export interface RmSequence {
  promptIds: ArrayLike<number>;
  ids: ArrayLike<number>;
  correct: boolean;
}

/** Padded token budget of one forward (rows × longest row), as the trainer's micro-batches. */
const MICRO_BATCH_TOKENS = 8192;

/**
 * Runs `fn` over micro-batches of `seqs` with the RM's input layout: ids and lengths, and for each row the offset of
 * its first action position (P − 1: the RM score read there has seen the prompt only, as in step-losses.ts).
 */
async function forEachMicroBatch(
  seqs: readonly RmSequence[],
  fn: (rows: readonly RmSequence[], ids: Int32Array, lengths: Int32Array, T: number) => Promise<void>,
): Promise<void> {
  for (let start = 0; start < seqs.length; ) {
    let end = start + 1;
    let T = seqs[start]!.promptIds.length + seqs[start]!.ids.length;
    while (end < seqs.length) {
      const L = Math.max(T, seqs[end]!.promptIds.length + seqs[end]!.ids.length);
      if (L * (end - start + 1) > MICRO_BATCH_TOKENS) break;
      T = L;
      end++;
    }
    const rows = seqs.slice(start, end);
    start = end;
    const ids = new Int32Array(rows.length * T);
    const lengths = new Int32Array(rows.length);
    rows.forEach((r, b) => {
      ids.set(Array.from(r.promptIds), b * T);
      ids.set(Array.from(r.ids), b * T + r.promptIds.length);
      lengths[b] = r.promptIds.length + r.ids.length;
    });
    await fn(rows, ids, lengths, T);
  }
}

function actionScores(score: Float64Array, r: RmSequence, b: number, T: number): Float64Array {
  const P = r.promptIds.length;
  return score.subarray(b * T + P - 1, b * T + P - 1 + r.ids.length);
}

/** The RM's sequence score of each sequence: the mean of its token scores (the logit its loss is taken on). */
export async function rmSequenceScores(rm: Qwen2Model, seqs: readonly RmSequence[]): Promise<number[]> {
  const out: number[] = [];
  await forEachMicroBatch(seqs, async (rows, ids, lengths, T) => {
    const score = (await rm.forwardAsync(ids, lengths, { saveForBackward: false })).score!;
    rows.forEach((r, b) => {
      const s = actionScores(score, r, b, T);
      let sum = 0;
      for (let t = 0; t < s.length; t++) sum += s[t]!;
      out.push(sum / s.length);
    });
  });
  return out;
}

export interface RmTrainOptions {
  steps: number;
  lr: number;
  /** Sequences per step (drawn without replacement, reshuffled each pass). */
  batchSize: number;
  seed: number;
  /** AdamW weight decay and gradient-norm clip (the trainer's defaults: 0.01 and 1). */
  weightDecay?: number;
  maxGradNorm?: number;
  onStep?: (step: number, loss: number) => void;
}

/**
 * Trains the RM on labelled sequences as the trainer's RM update does: loss = Σ BCE(mean score, label) / N_seq over
 * the step's sequences, one clipped AdamW step per batch at a constant learning rate. Returns each step's loss.
 */
export async function trainRm(rm: Qwen2Model, seqs: readonly RmSequence[], opts: RmTrainOptions): Promise<number[]> {
  if (seqs.length === 0) throw new Error('RM training: no sequences');
  if (rm.config.head !== 'score') throw new Error('RM training: the model has no score head');
  const opt = new AdamW(rm.backend, rm.tensors, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0.01 });
  const rng = seededRng(opts.seed);
  let order: number[] = [];
  const losses: number[] = [];
  for (let step = 1; step <= opts.steps; step++) {
    const batch: RmSequence[] = [];
    while (batch.length < Math.min(opts.batchSize, seqs.length)) {
      if (order.length === 0) order = shuffled(seqs.length, rng);
      batch.push(seqs[order.pop()!]!);
    }
    rm.zeroGrad();
    let loss = 0;
    await forEachMicroBatch(batch, async (rows, ids, lengths, T) => {
      const score = (await rm.forwardAsync(ids, lengths, { saveForBackward: true })).score!;
      const d = new Float64Array(rows.length * T);
      rows.forEach((r, b) => {
        const l = rmSequenceLoss(actionScores(score, r, b, T), r.correct ? 1 : 0);
        loss += l.loss / batch.length;
        const P = r.promptIds.length;
        for (let t = 0; t < l.dScore.length; t++) d[b * T + P - 1 + t] = l.dScore[t]! / batch.length;
      });
      rm.backward(null, d);
    });
    await clipGradNorm(rm.backend, rm.gradTensors.values(), opts.maxGradNorm ?? 1);
    opt.step(rm.gradTensors, opts.lr);
    rm.releaseActivations();
    losses.push(loss);
    opts.onStep?.(step, loss);
  }
  return losses;
}

/** AUC, or null when the samples hold only one class (nothing to rank). */
function aucOrNull(scores: readonly number[], labels: readonly boolean[]): number | null {
  const pos = labels.filter((x) => x).length;
  return pos === 0 || pos === labels.length ? null : rocAuc(scores, labels);
}

export interface ProbeAucs {
  samples: number;
  correct: number;
  rm_auc: number | null;
  policy_logp_auc: number | null;
}

/** The held-out AUCs of the RM score and of the policy's mean log-prob, overall and per style. */
export function probeAucs(
  rollouts: readonly ProbeRollout[],
  rmScores: readonly number[],
  styles: readonly (string | null)[],
): { overall: ProbeAucs; by_style: Record<string, ProbeAucs> } {
  const of = (keep: (i: number) => boolean): ProbeAucs => {
    const idx = rollouts.map((_, i) => i).filter(keep);
    const labels = idx.map((i) => rollouts[i]!.correct);
    return {
      samples: idx.length,
      correct: labels.filter((x) => x).length,
      rm_auc: aucOrNull(idx.map((i) => rmScores[i]!), labels),
      policy_logp_auc: aucOrNull(idx.map((i) => rollouts[i]!.meanLogp), labels),
    };
  };
  const names = [...new Set(styles.filter((s): s is string => s !== null))].sort();
  return {
    overall: of(() => true),
    by_style: Object.fromEntries(names.map((n) => [n, of((i) => styles[i] === n || styles[i] === null)])),
  };
}

/** Samples `samples` responses per question at temperature 1 and scores them with the rule verifier. */
export async function collectRollouts(
  policy: Qwen2Model,
  tok: Tokenizer,
  prompts: ReadonlyArray<{ question: string; gold: string }>,
  opts: { samples: number; maxNewTokens: number; seed: number },
): Promise<ProbeRollout[]> {
  const stopIds = [tok.imEndTokenId, tok.eosTokenId].filter((x): x is number => typeof x === 'number');
  const ids = prompts.map((p) => promptIds(tok, p.question));
  const reqs: GenerationRequest[] = ids.map((prompt, i) => ({
    prompt,
    n: opts.samples,
    params: { maxNewTokens: opts.maxNewTokens, temperature: 1, topP: 1, topK: 0, stopTokenIds: stopIds, stopStrings: [], seed: (opts.seed * 1000003 + i) >>> 0 },
  }));
  const gens = await generate(policy, reqs, { decode: (x) => tok.decode(x, { skipSpecialTokens: true }) });
  const out: ProbeRollout[] = [];
  gens.forEach((gs, i) => {
    for (const g of gs) {
      if (g.tokenIds.length === 0) continue; // nothing to score (maxNewTokens 0)
      if (g.logprobs.length !== g.tokenIds.length) throw new Error('rm-probe: the generator returned no log-probabilities');
      out.push({
        prompt: i,
        promptIds: ids[i]!,
        ids: g.tokenIds,
        text: g.text,
        correct: verifyResponse(g.text, prompts[i]!.gold).correct,
        meanLogp: g.logprobs.reduce((a, b) => a + b, 0) / g.logprobs.length,
      });
    }
  });
  return out;
}

export interface RmProbeOptions {
  /** Policy checkpoint directory (HF layout with its tokenizer). */
  model: string;
  /** Prompt file (JSONL with question/problem and gold_answer/answer, as the trainer reads). */
  data: string;
  /** Read only the first `limit` prompts. */
  limit?: number;
  samples: number;
  heldoutFrac: number;
  steps: number;
  lr: number;
  batchSize: number;
  maxNewTokens: number;
  seed: number;
  backend?: BackendName;
  threads?: number;
  onInfo?: (message: string) => void;
}

export interface RmProbeResult {
  model: string;
  data: string;
  style_kind: string;
  prompts: { train: number; heldout: number };
  train: { samples: number; correct: number; rm_auc: number | null };
  heldout: ProbeAucs;
  heldout_by_style: Record<string, ProbeAucs>;
  /** Mean RM loss of the first and the last tenth of the steps (log 2 = 0.693 is chance). */
  rm_loss_start: number;
  rm_loss_end: number;
  settings: { samples: number; heldout_frac: number; steps: number; lr: number; batch_size: number; max_new_tokens: number; seed: number };
  seconds: { rollouts: number; rm_training: number; scoring: number };
}

/** Runs the probe end to end (see the file header). */
export async function runRmProbe(o: RmProbeOptions): Promise<RmProbeResult> {
  const info = o.onInfo ?? (() => {});
  const prompts = loadPrompts(o.data, o.limit !== undefined ? { limit: o.limit } : {});
  const split = splitByPrompt(prompts.length, o.heldoutFrac, o.seed);
  const style = styleFor(prompts.map((p) => p.question));
  const tok = Tokenizer.load(o.model);
  const ck = loadCheckpoint(o.model);
  const backend: Backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
  try {
    let t = Date.now();
    const secs = (): number => {
      const s = (Date.now() - t) / 1000;
      t = Date.now();
      return Math.round(s * 10) / 10;
    };
    const policy = Qwen2Model.fromCheckpoint(ck, backend);
    const rollouts = await collectRollouts(policy, tok, prompts, { samples: o.samples, maxNewTokens: o.maxNewTokens, seed: o.seed });
    policy.dispose();
    const rolloutS = secs();
    const heldoutSet = new Set(split.heldout);
    const train = rollouts.filter((r) => !heldoutSet.has(r.prompt));
    const held = rollouts.filter((r) => heldoutSet.has(r.prompt));
    const trainCorrect = train.filter((r) => r.correct).length;
    info(`${rollouts.length} rollouts of ${prompts.length} prompts in ${rolloutS}s: train ${train.length} (${trainCorrect} correct), held-out ${held.length} (${held.filter((r) => r.correct).length} correct)`);
    if (trainCorrect === 0 || trainCorrect === train.length)
      throw new Error(`${o.data}: the ${train.length} train rollouts are all ${trainCorrect === 0 ? 'wrong' : 'correct'}: nothing for the RM to learn (more prompts or samples?)`);

    const rm = rmFromLm(ck, backend, 'zero', o.seed);
    const losses = await trainRm(rm, train, {
      steps: o.steps,
      lr: o.lr,
      batchSize: o.batchSize,
      seed: o.seed,
      onStep: (s, l) => {
        if (s % Math.max(1, Math.floor(o.steps / 10)) === 0 || s === o.steps) info(`RM step ${s}/${o.steps}: loss ${l.toFixed(4)}`);
      },
    });
    const trainS = secs();
    const heldScores = await rmSequenceScores(rm, held);
    const trainScores = await rmSequenceScores(rm, train);
    rm.dispose();
    const scoreS = secs();
    const aucs = probeAucs(held, heldScores, held.map((r) => style.of(prompts[r.prompt]!.question, r.text, r.correct)));
    const tenth = Math.max(1, Math.floor(losses.length / 10));
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      model: o.model,
      data: o.data,
      style_kind: style.name,
      prompts: { train: split.train.length, heldout: split.heldout.length },
      train: { samples: train.length, correct: trainCorrect, rm_auc: aucOrNull(trainScores, train.map((r) => r.correct)) },
      heldout: aucs.overall,
      heldout_by_style: aucs.by_style,
      rm_loss_start: mean(losses.slice(0, tenth)),
      rm_loss_end: mean(losses.slice(-tenth)),
      settings: { samples: o.samples, heldout_frac: o.heldoutFrac, steps: o.steps, lr: o.lr, batch_size: o.batchSize, max_new_tokens: o.maxNewTokens, seed: o.seed },
      seconds: { rollouts: rolloutS, rm_training: trainS, scoring: scoreS },
    };
  } finally {
    backend.dispose();
  }
}
