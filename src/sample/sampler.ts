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
// Randomness: each sequence owns an `Rng` built from (seed, stream) — stream = the sample index within its request —
// and one draw is consumed per non-greedy token, so a seeded request reproduces regardless of how it is batched.

import type { Backend } from '../engine/backend.js';
import type { F32 } from '../engine/tensor.js';
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

/** xoshiro128** seeded by splitmix32 from (seed, stream). Doubles have 53 random bits. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any finite number (integers up to 2^53 keep all their bits); `stream` separates sequences. */
  constructor(seed: number, stream = 0) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed ${seed} is not finite`);
    const lo = Math.trunc(seed) >>> 0;
    const hi = Math.trunc(Math.trunc(seed) / 4294967296) >>> 0;
    let x = (lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca77)) >>> 0;
    x = (x + Math.imul(hi ^ 0x7f4a7c15, 0x27d4eb2f)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    // Fold the stream in again after the first round so that (seed, stream) pairs do not alias.
    next();
    x = (x ^ Math.imul((stream >>> 0) + 0x632be5ab, 0x9e3779b1)) >>> 0;
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The reference sampler with the draw taken from a sequence's `Rng` (one draw per non-greedy token). */
export class TokenSampler extends Sampler {
  /** Picks the next token from `logits` (length = vocabulary). Greedy settings consume no randomness. */
  sample(logits: ArrayLike<number>, s: SamplerSettings, rng: Rng | null): Sampled {
    if (isGreedy(s)) return this.sampleWith(logits, s, Number.NaN);
    if (rng === null) throw new Error('sample: non-greedy sampling needs an Rng');
    return this.sampleWith(logits, s, rng.nextDouble());
  }
}

/**
 * The next token of each sequence through the backend's `sampleTokens` op, straight from the logits on the backend:
 * sequence r samples from row rows[r] of `logits` [·, V] (row r when `rows` is null) with seqs[r]'s settings and one
 * draw from its `Rng` (none for greedy rows), the same draws `TokenSampler.sample` would take. Only the ids and the
 * log-probabilities are read back; the log-probability is the op's float32 one (the reference's, rounded to float32).
 */
export async function sampleNext(
  backend: Backend,
  logits: F32,
  V: number,
  seqs: ReadonlyArray<{ params: SamplerSettings; rng: Rng | null }>,
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
