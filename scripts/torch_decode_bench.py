#!/usr/bin/env python3
"""Greedy KV-cache decoding speed in PyTorch on the shape of `oreal bench decode`, next to ours, in one run.

Times a plain-torch Qwen2 greedy loop (float32, no_grad, F.linear as HF's nn.Linear, preallocated KV cache [layers, batch, kv_heads, max_len,
head_dim], prefill of the whole prompt batch, then one token per step for every sequence) on a random model with the
same shape as `--model random:layers=4,hidden=256,heads=4,kv-heads=2,intermediate=1024,vocab=512`, and (unless
--no-node) runs `node dist/src/cli/bench-decode.js` with the same shape and thread count. Both report
tokens_per_s = batch * new_tokens / wall time of one generation (prefill included), median over the timed runs after
one warm-up. Prints one JSON line {"torch": {...}, "oreal": {...}, "ratio_oreal_over_torch": x}.

Run (after `npx tsc -p tsconfig.json`): /usr/bin/python3 scripts/torch_decode_bench.py [--threads N] [--runs 5]
Timings on a shared machine are noisy; compare medians of runs taken together.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model:
    def __init__(self, L, H, nh, nkv, I, V, seed=0, theta=10000.0, eps=1e-6):
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: 0.02 * torch.randn(*s, generator=g)
        self.L, self.H, self.nh, self.nkv, self.I, self.V = L, H, nh, nkv, I, V
        self.hd = H // nh
        self.eps = eps
        self.embed = r(V, H)
        self.layers = []
        for _ in range(L):
            self.layers.append({
                'ln1': torch.ones(H), 'wq': r(nh * self.hd, H), 'bq': torch.zeros(nh * self.hd),
                'wk': r(nkv * self.hd, H), 'bk': torch.zeros(nkv * self.hd),
                'wv': r(nkv * self.hd, H), 'bv': torch.zeros(nkv * self.hd),
                'wo': r(H, nh * self.hd), 'ln2': torch.ones(H),
                'wg': r(I, H), 'wu': r(I, H), 'wd': r(H, I),
            })
        self.norm = torch.ones(H)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))

    def rope(self, pos):
        f = pos[:, None].float() * self.inv_freq[None, :]
        e = torch.cat((f, f), -1)
        return e.cos(), e.sin()

    def step(self, ids, p0, kc, vc):
        """ids [B, T] at positions p0..p0+T-1 (same for every row); writes the cache; returns last logits [B, V]."""
        B, T = ids.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        grp = nh // nkv
        cos, sin = self.rope(torch.arange(p0, p0 + T))
        x = self.embed[ids]
        mask = None
        if T > 1:
            mask = torch.full((T, p0 + T), float('-inf')).triu(p0 + 1)
        for l, P in enumerate(self.layers):
            h = rms_norm(x, P['ln1'], self.eps)
            q = F.linear(h, P['wq'], P['bq']).view(B, T, nh, hd).transpose(1, 2)
            k = F.linear(h, P['wk'], P['bk']).view(B, T, nkv, hd).transpose(1, 2)
            v = F.linear(h, P['wv'], P['bv']).view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            kc[l, :, :, p0:p0 + T] = k
            vc[l, :, :, p0:p0 + T] = v
            K = kc[l, :, :, :p0 + T]  # [B, nkv, S, hd]
            Vv = vc[l, :, :, :p0 + T]
            qg = q.reshape(B, nkv, grp * T, hd)  # heads of a group stacked
            s = (qg @ K.transpose(-1, -2)) * (hd ** -0.5)
            if mask is not None:
                s = s.view(B, nkv, grp, T, -1) + mask
                s = s.view(B, nkv, grp * T, -1)
            a = (torch.softmax(s, -1) @ Vv).view(B, nh, T, hd).transpose(1, 2).reshape(B * T, nh * hd)
            x = x + F.linear(a, P['wo']).view(B, T, -1)
            h = rms_norm(x, P['ln2'], self.eps).view(B * T, -1)
            x = x + F.linear(F.silu(F.linear(h, P['wg'])) * F.linear(h, P['wu']), P['wd']).view(B, T, -1)
        hn = rms_norm(x[:, -1], self.norm, self.eps)
        return F.linear(hn, self.embed)

    @torch.no_grad()
    def generate(self, prompts, new_tokens):
        B, P = prompts.shape
        max_len = P + new_tokens
        kc = torch.zeros(self.L, B, self.nkv, max_len, self.hd)
        vc = torch.zeros_like(kc)
        logits = self.step(prompts, 0, kc, vc)
        out = []
        tok = logits.argmax(-1)
        out.append(tok)
        for t in range(1, new_tokens):
            logits = self.step(tok[:, None], P + t - 1, kc, vc)
            tok = logits.argmax(-1)
            out.append(tok)
        return torch.stack(out, 1)


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--hidden', type=int, default=256)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--kv-heads', type=int, default=2)
    ap.add_argument('--intermediate', type=int, default=1024)
    ap.add_argument('--vocab', type=int, default=512)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--prompt-len', type=int, default=32)
    ap.add_argument('--new-tokens', type=int, default=96)
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--backend', default='wasm', help='oreal backend (wasm | js)')
    ap.add_argument('--no-node', action='store_true', help='time PyTorch only')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = Model(a.layers, a.hidden, a.heads, a.kv_heads, a.intermediate, a.vocab)
    g = torch.Generator().manual_seed(1234)
    prompts = torch.randint(0, a.vocab, (a.batch, a.prompt_len), generator=g)
    times = []
    for r in range(a.runs + 1):
        t0 = time.perf_counter()
        m.generate(prompts, a.new_tokens)
        dt = time.perf_counter() - t0
        if r > 0:
            times.append(a.batch * a.new_tokens / dt)
    res = {'torch': {'tokens_per_s': round(median(times), 1), 'threads': torch.get_num_threads(),
                     'version': torch.__version__}}
    if not a.no_node:
        spec = (f'random:layers={a.layers},hidden={a.hidden},heads={a.heads},kv-heads={a.kv_heads},'
                f'intermediate={a.intermediate},vocab={a.vocab}')
        cmd = ['node', os.path.join(ROOT, 'dist', 'src', 'cli', 'bench-decode.js'), '--model', spec,
               '--batch', str(a.batch), '--prompt-len', str(a.prompt_len), '--new-tokens', str(a.new_tokens),
               '--runs', str(a.runs), '--backend', a.backend, '--json']
        if a.backend == 'wasm':
            cmd += ['--threads', str(a.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res['oreal'] = json.loads(out)
        res['ratio_oreal_over_torch'] = round(res['oreal']['tokens_per_s'] / res['torch']['tokens_per_s'], 3)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
