// Seeded test data and the error measure shared by the engine tests.

import assert from 'node:assert/strict';

/** A linear-congruential stream of floats in [-0.5, 0.5) from `seed`, and a filler for arrays. */
export function seededFloats(seed: number): { rand: () => number; fill: (a: Float32Array) => Float32Array } {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const fill = (a: Float32Array): Float32Array => {
    for (let i = 0; i < a.length; i++) a[i] = rand();
    return a;
  };
  return { rand, fill };
}

/** max |x - y| / (1 + max |y|). */
export function relErr(x: Float32Array, y: Float32Array): number {
  assert.equal(x.length, y.length);
  let e = 0;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    e = Math.max(e, Math.abs(x[i]! - y[i]!));
    m = Math.max(m, Math.abs(y[i]!));
  }
  return e / (1 + m);
}
