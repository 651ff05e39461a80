// Mean ± standard deviation over seeds and the Markdown table of scripts/main-job-seeds.ts (README numbers).

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
  const head =
    '| algorithm | seeds | pass@1 before (%) | pass@1 after (%) | pass@1 gain (points) | greedy before (%) | greedy after (%) | wall (min) |';
  const sep = '|---|---|---|---|---|---|---|---|';
  const body = rows.map((r) => {
    const gain = r.after.map((a, i) => a - r.before[i]!);
    const wall = meanStd(r.wall.map((w) => w / 60));
    return (
      `| ${r.algorithm} | ${r.seeds.length} | ${pctCell(r.before)} | ${pctCell(r.after)} | ${pctCell(gain, true)} | ` +
      `${pctCell(r.greedyBefore)} | ${pctCell(r.greedyAfter)} | ${wall.mean.toFixed(1)} ± ${wall.std.toFixed(1)} |`
    );
  });
  return [head, sep, ...body].join('\n');
}
