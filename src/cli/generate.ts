// `oreal generate`: sample continuations from a local model with the KV-cache engine.
//
//   oreal generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3 | --input FILE.jsonl) [--chat]
//                  [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--greedy] [--n N]
//                  [--stop STR]... [--stop-id ID]... [--ignore-eos] [--backend wasm|js] [--threads N] [--json]
//
// --input lines: {"prompt": "..."} | {"prompt_ids": [...]} | {"messages": [{"role", "content"}, ...]} (blank lines are
// skipped). "messages" always go through the chat template (with the assistant turn opener); a "prompt" (or
// --prompt) does with --chat, as one user message. Text prompts need tokenizer.json in DIR; --prompt-ids /
// "prompt_ids" work without one, and then "text" is "" (stop strings need a tokenizer).
//
// Stop ids: --stop-id values plus, unless --ignore-eos, the config's eos_token_id(s), the tokenizer's eos token and
// <|im_end|> when the vocabulary has it. --model also accepts random:SPEC (see `oreal bench decode`).
//
// With --json: one line per prompt and sample (prompt-major, then sample index):
//   {"token_ids": [generated ids only], "text", "finish_reason": "stop"|"length", "logprobs": [...]}
// logprobs are log softmax(raw logits) of each generated token (temperature 1, before top-k/top-p). Without --json the
// text is printed (or the ids, without a tokenizer), samples separated by a line of dashes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { openBackend, BACKEND_NAMES, type BackendName } from '../engine/index.js';
import { loadConfig } from '../model/config.js';
import { Tokenizer, type ChatMessage } from '../model/tokenizer.js';
import { generate } from '../sample/generate.js';
import type { GenerationRequest, SamplingParams } from '../sample/types.js';
import { loadModelSpec } from './bench-decode.js';
import { finiteNumber, modelDirOrRandom, nonNegInt, positiveInt } from './option-parsers.js';

interface GenerateCliOptions {
  model: string;
  prompt?: string;
  promptIds?: number[];
  input?: string;
  chat?: boolean;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  greedy?: boolean;
  n: number;
  stop: string[];
  stopId: number[];
  ignoreEos?: boolean;
  backend?: BackendName;
  threads?: number;
  maxBatch?: number;
  json?: boolean;
}

/** One prompt as read from the command line or a JSONL line. */
export type PromptInput = { ids: number[] } | { text: string } | { messages: ChatMessage[] };

function idList(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) throw new InvalidArgumentError('expected comma-separated token ids, e.g. 1,2,3');
  return parts.map(Number);
}

function collect<T>(parse: (s: string) => T): (v: string, prev: T[]) => T[] {
  return (v, prev) => [...prev, parse(v)];
}

/** Reads the prompts of a JSONL file; errors name file:line:field. */
export function readPromptsJsonl(file: string): PromptInput[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  const out: PromptInput[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const at = `${file}:${i + 1}`;
    let j: unknown;
    try {
      j = JSON.parse(line);
    } catch (e) {
      throw new Error(`${at}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${at}: expected a JSON object`);
    const o = j as Record<string, unknown>;
    const keys = ['prompt', 'prompt_ids', 'messages'].filter((k) => o[k] !== undefined);
    if (keys.length !== 1) throw new Error(`${at}: expected exactly one of "prompt", "prompt_ids", "messages" (found ${keys.length})`);
    if (o['prompt'] !== undefined) {
      if (typeof o['prompt'] !== 'string') throw new Error(`${at}: field "prompt": expected a string`);
      out.push({ text: o['prompt'] });
    } else if (o['prompt_ids'] !== undefined) {
      const ids = o['prompt_ids'];
      if (!Array.isArray(ids) || ids.length === 0) throw new Error(`${at}: field "prompt_ids": expected a non-empty array of token ids`);
      ids.forEach((v: unknown, k: number) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
          throw new Error(`${at}: field "prompt_ids[${k}]": expected a non-negative integer, got ${JSON.stringify(v)}`);
      });
      out.push({ ids: ids as number[] });
    } else {
      const msgs = o['messages'];
      if (!Array.isArray(msgs) || msgs.length === 0) throw new Error(`${at}: field "messages": expected a non-empty array`);
      const messages: ChatMessage[] = msgs.map((m: unknown, k: number) => {
        const r = typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : null;
        if (r === null || typeof r['role'] !== 'string') throw new Error(`${at}: field "messages[${k}].role": expected a string`);
        if (typeof r['content'] !== 'string') throw new Error(`${at}: field "messages[${k}].content": expected a string`);
        return { role: r['role'], content: r['content'] };
      });
      out.push({ messages });
    }
  });
  if (out.length === 0) throw new Error(`${file}: no prompts`);
  return out;
}

/** Token ids of a prompt (text through the tokenizer, chat through its template). */
export function promptToIds(p: PromptInput, tok: Tokenizer | null, chat: boolean, where: string): number[] {
  if ('ids' in p) return p.ids;
  if (tok === null) throw new Error(`${where}: a text prompt needs tokenizer.json in the model directory (or use token ids)`);
  if ('messages' in p) return tok.encodeChat(p.messages, { addGenerationPrompt: true });
  if (chat) return tok.encodeChat([{ role: 'user', content: p.text }], { addGenerationPrompt: true });
  return tok.encode(p.text, { addSpecialTokens: false });
}

/** Default stop ids: config eos ids, the tokenizer's eos and <|im_end|>. */
function defaultStopIds(modelSpec: string, tok: Tokenizer | null): number[] {
  const ids = new Set<number>();
  const cfgFile = path.join(modelSpec, 'config.json');
  if (fs.existsSync(cfgFile)) for (const id of loadConfig(cfgFile).eosTokenIds) ids.add(id);
  if (tok?.eosTokenId != null) ids.add(tok.eosTokenId);
  if (tok?.imEndTokenId != null) ids.add(tok.imEndTokenId);
  return [...ids];
}

export function registerGenerate(program: Command): Command {
  return program
    .command('generate')
    .description('sample continuations from a local model (KV-cache engine)')
    .requiredOption('--model <dir>', 'Hugging Face checkpoint directory (or random:SPEC, see bench decode)', modelDirOrRandom)
    .option('--prompt <text>', 'prompt text (needs a tokenizer)')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids', idList)
    .option('--input <file>', 'JSONL of {"prompt"} | {"prompt_ids"} | {"messages"} lines')
    .option('--chat', 'wrap text prompts as a user message in the chat template')
    .option('--max-new-tokens <n>', 'most generated tokens (the stop token counts)', nonNegInt, 256)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', finiteNumber, 1)
    .option('--top-p <p>', 'nucleus mass in (0, 1]', finiteNumber, 1)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', nonNegInt, 0)
    .option('--seed <s>', 'seed (sample j uses stream j)', nonNegInt)
    .option('--greedy', 'argmax decoding')
    .option('--n <n>', 'samples per prompt', positiveInt, 1)
    .option('--stop <text>', 'stop string (repeatable; needs a tokenizer)', collect(String), [] as string[])
    .option('--stop-id <id>', 'stop token id (repeatable)', collect(nonNegInt), [] as number[])
    .option('--ignore-eos', 'do not stop at the eos / <|im_end|> ids of the config and tokenizer')
    .option('--max-batch <n>', 'most sequences decoded at once', positiveInt)
    .addOption(new Option('--backend <name>', 'compute backend (default: $OREAL_BACKEND, else blas if built, else wasm)').choices([...BACKEND_NAMES]))
    .option('--threads <n>', 'kernel threads (wasm)', positiveInt)
    .option('--json', 'one JSON line per prompt and sample: {"token_ids", "text", "finish_reason", "logprobs"}')
    .action(async (o: GenerateCliOptions) => {
      const given = [o.prompt !== undefined, o.promptIds !== undefined, o.input !== undefined].filter(Boolean).length;
      if (given !== 1) throw new Error('give exactly one of --prompt, --prompt-ids, --input');
      const isRandom = o.model === 'random' || o.model.startsWith('random:');
      const tok = !isRandom && fs.existsSync(path.join(o.model, 'tokenizer.json')) ? Tokenizer.load(o.model) : null;
      let inputs: Array<{ p: PromptInput; where: string }>;
      if (o.input !== undefined) inputs = readPromptsJsonl(o.input).map((p, i) => ({ p, where: `${o.input}:${i + 1}` }));
      else if (o.promptIds !== undefined) inputs = [{ p: { ids: o.promptIds }, where: '--prompt-ids' }];
      else inputs = [{ p: { text: o.prompt! }, where: '--prompt' }];
      const prompts = inputs.map(({ p, where }) => promptToIds(p, tok, o.chat === true, where));
      if (o.stop.length > 0 && tok === null) throw new Error('--stop needs tokenizer.json in the model directory');
      const stopTokenIds = [...new Set([...o.stopId, ...(o.ignoreEos || isRandom ? [] : defaultStopIds(o.model, tok))])];
      const params: SamplingParams = {
        maxNewTokens: o.maxNewTokens,
        temperature: o.greedy ? 0 : o.temperature,
        topP: o.topP,
        topK: o.topK,
        stopTokenIds,
        stopStrings: o.stop,
        ...(o.seed !== undefined ? { seed: o.seed } : {}),
        ...(o.greedy ? { greedy: true } : {}),
      };
      const requests: GenerationRequest[] = prompts.map((prompt) => ({ prompt, n: o.n, params }));
      const backend = await openBackend(o.backend, o.threads !== undefined ? { threads: o.threads } : {});
      try {
        const model = loadModelSpec(o.model, backend);
        const res = await generate(model, requests, {
          ...(tok ? { decode: (ids: readonly number[]) => tok.decode(ids, { skipSpecialTokens: true }) } : {}),
          ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
        });
        for (const gens of res) {
          for (const g of gens) {
            if (o.json) {
              process.stdout.write(
                JSON.stringify({ token_ids: g.tokenIds, text: g.text, finish_reason: g.finishReason, logprobs: g.logprobs }) + '\n',
              );
            } else {
              process.stdout.write((tok ? g.text : g.tokenIds.join(',')) + `\n--- (${g.finishReason}, ${g.tokenIds.length} tokens)\n`);
            }
          }
        }
      } finally {
        backend.dispose();
      }
    });
}
