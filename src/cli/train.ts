// `oreal train`: run (or resume) OREAL training from a YAML config.
//
//   oreal train --config configs/tiny-test.yaml [--set key=value ...] [--out RUN_DIR]
//   oreal train --resume RUN_DIR [--set key=value ...]           (the run's config.resolved.yaml)
//
// Ctrl-C stops after the step in progress (its state is saved) and exits with status 130, naming the command that
// resumes the run; a second Ctrl-C exits at once, also 130 (the last saved state is intact and `--resume` continues
// from it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { loadTrainConfig, type TrainConfig } from '../train/config.js';
import { runTraining } from '../train/trainer.js';
import { modelDirProblem, positiveInt } from './option-parsers.js';
import { INTERRUPTED_EXIT } from './program.js';

interface TrainCliOptions {
  config?: string;
  set: string[];
  resume?: string;
  out?: string;
  stopAfter?: number;
  quiet?: boolean;
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** The model directories a config names (resolved paths), by key. */
function modelDirsOf(c: TrainConfig): Array<[string, string]> {
  const dirs: Array<[string, string]> = [['actor', c.actor]];
  if (c.reference !== null) dirs.push(['reference', c.reference]);
  if (typeof c.token_level_rm === 'string') dirs.push(['token_level_rm', c.token_level_rm]);
  if (c.tokenizer !== null) dirs.push(['tokenizer', c.tokenizer]);
  return dirs;
}

function defaultRunDir(): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  return path.join('runs', `run-${stamp}`);
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a policy with OREAL (or a baseline) from a YAML config; resumable')
    .option('--config <file>', 'training config (YAML); with --resume defaults to RUN_DIR/config.resolved.yaml')
    .option('--set <key=value>', 'override a config key (dotted for nested keys; repeatable)', collect, [])
    .option('--resume <run_dir>', 'continue the run in this directory from its saved state')
    .option('--out <run_dir>', 'run directory (default runs/run-<time>)')
    .option('--stop-after <step>', 'stop after this step (the LR schedule still spans total_steps)', positiveInt)
    .option('--quiet', 'no per-step lines on stderr (they still go to RUN_DIR/train.log)')
    .action(async (opts: TrainCliOptions, cmd: Command) => {
      if (opts.resume !== undefined && opts.out !== undefined && path.resolve(opts.resume) !== path.resolve(opts.out))
        cmd.error('error: --resume and --out name different directories');
      let configFile = opts.config;
      if (configFile === undefined) {
        if (opts.resume === undefined) cmd.error('error: give --config FILE.yaml (or --resume RUN_DIR)');
        configFile = path.join(opts.resume, 'config.resolved.yaml');
        if (!fs.existsSync(configFile)) cmd.error(`error: ${configFile} not found: give --config`);
      }
      const config = loadTrainConfig(configFile, opts.set);
      for (const [key, dir] of modelDirsOf(config)) {
        const problem = modelDirProblem(dir);
        if (problem !== null) cmd.error(`error: ${configFile}: ${key}: ${problem}`);
      }
      const outDir = opts.resume ?? opts.out ?? defaultRunDir();
      if (opts.resume === undefined && fs.existsSync(path.join(outDir, 'state')))
        cmd.error(`error: ${outDir} already holds a run: use --resume ${outDir} to continue it, or another --out`);
      const ac = new AbortController();
      let interrupts = 0;
      const resumeHint = `oreal train --resume ${outDir}`;
      const onSigint = (): void => {
        interrupts++;
        if (interrupts === 1) {
          process.stderr.write('\noreal train: stopping after the current step (Ctrl-C again to exit now)\n');
          ac.abort();
        } else {
          process.stderr.write(`oreal train: exiting now; resume from the last saved step with: ${resumeHint}\n`);
          process.exit(INTERRUPTED_EXIT);
        }
      };
      process.on('SIGINT', onSigint);
      try {
        const res = await runTraining(config, {
          outDir,
          resume: opts.resume !== undefined,
          signal: ac.signal,
          ...(opts.stopAfter !== undefined ? { stopAfterStep: opts.stopAfter } : {}),
          ...(opts.quiet ? { onLog: () => undefined } : {}),
        });
        process.stdout.write(`${JSON.stringify({ run_dir: res.runDir, step: res.step, total_steps: config.total_steps })}\n`);
        const goal = Math.min(config.total_steps, opts.stopAfter ?? Infinity);
        if (ac.signal.aborted && res.step < goal) {
          process.stderr.write(`oreal train: interrupted after step ${res.step} of ${config.total_steps}; resume with: ${resumeHint}\n`);
          process.exitCode = INTERRUPTED_EXIT;
        }
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
