#!/usr/bin/env node
// Entry point of the `oreal` command: one small module per sub-command registers itself here.
import { Command } from 'commander';
import { registerAblate } from './ablate.js';
import { registerBench } from './bench.js';
import { registerDebug } from './debug.js';
import { registerEval } from './eval.js';
import { configureErrors, reportFatal } from './program.js';
import { registerReport } from './report.js';
import { registerRmProbe } from './rm-probe.js';
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
    .version('0.1.0');
  // Listed in this order by `oreal --help`: the main job first, then the rest from most to least used.
  registerStart(program);
  registerTrain(program);
  registerEval(program);
  registerGenerate(program);
  registerServe(program);
  registerSft(program);
  registerVerify(program);
  registerReport(program);
  registerAblate(program);
  registerRmProbe(program);
  registerBench(program);
  registerDebug(program);
  configureErrors(program);
  return program;
}

buildProgram().parseAsync(process.argv).catch(reportFatal);
