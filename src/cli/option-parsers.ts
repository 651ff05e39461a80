// Commander argument parsers: every CLI command parses its options with these (one rule and one message per kind).
import { statSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { BACKEND_NAMES, isBackendName, type BackendName } from '../engine/index.js';

/** A non-negative integer (digits only, surrounding whitespace allowed). */
export function nonNegInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

/** A backend name of the registry (src/engine/index.ts). */
export function backendName(value: string): BackendName {
  if (!isBackendName(value)) throw new InvalidArgumentError(`expected one of ${BACKEND_NAMES.join(', ')}`);
  return value;
}

/** An integer >= 1 (digits only, surrounding whitespace allowed). */
export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** A finite number. */
export function finiteNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

/** A finite number >= 0. */
export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number');
  return n;
}

/** A finite number > 0. */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** A number in (0, 1]. */
export function probability(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new InvalidArgumentError('expected a number in (0, 1]');
  return n;
}

/**
 * Why `dir` cannot be a model directory (it does not exist, or is a file), or null when it is a directory. Checked
 * before loading, so that a mistyped path is reported as such rather than as the first file found missing in it.
 */
export function modelDirProblem(dir: string): string | null {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return `model directory not found: ${dir}`;
  }
  return isDir ? null : `not a directory: ${dir} (expected a model directory: config.json, model.safetensors, tokenizer.json)`;
}

/** A model directory that exists. */
export function modelDir(value: string): string {
  const problem = modelDirProblem(value);
  if (problem !== null) throw new InvalidArgumentError(problem);
  return value;
}

/** A model directory that exists, or a `random[:SPEC]` model (see `oreal bench decode`). */
export function modelDirOrRandom(value: string): string {
  return value === 'random' || value.startsWith('random:') ? value : modelDir(value);
}

/** A number strictly between 0 and 1. */
export function openFraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0 && n < 1)) throw new InvalidArgumentError('expected a number between 0 and 1 (exclusive)');
  return n;
}
