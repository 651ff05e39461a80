// Exact rational arithmetic on BigInt with hard size caps, for the answer verifier.
// Values are kept with a positive denominator; they are reduced by gcd only while small, so that
// huge operands never trigger a slow Euclid loop. Equality is decided by cross-multiplication.

/** Thrown when a value would exceed the size caps; callers treat it as "too large to compare". */
export class TooBigError extends Error {
  constructor(what: string) {
    super(`too large: ${what}`);
    this.name = 'TooBigError';
  }
}

export interface Rational {
  readonly n: bigint;
  /** Always > 0. */
  readonly d: bigint;
}

/** Maximum bit length of a numerator or denominator. */
export const MAX_BITS = 100_000;
/** Reduce by gcd only when both parts are below this many bits. */
const REDUCE_BITS = 4096;

export function bitLength(x: bigint): number {
  if (x < 0n) x = -x;
  if (x === 0n) return 0;
  const h = x.toString(16);
  return (h.length - 1) * 4 + (32 - Math.clz32(parseInt(h[0] as string, 16)));
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

export function rat(n: bigint, d: bigint = 1n): Rational {
  if (d === 0n) throw new RangeError('division by zero');
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const bn = bitLength(n);
  const bd = bitLength(d);
  if (bn > MAX_BITS || bd > MAX_BITS) throw new TooBigError('rational');
  if (d !== 1n && bn < REDUCE_BITS && bd < REDUCE_BITS) {
    const g = gcd(n, d);
    if (g > 1n) {
      n /= g;
      d /= g;
    }
  }
  return { n, d };
}

export const ZERO = rat(0n);
export const ONE = rat(1n);

export function fromInt(x: number | bigint): Rational {
  return rat(BigInt(x));
}

/** Parse a plain decimal literal ("12", "0.125", ".5", "3.") exactly. */
export function fromDecimal(s: string): Rational {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) throw new SyntaxError(`bad decimal ${s}`);
  const ip = m[1] || '0';
  const fp = m[2] ?? '';
  if (ip.length + fp.length > 5000) throw new TooBigError('decimal literal');
  return rat(BigInt(ip + fp), 10n ** BigInt(fp.length));
}

/** 0.1\overline{6}: nonrepeating part "0.1" (any decimal), repeating digit string "6". */
export function fromRepeating(prefix: string, rep: string): Rational {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(prefix);
  if (!m || !/^\d+$/.test(rep)) throw new SyntaxError('bad repeating decimal');
  const fp = m[2] ?? '';
  if (prefix.length + rep.length > 2000) throw new TooBigError('decimal literal');
  const base = fromDecimal(prefix === '' ? '0' : prefix);
  // rep / (10^len(fp) * (10^len(rep) - 1))
  const den = 10n ** BigInt(fp.length) * (10n ** BigInt(rep.length) - 1n);
  return add(base, rat(BigInt(rep), den));
}

export function add(a: Rational, b: Rational): Rational {
  if (a.d === b.d) return rat(a.n + b.n, a.d);
  return rat(a.n * b.d + b.n * a.d, a.d * b.d);
}
export function neg(a: Rational): Rational {
  return { n: -a.n, d: a.d };
}
export function sub(a: Rational, b: Rational): Rational {
  return add(a, neg(b));
}
export function mul(a: Rational, b: Rational): Rational {
  return rat(a.n * b.n, a.d * b.d);
}
/** Returns null on division by zero. */
export function div(a: Rational, b: Rational): Rational | null {
  if (b.n === 0n) return null;
  return rat(a.n * b.d, a.d * b.n);
}
export function eq(a: Rational, b: Rational): boolean {
  return a.n * b.d === b.n * a.d;
}
export function sign(a: Rational): number {
  return a.n > 0n ? 1 : a.n < 0n ? -1 : 0;
}
export function cmp(a: Rational, b: Rational): number {
  const x = a.n * b.d - b.n * a.d;
  return x > 0n ? 1 : x < 0n ? -1 : 0;
}
export function isInteger(a: Rational): boolean {
  return a.d === 1n || a.n % a.d === 0n;
}
export function toBigInt(a: Rational): bigint {
  return a.n / a.d;
}
export function abs(a: Rational): Rational {
  return a.n < 0n ? neg(a) : a;
}
export function floor(a: Rational): Rational {
  let q = a.n / a.d;
  if (a.n < 0n && q * a.d !== a.n) q -= 1n;
  return rat(q);
}
export function ceil(a: Rational): Rational {
  return neg(floor(neg(a)));
}

/** a^k for integer k; throws TooBigError when the result would exceed the caps. */
export function powInt(a: Rational, k: bigint): Rational | null {
  if (k === 0n) return ONE;
  if (a.n === 0n) return k > 0n ? ZERO : null;
  const absA = a.n < 0n ? -a.n : a.n;
  if (absA === a.d) {
    // ±1
    return a.n < 0n && k % 2n !== 0n ? rat(-1n) : ONE;
  }
  const kk = k < 0n ? -k : k;
  const bits = Math.max(bitLength(a.n), bitLength(a.d));
  if (kk > BigInt(MAX_BITS) || Number(kk) * Math.max(bits - 1, 1) > MAX_BITS) throw new TooBigError('power');
  const r = rat(a.n ** kk, a.d ** kk);
  return k < 0n ? div(ONE, r) : r;
}

/** Exact integer k-th root of a non-negative bigint, or null if not a perfect power. */
export function intRoot(x: bigint, k: number): bigint | null {
  if (x < 0n) return null;
  if (x < 2n) return x;
  if (k === 1) return x;
  const bits = bitLength(x);
  // Newton iteration from an over-estimate.
  let r = 1n << BigInt(Math.ceil(bits / k) + 1);
  const K = BigInt(k);
  for (let iter = 0; iter < 10_000; iter++) {
    const next = ((K - 1n) * r + x / r ** (K - 1n)) / K;
    if (next >= r) break;
    r = next;
  }
  return r ** K === x ? r : null;
}

/** Exact k-th root of a rational (real; odd roots of negatives allowed), or null. */
export function root(a: Rational, k: number): Rational | null {
  if (k < 1 || k > 64) return null;
  let sgn = 1n;
  let n = a.n;
  if (n < 0n) {
    if (k % 2 === 0) return null;
    sgn = -1n;
    n = -n;
  }
  // reduce first so perfect powers are recognised
  const g = bitLength(n) < 20000 && bitLength(a.d) < 20000 ? gcd(n, a.d) : 1n;
  const rn = intRoot(n / g, k);
  if (rn === null) return null;
  const rd = intRoot(a.d / g, k);
  if (rd === null) return null;
  return rat(sgn * rn, rd);
}

/** Convert to a double without overflow in the intermediate step (may still be ±Infinity or 0). */
export function toNumber(a: Rational): number {
  const bn = bitLength(a.n);
  const bd = bitLength(a.d);
  if (bn < 1000 && bd < 1000) return Number(a.n) / Number(a.d);
  // shift both so the larger is ~ 900 bits, keep the exponent difference separately
  const sn = Math.max(0, bn - 900);
  const sd = Math.max(0, bd - 900);
  const mn = Number(a.n >> BigInt(sn));
  const md = Number(a.d >> BigInt(sd));
  const e = sn - sd;
  if (e > 2100) return mn > 0 ? Infinity : -Infinity;
  if (e < -2100) return 0;
  return (mn / md) * Math.pow(2, e);
}

export function toString(a: Rational): string {
  return a.d === 1n ? a.n.toString() : `${a.n}/${a.d}`;
}

/** n! for 0 <= n <= MAX_FACTORIAL, otherwise TooBigError. */
export const MAX_FACTORIAL = 5000;
export function factorial(n: bigint): Rational {
  if (n < 0n) throw new RangeError('negative factorial');
  if (n > BigInt(MAX_FACTORIAL)) throw new TooBigError('factorial');
  let r = 1n;
  for (let i = 2n; i <= n; i++) r *= i;
  return rat(r);
}

export function binomial(n: bigint, k: bigint): Rational {
  if (k < 0n || n < 0n || k > n) return ZERO;
  if (k > n - k) k = n - k;
  if (k > BigInt(MAX_FACTORIAL) || n > 1_000_000n) throw new TooBigError('binomial');
  let r = 1n;
  for (let i = 1n; i <= k; i++) r = (r * (n - k + i)) / i;
  return rat(r);
}
