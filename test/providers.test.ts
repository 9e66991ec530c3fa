/**
 * The real providers (OpenAI-compatible, Anthropic) against the protocol-faithful local server
 * (test/helpers/llm-server.ts, itself checked with the official SDKs in llm-server.test.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { WeftError } from '../src/core/errors.ts';
import { createAnthropicProvider } from '../src/providers/anthropic.ts';
import { createOpenAICompatibleProvider, type OpenAICompatibleConfig } from '../src/providers/openai-compatible.ts';
import { costOf } from '../src/providers/pricing.ts';
import { backoffDelay, parseRetryAfter, type ProviderHttpOptions } from '../src/providers/provider-http.ts';
import { configureProviders, listProviders, resolveProvider } from '../src/providers/registry.ts';
import { simulatedProvider } from '../src/providers/simulated.ts';
import { SseParser, type SseEvent } from '../src/providers/sse-parser.ts';
import type { ChatRequest, Provider } from '../src/providers/types.ts';
import { makePng, startLlmServer, type LlmServer } from './helpers/llm-server.ts';

const OPENAI_KEY = 'sk-proj-secret-0123456789abcdef';
const ANTHROPIC_KEY = 'sk-ant-api03-secret-0123456789';
const FAST: ProviderHttpOptions = { allowPrivateNetwork: true, retryBaseMs: 10, retryMaxMs: 40 };
const WEATHER = { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const REVIEW_SCHEMA = { type: 'object', properties: { score: { type: 'integer' }, feedback: { type: 'string' } }, required: ['score', 'feedback'], additionalProperties: false };

let server: LlmServer;
before(async () => {
  server = await startLlmServer({ openaiKey: OPENAI_KEY, anthropicKey: ANTHROPIC_KEY, azureKey: 'azure-secret-key' });
});
after(() => server.close());

function chat(overrides: Partial<ChatRequest> = {}): ChatRequest {
  return { model: undefined, system: 'Be brief', prompt: 'Hello', temperature: undefined, maxTokens: undefined, idempotencyKey: 'run1:step1:1', signal: AbortSignal.timeout(10_000), ...overrides };
}

function openai(extra: Partial<OpenAICompatibleConfig> = {}, http: Partial<ProviderHttpOptions> = {}): Provider {
  return createOpenAICompatibleProvider({ name: 'openai', baseUrl: server.openaiBaseUrl, apiKey: OPENAI_KEY, defaultModel: 'gpt-4o-mini', defaultImageModel: 'dall-e-3', ...extra, http: { ...FAST, ...http } });
}

function anthropic(http: Partial<ProviderHttpOptions> = {}): Provider {
  return createAnthropicProvider({ name: 'anthropic', baseUrl: server.url, apiKey: ANTHROPIC_KEY, defaultModel: 'claude-sonnet-4-5', http: { ...FAST, ...http } });
}

/** Runs `fn`, expecting a WeftError, and returns it. */
async function failure(fn: () => Promise<unknown>): Promise<WeftError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof WeftError, `expected a WeftError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}

const since = (): number => server.requests.length;

const both = [
  ['OpenAI-compatible', () => openai()],
  ['Anthropic', () => anthropic()],
] as const;

for (const [label, make] of both) {
  void describe(`${label} provider`, () => {
    void test('streams tokens in order through onToken; the text is their concatenation', async () => {
      const text = 'Streaming, token by token — with ünïcode 🚀 and a long tail of words.';
      server.script({ type: 'text', text, usage: { input: 42, output: 17 }, chunkDelayMs: 2 });
      const tokens: string[] = [];
      const res = await make().chat(chat({ onToken: (t) => tokens.push(t) }));
      assert.ok(tokens.length > 5, `${tokens.length} tokens`);
      assert.equal(tokens.join(''), text);
      assert.equal(res.text, text);
      assert.deepEqual([res.tokensIn, res.tokensOut, res.finishReason, res.toolCalls], [42, 17, 'stop', []]);
      assert.equal(server.requests.at(-1)?.body.stream, true);
    });

    void test('non-streamed reply with usage and the server-reported model', async () => {
      server.script({ type: 'text', text: 'Plain', usage: { input: 5, output: 1 }, model: label === 'Anthropic' ? 'claude-sonnet-4-5-20250929' : 'gpt-4o-mini-2024-07-18' });
      const res = await make().chat(chat({ temperature: 0.2, maxTokens: 100 }));
      assert.equal(res.text, 'Plain');
      assert.match(res.model, /-20\d\d/);
      const body = server.requests.at(-1)?.body;
      assert.equal(body.stream, undefined);
      assert.equal(body.temperature, 0.2);
      const provider = label === 'Anthropic' ? 'anthropic' : 'openai';
      const cost = costOf(provider, res.model, res.tokensIn, res.tokensOut);
      assert.equal(cost.priced, true);
      assert.ok(cost.costUsd > 0);
    });

    for (const stream of [false, true]) {
      void test(`tool calls are parsed (${stream ? 'streamed' : 'whole'}), and a tool result is accepted in the next turn`, async () => {
        server.script({ type: 'tool_calls', calls: [{ id: 'call_A', name: 'get_weather', arguments: { city: 'Paris' } }, { id: 'call_B', name: 'get_weather', arguments: { city: 'Kyōto' } }] });
        const res = await make().chat(chat({ tools: [WEATHER], toolChoice: 'auto', stream }));
        assert.equal(res.finishReason, 'tool_calls');
        assert.deepEqual(res.toolCalls, [
          { id: 'call_A', name: 'get_weather', arguments: { city: 'Paris' } },
          { id: 'call_B', name: 'get_weather', arguments: { city: 'Kyōto' } },
        ]);
        server.script({ type: 'text', text: 'Mild in both.' });
        const next = await make().chat(chat({
          prompt: '',
          tools: [WEATHER],
          stream,
          messages: [
            { role: 'user', content: 'Weather in Paris and Kyōto?' },
            { role: 'assistant', content: '', toolCalls: res.toolCalls },
            { role: 'tool', toolCallId: 'call_A', content: '14°C' },
            { role: 'tool', toolCallId: 'call_B', content: '18°C' },
          ],
        }));
        assert.equal(next.text, 'Mild in both.');
      });
    }

    for (const stream of [false, true]) {
      void test(`structured output comes back parsed (${stream ? 'streamed' : 'whole'})`, async () => {
        server.script({ type: 'json', value: { score: 8, feedback: 'Clear' } });
        const res = await make().chat(chat({ responseSchema: { name: 'review', schema: REVIEW_SCHEMA }, stream }));
        assert.deepEqual(res.json, { score: 8, feedback: 'Clear' });
        assert.deepEqual(JSON.parse(res.text), res.json);
        assert.equal(res.finishReason, 'stop');
        assert.deepEqual(res.toolCalls, []);
      });
    }

    void test('429 twice, then success: Retry-After honoured', async () => {
      server.rateLimit(2, '1');
      server.script({ type: 'text', text: 'finally' });
      const from = since();
      const res = await make().chat(chat());
      assert.equal(res.text, 'finally');
      const seen = server.requests.slice(from);
      assert.equal(seen.length, 3);
      for (let i = 1; i < 3; i++) {
        const waited = seen[i]!.at - seen[i - 1]!.at;
        assert.ok(waited >= 1000 - 5, `waited ${waited.toFixed(0)} ms after the 429`);
      }
    });

    void test('500 is retried; 400 is not, and carries the API message', async () => {
      server.script({ type: 'error', status: 500, message: 'The server had an error' }, { type: 'text', text: 'recovered' });
      let from = since();
      assert.equal((await make().chat(chat())).text, 'recovered');
      assert.equal(server.requests.length - from, 2);

      server.script({ type: 'error', status: 400, message: "Invalid value for 'temperature'", param: 'temperature', code: 'invalid_value' });
      from = since();
      const err = await failure(() => make().chat(chat()));
      assert.equal(err.code, 'WEFT_HTTP_ERROR');
      assert.equal(err.retryable, false);
      assert.match(err.message, /HTTP 400.*Invalid value for 'temperature'/);
      assert.equal(err.details?.['status'], 400);
      assert.equal(server.requests.length - from, 1);
    });

    void test('a connection dropped before the answer is retried', async () => {
      server.script({ type: 'drop' }, { type: 'text', text: 'second try' });
      const from = since();
      assert.equal((await make().chat(chat())).text, 'second try');
      assert.equal(server.requests.length - from, 2);
    });

    void test('a stream failing after its 200 is not retried here (tokens went out), but is retryable', async () => {
      server.script({ type: 'stream_error', text: 'half an answer', message: 'Overloaded' });
      const from = since();
      const tokens: string[] = [];
      const err = await failure(() => make().chat(chat({ onToken: (t) => tokens.push(t) })));
      assert.equal(err.retryable, true);
      assert.match(err.message, /Overloaded/);
      assert.equal(tokens.join(''), 'half an answer');
      assert.equal(server.requests.length - from, 1);
    });

    void test('timeout → WEFT_STEP_TIMEOUT, retryable', async () => {
      server.script({ type: 'text', text: 'too late', delayMs: 3000 });
      const started = performance.now();
      const err = await failure(() => (label === 'Anthropic' ? anthropic({ timeoutMs: 200 }) : openai({}, { timeoutMs: 200 })).chat(chat()));
      assert.equal(err.code, 'WEFT_STEP_TIMEOUT');
      assert.equal(err.retryable, true);
      assert.ok(performance.now() - started < 2000);
    });

    void test('the signal aborts a waiting request, a stream, and a retry wait', async () => {
      server.script({ type: 'hang' });
      let err = await failure(() => make().chat(chat({ signal: AbortSignal.timeout(150) })));
      assert.equal(err.code, 'WEFT_STEP_TIMEOUT'); // AbortSignal.timeout's reason is a TimeoutError

      const controller = new AbortController();
      server.script({ type: 'text', text: 'a b c d e f g h i j k l m n o p', chunkDelayMs: 50 });
      const tokens: string[] = [];
      const pending = make().chat(chat({ signal: controller.signal, onToken: (t) => (tokens.push(t), tokens.length === 3 && controller.abort()) }));
      err = await failure(() => pending);
      assert.equal(err.code, 'WEFT_CANCELLED');
      assert.equal(tokens.length, 3);

      const engineStop = new AbortController();
      server.rateLimit(1, '5');
      const started = performance.now();
      setTimeout(() => engineStop.abort(new WeftError('WEFT_LEASE_LOST', 'lease lost')), 100);
      err = await failure(() => make().chat(chat({ signal: engineStop.signal })));
      assert.equal(err.code, 'WEFT_LEASE_LOST'); // the engine's own reason comes through
      assert.ok(performance.now() - started < 2000);
    });

    void test('the API key never appears in an error, even when the API echoes it', async () => {
      const key = label === 'Anthropic' ? ANTHROPIC_KEY : OPENAI_KEY;
      server.script({ type: 'error', status: 401, message: `Incorrect API key provided: ${key}` });
      const err = await failure(() => make().chat(chat()));
      assert.equal(err.retryable, false);
      assert.ok(!err.message.includes(key), err.message);
      assert.ok(!JSON.stringify(err.details).includes(key));
      assert.match(err.message, /\[redacted\]/);
      server.script({ type: 'stream_error', text: 'x', message: `bad key ${key}` });
      const streamed = await failure(() => make().chat(chat({ onToken: () => {} })));
      assert.ok(!streamed.message.includes(key), streamed.message);
    });
  });
}

void describe('OpenAI-compatible specifics', () => {
  void test('sends Authorization, Idempotency-Key (equal across its own retries), stream usage and max_completion_tokens', async () => {
    server.script({ type: 'error', status: 503, message: 'busy' }, { type: 'error', status: 502, message: 'bad gateway' }, { type: 'text', text: 'ok' });
    const from = since();
    await openai({ maxTokensField: 'max_completion_tokens' }).chat(chat({ model: 'gpt-5-mini', maxTokens: 50, onToken: () => {}, idempotencyKey: 'run9:s:1' }));
    const seen = server.requests.slice(from);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.map((r) => r.headers['idempotency-key']), ['run9:s:1', 'run9:s:1', 'run9:s:1']);
    assert.equal(seen[0]!.headers['authorization'], `Bearer ${OPENAI_KEY}`);
    assert.equal(seen[0]!.body.max_completion_tokens, 50);
    assert.deepEqual(seen[0]!.body.stream_options, { include_usage: true });
    assert.deepEqual(seen[0]!.body.messages, [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hello' }]);
  });

  void test('a Retry-After beyond the cap is not slept through: retryable failure with retryAfterMs', async () => {
    server.rateLimit(1, '3600');
    const from = since();
    const err = await failure(() => openai().chat(chat()));
    assert.equal(err.retryable, true);
    assert.equal(err.details?.['retryAfterMs'], 3_600_000);
    assert.equal(server.requests.length - from, 1);
  });

  void test('tool choice and structured output reach the wire in OpenAI form', async () => {
    server.script({ type: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Rome' } }] });
    await openai().chat(chat({ tools: [WEATHER], toolChoice: { name: 'get_weather' } }));
    const body = server.requests.at(-1)?.body;
    assert.deepEqual(body.tool_choice, { type: 'function', function: { name: 'get_weather' } });
    assert.deepEqual(body.tools[0], { type: 'function', function: WEATHER });
    server.script({ type: 'json', value: { score: 3, feedback: 'x' } });
    await openai().chat(chat({ responseSchema: { schema: REVIEW_SCHEMA } }));
    assert.deepEqual(server.requests.at(-1)?.body.response_format, { type: 'json_schema', json_schema: { name: 'response', schema: REVIEW_SCHEMA, strict: true } });
  });

  void test('Azure: deployment base URL, api-key header and api-version', async () => {
    const azure = createOpenAICompatibleProvider({ name: 'azure', baseUrl: `${server.url}/openai/deployments/my-gpt`, apiKey: 'azure-secret-key', auth: 'api-key', apiVersion: '2024-10-21', defaultModel: 'my-gpt', http: FAST });
    server.script({ type: 'text', text: 'from azure' });
    assert.equal((await azure.chat(chat())).text, 'from azure');
    const seen = server.requests.at(-1)!;
    assert.equal(seen.path, '/openai/deployments/my-gpt/chat/completions');
    assert.equal(seen.query['api-version'], '2024-10-21');
    assert.equal(seen.headers['api-key'], 'azure-secret-key');
    assert.equal(seen.headers['authorization'], undefined);
  });

  void test('images: bytes, content type and sha256, inline or by URL; gpt-image models get no response_format', async () => {
    const expected = makePng([...createHash('sha256').update('a red fox').digest().subarray(0, 3)] as [number, number, number]);
    for (const format of ['b64_json', 'url'] as const) {
      const image = await openai({ imageResponseFormat: format }).image({ model: undefined, prompt: 'a red fox', size: '1024x1024', idempotencyKey: 'k', signal: AbortSignal.timeout(5000) });
      assert.equal(image.contentType, 'image/png');
      assert.deepEqual(Buffer.from(image.bytes!), expected);
      assert.equal(image.sha256, createHash('sha256').update(expected).digest('hex'));
      assert.equal(image.size, expected.length);
      assert.ok(format === 'url' ? image.url.startsWith(`${server.url}/files/`) : image.url.startsWith('data:image/png;base64,'));
    }
    const gpt = await openai().image({ model: 'gpt-image-1', prompt: 'a fox', size: '1024x1024', idempotencyKey: 'k', signal: AbortSignal.timeout(5000) });
    assert.equal(gpt.contentType, 'image/png');
    assert.equal(server.requests.at(-1)?.body.response_format, undefined);
    server.script({ type: 'image', bytes: Buffer.from('<html>not an image</html>') });
    const err = await failure(() => openai().image({ model: undefined, prompt: 'x', size: '256x256', idempotencyKey: 'k', signal: AbortSignal.timeout(5000) }));
    assert.match(err.message, /not a recognised image/);
  });

  void test('a model is required from the step or the provider', async () => {
    const err = await failure(() => openai({ defaultModel: undefined }).chat(chat()));
    assert.equal(err.code, 'WEFT_PROVIDER_MISSING');
  });
});

void describe('Anthropic specifics', () => {
  void test('headers, max_tokens default, tool_choice, and a non-object schema wrapped in a forced tool', async () => {
    server.script({ type: 'json', value: { value: ['a', 'b'] } });
    const res = await anthropic().chat(chat({ responseSchema: { name: 'tags', schema: { type: 'array', items: { type: 'string' } } } }));
    assert.deepEqual(res.json, ['a', 'b']);
    const seen = server.requests.at(-1)!;
    assert.equal(seen.headers['x-api-key'], ANTHROPIC_KEY);
    assert.equal(seen.headers['anthropic-version'], '2023-06-01');
    assert.equal(seen.body.max_tokens, 4096);
    assert.equal(seen.body.system, 'Be brief');
    assert.deepEqual(seen.body.tool_choice, { type: 'tool', name: 'tags' });
    server.script({ type: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Nice' } }] });
    await anthropic().chat(chat({ tools: [WEATHER], toolChoice: 'required' }));
    assert.deepEqual(server.requests.at(-1)?.body.tool_choice, { type: 'any' });
    assert.deepEqual(server.requests.at(-1)?.body.tools, [{ name: 'get_weather', description: 'Weather for a city', input_schema: WEATHER.parameters }]);
  });

  void test('image generation is refused clearly', async () => {
    const err = await failure(() => anthropic().image({ model: undefined, prompt: 'x', size: '1x1', idempotencyKey: 'k', signal: AbortSignal.timeout(1000) }));
    assert.equal(err.code, 'WEFT_PROVIDER_MISSING');
  });
});

void describe('SSRF guard on base URLs', () => {
  void test('loopback refused unless allowPrivateNetwork, by literal IP and by name', async () => {
    const from = since();
    for (const baseUrl of [server.openaiBaseUrl, server.openaiBaseUrl.replace('127.0.0.1', 'localhost')]) {
      const provider = createOpenAICompatibleProvider({ name: 'openai', baseUrl, apiKey: OPENAI_KEY, defaultModel: 'm', http: { ...FAST, allowPrivateNetwork: false } });
      const err = await failure(() => provider.chat(chat()));
      assert.equal(err.code, 'WEFT_HTTP_BLOCKED');
      assert.equal(err.retryable, false);
    }
    const claude = createAnthropicProvider({ name: 'anthropic', baseUrl: server.url, apiKey: ANTHROPIC_KEY, defaultModel: 'm', http: { ...FAST, allowPrivateNetwork: false } });
    assert.equal((await failure(() => claude.chat(chat()))).code, 'WEFT_HTTP_BLOCKED');
    assert.equal(server.requests.length, from, 'nothing reached the server');
  });

  void test('the metadata address is refused even with allowPrivateNetwork', async () => {
    const provider = createOpenAICompatibleProvider({ name: 'x', baseUrl: 'http://169.254.169.254/v1', apiKey: 'k', defaultModel: 'm', http: FAST });
    const err = await failure(() => provider.chat(chat()));
    assert.equal(err.code, 'WEFT_HTTP_BLOCKED');
    assert.match(err.message, /metadata/);
  });
});

void describe('registry', () => {
  after(() => configureProviders({ providers: [], allowPrivateNetwork: false, env: {} }));

  void test('built-ins need their keys; the error names the variable and never a key', async () => {
    configureProviders({ providers: [], allowPrivateNetwork: true, env: {} });
    assert.throws(() => resolveProvider('s', 'openai', undefined), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_PROVIDER_MISSING' && /OPENAI_API_KEY/.test(e.message));
    assert.throws(() => resolveProvider('s', 'anthropic', undefined), /ANTHROPIC_API_KEY/);
    assert.throws(() => resolveProvider('s', 'nope', undefined), /not configured on this server \(available: simulated\)/);
    assert.throws(() => resolveProvider('s', undefined, undefined), /provider: simulated/);
    assert.equal(resolveProvider('s', undefined, 'simulated'), simulatedProvider);
  });

  void test('keys and base URLs from the environment; named OpenAI-compatible providers without a key', async (t) => {
    const local = await startLlmServer(); // an Ollama-like server that takes no key
    t.after(() => local.close());
    const statuses = configureProviders({
      providers: [{ kind: 'openai-compatible', name: 'ollama', baseUrl: local.openaiBaseUrl, defaultModel: 'llama3.2' }],
      allowPrivateNetwork: true,
      env: { OPENAI_API_KEY: OPENAI_KEY, OPENAI_BASE_URL: server.openaiBaseUrl, ANTHROPIC_API_KEY: ANTHROPIC_KEY, ANTHROPIC_BASE_URL: server.url },
    });
    assert.deepEqual(statuses.map((s) => [s.name, s.available]), [['simulated', true], ['openai', true], ['anthropic', true], ['ollama', true]]);
    assert.ok(!JSON.stringify(listProviders()).includes(OPENAI_KEY));
    server.script({ type: 'text', text: 'via registry' }, { type: 'text', text: 'via claude' });
    assert.equal((await resolveProvider('s', 'openai', undefined).chat(chat())).text, 'via registry');
    assert.equal((await resolveProvider('s', undefined, 'anthropic').chat(chat())).text, 'via claude');
    const res = await resolveProvider('s', 'ollama', undefined).chat(chat({ maxTokens: 64 }));
    assert.equal(res.text, 'Echo: Hello');
    assert.equal(res.model, 'llama3.2');
    assert.equal(costOf('ollama', res.model, res.tokensIn, res.tokensOut).priced, false);
    assert.equal(local.requests[0]?.headers['authorization'], undefined);
    assert.equal(local.requests[0]?.body.max_tokens, 64);
  });

  void test('the network policy applies to configured providers', async () => {
    configureProviders({ providers: [{ kind: 'openai-compatible', name: 'ollama', baseUrl: server.openaiBaseUrl, defaultModel: 'llama3.2' }], allowPrivateNetwork: false, env: {} });
    const err = await failure(() => resolveProvider('s', 'ollama', undefined).chat(chat()));
    assert.equal(err.code, 'WEFT_HTTP_BLOCKED');
    assert.throws(() => configureProviders({ providers: [{ kind: 'anthropic', name: 'simulated' }], allowPrivateNetwork: false, env: {} }), /not allowed/);
    const bad = configureProviders({ providers: [{ kind: 'openai-compatible', name: 'broken', baseUrl: 'ftp://user:pw@host/' }], allowPrivateNetwork: false, env: {} });
    const status = bad.find((s) => s.name === 'broken');
    assert.equal(status?.available, false);
    assert.ok(!status?.reason?.includes('pw'));
  });
});

void describe('pricing, retry arithmetic, SSE parsing, simulated', () => {
  void test('costOf: known models (snapshot suffixes too) and unknown ones', () => {
    assert.deepEqual(costOf('openai', 'gpt-4o-mini-2024-07-18', 1_000_000, 1_000_000), { costUsd: 0.75, priced: true });
    assert.deepEqual(costOf('anthropic', 'claude-sonnet-4-5-20250929', 2000, 1000), { costUsd: 0.021, priced: true });
    assert.deepEqual(costOf('openai', 'my-finetune', 10, 10), { costUsd: 0, priced: false });
    assert.deepEqual(costOf('nobody', 'gpt-4o', 10, 10), { costUsd: 0, priced: false });
  });

  void test('Retry-After as seconds, milliseconds or an HTTP date; backoff grows with jitter', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter({ 'retry-after': '2' }, now), 2000);
    assert.equal(parseRetryAfter({ 'retry-after-ms': '250', 'retry-after': '2' }, now), 250);
    assert.equal(parseRetryAfter({ 'retry-after': 'Wed, 01 Jan 2025 00:00:03 GMT' }, now), 3000);
    assert.equal(parseRetryAfter({ 'retry-after': 'soon' }, now), undefined);
    assert.equal(backoffDelay(1, 500, 8000, () => 0), 250);
    assert.equal(backoffDelay(3, 500, 8000, () => 1), 2000);
    assert.equal(backoffDelay(10, 500, 8000, () => 1), 8000);
  });

  void test('the SSE parser gives the same events however the bytes are split', () => {
    const stream = '\ufeff: keep-alive\r\nevent: message_start\r\ndata: {"a":"ünï🚀"}\r\n\r\ndata: line one\ndata: line two\n\nid: 7\rdata:no-space\r\rdata: [DONE]';
    const bytes = Buffer.from(stream);
    const expected: SseEvent[] = [
      { event: 'message_start', data: '{"a":"ünï🚀"}', id: undefined },
      { event: undefined, data: 'line one\nline two', id: undefined },
      { event: undefined, data: 'no-space', id: '7' },
      { event: undefined, data: '[DONE]', id: '7' },
    ];
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (const size of [1, 3]) {
        const events: SseEvent[] = [];
        const parser = new SseParser((e) => events.push(e));
        parser.push(bytes.subarray(0, cut));
        for (let i = cut; i < bytes.length; i += size) parser.push(bytes.subarray(i, i + size));
        parser.end();
        assert.deepEqual(events, expected, `cut at ${cut}, then ${size}-byte pieces`);
      }
    }
  });

  void test('simulated keeps its output, streams it, and answers structured requests', async () => {
    const tokens: string[] = [];
    const plain = await simulatedProvider.chat(chat({ prompt: 'Outline a post on durable workflows' }));
    const streamed = await simulatedProvider.chat(chat({ prompt: 'Outline a post on durable workflows', onToken: (t) => tokens.push(t) }));
    assert.match(plain.text, /^\[simulated\] Response to: Outline a post on durable workflows/);
    assert.equal(streamed.text, plain.text);
    assert.equal(tokens.join(''), plain.text);
    const structured = await simulatedProvider.chat(chat({ responseSchema: { schema: { type: 'object', properties: { score: { type: 'integer', minimum: 0, maximum: 10 }, feedback: { type: 'string' } } } } }));
    const json = structured.json as { score: number; feedback: string };
    assert.ok(json.score >= 0 && json.score <= 10);
    assert.equal(json.feedback, '[simulated]');
    const image = await simulatedProvider.image({ model: undefined, prompt: 'x', size: '64x64', idempotencyKey: 'k', signal: AbortSignal.timeout(1000) });
    assert.equal(image.sha256, createHash('sha256').update(image.bytes!).digest('hex'));
  });
});
