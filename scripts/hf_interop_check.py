#!/usr/bin/env python3
"""Checks oreal's checkpoints against Hugging Face transformers (run where transformers is installed).

Input: the directory written by `node dist/scripts/hf-interop-export.js DIR` (policy/, rm/, oreal.json).
For the policy: transformers loads it with no missing or unexpected keys, reads rope_theta 1e6, renders the same
chat-template ids, computes the same loss, and greedy-decodes the same tokens. For the token-level RM
(Qwen2ForTokenClassification): no missing keys (score.bias is in the file) and the same per-token scores.
Then transformers saves the policy itself (save_pretrained, its own config.json form) into OUT/t5 with its losses in
OUT/t5-losses.json, for `node dist/scripts/hf-interop-export.js --check-t5 OUT/t5 OUT/t5-losses.json` to read back.

Run: python3 scripts/hf_interop_check.py DIR OUT
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

torch.manual_seed(0)
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
exp = json.load(open(os.path.join(src, 'oreal.json')))
report = {'transformers': transformers.__version__, 'torch': torch.__version__, 'cases': []}
ok = True


def fail(msg):
    global ok
    ok = False
    print('FAIL', msg)


def ids_of(x):
    if hasattr(x, 'keys') and 'input_ids' in x:
        x = x['input_ids']
    if hasattr(x, 'tolist'):
        x = x.tolist()
    if x and isinstance(x[0], list):
        x = x[0]
    return list(x)


pol, info = AutoModelForCausalLM.from_pretrained(os.path.join(src, 'policy'), dtype=torch.float32, output_loading_info=True)
pol.eval()
print('policy loading info', {k: list(v) for k, v in info.items()})
for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys'):
    if len(info.get(k, [])) > 0:
        fail(f'policy {k}: {info[k]}')
rp = getattr(pol.config, 'rope_parameters', None)
theta = rp.get('rope_theta') if isinstance(rp, dict) else getattr(pol.config, 'rope_theta', None)
print('policy rope theta as transformers reads it:', theta, 'rope_parameters:', rp)
report['policy_rope_theta'] = theta
if theta != 1e6:
    fail(f'rope theta {theta}')
tok = AutoTokenizer.from_pretrained(os.path.join(src, 'policy'))
rm, rinfo = AutoModelForTokenClassification.from_pretrained(os.path.join(src, 'rm'), dtype=torch.float32, output_loading_info=True)
rm.eval()
print('rm loading info', {k: list(v) for k, v in rinfo.items()})
for k in ('missing_keys', 'unexpected_keys', 'mismatched_keys'):
    if len(rinfo.get(k, [])) > 0:
        fail(f'rm {k}: {rinfo[k]}')
print('rm score.bias as loaded:', rm.score.bias.detach().tolist() if rm.score.bias is not None else None)

t5_cases = []
with torch.no_grad():
    for c in exp['cases']:
        chat = ids_of(tok.apply_chat_template([{'role': 'user', 'content': c['question']}], add_generation_prompt=True, tokenize=True))
        same_chat = chat == c['prompt_ids']
        full = c['prompt_ids'] + c['greedy_ids']
        x = torch.tensor([full])
        loss = pol(input_ids=x, labels=x).loss.item()
        p = torch.tensor([c['prompt_ids']])
        n = exp['new_tokens']
        # Greedy until an eos id or n tokens, as oreal's run (the eos id is kept in both).
        g = pol.generate(p, max_new_tokens=n, do_sample=False, eos_token_id=exp['eos_ids'], pad_token_id=exp['eos_ids'][0])[0, len(c['prompt_ids']):].tolist()
        logits = pol(input_ids=x).logits[0, len(c['prompt_ids']) - 1:-1]
        top2 = torch.topk(logits, 2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
        scores = rm(input_ids=x).logits[0, :, 0].tolist()
        sdiff = max(abs(a - b) for a, b in zip(scores, c['rm_scores']))
        rel = abs(loss - c['loss']) / abs(c['loss'])
        row = {'question': c['question'], 'chat_ids_equal': same_chat, 'loss_hf': loss, 'loss_oreal': c['loss'], 'loss_rel': rel,
               'greedy_equal': g == c['greedy_ids'], 'greedy_min_margin': margin, 'rm_max_abs_diff': sdiff}
        report['cases'].append(row)
        print(json.dumps(row))
        if not same_chat:
            fail(f'chat ids differ: {chat} vs {c["prompt_ids"]}')
        if rel > 1e-5:
            fail(f'loss {loss} vs {c["loss"]}')
        if g != c['greedy_ids']:
            fail(f'greedy {g} vs {c["greedy_ids"]}')
        if sdiff > 1e-4:
            fail(f'rm scores differ by {sdiff}')
        t5_cases.append({'ids': full, 'hf_loss': loss})

pol.save_pretrained(os.path.join(out, 't5'))
tok.save_pretrained(os.path.join(out, 't5'))
json.dump({'cases': t5_cases}, open(os.path.join(out, 't5-losses.json'), 'w'))
report['t5_config'] = json.load(open(os.path.join(out, 't5', 'config.json')))
report['ok'] = ok
json.dump(report, open(os.path.join(out, 'report.json'), 'w'), indent=1)
print('transformers config written by save_pretrained:', json.dumps(report['t5_config']))
print('ALL OK' if ok else 'SOME CHECKS FAILED')
sys.exit(0 if ok else 1)
