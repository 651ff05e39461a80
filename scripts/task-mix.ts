// The task mix of the main job's data: the SFT data, the RL prompts and the held-out set (scripts/make-*.ts).

import type { SplitOptions } from '../src/task/arith.js';

export const TASK_MIX: SplitOptions = {
  families: { arith: 2, lineq: 1, frac: 1, percent: 1, decimal: 1 },
  levels: { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1 },
};
