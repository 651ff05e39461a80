// The figures of a `bench/gpu-report.sh OUT` run as one markdown table: each WebGPU figure next to PyTorch's from the
// same call, their ratio, and the goal the GPU issue sets for it. An item that did not run, or whose output cannot be
// read, shows as such (with the file to look at), so a partial run still gives what it measured.
//
//   node dist/bench/gpu-report-summary.js OUT_DIR        (gpu-report.sh runs it last, into OUT_DIR/report.md)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

type Json = Record<string, unknown>;
interface GemmRow {
  variant?: string;
  M: number;
  N: number;
  K: number;
  trans: string;
  split?: number;
  tflops: number;
}

/** The last line of OUT/<item>.out that parses as a JSON object, or why there is none. */
function lastJson(dir: string, item: string): Json | string {
  const file = path.join(dir, `${item}.out`);
  if (!fs.existsSync(file)) return `${item} did not run`;
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').reverse();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as unknown;
      if (j !== null && typeof j === 'object' && !Array.isArray(j)) return j as Json;
    } catch {
      // not this line
    }
  }
  return `no result in ${item}.out (see ${item}.err)`;
}

const num = (j: Json | string, key: string): number | null => (typeof j === 'object' && typeof j[key] === 'number' ? (j[key] as number) : null);
const fmt = (x: number | null, digits: number, unit = ''): string => (x === null ? '–' : `${x.toFixed(digits)}${unit}`);
/** Three significant digits (GEMM rates span 1e-3 TFLOP/s on lavapipe to 50 on an H200). */
const sig = (x: number | null): string => (x === null ? '–' : x.toPrecision(3));
const ratio = (a: number | null, b: number | null): string => (a === null || b === null || b === 0 ? '–' : `${(a / b).toFixed(2)}×`);
const gemmRows = (j: Json | string): GemmRow[] => (typeof j === 'object' && Array.isArray(j['results']) ? (j['results'] as GemmRow[]) : []);
const shapeOf = (r: GemmRow): string => `${r.M}×${r.N}×${r.K} ${r.trans}`;

/** The report of one gpu-report.sh output directory. */
export function summarizeGpuReport(dir: string): string {
  const out: string[] = [];
  const notes: string[] = [];
  const row = (cells: string[]): number => out.push(`| ${cells.join(' | ')} |`);
  const note = (j: Json | string): void => {
    if (typeof j === 'string') notes.push(j);
  };

  const gw = lastJson(dir, 'gemm-webgpu');
  const gt = lastJson(dir, 'gemm-torch');
  const tiles = lastJson(dir, 'gemm-webgpu-tiles');
  const sw = lastJson(dir, 'step-0.5b-webgpu');
  const sn = lastJson(dir, 'step-0.5b-webgpu-nosplit');
  const st = lastJson(dir, 'step-0.5b-torch');
  const dw = lastJson(dir, 'decode-0.5b-webgpu');
  const dt = lastJson(dir, 'decode-0.5b-torch');
  const bw = lastJson(dir, 'step-1.5b-webgpu');
  const bt = lastJson(dir, 'step-1.5b-torch');
  for (const j of [gw, gt, tiles, sw, sn, st, dw, dt, bw, bt]) note(j);

  const adapter = typeof gw === 'object' ? String(gw['adapter']) : typeof sw === 'object' ? String(sw['adapter']) : 'unknown adapter';
  const torchDevice = typeof gt === 'object' ? `${String(gt['device'])}, torch ${String(gt['torch'])}` : 'no PyTorch result';
  out.push(`WebGPU adapter: ${adapter}. PyTorch: ${torchDevice}.`, '');
  row(['figure', 'WebGPU (oreal)', 'PyTorch', 'ratio', 'goal']);
  row(['---', '---', '---', '---', '---']);

  // GEMMs: the default variant (split auto) and split off, against PyTorch's same shape.
  const torchOf = new Map(gemmRows(gt).map((r) => [shapeOf(r), r.tflops]));
  const byShape = new Map<string, { on?: GemmRow; off?: GemmRow }>();
  for (const r of gemmRows(gw)) {
    const e = byShape.get(shapeOf(r)) ?? {};
    if (r.variant?.endsWith(':off')) e.off = r;
    else e.on = r;
    byShape.set(shapeOf(r), e);
  }
  for (const [shape, { on, off }] of byShape) {
    const square = on !== undefined && on.M === on.N && on.N === on.K;
    const tf = on?.tflops ?? null;
    const split = on?.split !== undefined && on.split > 1 ? `, K in ${on.split} slices; split off ${sig(off?.tflops ?? null)}` : '';
    row([`f32 GEMM ${shape} (TFLOP/s)`, `${sig(tf)}${split}`, sig(torchOf.get(shape) ?? null), ratio(tf, torchOf.get(shape) ?? null), square ? '≥ 0.9×' : '']);
  }
  const best = gemmRows(tiles).reduce<GemmRow | null>((b, r) => (b === null || r.tflops > b.tflops ? r : b), null);
  if (best !== null) row([`best other tile at ${shapeOf(best)}`, `${sig(best.tflops)} (${best.variant ?? '?'})`, sig(torchOf.get(shapeOf(best)) ?? null), ratio(best.tflops, torchOf.get(shapeOf(best)) ?? null), '≥ 0.9×']);

  // The 0.5B step, with its split-off twin; shapes and sizes as the runs report them (SMOKE=1 runs tiny ones).
  const stepName = (j: Json | string, dflt: string): string =>
    typeof j === 'object' ? `${String(j['shape'])} shape, AdamW step on ${String(j['batch'])}×${String(j['seq'])} tokens (s)` : `${dflt} shape, AdamW step (s)`;
  const s = num(sw, 'step_s');
  row([stepName(sw, '0.5b'), `${fmt(s, 3)} (forward ${fmt(num(sw, 'forward_s'), 3)}; split off ${fmt(num(sn, 'step_s'), 3)})`, fmt(num(st, 'step_s'), 3), ratio(s, num(st, 'step_s')), '≤ 1.2×']);
  row(['same step, peak memory (GiB)', `${fmt(num(sw, 'peak_gb'), 2)} in buffers`, fmt(num(st, 'peak_gb'), 2), ratio(num(sw, 'peak_gb'), num(st, 'peak_gb')), '']);

  // Decode: tokens/s is higher-better, so the ratio is WebGPU / PyTorch.
  const host = typeof dw === 'object' ? (dw['device_host'] as Json | undefined) : undefined;
  const hostNote = host !== undefined ? `; ${String(host['dispatches_per_step'])} dispatches, ${String(host['host_ms_per_step'])} ms host a step` : '';
  const d = num(dw, 'tokens_per_s');
  const decodeName = typeof dw === 'object' ? `greedy decode, batch ${String(dw['batch'])}, ${String(dw['new_tokens'])} new tokens (tokens/s)` : 'greedy decode (tokens/s)';
  row([decodeName, `${fmt(d, 0)}${hostNote}`, `${fmt(num(dt, 'fp32_tokens_per_s'), 0)} fp32, ${fmt(num(dt, 'bf16_tokens_per_s'), 0)} bf16`, ratio(d, num(dt, 'fp32_tokens_per_s')), '≥ 5,000 tokens/s']);

  // The 1.5B step: that it runs, and its memory (the backend's own count, and nvidia-smi's peak when there is one).
  const summary = fs.existsSync(path.join(dir, 'summary.txt')) ? fs.readFileSync(path.join(dir, 'summary.txt'), 'utf8') : '';
  const smi = /step-1\.5b-webgpu peak GPU memory: (\d+) MiB/.exec(summary);
  const b = num(bw, 'step_s');
  row([stepName(bw, '1.5b'), fmt(b, 3), fmt(num(bt, 'step_s'), 3), ratio(b, num(bt, 'step_s')), 'runs']);
  row(['same step, peak memory (GiB)', `${fmt(num(bw, 'peak_gb'), 2)} in buffers${smi ? `, ${(Number(smi[1]) / 1024).toFixed(2)} by nvidia-smi` : ''}`, fmt(num(bt, 'peak_gb'), 2), '', '']);

  // The main job (MAIN_JOB=1): wall seconds of the two runs from summary.txt.
  const wall = (item: string): number | null => {
    const m = new RegExp(`^${item} rc=0 (\\d+) s$`, 'm').exec(summary);
    return m ? Number(m[1]) : null;
  };
  const mg = wall('main-job-webgpu');
  const mc = wall('main-job-cpu');
  if (mg !== null || mc !== null) row(['main job (`npm start`) wall time (s)', fmt(mg, 0), `CPU backend: ${fmt(mc, 0)}`, ratio(mg, mc), '']);

  if (notes.length > 0) out.push('', ...notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (dir === undefined || !fs.existsSync(dir)) {
    process.stderr.write('usage: node dist/bench/gpu-report-summary.js OUT_DIR (a bench/gpu-report.sh output directory)\n');
    process.exit(2);
  }
  process.stdout.write(summarizeGpuReport(dir));
}
