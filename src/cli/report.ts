// `oreal report RUN_DIR [--out FILE]`: write the self-contained HTML report of a training run (default
// RUN_DIR/report.html, written atomically) and print its path. Warnings about malformed lines go to stderr.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writeReport } from '../report/html.js';

export interface ReportCliOptions {
  out?: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write the HTML report of a training run (charts, summary, token-level RM heat-maps)')
    .argument('<run_dir>', 'run directory (metrics.jsonl, trajectories/, summary.json, config.resolved.yaml)')
    .option('--out <file>', 'output HTML file (default RUN_DIR/report.html)')
    .action((runDir: string, opts: ReportCliOptions, cmd: Command) => {
      if (!existsSync(runDir) || !statSync(runDir).isDirectory()) cmd.error(`error: run directory not found: ${runDir}`);
      const out = writeReport(runDir, opts.out ?? join(runDir, 'report.html'));
      process.stdout.write(`${out}\n`);
    });
}
