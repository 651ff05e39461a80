// Load test of `oreal serve`: starts the server on 127.0.0.1 (a free port), sends `--requests` completions from
// `--clients` concurrent clients, prints throughput and latency, stops the server with SIGTERM.
//
//   node dist/bench/serve-load.js --model DIR|random:SPEC [--clients 32] [--requests 128] [--prompt-len 32]
//        [--max-tokens 64] [--backend wasm|js|blas] [--threads N] [--max-batch 64] [--time-limit 300] [--json]
//
// Each request: random prompt token ids (seeded by its index), `max_tokens` with `ignore_eos` (so every request
// generates exactly max_tokens), temperature 1, seed = its index. tokens/s counts generated tokens over the wall time of
// the whole load; latency is per request (send → full reply). `mean_batch` = generated tokens / decode steps from the
// server's /health. Requests still running at --time-limit are aborted and counted as errors.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadConfig } from '../src/model/config.js';
import { parseRandomModelSpec } from '../src/cli/bench-decode.js';
import { positiveInt } from '../src/cli/option-parsers.js';
import { Xoshiro128 } from '../src/util/rng.js';

interface LoadOptions {
  model: string;
  clients: number;
  requests: number;
  promptLen: number;
  maxTokens: number;
  backend: string;
  threads?: number;
  maxBatch: number;
  timeLimit: number;
  json?: boolean;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  error_samples: string[];
  wall_s: number;
  requests_per_s: number;
  tokens_per_s: number;
  generated_tokens: number;
  latency_p50_s: number;
  latency_p99_s: number;
  latency_max_s: number;
  mean_batch: number | null;
  server_exit_code: number | null;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

function vocabOf(spec: string): number {
  if (spec === 'random' || spec.startsWith('random:')) return parseRandomModelSpec(spec).config.vocabSize;
  return loadConfig(path.join(spec, 'config.json')).vocabSize;
}

function serveArgv(): string[] {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const main = path.join(root, 'src', 'cli', 'main.js');
  const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
  if (help.status === 0 && /\bserve\b/.test(help.stdout)) return [main, 'serve'];
  return [path.join(root, 'src', 'serve', 'main.js')];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const V = vocabOf(o.model);
  const args = [...serveArgv(), '--model', o.model, '--host', '127.0.0.1', '--port', '0', '--backend', o.backend, '--max-batch', String(o.maxBatch)];
  if (o.threads !== undefined) args.push('--threads', String(o.threads));
  args.push('--max-model-len', String(Math.max(4096, o.promptLen + o.maxTokens)));
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start within 120 s: ${stderr}`)), 120_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      void exited.then((c) => reject(new Error(`server exited with ${c}: ${stderr}`)));
    });
    const health = async (): Promise<{ generated_tokens: number; decode_steps: number }> =>
      (await (await fetch(`${url}/health`)).json()) as { generated_tokens: number; decode_steps: number };
    const bodyOf = (i: number): string => {
      const rng = new Xoshiro128(i, 1);
      const prompt = Array.from({ length: o.promptLen }, () => rng.nextU32() % V);
      return JSON.stringify({ prompt, max_tokens: o.maxTokens, ignore_eos: true, temperature: 1, seed: i });
    };
    // one warm-up request (JIT, buffers), not counted
    await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodyOf(1e6) }).then((r) => r.text());
    const h0 = await health();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), o.timeLimit * 1000);
    const latencies: number[] = [];
    const errors: string[] = [];
    let tokens = 0;
    let next = 0;
    const t0 = performance.now();
    const client = async (): Promise<void> => {
      while (next < o.requests) {
        const i = next++;
        const s = performance.now();
        try {
          const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodyOf(i), signal: deadline.signal });
          const j = (await r.json()) as { usage?: { completion_tokens: number }; error?: { message: string } };
          if (r.status !== 200 || !j.usage) throw new Error(`HTTP ${r.status}: ${j.error?.message ?? ''}`);
          tokens += j.usage.completion_tokens;
          latencies.push((performance.now() - s) / 1000);
        } catch (e) {
          errors.push(`request ${i}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: o.clients }, () => client()));
    const wall = (performance.now() - t0) / 1000;
    clearTimeout(timer);
    const h1 = await health();
    latencies.sort((a, b) => a - b);
    const steps = h1.decode_steps - h0.decode_steps;
    proc.kill('SIGTERM');
    const code = await exited;
    return {
      requests: o.requests,
      ok: latencies.length,
      errors: errors.length,
      error_samples: errors.slice(0, 5),
      wall_s: wall,
      requests_per_s: latencies.length / wall,
      tokens_per_s: tokens / wall,
      generated_tokens: tokens,
      latency_p50_s: quantile(latencies, 0.5),
      latency_p99_s: quantile(latencies, 0.99),
      latency_max_s: latencies.length ? latencies[latencies.length - 1]! : NaN,
      mean_batch: steps > 0 ? (h1.generated_tokens - h0.generated_tokens) / steps : null,
      server_exit_code: code,
    };
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
}

const program = new Command()
  .name('serve-load')
  .description('load test of oreal serve on 127.0.0.1')
  .requiredOption('--model <dir>', 'checkpoint directory or random:SPEC')
  .option('--clients <n>', 'concurrent clients', positiveInt, 32)
  .option('--requests <n>', 'requests in all', positiveInt, 128)
  .option('--prompt-len <n>', 'prompt tokens per request', positiveInt, 32)
  .option('--max-tokens <n>', 'generated tokens per request', positiveInt, 64)
  .option('--backend <name>', 'server backend (wasm, js, blas)', 'wasm')
  .option('--threads <n>', 'server kernel threads', positiveInt)
  .option('--max-batch <n>', 'server max batch', positiveInt, 64)
  .option('--time-limit <s>', 'abort requests still running after this many seconds', positiveInt, 300)
  .option('--json', 'print one JSON object')
  .action(async (o: LoadOptions) => {
    if (!(o.model === 'random' || o.model.startsWith('random:')) && !fs.existsSync(path.join(o.model, 'config.json')))
      throw new Error(`${o.model}: no config.json`);
    if (o.requests > 100_000 || o.clients > 1024) throw new Error('--requests is limited to 100000 and --clients to 1024');
    const r = await runLoad(o);
    if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
      process.stdout.write(
        `requests ${r.ok}/${r.requests} ok, ${r.errors} errors in ${f(r.wall_s)} s (${o.clients} clients, backend ${o.backend}, max batch ${o.maxBatch})\n` +
          `throughput ${f(r.tokens_per_s, 1)} tokens/s, ${f(r.requests_per_s)} requests/s, mean decode batch ${r.mean_batch === null ? 'n/a' : f(r.mean_batch, 1)}\n` +
          `latency p50 ${f(r.latency_p50_s, 3)} s, p99 ${f(r.latency_p99_s, 3)} s, max ${f(r.latency_max_s, 3)} s\n` +
          `server exit code ${r.server_exit_code}\n` +
          r.error_samples.map((e) => `  ${e}\n`).join(''),
      );
    }
    if (r.errors > 0 || r.server_exit_code !== 0) process.exitCode = 1;
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`serve-load: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
