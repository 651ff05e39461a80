// `oreal ablate`: arms × seeds of one job, and the table that says whether token-level credit helps (issue 15; the
// runner is src/ablate/run.ts, the arms src/ablate/arms.ts).
//
//   oreal ablate [--config FILE] [--data FILE] [--heldout FILE] [--set key=value ...] [--arms a,b,...]
//                [--seeds 0,1,2] [--out DIR] [--budget-minutes M] [--jobs N] [--table-only] [--json]
import * as path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ARMS, DEFAULT_ARMS } from '../ablate/arms.js';
import { ablationTable, gainDifferences, runAblation, runOneArm, type AblationOptions } from '../ablate/run.js';
import { MissingInputError } from '../main-job/run.js';
import { TrainConfigError } from '../train/config.js';
import { positiveInt } from './option-parsers.js';

/** The bundled chain task's ablation config. */
export const DEFAULT_ABLATION_CONFIG = path.join('configs', 'chain-ablation.yaml');

interface AblateCliOptions {
  config: string;
  data?: string;
  heldout?: string;
  set: string[];
  arms: string[];
  seeds: number[];
  out: string;
  budgetMinutes?: number;
  jobs: number;
  tableOnly?: boolean;
  json?: boolean;
  runOne?: string;
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

function list(value: string): string[] {
  const xs = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (xs.length === 0) throw new InvalidArgumentError('expected a comma-separated list');
  return xs;
}

function seedList(value: string): number[] {
  return list(value).map((s) => {
    if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`"${s}" is not a non-negative integer`);
    return Number(s);
  });
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

export function registerAblate(program: Command): void {
  program
    .command('ablate')
    .description('compare algorithms and token-weight sources (arms) over seeds with the same budget: held-out pass@1 gain ± standard error')
    .option('--config <file>', 'job config (YAML, trainer keys; steps, prompts, samples and evaluation shared by all arms)', DEFAULT_ABLATION_CONFIG)
    .option('--data <file>', 'RL prompt file (JSONL: question, gold_answer, pass_rate), instead of the config\'s datasets')
    .option('--heldout <file>', "held-out problem file, instead of the config's eval_dataset")
    .option('--set <key=value>', 'override a config key for every arm (repeatable)', collect, [])
    .option('--arms <list>', `arms, comma-separated (known: ${ARMS.map((a) => a.name).join(', ')})`, list, [...DEFAULT_ARMS])
    .option('--seeds <list>', 'seeds, comma-separated', seedList, [0, 1, 2])
    .option('--out <dir>', 'directory of the runs (ARM-seedS/), results.json and table.md', path.join('runs', 'ablate'))
    .option('--budget-minutes <m>', "equal wall clock: each arm trains for ⌊m / its cost per step⌋ steps (costs from this --out's equal-rollouts runs)", positiveNumber)
    .option('--jobs <n>', 'runs at once, each in a child process (give --set threads=1 when n > 1)', positiveInt, 1)
    .option('--table-only', 'only build the table from the runs already under --out')
    .option('--json', 'print the results as JSON instead of the Markdown table')
    .addOption(new Option('--run-one <arm:seed>', 'internal: run one arm × seed (a --jobs child)').hideHelp())
    .action(async (opts: AblateCliOptions, cmd: Command) => {
      const sets = [
        ...(opts.data !== undefined ? [`datasets=${path.resolve(opts.data)}`] : []),
        ...(opts.heldout !== undefined ? [`eval_dataset=${path.resolve(opts.heldout)}`] : []),
        ...opts.set,
      ];
      const self = process.argv[1]!;
      const base: AblationOptions = {
        config: opts.config,
        sets,
        arms: opts.arms,
        seeds: opts.seeds,
        out: opts.out,
        budgetMinutes: opts.budgetMinutes ?? null,
        jobs: opts.jobs,
        ...(opts.tableOnly === true ? { tableOnly: true } : {}),
        onLog: (l) => process.stderr.write(`oreal ablate: ${l}\n`),
      };
      // A child gets the same options with one arm × seed.
      base.childArgs = (arm, seed) => [
        self,
        'ablate',
        '--config',
        opts.config,
        ...sets.flatMap((s) => ['--set', s]),
        '--arms',
        arm,
        '--seeds',
        String(seed),
        '--out',
        opts.out,
        ...(opts.budgetMinutes !== undefined ? ['--budget-minutes', String(opts.budgetMinutes)] : []),
        '--run-one',
        `${arm}:${seed}`,
      ];
      try {
        if (opts.runOne !== undefined) {
          const [arm, seed] = opts.runOne.split(':');
          await runOneArm(base, arm!, Number(seed));
          return;
        }
        const res = await runAblation(base);
        if (opts.json === true) {
          process.stdout.write(JSON.stringify(res, null, 2) + '\n');
          return;
        }
        const keys = Object.entries(res.differing_keys).map(
          ([k, byArm]) => `  ${k}: ${Object.entries(byArm).map(([a, v]) => `${a}=${JSON.stringify(v)}`).join(', ')}`,
        );
        const rollouts = [...new Set(res.runs.map((r) => r.rollouts_per_step))].join('/');
        process.stdout.write(
          [
            `${res.mode === 'equal-rollouts' ? `equal rollouts (${rollouts} per step)` : `equal wall clock (${res.budget_minutes} min of training per run)`}; ` +
              `mean ± standard error over seeds; pass@1 on the held-out set`,
            '',
            ablationTable(res.rows),
            '',
            'gain differences:',
            ...gainDifferences(res.rows, ['grpo-pair', 'oreal-no-rm', 'oreal-pair'], res.runs).map((l) => `  ${l}`),
            '',
            'keys that differ between arms (everything else is shared):',
            ...keys,
            '',
          ].join('\n'),
        );
      } catch (e) {
        if (e instanceof MissingInputError || e instanceof TrainConfigError) cmd.error(`error: ${e.message}`);
        throw e;
      }
    });
}
