// Token sampling from one row of logits: greedy (argmax), temperature, top-k, top-p (nucleus), with a small seeded
// PRNG per sequence.
//
// Order of the filters (as in Hugging Face and vLLM): logits / temperature → keep the top k → keep the nucleus of the
// renormalised distribution (sorted by probability, descending; the minimal prefix whose mass reaches top_p) → draw.
// Ties are broken by the lower token id everywhere (argmax, top-k boundary, nucleus order), so results are exact and
// deterministic.
//
// Log-probabilities: `logprob` is always log softmax(raw logits)[token], i.e. under the model's own distribution at
// temperature 1 and before top-k / top-p. That is the quantity the RL loss and KL terms need (the policy's π(token));
// the truncated sampling distribution would make the ratio against a reference model depend on sampling settings.
//
// Randomness: each sequence owns a `Xoshiro128` (src/util/rng.ts) built from (seed, stream) — stream = the sample index within its request —
// and one draw is consumed per non-greedy token, so a seeded request reproduces regardless of how it is batched.

import type { Backend } from '../engine/backend.js';
import type { F32 } from '../engine/tensor.js';
import type { Xoshiro128 } from '../util/rng.js';
import { TokenSampler as Sampler, type Sampled, type SamplerSettings, isGreedy } from '../engine/sampling.js';

export {
  argmax,
  checkSamplerSettings,
  isGreedy,
  logSumExp,
  type FilteredDistribution,
  type Sampled,
  type SamplerSettings,
} from '../engine/sampling.js';

/** The reference sampler with the draw taken from a sequence's `Xoshiro128` (one draw per non-greedy token). */
export class TokenSampler extends Sampler {
  /** Picks the next token from `logits` (length = vocabulary). Greedy settings consume no randomness. */
  sample(logits: ArrayLike<number>, s: SamplerSettings, rng: Xoshiro128 | null): Sampled {
    if (isGreedy(s)) return this.sampleWith(logits, s, Number.NaN);
    if (rng === null) throw new Error('sample: non-greedy sampling needs an Rng');
    return this.sampleWith(logits, s, rng.nextDouble());
  }
}

/**
 * The next token of each sequence through the backend's `sampleTokens` op, straight from the logits on the backend:
 * sequence r samples from row rows[r] of `logits` [·, V] (row r when `rows` is null) with seqs[r]'s settings and one
 * draw from its `Xoshiro128` (none for greedy rows), the same draws `TokenSampler.sample` would take. Only the ids and the
 * log-probabilities are read back; the log-probability is the op's float32 one (the reference's, rounded to float32).
 */
export async function sampleNext(
  backend: Backend,
  logits: F32,
  V: number,
  seqs: ReadonlyArray<{ params: SamplerSettings; rng: Xoshiro128 | null }>,
  rows: readonly number[] | null = null,
): Promise<Sampled[]> {
  const M = seqs.length;
  if (M === 0) return [];
  const uniforms = new Float64Array(M);
  for (let r = 0; r < M; r++) {
    const { params, rng } = seqs[r]!;
    if (isGreedy(params)) uniforms[r] = Number.NaN;
    else if (rng === null) throw new Error('sample: non-greedy sampling needs an Rng');
    else uniforms[r] = rng.nextDouble();
  }
  // Several samples of one prompt share its row: gather them into one row each on the backend.
  const rowIds = rows === null ? null : backend.upload(Int32Array.from(rows));
  const z = rows === null ? logits : backend.empty([M, V]);
  const ids = backend.empty([M], 'i32');
  const lp = backend.empty([M]);
  try {
    if (rowIds !== null) backend.gatherRows(logits, rowIds, z, V);
    backend.sampleTokens(z, V, seqs.map((s) => s.params), uniforms, ids, lp);
    const tok = await backend.read(ids);
    const logp = await backend.read(lp);
    return Array.from({ length: M }, (_, r) => ({ token: tok[r]!, logprob: logp[r]! }));
  } finally {
    backend.free(lp);
    backend.free(ids);
    if (rowIds !== null) {
      backend.free(z);
      backend.free(rowIds);
    }
  }
}
