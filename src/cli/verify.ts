import type { Command } from 'commander';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check a math answer against a gold answer')
    .option('--gold <gold>', 'gold answer')
    .option('--response <text>', 'model response')
    .action(() => {
      process.stdout.write('not yet\n');
    });
}
