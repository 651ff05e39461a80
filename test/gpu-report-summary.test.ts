// The gpu-report summary (bench/gpu-report-summary.ts) on a made-up output directory: each figure next to PyTorch's,
// the ratio, the goal, and a note for every item that did not run or left no result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { summarizeGpuReport } from '../bench/gpu-report-summary.js';

test('gpu-report summary: figures, ratios to PyTorch, goals, and what did not run', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oreal-gpu-report-'));
  try {
    const put = (item: string, text: string): void => fs.writeFileSync(path.join(dir, `${item}.out`), text);
    const gemm = (variant: string, tflops: number, split: number): object => ({ variant, M: 4096, N: 4096, K: 4096, trans: 'nn', split, median_ms: 1, tflops });
    put('gemm-webgpu', 'log line\n' + JSON.stringify({ adapter: 'nvidia-h200', results: [gemm('bk16', 40, 1), gemm('bk16:off', 39, 1), { variant: 'bk16', M: 896, N: 896, K: 8192, trans: 'tn', split: 6, median_ms: 1, tflops: 20 }, { variant: 'bk16:off', M: 896, N: 896, K: 8192, trans: 'tn', split: 1, median_ms: 1, tflops: 5 }] }) + '\n');
    put('gemm-torch', JSON.stringify({ device: 'NVIDIA H200', torch: '2.11', results: [{ M: 4096, N: 4096, K: 4096, trans: 'nn', median_ms: 1, tflops: 50 }, { M: 896, N: 896, K: 8192, trans: 'tn', median_ms: 1, tflops: 25 }] }) + '\n');
    put('gemm-webgpu-tiles', JSON.stringify({ results: [gemm('bk16u', 42, 1), gemm('bk8@128x256/8x8', 45, 1)] }));
    put('step-0.5b-webgpu', JSON.stringify({ adapter: 'nvidia-h200', shape: '0.5b', batch: 8, seq: 1024, step_s: 0.9, forward_s: 0.3, peak_gb: 21 }));
    put('step-0.5b-torch', JSON.stringify({ step_s: 0.75, peak_gb: 14 }));
    put('decode-0.5b-webgpu', JSON.stringify({ batch: 64, new_tokens: 256, tokens_per_s: 6000, device_host: { dispatches_per_step: 605, host_ms_per_step: 3.1 } }));
    put('decode-0.5b-torch', JSON.stringify({ fp32_tokens_per_s: 900, bf16_tokens_per_s: 1000 }));
    put('step-1.5b-webgpu', 'Traceback: out of memory\n');
    fs.writeFileSync(path.join(dir, 'summary.txt'), 'step-1.5b-webgpu rc=1 12 s\nstep-1.5b-webgpu peak GPU memory: 30720 MiB\nmain-job-webgpu rc=0 100 s\nmain-job-cpu rc=0 300 s\n');
    const md = summarizeGpuReport(dir);
    assert.match(md, /WebGPU adapter: nvidia-h200\. PyTorch: NVIDIA H200, torch 2\.11\./);
    assert.match(md, /\| f32 GEMM 4096×4096×4096 nn \(TFLOP\/s\) \| 40\.0 \| 50\.0 \| 0\.80× \| ≥ 0\.9× \|/);
    assert.match(md, /\| f32 GEMM 896×896×8192 tn \(TFLOP\/s\) \| 20\.0, K in 6 slices; split off 5\.00 \| 25\.0 \| 0\.80× \|/);
    assert.match(md, /best other tile at 4096×4096×4096 nn \| 45\.0 \(bk8@128x256\/8x8\) \| 50\.0 \| 0\.90×/);
    assert.match(md, /\| 0\.5b shape, AdamW step on 8×1024 tokens \(s\) \| 0\.900 \(forward 0\.300; split off –\) \| 0\.750 \| 1\.20× \| ≤ 1\.2× \|/);
    assert.match(md, /\| greedy decode, batch 64, 256 new tokens \(tokens\/s\) \| 6000; 605 dispatches, 3\.1 ms host a step \| 900 fp32, 1000 bf16 \| 6\.67× \|/);
    assert.match(md, /1\.5b shape, AdamW step \(s\) \| – \|/);
    assert.match(md, /– in buffers, 30\.00 by nvidia-smi/);
    assert.match(md, /main job \(`npm start`\) wall time \(s\) \| 100 \| CPU backend: 300 \| 0\.33×/);
    assert.match(md, /- step-0\.5b-webgpu-nosplit did not run/);
    assert.match(md, /- no result in step-1\.5b-webgpu\.out \(see step-1\.5b-webgpu\.err\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
