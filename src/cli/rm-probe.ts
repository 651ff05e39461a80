// `oreal rm-probe`: can a token-level RM learn this task before any RL? Options only; the probe is
// src/ablate/rm-probe.ts.
import { Option, type Command } from 'commander';
import { BACKEND_NAMES, type BackendName } from '../engine/index.js';
import { runRmProbe, type ProbeAucs, type RmProbeResult } from '../ablate/rm-probe.js';
import { backendName, modelDir, nonNegInt, openFraction, positiveInt, positiveNumber } from './option-parsers.js';
import { reportFatal } from './program.js';

interface RmProbeCliOptions {
  model: string;
  data: string;
  limit?: number;
  samples: number;
  heldoutFrac: number;
  steps: number;
  lr: number;
  batchSize: number;
  maxNewTokens: number;
  seed: number;
  backend?: BackendName;
  threads?: number;
  json?: boolean;
}

const fmt = (x: number | null): string => (x === null ? '  -  ' : x.toFixed(3));

function row(name: string, a: ProbeAucs): string {
  return `${name.padEnd(26)} ${String(a.samples).padStart(7)} ${String(a.correct).padStart(7)}   ${fmt(a.rm_auc)}      ${fmt(a.policy_logp_auc)}`;
}

/** The human-readable report. */
export function formatRmProbe(r: RmProbeResult): string {
  return [
    `rm-probe: ${r.model} on ${r.data}: ${r.prompts.train} train / ${r.prompts.heldout} held-out prompts, ${r.settings.samples} samples each`,
    `RM training: ${r.settings.steps} steps of ${r.settings.batch_size} at lr ${r.settings.lr}: loss ${r.rm_loss_start.toFixed(4)} -> ${r.rm_loss_end.toFixed(4)} (chance 0.6931), train AUC ${fmt(r.train.rm_auc)}`,
    `held-out AUC (${r.style_kind})  samples correct   RM score   policy mean log-prob`,
    row('all', r.heldout),
    ...Object.entries(r.heldout_by_style).map(([k, a]) => row(k, a)),
    `time: rollouts ${r.seconds.rollouts}s, RM training ${r.seconds.rm_training}s, scoring ${r.seconds.scoring}s`,
  ].join('\n');
}

export function registerRmProbe(program: Command): void {
  program
    .command('rm-probe')
    .description(
      "how well a token-level RM learns a task before any RL: sample a policy's rollouts, train the RM (as the trainer " +
        "does) on some prompts' rollouts, report held-out AUC next to the policy's own mean-log-prob AUC",
    )
    .requiredOption('--model <dir>', 'policy checkpoint directory (the RM starts from its trunk)', modelDir)
    .requiredOption('--data <file>', 'prompt file (JSONL: question/problem, gold_answer/answer)')
    .option('--limit <n>', 'read only the first N prompts', positiveInt)
    .option('--samples <n>', 'responses per prompt (temperature 1)', positiveInt, 8)
    .option('--heldout-frac <x>', 'fraction of prompts held out (with all their responses)', openFraction, 0.25)
    .option('--steps <n>', 'RM training steps', nonNegInt, 100)
    .option('--lr <x>', 'RM learning rate (constant; the main job starts its RM at 5e-3)', positiveNumber, 5e-3)
    .option('--batch-size <n>', 'sequences per RM step', positiveInt, 64)
    .option('--max-new-tokens <n>', 'longest response', positiveInt, 160)
    .option('--seed <n>', 'seed of the sampling, the split and the batches', nonNegInt, 0)
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_NAMES).argParser(backendName))
    .option('--threads <n>', 'kernel threads', positiveInt)
    .option('--json', 'print the result as one JSON object (last line)')
    .action(async (o: RmProbeCliOptions) => {
      try {
        const r = await runRmProbe({
          model: o.model,
          data: o.data,
          ...(o.limit !== undefined ? { limit: o.limit } : {}),
          samples: o.samples,
          heldoutFrac: o.heldoutFrac,
          steps: o.steps,
          lr: o.lr,
          batchSize: o.batchSize,
          maxNewTokens: o.maxNewTokens,
          seed: o.seed,
          ...(o.backend !== undefined ? { backend: o.backend } : {}),
          ...(o.threads !== undefined ? { threads: o.threads } : {}),
          onInfo: (m) => process.stderr.write(m + '\n'),
        });
        process.stdout.write((o.json ? JSON.stringify(r) : formatRmProbe(r)) + '\n');
      } catch (e) {
        reportFatal(e);
      }
    });
}
