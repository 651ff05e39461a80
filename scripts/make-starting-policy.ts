// Makes the starting policy of a bundled task on this machine: the SFT data, a small Qwen2-architecture model trained
// with `oreal sft`'s trainer, its held-out pass@1, the RL prompt file (OREAL-RL-Prompts format, pass rates measured by
// this policy) and the held-out eval file.
//
// Usage: node dist/scripts/make-starting-policy.js [--task arith|chains] [--steps N] [--target P] [--out DIR] [--quick]
//        [--from CHECKPOINT_DIR --lr LR]   (continue training an earlier policy)
//        [--sign-drop R]                   (chains: rate of the systematic sign-drop error in the SFT solutions)
// --task arith (the main job; default), from nothing: data/arith-tokenizer/, data/arith-sft-train.jsonl,
//   data/arith-sft-heldout.jsonl, data/arith-sft.yaml, data/arith-heldout.jsonl, data/arith-rl-prompts.jsonl,
//   models/arith-sft/ (HF checkpoint + eval.json).
// --task chains (src/task/chains.ts), continuing from --from (a policy with the arithmetic task's tokenizer):
//   data/chain-sft-train.jsonl, data/chain-sft-heldout.jsonl, data/chain-sft.yaml, data/chain-heldout.jsonl,
//   data/chain-rl-prompts.jsonl, models/chain-sft/; its eval.json adds how the sampled answers go wrong.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { createBackend } from '../src/engine/index.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { Qwen2Model } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { fnv1a, makeSplit, type ArithProblem } from '../src/task/arith.js';
import { makeChainSplit, writeSolution, type ChainProblem } from '../src/task/chains.js';
import { Mulberry32 } from '../src/util/rng.js';
import { chainErrorReport } from './chain-errors.js';
import { passAtOne, type EvalProblem, type PassAtOneResult } from '../src/eval/quick-eval.js';
import { verifyResponse } from '../src/verify/index.js';
import { formatSftLog } from '../src/cli/sft.js';
import { parseSftConfig, runSft, type SftConfigInput } from '../src/train/sft.js';
import { writeArithTokenizer } from './make-tokenizer.js';
import { writeJsonl, writeRlPromptFile } from './make-rl-prompts.js';
import { TASK_MIX } from './task-mix.js';


/**
 * Whether a problem's SFT response is answer-only (`\boxed{gold}` with no working) rather than the worked solution:
 * a fixed hash bucket of the question, so the choice is reproducible and independent of the order of the data.
 */
export function isAnswerOnly(question: string, fraction: number): boolean {
  return fraction > 0 && (fnv1a('oreal-arith-answer-only/' + question) % 10000) / 10000 < fraction;
}

/**
 * One SFT row. Real SFT corpora mix worked solutions with bare answers; `answerOnly` of the rows here are bare, so the
 * policy learns both styles. The 1M-parameter policy cannot compute multi-step answers without writing the steps, so
 * its answer-only attempts mostly fail: the starting policy has a behaviour that outcome rewards can learn to drop.
 */
function sftRow(p: ArithProblem, answerOnly: number): unknown {
  return {
    messages: [
      { role: 'user', content: p.question },
      { role: 'assistant', content: isAnswerOnly(p.question, answerOnly) ? `\\boxed{${p.answer}}` : p.solution },
    ],
  };
}

/**
 * One SFT row of the chain task: a worked solution in which each zero-crossing subtraction drops its sign with
 * probability `signDrop` (the starting policy's systematic error). The solution's randomness (phrasings, drops) comes
 * from a hash of the question, so a row does not depend on the order of the data.
 */
function chainSftRow(p: ChainProblem, signDrop: number): unknown {
  const w = writeSolution(p, new Mulberry32(fnv1a('oreal-chain-sft/' + p.question)), { signDropRate: signDrop });
  return {
    messages: [
      { role: 'user', content: p.question },
      { role: 'assistant', content: w.text },
    ],
  };
}

type Task = 'arith' | 'chains';

interface Args {
  task: Task;
  steps: number;
  target: number;
  out: string;
  data: string;
  trainN: number;
  heldoutN: number;
  rlN: number;
  rlK: number;
  evalN: number;
  /** Steps between held-out evaluations (default: a tenth of the run, 10 to 100). */
  evalEvery: number | undefined;
  threads: number | undefined;
  /** Continue from this HF checkpoint instead of a fresh model. */
  from: string | undefined;
  lr: number;
  /** Fraction of SFT responses that are answer-only (see sftRow). */
  answerOnly: number;
  /** Chains: sign-drop rate of the SFT solutions (see chainSftRow). */
  signDrop: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    task: 'arith',
    steps: 1500,
    target: 0.4,
    out: '',
    data: 'data',
    trainN: 12000,
    heldoutN: 500,
    rlN: 512,
    rlK: 4,
    evalN: 100,
    evalEvery: undefined,
    threads: undefined,
    from: undefined,
    lr: 2e-3,
    answerOnly: 0,
    signDrop: 0.3,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--task') {
      const t = v();
      if (t !== 'arith' && t !== 'chains') throw new Error(`--task: expected arith or chains, got ${t}`);
      a.task = t;
    } else if (k === '--steps') a.steps = Number(v());
    else if (k === '--target') a.target = Number(v());
    else if (k === '--out') a.out = v();
    else if (k === '--data') a.data = v();
    else if (k === '--train-n') a.trainN = Number(v());
    else if (k === '--heldout-n') a.heldoutN = Number(v());
    else if (k === '--rl-n') a.rlN = Number(v());
    else if (k === '--rl-k') a.rlK = Number(v());
    else if (k === '--eval-n') a.evalN = Number(v());
    else if (k === '--eval-every') a.evalEvery = Number(v());
    else if (k === '--threads') a.threads = Number(v());
    else if (k === '--from') a.from = v();
    else if (k === '--lr') a.lr = Number(v());
    else if (k === '--answer-only') a.answerOnly = Number(v());
    else if (k === '--sign-drop') a.signDrop = Number(v());
    else if (k === '--quick') {
      a.steps = 20;
      a.trainN = 200;
      a.heldoutN = 40;
      a.rlN = 16;
      a.rlK = 2;
      a.evalN = 20;
    } else throw new Error(`unknown argument ${k}`);
  }
  if (a.out === '') a.out = a.task === 'chains' ? 'models/chain-sft' : 'models/arith-sft';
  if (a.task === 'chains' && a.from === undefined) throw new Error('--task chains continues a policy: give --from DIR');
  return a;
}

/** A task's data, files and generation lengths, and the numbers its eval.json adds. */
interface TaskData {
  /** File-name prefix under the data folder. */
  prefix: string;
  tokenizer: string;
  sftTrain: unknown[];
  sftHeldout: unknown[];
  /** The held-out eval file's records, and the same problems for passAtOne. */
  heldoutRecords: unknown[];
  evalSet: EvalProblem[];
  rlProblems: EvalProblem[];
  maxNewTokens: number;
  maxSeqLen: number;
  report(greedy: PassAtOneResult, sampled: PassAtOneResult): Record<string, unknown>;
}

/** The main job's data: SFT train (train split), SFT held-out loss set and eval set (held-out split), RL prompts
 *  (train split, disjoint from the SFT questions). */
function arithData(args: Args, log: (m: string) => void): TaskData {
  const tokDir = path.join(args.data, 'arith-tokenizer');
  const vocab = writeArithTokenizer(tokDir);
  log(`tokenizer: ${tokDir} (vocabulary ${vocab})`);
  const train = makeSplit('train', args.trainN + args.rlN, 1, TASK_MIX);
  const heldout = makeSplit('heldout', args.heldoutN + 200, 2, TASK_MIX);
  const evalSet = heldout.slice(0, args.heldoutN);
  const byKey = (greedy: PassAtOneResult, key: (p: ArithProblem) => string): Record<string, number> => {
    const acc: Record<string, [number, number]> = {};
    evalSet.forEach((p, i) => {
      const k = key(p);
      const a = (acc[k] ??= [0, 0]);
      a[0] += greedy.perProblem[i]!;
      a[1] += 1;
    });
    return Object.fromEntries(Object.entries(acc).map(([k, [s, n]]) => [k, Math.round((1000 * s) / n) / 1000]));
  };
  return {
    prefix: 'arith',
    tokenizer: tokDir,
    sftTrain: train.slice(0, args.trainN).map((p) => sftRow(p, args.answerOnly)),
    sftHeldout: heldout.slice(args.heldoutN).map((p) => sftRow(p, args.answerOnly)),
    heldoutRecords: evalSet.map((p) => ({ question: p.question, gold_answer: p.answer, family: p.family, level: p.level, id: p.id })),
    evalSet,
    rlProblems: train.slice(args.trainN),
    maxNewTokens: 64,
    maxSeqLen: 128,
    report: (greedy) => ({
      answer_only: args.answerOnly,
      heldout_greedy_by_family: byKey(greedy, (p) => p.family),
      heldout_greedy_by_level: byKey(greedy, (p) => String(p.level)),
    }),
  };
}

/** The chain task's data, split as the main job's (src/task/chains.ts owns the split). */
function chainData(args: Args, from: string): TaskData {
  const train = makeChainSplit('train', args.trainN + args.rlN, 1);
  const heldout = makeChainSplit('heldout', args.heldoutN + 200, 2);
  const evalSet = heldout.slice(0, args.heldoutN);
  const problems = evalSet.map((p) => ({ question: p.question, answer: p.answer }));
  return {
    prefix: 'chain',
    tokenizer: from,
    sftTrain: train.slice(0, args.trainN).map((p) => chainSftRow(p, args.signDrop)),
    sftHeldout: heldout.slice(args.heldoutN).map((p) => chainSftRow(p, args.signDrop)),
    heldoutRecords: evalSet.map((p) => ({ question: p.question, gold_answer: p.answer, id: p.id, crossing_steps: p.crossingSteps.length })),
    evalSet: problems,
    rlProblems: train.slice(args.trainN).map((p) => ({ question: p.question, answer: p.answer })),
    maxNewTokens: 160,
    maxSeqLen: 320,
    report: (_greedy, sampled) => ({
      sign_drop: args.signDrop,
      heldout_sampled_errors: chainErrorReport(
        evalSet.flatMap((p, i) => sampled.responses[i]!.map((r) => ({ problem: p, response: r, correct: verifyResponse(r, p.answer).correct }))),
      ),
    }),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const log = (m: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)}s] ${m}`);
  const D = args.data;
  const task = args.task === 'chains' ? chainData(args, args.from!) : arithData(args, log);
  const file = (suffix: string): string => path.join(D, `${task.prefix}-${suffix}`);
  writeJsonl(file('sft-train.jsonl'), task.sftTrain);
  writeJsonl(file('sft-heldout.jsonl'), task.sftHeldout);
  writeJsonl(file('heldout.jsonl'), task.heldoutRecords);
  const evalSet = task.evalSet;
  log(`data: ${task.sftTrain.length} SFT examples, ${evalSet.length} held-out problems, ${task.rlProblems.length} RL prompts`);

  const cfgInput: SftConfigInput = {
    tokenizer: task.tokenizer,
    ...(args.from !== undefined
      ? { model: args.from }
      : {
          architecture: {
            hidden_size: 128,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            tie_word_embeddings: true,
            max_position_embeddings: 512,
          },
        }),
    train_file: file('sft-train.jsonl'),
    eval_file: file('sft-heldout.jsonl'),
    output_dir: args.out,
    seed: 0,
    max_steps: args.steps,
    batch_size: 32,
    micro_batch_size: 32,
    lr: args.lr,
    min_lr: args.lr / 10,
    warmup_steps: args.from !== undefined ? 0 : 30,
    weight_decay: 0.01,
    grad_clip: 1.0,
    max_seq_len: task.maxSeqLen,
    eval_every: args.evalEvery ?? Math.max(10, Math.min(100, Math.floor(args.steps / 10))),
    eval_max_examples: 200,
    log_every: 10,
    dtype: 'f32',
    ...(args.threads !== undefined ? { threads: args.threads } : {}),
  };
  fs.writeFileSync(file('sft.yaml'), toYaml(cfgInput));
  const cfg = parseSftConfig(cfgInput, file('sft.yaml'));
  log(`training: oreal sft --config ${file('sft.yaml')} (stops early at greedy pass@1 >= ${args.target})`);
  const probe = evalSet.slice(0, args.evalN);
  const gen = { maxNewTokens: task.maxNewTokens };
  const res = await runSft(cfg, {
    onLog: (r) => log(formatSftLog(r)),
    onInfo: (m) => log(m),
    onEval: async (step, model, tok) => {
      const r = await passAtOne(model, tok, probe, { temperature: 0, ...gen });
      log(`step ${step}: greedy pass@1 on ${probe.length} held-out problems ${(100 * r.passAt1).toFixed(1)}%`);
      return r.passAt1 >= args.target ? 'stop' : undefined;
    },
  });
  const trainSeconds = res.elapsedS;
  log(`trained ${res.steps} steps in ${trainSeconds.toFixed(0)}s (${res.numParameters} parameters)`);

  // Measure the saved model.
  const tok = Tokenizer.load(args.out);
  const backend = createBackend('wasm', args.threads !== undefined ? { threads: args.threads } : {});
  try {
    const model = Qwen2Model.fromCheckpoint(loadCheckpoint(args.out), backend);
    const greedy = await passAtOne(model, tok, evalSet, { temperature: 0, ...gen });
    const sampled = await passAtOne(model, tok, evalSet, { temperature: 1, seed: 7, ...gen });
    log(`held-out (${evalSet.length}): greedy pass@1 ${(100 * greedy.passAt1).toFixed(1)}%, sampled (T=1) ${(100 * sampled.passAt1).toFixed(1)}%`);
    const taskReport = task.report(greedy, sampled);
    log(`held-out details: ${JSON.stringify(taskReport)}`);
    const rlPassRate = await writeRlPromptFile(model, tok, task.rlProblems, { k: args.rlK, seed: 11, file: file('rl-prompts.jsonl'), ...gen });
    log(`RL prompts: ${task.rlProblems.length}, mean pass rate ${(100 * rlPassRate).toFixed(1)}% (k=${args.rlK}, T=1)`);
    const report = {
      task: args.task,
      from: args.from ?? null,
      lr: args.lr,
      train_n: args.trainN,
      steps: res.steps,
      train_seconds: Math.round(trainSeconds),
      parameters: res.numParameters,
      final_train_loss: res.finalTrainLoss,
      final_eval_loss: res.finalEvalLoss,
      heldout_problems: evalSet.length,
      heldout_greedy_pass_at_1: greedy.passAt1,
      heldout_sampled_pass_at_1: sampled.passAt1,
      ...taskReport,
      rl_prompts_mean_pass_rate: rlPassRate,
    };
    fs.writeFileSync(path.join(args.out, 'eval.json'), JSON.stringify(report, null, 2) + '\n');
    log(`wrote ${path.join(args.out, 'eval.json')}; total ${((Date.now() - t0) / 1000).toFixed(0)}s`);
    model.dispose();
  } finally {
    backend.dispose();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}
