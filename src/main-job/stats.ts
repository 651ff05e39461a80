// Statistics over seeds and the Markdown tables of the README: mean ± standard deviation for scripts/main-job-seeds.ts,
// mean ± standard error for `oreal ablate` (src/ablate/run.ts).

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator); 0 for a single value. */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0, n };
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(v), n };
}

/** Standard error of the mean: std/√n (0 for a single value, NaN for none). */
export function standardError(m: MeanStd): number {
  return m.n === 0 ? NaN : m.std / Math.sqrt(m.n);
}

/** A Markdown table from a header row and body rows of cells. */
export function markdownGrid(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/** One algorithm's runs: per-seed held-out scores (fractions) and wall times (seconds). */
export interface AlgorithmRuns {
  algorithm: string;
  seeds: readonly number[];
  before: readonly number[];
  after: readonly number[];
  greedyBefore: readonly number[];
  greedyAfter: readonly number[];
  wall: readonly number[];
}

function pctCell(xs: readonly number[], signed = false): string {
  const m = meanStd(xs.map((x) => 100 * x));
  if (m.n === 0) return '-';
  return `${signed && m.mean >= 0 ? '+' : ''}${m.mean.toFixed(1)} ± ${m.std.toFixed(1)}`;
}

/** The README table: held-out pass@1 and greedy accuracy (percent, mean ± std over seeds), gain, wall time. */
export function markdownTable(rows: readonly AlgorithmRuns[]): string {
  const head = ['algorithm', 'seeds', 'pass@1 before (%)', 'pass@1 after (%)', 'pass@1 gain (points)', 'greedy before (%)', 'greedy after (%)', 'wall (min)'];
  const body = rows.map((r) => {
    const gain = r.after.map((a, i) => a - r.before[i]!);
    const wall = meanStd(r.wall.map((w) => w / 60));
    return [
      r.algorithm,
      String(r.seeds.length),
      pctCell(r.before),
      pctCell(r.after),
      pctCell(gain, true),
      pctCell(r.greedyBefore),
      pctCell(r.greedyAfter),
      `${wall.mean.toFixed(1)} ± ${wall.std.toFixed(1)}`,
    ];
  });
  return markdownGrid(head, body);
}
