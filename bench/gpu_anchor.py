#!/usr/bin/env python3
"""PyTorch anchors for the WebGPU benchmarks, same shapes: f32 matmul (TF32 off) of square sizes on CUDA.

Prints one JSON line: {"device", "torch", "results": [{"M", "N", "K", "trans", "median_ms", "tflops"}]}, timed like
bench/webgpu-gemm.ts (reps matmuls back to back, to completion, median of rounds); square sizes run nn and nt,
--shapes MxNxK[:ab] adds others (a = t: C = Aᵀ·B with A stored K×M; b = t: B stored N×K), as webgpu-gemm.ts does.

Run: python3 bench/gpu_anchor.py [--sizes 1024,2048,4096] [--shapes 896x896x8192:tn] [--reps 10] [--rounds 5]
     python3 bench/gpu_anchor.py --step 0.5b [--batch 8] [--seq 1024]   (the twin of bench/webgpu-step.ts)
     python3 bench/gpu_anchor.py --decode 0.5b [--batch 64] [--prompt 32] [--new 256]   (the twin of `oreal bench decode`)

--step: one training step (forward, mean next-token cross-entropy, backward, clip 1.0, AdamW) of a random
transformers Qwen2ForCausalLM of that shape in fp32 with TF32 off and sdpa attention; prints the median of 3 rounds.
--decode: greedy `generate` of a random model of that shape, every sequence forced to `--new` tokens, batch of random
prompts; tokens/s = batch·new / wall time (prefill included), fp32 and bf16, median of 3 rounds after a warm-up.
"""
import argparse
import json
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument('--sizes', default='1024,2048,4096')
ap.add_argument('--shapes', default='')
ap.add_argument('--reps', type=int, default=10)
ap.add_argument('--rounds', type=int, default=5)
ap.add_argument('--step', default=None)
ap.add_argument('--decode', default=None)
ap.add_argument('--prompt', type=int, default=32)
ap.add_argument('--new', type=int, default=256)
ap.add_argument('--batch', type=int, default=8)
ap.add_argument('--seq', type=int, default=1024)
a = ap.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device('cuda')
SHAPES = {
    '0.5b': dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2),
    '1.5b': dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2),
    'tiny': dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}
if a.decode is not None:
    from transformers import Qwen2Config, Qwen2ForCausalLM
    vocab = 512 if a.decode == 'tiny' else 151936
    cfg = Qwen2Config(vocab_size=vocab, tie_word_embeddings=True, rope_theta=1e6, attn_implementation='sdpa', **SHAPES[a.decode])
    res = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'shape': a.decode, 'batch': a.batch, 'prompt': a.prompt, 'new': a.new}
    for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        model = Qwen2ForCausalLM(cfg).to(dev, dtype=dtype).eval()
        g = torch.Generator().manual_seed(1234)
        ids = torch.randint(0, vocab, (a.batch, a.prompt), generator=g).to(dev)

        def gen():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=a.new, min_new_tokens=a.new, pad_token_id=0)
            torch.cuda.synchronize()
            return a.batch * a.new / (time.perf_counter() - t0)

        gen()
        res[f'{name}_tokens_per_s'] = sorted(gen() for _ in range(3))[1]
        del model
        torch.cuda.empty_cache()
    print(json.dumps(res))
    raise SystemExit(0)
if a.step is not None:
    from transformers import Qwen2Config, Qwen2ForCausalLM
    shapes = SHAPES
    vocab = 512 if a.step == 'tiny' else 151936
    cfg = Qwen2Config(vocab_size=vocab, tie_word_embeddings=True, rope_theta=1e6, attn_implementation='sdpa', **shapes[a.step])
    model = Qwen2ForCausalLM(cfg).to(dev, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = (torch.arange(a.batch * a.seq, device=dev) * 7919 % vocab).view(a.batch, a.seq)
    torch.cuda.reset_peak_memory_stats()

    def step():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        return time.perf_counter() - t0, loss.item()

    step()
    runs = sorted(step() for _ in range(3))
    s, loss = runs[1]
    print(json.dumps({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'shape': a.step, 'batch': a.batch, 'seq': a.seq,
                      'step_s': s, 'loss': loss, 'peak_gb': torch.cuda.max_memory_allocated() / 2**30}))
    raise SystemExit(0)
shapes = []
for n in (int(x) for x in a.sizes.split(',') if x):
    shapes += [(n, n, n, 'nn'), (n, n, n, 'nt')]
for spec in (x for x in a.shapes.split(',') if x):
    dims, _, trans = spec.partition(':')
    m, n, k = map(int, dims.split('x'))
    shapes.append((m, n, k, trans or 'nn'))
out = []
for m, n, k, trans in shapes:
    A = torch.randn(*((k, m) if trans[0] == 't' else (m, k)), device=dev)
    B = torch.randn(*((n, k) if trans[1] == 't' else (k, n)), device=dev)
    C = torch.empty(m, n, device=dev)
    opA = A.t() if trans[0] == 't' else A
    opB = B.t() if trans[1] == 't' else B

    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.reps):
            torch.matmul(opA, opB, out=C)
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / a.reps * 1000

    run()
    ms = sorted(run() for _ in range(a.rounds))[a.rounds // 2]
    out.append({'M': m, 'N': n, 'K': k, 'trans': trans, 'median_ms': ms, 'tflops': 2 * m * n * k / (ms / 1000) / 1e12})
print(json.dumps({'device': torch.cuda.get_device_name(), 'torch': torch.__version__, 'results': out}))
