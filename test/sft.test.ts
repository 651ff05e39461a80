import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { createBackend } from '../src/engine/index.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { makeSplit } from '../src/task/arith.js';
import { naiveGenerate, passAtOne, promptIds } from '../src/eval/quick-eval.js';
import { registerSft } from '../src/cli/sft.js';
import {
  SftConfigError,
  SftDataError,
  encodeMessages,
  encodePromptResponse,
  freshModelConfig,
  loadSftConfig,
  loadSftJsonl,
  makeBatch,
  maskedNll,
  parseSftConfig,
  runSft,
  type SftConfigInput,
} from '../src/train/sft.js';
import { writeArithTokenizer } from '../scripts/make-tokenizer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-sft-test-'));
const tokDir = path.join(tmp, 'tok');
writeArithTokenizer(tokDir);
const tok = Tokenizer.load(tokDir);
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const problems = makeSplit('train', 8, 21, { families: { arith: 1 }, levels: { 1: 1 } });
const trainFile = path.join(tmp, 'train.jsonl');
fs.writeFileSync(
  trainFile,
  problems
    .map((p, i) =>
      i % 2 === 0
        ? JSON.stringify({ messages: [{ role: 'user', content: p.question }, { role: 'assistant', content: p.solution }] })
        : JSON.stringify({ prompt: p.question, response: p.solution }),
    )
    .join('\n') + '\n\n',
);

function tinyConfig(extra: Partial<SftConfigInput> = {}): SftConfigInput {
  return {
    tokenizer: tokDir,
    architecture: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 },
    train_file: trainFile,
    eval_file: trainFile,
    output_dir: path.join(tmp, 'out'),
    max_steps: 40,
    batch_size: 8,
    micro_batch_size: 3,
    lr: 1e-2,
    min_lr: 1e-3,
    warmup_steps: 5,
    eval_every: 20,
    log_every: 5,
    backend: 'js',
    ...extra,
  };
}

test('loss masking: only assistant content and its <|im_end|> are targets', async () => {
  const p = problems[0]!;
  const ex = encodeMessages(tok, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: p.question },
    { role: 'assistant', content: p.solution },
  ]);
  const targeted = ex.ids.filter((_, t) => ex.target[t] === 1);
  assert.equal(tok.decode(targeted), p.solution + '<|im_end|>');
  // The full sequence is the template rendering, token for token.
  assert.equal(
    tok.decode(ex.ids),
    tok.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: p.question },
      { role: 'assistant', content: p.solution },
    ]),
  );
  // Multi-turn: both assistant turns are targets, the user turns are not.
  const multi = encodeMessages(tok, [
    { role: 'user', content: 'A' },
    { role: 'assistant', content: 'B' },
    { role: 'user', content: 'C' },
    { role: 'assistant', content: 'D' },
  ]);
  assert.equal(tok.decode(multi.ids.filter((_, t) => multi.target[t] === 1)), 'B<|im_end|>D<|im_end|>');
  // {prompt, response}: chat-wrapped by default; plain text + EOS without the template.
  const pr = encodePromptResponse(tok, 'Q?', 'R.');
  assert.equal(tok.decode(pr.ids.filter((_, t) => pr.target[t] === 1)), 'R.<|im_end|>');
  const plain = encodePromptResponse(tok, 'Q?', ' R.', { chatTemplate: false });
  assert.equal(tok.decode(plain.ids), 'Q? R.<|im_end|>');
  assert.equal(tok.decode(plain.ids.filter((_, t) => plain.target[t] === 1)), ' R.<|im_end|>');

  // Batch labels sit one position before each target; the masked loss equals the sum of -log p over those tokens.
  const exs = [ex, pr];
  const batch = makeBatch(exs, tok.padTokenId!);
  const T = batch.ids.length / 2;
  assert.equal(batch.tokens, exs.reduce((s, e) => s + e.target.reduce((a, b) => a + b, 0), 0));
  for (let b = 0; b < 2; b++)
    for (let t = 0; t < T; t++) {
      const e = exs[b]!;
      const want = t + 1 < e.ids.length && e.target[t + 1] === 1 ? e.ids[t + 1]! : -1;
      assert.equal(batch.labels[b * T + t], want);
    }
  const backend = createBackend('js');
  const mc = freshModelConfig(
    { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, tie_word_embeddings: true, rope_theta: 10000, rms_norm_eps: 1e-6, max_position_embeddings: 256 },
    tok,
  );
  const model = Qwen2Model.random(qwen2ConfigFromModelConfig(mc), backend, 1, 0.1);
  const nll = await maskedNll(model, batch);
  const full = model.forward(batch.ids, batch.lengths, { entropy: false, saveForBackward: false });
  let manual = 0;
  for (let i = 0; i < batch.labels.length; i++) if (batch.labels[i]! >= 0) manual -= full.logp![i]!;
  assert.ok(Math.abs(nll - manual) < 1e-6 * Math.max(1, Math.abs(manual)), `${nll} vs ${manual}`);
  // Gradients: prompt tokens get no loss, so the loss does not change when a prompt label would.
  model.zeroGrad();
  await maskedNll(model, batch, 1 / batch.tokens);
  let g = 0;
  for (const a of model.grads.values()) for (let i = 0; i < a.length; i++) g += a[i]! * a[i]!;
  assert.ok(g > 0);
  model.dispose();
  backend.dispose();
});

test('a tiny SFT run lowers the loss and saves a loadable HF checkpoint', async () => {
  const logs: Array<{ step: number; loss: number; evalLoss?: number }> = [];
  let evals = 0;
  const cfg = parseSftConfig(tinyConfig(), 'tiny');
  const res = await runSft(cfg, {
    onLog: (r) => logs.push(r),
    onEval: () => {
      evals++;
    },
  });
  assert.equal(res.steps, 40);
  assert.equal(evals, 2);
  const first = logs[0]!.loss;
  const last = logs[logs.length - 1]!;
  assert.ok(last.loss < first * 0.6, `train loss ${first} → ${last.loss}`);
  assert.ok(last.evalLoss !== undefined && last.evalLoss < first * 0.6, `eval loss ${last.evalLoss}`);
  const out = path.join(tmp, 'out');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    assert.ok(fs.existsSync(path.join(out, f)), f);
  }
  const ck = loadCheckpoint(out);
  assert.equal(ck.config.vocabSize, tok.vocabSize);
  assert.equal(ck.config.eosTokenIds[0], tok.imEndTokenId);
  // The saved model reproduces the held-out loss, and both generation paths agree greedily.
  const backend = createBackend('js');
  const model = Qwen2Model.fromCheckpoint(ck, backend);
  const ex = loadSftJsonl(trainFile, tok).examples;
  let nll = 0;
  let n = 0;
  for (const e of ex) {
    const b = makeBatch([e], tok.padTokenId!);
    nll += await maskedNll(model, b);
    n += b.tokens;
  }
  assert.ok(Math.abs(nll / n - last.evalLoss!) < 1e-4, `${nll / n} vs ${last.evalLoss}`);
  const few = problems.slice(0, 3).map((p) => ({ question: p.question, answer: p.answer }));
  const kv = await passAtOne(model, tok, few, { engine: 'kv', maxNewTokens: 12 });
  const naive = await passAtOne(model, tok, few, { engine: 'naive', maxNewTokens: 12 });
  assert.deepEqual(kv.responses, naive.responses);
  const gen = await naiveGenerate(model, [promptIds(tok, few[0]!.question)], { temperature: 1, maxNewTokens: 5, stopIds: [], seed: 3 });
  assert.equal(gen[0]!.length, 5);
  model.dispose();
  backend.dispose();
});

test('oreal sft CLI: --config with --set overrides runs and saves', async () => {
  const cfgFile = path.join(tmp, 'cli.yaml');
  const c = tinyConfig({ output_dir: path.join(tmp, 'cli-out') });
  delete c.eval_file;
  fs.writeFileSync(cfgFile, JSON.stringify(c)); // JSON is YAML
  const program = new Command().exitOverride();
  registerSft(program);
  const orig = process.stdout.write.bind(process.stdout);
  let printed = '';
  process.stdout.write = ((s: string | Uint8Array): boolean => {
    printed += String(s);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['sft', '--config', cfgFile, '--set', 'max_steps=3', '--set', 'architecture.hidden_size=16'], {
      from: 'user',
    });
  } finally {
    process.stdout.write = orig;
  }
  assert.match(printed, /done: 3 steps/);
  const ck = loadCheckpoint(path.join(tmp, 'cli-out'));
  assert.equal(ck.config.hiddenSize, 16);
});

test('config errors name the key', () => {
  const bad = (extra: Record<string, unknown>, re: RegExp): void => {
    assert.throws(() => parseSftConfig({ ...tinyConfig(), ...extra }, 'c.yaml'), (e: unknown) => {
      assert.ok(e instanceof SftConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  };
  bad({ learning_rate: 1 }, /^c\.yaml: key "learning_rate": unknown key/);
  bad({ lr: 'fast' }, /key "lr"/);
  bad({ batch_size: 0 }, /key "batch_size"/);
  bad({ dtype: 'f64' }, /key "dtype"/);
  bad({ architecture: { hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 1, hiden: 3 } }, /key "architecture\.hiden"/);
  bad({ model: '/some/ckpt' }, /key "architecture"/);
  assert.throws(() => parseSftConfig({ train_file: 'x', output_dir: 'y' }, 'c.yaml'), /key "model"/);
  assert.throws(() => parseSftConfig({ output_dir: 'y', model: 'm' }, 'c.yaml'), /key "train_file"/);
  // Files and --set.
  const f = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(f, 'model: m\ntrain_file: t.jsonl\noutput_dir: o\nepochs: 2\n');
  assert.equal(loadSftConfig(f, ['lr=0.5', 'seed=3']).lr, 0.5);
  assert.throws(() => loadSftConfig(f, ['lrr=0.5']), /key "lrr": unknown key/);
  assert.throws(() => loadSftConfig(f, ['epochs']), /expected key=value/);
  fs.writeFileSync(f, 'model: [unclosed\n');
  assert.throws(() => loadSftConfig(f), /bad\.yaml: invalid YAML/);
});

test('bad JSONL errors name the file, line and field', () => {
  const cases: Array<[string, RegExp]> = [
    ['{"prompt": "a", "response": "b"}\n{not json}\n', /bad\.jsonl:2: invalid JSON/],
    ['{"messages": []}\n', /bad\.jsonl:1: field "messages": is empty/],
    [
      '\n{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": 5}]}\n',
      /bad\.jsonl:2: field "messages\[1\]\.content": expected a string/,
    ],
    ['{"messages": [{"role": "user", "content": "a"}]}\n', /bad\.jsonl:1: field "messages": has no assistant turn/],
    ['{"prompt": "a", "response": null}\n', /bad\.jsonl:1: field "response": expected a string/],
    ['{"prompt": "a", "response": "b"}\n{"text": "x"}\n', /bad\.jsonl:2: expected \{"messages"/],
    ['[1, 2]\n', /bad\.jsonl:1: expected a JSON object/],
    ['{"messages": "hi"}\n', /bad\.jsonl:1: field "messages": expected an array/],
    ['\n\n', /bad\.jsonl:0: no examples/],
  ];
  const f = path.join(tmp, 'bad.jsonl');
  for (const [text, re] of cases) {
    fs.writeFileSync(f, text);
    assert.throws(() => loadSftJsonl(f, tok), (e: unknown) => {
      assert.ok(e instanceof SftDataError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
  // Long examples are cut and counted.
  fs.writeFileSync(f, JSON.stringify({ prompt: 'Q', response: 'x'.repeat(50) }) + '\n');
  const r = loadSftJsonl(f, tok, { maxSeqLen: 20 });
  assert.equal(r.truncated, 1);
  assert.equal(r.examples[0]!.ids.length, 20);
});
