// Memory of a forward pass of a random Qwen2 model: parameters, peak RSS and seconds. Default shape: Qwen2.5-0.5B
// (24 layers, hidden 896, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, tied embeddings) on 1 × 64 tokens.
//
//   node dist/bench/forward-memory.js [--backend wasm|blas|js] [--threads N] [--batch 1] [--tokens 64]
//        [--grads] [--params-outside] [--reps 2] [--small]   → one JSON line
//   node dist/bench/forward-memory.js --all                   → runs the configurations below, one process each
//
// --grads allocates gradient arrays as training does (inference models skip them: ModelOptions.grads = false);
// --params-outside keeps the matrices outside the wasm memory (ModelOptions.paramsOutsideBackend; every GEMM copies
// them in); --small uses the 4-layer step-benchmark model instead (a quick check).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createBackend, BACKEND_NAMES, CpuBackend, type BackendName } from '../src/engine/index.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { randomTokens } from '../src/cli/bench-step.js';

interface Opts {
  backend?: BackendName;
  threads?: number;
  batch: number;
  tokens: number;
  grads: boolean;
  paramsOutside: boolean;
  reps: number;
  small: boolean;
  all: boolean;
}

const QWEN25_05B: Qwen2Config = {
  vocabSize: 151936,
  hiddenSize: 896,
  intermediateSize: 4864,
  numHiddenLayers: 24,
  numAttentionHeads: 14,
  numKeyValueHeads: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  tieWordEmbeddings: true,
  attentionBias: true,
  head: 'lm',
};
const SMALL: Qwen2Config = { ...QWEN25_05B, vocabSize: 512, hiddenSize: 256, intermediateSize: 1024, numHiddenLayers: 4, numAttentionHeads: 4 };

function parse(argv: string[]): Opts {
  const o: Opts = { batch: 1, tokens: 64, grads: false, paramsOutside: false, reps: 2, small: false, all: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`forward-memory: ${k} needs a value`);
      return x;
    };
    if (k === '--backend') {
      const b = v();
      if (!(BACKEND_NAMES as readonly string[]).includes(b)) throw new Error(`forward-memory: unknown backend ${b}`);
      o.backend = b as BackendName;
    } else if (k === '--threads') o.threads = Number(v());
    else if (k === '--batch') o.batch = Number(v());
    else if (k === '--tokens') o.tokens = Number(v());
    else if (k === '--reps') o.reps = Number(v());
    else if (k === '--grads') o.grads = true;
    else if (k === '--params-outside') o.paramsOutside = true;
    else if (k === '--small') o.small = true;
    else if (k === '--all') o.all = true;
    else throw new Error(`forward-memory: unknown argument ${k}`);
  }
  return o;
}

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);

function runOne(o: Opts): Record<string, unknown> {
  const cfg = o.small ? SMALL : QWEN25_05B;
  const be = createBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
  const rss0 = process.memoryUsage().rss;
  let t = process.hrtime.bigint();
  const secs = (): number => {
    const now = process.hrtime.bigint();
    const s = Number(now - t) / 1e9;
    t = now;
    return Math.round(s * 1000) / 1000;
  };
  const model = Qwen2Model.random(cfg, be, 1, 0.02, { grads: o.grads, paramsOutsideBackend: o.paramsOutside });
  const initS = secs();
  const ids = randomTokens(o.batch * o.tokens, cfg.vocabSize, 3);
  const lengths = new Int32Array(o.batch).fill(o.tokens);
  const times: number[] = [];
  let logp0 = 0;
  for (let r = 0; r < Math.max(1, o.reps); r++) {
    secs();
    const res = model.forward(ids, lengths, { entropy: false, saveForBackward: false });
    times.push(secs());
    logp0 = res.logp![0]!;
  }
  const k = be instanceof CpuBackend ? be.kernels : null;
  const heap = k && 'heapBytes' in k && typeof k.heapBytes === 'function' ? mb((k.heapBytes as () => number).call(k)) : null;
  const out = {
    model: o.small ? 'step-bench 4L/256' : 'Qwen2.5-0.5B shape',
    backend: be.name,
    threads: be.threads,
    params: model.numParameters(),
    grads: o.grads,
    params_outside: o.paramsOutside,
    batch: o.batch,
    tokens: o.tokens,
    init_s: initS,
    forward_s: times,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    start_rss_mb: mb(rss0),
    backend_heap_mb: heap,
    logp0: Math.round(logp0 * 1e4) / 1e4,
  };
  model.dispose();
  be.dispose();
  return out;
}

function main(): void {
  const o = parse(process.argv.slice(2));
  if (!o.all) {
    process.stdout.write(JSON.stringify(runOne(o)) + '\n');
    return;
  }
  const self = fileURLToPath(import.meta.url);
  const configs: string[][] = [
    ['--backend', 'wasm'],
    ['--backend', 'wasm', '--params-outside'],
    ['--backend', 'wasm', '--grads'],
    ['--backend', 'blas'],
  ];
  for (const c of configs) {
    try {
      const line = execFileSync(process.execPath, [self, ...c, '--tokens', String(o.tokens), '--batch', String(o.batch)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      process.stdout.write(line);
    } catch (err) {
      const e = err as { stderr?: string; message?: string };
      const msg = (e.stderr ?? e.message ?? String(err)).trim().split('\n').filter((l) => /Error/.test(l))[0] ?? 'failed';
      process.stdout.write(JSON.stringify({ config: c.join(' '), error: msg }) + '\n');
    }
  }
}

main();
