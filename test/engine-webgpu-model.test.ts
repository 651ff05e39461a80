// The Qwen2 model end to end on the WebGPU backend against the PyTorch fixtures (scripts/torch_qwen2_reference.py):
// loss and every parameter's gradient norm, through the same model code as the CPU backends, reading numbers back
// only with `await backend.read` (forwardAsync, sumSquares). Lavapipe in CI; fails loudly without an adapter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Qwen2Model } from '../src/model/qwen2.js';
import { WebGpuBackend } from '../src/engine/webgpu/ops.js';
import { readQwen2Fixture } from './helpers/qwen2-fixture.js';
import { createJsBackend } from '../src/engine/js-backend.js';
import { generate } from '../src/sample/generate.js';

// The same with an 8 KiB binding limit (for tests only): the embedding, LM head and weight matrices, their gradients
// and their AdamW moments are larger than one binding and every op on them runs in pieces (src/engine/webgpu/window.ts).
for (const [name, maxBindingBytes] of [['qwen2_tied', undefined], ['qwen2_untied', undefined], ['llama_nobias', undefined], ['qwen2_untied', 8192]] as const) {
  test(`${name} on webgpu${maxBindingBytes ? ` with a ${maxBindingBytes}-byte binding limit` : ''}: loss and every gradient norm match PyTorch`, async () => {
    const be = await WebGpuBackend.open({ maxBindingBytes });
    try {
      const { fx, cfg, tensors } = readQwen2Fixture(name);
      const model = Qwen2Model.fromTensors(cfg, be, tensors);
      const res = await model.forwardAsync(fx.input_ids.flat(), fx.lengths, { entropy: false, saveForBackward: true });
      const logp = res.logp!;
      const n = res.numLabels;
      let s = 0;
      for (const x of logp) s += x;
      const loss = -s / n;
      const lossRel = Math.abs(loss - fx.loss!) / fx.loss!;
      assert.ok(lossRel < 1e-4, `loss ${loss} vs PyTorch ${fx.loss} (rel ${lossRel.toExponential(2)})`);
      model.backward(new Float64Array(logp.length).fill(-1 / n), null);
      const out = be.empty([1]);
      let worst = 0;
      for (const [k, want] of Object.entries(fx.grad_norms!)) {
        be.sumSquares([model.gradTensors.get(k)!], out);
        const got = Math.sqrt((await be.read(out))[0]!);
        const rel = Math.abs(got - want) / Math.max(want, 1e-12);
        worst = Math.max(worst, rel);
        assert.ok(rel < 1e-3, `grad norm of ${k}: ${got} vs PyTorch ${want} (rel ${rel.toExponential(2)})`);
      }
      if (maxBindingBytes) {
        const embed = model.tensors.get('model.embed_tokens.weight')!;
        assert.ok(embed.size > be.windows.maxSpan, `the embedding (${embed.size} floats) exceeds one binding of ${be.windows.maxSpan}`);
      }
      process.stdout.write(`# ${name} on ${be.dev.adapterName}: loss rel ${lossRel.toExponential(2)}, worst grad-norm rel ${worst.toExponential(2)}\n`);
    } finally {
      be.dispose();
    }
  });
}

test('oreal generate --backend webgpu: greedy KV-cache decoding gives the js backend tokens on the bundled model', async () => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const gen = (backend: string, prompt: string): number[] => {
    const r = spawnSync(
      process.execPath,
      [path.join(root, 'dist', 'src', 'cli', 'main.js'), 'generate', '--model', path.join(root, 'models', 'arith-sft'), '--chat', '--prompt', prompt, '--greedy', '--max-new-tokens', '40', '--backend', backend, '--json'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n')[0]!) as { token_ids: number[] }).token_ids;
  };
  for (const prompt of ['What is 17 + 25?', 'Compute 9 * 8 - 14.', 'What is 300 - 123?']) {
    const cpu = gen('js', prompt);
    assert.ok(cpu.length > 3, `js generated ${cpu.length} tokens`);
    assert.deepEqual(gen('webgpu', prompt), cpu, prompt);
  }
});

test('greedy KV-cache decoding with an 8 KiB binding limit gives the js backend tokens (qwen2_untied fixture)', async () => {
  const be = await WebGpuBackend.open({ maxBindingBytes: 8192 });
  try {
    const { fx, cfg, tensors } = readQwen2Fixture('qwen2_untied');
    const prompts = fx.input_ids.map((ids, i) => ids.slice(0, fx.lengths[i]));
    const params = { maxNewTokens: 12, temperature: 0, topP: 1, topK: 0, stopTokenIds: [], stopStrings: [] };
    const decode = async (model: Qwen2Model): Promise<number[][]> => {
      const out = await generate(model, prompts.map((prompt) => ({ prompt, n: 1, params })));
      return out.map((g) => g[0]!.tokenIds);
    };
    const want = await decode(Qwen2Model.fromTensors(cfg, createJsBackend(), tensors));
    assert.equal(want[0]!.length, 12);
    assert.deepEqual(await decode(Qwen2Model.fromTensors(cfg, be, tensors)), want);
  } finally {
    be.dispose();
  }
});

test('oreal bench gemm | step | decode --backend webgpu --json run on the adapter and name it', async () => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const bench = (args: string[]): Record<string, unknown> => {
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'src', 'cli', 'main.js'), 'bench', ...args, '--backend', 'webgpu', '--json'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  };
  const gemm = bench(['gemm', '--sizes', '64,96', '--seconds', '0.01', '--trans', 'nt']);
  assert.equal(gemm['backend'], 'webgpu');
  assert.ok(typeof gemm['device'] === 'string' && gemm['device'].length > 0, JSON.stringify(gemm));
  const gflops = gemm['gflops'] as Record<string, number>;
  assert.deepEqual(Object.keys(gflops), ['64', '96']);
  for (const g of Object.values(gflops)) assert.ok(Number.isFinite(g) && g > 0, JSON.stringify(gflops));
  const tiny = ['--layers', '1', '--hidden', '32', '--heads', '2', '--kv-heads', '1', '--intermediate', '64', '--vocab', '64'];
  const step = bench(['step', ...tiny, '--batch', '2', '--seq', '8', '--warmup', '1', '--reps', '1']);
  assert.equal(step['device'], gemm['device']);
  assert.ok((step['step_s'] as number) > 0 && Number.isFinite(step['loss'] as number), JSON.stringify(step));
  const decode = bench(['decode', '--model', 'random:layers=1,hidden=32,heads=2,kv-heads=1,intermediate=64,vocab=64', '--batch', '2', '--prompt-len', '4', '--new-tokens', '4', '--runs', '1']);
  assert.equal(decode['device'], gemm['device'], JSON.stringify(decode));
  assert.ok((decode['tokens_per_s'] as number) > 0, JSON.stringify(decode));
});
