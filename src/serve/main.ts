#!/usr/bin/env node
// Standalone entry of `oreal serve` (same options): `node dist/src/serve/main.js --model DIR ...`.
import { Command } from 'commander';
import { registerServe } from '../cli/serve.js';

const program = new Command().name('oreal-serve');
registerServe(program);
program.parseAsync(['serve', ...process.argv.slice(2)], { from: 'user' }).catch((err: unknown) => {
  process.stderr.write(`oreal serve: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
