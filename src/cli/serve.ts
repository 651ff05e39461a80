// `oreal serve`: an OpenAI-compatible server over the local KV-cache engine (see src/serve/server.ts for the routes,
// src/serve/scheduler.ts for continuous batching and the weight-update rule).
//
//   oreal serve --model DIR|random:SPEC [--host 127.0.0.1] [--port 8000] [--max-batch 64] [--backend wasm|js|blas]
//               [--threads N] [--served-model-name NAME] [--max-model-len N] [--kv-cache-gb 2] [--max-body-bytes N]
//               [--request-timeout S] [--shutdown-timeout S] [--api-key-env NAME] [--log-requests]
//
// Prints `oreal serve: listening on http://HOST:PORT` on stdout once it accepts connections (--port 0 picks a free
// port). SIGTERM / SIGINT: stop accepting, let in-flight requests finish (up to --shutdown-timeout), then cancel the
// rest, close and exit 0; a second signal exits at once with code 1.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { openBackend, BACKEND_NAMES, type BackendName } from '../engine/index.js';
import { loadServeModel, OrealServer } from '../serve/server.js';
import { loadModelSpec } from './bench-decode.js';
import { modelDirOrRandom, nonNegInt, positiveInt, positiveNumber } from './option-parsers.js';

interface ServeCliOptions {
  model: string;
  host: string;
  port: number;
  maxBatch: number;
  backend?: BackendName;
  threads?: number;
  servedModelName?: string;
  maxModelLen?: number;
  kvCacheGb: number;
  maxBodyBytes: number;
  requestTimeout: number;
  shutdownTimeout: number;
  apiKeyEnv?: string;
  logRequests?: boolean;
}

function port(value: string): number {
  const n = nonNegInt(value);
  if (n > 65535) throw new InvalidArgumentError('expected a port in 0..65535');
  return n;
}

export function registerServe(program: Command): Command {
  return program
    .command('serve')
    .description('OpenAI-compatible HTTP server over the local engine (continuous batching, weight updates from disk)')
    .requiredOption('--model <dir>', 'Hugging Face checkpoint directory (or random:SPEC, see bench decode)', modelDirOrRandom)
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', port, 8000)
    .option('--max-batch <n>', 'most sequences decoded at once', positiveInt, 64)
    .addOption(new Option('--backend <name>', 'compute backend (default: $OREAL_BACKEND, else blas if built, else wasm)').choices([...BACKEND_NAMES]))
    .option('--threads <n>', 'kernel threads (wasm, blas)', positiveInt)
    .option('--served-model-name <name>', 'model name in /v1/models (default: the directory name)')
    .option('--max-model-len <n>', 'largest prompt + max_tokens (default min(max_position_embeddings, 4096))', positiveInt)
    .option('--kv-cache-gb <gb>', 'budget for all preallocated KV caches', positiveNumber, 2)
    .option('--max-body-bytes <n>', 'request body limit (413 beyond)', positiveInt, 1024 * 1024)
    .option('--request-timeout <s>', 'per-request generation timeout in seconds (504 beyond)', positiveNumber, 600)
    .option('--shutdown-timeout <s>', 'seconds in-flight requests may run after SIGTERM/SIGINT', positiveNumber, 30)
    .option('--api-key-env <name>', 'require "Authorization: Bearer $NAME" when that variable is set')
    .option('--log-requests', 'one line per request on stderr (method, path, status, time)')
    .action(async (o: ServeCliOptions) => {
      const backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
      let server: OrealServer;
      try {
        const m = loadServeModel(o.model, backend, loadModelSpec);
        const isRandom = o.model === 'random' || o.model.startsWith('random:');
        server = new OrealServer(m, {
          ...(isRandom ? { servedModelName: o.servedModelName ?? 'random' } : { modelPath: o.model }),
          ...(o.servedModelName !== undefined ? { servedModelName: o.servedModelName } : {}),
          ...(o.maxModelLen !== undefined ? { maxModelLen: o.maxModelLen } : {}),
          maxBatch: o.maxBatch,
          kvCacheBytes: Math.floor(o.kvCacheGb * 1024 ** 3),
          maxBodyBytes: o.maxBodyBytes,
          requestTimeoutMs: Math.round(o.requestTimeout * 1000),
          shutdownGraceMs: Math.round(o.shutdownTimeout * 1000),
          ...(o.apiKeyEnv !== undefined ? { apiKeyEnv: o.apiKeyEnv } : {}),
          ...(o.logRequests ? { log: (l: string) => process.stderr.write(`oreal serve: ${l}\n`) } : {}),
        });
      } catch (e) {
        backend.dispose();
        throw e;
      }
      let url: string;
      try {
        url = await server.listen(o.port, o.host);
      } catch (e) {
        await server.shutdown(0);
        backend.dispose();
        throw e;
      }
      process.stdout.write(
        `oreal serve: listening on ${url} (model ${server.servedModelName}, backend ${backend.name}, max batch ${o.maxBatch}, max model len ${server.maxModelLen})\n`,
      );
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals): void => {
          signals++;
          if (signals > 1) {
            process.stderr.write(`oreal serve: second ${sig}, exiting now\n`);
            process.exit(1);
          }
          process.stderr.write(`oreal serve: ${sig}, shutting down\n`);
          void server.shutdown().then(resolve, (e: unknown) => {
            process.stderr.write(`oreal serve: shutdown failed: ${e instanceof Error ? e.message : String(e)}\n`);
            resolve();
          });
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      backend.dispose();
      process.stderr.write('oreal serve: stopped\n');
      // Everything is closed; should a stray handle keep the process alive, do not hang.
      setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
    });
}
