#!/usr/bin/env python3
"""PyTorch greedy-decoding fixtures for the KV-cache sampler (src/sample/, test/sample-generate.test.ts).

For tiny random Qwen2-shaped models (float32 weights), computes greedy continuations of a few prompts of different
lengths with a cache-free float64 forward pass (the whole sequence is re-run at every step), plus the log-prob of each
chosen token and the smallest top-1/top-2 logit margin (the fixture is rejected when a near tie could make float32
and float64 disagree).

The model math is a plain-torch statement of HF Qwen2ForCausalLM (same conventions as scripts/torch_qwen2_reference.py,
whose helpers are restated here rather than imported so that file can change independently).

Writes test/fixtures/sample/<case>.json (config, prompts, expected tokens/logprobs, tensor list) and <case>.bin
(little-endian float32 weights in the JSON's tensor order).

Run: /usr/bin/python3 scripts/torch_greedy_fixture.py
"""
import json
import math
import os
import sys

import torch

torch.set_num_threads(1)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'sample')


def param_shapes(cfg):
    H, I, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = cfg.get('head_dim') or H // nh
    shapes = [('model.embed_tokens.weight', [V, H])]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        shapes.append((p + 'input_layernorm.weight', [H]))
        for n, rows in (('q', nh * hd), ('k', nkv * hd), ('v', nkv * hd)):
            shapes.append((p + f'self_attn.{n}_proj.weight', [rows, H]))
            if cfg['attention_bias']:
                shapes.append((p + f'self_attn.{n}_proj.bias', [rows]))
        shapes.append((p + 'self_attn.o_proj.weight', [H, nh * hd]))
        shapes.append((p + 'post_attention_layernorm.weight', [H]))
        shapes.append((p + 'mlp.gate_proj.weight', [I, H]))
        shapes.append((p + 'mlp.up_proj.weight', [I, H]))
        shapes.append((p + 'mlp.down_proj.weight', [H, I]))
    shapes.append(('model.norm.weight', [H]))
    if not cfg['tie_word_embeddings']:
        shapes.append(('lm_head.weight', [V, H]))
    return shapes


def random_params(cfg, gen):
    params = {}
    for name, shape in param_shapes(cfg):
        if name.endswith('norm.weight'):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith('.bias'):
            t = 0.2 * torch.randn(shape, generator=gen)
        elif name == 'model.embed_tokens.weight':
            t = 0.5 * torch.randn(shape, generator=gen)
        else:
            t = 1.5 * torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        params[name] = t.to(torch.float32)
    return params


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def logits_of(cfg, P, ids):
    """ids: [T] long -> logits [T, V] (float64), causal, positions 0..T-1."""
    T = ids.shape[0]
    H = cfg['hidden_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = cfg.get('head_dim') or H // nh
    eps = cfg['rms_norm_eps']
    inv_freq = 1.0 / (cfg['rope_theta'] ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    freqs = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float('-inf'), dtype=DT).triu(1)
    x = P['model.embed_tokens.weight'][ids]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        h = rms_norm(x, P[p + 'input_layernorm.weight'], eps)

        def proj(n):
            y = h @ P[p + f'self_attn.{n}_proj.weight'].T
            return y + P[p + f'self_attn.{n}_proj.bias'] if cfg['attention_bias'] else y

        q = proj('q').view(T, nh, hd).transpose(0, 1)
        k = proj('k').view(T, nkv, hd).transpose(0, 1)
        v = proj('v').view(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        a = torch.softmax((q @ k.transpose(1, 2)) * (hd ** -0.5) + mask, dim=-1) @ v
        x = x + a.transpose(0, 1).reshape(T, nh * hd) @ P[p + 'self_attn.o_proj.weight'].T
        h = rms_norm(x, P[p + 'post_attention_layernorm.weight'], eps)
        g = h @ P[p + 'mlp.gate_proj.weight'].T
        u = h @ P[p + 'mlp.up_proj.weight'].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + 'mlp.down_proj.weight'].T
    hn = rms_norm(x, P['model.norm.weight'], eps)
    W = P['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else P['lm_head.weight']
    return hn @ W.T


def make_case(name, cfg, prompt_lens, new_tokens, seed):
    gen = torch.Generator().manual_seed(seed)
    P32 = random_params(cfg, gen)
    P = {k: v.to(DT) for k, v in P32.items()}
    prompts = [torch.randint(0, cfg['vocab_size'], (n,), generator=gen).tolist() for n in prompt_lens]
    outs, lps, min_margin = [], [], float('inf')
    for pr in prompts:
        ids = list(pr)
        toks, lp = [], []
        for _ in range(new_tokens):
            z = logits_of(cfg, P, torch.tensor(ids))[-1]
            top2 = torch.topk(z, 2).values
            min_margin = min(min_margin, float(top2[0] - top2[1]))
            t = int(torch.argmax(z))
            lp.append(float(torch.log_softmax(z, -1)[t]))
            toks.append(t)
            ids.append(t)
        outs.append(toks)
        lps.append(lp)
    if min_margin < 1e-3:
        sys.exit(f'{name}: top-2 logit margin {min_margin} too small for a float32 comparison; change the seed')
    names = [n for n, _ in param_shapes(cfg)]
    out = {
        'name': name, 'config': cfg, 'prompts': prompts, 'new_tokens': new_tokens, 'greedy': outs, 'logprobs': lps,
        'min_margin': min_margin, 'tensors': [{'name': n, 'shape': list(P32[n].shape)} for n in names],
    }
    blob = b''.join(P32[n].contiguous().numpy().astype('<f4').tobytes() for n in names)
    with open(os.path.join(OUT, name + '.bin'), 'wb') as f:
        f.write(blob)
    with open(os.path.join(OUT, name + '.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
    print(f'{name}: {len(blob)} bytes of weights, min top-2 margin {min_margin:.4f}', file=sys.stderr)


def base_cfg(**kw):
    cfg = {
        'vocab_size': 97, 'hidden_size': 32, 'intermediate_size': 48, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'rms_norm_eps': 1e-6, 'rope_theta': 10000.0,
        'tie_word_embeddings': True, 'attention_bias': True,
    }
    cfg.update(kw)
    return cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    # Qwen2: q/k/v biases, tied embeddings, GQA 4:2
    make_case('greedy_qwen2_tied', base_cfg(), [1, 6, 11, 3], 12, 11)
    # Llama-style: no biases, untied head, GQA 4:1, 3 layers, theta 1e6, head dim 12
    make_case('greedy_untied_gqa', base_cfg(hidden_size=48, intermediate_size=64, num_key_value_heads=1,
                                            num_hidden_layers=3, rope_theta=1e6, tie_word_embeddings=False,
                                            attention_bias=False), [9, 2, 5], 10, 12)


if __name__ == '__main__':
    main()
