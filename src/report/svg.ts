// Inline SVG line charts for the run report: axes with "nice" ticks and labels, grid lines, one path per series
// (broken where a value is missing), and point markers carrying <title> tooltips for hovering. No scripts.

import { escapeHtml } from './escape.js';

export interface ChartPoint {
  x: number;
  y: number;
}

export interface ChartSeries {
  name: string;
  points: readonly ChartPoint[];
  /** CSS colour; default: from the palette by series index. */
  color?: string;
  /** Draw markers only (no connecting line), e.g. for before/after points. */
  markersOnly?: boolean;
  /** Marker shape (default circle). */
  marker?: 'circle' | 'diamond' | 'square';
  /** Dashed line. */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  series: readonly ChartSeries[];
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Fixed y range (otherwise from the data, padded). */
  yMin?: number;
  yMax?: number;
  /** Round x ticks to integers (steps). Default true. */
  integerX?: boolean;
}

export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** At most this many hover markers per series (evenly strided beyond it). */
const MAX_MARKERS = 600;
/** Markers are drawn visibly up to this many points per series; beyond it they are invisible hover targets. */
const VISIBLE_MARKERS = 80;

/**
 * Round tick positions covering [min, max]: about `count` ticks at a step of 1, 2 or 5 times a power of ten.
 * With `integer`, the step is at least 1.
 */
export function niceTicks(min: number, max: number, count = 5, integer = false): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  let step = niceStep((max - min) / Math.max(1, count));
  if (integer) step = Math.max(1, Math.round(step));
  const start = Math.ceil(min / step - 1e-9);
  const end = Math.floor(max / step + 1e-9);
  const ticks: number[] = [];
  for (let i = start; i <= end && ticks.length < 100; i++) ticks.push(cleanFloat(i * step));
  return ticks;
}

function niceStep(raw: number): number {
  const exp = Math.floor(Math.log10(raw));
  const base = Math.pow(10, exp);
  const f = raw / base;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nice * base;
}

function cleanFloat(v: number): number {
  return v === 0 ? 0 : Number(v.toPrecision(12));
}

/** Label of a tick value, given the distance between ticks. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || (step > 0 && step < 1e-3)) return Number(v.toPrecision(3)).toExponential();
  const decimals = step > 0 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : 2;
  return v.toFixed(decimals);
}

/** A value shown in a tooltip or table: up to 4 significant digits, exponent form for very small / large. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e7) return Number(v.toPrecision(3)).toExponential();
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

const f2 = (v: number): string => (Math.round(v * 100) / 100).toString();

/** Render one line chart as an inline <svg> element. Series without finite points are left out of the legend. */
export function renderLineChart(opts: LineChartOptions): string {
  const width = opts.width ?? 600;
  const height = opts.height ?? 280;
  const integerX = opts.integerX ?? true;
  const series = opts.series
    .map((s, i) => ({
      ...s,
      color: s.color ?? PALETTE[i % PALETTE.length] ?? '#333',
      points: s.points.filter((p) => Number.isFinite(p.x)).slice().sort((a, b) => a.x - b.x),
    }))
    .filter((s) => s.points.some((p) => Number.isFinite(p.y)));

  // Legend rows (estimated text widths; the legend sits under the title).
  const legendItems = series.length > 1 || series.some((s) => s.markersOnly) ? series : [];
  const legendRows: { name: string; color: string; x: number; row: number; s: (typeof series)[number] }[] = [];
  {
    let x = 64;
    let row = 0;
    for (const s of legendItems) {
      const w = 26 + s.name.length * 6.6 + 14;
      if (x + w > width - 8 && x > 64) {
        row++;
        x = 64;
      }
      legendRows.push({ name: s.name, color: s.color, x, row, s });
      x += w;
    }
  }
  const nLegendRows = legendRows.length === 0 ? 0 : (legendRows[legendRows.length - 1]?.row ?? 0) + 1;
  const m = { left: 64, right: 18, top: 30 + nLegendRows * 16, bottom: 44 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;

  const out: string[] = [];
  out.push(
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(opts.title)}">`,
  );
  out.push(`<title>${escapeHtml(opts.title)}</title>`);
  out.push(`<text class="chart-title" x="${m.left}" y="18">${escapeHtml(opts.title)}</text>`);

  for (const item of legendRows) {
    const y = 30 + item.row * 16;
    out.push(`<g class="legend-item"><title>${escapeHtml(item.name)}</title>`);
    if (item.s.markersOnly) {
      out.push(markerSvg(item.x + 10, y - 4, item.s.marker ?? 'circle', item.color, 4, true));
    } else {
      out.push(
        `<line x1="${item.x}" y1="${y - 4}" x2="${item.x + 20}" y2="${y - 4}" stroke="${escapeHtml(item.color)}" stroke-width="2.5"${item.s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    out.push(`<text class="legend" x="${item.x + 26}" y="${y}">${escapeHtml(item.name)}</text></g>`);
  }

  const all = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.y)));
  if (all.length === 0) {
    out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="#fafafa" stroke="#ccc"/>`);
    out.push(`<text class="no-data" x="${m.left + pw / 2}" y="${m.top + ph / 2}" text-anchor="middle">no data yet</text>`);
    out.push('</svg>');
    return out.join('');
  }

  // Loops rather than Math.min(...xs): long runs must not overflow the argument stack.
  let xMin = Infinity;
  let xMax = -Infinity;
  let dataYMin = Infinity;
  let dataYMax = -Infinity;
  for (const p of all) {
    if (p.x < xMin) xMin = p.x;
    if (p.x > xMax) xMax = p.x;
    if (p.y < dataYMin) dataYMin = p.y;
    if (p.y > dataYMax) dataYMax = p.y;
  }
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  } else {
    const pad = (xMax - xMin) * 0.02; // keep the first and last markers off the axes
    xMin -= pad;
    xMax += pad;
  }
  let yMin = opts.yMin ?? dataYMin;
  let yMax = opts.yMax ?? dataYMax;
  if (yMin === yMax) {
    const pad = yMin === 0 ? 1 : Math.abs(yMin) * 0.1;
    yMin -= pad;
    yMax += pad;
  } else if (opts.yMin === undefined || opts.yMax === undefined) {
    const pad = (yMax - yMin) * 0.06;
    if (opts.yMin === undefined) yMin -= pad;
    if (opts.yMax === undefined) yMax += pad;
  }
  const xTicks = niceTicks(xMin, xMax, 6, integerX);
  const yTicks = niceTicks(yMin, yMax, 5);
  const yStep = yTicks.length > 1 ? (yTicks[1] ?? 0) - (yTicks[0] ?? 0) : 0;
  const xStep = xTicks.length > 1 ? (xTicks[1] ?? 0) - (xTicks[0] ?? 0) : 1;
  const sx = (x: number): number => m.left + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number): number => m.top + ph - ((y - yMin) / (yMax - yMin)) * ph;

  // Plot area, grid and axes.
  out.push(`<rect class="plot-bg" x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="#fcfcfd"/>`);
  out.push('<g class="grid">');
  for (const t of yTicks) out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${f2(sy(t))}" y2="${f2(sy(t))}" stroke="#e3e3e8"/>`);
  for (const t of xTicks) out.push(`<line y1="${m.top}" y2="${m.top + ph}" x1="${f2(sx(t))}" x2="${f2(sx(t))}" stroke="#efeff3"/>`);
  out.push('</g>');
  out.push('<g class="axis y-axis">');
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#555"/>`);
  for (const t of yTicks) {
    const y = f2(sy(t));
    out.push(`<line x1="${m.left - 5}" x2="${m.left}" y1="${y}" y2="${y}" stroke="#555"/>`);
    out.push(`<text class="tick" x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatTick(t, yStep))}</text>`);
  }
  out.push('</g>');
  out.push('<g class="axis x-axis">');
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#555"/>`);
  for (const t of xTicks) {
    const x = f2(sx(t));
    out.push(`<line x1="${x}" x2="${x}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#555"/>`);
    out.push(`<text class="tick" x="${x}" y="${m.top + ph + 17}" text-anchor="middle">${escapeHtml(formatTick(t, xStep))}</text>`);
  }
  out.push('</g>');
  if (opts.xLabel !== undefined) {
    out.push(`<text class="axis-label" x="${m.left + pw / 2}" y="${height - 6}" text-anchor="middle">${escapeHtml(opts.xLabel)}</text>`);
  }
  if (opts.yLabel !== undefined) {
    const cy = m.top + ph / 2;
    out.push(`<text class="axis-label" x="14" y="${cy}" text-anchor="middle" transform="rotate(-90 14 ${cy})">${escapeHtml(opts.yLabel)}</text>`);
  }

  // Series.
  for (const s of series) {
    const color = escapeHtml(s.color);
    out.push(`<g class="series" data-series="${escapeHtml(s.name)}">`);
    if (!s.markersOnly) {
      const d: string[] = [];
      let pen = false;
      for (const p of s.points) {
        if (!Number.isFinite(p.y)) {
          pen = false;
          continue;
        }
        d.push(`${pen ? 'L' : 'M'}${f2(sx(p.x))} ${f2(sy(p.y))}`);
        pen = true;
      }
      out.push(
        `<path class="line" d="${d.join('')}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"${s.dashed ? ' stroke-dasharray="5 3"' : ''}><title>${escapeHtml(s.name)}</title></path>`,
      );
    }
    const finite = s.points.filter((p) => Number.isFinite(p.y));
    const stride = Math.max(1, Math.ceil(finite.length / MAX_MARKERS));
    const visible = s.markersOnly === true || finite.length <= VISIBLE_MARKERS;
    for (let i = 0; i < finite.length; i += stride) {
      const p = finite[i];
      if (p === undefined) continue;
      const tip = `${s.name} · step ${formatValue(p.x)}: ${formatValue(p.y)}`;
      out.push(
        `<g class="pt">${markerSvg(sx(p.x), sy(p.y), s.marker ?? 'circle', s.color, s.markersOnly ? 5 : 3, visible)}<title>${escapeHtml(tip)}</title></g>`,
      );
    }
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('');
}

function markerSvg(x: number, y: number, shape: 'circle' | 'diamond' | 'square', color: string, r: number, visible: boolean): string {
  const c = escapeHtml(color);
  const paint = visible ? `fill="${c}" stroke="#fff" stroke-width="1"` : `fill="${c}" fill-opacity="0"`;
  const hitR = visible ? r : 4;
  switch (shape) {
    case 'diamond':
      return `<path d="M${f2(x)} ${f2(y - hitR - 1)}L${f2(x + hitR + 1)} ${f2(y)}L${f2(x)} ${f2(y + hitR + 1)}L${f2(x - hitR - 1)} ${f2(y)}Z" ${paint}/>`;
    case 'square':
      return `<rect x="${f2(x - hitR)}" y="${f2(y - hitR)}" width="${f2(2 * hitR)}" height="${f2(2 * hitR)}" ${paint}/>`;
    default:
      return `<circle cx="${f2(x)}" cy="${f2(y)}" r="${hitR}" ${paint}/>`;
  }
}
