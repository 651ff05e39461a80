// Token sampling from rows of logits — the reference implementation behind the `sampleTokens` op of the engine
// contract: greedy (argmax), temperature, top-k, top-p (nucleus), each draw from one uniform number given by the
// caller (the sequence's seeded `Xoshiro128` from src/util/rng.ts, drawn on the host so a seeded request gives the
// same tokens whatever the batch or backend).
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
// Randomness: one uniform in [0, 1) per non-greedy token (53 random bits); greedy rows use none.

/** What the sampler needs from SamplingParams. */
export interface SamplerSettings {
  /** 0 means greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 or negative = off. */
  topK: number;
  greedy?: boolean;
}

/** Throws on settings the sampler cannot honour (negative or non-finite temperature, top_p outside (0, 1]). */
export function checkSamplerSettings(s: SamplerSettings): void {
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) throw new Error(`temperature ${s.temperature}: expected a number >= 0`);
  if (!(s.topP > 0 && s.topP <= 1)) throw new Error(`top_p ${s.topP}: expected a number in (0, 1]`);
  if (!Number.isInteger(s.topK)) throw new Error(`top_k ${s.topK}: expected an integer (0 or negative = off)`);
}

export function isGreedy(s: SamplerSettings): boolean {
  return s.greedy === true || s.temperature === 0;
}

/** Index of the largest entry (the lowest index among ties); NaNs are never chosen unless all are NaN. */
export function argmax(logits: ArrayLike<number>, n = logits.length): number {
  let best = 0;
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    const z = logits[i]!;
    if (z > m) {
      m = z;
      best = i;
    }
  }
  return best;
}

/** log Σ exp(logits) in float64. */
export function logSumExp(logits: ArrayLike<number>, n = logits.length): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > m) m = logits[i]!;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(logits[i]! - m);
  return m + Math.log(s);
}

/** A sampled token and its log-probability under softmax(raw logits). */
export interface Sampled {
  token: number;
  logprob: number;
}

/** The distribution actually sampled from: token ids (in sampling order) and their probabilities (sum 1). */
export interface FilteredDistribution {
  ids: Int32Array;
  probs: Float64Array;
}

/**
 * Samples tokens from rows of logits. Holds scratch buffers sized to the vocabulary, so one instance serves any number
 * of sequences (not concurrently).
 */
export class TokenSampler {
  private w: Float64Array; // unnormalised probabilities exp((z − max) / T)
  private idx: Int32Array; // candidate ids
  private sel: Float64Array; // selection scratch

  constructor(vocabSize = 0) {
    this.w = new Float64Array(vocabSize);
    this.idx = new Int32Array(vocabSize);
    this.sel = new Float64Array(vocabSize);
  }

  private ensure(V: number): void {
    if (this.w.length >= V) return;
    this.w = new Float64Array(V);
    this.idx = new Int32Array(V);
    this.sel = new Float64Array(V);
  }

  /**
   * Picks the next token from `logits` (length = vocabulary) with the uniform `u` in [0, 1) (ignored, and may be
   * NaN, for greedy settings).
   */
  sampleWith(logits: ArrayLike<number>, s: SamplerSettings, u: number): Sampled {
    const V = logits.length;
    if (V === 0) throw new Error('sample: empty logits');
    if (isGreedy(s)) {
      // O(V): one pass for the maximum and its (lowest) index, one for Σ exp (the log-probability).
      let best = 0;
      let m = -Infinity;
      for (let i = 0; i < V; i++) {
        const z = logits[i]!;
        if (z > m) {
          m = z;
          best = i;
        }
      }
      if (m === -Infinity) return { token: best, logprob: logits[best]! - logSumExp(logits, V) };
      let se = 0;
      for (let i = 0; i < V; i++) se += Math.exp(logits[i]! - m);
      return { token: best, logprob: logits[best]! - (m + Math.log(se)) };
    }
    const lse = logSumExp(logits, V);
    const token = this.pick(logits, s, u);
    return { token, logprob: logits[token]! - lse };
  }

  /** The token `sampleWith` picks, without its log-probability (greedy: one pass, no exp). */
  pick(logits: ArrayLike<number>, s: SamplerSettings, u: number): number {
    const V = logits.length;
    if (V === 0) throw new Error('sample: empty logits');
    if (isGreedy(s)) return argmax(logits, V);
    if (!(u >= 0 && u < 1)) throw new Error(`sample: non-greedy sampling needs a uniform in [0, 1), got ${u}`);
    const d = this.filtered(logits, s);
    let token = d.ids[d.ids.length - 1]!;
    for (let i = 0; i < d.ids.length; i++) {
      u -= d.probs[i]!;
      if (u < 0) {
        token = d.ids[i]!;
        break;
      }
    }
    return token;
  }

  /**
   * The distribution `sample` draws from for non-greedy settings (temperature → top-k → top-p), with its tokens in
   * draw order: by id when no filter is active, else by probability descending (id ascending among ties).
   */
  filtered(logits: ArrayLike<number>, s: SamplerSettings): FilteredDistribution {
    checkSamplerSettings(s);
    const V = logits.length;
    this.ensure(V);
    const T = s.temperature > 0 ? s.temperature : 1;
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (logits[i]! > m) m = logits[i]!;
    if (!Number.isFinite(m)) throw new Error(`sample: logits have no finite maximum (${m})`);
    const w = this.w;
    for (let i = 0; i < V; i++) w[i] = Math.exp((logits[i]! - m) / T);
    const useK = s.topK > 0 && s.topK < V;
    const useP = s.topP < 1;
    if (!useK && !useP) {
      let sum = 0;
      for (let i = 0; i < V; i++) sum += w[i]!;
      const ids = new Int32Array(V);
      const probs = new Float64Array(V);
      for (let i = 0; i < V; i++) {
        ids[i] = i;
        probs[i] = w[i]! / sum;
      }
      return { ids, probs };
    }
    // Candidates: a superset of the kept tokens that is a prefix of the descending order.
    let n: number;
    if (useK) n = this.topKCandidates(V, s.topK);
    else n = this.nucleusCandidates(V, s.topP);
    const cand = Array.from(this.idx.subarray(0, n));
    cand.sort((a, b) => w[b]! - w[a]! || a - b);
    if (useK && cand.length > s.topK) cand.length = s.topK;
    // Mass of the distribution the nucleus is taken from: the top k, or the whole vocabulary.
    let mass = 0;
    if (useK) for (const i of cand) mass += w[i]!;
    else for (let i = 0; i < V; i++) mass += w[i]!;
    let keep = cand.length;
    if (useP) {
      // Minimal prefix whose mass reaches top_p (a relative 1e-12 slack absorbs rounding of the running sum).
      const target = s.topP * mass * (1 - 1e-12);
      let cum = 0;
      for (let j = 0; j < cand.length; j++) {
        cum += w[cand[j]!]!;
        if (cum >= target) {
          keep = j + 1;
          break;
        }
      }
    }
    let kept = 0;
    for (let j = 0; j < keep; j++) kept += w[cand[j]!]!;
    const ids = new Int32Array(keep);
    const probs = new Float64Array(keep);
    for (let j = 0; j < keep; j++) {
      ids[j] = cand[j]!;
      probs[j] = w[cand[j]!]! / kept;
    }
    return { ids, probs };
  }

  /** Puts every id whose weight is ≥ the k-th largest weight into idx[0 …); returns their count (≥ k). */
  private topKCandidates(V: number, k: number): number {
    const w = this.w;
    const sel = this.sel;
    sel.set(w.subarray(0, V));
    const kth = quickselectDesc(sel, V, k - 1);
    let n = 0;
    for (let i = 0; i < V; i++) if (w[i]! >= kth) this.idx[n++] = i;
    return n;
  }

  /**
   * Puts every id with weight ≥ t into idx[0 …) for a threshold t lowered until their mass reaches top_p of the total:
   * the set is then a prefix of the descending order that contains the nucleus. Returns the count.
   */
  private nucleusCandidates(V: number, p: number): number {
    const w = this.w;
    let total = 0;
    for (let i = 0; i < V; i++) total += w[i]!;
    // The maximum weight is exactly 1 (exp(0)).
    for (let t = 1 / 64; ; t /= 64) {
      let n = 0;
      let mass = 0;
      const all = t < 1e-300;
      for (let i = 0; i < V; i++) {
        const x = w[i]!;
        if (all || x >= t) {
          this.idx[n++] = i;
          mass += x;
        }
      }
      if (all || mass >= p * total) return n;
    }
  }
}

/** The (k+1)-th largest value of a[0 … n) (k is 0-based), reordering `a`. Average O(n). */
function quickselectDesc(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    // Median of three as pivot.
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x > y ? (y > z ? y : x > z ? z : x) : x > z ? x : y > z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}
