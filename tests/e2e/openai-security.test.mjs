// End-to-end security (issue 5): the official openai Node SDK over HTTPS with API keys.
//
// Generates a self-signed certificate with `openssl req -x509` and two API keys with
// `llama-gateway keygen`, starts fake-llama and the gateway with TLS, keys (one of them
// limited to one model and to one request at a time) and a CORS origin, and checks what
// an SDK user sees: responses and streams over HTTPS with a trusted CA, the SDK's error
// classes for a wrong key (401), a forbidden model (403) and a busy key (429), and a
// refused untrusted certificate. The last test requires a clean exit on SIGTERM, so an
// ASan/LSan build fails here on a leak or a crash.
//
// Binaries come from GW_BUILD_DIR (default: <repo>/build).
// Run: node --test openai-security.test.mjs
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
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
const TIMEOUT_MS = 20000;

class Child {
  constructor(name, argv) {
    this.name = name;
    this.stderr = '';
    this.exited = null;
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000);
    });
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => resolve((this.exited = { code, signal })));
      this.proc.on('error', (err) => resolve((this.exited = { code: null, signal: null, err })));
    });
  }

  waitListening() {
    return new Promise((resolve, reject) => {
      const rl = readline.createInterface({ input: this.proc.stdout });
      const timer = setTimeout(() => reject(new Error(`${this.name} did not start\n${this.stderr}`)),
        TIMEOUT_MS);
      rl.on('line', (line) => {
        const m = /listening on .*:(\d+)\s*$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      this.exitPromise.then((st) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${JSON.stringify(st)})\n${this.stderr}`));
      });
    });
  }

  async stop() {
    if (this.exited) return this.exited;
    this.proc.kill('SIGTERM');
    let timer;
    const st = await Promise.race([this.exitPromise,
      new Promise((r) => { timer = setTimeout(() => r(null), TIMEOUT_MS); })]);
    clearTimeout(timer);
    if (st) return st;
    this.proc.kill('SIGKILL');
    await this.exitPromise;
    return { code: null, signal: 'SIGTERM-timeout' };
  }
}

function keygen(name) {
  const out = execFileSync(GATEWAY_BIN, ['keygen', name], { encoding: 'utf8' });
  const lines = out.split('\n').filter((l) => l && !l.startsWith('#'));
  return { key: lines[0], entry: JSON.parse(`{${lines[1]}}`) };
}

function makeCert(dir, cn) {
  const cert = path.join(dir, `${cn}-cert.pem`);
  const key = path.join(dir, `${cn}-key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

describe('openai Node SDK over HTTPS with API keys', () => {
  let fake;
  let gateway;
  let dir;
  let port;
  let tls;
  let other;
  let full;
  let limited;

  const client = (apiKey, ca = tls.cert) => new OpenAI({
    baseURL: `https://127.0.0.1:${port}/v1`,
    apiKey,
    maxRetries: 0,
    timeout: 30000,
    httpAgent: new https.Agent({ ca: fs.readFileSync(ca) }),
  });

  before(async () => {
    for (const bin of [GATEWAY_BIN, FAKE_BIN]) {
      assert.ok(fs.existsSync(bin), `${bin} is missing: build first`);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-e2e-sec-'));
    tls = makeCert(dir, 'localhost');
    other = makeCert(dir, 'other');
    full = keygen('sdk-full');
    limited = keygen('sdk-limited');
    limited.entry['sdk-limited'].models = ['small'];
    limited.entry['sdk-limited'].max_concurrent = 1;

    fake = new Child('fake-llama', [FAKE_BIN, '--host', '127.0.0.1', '--port', '0', '--quiet']);
    const fakePort = await fake.waitListening();
    const confFile = path.join(dir, 'gateway.json');
    fs.writeFileSync(confFile, JSON.stringify({
      listen: { host: '127.0.0.1', port: 0, threads: 2 },
      log: { level: 'info' },
      tls: { cert: tls.cert, key: tls.key },
      auth: { keys: { ...full.entry, ...limited.entry } },
      cors: { origins: ['http://webui.lan:3000'] },
      models: {
        small: { upstream: `http://127.0.0.1:${fakePort}`, aliases: ['gpt-4o-mini'] },
        big: { upstream: `http://127.0.0.1:${fakePort}` },
      },
    }));
    gateway = new Child('llama-gateway', [GATEWAY_BIN, '--config', confFile]);
    port = await gateway.waitListening();
  });

  after(async () => {
    if (gateway) await gateway.stop();
    if (fake) await fake.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there' }],
    max_tokens: 12, temperature: 0 };

  test('chat, stream and models over HTTPS with a key', async () => {
    const c = client(full.key);
    const res = await c.chat.completions.create(chat);
    assert.equal(res.model, 'gpt-4o-mini');
    assert.ok(res.choices[0].message.content.length > 0);
    let text = '';
    for await (const chunk of await c.chat.completions.create({ ...chat, stream: true })) {
      for (const ch of chunk.choices) text += ch.delta?.content ?? '';
    }
    assert.equal(text, res.choices[0].message.content);
    const ids = [];
    for await (const m of c.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['small', 'gpt-4o-mini', 'big']);
  });

  test('the raw response carries X-Request-Id', async () => {
    const { response } = await client(full.key).chat.completions.create(chat).withResponse();
    assert.match(response.headers.get('x-request-id'), /^[0-9a-f]{16}$/);
  });

  test('a wrong key: AuthenticationError (401)', async () => {
    for (const key of ['sk-gw-wrong', full.key + 'x']) {
      await assert.rejects(client(key).chat.completions.create(chat), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, `${err}`);
        assert.equal(err.status, 401);
        assert.equal(err.type, 'authentication_error');
        assert.equal(err.code, 'invalid_api_key');
        assert.ok(!err.message.includes(full.key));
        return true;
      });
    }
  });

  test('a model outside the key\'s list: PermissionDeniedError (403), hidden from the list',
    async () => {
      const c = client(limited.key);
      await assert.rejects(c.chat.completions.create({ ...chat, model: 'big' }), (err) => {
        assert.ok(err instanceof OpenAI.PermissionDeniedError, `${err}`);
        assert.equal(err.status, 403);
        assert.equal(err.param, 'model');
        assert.match(err.message, /'big'/);
        return true;
      });
      const ids = [];
      for await (const m of c.models.list()) ids.push(m.id);
      assert.deepEqual(ids, ['small', 'gpt-4o-mini']);
    });

  test('a key over its concurrency: RateLimitError (429)', async () => {
    const c = client(limited.key);
    const stream = await c.chat.completions.create({ ...chat, stream: true, max_tokens: 40,
      fake_token_ms: 25 });
    const it = stream[Symbol.asyncIterator]();
    await it.next(); // the first request holds the key's only slot
    await assert.rejects(c.chat.completions.create(chat), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `${err}`);
      assert.equal(err.status, 429);
      assert.equal(err.headers['retry-after'], '1');
      return true;
    });
    for (let r = await it.next(); !r.done; r = await it.next()) { /* drain */ }
  });

  test('an untrusted certificate is refused', async () => {
    await assert.rejects(client(full.key, other.cert).models.list(), (err) => {
      assert.ok(err instanceof OpenAI.APIConnectionError, `${err}`);
      return true;
    });
  });

  test('gateway and backend exit cleanly on SIGTERM', async () => {
    const g = await gateway.stop();
    assert.deepEqual({ code: g.code, signal: g.signal }, { code: 0, signal: null },
      `llama-gateway exit ${JSON.stringify(g)}\n${gateway.stderr.slice(-4000)}`);
    for (const k of [full.key, limited.key]) assert.ok(!gateway.stderr.includes(k));
    const f = await fake.stop();
    assert.deepEqual({ code: f.code, signal: f.signal }, { code: 0, signal: null });
  });
});
