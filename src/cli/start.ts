// `oreal start`: the main job. OREAL with the token-level reward model on the bundled synthetic arithmetic task,
// from the small SFT policy in models/arith-sft, with a default config sized for a 2-core CPU (configs/main-job.yaml):
// held-out evaluation before, training with a progress bar, held-out evaluation after, then RUN_DIR/summary.json and
// RUN_DIR/report.html, whose paths are printed on stdout.
//
//   oreal start [--config FILE] [--set key=value ...] [--seed N] [--out RUN_DIR] [--plain] [--verbose]
//
// Ctrl-C stops after the step in progress (summary and report are still written) and exits with status 130, naming
// the command that continues the training; a second Ctrl-C exits at once, also 130.
import type { Command } from 'commander';
import { createProgress } from '../main-job/progress.js';
import { DEFAULT_MAIN_JOB_CONFIG, MissingInputError, formatResult, runMainJob } from '../main-job/run.js';
import { TrainConfigError } from '../train/config.js';
import { INTERRUPTED_EXIT } from './program.js';
import { nonNegInt } from './option-parsers.js';

interface StartCliOptions {
  config: string;
  set: string[];
  seed?: number;
  out?: string;
  plain?: boolean;
  verbose?: boolean;
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('the main job: OREAL with the token-level RM on the synthetic arithmetic task, evaluated before and after')
    .option('--config <file>', 'job config (YAML, trainer keys)', DEFAULT_MAIN_JOB_CONFIG)
    .option('--set <key=value>', 'override a config key, e.g. --set algorithm=grpo (repeatable)', collect, [])
    .option('--seed <n>', 'random seed (same as --set seed=N)', nonNegInt)
    .option('--out <run_dir>', 'run directory (default runs/<algorithm>-seed<seed>-<time>)')
    .option('--plain', 'plain progress lines even on a terminal')
    .option('--verbose', "also print the trainer's log lines (always in RUN_DIR/train.log)")
    .action(async (opts: StartCliOptions, cmd: Command) => {
      const ac = new AbortController();
      let runDir = opts.out ?? 'RUN_DIR';
      let interrupts = 0;
      const onSigint = (): void => {
        interrupts++;
        if (interrupts === 1) {
          process.stderr.write('\noreal start: stopping after the current step (Ctrl-C again to exit now)\n');
          ac.abort();
        } else {
          process.stderr.write(`oreal start: exiting now; continue from the last saved step with: oreal train --resume ${runDir}\n`);
          process.exit(INTERRUPTED_EXIT);
        }
      };
      // The bar's total is only known once the config is loaded; it is set again on the first update.
      const progress = createProgress(process.stderr, 1, opts.plain === true ? { plain: true } : {});
      process.on('SIGINT', onSigint);
      try {
        const res = await runMainJob({
          config: opts.config,
          sets: opts.set,
          ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
          ...(opts.out !== undefined ? { outDir: opts.out } : {}),
          progress,
          ...(opts.verbose === true ? { onLog: (l: string) => progress.log(l) } : {}),
          signal: ac.signal,
          onRunDir: (dir) => {
            runDir = dir;
          },
        });
        progress.stop();
        process.stdout.write(formatResult(res));
        if (ac.signal.aborted && res.summary.interrupted) {
          process.stderr.write(
            `oreal start: interrupted after step ${res.summary.steps} of ${res.summary.total_steps} (summary and report written); ` +
              `continue the training with: oreal train --resume ${res.runDir}\n`,
          );
          process.exitCode = INTERRUPTED_EXIT;
        }
      } catch (e) {
        progress.stop();
        if (e instanceof MissingInputError || e instanceof TrainConfigError) cmd.error(`error: ${e.message}`);
        throw e;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
