#!/usr/bin/env python3
"""PyTorch reference for the TypeScript Qwen2 decoder (src/model/qwen2.ts).

A plain-torch re-statement of Hugging Face's Qwen2ForCausalLM / Qwen2ForTokenClassification semantics (no
transformers needed): RMSNorm (fp32 statistics, weight * x * rsqrt(mean(x^2) + eps)), RoPE with rotate_half and
inv_freq = 1 / theta^(2i/d), position ids 0..len-1 per sequence, GQA by repeating K/V heads, causal softmax attention
scaled by head_dim^-0.5, SwiGLU MLP (down(silu(gate(x)) * up(x))), q/k/v biases (Qwen2) or none (Llama-style), tied
or untied LM head, and a `score` head of shape [1, hidden] for the token-level reward model (bias-free as in
OREAL, or with HF Qwen2ForTokenClassification's `score.bias` [1]).

Random tiny models and right-padded token batches are generated with a fixed seed. The weights are float32 values;
the reference computes in float64 so that the fixtures hold the "true" answer for those weights.

Writes test/fixtures/qwen2/<case>.json (config, tokens, expected numbers) and <case>.bin (little-endian float32
weights, in the order of the JSON's `tensors` list).

Run: /usr/bin/python3 scripts/torch_qwen2_reference.py   (Debian: apt-get install python3-torch libopenblas0-pthread)
"""
import json
import math
import os
import sys

import torch

torch.set_num_threads(1)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'qwen2')


def param_shapes(cfg):
    H, I, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = cfg.get('head_dim') or H // nh
    shapes = [('model.embed_tokens.weight', [V, H])]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        shapes.append((p + 'input_layernorm.weight', [H]))
        shapes.append((p + 'self_attn.q_proj.weight', [nh * hd, H]))
        if cfg['attention_bias']:
            shapes.append((p + 'self_attn.q_proj.bias', [nh * hd]))
        shapes.append((p + 'self_attn.k_proj.weight', [nkv * hd, H]))
        if cfg['attention_bias']:
            shapes.append((p + 'self_attn.k_proj.bias', [nkv * hd]))
        shapes.append((p + 'self_attn.v_proj.weight', [nkv * hd, H]))
        if cfg['attention_bias']:
            shapes.append((p + 'self_attn.v_proj.bias', [nkv * hd]))
        shapes.append((p + 'self_attn.o_proj.weight', [H, nh * hd]))
        shapes.append((p + 'post_attention_layernorm.weight', [H]))
        shapes.append((p + 'mlp.gate_proj.weight', [I, H]))
        shapes.append((p + 'mlp.up_proj.weight', [I, H]))
        shapes.append((p + 'mlp.down_proj.weight', [H, I]))
    shapes.append(('model.norm.weight', [H]))
    if cfg['head'] == 'lm' and not cfg['tie_word_embeddings']:
        shapes.append(('lm_head.weight', [V, H]))
    if cfg['head'] == 'score':
        shapes.append(('score.weight', [1, H]))
        if cfg.get('score_bias'):
            shapes.append(('score.bias', [1]))
    return shapes


def random_params(cfg, gen):
    params = {}
    for name, shape in param_shapes(cfg):
        if name.endswith('layernorm.weight') or name == 'model.norm.weight':
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith('.bias'):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif name == 'model.embed_tokens.weight':
            t = 0.2 * torch.randn(shape, generator=gen)
        else:
            t = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        params[name] = t.to(torch.float32)  # the weights are float32 values ...
    return params


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, P, ids):
    """ids: [B, T] long. Returns final normed hidden states [B, T, H]. Causal attention; right padding needs no
    mask for the valid positions (a valid query only sees earlier, hence valid, keys)."""
    B, T = ids.shape
    H = cfg['hidden_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = cfg.get('head_dim') or H // nh
    eps = cfg['rms_norm_eps']
    inv_freq = 1.0 / (cfg['rope_theta'] ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    pos = torch.arange(T, dtype=DT)
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # [T, hd]
    mask = torch.full((T, T), float('-inf'), dtype=DT).triu(1)

    x = P['model.embed_tokens.weight'][ids]
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}.'
        h = rms_norm(x, P[p + 'input_layernorm.weight'], eps)

        def proj(name):
            y = h @ P[p + f'self_attn.{name}_proj.weight'].T
            if cfg['attention_bias']:
                y = y + P[p + f'self_attn.{name}_proj.bias']
            return y

        q = proj('q').view(B, T, nh, hd).transpose(1, 2)
        k = proj('k').view(B, T, nkv, hd).transpose(1, 2)
        v = proj('v').view(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(2, 3)) * (hd ** -0.5) + mask
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, nh * hd)
        x = x + a @ P[p + 'self_attn.o_proj.weight'].T
        h = rms_norm(x, P[p + 'post_attention_layernorm.weight'], eps)
        g = h @ P[p + 'mlp.gate_proj.weight'].T
        u = h @ P[p + 'mlp.up_proj.weight'].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + 'mlp.down_proj.weight'].T
    return rms_norm(x, P['model.norm.weight'], eps)


def lm_weight(cfg, P):
    return P['model.embed_tokens.weight'] if cfg['tie_word_embeddings'] else P['lm_head.weight']


def next_token_terms(cfg, P, ids, lengths):
    """Per-position logp of the next token and entropy, zero where there is no label (t >= len-1)."""
    B, T = ids.shape
    hn = forward(cfg, P, ids)
    logits = hn @ lm_weight(cfg, P).T
    lsm = torch.log_softmax(logits, dim=-1)
    labels = torch.zeros(B, T, dtype=torch.long)
    labels[:, :-1] = ids[:, 1:]
    valid = torch.zeros(B, T, dtype=DT)
    for b, n in enumerate(lengths):
        valid[b, : n - 1] = 1.0
    logp = lsm.gather(-1, labels[..., None])[..., 0] * valid
    ent = -(lsm.exp() * lsm).sum(-1) * valid
    return logp, ent, valid


def make_case(name, cfg, B, T, lengths, seed, extra):
    gen = torch.Generator().manual_seed(seed)
    P32 = random_params(cfg, gen)
    ids = torch.randint(0, cfg['vocab_size'], (B, T), generator=gen)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0  # padding id; must not matter
    out = {'name': name, 'config': cfg, 'input_ids': ids.tolist(), 'lengths': lengths}

    def fresh():
        return {k: v.to(DT).clone().requires_grad_(True) for k, v in P32.items()}

    def norms(P):
        return {k: float(v.grad.norm()) if v.grad is not None else 0.0 for k, v in P.items()}

    if cfg['head'] == 'lm':
        # 1) mean next-token cross-entropy over valid positions
        P = fresh()
        logp, ent, valid = next_token_terms(cfg, P, ids, lengths)
        loss = -logp.sum() / valid.sum()
        loss.backward()
        out['loss'] = float(loss)
        out['logp'] = logp.detach().tolist()
        out['entropy'] = ent.detach().tolist()
        out['grad_norms'] = norms(P)
        if extra.get('weighted'):
            # 2) an RL-shaped objective: sum_t c_t * logp_t with c_t random, zero on "prompt" positions
            P = fresh()
            logp, _, valid = next_token_terms(cfg, P, ids, lengths)
            c = torch.randn(B, T, generator=gen, dtype=DT) * valid
            c[:, :2] = 0.0
            (c * logp).sum().backward()
            out['dlogp'] = c.tolist()
            out['grad_norms_weighted'] = norms(P)
    else:
        P = fresh()
        hn = forward(cfg, P, ids)
        score = (hn @ P['score.weight'].T)[..., 0]
        if cfg.get('score_bias'):
            score = score + P['score.bias'][0]
        valid = torch.zeros(B, T, dtype=DT)
        for b, n in enumerate(lengths):
            valid[b, :n] = 1.0
        score = score * valid
        d = torch.randn(B, T, generator=gen, dtype=DT) * valid
        (d * score).sum().backward()
        out['score'] = score.detach().tolist()
        out['dscore'] = d.tolist()
        out['grad_norms_score'] = norms(P)

    names = [n for n, _ in param_shapes(cfg)]
    out['tensors'] = [{'name': n, 'shape': list(P32[n].shape)} for n in names]
    blob = b''.join(P32[n].contiguous().numpy().astype('<f4').tobytes() for n in names)
    with open(os.path.join(OUT, name + '.bin'), 'wb') as f:
        f.write(blob)
    with open(os.path.join(OUT, name + '.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
    print(f'{name}: {sum(P32[n].numel() for n in names)} params, {len(blob)} bytes', file=sys.stderr)


def base_cfg(**kw):
    cfg = {
        'vocab_size': 97, 'hidden_size': 32, 'intermediate_size': 48, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'rms_norm_eps': 1e-6, 'rope_theta': 10000.0,
        'tie_word_embeddings': True, 'attention_bias': True, 'head': 'lm',
    }
    cfg.update(kw)
    return cfg


def main():
    os.makedirs(OUT, exist_ok=True)
    # Qwen2, tied embeddings, q/k/v biases, GQA 4:2, padded batch
    make_case('qwen2_tied', base_cfg(), 3, 11, [11, 7, 4], 1, {'weighted': True})
    # Qwen2, untied LM head, GQA 4:1, larger theta, hidden 48 (head_dim 12)
    make_case('qwen2_untied', base_cfg(hidden_size=48, intermediate_size=64, num_key_value_heads=1,
                                       rope_theta=1e6, tie_word_embeddings=False), 2, 13, [13, 9], 2,
              {'weighted': True})
    # Llama-style: no biases, untied, MHA (kv heads == heads), 3 layers, eps 1e-5
    make_case('llama_nobias', base_cfg(attention_bias=False, tie_word_embeddings=False, num_key_value_heads=4,
                                       num_hidden_layers=3, rms_norm_eps=1e-5), 2, 9, [9, 6], 3, {})
    # Token-level reward model: Qwen2ForTokenClassification (num_labels 1), score head [1, hidden]
    make_case('qwen2_score', base_cfg(head='score', hidden_size=64, intermediate_size=96, num_attention_heads=8,
                                      num_key_value_heads=2), 3, 10, [10, 5, 8], 4, {})
    # HF's Qwen2ForTokenClassification keeps nn.Linear's default bias: score.bias [1]; here on a bias-free trunk
    make_case('qwen2_score_bias', base_cfg(head='score', score_bias=True, attention_bias=False), 2, 6, [6, 3], 5, {})


if __name__ == '__main__':
    main()
