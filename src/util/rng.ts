// Seeded randomness: the one place that owns the project's pseudo-random generators and seed mixing. Nothing seeded
// uses Math.random.
//
// Two generators, on purpose:
// - `Mulberry32` (32-bit state, doubles with 32 random bits) draws everything that is not token sampling: the
//   synthetic task families, the order of the training data, `filter_trajectory`'s picks, SFT shuffling, random model
//   initialisation and the verifier's evaluation points. Committed data (data/*.jsonl, models/arith-sft) and seeded
//   results were made with these streams, so each caller keeps its own seeding: `new Mulberry32(seed)` scrambles the
//   seed first (the task generators'), `Mulberry32.fromState(s)` starts from `s` as is (everything else).
// - `Xoshiro128` (xoshiro128**, 128-bit state, doubles with 53 random bits) is the token sampler's: one independent
//   stream per (request seed, sample index), with seeds up to 2^53 keeping all their bits, so sample j of a seeded
//   request reproduces whatever else is in the batch. Seeded generations (tests, fixtures, the server's replies)
//   depend on it.

/** mulberry32: a small, fast 32-bit generator. */
export class Mulberry32 {
  private s: number;

  /** A generator seeded from `seed` through a multiplicative scramble (the synthetic task families' seeding). */
  constructor(seed: number) {
    this.s = (Math.imul(seed | 0, 0x9e3779b1) ^ 0x85ebca6b) >>> 0;
  }

  /** A generator whose 32-bit state starts at `state` as is. */
  static fromState(state: number): Mulberry32 {
    const g = new Mulberry32(0);
    g.s = state >>> 0;
    return g;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Uniform integer in [lo, hi] other than 0. */
  nonZero(lo: number, hi: number): number {
    for (;;) {
      const v = this.int(lo, hi);
      if (v !== 0) return v;
    }
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }
}

/** A uniform number in [0, 1). */
export type Uniform = () => number;

/** Uniforms in [0, 1) from mulberry32 started at `seed` as is: the same seed gives the same choices. */
export function seededRng(seed: number): Uniform {
  const g = Mulberry32.fromState(seed);
  return () => g.next();
}

/** xoshiro128** seeded by splitmix32 from (seed, stream). Doubles have 53 random bits. */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any finite number (integers up to 2^53 keep all their bits); `stream` separates sequences. */
  constructor(seed: number, stream = 0) {
    if (!Number.isFinite(seed)) throw new Error(`Xoshiro128: seed ${seed} is not finite`);
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

/** Mixes integers into one 32-bit seed (FNV-1a over 32-bit words, then a murmur finaliser). */
export function mixSeed(...parts: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    let v = Math.floor(p) >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    for (const w of [v, hi]) {
      v = w;
      for (let i = 0; i < 4; i++) {
        h ^= v & 0xff;
        h = Math.imul(h, 0x01000193) >>> 0;
        v >>>= 8;
      }
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
