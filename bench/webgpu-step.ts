// One training step of a random Qwen2 model on the WebGPU backend: forward (token log-probs of the next tokens),
// backward, global gradient norm and AdamW, timed to completion (`await backend.sync()`), several rounds; prints the
// median and the adapter's name. bench/gpu_anchor.py --step runs the same shape in PyTorch (fp32, TF32 off) so the two
// can be compared in one call.
//
//   node dist/bench/webgpu-step.js [--shape 0.5b|1.5b|tiny] [--batch 8] [--seq 1024] [--rounds 3] [--json] [--profile]
//        [--split auto|off] [--layers N]
// --layers N: the shape with N decoder layers instead of its own (peak memory grows by one layer's parameters, gradients,
// moments and activations per layer, so two small N give the whole model's on a machine too small to hold it).
// --profile: GPU time of every kernel summed by kernel over the timed steps (timestamp queries), largest first.
// --split off: no split-K GEMMs and no per-head dk/dv (WebGpuBackendOptions.split), to time what they change.
// peak_gb is the most device memory the backend's buffers held at once (parameters, gradients, AdamW moments,
// activations, scratch), counted by the backend itself; the driver's own overhead is not in it.
import { WebGpuBackend } from '../src/engine/webgpu/ops.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';

const SHAPES: Record<string, Qwen2Config> = {
  tiny: { vocabSize: 512, hiddenSize: 128, intermediateSize: 256, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, attentionBias: true, head: 'lm' },
  '0.5b': { vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numHiddenLayers: 24, numAttentionHeads: 14, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, attentionBias: true, head: 'lm' },
  '1.5b': { vocabSize: 151936, hiddenSize: 1536, intermediateSize: 8960, numHiddenLayers: 28, numAttentionHeads: 12, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 1e6, tieWordEmbeddings: true, attentionBias: true, head: 'lm' },
};

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

const shape = arg('shape', '0.5b');
const base = SHAPES[shape];
if (base === undefined) throw new Error(`--shape: one of ${Object.keys(SHAPES).join(', ')}`);
const layers = Number(arg('layers', String(base.numHiddenLayers)));
if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers: a whole number ≥ 1, not ${arg('layers', '')}`);
const cfg: Qwen2Config = { ...base, numHiddenLayers: layers };
const B = Number(arg('batch', '8'));
const T = Number(arg('seq', '1024'));
const rounds = Number(arg('rounds', '3'));
const json = process.argv.includes('--json');

const profile = process.argv.includes('--profile');
const split = arg('split', 'auto');
if (split !== 'auto' && split !== 'off') throw new Error(`--split: auto or off, not ${split}`);
const be = await WebGpuBackend.open({ profile, split });
const t0 = performance.now();
// 1,024 LM-head rows at a time: a [1024, vocab] logits block (622 MB at 151,936) fits one binding and keeps GEMMs large.
const model = Qwen2Model.random(cfg, be, 1, 0.02, { logitsChunkRows: 1024 });
const opt = new AdamW(be, model.tensors, { lr: 1e-5 });
await be.sync();
const initS = (performance.now() - t0) / 1000;
const ids = Array.from({ length: B * T }, (_, i) => (i * 7919) % cfg.vocabSize);
const lengths = new Array<number>(B).fill(T);

async function step(): Promise<{ s: number; loss: number; forwardS: number }> {
  const a = performance.now();
  model.zeroGrad();
  const res = await model.forwardAsync(ids, lengths, { entropy: false, saveForBackward: true });
  const f = performance.now();
  const n = res.numLabels;
  let sum = 0;
  for (const x of res.logp!) sum += x;
  model.backward(new Float64Array(res.logp!.length).fill(-1 / n), null);
  await clipGradNorm(be, model.gradTensors.values(), 1.0);
  opt.step(model.gradTensors);
  await be.sync();
  return { s: (performance.now() - a) / 1000, loss: -sum / n, forwardS: (f - a) / 1000 };
}

const first = await step(); // compiles the pipelines
const times: Array<{ s: number; loss: number; forwardS: number }> = [];
for (let r = 0; r < rounds; r++) times.push(await step());
const sorted = [...times].sort((x, y) => x.s - y.s);
const med = sorted[Math.floor(sorted.length / 2)]!;
const peakGb = be.counters().peakBytes / 2 ** 30;
const out = { adapter: be.dev.adapterName, shape, layers, batch: B, seq: T, split, params: model.numParameters(), init_s: initS, first_step_s: first.s, step_s: med.s, forward_s: med.forwardS, loss: med.loss, peak_gb: peakGb, rounds };
if (json) process.stdout.write(JSON.stringify(out) + '\n');
else
  process.stdout.write(
    `${out.adapter}: ${shape}, ${layers} layers (${(out.params / 1e6).toFixed(0)}M params), ${B}×${T} tokens, split ${split}: step ${med.s.toFixed(3)} s ` +
      `(forward ${med.forwardS.toFixed(3)} s), first step ${first.s.toFixed(2)} s, loss ${med.loss.toFixed(4)}, peak ${peakGb.toFixed(2)} GiB in buffers\n`,
  );
if (profile) {
  const prof = await be.dev.profile();
  const total = prof.reduce((a, p) => a + p.seconds, 0);
  process.stdout.write(`GPU time by kernel over ${rounds + 1} steps (${total.toFixed(2)} s in all):\n`);
  for (const p of prof.slice(0, 25)) process.stdout.write(`  ${p.label.padEnd(32)} ${p.seconds.toFixed(3)} s  ${p.passes} passes\n`);
}
be.dispose();
