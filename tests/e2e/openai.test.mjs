// End-to-end: the official openai Node SDK against llama-gateway in front of fake-llama.
//
// Starts a fake-llama and the gateway (both on --port 0, the port parsed from their
// "listening on HOST:PORT" line), talks to the gateway only through the SDK, and checks
// what a user of the SDK sees: response objects, stream chunks, the model list and the
// SDK's error classes. The last test stops the gateway with SIGTERM and requires a clean
// exit, so that an ASan/LSan build (GW_SANITIZE=ON) fails here on a leak or a crash.
//
// Binaries come from GW_BUILD_DIR (default: <repo>/build). Run: node --test openai.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const buildDir = process.env.GW_BUILD_DIR || path.resolve(here, '..', '..', 'build');
const GATEWAY_BIN = path.join(buildDir, 'gateway', 'llama-gateway');
const FAKE_BIN = path.join(buildDir, 'tests', 'fake_llama', 'fake-llama');
const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 20000;

const MODEL = 'e2e-model';
const ALIAS = 'gpt-4o-mini';

// A child process that announces "... listening on HOST:PORT" on stdout.
class Child {
  constructor(name, argv) {
    this.name = name;
    this.stderr = '';
    this.exited = null; // {code, signal} once exited
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000);
    });
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
      this.proc.on('error', (err) => {
        this.stderr += `\nspawn error: ${err.message}`;
        this.exited = { code: null, signal: null, error: err };
        resolve(this.exited);
      });
    });
  }

  tail(n = 4000) {
    return this.stderr.length > n ? '...' + this.stderr.slice(-n) : this.stderr;
  }

  // Resolves with the port from the first "listening on" line.
  waitListening() {
    return new Promise((resolve, reject) => {
      const rl = readline.createInterface({ input: this.proc.stdout });
      const timer = setTimeout(() => {
        reject(new Error(`${this.name} did not say "listening on" within ${START_TIMEOUT_MS} ms\n${this.tail()}`));
      }, START_TIMEOUT_MS);
      rl.on('line', (line) => {
        const m = /listening on .*:(\d+)\s*$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      this.exitPromise.then((st) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before listening (${JSON.stringify(st)})\n${this.tail()}`));
      });
    });
  }

  // SIGTERM, then SIGKILL after the timeout. Resolves with {code, signal}.
  async stop(timeoutMs = STOP_TIMEOUT_MS) {
    if (this.exited) return this.exited;
    this.proc.kill('SIGTERM');
    let timer;
    const timedOut = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const st = await Promise.race([this.exitPromise, timedOut]);
    clearTimeout(timer);
    if (st) return st;
    this.proc.kill('SIGKILL');
    await this.exitPromise;
    return { code: null, signal: 'SIGTERM-timeout' };
  }
}

describe('openai Node SDK through llama-gateway', () => {
  let fake;
  let gateway;
  let confDir;
  let client;

  before(async () => {
    for (const bin of [GATEWAY_BIN, FAKE_BIN]) {
      assert.ok(fs.existsSync(bin), `${bin} is missing: build first (GW_BUILD_DIR=${buildDir})`);
    }
    fake = new Child('fake-llama', [FAKE_BIN, '--host', '127.0.0.1', '--port', '0', '--quiet',
      '--alias', 'e2e-backend']);
    const fakePort = await fake.waitListening();

    confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-e2e-'));
    const confFile = path.join(confDir, 'gateway.json');
    fs.writeFileSync(confFile, JSON.stringify({
      listen: { host: '127.0.0.1', port: 0, threads: 2 },
      log: { level: 'info' },
      models: {
        [MODEL]: { upstream: `http://127.0.0.1:${fakePort}`, aliases: [ALIAS] },
      },
    }, null, 2));
    gateway = new Child('llama-gateway', [GATEWAY_BIN, '--config', confFile]);
    const port = await gateway.waitListening();

    client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: 'sk-test',
      maxRetries: 0,
      timeout: 30000,
    });
  });

  after(async () => {
    if (gateway) await gateway.stop();
    if (fake) await fake.stop();
    if (confDir) fs.rmSync(confDir, { recursive: true, force: true });
  });

  const chatRequest = {
    model: ALIAS,
    messages: [
      { role: 'system', content: 'You are a test.' },
      { role: 'user', content: 'Write one short sentence about llamas.' },
    ],
    temperature: 0,
    seed: 42,
    max_tokens: 24,
  };
  let chatContent;
  let chatUsage;

  test('chat completion (non-stream)', async () => {
    const res = await client.chat.completions.create(chatRequest);
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, ALIAS, 'the response names the model the client asked for');
    assert.ok(typeof res.id === 'string' && res.id.length > 0);
    assert.equal(res.choices.length, 1);
    const choice = res.choices[0];
    assert.equal(choice.index, 0);
    assert.equal(choice.message.role, 'assistant');
    assert.ok(typeof choice.message.content === 'string' && choice.message.content.length > 0,
      `content: ${JSON.stringify(choice.message.content)}`);
    assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
    assert.ok(res.usage, 'usage is present');
    assert.ok(res.usage.prompt_tokens > 0);
    assert.ok(res.usage.completion_tokens > 0);
    assert.ok(res.usage.completion_tokens <= chatRequest.max_tokens);
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
    chatContent = choice.message.content;
    chatUsage = res.usage;

    // temperature 0 against a deterministic backend: the same answer twice
    const again = await client.chat.completions.create(chatRequest);
    assert.equal(again.choices[0].message.content, chatContent);
  });

  test('chat completion (stream) matches the non-stream content', async () => {
    assert.ok(chatContent, 'the non-stream test ran first');
    const stream = await client.chat.completions.create({
      ...chatRequest,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.equal(chunk.model, ALIAS, 'every chunk names the requested model');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta?.content) text += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.ok(chunks > 1, `expected several chunks, got ${chunks}`);
    assert.equal(text, chatContent);
    assert.ok(['stop', 'length'].includes(finish), `finish_reason ${finish}`);
    assert.ok(usage, 'include_usage gives a final usage chunk');
    assert.deepEqual(
      [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens],
      [chatUsage.prompt_tokens, chatUsage.completion_tokens, chatUsage.total_tokens]);
  });

  test('chat completion by the model name (not the alias)', async () => {
    const res = await client.chat.completions.create({ ...chatRequest, model: MODEL });
    assert.equal(res.model, MODEL);
    assert.equal(res.choices[0].message.content, chatContent);
  });

  const completionRequest = {
    model: ALIAS,
    prompt: 'Once upon a time',
    temperature: 0,
    seed: 7,
    max_tokens: 16,
  };

  test('completions (non-stream and stream)', async () => {
    const res = await client.completions.create(completionRequest);
    assert.equal(res.object, 'text_completion');
    assert.equal(res.model, ALIAS);
    assert.equal(res.choices.length, 1);
    const text = res.choices[0].text;
    assert.ok(typeof text === 'string' && text.length > 0, `text: ${JSON.stringify(text)}`);
    assert.ok(res.usage && res.usage.completion_tokens > 0);

    const stream = await client.completions.create({ ...completionRequest, stream: true });
    let streamed = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.model, ALIAS);
      for (const c of chunk.choices) streamed += c.text ?? '';
    }
    assert.ok(chunks > 1, `expected several chunks, got ${chunks}`);
    assert.equal(streamed, text);
  });

  test('embeddings', async () => {
    const res = await client.embeddings.create({
      model: ALIAS,
      input: ['first text', 'second text'],
      encoding_format: 'float',
    });
    assert.equal(res.object, 'list');
    assert.equal(res.data.length, 2);
    for (const [i, d] of res.data.entries()) {
      assert.equal(d.index, i);
      assert.ok(Array.isArray(d.embedding) && d.embedding.length > 0);
      assert.ok(d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    }
  });

  test('models.list() and models.retrieve()', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      ids.push(m.id);
      assert.equal(m.object, 'model');
    }
    assert.ok(ids.includes(MODEL), `ids: ${ids}`);
    assert.ok(ids.includes(ALIAS), `ids: ${ids}`);

    const one = await client.models.retrieve(ALIAS);
    assert.equal(one.id, ALIAS);
    assert.equal(one.object, 'model');
  });

  test('unknown model: NotFoundError (404), also for a stream', async () => {
    for (const stream of [false, true]) {
      await assert.rejects(
        client.chat.completions.create({ ...chatRequest, model: 'no-such-model', stream }),
        (err) => {
          assert.ok(err instanceof OpenAI.APIError, `${err}`);
          assert.ok(err instanceof OpenAI.NotFoundError, `${err}`);
          assert.equal(err.status, 404);
          assert.equal(err.type, 'invalid_request_error');
          assert.equal(err.code, 'model_not_found');
          assert.equal(err.param, 'model');
          assert.match(err.message, /no-such-model/);
          return true;
        });
    }
    await assert.rejects(client.models.retrieve('no-such-model'), OpenAI.NotFoundError);
  });

  test('bad parameter: BadRequestError (400) naming the parameter', async () => {
    await assert.rejects(
      client.chat.completions.create({ ...chatRequest, temperature: 'hot' }),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `${err}`);
        assert.ok(err instanceof OpenAI.BadRequestError, `${err}`);
        assert.equal(err.status, 400);
        assert.equal(err.type, 'invalid_request_error');
        assert.equal(err.param, 'temperature');
        return true;
      });
    await assert.rejects(
      client.chat.completions.create({ model: ALIAS }), // no messages
      (err) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === 'messages');
  });

  // Token IDs (vLLM's fields) through the SDK: extra body fields go out as they are and
  // extra response fields come back on the objects.
  test('return_token_ids and stop_token_ids (non-stream and stream)', async () => {
    const base = { model: ALIAS, messages: [{ role: 'user', content: 'Hello there' }],
      max_tokens: 8, return_token_ids: true };
    const res = await client.chat.completions.create(base);
    const ch = res.choices[0];
    assert.ok(Array.isArray(ch.token_ids) && ch.token_ids.length > 0, JSON.stringify(ch));
    assert.equal(ch.token_ids.length, res.usage.completion_tokens);
    assert.equal(ch.token_ids_complete, true);
    assert.ok(Array.isArray(res.prompt_token_ids));
    assert.equal(res.prompt_token_ids.length, res.usage.prompt_tokens);
    assert.equal(ch.logprobs, undefined, 'logprobs the client did not ask for are removed');

    const stream = await client.chat.completions.create({ ...base, stream: true });
    const ids = [];
    let text = '';
    let first = true;
    for await (const chunk of stream) {
      if (first) assert.deepEqual(chunk.prompt_token_ids, res.prompt_token_ids);
      first = false;
      for (const c of chunk.choices) {
        ids.push(...c.token_ids);
        text += c.delta?.content ?? '';
      }
    }
    assert.deepEqual(ids, ch.token_ids);
    assert.equal(text, ch.message.content);

    // stop at the third generated token: its text is included (not a special token)
    const stopId = ch.token_ids[2];
    const cut = await client.chat.completions.create({ ...base, stop_token_ids: [stopId] });
    const cc = cut.choices[0];
    assert.equal(cc.finish_reason, 'stop');
    assert.equal(cc.stop_reason, stopId);
    assert.deepEqual(cc.token_ids, ch.token_ids.slice(0, 3));
    assert.ok(ch.message.content.startsWith(cc.message.content));

    const bad = client.chat.completions.create({ ...base, stop_token_ids: [1e9] });
    await assert.rejects(bad, (err) => err instanceof OpenAI.BadRequestError &&
      err.param === 'stop_token_ids');

    const comp = await client.completions.create({ model: ALIAS, prompt: 'Once upon a time',
      max_tokens: 6, return_token_ids: true });
    assert.equal(comp.choices[0].token_ids.length, comp.usage.completion_tokens);
    assert.equal(comp.choices[0].prompt_token_ids.length, comp.usage.prompt_tokens);
  });

  // Last: a clean exit on SIGTERM. Under ASan/LSan a leak or a crash makes this fail.
  test('gateway and backend exit cleanly on SIGTERM', async () => {
    const g = await gateway.stop();
    assert.deepEqual({ code: g.code, signal: g.signal }, { code: 0, signal: null },
      `llama-gateway exit ${JSON.stringify(g)}\n${gateway.tail()}`);
    const f = await fake.stop();
    assert.deepEqual({ code: f.code, signal: f.signal }, { code: 0, signal: null },
      `fake-llama exit ${JSON.stringify(f)}\n${fake.tail()}`);
  });
});
