#!/usr/bin/env python3
"""PyTorch anchors for the WebGPU benchmarks, same shapes: f32 matmul (TF32 off) of square sizes on CUDA.

Prints one JSON line: {"device", "torch", "results": [{"size", "transB", "median_ms", "tflops"}]}, timed like
bench/webgpu-gemm.ts (reps matmuls back to back, to completion, median of rounds).

Run: python3 bench/gpu_anchor.py [--sizes 1024,2048,4096] [--reps 10] [--rounds 5]
"""
import argparse
import json
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument('--sizes', default='1024,2048,4096')
ap.add_argument('--reps', type=int, default=10)
ap.add_argument('--rounds', type=int, default=5)
a = ap.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device('cuda')
out = []
for n in map(int, a.sizes.split(',')):
    for trans_b in (False, True):
        A = torch.randn(n, n, device=dev)
        B = torch.randn(n, n, device=dev)
        C = torch.empty(n, n, device=dev)

        def run():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(a.reps):
                torch.matmul(A, B.t() if trans_b else B, out=C)
            torch.cuda.synchronize()
            return (time.perf_counter() - t0) / a.reps * 1000

        run()
        ms = sorted(run() for _ in range(a.rounds))[a.rounds // 2]
        out.append({'size': n, 'transB': trans_b, 'median_ms': ms, 'tflops': 2 * n ** 3 / (ms / 1000) / 1e12})
print(json.dumps({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'results': out}))
