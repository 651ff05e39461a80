// `oreal start` end to end with tiny settings: a random 1-layer Qwen2 model on the arithmetic task's tokenizer, a
// handful of prompts, two steps. Runs the command as a child process (through registerStart, so it does not depend on
// how main.ts wires it) and checks the run directory: summary.json, metrics lines, checkpoints, trajectories with
// token-level RM weights, and report.html with its charts. Also the "starting policy missing" message.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createJsBackend } from '../src/engine/js-backend.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { freshModelConfig } from '../src/train/sft.js';
import { createProgress, formatDuration, type JobPhase, type ProgressSnapshot } from '../src/main-job/progress.js';
import { meanStd, markdownTable } from '../src/main-job/stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const TOKENIZER = path.join(ROOT, 'data', 'arith-tokenizer');
const CONFIG = path.join(ROOT, 'configs', 'main-job.yaml');
const START = pathToFileURL(path.join(ROOT, 'dist', 'src', 'cli', 'start.js')).href;
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

function tmpDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `oreal-main-job-${name}-`));
}

/** A random tiny policy with the task tokenizer (it answers nothing right; the plumbing is what is tested). */
function writeTinyPolicy(dir: string): void {
  const tok = Tokenizer.load(TOKENIZER);
  const mc = freshModelConfig(
    {
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      tie_word_embeddings: true,
      max_position_embeddings: 256, // ≥ the main job's gen_max_length (160)
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
    },
    tok,
  );
  const m = Qwen2Model.random(qwen2ConfigFromModelConfig(mc), createJsBackend(), 5);
  saveCheckpoint(dir, mc, m.toTensors(), { dtype: 'f32', tokenizerDir: TOKENIZER });
  m.dispose();
}

function writeJsonl(file: string, rows: readonly unknown[]): void {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Runs `oreal start ARGS` in a child process (cwd = `cwd`, which must see node_modules/commander). */
function runStart(args: readonly string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const code =
    `import { Command } from 'commander'; import { registerStart } from ${JSON.stringify(START)};` +
    `const p = new Command(); p.name('oreal'); registerStart(p);` +
    `await p.parseAsync(process.argv.slice(1), { from: 'user' });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, 'start', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('oreal start (main job)', () => {
  test('tiny end to end: run directory, summary, metrics, checkpoints, report', () => {
    const root = tmpDir('e2e');
    const actor = path.join(root, 'policy');
    writeTinyPolicy(actor);
    const prompts = path.join(root, 'prompts.jsonl');
    writeJsonl(prompts, [
      { question: 'Compute 2+3.', gold_answer: '5', pass_rate: 0.25 },
      { question: 'Compute 7-4.', gold_answer: '3', pass_rate: 0.5 },
      { question: 'Solve for x: x+1=3.', gold_answer: '2', pass_rate: 0.0 },
      { question: 'What is 10% of 50?', gold_answer: '5', pass_rate: 0.75 },
    ]);
    const heldout = path.join(root, 'heldout.jsonl');
    writeJsonl(heldout, [
      { question: 'Compute 4+4.', gold_answer: '8' },
      { question: 'Compute 9-1.', gold_answer: '8' },
      { question: 'Compute 3*3.', gold_answer: '9' },
    ]);
    const out = path.join(root, 'run');
    const t0 = Date.now();
    // The child runs from the repository root (cwd): the main job's config file is used as shipped, with overrides.
    const r = runStart(
      [
        '--config', CONFIG,
        '--set', `actor=${actor}`,
        '--set', `datasets=${prompts}`,
        '--set', `eval_dataset=${heldout}`,
        '--set', 'total_steps=2',
        '--set', 'gen_global_batch=8',
        '--set', 'prompt_repeat_k=4',
        '--set', 'gen_max_new=8',
        '--set', 'eval_max_new=6',
        '--set', 'eval_samples=2',
        '--set', 'eval_interval=1',
        '--set', 'actor_freeze_steps=1',
        '--set', 'warmup_steps=0',
        '--set', 'checkpoint_interval=1',
        '--set', 'filter_trajectory=none', // the random policy is never right: keep its groups so the RM sees tokens
        '--set', 'backend=js',
        '--set', 'threads=1',
        '--seed', '3',
        '--out', out,
      ],
      ROOT,
    );
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.ok(seconds < 60, `took ${seconds} s`);

    // What it prints: before → after and where things are.
    assert.match(r.stdout, /OREAL main job done: oreal with the token-level reward model, 2 steps, seed 3/);
    assert.match(r.stdout, /pass@1 \(2 samples\)/);
    for (const f of ['summary.json', 'metrics.jsonl', 'report.html']) assert.ok(r.stdout.includes(path.join(out, f)), `stdout names ${f}`);
    // Progress lines (stderr is not a terminal here): steps with reward, pass@1 and ETA.
    assert.match(r.stderr, /step 1\/2: reward -?\d\.\d{3}, kept \d+, pass@1 \d+\.\d% greedy \d+\.\d% \(before\), ETA \S+/);
    assert.match(r.stderr, /eval at step 2: pass@1/);

    // summary.json: the documented fields first.
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as Record<string, unknown>;
    const before = summary['before'] as { pass_at_1: number; greedy: number };
    const after = summary['after'] as { pass_at_1: number; greedy: number };
    for (const s of [before, after]) {
      assert.ok(s.pass_at_1 >= 0 && s.pass_at_1 <= 1);
      assert.ok(s.greedy >= 0 && s.greedy <= 1);
    }
    assert.equal(summary['steps'], 2);
    assert.ok(typeof summary['wall_s'] === 'number' && summary['wall_s'] > 0 && summary['wall_s'] < 60);
    assert.equal(summary['algorithm'], 'oreal');
    assert.equal(summary['token_level_rm'], true);
    assert.equal(summary['seed'], 3);
    assert.equal(summary['eval_problems'], 3);
    assert.equal(summary['interrupted'], false);

    // metrics.jsonl: one train line per step; eval lines before (step 0), after each step (eval_interval=1).
    const lines = fs
      .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const train = lines.filter((l) => l['type'] === 'train');
    const evals = lines.filter((l) => l['type'] === 'eval');
    assert.deepEqual(train.map((l) => l['step']), [1, 2]);
    for (const l of train) for (const k of ['avg_judger_reward', 'token_level_rm_loss', 'rl_loss', 'eta']) assert.equal(typeof l[k], 'number', k);
    assert.deepEqual(evals.map((l) => l['step']), [0, 1, 2]);
    for (const e of evals) {
      assert.equal(typeof e['pass_at_1'], 'number'); // the names the report reads
      assert.equal(typeof e['greedy'], 'number');
    }
    assert.equal(evals[0]!['pass_at_1'], before.pass_at_1);
    assert.equal(evals[2]!['greedy'], after.greedy);

    // Checkpoints (HF format) of the policy and the token-level RM, every step here.
    for (const s of [1, 2])
      for (const m of ['policy', 'token_rm']) {
        const d = path.join(out, 'checkpoints', `step-${s}`, m);
        assert.ok(fs.existsSync(path.join(d, 'config.json')), `${d}/config.json`);
        assert.ok(fs.existsSync(path.join(d, 'model.safetensors')), `${d}/model.safetensors`);
      }
    assert.match(r.stdout, /checkpoints\/step-2\/\{policy,token_rm\}/);

    // Trajectories carry the token-level RM weights of the trained sequences (for the heat-map).
    const traj = fs
      .readFileSync(path.join(out, 'trajectories', 'step-2.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kept: boolean; num_tokens: number; tokens?: string[]; token_weights?: number[] });
    const kept = traj.filter((t) => t.kept);
    assert.ok(kept.length > 0);
    for (const t of kept) {
      assert.equal(t.tokens?.length, t.num_tokens);
      assert.equal(t.token_weights?.length, t.num_tokens);
      for (const w of t.token_weights!) assert.ok(w > 0 && w < 1);
    }

    // report.html: self-contained, with the summary cards, charts (inline SVG) and the heat-map.
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    assert.match(html, /^<!DOCTYPE html>/i);
    for (const id of ['reward', 'pass_at_1', 'losses']) assert.ok(html.includes(`data-chart="${id}"`), `chart ${id}`);
    assert.ok((html.match(/<svg/g) ?? []).length >= 3, 'inline SVG charts');
    assert.ok(html.includes('class="tk'), 'token heat-map spans');

    // A second start into the same directory is refused rather than mixing two runs.
    const again = runStart(['--config', CONFIG, '--set', `actor=${actor}`, '--set', `datasets=${prompts}`, '--set', `eval_dataset=${heldout}`, '--out', out], ROOT);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already holds a run/);
  });

  test('a missing starting policy says how to regenerate it', () => {
    const root = tmpDir('missing');
    const r = runStart(['--config', CONFIG, '--set', `actor=${path.join(root, 'nope')}`, '--out', path.join(root, 'run')], ROOT);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /starting policy \(actor\) not found: .*nope/);
    assert.match(r.stderr, /make-starting-policy/);
    assert.ok(!fs.existsSync(path.join(root, 'run')), 'no run directory is created');
  });

  test('helpers: durations, mean ± std, Markdown table', () => {
    assert.equal(formatDuration(45), '45s');
    assert.equal(formatDuration(185), '3m05s');
    assert.equal(formatDuration(3720), '1h02m');
    const ms = meanStd([0.4, 0.5, 0.6]);
    assert.ok(Math.abs(ms.mean - 0.5) < 1e-12);
    assert.ok(Math.abs(ms.std - 0.1) < 1e-12); // sample standard deviation (n − 1)
    assert.equal(meanStd([0.3]).std, 0);
    const md = markdownTable([
      { algorithm: 'oreal', seeds: [0, 1], before: [0.4, 0.42], after: [0.55, 0.6], greedyBefore: [0.5, 0.5], greedyAfter: [0.6, 0.62], wall: [600, 610] },
    ]);
    assert.match(md, /^\| algorithm \|/);
    assert.match(md, /\| oreal \| 2 \| 41\.0 ± 1\.4 \| 57\.5 ± 3\.5 \| \+16\.5 ± 2\.1 \|/);
  });
});

/** The tiny job of the end-to-end test, as `--set` arguments, with `steps` steps and no in-loop evaluation. */
function tinyJobSets(root: string, steps: number): string[] {
  const actor = path.join(root, 'policy');
  writeTinyPolicy(actor);
  const prompts = path.join(root, 'prompts.jsonl');
  writeJsonl(prompts, [
    { question: 'Compute 2+3.', gold_answer: '5', pass_rate: 0.25 },
    { question: 'Compute 7-4.', gold_answer: '3', pass_rate: 0.5 },
  ]);
  const heldout = path.join(root, 'heldout.jsonl');
  writeJsonl(heldout, [{ question: 'Compute 4+4.', gold_answer: '8' }]);
  return [
    `actor=${actor}`, `datasets=${prompts}`, `eval_dataset=${heldout}`, `total_steps=${steps}`, 'gen_global_batch=8',
    'prompt_repeat_k=4', 'gen_max_new=8', 'eval_max_new=4', 'eval_samples=1', `eval_interval=${steps}`,
    'warmup_steps=0', `checkpoint_interval=${steps}`, 'backend=js', 'threads=1',
  ].flatMap((kv) => ['--set', kv]);
}

/**
 * Run `oreal ARGS`, send SIGINT once stderr matches `ready` (and again once it then matches `again`, when given: two
 * signals sent at once can arrive as one), and return how it ended.
 */
function interruptWhen(
  args: readonly string[],
  ready: RegExp,
  { again, cwd = ROOT }: { again?: RegExp; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    let sentAgain = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (!sent && ready.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      } else if (sent && !sentAgain && again !== undefined && again.test(stderr)) {
        sentAgain = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('Ctrl-C of a training run', () => {
  test('oreal train: exits 130 after the step in progress and says how to resume; the resume continues', async () => {
    const root = tmpDir('sigint-train');
    const out = path.join(root, 'run');
    const r = await interruptWhen(['train', '--config', CONFIG, ...tinyJobSets(root, 500), '--out', out], /step 1\b/);
    assert.equal(r.code, 130, `stderr:\n${r.stderr}`);
    const m = /oreal train: interrupted after step (\d+) of 500; resume with: oreal train --resume (\S+)/.exec(r.stderr);
    assert.ok(m !== null, r.stderr);
    assert.equal(m[2], out);
    const step = Number(m[1]);
    assert.ok(step >= 1 && step < 500);
    // The resumed run picks up at the next step.
    const res = spawnSync(process.execPath, [MAIN, 'train', '--resume', out, '--stop-after', String(step + 1), '--quiet'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(res.status, 0, res.stderr);
    assert.equal((JSON.parse(res.stdout.trim().split('\n').pop() as string) as { step: number }).step, step + 1);
  });

  test('oreal start: exits 130 with summary and report written, and says how to continue', async () => {
    const root = tmpDir('sigint-start');
    const out = path.join(root, 'run');
    const r = await interruptWhen(['start', '--config', CONFIG, ...tinyJobSets(root, 500), '--plain', '--out', out], /step 1\/500/);
    assert.equal(r.code, 130, `stderr:\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`oreal start: interrupted after step \\d+ of 500 \\(summary and report written\\); continue the training with: oreal train --resume ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.stdout, /OREAL main job stopped after step \d+ of 500/);
    for (const f of ['summary.json', 'report.html']) assert.ok(fs.existsSync(path.join(out, f)), f);
  });

  test('oreal start: a second Ctrl-C exits at once, 130, naming the run directory it chose', async () => {
    const root = tmpDir('sigint-start-twice');
    // No --out: the run directory is runs/<algorithm>-seed<seed>-<time> under the working directory.
    // Longer steps than the other tests', so the second signal lands well inside the step the first one let finish.
    const slower = ['--set', 'gen_global_batch=32', '--set', 'gen_max_new=48'];
    const r = await interruptWhen(['start', '--config', CONFIG, ...tinyJobSets(root, 500), ...slower, '--plain'], /step 1\/500/, { again: /Ctrl-C again to exit now/, cwd: root });
    assert.equal(r.code, 130, `stderr:\n${r.stderr}`);
    const m = /oreal start: exiting now; continue from the last saved step with: oreal train --resume (\S+)/.exec(r.stderr);
    assert.ok(m !== null, r.stderr);
    assert.equal(path.dirname(m[1] as string), path.join(fs.realpathSync(root), 'runs'));
    assert.ok(fs.existsSync(path.join(m[1] as string, 'state')), 'the named directory holds the saved state');
  });
});

describe('progress bar (terminal)', () => {
  test('shows rollout, judge and update as each starts, though the work that follows holds the event loop', () => {
    const written: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb): void {
        written.push(chunk.toString());
        cb();
      },
    }) as unknown as NodeJS.WriteStream;
    Object.assign(stream, { isTTY: true, columns: 160, rows: 40 });
    const view = createProgress(stream, 10);
    const snap: ProgressSnapshot = { phase: 'rollout', step: 3, totalSteps: 10, reward: 0.25, kept: 8, pass1: 0.5, greedy: 0.5, evalStep: 0, etaS: 60 };
    try {
      for (const phase of ['rollout', 'judge', 'update', 'save', 'rollout'] as JobPhase[]) {
        const from = written.length;
        view.update({ ...snap, phase });
        // No await here: the trainer's update (and the local engine's rollout) run synchronously after the label
        // changes, so whatever is not drawn now is not drawn until the phase is over.
        const drawn = written.slice(from).join('');
        assert.match(drawn, new RegExp(`${phase} +\u2588`), `phase ${phase} not drawn at once: ${JSON.stringify(drawn)}`);
      }
    } finally {
      view.stop();
    }
  });
});
