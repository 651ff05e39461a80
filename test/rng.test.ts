// The seeded generators keep their streams: committed data (data/*.jsonl, made by src/task/arith.ts), data order,
// trajectory filtering and seeded generations all depend on them. The expected values were taken from the
// implementations before they moved into src/util/rng.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededPermutation } from '../src/train/data.js';
import { Mulberry32, Xoshiro128, mixSeed, seededRng } from '../src/util/rng.js';

test('Mulberry32 with the task seeding: the same stream as before', () => {
  const g = new Mulberry32(42);
  assert.deepEqual([g.next(), g.int(-9, 9), g.nonZero(-3, 3), g.pick(['x', 'y', 'z']), g.bool(), g.next()], [0.3359855841845274, -3, 2, 'z', true, 0.3268141900189221]);
});

test('seededRng (mulberry32 from the seed as is) and the data permutation: the same streams as before', () => {
  const u = seededRng(42);
  assert.deepEqual(
    Array.from({ length: 6 }, () => u()),
    [0.6011037519201636, 0.44829055899754167, 0.8524657934904099, 0.6697340414393693, 0.17481389874592423, 0.5265925421845168],
  );
  assert.deepEqual(seededPermutation(17, 42), [14, 4, 0, 13, 8, 5, 1, 16, 15, 11, 3, 6, 2, 9, 12, 7, 10]);
});

test('Xoshiro128 per (seed, stream): the same streams as before', () => {
  const a = new Xoshiro128(1234, 0);
  assert.deepEqual([a.nextU32(), a.nextDouble(), a.nextU32(), a.nextDouble()], [710145427, 0.4221597431547741, 3765762468, 0.7663249248000545]);
  const b = new Xoshiro128(1234, 5);
  assert.deepEqual([b.nextU32(), b.nextDouble(), b.nextU32(), b.nextDouble()], [2542751389, 0.9746122084851391, 241557566, 0.6178197875287451]);
  assert.throws(() => new Xoshiro128(Number.NaN), /not finite/);
});

test('mixSeed: the same seeds as before', () => {
  assert.deepEqual([mixSeed(7), mixSeed(7, 1, 2), mixSeed(7, 0x5eed, 3), mixSeed(2 ** 33 + 7, 7)], [2660059495, 1221161818, 924644255, 2066986764]);
});
