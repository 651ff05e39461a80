#!/usr/bin/env python3
"""Greedy KV-cache decoding speed in PyTorch on the shape of `oreal bench decode`, next to ours, in one run.

Times a plain-torch Qwen2 greedy loop (float32, torch.inference_mode, F.linear as HF's nn.Linear, RoPE tables built
once, preallocated KV cache [layers, batch, kv_heads, max_len, head_dim], prefill of the whole prompt batch, then one
token per step for every sequence) on a random model with the same shape as
`--model random:layers=4,hidden=256,heads=4,kv-heads=2,intermediate=1024,vocab=512`, and oreal's
`node dist/src/cli/bench-decode.js --serve` (one long-lived process per backend and thread count) on the same shape.

The configurations are timed *alternately*: every round runs one generation of each (torch at each thread count,
oreal for each backend and thread count), in an order rotated every round, so load from other processes on a shared
machine hits all of them alike. Each reports tokens_per_s = batch * new_tokens / wall time of one generation (prefill
included); the result is the median over the rounds (after one warm-up each). Ratios compare every oreal configuration
with torch's best thread count. Prints one JSON line, with the load average before and after.

Run (after `npx tsc -p tsconfig.json`):
  /usr/bin/python3 scripts/torch_decode_bench.py [--torch-threads 1,2] [--backends wasm,blas] [--oreal-threads 1,2]
                                                 [--rounds 7]
  --threads N sets both thread lists to N (the older interface). Timings on a shared machine are noisy.
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
        self.cos = self.sin = torch.zeros(0, self.hd)

    def rope(self, pos):
        """cos, sin [T, hd] for positions pos (a range), from tables grown as needed (built once per length)."""
        n = int(pos[-1]) + 1
        if self.cos.shape[0] < n:
            f = torch.arange(max(n, 2 * self.cos.shape[0], 256)).float()[:, None] * self.inv_freq[None, :]
            e = torch.cat((f, f), -1)
            self.cos, self.sin = e.cos(), e.sin()
        p0 = int(pos[0])
        return self.cos[p0:n], self.sin[p0:n]

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

    @torch.inference_mode()
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


class OrealProc:
    """A `bench-decode.js --serve` process: one timed generation per `run()`."""

    def __init__(self, a, backend, threads, root=ROOT):
        spec = (f'random:layers={a.layers},hidden={a.hidden},heads={a.heads},kv-heads={a.kv_heads},'
                f'intermediate={a.intermediate},vocab={a.vocab}')
        cmd = ['node', os.path.join(root, 'dist', 'src', 'cli', 'bench-decode.js'), '--model', spec,
               '--batch', str(a.batch), '--prompt-len', str(a.prompt_len), '--new-tokens', str(a.new_tokens),
               '--backend', backend, '--threads', str(threads), '--serve']
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f'bench-decode exited with {self.p.wait()}')
        return json.loads(line)

    def run(self):
        self.p.stdin.write('run\n')
        self.p.stdin.flush()
        return self._read()['tokens_per_s']

    def close(self):
        try:
            self.p.stdin.write('quit\n')
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        self.p.wait()


def ints(s):
    return [int(x) for x in s.split(',') if x.strip()]


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
    ap.add_argument('--rounds', type=int, default=7, help='timed rounds (each config once per round)')
    ap.add_argument('--runs', type=int, help='alias of --rounds')
    ap.add_argument('--torch-threads', type=ints, default=[1, 2])
    ap.add_argument('--oreal-threads', type=ints, default=[1, 2])
    ap.add_argument('--threads', type=int, help='sets --torch-threads and --oreal-threads to this one value')
    ap.add_argument('--backends', default=None, help='oreal backends, comma-separated (default wasm,blas when built)')
    ap.add_argument('--backend', default=None, help='one oreal backend (older interface)')
    ap.add_argument('--no-node', action='store_true', help='time PyTorch only')
    ap.add_argument('--base-root', default=None,
                    help='another built checkout (e.g. the previous commit) to time alongside, as base-<backend>/tN')
    a = ap.parse_args()
    rounds = a.runs if a.runs is not None else a.rounds
    if a.threads is not None:
        a.torch_threads = a.oreal_threads = [a.threads]
    backends = (a.backends or a.backend or '').split(',')
    backends = [b for b in backends if b]
    if not backends:
        blas = os.path.exists(os.path.join(ROOT, 'build', 'Release', 'oreal_blas.node'))
        backends = ['wasm', 'blas'] if blas else ['wasm']
    load_before = os.getloadavg()

    m = Model(a.layers, a.hidden, a.heads, a.kv_heads, a.intermediate, a.vocab)
    g = torch.Generator().manual_seed(1234)
    prompts = torch.randint(0, a.vocab, (a.batch, a.prompt_len), generator=g)

    def torch_run(t):
        def f():
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            m.generate(prompts, a.new_tokens)
            return a.batch * a.new_tokens / (time.perf_counter() - t0)
        return f

    configs = [(f'torch/t{t}', torch_run(t)) for t in a.torch_threads]
    procs = []
    try:
        if not a.no_node:
            for b in backends:
                for t in a.oreal_threads:
                    if b == 'js' and t != a.oreal_threads[0]:
                        continue
                    for prefix, root in [('', ROOT)] + ([('base-', a.base_root)] if a.base_root else []):
                        p = OrealProc(a, b, t, root)
                        procs.append(p)
                        configs.append((f'{prefix}{b}/t{p.info["threads"]}', p.run))
        for _, f in configs:
            if _.startswith('torch'):
                f()  # warm-up (the node processes warm up on start)
        times = {name: [] for name, _ in configs}
        for r in range(rounds):
            k = r % len(configs)
            for name, f in configs[k:] + configs[:k]:
                times[name].append(f())
    finally:
        for p in procs:
            p.close()
    med = {name: round(median(v), 1) for name, v in times.items()}
    tnames = [n for n in med if n.startswith('torch/')]
    best = max(tnames, key=lambda n: med[n])
    res = {'torch': {'version': torch.__version__, 'best': best, 'tokens_per_s': med[best],
                     **{n: med[n] for n in tnames}}}
    onames = [n for n in med if not n.startswith('torch/')]
    if onames:
        res['oreal'] = {n: med[n] for n in onames}
        res['ratio_vs_torch_best'] = {n: round(med[n] / med[best], 3) for n in onames}
        ob = max(onames, key=lambda n: med[n])
        res['ratio_oreal_over_torch'] = round(med[ob] / med[best], 3)
        res['oreal_best'] = ob
    res['shape'] = {'batch': a.batch, 'prompt_len': a.prompt_len, 'new_tokens': a.new_tokens, 'rounds': rounds}
    res['samples'] = {n: [round(x, 1) for x in v] for n, v in times.items()}
    res['loadavg'] = [list(load_before), list(os.getloadavg())]
    print(json.dumps(res))


if __name__ == '__main__':
    main()
