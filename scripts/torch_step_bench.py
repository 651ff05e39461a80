#!/usr/bin/env python3
"""PyTorch twin of `oreal bench step`: seconds per forward + backward of the mean next-token cross-entropy of a random
Qwen2 model (q/k/v biases, RoPE theta 1e6, GQA, RMSNorm, SwiGLU, tied embeddings), float32 on CPU.

Threads as research/engines.md found best on the project's 2-core machine: torch.set_num_threads(1) (one intra-op
thread) and OpenBLAS with OPENBLAS_NUM_THREADS = the core count (default 2). Debian's python3-torch must link
OpenBLAS (libopenblas0-pthread), not the reference BLAS: the script re-executes itself with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread and OPENBLAS_NUM_THREADS when they are not set.
OPENBLAS_CORETYPE is left as the environment has it; the kernel OpenBLAS chose is reported as "blas_core".

Run: /usr/bin/python3 scripts/torch_step_bench.py --layers 4 --hidden 256 --heads 4 --kv-heads 2 \
        --intermediate 1024 --vocab 512 --batch 8 --seq 128 --json
Prints {"step_s", "forward_s", "backend": "torch", "threads", "blas_threads", "blas_core", "peak_rss_mb", "loss", ...}.
"""
import argparse
import ctypes
import json
import math
import os
import resource
import sys
import time

BLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread'


def reexec_with_blas_env(blas_threads):
    env = dict(os.environ)
    changed = False
    if os.path.isdir(BLAS_DIR) and BLAS_DIR not in env.get('LD_LIBRARY_PATH', '').split(':'):
        env['LD_LIBRARY_PATH'] = BLAS_DIR + (':' + env['LD_LIBRARY_PATH'] if env.get('LD_LIBRARY_PATH') else '')
        changed = True
    if 'OPENBLAS_NUM_THREADS' not in env:
        env['OPENBLAS_NUM_THREADS'] = str(blas_threads)
        changed = True
    if changed and env.get('_TORCH_STEP_BENCH_REEXEC') != '1':
        env['_TORCH_STEP_BENCH_REEXEC'] = '1'
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument('--kv-heads', type=int, default=2)
    p.add_argument('--intermediate', type=int, default=1024)
    p.add_argument('--vocab', type=int, default=512)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--seq', type=int, default=128)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--reps', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--blas-threads', type=int, default=os.cpu_count() or 2)
    p.add_argument('--json', action='store_true')
    return p.parse_args()


args = parse_args()
reexec_with_blas_env(args.blas_threads)

import torch  # noqa: E402  (after the environment is fixed)

torch.set_num_threads(1)
torch.manual_seed(args.seed)


def blas_info():
    try:
        lib = ctypes.CDLL('libopenblas.so.0')
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
    except OSError:
        return 'unknown', None


def rms_norm(x, w, eps=1e-6):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Model:
    def __init__(self, a):
        H, I, V = a.hidden, a.intermediate, a.vocab
        self.nh, self.nkv, self.hd = a.heads, a.kv_heads, H // a.heads
        qd, kd = self.nh * self.hd, self.nkv * self.hd

        def w(*shape):
            return (0.02 * torch.randn(*shape)).requires_grad_()

        def ones(n):
            return torch.ones(n).requires_grad_()

        def zeros(n):
            return torch.zeros(n).requires_grad_()

        self.embed = w(V, H)
        self.layers = []
        for _ in range(a.layers):
            self.layers.append(dict(ln1=ones(H), wq=w(qd, H), bq=zeros(qd), wk=w(kd, H), bk=zeros(kd), wv=w(kd, H),
                                    bv=zeros(kd), wo=w(H, qd), ln2=ones(H), wg=w(I, H), wu=w(I, H), wd=w(H, I)))
        self.norm = ones(H)
        inv = 1.0 / (1e6 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        ang = torch.outer(torch.arange(a.seq, dtype=torch.float32), inv)
        emb = torch.cat((ang, ang), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        self.mask = torch.full((a.seq, a.seq), float('-inf')).triu(1)

    def parameters(self):
        ps = [self.embed, self.norm]
        for L in self.layers:
            ps.extend(L.values())
        return ps

    def loss(self, ids):
        B, T = ids.shape
        x = self.embed[ids]
        g = self.nh // self.nkv
        for L in self.layers:
            h = rms_norm(x, L['ln1'])
            q = torch.nn.functional.linear(h, L['wq'], L['bq']).view(B, T, self.nh, self.hd).transpose(1, 2)
            k = torch.nn.functional.linear(h, L['wk'], L['bk']).view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = torch.nn.functional.linear(h, L['wv'], L['bv']).view(B, T, self.nkv, self.hd).transpose(1, 2)
            q = q * self.cos + rotate_half(q) * self.sin
            k = k * self.cos + rotate_half(k) * self.sin
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + self.mask
            o = torch.softmax(s, dim=-1) @ v
            x = x + torch.nn.functional.linear(o.transpose(1, 2).reshape(B, T, -1), L['wo'])
            h = rms_norm(x, L['ln2'])
            act = torch.nn.functional.silu(torch.nn.functional.linear(h, L['wg'])) * torch.nn.functional.linear(h, L['wu'])
            x = x + torch.nn.functional.linear(act, L['wd'])
        h = rms_norm(x, self.norm)
        logits = torch.nn.functional.linear(h[:, :-1], self.embed)  # tied LM head
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def main():
    m = Model(args)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq))
    params = m.parameters()

    def step():
        for p in params:
            p.grad = None  # zero_grad(set_to_none=True), outside the timed region
        t0 = time.perf_counter()
        loss = m.loss(ids)
        loss.backward()
        return time.perf_counter() - t0, float(loss)

    def fwd():
        t0 = time.perf_counter()
        with torch.no_grad():
            m.loss(ids)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()
    times, loss = [], float('nan')
    for _ in range(max(1, args.reps)):
        t, loss = step()
        times.append(t)
    ftimes = [fwd() for _ in range(max(1, math.ceil(args.reps / 2)))]
    med = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
    core, nthreads = blas_info()
    res = dict(step_s=round(med(times), 5), forward_s=round(med(ftimes), 5), backend='torch',
               threads=torch.get_num_threads(), blas_threads=nthreads, blas_core=core,
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), loss=loss,
               steps_s=[round(t, 5) for t in times], torch=torch.__version__)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"torch step: {res['step_s']:.4f} s (forward {res['forward_s']:.4f} s), threads {res['threads']} + "
              f"OpenBLAS {nthreads} ({core}), peak RSS {res['peak_rss_mb']} MiB, loss {loss:.5f}")


main()
