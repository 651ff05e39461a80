// `oreal debug`: numerical probes of the model, for checking against other implementations.
//
//   oreal debug grad --model DIR --tokens FILE.json [--json] [--backend wasm|js]
//
// FILE holds {"input_ids": [[...], ...]} (rows of equal length). Prints the mean next-token cross-entropy over all
// positions and the L2 norm of every parameter's gradient, by HF tensor name; with --json as one JSON line
// {"loss": ..., "grad_norms": {...}}.

import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { openBackend, BACKEND_NAMES, type Backend, type BackendName } from '../engine/index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Qwen2Model, crossEntropyLoss } from '../model/qwen2.js';
import { registerDebugLoss } from './debug-loss.js';
import { modelDir, positiveInt } from './option-parsers.js';

interface GradOptions {
  model: string;
  tokens: string;
  json?: boolean;
  backend?: BackendName;
  threads?: number;
}

export interface GradReport {
  loss: number;
  grad_norms: Record<string, number>;
}

/** Reads {"input_ids": [[...], ...]}; every row must have the same non-zero length of integer ids. */
export function readTokensFile(file: string): { ids: Int32Array; B: number; T: number } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const rows = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['input_ids'] : undefined;
  if (!Array.isArray(rows) || rows.length === 0) throw new Error(`${file}: field "input_ids": expected a non-empty array of rows`);
  const T = Array.isArray(rows[0]) ? rows[0].length : 0;
  if (T === 0) throw new Error(`${file}: field "input_ids[0]": expected a non-empty array of token ids`);
  const ids = new Int32Array(rows.length * T);
  rows.forEach((row: unknown, b: number) => {
    if (!Array.isArray(row) || row.length !== T)
      throw new Error(`${file}: field "input_ids[${b}]": expected ${T} token ids (rows must have equal length)`);
    row.forEach((v: unknown, t: number) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
        throw new Error(`${file}: field "input_ids[${b}][${t}]": expected a non-negative integer, got ${JSON.stringify(v)}`);
      ids[b * T + t] = v;
    });
  });
  return { ids, B: rows.length, T };
}

/** Loads a HF Qwen2 checkpoint directory into a model on `backend`. */
export function loadModel(dir: string, backend: Backend): Qwen2Model {
  return Qwen2Model.fromCheckpoint(loadCheckpoint(dir), backend);
}

/** Loss and per-parameter gradient norms of one full-batch forward + backward. */
export async function debugGrad(model: Qwen2Model, ids: Int32Array, B: number, T: number): Promise<GradReport> {
  model.zeroGrad();
  const lengths = new Int32Array(B).fill(T);
  const { loss } = await crossEntropyLoss(model, ids, lengths);
  return { loss, grad_norms: await model.gradNorms() };
}

export function registerDebug(program: Command): void {
  const debug = program.command('debug').description('numerical probes of the model (loss, gradients)');
  debug
    .command('grad')
    .description('mean next-token cross-entropy and per-parameter gradient norms for a batch of token ids')
    .requiredOption('--model <dir>', 'Hugging Face checkpoint directory (config.json + safetensors)', modelDir)
    .requiredOption('--tokens <file>', 'JSON file {"input_ids": [[...], ...]} with rows of equal length')
    .option('--json', 'print one JSON line {"loss", "grad_norms"}')
    .addOption(new Option('--backend <name>', 'compute backend (default: $OREAL_BACKEND, else blas if built, else wasm)').choices([...BACKEND_NAMES]))
    .option('--threads <n>', 'kernel threads (wasm)', positiveInt)
    .action(async (opts: GradOptions) => {
      const { ids, B, T } = readTokensFile(opts.tokens);
      const backend = await openBackend(opts.backend, opts.threads !== undefined ? { threads: opts.threads } : {});
      try {
        const model = loadModel(opts.model, backend);
        const report = await debugGrad(model, ids, B, T);
        if (opts.json) {
          process.stdout.write(JSON.stringify(report) + '\n');
        } else {
          process.stdout.write(`loss ${report.loss}\n`);
          const w = Math.max(...Object.keys(report.grad_norms).map((k) => k.length));
          for (const [k, v] of Object.entries(report.grad_norms)) process.stdout.write(`${k.padEnd(w)}  ${v.toExponential(6)}\n`);
        }
      } finally {
        backend.dispose();
      }
    });
  registerDebugLoss(debug);
}
