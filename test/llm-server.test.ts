/**
 * The local LLM server checked with the official SDKs as clients: if an SDK rejects what the
 * server sends, the server is wrong. Every other provider test trusts this one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import OpenAI, { AzureOpenAI } from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startLlmServer, type LlmServer, type LlmServerOptions } from './helpers/llm-server.ts';

const OPENAI_KEY = 'sk-test-openai-0123456789';
const ANTHROPIC_KEY = 'sk-ant-test-0123456789';
const WEATHER_TOOL = {
  type: 'function' as const,
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};

/** Checks a PNG as a decoder would: signature, every chunk's CRC, and IDAT inflating to the pixel rows. */
function assertValidPng(bytes: Buffer): { width: number; height: number } {
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let offset = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  const types: string[] = [];
  while (offset < bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('ascii', offset + 4, offset + 8);
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const crc = bytes.readUInt32BE(offset + 8 + length);
    assert.equal(crc, crc32(bytes.subarray(offset + 4, offset + 8 + length)), `CRC of ${type}`);
    if (type === 'IHDR') [width, height] = [data.readUInt32BE(0), data.readUInt32BE(4)];
    if (type === 'IDAT') idat.push(data);
    types.push(type);
    offset += 12 + length;
  }
  assert.deepEqual(types, ['IHDR', 'IDAT', 'IEND']);
  assert.equal(inflateSync(Buffer.concat(idat)).length, height * (1 + width * 3));
  return { width, height };
}

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function withServer(options: LlmServerOptions, body: (get: () => LlmServer) => void): void {
  let server: LlmServer;
  before(async () => {
    server = await startLlmServer(options);
  });
  after(() => server.close());
  body(() => server);
}

const SERVER_OPTIONS: LlmServerOptions = { openaiKey: OPENAI_KEY, anthropicKey: ANTHROPIC_KEY, azureKey: 'azure-key-0123' };

for (const [label, extra] of [['whole events', {}], ['events sliced into 5-byte writes with CRLF', { sliceBytes: 5, eol: '\r\n' }]] as const) {
  void describe(`OpenAI SDK against the server (${label})`, () => {
    withServer({ ...SERVER_OPTIONS, ...extra }, (server) => {
      const client = (): OpenAI => new OpenAI({ baseURL: server().openaiBaseUrl, apiKey: OPENAI_KEY, maxRetries: 0 });

      void test('plain chat completion with usage', async () => {
        server().script({ type: 'text', text: 'Hello there', usage: { input: 12, output: 3 }, model: 'gpt-4o-mini-2024-07-18' });
        const res = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
        assert.equal(res.object, 'chat.completion');
        assert.equal(res.choices[0]?.message.content, 'Hello there');
        assert.equal(res.choices[0]?.finish_reason, 'stop');
        assert.deepEqual([res.usage?.prompt_tokens, res.usage?.completion_tokens, res.usage?.total_tokens], [12, 3, 15]);
        assert.equal(res.model, 'gpt-4o-mini-2024-07-18');
        const seen = server().requests.at(-1)!;
        assert.equal(seen.headers['authorization'], `Bearer ${OPENAI_KEY}`);
        assert.deepEqual(seen.body.messages, [{ role: 'user', content: 'Hi' }]);
      });

      void test('streaming with for await, usage chunk last', async () => {
        server().script({ type: 'text', text: 'One two three — naïve ünïcode 🚀 done.' });
        const stream = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Count' }], stream: true, stream_options: { include_usage: true } });
        let text = '';
        let chunks = 0;
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of stream) {
          chunks++;
          text += chunk.choices[0]?.delta.content ?? '';
          if (chunk.usage) usage = chunk.usage;
        }
        assert.equal(text, 'One two three — naïve ünïcode 🚀 done.');
        assert.ok(chunks > 5, `${chunks} chunks`);
        assert.ok(usage && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
      });

      void test('tool calls streamed and accumulated by the stream helper', async () => {
        server().script({ type: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }, { name: 'get_weather', arguments: { city: 'Tōkyō' } }] });
        const runner = client().chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Weather?' }], tools: [WEATHER_TOOL] });
        const fragments: string[] = [];
        runner.on('tool_calls.function.arguments.delta', (e) => fragments.push(e.arguments_delta));
        const final = await runner.finalChatCompletion();
        const calls = final.choices[0]?.message.tool_calls ?? [];
        assert.equal(final.choices[0]?.finish_reason, 'tool_calls');
        assert.equal(calls.length, 2);
        const args = calls.map((c) => (c.type === 'function' ? JSON.parse(c.function.arguments) : null));
        assert.deepEqual(args, [{ city: 'Paris' }, { city: 'Tōkyō' }]);
        assert.ok(fragments.length > 2, 'arguments arrive in fragments');
        assert.ok(calls.every((c) => c.id.startsWith('call_')));
      });

      void test('tool calls non-streamed, and a tool result accepted in the next turn', async () => {
        server().script({ type: 'tool_calls', calls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Oslo' } }] }, { type: 'text', text: 'Cold.' });
        const first = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Weather?' }], tools: [WEATHER_TOOL] });
        const message = first.choices[0]!.message;
        assert.equal(message.content, null);
        const second = await client().chat.completions.create({
          model: 'gpt-4o-mini',
          tools: [WEATHER_TOOL],
          messages: [{ role: 'user', content: 'Weather?' }, message, { role: 'tool', tool_call_id: 'call_1', content: '-3°C' }],
        });
        assert.equal(second.choices[0]?.message.content, 'Cold.');
        await assert.rejects(
          client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && /role 'tool'/.test(e.message),
        );
      });

      void test('json_schema structured output parses', async () => {
        const schema = { type: 'object', properties: { score: { type: 'integer' }, feedback: { type: 'string' } }, required: ['score', 'feedback'], additionalProperties: false };
        server().script({ type: 'json', value: { score: 8, feedback: 'Good' } });
        const res = await client().chat.completions.parse({
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'Judge' }],
          response_format: { type: 'json_schema', json_schema: { name: 'review', schema, strict: true } },
        });
        assert.deepEqual(res.choices[0]?.message.parsed, { score: 8, feedback: 'Good' });
        assert.deepEqual(server().requests.at(-1)?.body.response_format.json_schema.schema, schema);
      });

      void test('errors: API error bodies become the SDK error classes', async () => {
        server().script({ type: 'error', status: 400, message: "Invalid value for 'temperature'", param: 'temperature', code: 'invalid_value' });
        await assert.rejects(client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
          assert.ok(e instanceof OpenAI.BadRequestError);
          assert.equal(e.status, 400);
          assert.equal(e.code, 'invalid_value');
          assert.equal(e.param, 'temperature');
          assert.match(e.message, /Invalid value for 'temperature'/);
          assert.match(String(e.requestID), /^req_/);
          return true;
        });
        const wrong = new OpenAI({ baseURL: server().openaiBaseUrl, apiKey: 'sk-wrong-key-000000', maxRetries: 0 });
        await assert.rejects(wrong.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), OpenAI.AuthenticationError);
        await assert.rejects(
          client().chat.completions.create({ model: 'gpt-5-mini', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
          (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens',
        );
      });

      void test('a mid-stream error event fails the SDK stream', async () => {
        server().script({ type: 'stream_error', text: 'partial answer', message: 'The server had an error while processing your request.' });
        const stream = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true });
        let text = '';
        await assert.rejects(async () => {
          for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
        }, /server had an error/);
        assert.equal(text, 'partial answer');
      });
    });
  });
}

void describe('OpenAI SDK: images, retries, Azure', () => {
  withServer(SERVER_OPTIONS, (server) => {
    const client = (maxRetries = 0): OpenAI => new OpenAI({ baseURL: server().openaiBaseUrl, apiKey: OPENAI_KEY, maxRetries });

    void test('images.generate: b64_json and url give the same valid PNG', async () => {
      const b64 = await client().images.generate({ model: 'dall-e-3', prompt: 'a red fox', size: '1024x1024', response_format: 'b64_json' });
      const inline = Buffer.from(b64.data?.[0]?.b64_json ?? '', 'base64');
      assert.deepEqual(assertValidPng(inline), { width: 8, height: 8 });
      assert.equal(b64.data?.[0]?.revised_prompt, 'a red fox');
      const byUrl = await client().images.generate({ model: 'dall-e-3', prompt: 'a red fox', response_format: 'url' });
      const res = await fetch(byUrl.data?.[0]?.url ?? '');
      assert.equal(res.headers.get('content-type'), 'image/png');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), inline);
      const gptImage = await client().images.generate({ model: 'gpt-image-1', prompt: 'a fox' });
      assertValidPng(Buffer.from(gptImage.data?.[0]?.b64_json ?? '', 'base64'));
      assert.ok((gptImage.usage?.output_tokens ?? 0) > 0);
      await assert.rejects(client().images.generate({ model: 'gpt-image-1', prompt: 'a fox', response_format: 'url' }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'response_format');
    });

    void test("the SDK's own retry honours 429 Retry-After", async () => {
      server().rateLimit(1, '1');
      server().script({ type: 'text', text: 'after the wait' });
      const before = server().requests.length;
      const res = await client(2).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
      assert.equal(res.choices[0]?.message.content, 'after the wait');
      const [first, second] = server().requests.slice(before);
      assert.ok(first && second);
      assert.ok(second.at - first.at >= 1000 - 5, `waited ${(second.at - first.at).toFixed(0)} ms`);
      assert.equal(second.headers['x-stainless-retry-count'], '1');
    });

    void test('AzureOpenAI: deployment path, api-version and api-key', async () => {
      const azure = new AzureOpenAI({ endpoint: server().url, apiKey: 'azure-key-0123', apiVersion: '2024-10-21', deployment: 'my-gpt', maxRetries: 0 });
      server().script({ type: 'text', text: 'from azure' });
      const res = await azure.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] });
      assert.equal(res.choices[0]?.message.content, 'from azure');
      const seen = server().requests.at(-1)!;
      assert.equal(seen.path, '/openai/deployments/my-gpt/chat/completions');
      assert.equal(seen.query['api-version'], '2024-10-21');
      assert.equal(seen.headers['api-key'], 'azure-key-0123');
      const wrong = new AzureOpenAI({ endpoint: server().url, apiKey: 'nope', apiVersion: '2024-10-21', deployment: 'my-gpt', maxRetries: 0 });
      await assert.rejects(wrong.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'x' }] }), OpenAI.AuthenticationError);
    });
  });
});

for (const [label, extra] of [['whole events', {}], ['events sliced into 5-byte writes with CRLF', { sliceBytes: 5, eol: '\r\n' }]] as const) {
  void describe(`Anthropic SDK against the server (${label})`, () => {
    withServer({ ...SERVER_OPTIONS, ...extra }, (server) => {
      const client = (maxRetries = 0): Anthropic => new Anthropic({ baseURL: server().url, apiKey: ANTHROPIC_KEY, maxRetries });
      const base = { model: 'claude-sonnet-4-5', max_tokens: 256 };

      void test('messages.create: text, usage, headers', async () => {
        server().script({ type: 'text', text: 'Bonjour', usage: { input: 20, output: 2 }, model: 'claude-sonnet-4-5-20250929' });
        const msg = await client().messages.create({ ...base, system: 'Be brief', messages: [{ role: 'user', content: 'Hello' }] });
        assert.deepEqual(msg.content, [{ type: 'text', text: 'Bonjour' }]);
        assert.equal(msg.stop_reason, 'end_turn');
        assert.equal(msg.model, 'claude-sonnet-4-5-20250929');
        assert.deepEqual([msg.usage.input_tokens, msg.usage.output_tokens], [20, 2]);
        const seen = server().requests.at(-1)!;
        // This SDK version sends the key as a bearer token; the API (and the server) take either.
        assert.ok(seen.headers['x-api-key'] === ANTHROPIC_KEY || seen.headers['authorization'] === `Bearer ${ANTHROPIC_KEY}`);
        assert.match(String(seen.headers['anthropic-version']), /^\d{4}-\d{2}-\d{2}$/);
        assert.equal(seen.body.system, 'Be brief');
      });

      void test('stream: true gives the documented event sequence', async () => {
        server().script({ type: 'text', text: 'Streaming is fun 🚀', usage: { output: 7 } });
        const stream = await client().messages.create({ ...base, messages: [{ role: 'user', content: 'Go' }], stream: true });
        const types: string[] = [];
        let text = '';
        let outputTokens = 0;
        for await (const event of stream) {
          if (types.at(-1) !== event.type) types.push(event.type);
          if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
          if (event.type === 'message_delta') outputTokens = event.usage.output_tokens;
        }
        assert.equal(text, 'Streaming is fun 🚀');
        assert.equal(outputTokens, 7);
        assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
      });

      void test('.stream() helper: text events and finalMessage()', async () => {
        server().script({ type: 'text', text: 'The quick brown fox' });
        const stream = client().messages.stream({ ...base, messages: [{ role: 'user', content: 'Go' }] });
        const deltas: string[] = [];
        stream.on('text', (delta) => deltas.push(delta));
        const final = await stream.finalMessage();
        assert.equal(deltas.join(''), 'The quick brown fox');
        assert.ok(deltas.length > 1);
        assert.equal(final.content.length, 1);
        assert.ok(final.content[0]?.type === 'text' && final.content[0].text === 'The quick brown fox');
        assert.equal(final.stop_reason, 'end_turn');
      });

      void test('tool use: non-streamed and streamed (input_json_delta accumulated by the SDK)', async () => {
        const tools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }];
        server().script({ type: 'tool_calls', text: 'Let me check.', calls: [{ id: 'toolu_01A', name: 'get_weather', arguments: { city: 'Lyon' } }] });
        const msg = await client().messages.create({ ...base, tools, messages: [{ role: 'user', content: 'Weather?' }] });
        assert.equal(msg.stop_reason, 'tool_use');
        assert.deepEqual(msg.content[1], { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Lyon' } });

        server().script({ type: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Zürich', days: [1, 2, 3] } }] });
        const final = await client().messages.stream({ ...base, tools, messages: [{ role: 'user', content: 'Weather?' }] }).finalMessage();
        const block = final.content.find((b) => b.type === 'tool_use');
        assert.ok(block && block.type === 'tool_use');
        assert.deepEqual(block.input, { city: 'Zürich', days: [1, 2, 3] });
        assert.equal(final.stop_reason, 'tool_use');

        server().script({ type: 'text', text: 'Mild.' });
        const next = await client().messages.create({
          ...base,
          tools,
          messages: [
            { role: 'user', content: 'Weather?' },
            { role: 'assistant', content: msg.content },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01A', content: '14°C' }] },
          ],
        });
        assert.deepEqual(next.content, [{ type: 'text', text: 'Mild.' }]);
      });

      void test('errors map to the SDK classes; mid-stream error events fail the stream', async () => {
        server().script({ type: 'error', status: 400, message: 'max_tokens: must be positive' });
        await assert.rejects(client().messages.create({ ...base, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
          assert.ok(e instanceof Anthropic.BadRequestError);
          assert.match(e.message, /max_tokens: must be positive/);
          assert.equal((e.error as { error?: { type?: string } }).error?.type, 'invalid_request_error');
          return true;
        });
        const wrong = new Anthropic({ baseURL: server().url, apiKey: 'sk-ant-wrong', maxRetries: 0 });
        await assert.rejects(wrong.messages.create({ ...base, messages: [{ role: 'user', content: 'x' }] }), Anthropic.AuthenticationError);
        server().script({ type: 'stream_error', text: 'half', message: 'Overloaded' });
        await assert.rejects(client().messages.stream({ ...base, messages: [{ role: 'user', content: 'x' }] }).finalMessage(), /Overloaded/);
      });
    });
  });
}

void describe('Anthropic SDK retries', () => {
  withServer(SERVER_OPTIONS, (server) => {
    void test("the SDK's own retry honours 429 retry-after", async () => {
      server().rateLimit(1, '1');
      server().script({ type: 'text', text: 'ok' });
      const before = server().requests.length;
      const client = new Anthropic({ baseURL: server().url, apiKey: ANTHROPIC_KEY, maxRetries: 2 });
      const msg = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'x' }] });
      assert.deepEqual(msg.content, [{ type: 'text', text: 'ok' }]);
      const [first, second] = server().requests.slice(before);
      assert.ok(first && second);
      assert.ok(second.at - first.at >= 1000 - 5, `waited ${(second.at - first.at).toFixed(0)} ms`);
    });

    void test('anthropic-version is required', async () => {
      const res = await fetch(`${server().url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': ANTHROPIC_KEY, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { type: string; error: { type: string } };
      assert.deepEqual([body.type, body.error.type], ['error', 'invalid_request_error']);
    });
  });
});
