#!/usr/bin/env node
// Entry point of the `oreal` command: one small module per sub-command registers itself here.
import { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerDebug } from './debug.js';
import { registerEval } from './eval.js';
import { registerReport } from './report.js';
import { registerTrain } from './train.js';
import { registerGenerate } from './generate.js';
import { registerSft } from './sft.js';
import { registerServe } from './serve.js';
import { registerStart } from './start.js';
import { registerVerify } from './verify.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('oreal')
    .description('OREAL: outcome-reward reinforcement learning for LLM math reasoning')
    .version('0.1.0')
    .showHelpAfterError();
  registerVerify(program);
  registerDebug(program);
  registerBench(program);
  registerEval(program);
  registerReport(program);
  registerTrain(program);
  registerGenerate(program);
  registerSft(program);
  registerServe(program);
  registerStart(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`oreal: ${msg}\n`);
    process.exitCode = 1;
  });
