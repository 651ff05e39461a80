// Worker thread of VerifierPool (pool.ts): runs one extraction or one comparison per message, synchronously.
// The pool enforces the time bound by terminating this thread, so nothing here needs to be interruptible.

import { parentPort, workerData } from 'node:worker_threads';
import { extractAnswer } from './extract.js';
import { compareAnswers } from './compare.js';
import type { Comparison, Extraction } from './types.js';
import type { WorkerInit, WorkerReply, WorkerRequest } from './pool.js';

const init = (workerData ?? { testHooks: false }) as WorkerInit;

/** Marker inputs (only with `testHooks`): `\u0000spin` loops forever, `\u0000crash` kills the thread,
 * `\u0000oom` allocates until the heap limit, `\u0000sleep:N` busy-waits N ms and then proceeds normally. */
function testHook(text: string): void {
  if (!text.startsWith('\u0000')) return;
  if (text === '\u0000spin') {
    for (;;) {
      // spin: only terminate() ends this
    }
  }
  if (text === '\u0000crash') process.exit(7);
  if (text === '\u0000oom') {
    const hog: string[][] = [];
    for (let i = 0; ; i++) hog.push(new Array<string>(1 << 16).fill(`x${i}`));
  }
  const sleep = /^\u0000sleep:(\d+)/.exec(text);
  if (sleep) {
    const until = Date.now() + Number(sleep[1]);
    while (Date.now() < until) {
      // busy wait
    }
  }
}

function safeExtract(response: string): Extraction {
  try {
    return extractAnswer(response);
  } catch (err) {
    return { answer: null, method: 'none', reason: `extraction error: ${errorText(err)}` };
  }
}

function safeCompare(gold: string, answer: string): Comparison {
  try {
    return compareAnswers(gold, answer);
  } catch (err) {
    return { equal: false, reason: `comparison error: ${errorText(err)}` };
  }
}

function errorText(err: unknown): string {
  if (err instanceof RangeError && /call stack/i.test(err.message)) return 'input too deeply nested';
  return err instanceof Error ? err.message : String(err);
}

const port = parentPort;
if (port !== null) {
  port.on('message', (req: WorkerRequest) => {
    let reply: WorkerReply;
    if (req.op === 'extract') {
      if (init.testHooks) testHook(req.response);
      reply = { type: 'result', id: req.id, op: 'extract', extraction: safeExtract(req.response) };
    } else {
      if (init.testHooks) testHook(req.gold);
      reply = { type: 'result', id: req.id, op: 'compare', comparison: safeCompare(req.gold, req.answer) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
}
