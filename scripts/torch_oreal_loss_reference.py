#!/usr/bin/env python3
"""PyTorch reference for the OREAL loss and its baselines (src/rl/loss.ts, src/rl/step-losses.ts, `oreal debug loss`).

Written from docs/algorithm.md steps 4 and 6-9, structured like the released trainer's per-sequence loop: the
positive term is the cross-entropy (-logp) times the token weights (times A with pos_mult_adv), the negative term is
-sum(exp(logp - logp.detach()) * A * w), the KL term one of unbias / kl / mse, each divided by its token count; the
token-level RM loss is BCE-with-logits of the mean score. Gradients come from autograd (no closed forms here), so the
TypeScript closed-form dL/dlogp and dL/ds are checked against them. The models are plain-torch Qwen2s
(scripts/torch_qwen2_reference.py), computed in float64 on float32 weights.

Writes test/fixtures/rl/:
  policy/, ref/, rm/   tiny random Hugging Face checkpoints (config.json + model.safetensors, F32)
  batch.json           {"groups": [{"prompt_ids", "responses": [{"ids", "reward"}]}]}
  cases.json           [{"name", "config", "expected": {7 numbers}, "dlogp": [[...]], "dscore": [[...] | null]}]

Run: /usr/bin/python3 scripts/torch_oreal_loss_reference.py
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_qwen2_reference import forward as qwen2_forward, param_shapes  # noqa: E402

torch.set_num_threads(1)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'rl')

# --------------------------------------------------------------------------------------------------------------
# Config resolution: the algorithm presets of src/rl/loss.ts (restated here; keep the two in sync).

PRESETS = {
    'oreal': dict(reward_shaping_type='rloo', behavior_cloning=True, token_level_rm=True, pos_mult_adv=True,
                  positive_loss_factor=1.0, negative_loss_factor=0.5, kl_coef=0.01, loss_normalization='per_class'),
    'grpo': dict(reward_shaping_type='grpo', behavior_cloning=False, token_level_rm=False, pos_mult_adv=True,
                 positive_loss_factor=1.0, negative_loss_factor=1.0, kl_coef=0.01, loss_normalization='all'),
    'rloo': dict(reward_shaping_type='rloo', behavior_cloning=False, token_level_rm=False, pos_mult_adv=True,
                 positive_loss_factor=1.0, negative_loss_factor=1.0, kl_coef=0.01, loss_normalization='all'),
    'reinforce': dict(reward_shaping_type='none', behavior_cloning=False, token_level_rm=False, pos_mult_adv=True,
                      positive_loss_factor=1.0, negative_loss_factor=1.0, kl_coef=0.01, loss_normalization='all'),
    'rft': dict(reward_shaping_type='none', behavior_cloning=True, token_level_rm=False, pos_mult_adv=False,
                positive_loss_factor=1.0, negative_loss_factor=0.0, kl_coef=0.0, loss_normalization='per_class'),
}


def resolve(cfg):
    c = dict(PRESETS[cfg.get('algorithm', 'oreal')])
    c.update({k: v for k, v in cfg.items() if k in c})
    c['kl_type'] = cfg.get('kl_type', 'unbias')
    topk = cfg.get('topk_rescale', False)
    c['threshold_rescale'] = cfg.get('threshold_rescale', not topk)
    c['topk_rescale'] = topk
    for k, d in (('correct_threshold', 0.5), ('incorrect_threshold', 0.5), ('correct_topk_ratio', 0.25),
                 ('incorrect_topk_ratio', 0.5)):
        c[k] = cfg.get(k, d)
    return c


# --------------------------------------------------------------------------------------------------------------
# Advantages (spec step 4), per group over all K rewards.

def advantages(rewards, kind):
    r = torch.tensor(rewards, dtype=DT)
    K = r.numel()
    if kind == 'rloo':
        return (r - (r.sum() - r) / (K - 1)).tolist()
    if kind == 'grpo':
        return ((r - r.mean()) / (r.std() + 1e-8)).tolist()  # torch.std: Bessel-corrected
    return r.tolist()


def threshold_rescale(prob, threshold):
    return ((prob - threshold) / (1 - threshold)).clamp(0, 1)


def topk_rescale(prob, ratio):
    k = int(prob.numel() * ratio)
    result = torch.zeros_like(prob)
    if k == 0:  # the trainer would fail on an empty top-k; the TypeScript port gives zeros
        return result
    values, indices = torch.topk(prob, k)
    if values.max() != values.min():
        result[indices] = (values - values.min()) / (values.max() - values.min())
    else:
        result[indices] = torch.ones_like(values)
    return result


# --------------------------------------------------------------------------------------------------------------
# Models

def random_params(cfg, gen, base=None, noise=0.0):
    """Fresh random float32 weights, or `base` plus `noise`-scaled perturbations (same names)."""
    params = {}
    for name, shape in param_shapes(cfg):
        if base is not None and name in base:
            t = base[name].to(DT) + noise * torch.randn(shape, generator=gen, dtype=DT) * (base[name].to(DT).std() + 0.05)
        elif name.endswith('norm.weight'):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=DT)
        elif name.endswith('.bias'):
            t = 0.1 * torch.randn(shape, generator=gen, dtype=DT)
        elif name == 'model.embed_tokens.weight':
            t = 0.5 * torch.randn(shape, generator=gen, dtype=DT)
        else:
            t = torch.randn(shape, generator=gen, dtype=DT) / math.sqrt(shape[1])
        params[name] = t.to(torch.float32)
    return params


def hf_config(cfg, rm):
    c = {
        'architectures': ['Qwen2ForTokenClassification' if rm else 'Qwen2ForCausalLM'],
        'model_type': 'qwen2',
        'vocab_size': cfg['vocab_size'], 'hidden_size': cfg['hidden_size'],
        'intermediate_size': cfg['intermediate_size'], 'num_hidden_layers': cfg['num_hidden_layers'],
        'num_attention_heads': cfg['num_attention_heads'], 'num_key_value_heads': cfg['num_key_value_heads'],
        'rms_norm_eps': cfg['rms_norm_eps'], 'rope_theta': cfg['rope_theta'],
        'tie_word_embeddings': cfg['tie_word_embeddings'], 'hidden_act': 'silu', 'max_position_embeddings': 64,
        'torch_dtype': 'float32', 'eos_token_id': 1, 'bos_token_id': 0,
    }
    if rm:
        c['num_labels'] = 1
    return c


def write_checkpoint(dirname, cfg, params, rm):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    names = [n for n, _ in param_shapes(cfg)]
    header = {'__metadata__': {'format': 'pt'}}
    blobs = []
    off = 0
    for n in names:
        b = params[n].contiguous().numpy().astype('<f4').tobytes()
        header[n] = {'dtype': 'F32', 'shape': list(params[n].shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, 'model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(hf_config(cfg, rm), f, indent=2)


# --------------------------------------------------------------------------------------------------------------
# One step's losses, in the trainer's structure

def run_case(cfg_in, mcfg, rmcfg, P_pol, P_ref, P_rm, groups):
    c = resolve(cfg_in)
    # advantages over each whole group; no filtering: every response is kept
    seqs = []
    for g in groups:
        adv = advantages([r['reward'] for r in g['responses']], c['reward_shaping_type'])
        for r, a in zip(g['responses'], adv):
            seqs.append({'prompt': g['prompt_ids'], 'resp': r['ids'], 'reward': r['reward'], 'adv': a})
    B = len(seqs)
    T = max(len(s['prompt']) + len(s['resp']) for s in seqs)
    ids = torch.zeros(B, T, dtype=torch.long)
    for b, s in enumerate(seqs):
        full = s['prompt'] + s['resp']
        ids[b, :len(full)] = torch.tensor(full)

    pol = {k: v.to(DT).clone().requires_grad_(True) for k, v in P_pol.items()}
    ref = {k: v.to(DT) for k, v in P_ref.items()}
    use_rm = c['token_level_rm']
    rmp = {k: v.to(DT).clone().requires_grad_(True) for k, v in P_rm.items()} if use_rm else None

    def lm_logprobs(P):
        hn = qwen2_forward(mcfg, P, ids)
        W = P['model.embed_tokens.weight'] if mcfg['tie_word_embeddings'] else P['lm_head.weight']
        return torch.log_softmax(hn @ W.T, dim=-1)  # [B, T, V]

    lsm = lm_logprobs(pol)
    with torch.no_grad():
        ref_lsm = lm_logprobs(ref)
    if use_rm:
        rm_logits = (qwen2_forward(rmcfg, rmp, ids) @ rmp['score.weight'].T)[..., 0]  # [B, T]

    glob_action = sum(len(s['resp']) for s in seqs)
    glob_pos = sum(len(s['resp']) for s in seqs if s['reward'] > 0)
    glob_neg = glob_action - glob_pos
    nseq = B
    d_pos = glob_pos if c['loss_normalization'] == 'per_class' else glob_action
    d_neg = glob_neg if c['loss_normalization'] == 'per_class' else glob_action

    pos_l, neg_l, kl_l, rm_l = [], [], [], []
    logp_leaves, score_leaves = [], []
    for b, s in enumerate(seqs):
        Pn, n = len(s['prompt']), len(s['resp'])
        tgt = torch.tensor(s['resp'])
        pos_idx = torch.arange(Pn - 1, Pn - 1 + n)
        _logprobs = lsm[b, pos_idx, tgt]
        _logprobs.retain_grad()
        logp_leaves.append(_logprobs)
        _ref = ref_lsm[b, pos_idx, tgt]
        sft = -_logprobs  # cross entropy at the action positions
        A = torch.tensor(s['adv'], dtype=DT)
        r = s['reward']
        if use_rm:
            _scores = rm_logits[b, pos_idx]
            _scores.retain_grad()
            score_leaves.append(_scores)
            cum = _scores.cumsum(0) / torch.arange(1, n + 1, dtype=DT)
            label = torch.tensor([float(max(r, 0) > 0)], dtype=DT)
            rm_l.append(F.binary_cross_entropy_with_logits(_scores.mean().reshape(1), label, reduction='none').sum() / nseq)
            q = torch.sigmoid(cum).detach()
            if c['threshold_rescale']:
                wp = threshold_rescale(q, c['correct_threshold'])
                wn = threshold_rescale(1 - q, c['incorrect_threshold'])
            else:
                wp = topk_rescale(q, c['correct_topk_ratio'])
                wn = topk_rescale(1 - q, c['incorrect_topk_ratio'])
        else:
            score_leaves.append(None)
            wp, wn = 1.0, 1.0
        ratio = torch.exp(_logprobs - _logprobs.detach())
        if r > 0:
            if c['behavior_cloning']:
                pl = (sft * wp).sum()
                if c['pos_mult_adv']:
                    pl = pl * A
            else:
                pl = -(ratio * A * wp).sum()
            pos_l.append(pl / d_pos * c['positive_loss_factor'])
        else:
            neg_l.append(-(ratio * A * wn).sum() / d_neg * c['negative_loss_factor'])
        k = _ref - _logprobs
        if c['kl_type'] == 'kl':
            kv = k
        elif c['kl_type'] == 'unbias':
            kv = torch.exp(k) - k - 1
        else:
            kv = k.square() / 2
        kl_l.append((c['kl_coef'] * kv).sum() / glob_action)

    zero = torch.zeros((), dtype=DT)
    positive = sum(pos_l, zero)
    negative = sum(neg_l, zero)
    klp = sum(kl_l, zero)
    loss = positive + negative + klp
    loss.backward()
    actor_norm = math.sqrt(sum(float(v.grad.pow(2).sum()) for v in pol.values() if v.grad is not None))
    rm_loss = 0.0
    rm_norm = 0.0
    if use_rm:
        rl = sum(rm_l, zero)
        rl.backward()
        rm_loss = float(rl)
        rm_norm = math.sqrt(sum(float(v.grad.pow(2).sum()) for v in rmp.values() if v.grad is not None))
    expected = {
        'positive_loss': float(positive), 'negative_loss': float(negative), 'kl_penalty_loss': float(klp),
        'rl_loss': float(loss), 'token_level_rm_loss': rm_loss, 'actor_grad_norm': actor_norm, 'rm_grad_norm': rm_norm,
    }
    dlogp = [x.grad.tolist() if x.grad is not None else [0.0] * x.numel() for x in logp_leaves]
    dscore = [x.grad.tolist() if x is not None and x.grad is not None else None for x in score_leaves]
    return expected, dlogp, dscore, [s['adv'] for s in seqs]


CASES = [
    ('oreal_default', {}),
    ('oreal_grpo_shaping', {'reward_shaping_type': 'grpo'}),
    ('oreal_kl_kl', {'kl_type': 'kl'}),
    ('oreal_kl_mse', {'kl_type': 'mse', 'kl_coef': 0.05}),
    ('oreal_no_rm', {'token_level_rm': False}),
    ('oreal_no_rm_grpo_mse', {'token_level_rm': False, 'reward_shaping_type': 'grpo', 'kl_type': 'mse'}),
    ('oreal_topk', {'threshold_rescale': False, 'topk_rescale': True, 'correct_topk_ratio': 0.25,
                    'incorrect_topk_ratio': 0.5}),
    ('oreal_topk_grpo_kl', {'topk_rescale': True, 'reward_shaping_type': 'grpo', 'kl_type': 'kl',
                            'correct_topk_ratio': 0.6, 'incorrect_topk_ratio': 0.3}),
    ('oreal_thresholds', {'correct_threshold': 0.4, 'incorrect_threshold': 0.6, 'pos_mult_adv': False,
                          'positive_loss_factor': 0.7, 'negative_loss_factor': 1.3, 'kl_coef': 0.1}),
    ('oreal_pg_positives_rm', {'behavior_cloning': False}),
    ('oreal_all_norm', {'loss_normalization': 'all'}),
    ('grpo', {'algorithm': 'grpo'}),
    ('rloo', {'algorithm': 'rloo', 'kl_type': 'mse'}),
    ('reinforce', {'algorithm': 'reinforce'}),
    ('rft', {'algorithm': 'rft'}),
    ('table2_reinforce', {'reward_shaping_type': 'none', 'behavior_cloning': False, 'token_level_rm': False}),
    ('table2_bc', {'behavior_cloning': True, 'pos_mult_adv': False, 'token_level_rm': False}),
    ('table2_is', {'behavior_cloning': True, 'pos_mult_adv': False, 'token_level_rm': True}),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(int(os.environ.get("OREAL_FIXTURE_SEED", "5")))
    mcfg = {
        'vocab_size': 61, 'hidden_size': 32, 'intermediate_size': 48, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'num_key_value_heads': 2, 'rms_norm_eps': 1e-6, 'rope_theta': 10000.0,
        'tie_word_embeddings': False, 'attention_bias': True, 'head': 'lm',
    }
    rmcfg = dict(mcfg, head='score')
    P_pol = random_params(mcfg, gen)
    P_ref = random_params(mcfg, gen, base=P_pol, noise=0.3)
    P_rm = random_params(rmcfg, gen, base=P_pol, noise=0.3)
    P_rm['score.weight'] = (torch.randn(1, mcfg['hidden_size'], generator=gen, dtype=DT) * 0.5).to(torch.float32)
    write_checkpoint('policy', mcfg, P_pol, False)
    write_checkpoint('ref', mcfg, P_ref, False)
    write_checkpoint('rm', rmcfg, P_rm, True)

    # Groups of different sizes: mixed 2/4, mixed 1/3, all wrong, all correct, mixed 3/5 (with a 1-token response).
    spec = [(4, [1, -1, 1, -1]), (3, [-1, 1, -1]), (4, [-1, -1, -1, -1]), (3, [1, 1, 1]), (5, [1, 1, -1, 1, -1])]
    groups = []
    for gi, (K, rewards) in enumerate(spec):
        plen = int(torch.randint(3, 7, (1,), generator=gen))
        prompt = torch.randint(2, mcfg['vocab_size'], (plen,), generator=gen).tolist()
        resps = []
        for k in range(K):
            n = 1 if (gi == 4 and k == 2) else int(torch.randint(2, 10, (1,), generator=gen))
            resp = torch.randint(2, mcfg['vocab_size'], (n,), generator=gen).tolist()
            if k % 2 == 0:
                resp[-1] = 1  # the stop token
            resps.append({'ids': resp, 'reward': rewards[k]})
        groups.append({'prompt_ids': prompt, 'responses': resps})
    with open(os.path.join(OUT, 'batch.json'), 'w') as f:
        json.dump({'groups': groups}, f, separators=(',', ':'))

    cases = []
    for name, cfg in CASES:
        expected, dlogp, dscore, adv = run_case(cfg, mcfg, rmcfg, P_pol, P_ref, P_rm, groups)
        cases.append({'name': name, 'config': cfg, 'expected': expected, 'advantages': adv, 'dlogp': dlogp,
                      'dscore': dscore})
        print(f'{name}: ' + ', '.join(f'{k}={v:.6g}' for k, v in expected.items()), file=sys.stderr)
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump(cases, f, separators=(',', ':'))


if __name__ == '__main__':
    main()
