// The official openai Node SDK (v6), unmodified, against agentcore-gateway;
// every answer is validated against OpenAI's OpenAPI schemas with ajv.
// Environment: GW_BIN, FAKE_BIN, GW_NPM_DIR (node_modules with openai, ajv,
// ajv-formats), GW_SPEC (openai-openapi.json), GW_CAPTURE (raw answers the
// Python suite kept, validated here too).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { loadValidators } from './schema.mjs';

const require = createRequire(process.env.GW_NPM_DIR + '/package.json');
const OpenAI = require('openai').default ?? require('openai');
const validate = loadValidators(process.env.GW_SPEC);

const KEY = 'sk-node-tenant-0123456789';
const procs = [];
let fake, gw, gwKeys, client;

function startServer(bin, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    procs.push(p);
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const rl = readline.createInterface({ input: p.stdout });
    const timer = setTimeout(() => reject(new Error(`${bin}: no LISTENING line: ${err}`)), 15000);
    rl.on('line', (line) => {
      const m = /^LISTENING (\d+)$/.exec(line.trim());
      if (m) {
        clearTimeout(timer);
        resolve({ proc: p, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}` });
      }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${bin} exited ${code}: ${err}`)); });
  });
}

function libraryConfig(fakeUrl) {
  return {
    providers: { fake: { kind: 'openai', base_url: fakeUrl + '/v1', api_key_env: '', max_retries: 0 } },
    models: [
      { name: 'fast', provider: 'fake', model: 'fake-1' },
      { name: 'emb', provider: 'fake', model: 'fake-emb' },
    ],
    default_model: 'fast',
    router: {
      retries: { provider: { retries: 0 }, rate_limited: { retries: 0 }, timeout: { retries: 0 }, network: { retries: 0 } },
      health: { failure_threshold: 1000, window_ms: 1000, cooldown_ms: 1 },
    },
  };
}

async function startGateway(extra = {}) {
  const file = path.join(os.tmpdir(), `gw-node-${process.pid}-${procs.length}.json`);
  fs.writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', agentcore: libraryConfig(fake.url), ...extra }));
  const s = await startServer(process.env.GW_BIN, ['--config', file]);
  fs.unlinkSync(file);
  return s;
}

const fakePost = (p, body) => fetch(fake.url + p, { method: 'POST', body: body === undefined ? '' : JSON.stringify(body) });
const directive = (a) => ` [[fake:${JSON.stringify(a)}]]`;
const user = (text) => ({ model: 'fast', messages: [{ role: 'user', content: text }] });

before(async () => {
  fake = await startServer(process.env.FAKE_BIN, ['--port', '0', '--exit-on-stdin-eof']);
  gw = await startGateway();
  gwKeys = await startGateway({ api_keys: { [KEY]: 'node-tenant' }, limits: { max_body_bytes: 65536 } });
  client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: 'unused', maxRetries: 0 });
});

after(() => {
  for (const p of procs) {
    if (p.exitCode === null) {
      if (p === fake?.proc) p.stdin.end(); else p.kill('SIGTERM');
    }
  }
});

test('chat completion validates against CreateChatCompletionResponse', async () => {
  await fakePost('/_fake/reset');
  const { data, response } = await client.chat.completions.create(user('hello node')).withResponse();
  validate('CreateChatCompletionResponse', data);
  assert.equal(data.choices[0].message.content, 'fake reply to: hello node');
  assert.equal(response.headers.get('x-agentcore-model'), 'fast');
  assert.ok(response.headers.get('x-request-id'));
  assert.match(response.headers.get('x-agentcore-overhead-us'), /^\d+$/);
});

test('streamed chunks validate and end with usage when asked', async () => {
  const stream = await client.chat.completions.create({ ...user('stream for node'), stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  let n = 0;
  for await (const chunk of stream) {
    validate('CreateChatCompletionStreamResponse', chunk);
    n++;
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(n > 3);
  assert.equal(text, 'fake reply to: stream for node');
  assert.ok(usage && usage.total_tokens > 0);
});

const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

test('tools round trip: tool_calls answer, tool result sent back', async () => {
  await fakePost('/_fake/reset');
  await fakePost('/_fake/script', [{ tool_calls: [{ name: 'get_weather', arguments: { city: 'Lima' } }] }]);
  const messages = [{ role: 'user', content: 'weather in Lima?' }];
  const first = await client.chat.completions.create({ model: 'fast', messages, tools: TOOLS });
  validate('CreateChatCompletionResponse', first);
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  const call = first.choices[0].message.tool_calls[0];
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Lima' });
  messages.push(first.choices[0].message);
  messages.push({ role: 'tool', tool_call_id: call.id, content: '{"temp_c": 19}' });
  const second = await client.chat.completions.create({ model: 'fast', messages, tools: TOOLS });
  validate('CreateChatCompletionResponse', second);
  assert.equal(second.choices[0].message.content, 'fake reply to: weather in Lima?');
  const sent = await (await fetch(fake.url + '/_fake/requests?last=1')).json();
  assert.equal(sent.body.messages.at(-1).role, 'tool');
});

test('streamed tool calls validate', async () => {
  await fakePost('/_fake/script', [{ tool_calls: [{ name: 'get_weather', arguments: { city: 'Kyiv' } }] }]);
  const stream = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS, stream: true });
  let args = '';
  for await (const chunk of stream) {
    validate('CreateChatCompletionStreamResponse', chunk);
    for (const ch of chunk.choices) for (const tc of ch.delta.tool_calls ?? []) args += tc.function?.arguments ?? '';
  }
  assert.deepEqual(JSON.parse(args), { city: 'Kyiv' });
});

test('embeddings: float validates; base64 (the SDK default) decodes to the same vectors', async () => {
  const { data: floats } = await client.embeddings.create({ model: 'emb', input: ['one', 'two'], encoding_format: 'float' }).withResponse();
  validate('CreateEmbeddingResponse', floats);
  const dflt = await client.embeddings.create({ model: 'emb', input: ['one', 'two'] });
  assert.equal(dflt.data.length, 2);
  dflt.data.forEach((d, i) => d.embedding.forEach((x, j) => assert.ok(Math.abs(x - floats.data[i].embedding[j]) < 1e-6)));
  const raw = await (await fetch(gw.url + '/v1/embeddings', { method: 'POST', body: JSON.stringify({ model: 'emb', input: 'one', encoding_format: 'base64' }) })).json();
  validate('CreateEmbeddingResponseBase64', raw);
});

test('models list validates against ListModelsResponse', async () => {
  const raw = await (await fetch(gw.url + '/v1/models')).json();
  validate('ListModelsResponse', raw);
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('fast') && ids.includes('emb'));
  const one = await client.models.retrieve('emb');
  validate('Model', one);
});

function checkError(err, status) {
  assert.ok(err instanceof OpenAI.APIError, String(err));
  assert.equal(err.status, status);
  validate('ErrorResponse', { error: err.error });
  return true;
}

test('errors: SDK error classes and ErrorResponse bodies', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'missing', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && checkError(e, 404));
  await assert.rejects(client.chat.completions.create({ model: 'fast', messages: 'nope' }),
    (e) => e instanceof OpenAI.BadRequestError && checkError(e, 400));
  await assert.rejects(client.chat.completions.create(user('x' + directive({ status: 429, retry_after: '0' }))),
    (e) => e instanceof OpenAI.RateLimitError && checkError(e, 429));
  await assert.rejects(client.chat.completions.create(user('x' + directive({ status: 500, message: 'boom' }))),
    (e) => e instanceof OpenAI.InternalServerError && checkError(e, 502) && /boom/.test(e.message));
  const bad = new OpenAI({ baseURL: gwKeys.url + '/v1', apiKey: 'sk-wrong-0000000', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && checkError(e, 401));
  const good = new OpenAI({ baseURL: gwKeys.url + '/v1', apiKey: KEY, maxRetries: 0 });
  const c = await good.chat.completions.create(user('with a key'));
  validate('CreateChatCompletionResponse', c);
});

test('an error after the stream started reaches the SDK as an APIError', async () => {
  const stream = await client.chat.completions.create({ ...user('long enough to cut' + directive({ status: 500, cut_after: 3, message: 'cut here' })), stream: true });
  await assert.rejects(async () => {
    for await (const chunk of stream) validate('CreateChatCompletionStreamResponse', chunk);
  }, (e) => e instanceof OpenAI.APIError && /cut here/.test(e.message));
});

test('raw error answers of every kind validate against ErrorResponse', async () => {
  const cases = [
    [gw.url + '/v1/chat/completions', { method: 'POST', body: '{nope' }, 400],
    [gw.url + '/v1/chat/completions', { method: 'GET' }, 405],
    [gw.url + '/v1/unknown', { method: 'GET' }, 404],
    [gwKeys.url + '/v1/chat/completions', { method: 'POST', body: 'x'.repeat(70000) }, 413],
    [gwKeys.url + '/v1/chat/completions', { method: 'POST', body: '{}' }, 401],
    [gw.url + '/v1/sessions/none-such', { method: 'GET' }, 404],
  ];
  for (const [url, init, status] of cases) {
    const r = await fetch(url, init);
    assert.equal(r.status, status, url);
    validate('ErrorResponse', await r.json());
  }
});

test('answers kept by the Python suite validate', () => {
  const dir = process.env.GW_CAPTURE;
  const files = dir && fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  if (!files.length) return; // the Python suite did not run first
  for (const f of files) {
    const { schema, body } = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    validate(schema, body);
  }
});
