// `oreal sft --config FILE.yaml [--set key=value ...]`: supervised fine-tuning on JSONL chat data (src/train/sft.ts).
import type { Command } from 'commander';
import { loadSftConfig, runSft, sftConfigSchema, type SftLogRecord } from '../train/sft.js';
import { modelDirProblem } from './option-parsers.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function formatSftLog(r: SftLogRecord): string {
  const parts = [
    `step ${r.step}/${r.totalSteps}`,
    `loss ${r.loss.toFixed(4)}`,
    `lr ${r.lr.toExponential(2)}`,
    `gnorm ${r.gradNorm.toFixed(3)}`,
    `${r.elapsedS.toFixed(1)}s`,
  ];
  if (r.evalLoss !== undefined) parts.push(`eval_loss ${r.evalLoss.toFixed(4)}`);
  return parts.join('  ');
}

/**
 * The config keys for `oreal sft --help`, read from the schema (so the list cannot drift from what is accepted), with
 * the default of each optional key.
 */
export function sftConfigKeysHelp(): string {
  const defaults = sftConfigSchema.parse({ model: '-', train_file: '-', output_dir: '-' }) as Record<string, unknown>;
  const required = new Set(['train_file', 'output_dir']);
  const lines = Object.keys(sftConfigSchema.shape).map((key) => {
    if (required.has(key)) return `  ${key} (required)`;
    const d = key === 'model' ? undefined : defaults[key];
    return d === undefined ? `  ${key}` : `  ${key} (default ${JSON.stringify(d)})`;
  });
  const arch = Object.keys(sftConfigSchema.shape.architecture.unwrap().shape).join(', ');
  return [
    '',
    'Config keys (YAML). Start from "model" (a checkpoint directory), or from "architecture" + "tokenizer":',
    ...lines,
    `  architecture keys: ${arch}`,
  ].join('\n');
}

export function registerSft(program: Command): void {
  program
    .command('sft')
    .description(
      'supervised fine-tuning on JSONL ({messages: [...]} or {prompt, response}; loss on assistant tokens only), ' +
        'from an HF checkpoint or a fresh model; saves an HF checkpoint',
    )
    .requiredOption('-c, --config <file>', 'YAML config (keys below)')
    .option('-s, --set <key=value>', 'override a config key (dotted for nested, e.g. architecture.hidden_size=128)', collect, [])
    .addHelpText('after', () => sftConfigKeysHelp())
    .action(async (opts: { config: string; set: string[] }, cmd: Command) => {
      const cfg = loadSftConfig(opts.config, opts.set);
      for (const key of ['model', 'tokenizer'] as const) {
        const dir = cfg[key];
        const problem = dir === undefined ? null : modelDirProblem(dir);
        if (problem !== null) cmd.error(`error: ${opts.config}: ${key}: ${problem}`);
      }
      const res = await runSft(cfg, {
        onLog: (r) => process.stdout.write(formatSftLog(r) + '\n'),
        onInfo: (m) => process.stdout.write(m + '\n'),
      });
      process.stdout.write(
        `done: ${res.steps} steps in ${res.elapsedS.toFixed(1)}s, train loss ${res.finalTrainLoss.toFixed(4)}` +
          (res.finalEvalLoss !== null ? `, eval loss ${res.finalEvalLoss.toFixed(4)}` : '') +
          `; model in ${res.outputDir}\n`,
      );
    });
}
