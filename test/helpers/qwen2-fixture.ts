// Reads the PyTorch reference fixtures of test/fixtures/qwen2 (made by scripts/torch_qwen2_reference.py): the JSON
// record (config, inputs, PyTorch's loss and gradient norms) and the float32 weights from the .bin beside it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const QWEN2_FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'qwen2');

export interface Qwen2FixtureRecord {
  name: string;
  config: Record<string, unknown> & { rope_theta: number };
  input_ids: number[][];
  lengths: number[];
  tensors: Array<{ name: string; shape: number[] }>;
  loss?: number;
  grad_norms?: Record<string, number>;
}

/** The fixture's record and its weights by HF tensor name (views into one buffer). */
export function readQwen2Fixture(name: string): { fx: Qwen2FixtureRecord; tensors: Map<string, Float32Array> } {
  const fx = JSON.parse(readFileSync(path.join(QWEN2_FIXTURES, name + '.json'), 'utf8')) as Qwen2FixtureRecord;
  const buf = readFileSync(path.join(QWEN2_FIXTURES, name + '.bin'));
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const tensors = new Map<string, Float32Array>();
  let off = 0;
  for (const t of fx.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    tensors.set(t.name, all.subarray(off, off + n));
    off += n;
  }
  assert.equal(off, all.length, `${name}.bin holds ${all.length} floats, the record names ${off}`);
  return { fx, tensors };
}
