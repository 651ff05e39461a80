// The OREAL trainer: config validation, prompt data and difficulty balancing, end-to-end runs on a tiny random model,
// exact resume after kills at different stages, and the non-finite-loss guard.
//
// The tiny model is self-contained: a byte-level tokenizer with ChatML specials built here, and a random 2-layer
// Qwen2 whose residual stream carries a constant direction that the LM head maps onto `<|im_end|>`, so about one
// token in seven ends the response (a purely random model would almost never stop). Rewards come from the real
// `computeRewards` (stop-word / truncation handling) with a stand-in rule verifier that calls a response correct by
// a hash of its text, so groups have mixed outcomes.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { createJsBackend } from '../src/engine/js-backend.js';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.js';
import { parseConfig } from '../src/model/config.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import {
  REFERENCE_DIFFICULTY_BINS,
  TrainConfigError,
  applyOverride,
  configToYaml,
  loadTrainConfig,
  lossConfigOf,
  parseTrainConfig,
  type TrainConfig,
} from '../src/train/config.js';
import { PromptStream, balanceByDifficulty, loadPrompts, type PromptRecord } from '../src/train/data.js';
import { TIMING_FIELDS, readMetricsFile, type StepMetrics } from '../src/train/metrics.js';
import { runTraining, type TrainStage } from '../src/train/trainer.js';
import type { RuleVerifier } from '../src/verify/reward.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const CONFIGS = path.join(REPO, 'configs');

const made: string[] = [];
function tmpDir(name: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `oreal-train-${name}-`));
  made.push(d);
  return d;
}
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Fixtures.

/** GPT-2 style byte → printable character table (printable bytes map to themselves, the rest to U+0100…). */
function byteChars(): string[] {
  const out: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : next++);
  }
  return out;
}

const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const STOP_ID = 258;
const VOCAB = 260;

function writeTokenizer(dir: string): void {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  const tj = {
    version: '1.0',
    added_tokens: SPECIALS.map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: bl,
    post_processor: bl,
    decoder: bl,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
  const chat =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const tc = { eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: chat };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
}

const MODEL_JSON = {
  model_type: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  vocab_size: VOCAB,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  max_position_embeddings: 256,
  eos_token_id: STOP_ID,
};

/** A tiny random Qwen2 checkpoint (with tokenizer) that stops after ~7 tokens on average. */
function writeTinyModel(dir: string, opts: { nan?: boolean } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const mc = parseConfig(MODEL_JSON);
  const m = Qwen2Model.random(qwen2ConfigFromModelConfig(mc), createJsBackend(), 1234);
  const emb = m.params.get('model.embed_tokens.weight')!;
  const head = m.params.get('lm_head.weight')!;
  const H = 16;
  for (let v = 0; v < VOCAB; v++) {
    emb[v * H] = 1; // a constant direction in the residual stream
    head[v * H] = 0;
  }
  head[STOP_ID * H] = 1.0; // P(stop) ≈ 0.15 per token
  if (opts.nan) head[5 * H + 3] = NaN;
  saveCheckpoint(dir, mc, m.toTensors(), { dtype: 'f32' });
  writeTokenizer(dir);
}

function writePrompts(file: string, rows: Array<{ question: string; gold_answer: string; pass_rate?: number }>): void {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Correct iff a hash of the answer section is even: deterministic, mixed outcomes per group. */
const hashVerifier: RuleVerifier = {
  async verify(response: string) {
    let h = 2166136261;
    for (let i = 0; i < response.length; i++) h = Math.imul(h ^ response.charCodeAt(i), 16777619) >>> 0;
    h ^= response.length;
    return { correct: (h & 1) === 0, extracted: response.slice(-4), reason: 'hash' };
  },
};
const neverVerifier: RuleVerifier = { verify: async () => ({ correct: false, extracted: null, reason: 'never' }) };

interface Fixture {
  root: string;
  actor: string;
  prompts: string;
  evalFile: string;
}

let fixture: Fixture | null = null;
function getFixture(): Fixture {
  if (fixture) return fixture;
  const root = tmpDir('fx');
  const actor = path.join(root, 'tiny');
  writeTinyModel(actor);
  const prompts = path.join(root, 'prompts.jsonl');
  writePrompts(prompts, [
    { question: '1+1', gold_answer: '2', pass_rate: 0.1 },
    { question: '2+3', gold_answer: '5', pass_rate: 0.3 },
    { question: '7-4', gold_answer: '3', pass_rate: 0.55 },
    { question: '3*3', gold_answer: '9', pass_rate: 0.7 },
    { question: '9/3', gold_answer: '3', pass_rate: 0.95 },
  ]);
  const evalFile = path.join(root, 'eval.jsonl');
  writePrompts(evalFile, [
    { question: '4+4', gold_answer: '8' },
    { question: '5-1', gold_answer: '4' },
  ]);
  fixture = { root, actor, prompts, evalFile };
  return fixture;
}

function tinyConfig(sets: string[] = []): TrainConfig {
  const f = getFixture();
  return loadTrainConfig(path.join(CONFIGS, 'tiny-test.yaml'), [`actor=${f.actor}`, `datasets=${f.prompts}`, ...sets]);
}

function stripTiming(m: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(m as Record<string, unknown>) };
  for (const k of TIMING_FIELDS) delete out[k];
  delete out['eval_time'];
  return out;
}

function tensorsOf(dir: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of loadCheckpoint(dir).tensors) out.set(k, t.data);
  return out;
}

const REFERENCE_NAMES = [
  'step',
  'actor_lr',
  'actor_grad_norm',
  'token_level_rm_lr',
  'token_rm_grad_norm',
  'avg_judger_reward',
  'avg_adv',
  'avg_gen_entropy',
  'avg_ref_kl',
  'positive_loss',
  'negative_loss',
  'kl_penalty_loss',
  'rl_loss',
  'token_level_rm_loss',
  'max_memory',
  'avg_new_tokens',
  'num_rl_tokens',
  'infer_tgs',
  'rl_tgs',
  'gen_time',
  'infer_time',
  'rl_time',
  'total_time',
  'eta',
  'judge_time',
];

// ---------------------------------------------------------------------------------------------------------------

describe('train config', () => {
  test('oreal-7b.yaml holds the reference values', () => {
    const c = loadTrainConfig(path.join(CONFIGS, 'oreal-7b.yaml'));
    assert.equal(c.prompt_repeat_k, 16);
    assert.equal(c.gen_global_batch, 1024);
    assert.equal(c.gen_max_new, 14000);
    assert.equal(c.gen_max_length, 16384);
    assert.equal(c.gen_top_p, 0.9);
    assert.equal(c.gen_top_k, 0);
    assert.equal(c.filter_trajectory, 'pair');
    assert.equal(c.actor_freeze_steps, 10);
    assert.equal(c.actor_lr, 5e-7);
    assert.equal(c.actor_min_lr, 1e-7);
    assert.equal(c.token_level_rm_lr, 2e-6);
    assert.equal(c.token_level_rm_lr_min, 4e-7);
    assert.equal(c.total_steps, 90);
    assert.equal(c.negative_loss_factor, 0.5);
    assert.equal(c.kl_coef, 0.01);
    assert.deepEqual(c.data_difficulty_balance_cfg, REFERENCE_DIFFICULTY_BINS);
    assert.ok(path.isAbsolute(c.actor) && c.datasets.every((d) => path.isAbsolute(d)));
    const loss = lossConfigOf(c);
    assert.equal(loss.tokenLevelRm, true);
    assert.deepEqual(loss.rescale, { mode: 'threshold', correctThreshold: 0.5, incorrectThreshold: 0.5 });
    // Defaults equal the reference too: a minimal config resolves to the same loss.
    const minimal = parseTrainConfig({ actor: 'a', datasets: 'd.jsonl' });
    assert.deepEqual(lossConfigOf(minimal), loss);
    assert.equal(minimal.filter_trajectory, 'pair');
  });

  test('unknown and invalid keys are errors that name the key', () => {
    const bad = (raw: unknown, re: RegExp): void =>
      assert.throws(() => parseTrainConfig(raw, 'x.yaml'), (e: unknown) => e instanceof TrainConfigError && re.test(e.message) && e.message.startsWith('x.yaml'));
    bad({ actor: 'a', datasets: 'd', actor_lrr: 1 }, /actor_lrr: unknown key/);
    bad({ actor: 'a', datasets: 'd', judger: { urll: 'x' } }, /judger\.urll: unknown key/);
    bad({ actor: 'a', datasets: 'd', temperature: 'hot' }, /temperature: .*number/);
    bad({ datasets: 'd' }, /actor: /);
    bad({ actor: 'a', datasets: 'd', gen_global_batch: 100, prompt_repeat_k: 16 }, /gen_global_batch: must be a multiple of prompt_repeat_k/);
    bad({ actor: 'a', datasets: 'd', threshold_rescale: true, topk_rescale: true }, /exactly one of threshold_rescale and topk_rescale/);
    bad({ actor: 'a', datasets: 'd', data_difficulty_balance_cfg: [[[0.5, 0.2], 1]] }, /data_difficulty_balance_cfg\[0\]: bin lower bound/);
    bad({ actor: 'a', datasets: 'd', rollout: { backend: 'remote' } }, /rollout\.url: required/);
    bad({ actor: 'a', datasets: 'd', algorithm: 'ppo' }, /algorithm: /);
  });

  test('--set overrides coerce types, reach nested keys and reject unknown keys', () => {
    const dir = tmpDir('cfg');
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, 'actor: m\ndatasets: d.jsonl\n');
    const c = loadTrainConfig(file, ['actor_lr=1e-5', 'filter_trajectory=false', 'judger.mode=review', 'seed=3', 'algorithm=grpo', 'datasets=[a.jsonl, b.jsonl]']);
    assert.equal(c.actor_lr, 1e-5);
    assert.equal(c.filter_trajectory, 'none');
    assert.equal(c.judger.mode, 'review');
    assert.equal(c.seed, 3);
    assert.equal(c.token_level_rm, false); // grpo preset
    assert.equal(c.reward_shaping_type, 'grpo');
    assert.deepEqual(c.datasets, [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')]);
    assert.equal(c.actor, path.join(dir, 'm'));
    assert.throws(() => loadTrainConfig(file, ['no_such_key=1']), /no_such_key: unknown key/);
    assert.throws(() => loadTrainConfig(file, ['seed=abc']), /seed: /);
    assert.throws(() => loadTrainConfig(file, ['novalue']), /expected key=value/);
    const o: Record<string, unknown> = { actor: 'x' };
    assert.throws(() => applyOverride(o, 'actor.sub=1'), /actor is not a table/);
    // The resolved YAML parses back to the same config.
    assert.deepEqual(parseTrainConfig(JSON.parse(JSON.stringify(c))), c);
    const yamlFile = path.join(dir, 'resolved.yaml');
    fs.writeFileSync(yamlFile, configToYaml(c));
    assert.deepEqual(loadTrainConfig(yamlFile), c);
  });
});

describe('prompt data', () => {
  test('difficulty balancing repeats by bin and counts the dropped prompts', () => {
    const rates = [0, 0.1, 0.19, 0.2, 0.35, 0.4, 0.59, 0.6, 0.79, 0.8, 0.9, 1.0];
    const prompts: PromptRecord[] = rates.map((r, i) => ({ question: `q${i}`, gold: '1', passRate: r, source: `f:${i + 1}` }));
    const b = balanceByDifficulty(prompts, REFERENCE_DIFFICULTY_BINS);
    assert.deepEqual(
      b.bins.map((x) => [x.prompts, x.copies]),
      [
        [3, 18],
        [2, 8],
        [2, 8],
        [2, 4],
      ],
    );
    assert.equal(b.dropped, 3);
    assert.equal(b.prompts.length, 38);
    assert.equal(b.prompts.filter((p) => p.question === 'q0').length, 6);
    assert.equal(b.prompts.filter((p) => p.question === 'q7').length, 2);
    assert.match(b.summary, /dropped 3 prompts/);
  });

  test('prompt files: errors name file:line:field', () => {
    const dir = tmpDir('data');
    const f = path.join(dir, 'p.jsonl');
    fs.writeFileSync(f, '{"question":"a","gold_answer":"1","pass_rate":0.5}\n\n{"question":"b","gold_answer":"2","pass_rate":1.5}\n');
    assert.throws(() => loadPrompts(f), new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3:pass_rate: must be in \\[0, 1\\]`));
    fs.writeFileSync(f, '{"question":"a","pass_rate":0.5}\n');
    assert.throws(() => loadPrompts(f), /p\.jsonl:1:gold_answer: missing/);
    fs.writeFileSync(f, '{"question":"a","gold_answer":"1"}\n');
    assert.throws(() => loadPrompts(f, { requirePassRate: true }), /p\.jsonl:1:pass_rate: missing/);
    fs.writeFileSync(f, '{"question":"a","gold_answer":"x #### 7"}\nnot json\n');
    assert.throws(() => loadPrompts(f), /p\.jsonl:2: invalid JSON/);
    fs.writeFileSync(f, '{"problem":"a","answer":"x #### 7"}\n');
    assert.deepEqual(loadPrompts(f)[0], { question: 'a', gold: '7', passRate: null, source: `${f}:1` });
  });

  test('the epoch iterator is seeded and resumes from its position', () => {
    const items = Array.from({ length: 7 }, (_, i) => i);
    const a = new PromptStream(items, 5);
    const first = a.next(10);
    assert.deepEqual([...first.slice(0, 7)].sort(), items);
    const pos = a.position();
    assert.deepEqual(pos, { epoch: 1, offset: 3 });
    const rest = a.next(9);
    const b = new PromptStream(items, 5, JSON.parse(JSON.stringify(pos)) as typeof pos);
    assert.deepEqual(b.next(9), rest);
    assert.notDeepEqual(new PromptStream(items, 6).next(7), first.slice(0, 7));
  });
});

describe('trainer (tiny random model)', () => {
  test('end to end: metrics, trajectories, checkpoints, state, eval lines', async () => {
    const f = getFixture();
    const out = tmpDir('e2e');
    const logs: string[] = [];
    const t0 = performance.now();
    const cfg = tinyConfig([`eval_dataset=${f.evalFile}`]);
    const res = await runTraining(cfg, { outDir: out, verifier: hashVerifier, onLog: (l) => logs.push(l) });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(res.step, 4);
    assert.ok(logs.some((l) => /dropped 1 prompt in no bin/.test(l)), 'the balancing drop is logged');
    const lines = readMetricsFile(path.join(out, 'metrics.jsonl'));
    const train = lines.filter((l): l is StepMetrics => l.type === 'train');
    const evals = lines.filter((l) => l.type === 'eval');
    assert.deepEqual(train.map((m) => m.step), [1, 2, 3, 4]);
    for (const m of train) for (const k of REFERENCE_NAMES) assert.ok(k in m && typeof (m as unknown as Record<string, unknown>)[k] === 'number', `${k} in step ${m.step}`);
    assert.equal(train[0]!.actor_frozen, true);
    assert.equal(train[0]!.actor_lr, 0);
    assert.equal(train[0]!.actor_grad_norm, 0);
    assert.ok(train.some((m) => m.num_kept > 0 && m.actor_grad_norm > 0 && Number.isFinite(m.rl_loss)), 'some step trained the actor');
    assert.ok(train.every((m) => m.num_rollouts === 8 && m.num_prompts === 2));
    assert.deepEqual(evals.map((e) => e.step), [2, 4]);
    for (const e of evals) {
      assert.equal(e.type, 'eval');
      if (e.type === 'eval') {
        assert.ok(e.pass1_sampled !== null && e.pass1_sampled >= 0 && e.pass1_sampled <= 1);
        assert.ok(e.greedy_acc !== null);
      }
    }
    const traj = fs.readFileSync(path.join(out, 'trajectories', 'step-2.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(traj.length, 8);
    for (const t of traj) for (const k of ['text', 'num_tokens', 'reward', 'advantage']) assert.ok(k in t, k);
    assert.equal(traj.filter((t) => t.kept === true).length, train[1]!.num_kept);
    for (const s of [2, 4]) {
      const pol = loadCheckpoint(path.join(out, 'checkpoints', `step-${s}`, 'policy'));
      assert.deepEqual(pol.config.architectures, ['Qwen2ForCausalLM']);
      assert.ok(fs.existsSync(path.join(out, 'checkpoints', `step-${s}`, 'policy', 'tokenizer.json')));
      const rm = loadCheckpoint(path.join(out, 'checkpoints', `step-${s}`, 'token_rm'));
      assert.ok(rm.config.isTokenClassification && rm.tensors.has('score.weight') && !rm.tensors.has('lm_head.weight'));
    }
    assert.ok(fs.existsSync(path.join(out, 'config.resolved.yaml')));
    assert.deepEqual(loadTrainConfig(path.join(out, 'config.resolved.yaml')), cfg);
    const st = JSON.parse(fs.readFileSync(path.join(out, 'state', 'trainer.json'), 'utf8')) as { step: number };
    assert.equal(st.step, 4);
    // Split of the step time, from the metrics (reported, not asserted).
    const avg = (k: keyof StepMetrics): number => train.reduce((a, m) => a + (m[k] as number), 0) / train.length;
    process.stderr.write(
      `# tiny config: ${seconds.toFixed(2)} s for 4 steps + 2 evals; per step: gen ${(avg('gen_time') * 1000).toFixed(1)} ms, ` +
        `judge ${(avg('judge_time') * 1000).toFixed(1)} ms, rl ${(avg('rl_time') * 1000).toFixed(1)} ms, total ${(avg('total_time') * 1000).toFixed(1)} ms\n`,
    );
  });

  test('resume after kills at different stages reproduces the uninterrupted run exactly', async () => {
    const cfg = tinyConfig(['checkpoint_interval=0']);
    const a = tmpDir('resume-a');
    await runTraining(cfg, { outDir: a, verifier: hashVerifier, onLog: () => undefined });

    const b = tmpDir('resume-b');
    const kill = (at: TrainStage, atStep: number) => (stage: TrainStage, step: number) => {
      if (stage === at && step === atStep) throw new Error(`killed at ${stage} of step ${step}`);
    };
    // Killed after step 2's metrics were written but before its state was saved: step 2 is replayed.
    await assert.rejects(runTraining(cfg, { outDir: b, verifier: hashVerifier, onLog: () => undefined, onStage: kill('logged', 2) }), /killed at logged/);
    assert.equal(readMetricsFile(path.join(b, 'metrics.jsonl')).length, 2);
    // Killed in the middle of step 3 (weights updated in memory, nothing written).
    await assert.rejects(
      runTraining(cfg, { outDir: b, resume: true, verifier: hashVerifier, onLog: () => undefined, onStage: kill('updated', 3) }),
      /killed at updated/,
    );
    // Killed right after step 3 was saved, via a throwing onStep.
    await assert.rejects(
      runTraining(cfg, {
        outDir: b,
        resume: true,
        verifier: hashVerifier,
        onLog: () => undefined,
        onStep: (m) => {
          if (m.step === 3) throw new Error('killed after step 3');
        },
      }),
      /killed after step 3/,
    );
    const res = await runTraining(cfg, { outDir: b, resume: true, verifier: hashVerifier, onLog: () => undefined });
    assert.equal(res.step, 4);

    const ma = readMetricsFile(path.join(a, 'metrics.jsonl')).map(stripTiming);
    const mb = readMetricsFile(path.join(b, 'metrics.jsonl')).map(stripTiming);
    assert.equal(ma.length, 4);
    assert.deepEqual(mb, ma);
    for (const sub of ['policy', 'token_rm']) {
      const wa = tensorsOf(path.join(a, 'state', sub));
      const wb = tensorsOf(path.join(b, 'state', sub));
      assert.deepEqual([...wb.keys()], [...wa.keys()]);
      for (const [k, v] of wa) assert.ok(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(wb.get(k)!.buffer, wb.get(k)!.byteOffset, wb.get(k)!.byteLength)), `${sub} ${k} differs`);
    }
    for (let s = 1; s <= 4; s++)
      assert.equal(
        fs.readFileSync(path.join(b, 'trajectories', `step-${s}.jsonl`), 'utf8'),
        fs.readFileSync(path.join(a, 'trajectories', `step-${s}.jsonl`), 'utf8'),
      );
    // State every 2 steps: a kill after step 3 resumes from step 2 and replays step 3.
    const c = tmpDir('resume-c');
    const cfg2 = { ...cfg, state_interval: 2 };
    await assert.rejects(runTraining(cfg2, { outDir: c, verifier: hashVerifier, onLog: () => undefined, onStage: kill('saved', 3) }), /killed at saved/);
    assert.equal(readMetricsFile(path.join(c, 'metrics.jsonl')).length, 3);
    await runTraining(cfg2, { outDir: c, resume: true, verifier: hashVerifier, onLog: () => undefined });
    assert.deepEqual(readMetricsFile(path.join(c, 'metrics.jsonl')).map(stripTiming), ma);
    // The weights moved (the comparison is not vacuous).
    const init = tensorsOf(getFixture().actor);
    const fin = tensorsOf(path.join(a, 'state', 'policy'));
    assert.notDeepEqual(fin.get('model.layers.0.mlp.up_proj.weight'), init.get('model.layers.0.mlp.up_proj.weight'));
  });

  test('a non-finite loss skips the actor update and the run goes on', async () => {
    const f = getFixture();
    const refDir = path.join(f.root, 'nan-ref');
    if (!fs.existsSync(refDir)) writeTinyModel(refDir, { nan: true });
    const out = tmpDir('nan');
    const cfg = tinyConfig([`reference=${refDir}`, 'actor_freeze_steps=0', 'total_steps=2', 'checkpoint_interval=0']);
    const logs: string[] = [];
    const res = await runTraining(cfg, { outDir: out, verifier: hashVerifier, onLog: (l) => logs.push(l) });
    assert.equal(res.step, 2);
    const trained = res.metrics.filter((m) => m.num_kept > 0);
    assert.ok(trained.length > 0);
    for (const m of trained) {
      assert.ok(m.skipped.includes('actor: non-finite loss'), JSON.stringify(m.skipped));
      assert.ok(!m.skipped.some((s) => s.startsWith('token_rm')), 'the RM still trains');
    }
    assert.ok(logs.some((l) => /actor update skipped/.test(l)));
    const init = tensorsOf(f.actor);
    const fin = tensorsOf(path.join(out, 'state', 'policy'));
    for (const [k, v] of init) assert.deepEqual(fin.get(k), v, `${k} changed`);
    const line = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').find((l) => /"num_kept":[1-9]/.test(l))!;
    assert.match(line, /"rl_loss":null/); // NaN is written as null
  });

  test('a step whose groups are all filtered out is logged, not a crash; judge failures follow the policy', async () => {
    const out = tmpDir('filtered');
    const cfg = tinyConfig(['total_steps=2', 'checkpoint_interval=0']);
    const res = await runTraining(cfg, { outDir: out, verifier: neverVerifier, onLog: () => undefined });
    assert.equal(res.step, 2);
    for (const m of res.metrics) {
      assert.deepEqual(m.skipped, ['all groups filtered out']);
      assert.equal(m.num_kept, 0);
      assert.equal(m.avg_judger_reward, -1);
      assert.equal(m.dropped_all_wrong, 2);
    }
    // A failing judge with on_failure=drop: every group with a finished response is dropped and counted.
    const out2 = tmpDir('judge');
    const failing = { judge: async () => ({ verdict: 'error' as const, error: 'HTTP 503 after 3 retries' }) };
    const res2 = await runTraining(tinyConfig(['total_steps=1', 'judger.on_failure=drop', 'judger.mode=rescue']), {
      outDir: out2,
      verifier: neverVerifier,
      judge: failing,
      onLog: () => undefined,
    });
    const m = res2.metrics[0]!;
    assert.ok(m.judge_failures > 0);
    assert.ok(m.dropped_judge_failure > 0);
    assert.equal(m.num_kept, 0);
  });

  test('remote rollouts: text prompts to an OpenAI-compatible server, re-tokenised responses, weight sync', async () => {
    const prompts: string[] = [];
    const synced: string[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const j = JSON.parse(body) as { prompt?: string; n?: number; seed?: number; model_path?: string };
        res.setHeader('content-type', 'application/json');
        if (req.url === '/update_weights_from_disk') {
          synced.push(j.model_path!);
          res.end(JSON.stringify({ success: true }));
          return;
        }
        prompts.push(j.prompt!);
        const choices = Array.from({ length: j.n! }, (_, i) => ({
          index: i,
          text: `x=${(j.seed! + i * 7) % 5}`,
          finish_reason: i === 3 ? 'length' : 'stop',
        }));
        res.end(JSON.stringify({ choices }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const out = tmpDir('remote');
      const cfg = tinyConfig(['rollout.backend=remote', `rollout.url=http://127.0.0.1:${port}/v1`, 'rollout.model=tiny', 'actor_freeze_steps=0', 'total_steps=2', 'checkpoint_interval=0']);
      const res = await runTraining(cfg, { outDir: out, verifier: hashVerifier, onLog: () => undefined });
      assert.equal(res.step, 2);
      assert.equal(prompts.length, 4);
      assert.ok(prompts.every((p) => p.startsWith('<|im_start|>system\nSolve.<|im_end|>\n<|im_start|>user\n') && p.endsWith('<|im_start|>assistant\n')));
      const trained = res.metrics.filter((m) => m.num_kept > 0 && m.skipped.length === 0).length;
      assert.ok(trained > 0);
      assert.equal(synced.length, trained);
      assert.ok(fs.existsSync(path.join(synced[0]!, 'model.safetensors')));
      const traj = fs.readFileSync(path.join(out, 'trajectories', 'step-1.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; num_tokens: number; finish_reason: string });
      for (const t of traj) assert.equal(t.num_tokens, Buffer.byteLength(t.text) + (t.finish_reason === 'stop' ? 1 : 0));
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('trainer guards (hardening)', () => {
  test('a learning rate that explodes the weights is refused, rolled back and stops the run by name', async () => {
    const f = getFixture();
    const out = tmpDir('diverge');
    const cfg = tinyConfig(['actor_lr=1e9', 'actor_min_lr=0', 'warmup_steps=0', 'actor_freeze_steps=0', 'total_steps=8', 'checkpoint_interval=1']);
    const logs: string[] = [];
    const steps: StepMetrics[] = [];
    await assert.rejects(
      runTraining(cfg, { outDir: out, verifier: hashVerifier, onLog: (l) => logs.push(l), onStep: (m) => void steps.push(m) }),
      /training diverged at step \d+: 3 actor updates in a row were refused .*exploding update.*learning rate \(actor_lr 1000000000/,
    );
    assert.ok(steps.length >= 2, 'the run got as far as refusing updates');
    const refused = steps.filter((m) => m.skipped.some((s) => s.startsWith('actor: exploding update')));
    assert.ok(refused.length >= 2, JSON.stringify(steps.map((m) => m.skipped)));
    assert.ok(logs.some((l) => /exploding update .*actor update skipped/.test(l)));
    // Nothing refused was applied or saved: the saved policy is the initial one, finite.
    const init = tensorsOf(f.actor);
    const saved = tensorsOf(path.join(out, 'state', 'policy'));
    for (const [k, v] of init) assert.deepEqual(saved.get(k), v, `${k} changed`);
    const cks = fs.readdirSync(path.join(out, 'checkpoints'));
    assert.ok(cks.length >= 1);
    for (const ck of cks) {
      for (const [k, v] of tensorsOf(path.join(out, 'checkpoints', ck, 'policy'))) assert.deepEqual(v, init.get(k), `${ck} ${k} changed`);
    }
  });

  test('gen_max_length past the model context is refused before anything runs', async () => {
    const out = tmpDir('ctx');
    await assert.rejects(
      runTraining(tinyConfig(['gen_max_length=100000', 'gen_max_new=99999']), { outDir: out, verifier: hashVerifier, onLog: () => undefined }),
      /gen_max_length 100000 exceeds the actor's context of 256 positions \(max_position_embeddings in .*config\.json\)/,
    );
    assert.ok(!fs.existsSync(path.join(out, 'metrics.jsonl')));
  });
});

describe('trainer on the webgpu backend', () => {
  test('3 OREAL steps on webgpu give the wasm backend metrics within 1e-3 (lavapipe in CI)', async () => {
    const sets = ['total_steps=3', 'checkpoint_interval=0', 'save_trajectories=false'];
    const run = async (backend: string): Promise<StepMetrics[]> =>
      (await runTraining(tinyConfig([...sets, `backend=${backend}`]), { outDir: tmpDir(`be-${backend}`), verifier: hashVerifier, onLog: () => undefined })).metrics;
    const cpu = await run('wasm');
    const gpu = await run('webgpu');
    assert.equal(gpu.length, 3);
    const keys = ['avg_judger_reward', 'avg_adv', 'avg_gen_entropy', 'avg_ref_kl', 'positive_loss', 'negative_loss', 'kl_penalty_loss', 'rl_loss', 'token_level_rm_loss', 'actor_grad_norm', 'token_rm_grad_norm', 'avg_new_tokens', 'num_rl_tokens'] as const;
    for (let s = 0; s < 3; s++) {
      const a = cpu[s]! as unknown as Record<string, number>;
      const b = gpu[s]! as unknown as Record<string, number>;
      for (const k of keys) {
        const d = Math.abs(a[k]! - b[k]!) / Math.max(1, Math.abs(a[k]!));
        assert.ok(d < 1e-3, `step ${s + 1} ${k}: wasm ${a[k]} webgpu ${b[k]}`);
      }
    }
  });
});
