// `oreal bench decode`: greedy KV-cache generation speed on random prompts.
//
//   oreal bench decode --model DIR|random:SPEC [--batch 16] [--prompt-len 32] [--new-tokens 96] [--runs 5]
//                      [--backend wasm|blas|js] [--threads N] [--json | --serve]
//
// tokens_per_s = batch · new_tokens / wall time of one generate() call (prefill included), median over the timed runs
// after one warm-up run; decode_tokens_per_s counts the decode steps alone. Numbers on a shared machine are noisy.
// `random:layers=4,hidden=256,heads=4,kv-heads=2,intermediate=1024,vocab=512` builds a random Qwen2 model without
// files (other keys: head-dim, tied=0|1, bias=0|1, seed; missing keys take those defaults).
// Until `bench decode` is reachable from the main CLI it also runs standalone:
// `node dist/src/cli/bench-decode.js --model random:... --json` (same options).
// scripts/torch_decode_bench.py times the same loop in PyTorch and prints both numbers and their ratio.
import { readSync, realpathSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { openBackend, BACKEND_NAMES, type Backend, type BackendName } from '../engine/index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Qwen2Model, type Qwen2Config } from '../model/qwen2.js';
import { generate, newGenerateStats } from '../sample/generate.js';
import { KvDecoder } from '../sample/kv-decoder.js';
import { modelDirOrRandom, positiveInt } from './option-parsers.js';
import { Xoshiro128 } from '../util/rng.js';
import type { GenerationRequest } from '../sample/types.js';

const RANDOM_DEFAULTS = { layers: 4, hidden: 256, heads: 4, 'kv-heads': 2, intermediate: 1024, vocab: 512 };

/** Parses `random:key=value,...` into a config and a seed; throws naming the bad key. */
export function parseRandomModelSpec(spec: string): { config: Qwen2Config; seed: number } {
  if (!spec.startsWith('random:') && spec !== 'random') throw new Error(`not a random model spec: ${spec}`);
  const v: Record<string, number> = { ...RANDOM_DEFAULTS, tied: 1, bias: 1, seed: 0 };
  const body = spec.slice('random:'.length);
  for (const part of body.split(',').filter((s) => s.trim() !== '')) {
    const m = /^\s*([a-z-]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`--model ${spec}: "${part}" is not key=integer`);
    const key = m[1]!;
    if (!(key in v) && key !== 'head-dim') {
      throw new Error(`--model ${spec}: unknown key "${key}" (known: ${[...Object.keys(v), 'head-dim'].join(', ')})`);
    }
    v[key] = Number(m[2]);
  }
  const config: Qwen2Config = {
    vocabSize: v['vocab']!,
    hiddenSize: v['hidden']!,
    intermediateSize: v['intermediate']!,
    numHiddenLayers: v['layers']!,
    numAttentionHeads: v['heads']!,
    numKeyValueHeads: v['kv-heads']!,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: v['tied'] !== 0,
    attentionBias: v['bias'] !== 0,
    head: 'lm',
  };
  if (v['head-dim'] !== undefined) config.headDim = v['head-dim'];
  return { config, seed: v['seed']! };
}

/** A model from a checkpoint directory, or a random one from `random:SPEC`. */
export function loadModelSpec(spec: string, backend: Backend): Qwen2Model {
  if (spec === 'random' || spec.startsWith('random:')) {
    const { config, seed } = parseRandomModelSpec(spec);
    return Qwen2Model.random(config, backend, seed);
  }
  return Qwen2Model.fromCheckpoint(loadCheckpoint(spec), backend);
}

export interface DecodeBenchOptions {
  batch: number;
  promptLen: number;
  newTokens: number;
  /** Timed runs after one warm-up (default 5). */
  runs?: number;
  seed?: number;
}

export interface DecodeBenchResult {
  /** Median generated tokens per second, prefill included. */
  tokens_per_s: number;
  /** Median tokens per second of the decode steps alone. */
  decode_tokens_per_s: number;
  /** Median prefill seconds. */
  prefill_s: number;
  runs: number;
  batch: number;
  prompt_len: number;
  new_tokens: number;
  backend: string;
  /** The device's name (device backends). */
  device?: string;
  threads: number;
  /** A device backend's host-side work per generated token step (prefill counted as one step). */
  device_host?: {
    dispatches_per_step: number;
    /** Bind groups made in the timed runs (0 once every step binds what an earlier one did). */
    bind_groups_made: number;
    /** Wall time not spent waiting for the device, per step: encoding, sampling bookkeeping, the host's share. */
    host_ms_per_step: number;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The `batch` random greedy requests of one benchmark. */
function benchRequests(model: Qwen2Model, o: DecodeBenchOptions): GenerationRequest[] {
  const rng = new Xoshiro128(o.seed ?? 1234, 0);
  const V = model.config.vocabSize;
  const requests: GenerationRequest[] = [];
  for (let b = 0; b < o.batch; b++) {
    const prompt: number[] = [];
    for (let t = 0; t < o.promptLen; t++) prompt.push(rng.nextU32() % V);
    requests.push({
      prompt,
      n: 1,
      params: { maxNewTokens: o.newTokens, temperature: 0, topP: 1, topK: 0, stopTokenIds: [], stopStrings: [], greedy: true },
    });
  }
  return requests;
}

/** One timed generate() call: tokens/s with prefill, tokens/s of the decode steps alone, prefill seconds. */
async function benchOnce(model: Qwen2Model, decoder: KvDecoder, requests: GenerationRequest[], o: DecodeBenchOptions): Promise<[number, number, number]> {
  const stats = newGenerateStats();
  const t0 = performance.now();
  await generate(model, requests, { decoder, stats, maxBatch: o.batch });
  const dt = (performance.now() - t0) / 1000;
  const dec = stats.decodeSeconds > 0 ? (stats.generatedTokens - o.batch) / stats.decodeSeconds : 0;
  return [(o.batch * o.newTokens) / dt, dec, stats.prefillSeconds];
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/** Times greedy generation of `newTokens` tokens for `batch` random prompts of `promptLen` tokens. */
export async function benchDecode(model: Qwen2Model, o: DecodeBenchOptions): Promise<DecodeBenchResult> {
  const runs = o.runs ?? 5;
  const requests = benchRequests(model, o);
  const decoder = new KvDecoder(model);
  const total: number[] = [];
  const dec: number[] = [];
  const pre: number[] = [];
  let c0 = model.backend.counters?.();
  let t0 = 0;
  for (let r = 0; r < runs + 1; r++) {
    if (r === 1) [c0, t0] = [model.backend.counters?.(), performance.now()];
    const [t, d, p] = await benchOnce(model, decoder, requests, o);
    if (r === 0) continue; // warm-up
    total.push(t);
    dec.push(d);
    pre.push(p);
  }
  const wall = (performance.now() - t0) / 1000;
  const c1 = model.backend.counters?.();
  decoder.releaseBuffers();
  // A device backend's host side per step (prefill counted as one): what a fast CPU can win back on a GPU.
  const steps = runs * o.newTokens;
  const device_host =
    c0 !== undefined && c1 !== undefined
      ? {
          dispatches_per_step: round((c1.dispatches - c0.dispatches) / steps, 1),
          bind_groups_made: c1.bindGroupsMade - c0.bindGroupsMade,
          host_ms_per_step: round(((wall - (c1.waitSeconds - c0.waitSeconds)) * 1000) / steps, 3),
        }
      : undefined;
  return {
    tokens_per_s: round(median(total), 1),
    decode_tokens_per_s: round(median(dec), 1),
    prefill_s: round(median(pre), 4),
    runs,
    batch: o.batch,
    prompt_len: o.promptLen,
    new_tokens: o.newTokens,
    backend: model.backend.name,
    ...(model.backend.device !== undefined ? { device: model.backend.device } : {}),
    threads: model.backend.threads,
    ...(device_host !== undefined ? { device_host } : {}),
  };
}

/**
 * Line protocol for a driver that interleaves these runs with its own (scripts/torch_decode_bench.py): after one
 * warm-up run it prints `{"ready": true, ...}`; then each input line `run` times one generate() call and prints
 * `{"tokens_per_s", "decode_tokens_per_s", "prefill_s"}`; `quit` or end of input stops.
 */
export async function serveDecodeBench(model: Qwen2Model, o: DecodeBenchOptions): Promise<void> {
  const requests = benchRequests(model, o);
  const decoder = new KvDecoder(model);
  await benchOnce(model, decoder, requests, o);
  const say = (x: unknown): void => {
    writeSync(1, JSON.stringify(x) + '\n');
  };
  say({ ready: true, backend: model.backend.name, threads: model.backend.threads });
  const buf = Buffer.alloc(4096);
  let pending = '';
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw e;
    }
    if (n === 0) break;
    pending += buf.toString('utf8', 0, n);
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const cmd = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (cmd === 'quit') {
        decoder.releaseBuffers();
        return;
      }
      if (cmd !== 'run') {
        say({ error: `unknown command ${JSON.stringify(cmd)}` });
        continue;
      }
      const [t, d, p] = await benchOnce(model, decoder, requests, o);
      say({ tokens_per_s: round(t, 1), decode_tokens_per_s: round(d, 1), prefill_s: round(p, 4) });
    }
  }
  decoder.releaseBuffers();
}

interface DecodeCliOptions {
  model: string;
  batch: number;
  promptLen: number;
  newTokens: number;
  runs: number;
  seed: number;
  backend?: BackendName;
  threads?: number;
  json?: boolean;
  serve?: boolean;
}

/** Adds `decode` under the `bench` command. */
export function registerBenchDecode(bench: Command): Command {
  return bench
    .command('decode')
    .description('greedy KV-cache generation speed (tokens/s, median of timed runs; noisy on a busy machine)')
    .requiredOption('--model <dir|random:spec>', 'checkpoint directory, or random:layers=4,hidden=256,heads=4,kv-heads=2,intermediate=1024,vocab=512', modelDirOrRandom)
    .option('--batch <n>', 'sequences decoded together', positiveInt, 16)
    .option('--prompt-len <n>', 'random prompt length', positiveInt, 32)
    .option('--new-tokens <n>', 'tokens generated per sequence', positiveInt, 96)
    .option('--runs <n>', 'timed runs after one warm-up', positiveInt, 5)
    .option('--seed <n>', 'seed of the random prompts', (s) => Number(s), 1234)
    .addOption(new Option('--backend <name>', 'compute backend (default: $OREAL_BACKEND, else blas if built, else wasm)').choices([...BACKEND_NAMES]))
    .option('--threads <n>', 'kernel threads (wasm; default all cores)', positiveInt)
    .option('--json', 'print one JSON line {"tokens_per_s", "decode_tokens_per_s", "prefill_s", ...}')
    .option('--serve', 'warm up, then time one run per stdin line `run` (JSON line each) until `quit`: for drivers')
    .action(async (o: DecodeCliOptions) => {
      const backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
      try {
        const model = loadModelSpec(o.model, backend);
        if (o.serve) {
          await serveDecodeBench(model, { batch: o.batch, promptLen: o.promptLen, newTokens: o.newTokens, seed: o.seed });
          return;
        }
        const res = await benchDecode(model, { batch: o.batch, promptLen: o.promptLen, newTokens: o.newTokens, runs: o.runs, seed: o.seed });
        if (o.json) process.stdout.write(JSON.stringify(res) + '\n');
        else
          process.stdout.write(
            `decode backend=${res.backend} threads=${res.threads} batch=${res.batch} prompt=${res.prompt_len} new=${res.new_tokens}\n` +
              `  ${res.tokens_per_s} tokens/s (prefill included), ${res.decode_tokens_per_s} tokens/s decode only, prefill ${res.prefill_s} s\n` +
              (res.device_host
                ? `  device ${res.device}: ${res.device_host.dispatches_per_step} dispatches and ${res.device_host.host_ms_per_step} ms of host time per step, ` +
                  `${res.device_host.bind_groups_made} bind groups made while timed\n`
                : ''),
          );
      } finally {
        backend.dispose();
      }
    });
}

// Standalone entry point (used by scripts/torch_decode_bench.py): `node dist/src/cli/bench-decode.js [options]`.
function isMain(): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const program = new Command().name('bench-decode');
  registerBenchDecode(program.command('bench'));
  program.parseAsync(['bench', 'decode', ...process.argv.slice(2)], { from: 'user' }).catch((err: unknown) => {
    process.stderr.write(`bench-decode: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
