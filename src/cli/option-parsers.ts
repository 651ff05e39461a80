// Commander argument parsers shared by CLI commands (`oreal generate`, `oreal serve`).
import { InvalidArgumentError } from 'commander';

/** A non-negative integer (digits only, surrounding whitespace allowed). */
export function nonNegInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

/** An integer >= 1. */
export function positiveInt(value: string): number {
  const n = nonNegInt(value);
  if (n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
