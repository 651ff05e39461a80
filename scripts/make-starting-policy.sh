#!/usr/bin/env bash
# Rebuilds the bundled starting policy (models/arith-sft) and the task data (data/arith-*) from nothing, in the three
# runs that made them (about 30 minutes on 2 cores). Run after `npm ci` (or `npm run build`), from the repository root.
#   1. from scratch on 12,000 worked solutions;
#   2. the same data, a lower learning rate;
#   3. 60,000 problems, half answered without working (the behaviour the main job's RL learns to drop), and the RL
#      prompt file: 4,096 prompts with pass rates measured by the final policy.
set -euo pipefail
node dist/scripts/make-starting-policy.js --steps 1000
node dist/scripts/make-starting-policy.js --from models/arith-sft --steps 700 --lr 1e-3
node dist/scripts/make-starting-policy.js --from models/arith-sft --steps 2400 --lr 1e-3 --train-n 60000 --rl-n 4096 \
  --answer-only 0.5 --target 1.01
