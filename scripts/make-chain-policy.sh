#!/usr/bin/env bash
# Rebuilds the chain task's starting policy (models/chain-sft) and its data (data/chain-*) from the bundled arithmetic
# policy, in the two runs that made them. Run after `npm ci` (or `npm run build`), from the repository root.
#   1. from models/arith-sft (same tokenizer; it already writes `a op b = c`): 320 steps on 10,240 chain solutions in
#      which 30 % of the subtractions that cross below zero drop the sign (src/task/chains.ts, writeSolution);
#   2. 160 more steps at the same learning rate on 16,000 solutions of the same kind (6,400 seen), then the held-out
#      numbers (models/chain-sft/eval.json) and the RL prompt file (1,024 prompts, pass rates over 4 samples at T=1,
#      disjoint from every SFT question).
# Measured afterwards with `oreal eval` and scripts/chain-errors.js (README, "Does token-level credit help?").
set -euo pipefail
node dist/scripts/make-starting-policy.js --task chains --from models/arith-sft --steps 320 --lr 2e-3 --train-n 10240 \
  --rl-n 1024 --heldout-n 300 --eval-n 40 --eval-every 80 --sign-drop 0.3 --target 1.01
node dist/scripts/make-starting-policy.js --task chains --from models/chain-sft --steps 160 --lr 2e-3 --train-n 16000 \
  --rl-n 1024 --heldout-n 300 --eval-n 40 --eval-every 1000 --sign-drop 0.3 --target 1.01
