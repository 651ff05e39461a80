// `oreal debug loss`: one RL step's losses and gradient norms on a fixed batch, without updating and without filtering.
//
//   oreal debug loss --policy DIR --ref DIR [--rm DIR] --batch FILE.json [--config FILE.json] [--json]
//                    [--backend wasm|js] [--threads N]
//
// FILE (batch): {"groups": [{"prompt_ids": [...], "responses": [{"ids": [...], "reward": 1 | -1}, ...]}, ...]}.
// FILE (config): loss keys in the reference's names (src/rl/loss.ts `lossConfigSchema`); unknown keys are rejected.
// Advantages are computed per group over all its responses; every response is kept. Prints
// {"positive_loss", "negative_loss", "kl_penalty_loss", "rl_loss", "token_level_rm_loss", "actor_grad_norm",
// "rm_grad_norm"} (rl_loss = positive + negative + KL; the RM entries are 0 without the token-level RM).

import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { openBackend, BACKEND_NAMES, type Backend, type BackendName } from '../engine/index.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { Qwen2Model } from '../model/qwen2.js';
import { parseLossConfig, type LossConfig } from '../rl/loss.js';
import { stepLosses, type PromptGroup, type StepLossReport } from '../rl/step-losses.js';
import { positiveInt } from './option-parsers.js';

const tokenIds = z.array(z.number().int().nonnegative()).min(1);
const batchSchema = z.strictObject({
  groups: z
    .array(
      z.strictObject({
        prompt_ids: tokenIds,
        responses: z.array(z.strictObject({ ids: tokenIds, reward: z.number().finite() })).min(1),
      }),
    )
    .min(1),
});

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

/** Reads and validates a batch file; errors name the file and the field. */
export function readBatchFile(file: string): PromptGroup[] {
  const r = batchSchema.safeParse(readJson(file));
  if (!r.success) {
    const iss = r.error.issues[0]!;
    if (iss.code === 'unrecognized_keys') {
      const at = iss.path.length > 0 ? ` in "${iss.path.join('.')}"` : '';
      throw new Error(`${file}: unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}${at}`);
    }
    throw new Error(`${file}: field "${iss.path.join('.')}": ${iss.message}`);
  }
  return r.data.groups;
}

/** Reads and validates a loss config file (a missing file argument gives the oreal defaults). */
export function readLossConfigFile(file: string | undefined): LossConfig {
  return parseLossConfig(file === undefined ? {} : readJson(file), file ?? 'config');
}

export interface DebugLossInputs {
  policy: string;
  ref: string;
  rm?: string;
  batch: string;
  config?: string;
}

/** Loads the models and runs one step's losses + backward (no update, no filter). */
export async function debugLoss(inputs: DebugLossInputs, backend: Backend): Promise<StepLossReport> {
  const cfg = readLossConfigFile(inputs.config);
  const groups = readBatchFile(inputs.batch);
  if (cfg.tokenLevelRm && inputs.rm === undefined) throw new Error('--rm is required when token_level_rm is true (the oreal default)');
  const policy = Qwen2Model.fromCheckpoint(loadCheckpoint(inputs.policy), backend);
  const ref = Qwen2Model.fromCheckpoint(loadCheckpoint(inputs.ref), backend);
  const rm = cfg.tokenLevelRm ? Qwen2Model.fromCheckpoint(loadCheckpoint(inputs.rm!), backend) : null;
  try {
    const r = await stepLosses({ policy, ref, rm }, groups, cfg);
    return {
      positive_loss: r.positive_loss,
      negative_loss: r.negative_loss,
      kl_penalty_loss: r.kl_penalty_loss,
      rl_loss: r.rl_loss,
      token_level_rm_loss: r.token_level_rm_loss,
      actor_grad_norm: r.actor_grad_norm,
      rm_grad_norm: r.rm_grad_norm,
    };
  } finally {
    policy.dispose();
    ref.dispose();
    rm?.dispose();
  }
}

interface LossCliOptions extends DebugLossInputs {
  json?: boolean;
  backend?: BackendName;
  threads?: number;
}

/** Adds `loss` under the `debug` command. */
export function registerDebugLoss(debug: Command): void {
  debug
    .command('loss')
    .description('one RL step\'s losses and gradient norms on a fixed batch (no update, no filtering)')
    .requiredOption('--policy <dir>', 'policy checkpoint (Hugging Face Qwen2ForCausalLM directory)')
    .requiredOption('--ref <dir>', 'reference checkpoint (Qwen2ForCausalLM)')
    .option('--rm <dir>', 'token-level reward model checkpoint (Qwen2ForTokenClassification, score.weight [1, hidden])')
    .requiredOption('--batch <file>', 'JSON {"groups": [{"prompt_ids": [...], "responses": [{"ids": [...], "reward": 1}]}]}')
    .option('--config <file>', 'JSON loss config in the reference\'s key names (default: oreal)')
    .option('--json', 'print one JSON line')
    .addOption(new Option('--backend <name>', 'compute backend (default: $OREAL_BACKEND, else blas if built, else wasm)').choices([...BACKEND_NAMES]))
    .option('--threads <n>', 'kernel threads (wasm)', positiveInt)
    .action(async (opts: LossCliOptions) => {
      const backend = await openBackend(opts.backend, opts.threads !== undefined ? { threads: opts.threads } : {});
      try {
        const inputs: DebugLossInputs = { policy: opts.policy, ref: opts.ref, batch: opts.batch };
        if (opts.rm !== undefined) inputs.rm = opts.rm;
        if (opts.config !== undefined) inputs.config = opts.config;
        const report = await debugLoss(inputs, backend);
        if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
        else for (const [k, v] of Object.entries(report)) process.stdout.write(`${k.padEnd(20)} ${v}\n`);
      } finally {
        backend.dispose();
      }
    });
}
