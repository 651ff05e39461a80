// The HTML run report: structure (one SVG path per charted series, heat-map spans = tokens, escaping of model text),
// graceful handling of missing pieces, the CLI, and a real-browser check (headless Chromium screenshot, decoded
// with a small PNG reader below, must show the charts and the heat-map colours).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { Command } from 'commander';
import { escapeHtml } from '../src/report/escape.js';
import { pickTrajectories, renderReport, weightColor, writeReport } from '../src/report/html.js';
import { earlyTrajectoryStep, loadRun, type Trajectory } from '../src/report/run.js';
import { formatTick, niceTicks } from '../src/report/svg.js';
import { registerReport } from '../src/cli/report.js';

// --------------------------------------------------------------------------------------------- fixture run dir

const STEPS = 20;

function tokensOf(text: string): string[] {
  // Split into word-ish pieces with their leading space, as decoded BPE tokens look.
  return text.match(/\s*[^\s]+|\s+/g) ?? [];
}

/** Deterministic weights in [0, 1] hitting both ends of the scale (exact 0 and 1 appear). */
function weightsFor(n: number, correct: boolean): number[] {
  const w: number[] = [];
  for (let i = 0; i < n; i++) {
    const phase = (i % 5) / 4; // 0, .25, .5, .75, 1
    w.push(correct ? Math.max(0, Math.min(1, 0.5 + (phase - 0.25))) : Math.max(0, Math.min(1, 0.5 - (phase - 0.25))));
  }
  // Make sure exact extremes are present.
  if (n > 2) {
    w[0] = correct ? 1 : 0;
    w[1] = correct ? 1 : 0;
  }
  return w;
}

function traj(text: string, reward: 1 | -1, advantage: number, withHeat: boolean, prompt?: string): Record<string, unknown> {
  const tokens = tokensOf(text);
  const t: Record<string, unknown> = { text, num_tokens: tokens.length, reward, advantage };
  if (prompt !== undefined) t['prompt'] = prompt;
  if (withHeat) {
    t['tokens'] = tokens;
    t['token_weights'] = weightsFor(tokens.length, reward === 1);
  }
  return t;
}

const LONG_CORRECT =
  'We need the sum of the first ten odd numbers. The odd numbers are 1, 3, 5, 7, 9, 11, 13, 15, 17 and 19. ' +
  'Pairing the first with the last gives 20, and there are five such pairs, so the sum is 5 * 20 = 100. ' +
  'This also matches the identity that the sum of the first n odd numbers is n^2.\nFinal answer: \\boxed{100}';
const SECOND_CORRECT = 'The sum of the first n odd numbers equals n^2, and with n = 10 that is 100.\n\\boxed{100}';
const SCRIPT_INCORRECT =
  'Adding them one by one: 1 + 3 = 4, 4 + 5 = 9, and so on. <script>alert("pwned")</script> I think the total is 90 ' +
  'because the last number is 19 & the count is ten, so the answer is \\boxed{90}';
const SECOND_INCORRECT = 'The numbers average to 9, times ten is 90. \\boxed{90}';

/** A run directory like the trainer writes: config, metrics with eval lines, trajectories, summary. */
function makeRunDir(opts: { summary?: boolean; malformed?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'oreal-report-'));
  writeFileSync(
    join(dir, 'config.resolved.yaml'),
    [
      'actor: /models/Qwen2.5-0.5B-Instruct',
      'algorithm: oreal',
      'token_level_rm: true',
      'datasets: [data/train.jsonl]',
      'prompt_repeat_k: 16',
      'gen_global_batch: 64',
      'actor_lr: 5.0e-7',
      'token_level_rm_lr: 2.0e-6',
      'kl_coef: 0.01',
      `total_steps: ${STEPS}`,
      'system_prompt: "<b>not bold</b>"',
      'judger:',
      '  mode: rescue',
      '  url: null',
      '',
    ].join('\n'),
  );
  const lines: string[] = [];
  lines.push(JSON.stringify({ type: 'eval', step: 0, pass_at_1: 0.42, greedy: 0.45 }));
  for (let s = 1; s <= STEPS; s++) {
    const f = s / STEPS;
    const rec: Record<string, unknown> = {
      step: s,
      actor_lr: s <= 10 ? 5e-8 * s : 5e-7 - 4e-7 * ((s - 10) / 10),
      actor_grad_norm: 1.5 - 0.8 * f + 0.1 * Math.sin(s),
      token_level_rm_lr: 2e-6,
      token_rm_grad_norm: 0.9 - 0.3 * f,
      avg_judger_reward: -0.3 + 0.6 * f + 0.08 * Math.sin(3 * s),
      avg_adv: 0.01 * Math.cos(s),
      avg_gen_entropy: 0.9 - 0.3 * f,
      avg_ref_kl: 0.002 * s + 0.001 * Math.sin(s),
      positive_loss: 0.8 - 0.4 * f,
      negative_loss: 0.3 - 0.2 * f + 0.02 * Math.sin(2 * s),
      kl_penalty_loss: 0.0001 * s,
      rl_loss: 1.1 - 0.6 * f,
      token_level_rm_loss: 0.69 - 0.25 * f,
      avg_new_tokens: 420 + 8 * s + 15 * Math.sin(s),
      gen_time: 30 + Math.sin(s),
      infer_time: 5,
      rl_time: 12,
      total_time: 48 + Math.sin(s),
      eta: (STEPS - s) * 48,
      some_unknown_key: 'ignored',
    };
    if (s % 2 === 0) rec['type'] = 'step';
    lines.push(JSON.stringify(rec));
    if (s % 5 === 0) lines.push(JSON.stringify({ type: 'eval', step: s, pass_at_1: 0.42 + 0.01 * s, greedy: 0.45 + 0.008 * s }));
    if (s === 7 && opts.malformed === true) lines.push('{"step": 7.5, "avg_judger_reward": 0.1');
    if (s === 8) lines.push(JSON.stringify({ type: 'checkpoint', step: 8, path: 'ckpt/step-8' }));
  }
  writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');

  mkdirSync(join(dir, 'trajectories'));
  const prompt = 'What is the sum of the first ten odd numbers? <img src=x onerror=alert(1)>';
  writeFileSync(
    join(dir, 'trajectories', 'step-10.jsonl'),
    JSON.stringify(traj('old step text', 1, 0.5, false, prompt)) + '\n',
  );
  const last = [
    traj(LONG_CORRECT, 1, 0.9, true, prompt),
    traj(SECOND_CORRECT, 1, 0.5, true, prompt),
    traj('The answer is 100 (no weights dumped).', 1, 0.95, false, prompt),
    traj(SCRIPT_INCORRECT, -1, -0.8, true, prompt),
    traj(SECOND_INCORRECT, -1, -0.3, true, prompt),
    traj('</div><script>document.title="x"</script> \\boxed{91}', -1, -0.9, false, prompt),
  ];
  writeFileSync(join(dir, 'trajectories', 'step-20.jsonl'), last.map((t) => JSON.stringify(t)).join('\n') + '\n');
  if (opts.summary !== false) {
    writeFileSync(
      join(dir, 'summary.json'),
      JSON.stringify({ before: { pass_at_1: 0.42, greedy: 0.45 }, after: { pass_at_1: 0.63, greedy: 0.61 }, steps: STEPS, wall_s: 977.5 }),
    );
  }
  return dir;
}

/** The inner HTML of the figure `data-chart="id"`. */
function figure(html: string, id: string): string {
  const start = html.indexOf(`data-chart="${id}"`);
  assert.ok(start >= 0, `chart ${id} present`);
  const end = html.indexOf('</figure>', start);
  return html.slice(start, end);
}

const count = (s: string, needle: string | RegExp): number =>
  typeof needle === 'string' ? s.split(needle).length - 1 : (s.match(new RegExp(needle.source, needle.flags.includes('g') ? needle.flags : needle.flags + 'g')) ?? []).length;

// --------------------------------------------------------------------------------------------- structure tests

test('niceTicks and formatTick give round, covering ticks', () => {
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(1, 20, 6, true), [5, 10, 15, 20]);
  assert.ok(niceTicks(3, 3, 5, true).includes(3));
  assert.equal(formatTick(0.25, 0.05), '0.25');
  assert.equal(formatTick(2e-7, 1e-7), '2e-7');
  assert.equal(formatTick(15, 5), '15');
  assert.deepEqual(niceTicks(NaN, 1), []);
});

test('escapeHtml escapes markup and shows control characters', () => {
  assert.equal(escapeHtml(`<script>"a" & 'b'</script>`), '&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;');
  assert.equal(escapeHtml('a\u0000b\nc'), 'a\u2400b\nc');
  assert.equal(escapeHtml('x\ud800y'), 'x\ufffdy');
  assert.equal(escapeHtml('😀'), '😀');
});

test('loadRun reads steps, evals, summary and the last trajectories; warns on malformed lines by line number', () => {
  const dir = makeRunDir({ malformed: true });
  try {
    const run = loadRun(dir);
    assert.equal(run.steps.length, STEPS);
    assert.equal(run.steps[0]?.step, 1);
    assert.equal(run.steps[0]?.values['some_unknown_key'], undefined);
    assert.equal(typeof run.steps[1]?.values['avg_judger_reward'], 'number', 'typed step lines are read too');
    assert.deepEqual(
      run.evals.map((e) => e.step),
      [0, 5, 10, 15, 20],
    );
    assert.equal(run.summary?.after?.pass_at_1, 0.63);
    assert.deepEqual(run.trajectorySteps, [10, 20]);
    assert.equal(run.lastTrajectories?.step, 20);
    assert.equal(run.lastTrajectories?.trajectories.length, 6);
    assert.equal(run.earlyTrajectories?.step, 10);
    assert.equal(run.earlyTrajectories?.trajectories.length, 1);
    assert.equal(run.config?.get('judger.mode'), 'rescue');
    assert.equal(run.warnings.length, 1);
    // Line numbers: line 1 eval@0, then per step one line (+ eval every 5 steps): the bad line follows step 7 on line 10.
    assert.match(run.warnings[0] ?? '', /metrics\.jsonl:10: skipped malformed line/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('earlyTrajectoryStep: the dumped step nearest a tenth of the last, never the last itself', () => {
  assert.equal(earlyTrajectoryStep([]), null);
  assert.equal(earlyTrajectoryStep([200]), null);
  assert.equal(earlyTrajectoryStep([1, 10, 20, 30, 100, 200]), 20);
  assert.equal(earlyTrajectoryStep([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 1);
  assert.equal(earlyTrajectoryStep([150, 200]), 150);
});

test('renderReport: one SVG path per charted series, axes, hover titles, summary and config', () => {
  const dir = makeRunDir();
  try {
    const html = renderReport(dir, { onWarning: () => undefined, now: new Date('2025-01-01T00:00:00Z') });
    assert.match(html, /^<!DOCTYPE html>/);
    assert.ok(!/<script/i.test(html), 'no script element anywhere');
    assert.ok(!/https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(html), 'nothing fetched from the network');
    const expected: Record<string, number> = { reward: 2, pass_at_1: 2, length: 1, losses: 4, kl: 1, entropy: 1, grad_norm: 2, time: 4 };
    for (const [id, n] of Object.entries(expected)) {
      const fig = figure(html, id);
      assert.equal(count(fig, '<svg'), 1, `${id}: one svg`);
      assert.equal(count(fig, '<path class="line"'), n, `${id}: ${n} series paths`);
      assert.ok(count(fig, 'class="tick"') >= 6, `${id}: tick labels`);
      assert.ok(fig.includes('class="axis-label"'), `${id}: axis labels`);
      assert.ok(count(fig, /<g class="pt">/) >= 5, `${id}: hover markers`);
    }
    const reward = figure(html, 'reward');
    const d = /<path class="line" d="([^"]*)"/.exec(reward)?.[1] ?? '';
    assert.equal(count(d, 'M'), 1);
    assert.equal(count(d, 'L'), STEPS - 1, 'reward path goes through every step');
    assert.match(reward, /<title>avg_judger_reward · step 5: -?[0-9.]+<\/title>/);
    // Before/after markers from summary.json on the pass@1 chart (diamonds and squares), plus the eval line.
    const pass = figure(html, 'pass_at_1');
    assert.match(pass, /pass@1 before\/after · step 0: 0\.42/);
    assert.match(pass, /pass@1 before\/after · step 20: 0\.63/);
    assert.match(pass, /greedy · step 15: 0\.57/);
    // Header.
    assert.ok(html.includes('42.0% → 63.0%'));
    assert.ok(html.includes('+21.0 pts'));
    assert.ok(html.includes('20 / 20'));
    assert.ok(html.includes('16m 18s'));
    assert.ok(html.includes('finished'));
    assert.ok(html.includes('&lt;b&gt;not bold&lt;/b&gt;'), 'config values escaped');
    assert.ok(!html.includes('<b>not bold</b>'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('renderReport: heat-map spans = tokens of the shown trajectories, each titled, model text escaped', () => {
  const dir = makeRunDir();
  try {
    const html = renderReport(dir, { onWarning: () => undefined });
    const trajs = loadRun(dir).lastTrajectories?.trajectories ?? [];
    const { correct, incorrect } = pickTrajectories(trajs, 2);
    const shown: Trajectory[] = [...correct, ...incorrect];
    assert.equal(shown.length, 4);
    assert.ok(shown.every((t) => t.tokens !== undefined && t.token_weights !== undefined), 'heat-mapped ones preferred');
    const expectedSpans = shown.reduce((a, t) => a + (t.tokens?.length ?? 0), 0);
    assert.equal(count(html, /<span class="tk( hi)?" style="background:#[0-9a-f]{6}" title="w=[0-9.e-]+">/g), expectedSpans);
    assert.equal(count(html, /class="tk( hi)?"/g), expectedSpans);
    assert.ok(html.includes(`style="background:${weightColor(0)}"`) && html.includes(`style="background:${weightColor(1)}"`));
    assert.ok(html.includes('class="legend-bar"'), 'heat-map legend');
    // Two correct and two incorrect from the last step, and step 10's single (correct, unweighted) one.
    assert.equal(count(html, '<article class="traj correct">'), 3);
    assert.equal(count(html, '<article class="traj incorrect">'), 2);
    assert.ok(html.indexOf('Step 10 (early in the run)') < html.indexOf('Step 20 (the last of 2 dumped)'));
    assert.ok(html.includes('old step text'));
    // The <script> inside model output (split across tokens) and the prompt's <img> are inert text.
    assert.ok(html.includes('&lt;script&gt;alert'));
    assert.ok(!/<script/i.test(html));
    assert.ok(!html.includes('<img'));
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
    // The token spans concatenate back to the response text (escaped).
    const first = shown[0];
    assert.ok(first !== undefined);
    const heat = /<div class="resp heat">(.*?)<\/div>/s.exec(html)?.[1] ?? '';
    assert.equal(heat.replace(/<span[^>]*>|<\/span>/g, ''), escapeHtml(first.text));

    // With more samples per class, the plain-text ones (no weights) are shown escaped too.
    const more = renderReport(dir, { onWarning: () => undefined, samplesPerClass: 3 });
    assert.ok(more.includes('&lt;/div&gt;&lt;script&gt;document.title='));
    assert.ok(!/<script/i.test(more));
    assert.equal(count(more, 'no token-level RM weights for this trajectory'), 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('renderReport handles missing pieces: a run just started, no evals, no weights, no summary', () => {
  const empty = mkdtempSync(join(tmpdir(), 'oreal-report-empty-'));
  try {
    // What the trainer has made before its first step (an empty folder is not a run: see below).
    mkdirSync(join(empty, 'trajectories'));
    mkdirSync(join(empty, 'checkpoints'));
    const html = renderReport(empty, { onWarning: () => assert.fail('no warnings expected') });
    assert.equal(count(html, 'no data yet'), 8);
    assert.ok(html.includes('No training steps logged yet'));
    assert.ok(html.includes('No trajectories dumped yet'));
    assert.ok(html.includes('No config.resolved.yaml'));
    assert.ok(html.includes('running / incomplete'));
    assert.equal(count(html, '<path class="line"'), 0);

    // Steps but no eval lines, no summary, trajectories without tokens; a half-written last line.
    writeFileSync(join(empty, 'metrics.jsonl'), `${JSON.stringify({ step: 1, avg_judger_reward: 0.1, total_time: 30, eta: 60 })}\n{"step": 2, "avg_ju`);
    writeFileSync(join(empty, 'trajectories', 'step-1.jsonl'), `${JSON.stringify({ text: 'a <b>', num_tokens: 2, reward: -1, advantage: -0.5 })}\nnot json\n`);
    const warnings: string[] = [];
    const html2 = renderReport(empty, { onWarning: (w) => warnings.push(w) });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0] ?? '', /metrics\.jsonl:2: skipped malformed line .*still being written/);
    assert.match(warnings[1] ?? '', /step-1\.jsonl:2: skipped malformed line/);
    assert.ok(html2.includes('id="warnings"'));
    assert.match(figure(html2, 'reward'), /<circle/, 'a single step still shows a point');
    assert.ok(figure(html2, 'pass_at_1').includes('no data yet'));
    assert.ok(html2.includes('a &lt;b&gt;'));
    assert.ok(html2.includes('ETA 1m 00s'));
    assert.ok(!html2.includes('class="legend-bar"'), 'no heat-map legend without weights');
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  assert.throws(() => renderReport(join(tmpdir(), 'oreal-no-such-run-dir-xyz')), /run directory not found/);
});

test('writeReport is atomic and the CLI prints the path', async () => {
  const dir = makeRunDir();
  try {
    const path = writeReport(dir, undefined, { onWarning: () => undefined });
    assert.equal(path, join(dir, 'report.html'));
    assert.ok(readFileSync(path, 'utf8').startsWith('<!DOCTYPE html>'));
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);

    const out = join(dir, 'custom.html');
    const program = new Command().exitOverride();
    registerReport(program);
    const written: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array): boolean => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync(['report', dir, '--out', out], { from: 'user' });
    } finally {
      process.stdout.write = orig;
    }
    assert.equal(written.join('').trim(), out);
    assert.ok(existsSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------ headless Chromium

interface DecodedPng {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel. */
  rgba: Uint8Array;
}

/** A minimal PNG reader: 8-bit greyscale / RGB / grey+alpha / RGBA, non-interlaced (what Chromium writes). */
function decodePng(buf: Buffer): DecodedPng {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  assert.ok(sig.every((b, i) => buf[i] === b), 'PNG signature');
  let off = 8;
  let width = 0;
  let height = 0;
  let colorType = -1;
  const idat: Buffer[] = [];
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      colorType = data[9] ?? -1;
      const interlace = data[12];
      assert.equal(depth, 8, 'bit depth 8');
      assert.equal(interlace, 0, 'not interlaced');
      assert.ok([0, 2, 4, 6].includes(colorType), `colour type ${colorType} supported`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const channels = colorType === 0 ? 1 : colorType === 2 ? 3 : colorType === 4 ? 2 : 4;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, height * (stride + 1), 'decompressed size');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    for (let i = 0; i < stride; i++) {
      const x = raw[src + i] ?? 0;
      const a = i >= channels ? (px[dst + i - channels] ?? 0) : 0;
      const b = y > 0 ? (px[dst - stride + i] ?? 0) : 0;
      const c = y > 0 && i >= channels ? (px[dst - stride + i - channels] ?? 0) : 0;
      let v: number;
      switch (filter) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default:
          throw new Error(`bad PNG filter ${String(filter)} on row ${y}`);
      }
      px[dst + i] = v & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const s = i * channels;
    const g = px[s] ?? 0;
    if (channels === 1 || channels === 2) {
      rgba[i * 4] = g;
      rgba[i * 4 + 1] = g;
      rgba[i * 4 + 2] = g;
      rgba[i * 4 + 3] = channels === 2 ? (px[s + 1] ?? 255) : 255;
    } else {
      rgba[i * 4] = px[s] ?? 0;
      rgba[i * 4 + 1] = px[s + 1] ?? 0;
      rgba[i * 4 + 2] = px[s + 2] ?? 0;
      rgba[i * 4 + 3] = channels === 4 ? (px[s + 3] ?? 255) : 255;
    }
  }
  return { width, height, rgba };
}

const CHROMIUM = process.env['OREAL_CHROMIUM'] ?? '/usr/bin/chromium';

/** The screenshot's size: tall enough for the charts and both blocks of trajectories. */
const SHOT_WIDTH = 1280;
const SHOT_HEIGHT = 2600;

/** Run Chromium headless to screenshot `url`; kill its whole process group on timeout and afterwards. */
async function screenshot(url: string, png: string, timeoutMs = 60_000): Promise<{ code: number | null; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'oreal-chromium-profile-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    `--user-data-dir=${profile}`,
    `--screenshot=${png}`,
    `--window-size=${SHOT_WIDTH},${SHOT_HEIGHT}`,
    url,
  ];
  const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    return await new Promise((resolveRun, rejectRun) => {
      const timer = setTimeout(() => {
        killGroup();
        rejectRun(new Error(`chromium did not finish within ${timeoutMs / 1000} s; stderr:\n${stderr.slice(-2000)}`));
      }, timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        rejectRun(err);
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolveRun({ code, stderr });
      });
    });
  } finally {
    killGroup();
    rmSync(profile, { recursive: true, force: true });
  }
}

test('headless Chromium renders the report: charts and heat-map colours on a non-blank page', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(`Chromium not found at ${CHROMIUM}: install it with \`apt-get update && apt-get install -y chromium\` (or set OREAL_CHROMIUM)`);
  }
  const dir = makeRunDir();
  try {
    const report = writeReport(dir, undefined, { onWarning: () => undefined });
    const png = join(dir, 'shot.png');
    const { code, stderr } = await screenshot(`file://${report}`, png);
    assert.ok(existsSync(png), `chromium wrote no screenshot (exit ${String(code)}); stderr:\n${stderr.slice(-2000)}`);
    const keep = process.env['OREAL_REPORT_SCREENSHOT'];
    if (keep !== undefined && keep !== '') {
      // For looking at the page by hand: the screenshot and the report next to it.
      copyFileSync(png, keep);
      copyFileSync(report, `${keep}.html`);
    }
    const img = decodePng(readFileSync(png));
    assert.equal(img.width, SHOT_WIDTH);
    assert.equal(img.height, SHOT_HEIGHT);

    const n = img.width * img.height;
    const histogram = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const key = ((img.rgba[i * 4] ?? 0) << 16) | ((img.rgba[i * 4 + 1] ?? 0) << 8) | (img.rgba[i * 4 + 2] ?? 0);
      histogram.set(key, (histogram.get(key) ?? 0) + 1);
    }
    let background = 0;
    let backgroundCount = 0;
    for (const [k, c] of histogram) if (c > backgroundCount) [background, backgroundCount] = [k, c];
    const white = histogram.get(0xffffff) ?? 0;
    const near = (hex: string, tol = 3): number => {
      const r = parseInt(hex.slice(1, 3), 16);
      const g = parseInt(hex.slice(3, 5), 16);
      const b = parseInt(hex.slice(5, 7), 16);
      let c = 0;
      for (const [k, cnt] of histogram) {
        if (Math.abs(((k >> 16) & 255) - r) <= tol && Math.abs(((k >> 8) & 255) - g) <= tol && Math.abs((k & 255) - b) <= tol) c += cnt;
      }
      return c;
    };
    const stats = {
      distinctColours: histogram.size,
      backgroundColour: `#${background.toString(16).padStart(6, '0')}`,
      nonBackgroundFraction: 1 - backgroundCount / n,
      nonWhiteFraction: 1 - white / n,
      heatLow: near(weightColor(0)),
      heatHigh: near(weightColor(1)),
      heatQuarter: near(weightColor(0.25)),
      chartBlue: near('#1f77b4', 8),
    };
    t.diagnostic(`screenshot ${png}: ${JSON.stringify(stats)}`);
    assert.ok(stats.distinctColours >= 500, `many distinct colours (${stats.distinctColours})`);
    assert.ok(stats.nonWhiteFraction > 0.3, `mostly not white (${stats.nonWhiteFraction})`);
    assert.ok(stats.nonBackgroundFraction > 0.15, `a substantial part differs from the page background (${stats.nonBackgroundFraction})`);
    assert.ok(stats.heatLow >= 200, `heat-map red (weight 0) visible: ${stats.heatLow} px`);
    assert.ok(stats.heatHigh >= 200, `heat-map green (weight 1) visible: ${stats.heatHigh} px`);
    assert.ok(stats.heatQuarter >= 100, `heat-map mid shade (weight 0.25) visible: ${stats.heatQuarter} px`);
    assert.ok(stats.chartBlue >= 300, `chart lines visible: ${stats.chartBlue} px`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder that is not a run is refused (no report written); a run that has only just started is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'oreal-report-notrun-'));
  try {
    writeFileSync(join(dir, 'notes.txt'), 'not a run\n');
    assert.throws(() => writeReport(dir), /is not a run directory: it has none of config\.resolved\.yaml, metrics\.jsonl, summary\.json, trajectories\//);
    assert.ok(!existsSync(join(dir, 'report.html')));
    const cli = spawnSync(process.execPath, [fileURLToPath(new URL('../src/cli/main.js', import.meta.url)), 'report', dir], { encoding: 'utf8' });
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stderr, /^oreal: error: .*is not a run directory/);
    assert.ok(!existsSync(join(dir, 'report.html')));
    // The trainer makes trajectories/ and checkpoints/ before its first step: that is already a run.
    mkdirSync(join(dir, 'trajectories'));
    assert.ok(writeReport(dir, undefined, { onWarning: () => undefined }).endsWith('report.html'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sample trajectories show the question they answer (the trainer dumps it as "question", the prompt as an index)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'oreal-report-question-'));
  try {
    mkdirSync(join(dir, 'trajectories'));
    // Lines as src/train/trainer.ts writes them.
    const line = (sample: number, text: string, reward: number, advantage: number): string =>
      JSON.stringify({ prompt: 0, sample, question: 'What is 17 + 25? <b>', gold: '42', text, num_tokens: 5, finish_reason: 'stop', reward, advantage, kept: true, judge: 'rule' });
    writeFileSync(join(dir, 'trajectories', 'step-1.jsonl'), [line(0, '\\boxed{42}', 1, 0.5), line(1, '\\boxed{41}', -1, -0.5)].join('\n') + '\n');
    const run = loadRun(dir);
    assert.equal(run.lastTrajectories?.trajectories[0]?.question, 'What is 17 + 25? <b>');
    const html = renderReport(dir, { onWarning: () => undefined });
    const articles = html.split('<article class="traj').slice(1);
    assert.equal(articles.length, 2);
    for (const a of articles) {
      assert.ok(a.includes('What is 17 + 25? &lt;b&gt;'), 'question shown, escaped');
      assert.match(a, /gold answer.*42/);
      assert.ok(!/<details>[^]*What is 17/.test(a.split('</article>')[0] ?? ''), 'the question is in view, not folded away');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
