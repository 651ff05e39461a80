// Writes what scripts/hf_interop_check.py checks against transformers (on a machine that has it): a policy and a
// token-level RM saved by oreal, plus oreal's own numbers for them (loss per prompt, greedy tokens, RM scores, the
// chat-template ids). The policy is the bundled models/arith-sft with rope_theta set to 1e6, so a reader that falls
// back to the default theta (10000) computes a visibly different model.
//
//   node dist/scripts/hf-interop-export.js OUT_DIR        # then: python3 scripts/hf_interop_check.py OUT_DIR
//   node dist/scripts/hf-interop-export.js --check-t5 DIR EXPECTED_LOSSES_JSON
//        (loads a checkpoint that transformers itself saved and prints oreal's losses next to transformers')
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJsBackend } from '../src/engine/js-backend.js';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.js';
import type { ModelConfig } from '../src/model/config.js';
import { Qwen2Model, crossEntropyLoss, qwen2ConfigFromModelConfig } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { generate } from '../src/sample/generate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = path.join(root, 'models', 'arith-sft');
const QUESTIONS = ['What is 17 + 25?', 'Compute 9 * 8 - 14.', 'What is 300 - 123?', 'Compute (6 + 7) * 3.'];
const NEW_TOKENS = 24;

async function lossOf(model: Qwen2Model, ids: number[]): Promise<number> {
  return (await crossEntropyLoss(model, ids, [ids.length])).loss;
}

async function exportAll(out: string): Promise<void> {
  const backend = createJsBackend();
  const ck = loadCheckpoint(SRC);
  const policyCfg: ModelConfig = { ...ck.config, ropeTheta: 1e6 };
  const policy = Qwen2Model.fromTensors(qwen2ConfigFromModelConfig(policyCfg), backend, ck.tensors);
  saveCheckpoint(path.join(out, 'policy'), policyCfg, policy.toTensors(), { dtype: 'f32', tokenizerDir: SRC });

  // The RM: the policy's trunk with a non-zero scalar head and no bias (OREAL's head), saved as oreal saves it.
  const rmCfg: ModelConfig = { ...policyCfg, architectures: ['Qwen2ForTokenClassification'], isTokenClassification: true, numLabels: 1, raw: { ...policyCfg.raw, num_labels: 1 } };
  const rm = Qwen2Model.fromTensors(qwen2ConfigFromModelConfig(rmCfg), backend, new Map([...ck.tensors, ['score.weight', { shape: [1, policyCfg.hiddenSize], data: Float32Array.from({ length: policyCfg.hiddenSize }, (_, i) => Math.sin(i + 1) * 0.05) }]]));
  saveCheckpoint(path.join(out, 'rm'), rmCfg, rm.toTensors(), { dtype: 'f32', tokenizerDir: SRC });

  const tok = Tokenizer.load(SRC);
  const cases = [];
  for (const q of QUESTIONS) {
    const prompt = tok.encodeChat([{ role: 'user', content: q }], { addGenerationPrompt: true });
    const [g] = await generate(policy, [{ prompt, n: 1, params: { maxNewTokens: NEW_TOKENS, temperature: 0, topP: 1, topK: 0, stopTokenIds: [...policyCfg.eosTokenIds], stopStrings: [], greedy: true } }]);
    const full = [...prompt, ...g![0]!.tokenIds];
    const score = rm.forward(full, [full.length], { saveForBackward: false }).score!;
    cases.push({ question: q, prompt_ids: prompt, greedy_ids: g![0]!.tokenIds, loss: await lossOf(policy, full), rm_scores: Array.from(score) });
  }
  fs.writeFileSync(path.join(out, 'oreal.json'), JSON.stringify({ new_tokens: NEW_TOKENS, eos_ids: policyCfg.eosTokenIds, cases }, null, 1));
  process.stdout.write(`wrote ${out}/{policy,rm,oreal.json}\n`);
}

async function checkT5(dir: string, expectedFile: string): Promise<void> {
  const expected = JSON.parse(fs.readFileSync(expectedFile, 'utf8')) as { cases: Array<{ ids: number[]; hf_loss: number }> };
  const ck = loadCheckpoint(dir);
  const model = Qwen2Model.fromCheckpoint(ck, createJsBackend());
  process.stdout.write(`${dir}: rope_theta read as ${ck.config.ropeTheta}\n`);
  let worst = 0;
  for (const c of expected.cases) {
    const ours = await lossOf(model, c.ids);
    const rel = Math.abs(ours - c.hf_loss) / Math.abs(c.hf_loss);
    worst = Math.max(worst, rel);
    process.stdout.write(`loss oreal ${ours.toFixed(8)}  transformers ${c.hf_loss.toFixed(8)}  rel ${rel.toExponential(2)}\n`);
  }
  process.stdout.write(`worst relative difference ${worst.toExponential(2)}\n`);
  if (!(worst < 1e-5)) process.exitCode = 1;
}

const args = process.argv.slice(2);
if (args[0] === '--check-t5' && args.length === 3) await checkT5(args[1]!, args[2]!);
else if (args.length === 1 && !args[0]!.startsWith('-')) await exportAll(path.resolve(args[0]!));
else {
  process.stderr.write('usage: hf-interop-export.js OUT_DIR | --check-t5 DIR EXPECTED_JSON\n');
  process.exitCode = 2;
}
