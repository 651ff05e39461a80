// `oreal serve` as a real child process on 127.0.0.1 (js backend, a tiny random Qwen2 with the synthetic-task
// tokenizer): routes, greedy = generate(), chat, streaming, errors, 32 concurrent seeded clients = the same requests
// sent one by one, a weight update in the middle of the load, OpenAIRolloutBackend against it, client disconnects,
// timeouts and SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createJsBackend } from '../src/engine/js-backend.js';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.js';
import { parseConfig } from '../src/model/config.js';
import { Qwen2Model, type Qwen2Config } from '../src/model/qwen2.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { generate } from '../src/sample/generate.js';
import type { Generation, SamplingParams } from '../src/sample/types.js';
import { OpenAIRolloutBackend, type RemoteGenerationRequest } from '../src/sample/remote-backend.js';
import { topLogprobsOf } from '../src/serve/scheduler.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const mainJs = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const serveJs = path.join(repoRoot, 'dist', 'src', 'serve', 'main.js');

/** `oreal serve …` through the main CLI once it has the sub-command, else the standalone entry. */
function serveCommand(): string[] {
  const help = spawnSync(process.execPath, [mainJs, '--help'], { encoding: 'utf8' });
  return help.status === 0 && /\bserve\b/.test(help.stdout) ? [mainJs, 'serve'] : [serveJs];
}

interface Server {
  proc: ChildProcess;
  url: string;
  exit: Promise<number | null>;
  stderr: () => string;
}

async function startServer(args: string[]): Promise<Server> {
  const proc = spawn(process.execPath, [...serveCommand(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exit.then((code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
  return { proc, url, exit, stderr: () => err };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function post(url: string, body: unknown): Promise<{ status: number; json: Json }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Json };
}

async function getJson(url: string): Promise<{ status: number; json: Json }> {
  const r = await fetch(url);
  return { status: r.status, json: (await r.json()) as Json };
}

/** SSE `data:` payloads of a streamed reply. */
async function sse(url: string, body: unknown): Promise<{ events: Json[]; done: boolean; contentType: string }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  const text = await r.text();
  const events: Json[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') continue;
    assert.ok(block.startsWith('data: '), `bad SSE block ${JSON.stringify(block)}`);
    const payload = block.slice(6);
    if (payload === '[DONE]') done = true;
    else events.push(JSON.parse(payload) as Json);
  }
  return { events, done, contentType: r.headers.get('content-type') ?? '' };
}

const idsOf = (choice: Json): number[] => (choice.logprobs.tokens as string[]).map((t) => Number(t.slice('token_id:'.length)));

function cfgFor(V: number): Qwen2Config {
  return { vocabSize: V, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true, attentionBias: true, head: 'lm' };
}

function saveModel(model: Qwen2Model, dir: string, eos: number[], tokDir: string): void {
  const c = model.config;
  const mc = parseConfig({
    model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], vocab_size: c.vocabSize, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers, num_attention_heads: c.numAttentionHeads, num_key_value_heads: c.numKeyValueHeads, rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta, tie_word_embeddings: c.tieWordEmbeddings, eos_token_id: eos, max_position_embeddings: 512,
  });
  saveCheckpoint(dir, mc, model.toTensors(), { dtype: 'f32', tokenizerDir: tokDir });
}

test('topLogprobsOf: descending, lower id first among ties', () => {
  const z = [0.5, 2, -1, 2, 1, 0.5];
  const lse = Math.log(z.reduce((a, x) => a + Math.exp(x), 0));
  assert.deepEqual(topLogprobsOf(z, 4, lse).map((a) => a.id), [1, 3, 4, 0]);
  assert.deepEqual(topLogprobsOf(z, 10, lse).map((a) => a.id), [1, 3, 4, 0, 5, 2]);
  assert.equal(topLogprobsOf(z, 1, lse)[0]!.logprob, 2 - lse);
});

test('oreal serve (child process, js backend)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'oreal-serve-test-'));
  const servers: Server[] = [];
  try {
    const mk = (await import(pathToFileURL(path.join(repoRoot, 'dist', 'scripts', 'make-tokenizer.js')).href)) as { writeArithTokenizer(d: string): number };
    const tokDir = path.join(dir, 'tok');
    mk.writeArithTokenizer(tokDir);
    const tok = Tokenizer.load(tokDir);
    const V = tok.vocabSize;
    const be = createJsBackend();
    const eos = [tok.eosTokenId!];
    const dirA = path.join(dir, 'model-a');
    const dirB = path.join(dir, 'model-b');
    const dirC = path.join(dir, 'model-c');
    saveModel(Qwen2Model.random(cfgFor(V), be, 11, 0.5), dirA, eos, tokDir);
    saveModel(Qwen2Model.random(cfgFor(V), be, 12, 0.5), dirB, eos, tokDir);
    saveModel(Qwen2Model.random({ ...cfgFor(V), hiddenSize: 16 }, be, 13, 0.5), dirC, eos, tokDir);
    const modelA = Qwen2Model.fromCheckpoint(loadCheckpoint(dirA), be);
    const modelB = Qwen2Model.fromCheckpoint(loadCheckpoint(dirB), be);
    const stopIds = [...new Set([...eos, tok.eosTokenId!, tok.imEndTokenId!])];
    const decode = (ids: readonly number[]): string => tok.decode(ids, { skipSpecialTokens: true });
    const ref = async (model: Qwen2Model, prompt: number[], over: Partial<SamplingParams>, n = 1): Promise<Generation[]> =>
      (await generate(model, [{ prompt, n, params: { maxNewTokens: 12, temperature: 0, topP: 1, topK: 0, stopTokenIds: stopIds, stopStrings: [], ...over } }], { decode }))[0]!;

    const srv = await startServer(['--model', dirA, '--backend', 'js', '--port', '0', '--max-batch', '8', '--served-model-name', 'tiny']);
    servers.push(srv);
    const U = srv.url;

    await t.test('GET /v1/models and /health', async () => {
      const m = await getJson(`${U}/v1/models`);
      assert.equal(m.status, 200);
      assert.equal(m.json.object, 'list');
      assert.deepEqual(m.json.data.map((d: Json) => d.id), ['tiny']);
      const h = await getJson(`${U}/health`);
      assert.equal(h.status, 200);
      assert.equal(h.json.status, 'ok');
    });

    await t.test('greedy completion equals generate() on the same weights', async () => {
      const text = 'What is 12 + 7?';
      const prompt = tok.encode(text, { addSpecialTokens: false });
      const want = (await ref(modelA, prompt, { maxNewTokens: 12 }))[0]!;
      const r = await post(`${U}/v1/completions`, { model: 'tiny', prompt: text, max_tokens: 12, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.object, 'text_completion');
      const c = r.json.choices[0];
      assert.deepEqual(idsOf(c), want.tokenIds);
      assert.equal(c.text, want.text);
      assert.equal(c.finish_reason, want.finishReason);
      assert.deepEqual(c.logprobs.token_logprobs, want.logprobs);
      assert.deepEqual(r.json.usage, { prompt_tokens: prompt.length, completion_tokens: want.tokenIds.length, total_tokens: prompt.length + want.tokenIds.length });
      // token-id prompts, a list of prompts, n = 2; choice i·n + j is sample j of prompt i
      const p2 = [5, 6, 7, 8];
      const r2 = await post(`${U}/v1/completions`, { prompt: [prompt, p2], n: 2, max_tokens: 6, temperature: 0, logprobs: 2, return_tokens_as_token_ids: true });
      assert.equal(r2.status, 200, JSON.stringify(r2.json));
      assert.equal(r2.json.choices.length, 4);
      const w2 = (await ref(modelA, p2, { maxNewTokens: 6 }))[0]!;
      assert.deepEqual(r2.json.choices.map((c: Json) => c.index), [0, 1, 2, 3]);
      assert.deepEqual(idsOf(r2.json.choices[3]), w2.tokenIds);
      assert.deepEqual(idsOf(r2.json.choices[0]), want.tokenIds.slice(0, 6));
      const top = r2.json.choices[3].logprobs.top_logprobs as Array<Record<string, number>>;
      assert.equal(top.length, w2.tokenIds.length);
      // greedy: the sampled token is the most likely one
      assert.equal(top[0]![`token_id:${w2.tokenIds[0]}`], w2.logprobs[0]);
      // tokens as text without return_tokens_as_token_ids
      const r3 = await post(`${U}/v1/completions`, { prompt: text, max_tokens: 4, temperature: 0, logprobs: 0 });
      assert.deepEqual(r3.json.choices[0].logprobs.tokens, want.tokenIds.slice(0, 4).map((id) => tok.decode([id])));
    });

    await t.test('chat completion through the chat template', async () => {
      const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Compute 3*4.' }];
      const prompt = tok.encodeChat(messages, { addGenerationPrompt: true });
      const want = (await ref(modelA, prompt, { maxNewTokens: 10 }))[0]!;
      const r = await post(`${U}/v1/chat/completions`, { model: 'tiny', messages, max_tokens: 10, temperature: 0, logprobs: true, top_logprobs: 2, return_tokens_as_token_ids: true });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.object, 'chat.completion');
      const c = r.json.choices[0];
      assert.equal(c.message.role, 'assistant');
      assert.equal(c.message.content, want.text);
      assert.equal(c.finish_reason, want.finishReason);
      assert.deepEqual(c.logprobs.content.map((e: Json) => Number(String(e.token).slice(9))), want.tokenIds);
      assert.deepEqual(c.logprobs.content.map((e: Json) => e.logprob), want.logprobs);
      assert.equal(c.logprobs.content[0].top_logprobs.length, 2);
      assert.equal(r.json.usage.prompt_tokens, prompt.length);
    });

    await t.test('streaming (SSE) matches the non-streamed reply', async () => {
      const long = (await ref(modelA, tok.encode('Solve: 5 + 9', { addSpecialTokens: false }), { maxNewTokens: 16, temperature: 0.9, seed: 4, stopTokenIds: [] }))[0]!;
      const body = { prompt: 'Solve: 5 + 9', max_tokens: 16, temperature: 0.9, seed: 4, n: 2, ignore_eos: true };
      // a stop string taken from the middle of sample 0's text
      const stop = long.text.length >= 6 ? long.text.slice(3, 5) : undefined;
      const full = await post(`${U}/v1/completions`, { ...body, ...(stop ? { stop } : {}) });
      assert.equal(full.status, 200);
      const s = await sse(`${U}/v1/completions`, { ...body, ...(stop ? { stop } : {}), stream: true, stream_options: { include_usage: true } });
      assert.ok(s.done);
      assert.match(s.contentType, /text\/event-stream/);
      for (const i of [0, 1]) {
        const mine = s.events.filter((e) => e.choices.length > 0 && e.choices[0].index === i);
        assert.equal(mine.map((e) => e.choices[0].text).join(''), full.json.choices[i].text);
        assert.equal(mine[mine.length - 1]!.choices[0].finish_reason, full.json.choices[i].finish_reason);
        assert.ok(mine.slice(0, -1).every((e) => e.choices[0].finish_reason === null));
      }
      if (stop) assert.equal(full.json.choices[0].finish_reason, 'stop');
      const last = s.events[s.events.length - 1]!;
      assert.deepEqual(last.choices, []);
      assert.deepEqual(last.usage, full.json.usage);
      // chat streaming: a role delta, then content deltas
      const msgs = [{ role: 'user', content: 'Count to three.' }];
      const cfull = await post(`${U}/v1/chat/completions`, { messages: msgs, max_tokens: 12, temperature: 0 });
      const cs = await sse(`${U}/v1/chat/completions`, { messages: msgs, max_tokens: 12, temperature: 0, stream: true });
      assert.ok(cs.done);
      assert.equal(cs.events[0]!.object, 'chat.completion.chunk');
      assert.equal(cs.events[0]!.choices[0].delta.role, 'assistant');
      assert.equal(cs.events.map((e) => e.choices[0].delta.content ?? '').join(''), cfull.json.choices[0].message.content);
      assert.equal(cs.events[cs.events.length - 1]!.choices[0].finish_reason, cfull.json.choices[0].finish_reason);
    });

    await t.test('errors: bad JSON, missing and invalid fields, too large, unknown route and model, wrong method', async () => {
      const checkErr = (r: { status: number; json: Json }, status: number, param?: string | null): void => {
        assert.equal(r.status, status, JSON.stringify(r.json));
        assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
        assert.equal(typeof r.json.error.message, 'string');
        if (param !== undefined) assert.equal(r.json.error.param, param);
      };
      checkErr(await post(`${U}/v1/completions`, '{"prompt": "x",'), 400, null);
      checkErr(await post(`${U}/v1/completions`, { max_tokens: 3 }), 400, 'prompt');
      checkErr(await post(`${U}/v1/chat/completions`, { prompt: 'x' }), 400, 'messages');
      checkErr(await post(`${U}/v1/chat/completions`, { messages: [{ role: 'user', content: 3 }] }), 400, 'messages[0].content');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', temperature: -1 }), 400, 'temperature');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', top_p: 0 }), 400, 'top_p');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', n: 0 }), 400, 'n');
      checkErr(await post(`${U}/v1/completions`, { prompt: [1, V + 5] }), 400, 'prompt');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', max_tokens: 10_000 }), 400, 'max_tokens');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', presence_penalty: 0.5 }), 400, 'presence_penalty');
      checkErr(await post(`${U}/v1/completions`, { prompt: 'x', model: 'gpt-4' }), 404, 'model');
      checkErr(await post(`${U}/v1/completions`, JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) })), 413);
      checkErr(await post(`${U}/v1/nothing`, {}), 404);
      checkErr(await getJson(`${U}/nope`), 404);
      const r = await fetch(`${U}/v1/completions`);
      assert.equal(r.status, 405);
      assert.equal(r.headers.get('allow'), 'POST');
      checkErr({ status: r.status, json: (await r.json()) as Json }, 405);
      checkErr(await post(`${U}/update_weights_from_disk`, {}), 400, 'model_path');
      // the server is still fine
      assert.equal((await getJson(`${U}/health`)).json.status, 'ok');
    });

    // 32 clients with distinct seeded prompts and different lengths (so sequences leave and join the batch at different
    // steps with max batch 8): every reply is the one its request gets alone.
    const loadReqs = Array.from({ length: 32 }, (_, i) => ({
      prompt: `Q${i}: what is ${i} + ${(i * 7) % 13}?`,
      max_tokens: 4 + (i % 9) * 2,
      temperature: 0.8 + (i % 3) * 0.2,
      top_p: i % 2 === 0 ? 0.95 : 1,
      top_k: i % 4 === 1 ? 20 : 0,
      seed: 1000 + i,
      n: 1 + (i % 3 === 0 ? 1 : 0),
      logprobs: 0,
      return_tokens_as_token_ids: true,
    }));
    type Reply = { text: string[]; ids: number[][]; lps: number[][]; finish: string[] };
    const reply = (j: Json): Reply => ({
      text: j.choices.map((c: Json) => c.text),
      ids: j.choices.map(idsOf),
      lps: j.choices.map((c: Json) => c.logprobs.token_logprobs),
      finish: j.choices.map((c: Json) => c.finish_reason),
    });
    const sequential = async (): Promise<Reply[]> => {
      const out: Reply[] = [];
      for (const b of loadReqs) {
        const r = await post(`${U}/v1/completions`, b);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        out.push(reply(r.json));
      }
      return out;
    };
    let refA: Reply[] = [];

    await t.test('32 concurrent seeded clients get the same replies as sequential requests', async () => {
      refA = await sequential();
      const h0 = (await getJson(`${U}/health`)).json;
      const rs = await Promise.all(loadReqs.map((b) => post(`${U}/v1/completions`, b)));
      const h1 = (await getJson(`${U}/health`)).json;
      rs.forEach((r, i) => {
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.deepEqual(reply(r.json), refA[i], `request ${i}`);
      });
      // batching happened: far fewer decode steps than tokens
      const steps = h1.decode_steps - h0.decode_steps;
      const toks = h1.generated_tokens - h0.generated_tokens;
      assert.ok(steps * 3 < toks, `${steps} decode steps for ${toks} tokens`);
      assert.equal(h1.running, 0);
      assert.equal(h1.queued, 0);
    });

    await t.test('update_weights_from_disk during the load: no errors, each reply from one set of weights, new weights afterwards', async () => {
      const probe = tok.encode('What is 12 + 7?', { addSpecialTokens: false });
      let firstDone = false;
      const load = Promise.all(
        loadReqs.map((b) =>
          post(`${U}/v1/completions`, b).then((r) => {
            firstDone = true;
            return r;
          }),
        ),
      );
      while (!firstDone) await new Promise((r) => setTimeout(r, 2));
      const upd = await post(`${U}/update_weights_from_disk`, { model_path: dirB });
      assert.equal(upd.status, 200, JSON.stringify(upd.json));
      assert.equal(upd.json.success, true);
      assert.equal(upd.json.weight_version, 1);
      const rs = await load;
      const refB = await sequential();
      let fromB = 0;
      rs.forEach((r, i) => {
        assert.equal(r.status, 200, JSON.stringify(r.json));
        const got = reply(r.json);
        const isA = JSON.stringify(got) === JSON.stringify(refA[i]);
        const isB = JSON.stringify(got) === JSON.stringify(refB[i]);
        assert.ok(isA || isB, `request ${i} matches neither the old nor the new weights`);
        if (isB && !isA) fromB++;
      });
      assert.ok(fromB > 0, 'no request ran on the new weights');
      const g = await post(`${U}/v1/completions`, { prompt: probe, max_tokens: 12, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
      assert.deepEqual(idsOf(g.json.choices[0]), (await ref(modelB, probe, {}))[0]!.tokenIds);
      // a checkpoint of another shape is refused and leaves the weights alone
      const bad = await post(`${U}/update_weights_from_disk`, { model_path: dirC });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.success, false);
      assert.match(bad.json.message, /hiddenSize/);
      const g2 = await post(`${U}/v1/completions`, { prompt: probe, max_tokens: 12, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
      assert.deepEqual(idsOf(g2.json.choices[0]), (await ref(modelB, probe, {}))[0]!.tokenIds);
    });

    await t.test('OpenAIRolloutBackend works against it, syncWeights included', async () => {
      const rb = new OpenAIRolloutBackend({ baseUrl: `${U}/v1`, model: 'tiny', logprobs: true, tokenIds: true, retries: 0 });
      const params: SamplingParams = { maxNewTokens: 10, temperature: 0, topP: 1, topK: 0, stopTokenIds: stopIds, stopStrings: [], greedy: true };
      const text = 'What is 2 + 2?';
      const messages = [{ role: 'user', content: 'What is 2 + 2?' }];
      const chatReq: RemoteGenerationRequest = { prompt: '', messages, n: 1, params };
      const run = (): Promise<Generation[][]> => rb.generate([{ prompt: text, n: 2, params }, chatReq]);
      const check = async (got: Generation[][], model: Qwen2Model): Promise<void> => {
        const w1 = (await ref(model, tok.encode(text, { addSpecialTokens: false }), { maxNewTokens: 10 }))[0]!;
        const w2 = (await ref(model, tok.encodeChat(messages, { addGenerationPrompt: true }), { maxNewTokens: 10 }))[0]!;
        for (const g of got[0]!) {
          assert.deepEqual(g.tokenIds, w1.tokenIds);
          assert.equal(g.text, w1.text);
          assert.deepEqual(g.logprobs, w1.logprobs);
          assert.equal(g.finishReason, w1.finishReason);
        }
        assert.deepEqual(got[1]![0]!.tokenIds, w2.tokenIds);
        assert.equal(got[1]![0]!.text, w2.text);
      };
      await check(await run(), modelB);
      await rb.syncWeights(dirA);
      await check(await run(), modelA);
      // seeded sampling through the client
      const sp: SamplingParams = { ...params, temperature: 1, greedy: false, topK: 30, seed: 77, stopTokenIds: [] };
      const got = await rb.generate([{ prompt: text, n: 3, params: sp }]);
      const want = (await generate(modelA, [{ prompt: tok.encode(text, { addSpecialTokens: false }), n: 3, params: sp }], { decode }))[0]!;
      assert.deepEqual(got[0]!.map((g) => g.tokenIds), want.map((g) => g.tokenIds));
      await assert.rejects(rb.syncWeights(dirC), /hiddenSize/);
      await assert.rejects(rb.syncWeights(path.join(dir, 'missing')), /refused|HTTP 400/);
      await rb.close();
    });

    await t.test('a checkpoint with NaN weights is refused and the weights stay as they were', async () => {
      const nanModel = Qwen2Model.fromCheckpoint(loadCheckpoint(dirA), be);
      nanModel.params.get('model.norm.weight')![5] = Number.NaN;
      const dirNaN = path.join(dir, 'model-nan');
      saveModel(nanModel, dirNaN, eos, tokDir);
      const r = await post(`${U}/update_weights_from_disk`, { model_path: dirNaN });
      assert.equal(r.status, 400);
      assert.equal(r.json.success, false);
      assert.match(r.json.message, /tensor model\.norm\.weight holds a non-finite value \(NaN at index 5\); weights not loaded/);
      const probe = [3, 4, 5];
      const g = await post(`${U}/v1/completions`, { prompt: probe, max_tokens: 8, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
      assert.deepEqual(idsOf(g.json.choices[0]), (await ref(modelA, probe, { maxNewTokens: 8 }))[0]!.tokenIds);
    });

    await t.test('an engine failure is a 500 for the requests involved; the server keeps serving', async () => {
      // Finite weights whose attention scores overflow float32: valid on disk, non-finite logits at run time.
      const hugeModel = Qwen2Model.fromCheckpoint(loadCheckpoint(dirA), be);
      hugeModel.params.get('model.layers.0.input_layernorm.weight')!.fill(3e38);
      const dirHuge = path.join(dir, 'model-overflow');
      saveModel(hugeModel, dirHuge, eos, tokDir);
      assert.equal((await post(`${U}/update_weights_from_disk`, { model_path: dirHuge })).json.success, true);
      const [r1, r2] = await Promise.all([
        post(`${U}/v1/completions`, { prompt: 'x', max_tokens: 4, temperature: 1 }),
        post(`${U}/v1/chat/completions`, { messages: [{ role: 'user', content: 'y' }], max_tokens: 4, temperature: 1, n: 3 }),
      ]);
      for (const r of [r1, r2]) {
        assert.equal(r.status, 500, JSON.stringify(r.json));
        assert.equal(r.json.error.type, 'server_error');
      }
      assert.equal((await post(`${U}/update_weights_from_disk`, { model_path: dirA })).json.success, true);
      const probe = [3, 4, 5];
      const g = await post(`${U}/v1/completions`, { prompt: probe, max_tokens: 8, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true });
      assert.deepEqual(idsOf(g.json.choices[0]), (await ref(modelA, probe, { maxNewTokens: 8 }))[0]!.tokenIds);
      const h = (await getJson(`${U}/health`)).json;
      assert.equal(h.running + h.queued, 0);
    });

    await t.test('a client that disconnects cancels its sequences', async () => {
      const h0 = (await getJson(`${U}/health`)).json;
      const ac = new AbortController();
      const r = await fetch(`${U}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', max_tokens: 400, ignore_eos: true, temperature: 0, stream: true }),
        signal: ac.signal,
      });
      const reader = r.body!.getReader();
      await reader.read();
      ac.abort();
      let h = h0;
      for (let i = 0; i < 200; i++) {
        h = (await getJson(`${U}/health`)).json;
        if (h.cancelled_requests > h0.cancelled_requests) break;
        await new Promise((res) => setTimeout(res, 10));
      }
      assert.equal(h.cancelled_requests, h0.cancelled_requests + 1);
      assert.equal(h.running, 0);
      assert.ok(h.generated_tokens - h0.generated_tokens < 400);
    });

    await t.test('SIGTERM lets an in-flight request finish, then exits 0', async () => {
      const r = await fetch(`${U}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', max_tokens: 500, ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true } }),
      });
      assert.equal(r.status, 200);
      const reader = r.body!.getReader();
      let text = new TextDecoder().decode((await reader.read()).value);
      srv.proc.kill('SIGTERM'); // while the request is generating
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const events = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
      assert.equal(events[events.length - 1], '[DONE]');
      const usage = JSON.parse(events[events.length - 2]!) as Json;
      assert.equal(usage.usage.completion_tokens, 500);
      assert.equal(await srv.exit, 0, srv.stderr());
      await assert.rejects(fetch(`${U}/health`));
    });

    await t.test('per-request timeout: 504 and the sequence is cancelled', async () => {
      const s2 = await startServer(['--model', dirA, '--backend', 'js', '--port', '0', '--request-timeout', '0.3', '--max-model-len', '60000', '--max-batch', '4']);
      servers.push(s2);
      const slow = await post(`${s2.url}/v1/completions`, { prompt: 'x', max_tokens: 50_000, ignore_eos: true, temperature: 0 });
      assert.equal(slow.status, 504, JSON.stringify(slow.json));
      assert.equal(slow.json.error.code, 'timeout');
      assert.equal((await getJson(`${s2.url}/health`)).json.running, 0);
      s2.proc.kill('SIGTERM');
      assert.equal(await s2.exit, 0, s2.stderr());
    });
    be.dispose();
  } finally {
    for (const s of servers) if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
