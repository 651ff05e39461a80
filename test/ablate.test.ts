// `oreal ablate` end to end with tiny settings: 2 arms × 2 seeds × 2 steps of a random tiny policy on chain prompts,
// with a scripted rollout engine whose responses are chain solutions (right ones, and ones with the starting
// policy's sign-drop error in the middle), so that the step checker has something to find. Checks that the table's
// numbers are the per-run summaries' (mean, standard error), that the oracle arm's weights are the checker's (all of
// the negatives' weight on or after the first wrong step) while the uniform arm's are not, the keys printed as
// differing, the budget mode's step counts, and the CLI's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJsBackend } from '../src/engine/js-backend.js';
import { saveCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { freshModelConfig } from '../src/train/sft.js';
import { fnv1a } from '../src/task/arith.js';
import { Mulberry32 as Rng } from '../src/util/rng.js';
import { makeChainSplit, parseChainQuestion, writeSolution } from '../src/task/chains.js';
import { ARMS, differingKeys } from '../src/ablate/arms.js';
import { ablationTable, gainDifferences, runAblation, type AblationOptions, type AblationRow, type AblationRun } from '../src/ablate/run.js';
import { readMetricsFile, type StepMetrics } from '../src/train/metrics.js';
import type { MainJobSummary } from '../src/main-job/run.js';
import type { Generation, GenerationRequest, RolloutBackend } from '../src/sample/types.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const TOKENIZER = path.join(ROOT, 'data', 'arith-tokenizer');
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

function writeTinyPolicy(dir: string): void {
  const tok = Tokenizer.load(TOKENIZER);
  const mc = freshModelConfig(
    { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true, max_position_embeddings: 512, rms_norm_eps: 1e-6, rope_theta: 10000 },
    tok,
  );
  const m = Qwen2Model.random(qwen2ConfigFromModelConfig(mc), createJsBackend(), 5);
  saveCheckpoint(dir, mc, m.toTensors(), { dtype: 'f32', tokenizerDir: TOKENIZER });
  m.dispose();
}

/** Chain solutions by a seeded script: about a third right, the rest with the sign dropped where it can be. */
class ScriptedChains implements RolloutBackend {
  readonly name = 'scripted';
  async generate(reqs: GenerationRequest[]): Promise<Generation[][]> {
    return reqs.map((r) => {
      const q = /Start with .*What is the result\?/.exec(String(r.prompt))![0];
      const p = parseChainQuestion(q)!;
      return Array.from({ length: r.n }, (_, j) => {
        const rng = new Rng(fnv1a(`${r.params.seed}/${j}`));
        const right = rng.bool(0.35) || p.crossingSteps.length === 0;
        const w = writeSolution(p, rng, { signDropRate: right ? 0 : 1 });
        return { tokenIds: [], text: w.text, finishReason: 'stop' as const, logprobs: [] };
      });
    });
  }
  async syncWeights(): Promise<void> {}
  async close(): Promise<void> {}
}

function setup(): { root: string; config: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-ablate-'));
  writeTinyPolicy(path.join(root, 'policy'));
  const rows = (ps: ReturnType<typeof makeChainSplit>, rate: boolean): string =>
    ps.map((p) => JSON.stringify({ question: p.question, gold_answer: p.answer, ...(rate ? { pass_rate: 0.5 } : {}) })).join('\n') + '\n';
  fs.writeFileSync(path.join(root, 'prompts.jsonl'), rows(makeChainSplit('train', 60, 1).filter((p) => (p.crossingSteps[0] ?? 0) >= 3).slice(0, 8), true));
  fs.writeFileSync(path.join(root, 'heldout.jsonl'), rows(makeChainSplit('heldout', 3, 1), false));
  const config = path.join(root, 'ablate.yaml');
  fs.writeFileSync(
    config,
    [
      'actor: policy',
      'datasets: prompts.jsonl',
      'eval_dataset: heldout.jsonl',
      'data_difficulty_balance_cfg: null',
      'prompt_repeat_k: 4',
      'gen_global_batch: 8',
      'gen_max_new: 200',
      'gen_max_length: 400',
      'actor_lr: 1.0e-3',
      'actor_min_lr: 1.0e-4',
      'warmup_steps: 1',
      'total_steps: 2',
      'checkpoint_interval: 0',
      'checkpoint_dtype: f32',
      'eval_interval: 2',
      'eval_samples: 4',
      'eval_greedy: false',
      'rl_micro_batch: 4',
      'judger: {url: null, verifier_threads: 1}',
      'backend: js',
      'threads: 1',
    ].join('\n') + '\n',
  );
  return { root, config };
}

test('oreal ablate: 2 arms × 2 seeds × 2 steps, table = per-run summaries, oracle weights on the error', async () => {
  const { root, config } = setup();
  const out = path.join(root, 'out');
  const opts: AblationOptions = { config, sets: [], arms: ['grpo-pair', 'oracle'], seeds: [0, 1], out, budgetMinutes: null, jobs: 1, rollout: new ScriptedChains() };
  const res = await runAblation(opts);
  assert.equal(res.runs.length, 4);
  assert.deepEqual(res.rows.map((r) => r.arm), ['grpo-pair', 'oracle']);
  for (const row of res.rows) {
    // The table's numbers from the run directories, computed here independently.
    const sums = [0, 1].map((s) => JSON.parse(fs.readFileSync(path.join(out, `${row.arm}-seed${s}`, 'summary.json'), 'utf8')) as MainJobSummary);
    const gains = sums.map((s) => s.after!.pass_at_1! - s.before.pass_at_1!);
    assert.ok(Math.abs(row.gain.mean - (gains[0]! + gains[1]!) / 2) < 1e-12);
    // n = 2: standard error = std/√2 = |a − b|/2.
    assert.ok(Math.abs(row.gain.se - Math.abs(gains[0]! - gains[1]!) / 2) < 1e-12);
    assert.ok(Math.abs(row.wall_min.mean - (sums[0]!.wall_s + sums[1]!.wall_s) / 120) < 1e-9);
    assert.deepEqual(row.seeds, [0, 1]);
    assert.equal(row.steps, 2);
    // Each seed's before-evaluation is shared by the arms and is the one in the summaries.
    const before = [0, 1].map((s) => JSON.parse(fs.readFileSync(path.join(out, `before-seed${s}.json`), 'utf8')).pass1_sampled as number);
    assert.deepEqual(sums.map((s) => s.before.pass_at_1), before);
  }
  // The scripted pass@1 differs between evaluations, so the gains are not all zero.
  assert.ok(res.runs.some((r) => r.gain !== 0));
  // The oracle puts all of the negatives' weight on or after the first wrong line; uniform weights cannot.
  const share = (arm: string, seed: number): number[] =>
    readMetricsFile(path.join(out, `${arm}-seed${seed}`, 'metrics.jsonl'))
      .filter((m): m is StepMetrics => m.type === 'train')
      .map((m) => m.neg_weight_on_error!);
  for (const s of [0, 1]) {
    assert.deepEqual(share('oracle', s), [1, 1]);
    const u = share('grpo-pair', s);
    assert.ok(u.every((v) => v > 0 && v <= 1) && Math.max(...u) < 0.8, `grpo-pair shares ${u}`);
  }
  assert.equal(res.rows[1]!.neg_weight_on_error!.mean, 1);
  assert.equal(res.rows[0]!.rm_auc, null); // neither arm has an RM
  // What differs between the arms: their defining keys and what their presets imply, nothing shared.
  assert.deepEqual(Object.keys(res.differing_keys).sort(), Object.keys(res.differing_keys).filter((k) => !['actor_lr', 'total_steps', 'datasets'].includes(k)).sort());
  assert.deepEqual(res.differing_keys['token_weight_source'], { 'grpo-pair': 'rm', oracle: 'oracle' });
  assert.deepEqual(res.differing_keys['algorithm'], { 'grpo-pair': 'grpo', oracle: 'oreal' });
  assert.equal(res.differing_keys['filter_trajectory'], undefined); // both keep pairs
  // The table file is the rendering of these rows; a second call reuses the finished runs.
  const table = fs.readFileSync(path.join(out, 'table.md'), 'utf8');
  assert.equal(table, ablationTable(res.rows) + '\n');
  assert.match(table, /\| oracle \| 2 \| 2 \|/);
  const again = await runAblation(opts);
  assert.deepEqual(again.runs, res.runs);

  // Equal wall clock: steps = ⌊budget / measured training seconds per step⌋ for each arm.
  const budget = 0.01;
  const b = await runAblation({ ...opts, seeds: [0], budgetMinutes: budget });
  for (const row of b.rows) {
    const cost = [0, 1].map((s) => res.runs.find((r) => r.arm === row.arm && r.seed === s)!).reduce((a, r) => a + r.train_s / r.steps, 0) / 2;
    assert.equal(row.steps, Math.max(1, Math.floor((budget * 60) / cost)));
  }
  assert.ok(fs.existsSync(path.join(out, 'budget-0.01min', 'table.md')));
  fs.rmSync(root, { recursive: true, force: true });
});

test('arms: every arm assigns the same keys; differingKeys reports only what differs', () => {
  const keys = ARMS.map((a) => a.sets.map((s) => s.split('=')[0]).join(','));
  assert.equal(new Set(keys).size, 1);
  assert.equal(new Set(ARMS.map((a) => a.name)).size, ARMS.length);
  const d = differingKeys([
    { arm: 'a', config: { x: 1, y: { z: 2, w: 3 }, list: [1, 2] } },
    { arm: 'b', config: { x: 1, y: { z: 5, w: 3 }, list: [1, 2] } },
  ]);
  assert.deepEqual(d, { 'y.z': { a: 2, b: 5 } });
});

test('oreal ablate CLI: unknown arm and missing budget calibration are clear errors', () => {
  const { root, config } = setup();
  const run = (args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [MAIN, 'ablate', '--config', config, '--out', path.join(root, 'o'), ...args], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stderr: r.stderr };
  };
  const a = run(['--arms', 'grpo,nope']);
  assert.equal(a.status, 1);
  assert.match(a.stderr, /^oreal: error: --arms: unknown arm "nope" \(known: rft, grpo,/m);
  const b = run(['--arms', 'grpo', '--budget-minutes', '5']);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /no finished equal-rollouts run of arm grpo .* run the ablation without --budget-minutes first/);
  fs.rmSync(root, { recursive: true, force: true });
});

test('gain differences: unpaired from the rows, and paired over the seeds both arms ran', () => {
  // Arm a beats b by 1-2 points on every seed while the seeds themselves differ a lot: unpaired wide, paired tight.
  const gains: Record<string, number[]> = { a: [0.11, 0.07, 0.16], b: [0.1, 0.05, 0.15] };
  const runs = Object.entries(gains).flatMap(([arm, g]) => g.map((gain, seed) => ({ arm, seed, gain }) as AblationRun));
  const row = (arm: string): AblationRow => {
    const g = gains[arm]!;
    const mean = g.reduce((x, y) => x + y, 0) / g.length;
    const sd = Math.sqrt(g.reduce((x, y) => x + (y - mean) ** 2, 0) / (g.length - 1));
    return { arm, seeds: [0, 1, 2], gain: { mean, se: sd / Math.sqrt(3), n: 3 } } as AblationRow;
  };
  const [line] = gainDifferences([row('a'), row('b')], ['b'], runs);
  // Unpaired: 1.33 ± √(4.51² + 5²)/√3 = 3.9 points; paired: differences 1, 2, 1 → 1.33 ± 0.33.
  assert.equal(line, 'a − b: +1.3 ± 3.9 points (0.3 SE); paired over 3 seeds: +1.3 ± 0.3 points (4.0 SE)');
  // Without the runs (or with one common seed) only the unpaired figure.
  assert.equal(gainDifferences([row('a'), row('b')], ['b'])[0], 'a − b: +1.3 ± 3.9 points (0.3 SE)');
  assert.equal(gainDifferences([row('a'), row('b')], ['b'], runs.filter((r) => r.seed === 0))[0], 'a − b: +1.3 ± 3.9 points (0.3 SE)');
});
