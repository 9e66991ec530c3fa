/**
 * The agent, review and image steps end to end on both databases, against the protocol-faithful
 * local LLM server configured as the real `openai` and `anthropic` providers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { costOf } from '../src/providers/pricing.ts';
import { simulateReviewScore } from '../src/providers/simulated.ts';
import { createAgent, updateAgent, type AgentConfig } from '../src/store/agents.ts';
import { listStepDetails } from '../src/store/run-queries.ts';
import { getRunFile } from '../src/store/run-files.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { testEngine } from './helpers/engine.ts';
import { makePng, startLlmServer, type LlmServer } from './helpers/llm-server.ts';
import {
  OPENAI_KEY, assertNoSecrets, configureLlmProviders, outputOf, resetProviders, runToEnd, startToolTarget, streamedText,
} from './helpers/ai-steps.ts';
import { createHash } from 'node:crypto';

let server: LlmServer;
before(async () => {
  server = await startLlmServer({ openaiKey: OPENAI_KEY, anthropicKey: 'sk-ant-weft-ANTHROPIC-SECRET-77d0a3' });
  configureLlmProviders(server);
});
after(async () => {
  resetProviders();
  await server.close();
  await closeTemplates();
});

const since = (): number => server.requests.length;
const LONG_TEXT = 'Durable workflows keep their promises: every step is recorded, retried with care, and resumed after a crash without repeating what already happened.';

const TITLE_SCHEMA = {
  type: 'object',
  properties: { title: { type: 'string', minLength: 3 }, tags: { type: 'array', items: { type: 'string' } } },
  required: ['title', 'tags'],
  additionalProperties: false,
};

const agentConfig = (system: string, extra: Partial<AgentConfig> = {}): AgentConfig => ({
  description: 'test agent', system, provider: 'openai', model: 'gpt-4.1-mini', temperature: 0.3, top_p: 0.9, max_tokens: 300,
  tools: [], output_schema: null, ...extra,
});

for (const backend of BACKENDS) {
  void describe(`AI steps on ${backend}`, () => {
    for (const provider of ['openai', 'anthropic'] as const) {
      void test(`${provider}: an agent step streams into step_output_delta events whose concatenation is the final text`, async (t) => {
        const ctx = await testEngine(backend, t);
        if (!ctx) return;
        server.script({ type: 'text', text: LONG_TEXT, chunkDelayMs: 25, usage: { input: 1200, output: 400 } });
        const { runId, status } = await runToEnd(ctx.engine, { name: 'stream', steps: { write: { type: 'agent', provider, prompt: 'Explain {{ $input.topic }}' } } }, { topic: 'durability' });
        assert.equal(status, 'succeeded');
        const out = await outputOf(ctx.db, runId, 'write');
        assert.equal(out.text, LONG_TEXT);
        const streamed = streamedText(await ctx.engine.listEvents(runId), 'write');
        assert.equal(streamed.text, LONG_TEXT);
        assert.ok(streamed.deltas >= 2, `partial output arrives in pieces (${streamed.deltas} deltas)`);
        const request = server.requests.at(-1)!;
        assert.equal(request.body.stream, true);
        // Cost from the price table, on the step and on the run.
        const model = provider === 'openai' ? 'gpt-4.1-mini' : 'claude-sonnet-4-5';
        const expected = costOf(provider, model, 1200, 400).costUsd;
        assert.ok(expected > 0);
        assert.deepEqual([out.cost_usd, out.priced, out.tokens_in, out.tokens_out, out.model], [expected, true, 1200, 400, model]);
        const [step] = await listStepDetails(ctx.db, runId);
        assert.equal(step!.cost_usd, expected);
        const run = (await ctx.engine.getRun(runId))!;
        assert.deepEqual([run.cost_usd, run.tokens_in, run.tokens_out, run.simulated], [expected, 1200, 400, false]);
        await assertNoSecrets(ctx.db, runId);
      });

      void test(`${provider}: tools (transform and http) run, their results go back to the model, invalid arguments come back as tool errors`, async (t) => {
        const ctx = await testEngine(backend, t);
        if (!ctx) return;
        const target = await startToolTarget();
        t.after(() => target.close());
        server.script(
          { type: 'tool_calls', calls: [{ name: 'lookup', arguments: { city: 'Paris' } }, { name: 'forecast', arguments: { city: 'Paris' } }], usage: { input: 100, output: 20 } },
          { type: 'tool_calls', calls: [{ name: 'lookup', arguments: { town: 'Lyon' } }], usage: { input: 200, output: 10 } },
          { type: 'text', text: 'Paris: 21 °C and sunny.', usage: { input: 300, output: 8 } },
        );
        const first = since();
        const { runId, status } = await runToEnd(ctx.engine, {
          name: 'tools',
          steps: {
            temps: { type: 'transform', expr: '{"Paris": 21, "Lyon": 19}' },
            ask: {
              type: 'agent', provider, needs: ['temps'], prompt: 'Weather in Paris?',
              tools: {
                lookup: {
                  type: 'transform', description: 'Temperature of a city',
                  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
                  expr: '{"city": $args.city, "celsius": $lookup($temps, $args.city)}',
                },
                forecast: {
                  type: 'http', description: 'Forecast of a city',
                  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
                  url: '{{ $input.base }}/forecast', query: { city: '{{ $args.city }}' }, headers: { 'x-asked-by': '{{ $input.who }}' },
                },
              },
            },
          },
        }, { base: target.url, who: 'weft-test' });
        assert.equal(status, 'succeeded');
        const out = await outputOf(ctx.db, runId, 'ask');
        assert.equal(out.text, 'Paris: 21 °C and sunny.');
        assert.deepEqual(out.tool_calls, [
          { name: 'lookup', arguments: { city: 'Paris' }, ok: true },
          { name: 'forecast', arguments: { city: 'Paris' }, ok: true },
          { name: 'lookup', arguments: { town: 'Lyon' }, ok: false },
        ]);
        assert.equal(out.tool_rounds, 2);
        assert.deepEqual([out.tokens_in, out.tokens_out], [600, 38]);
        const model = provider === 'openai' ? 'gpt-4.1-mini' : 'claude-sonnet-4-5';
        const summed = [[100, 20], [200, 10], [300, 8]].reduce((sum, [i, o]) => sum + costOf(provider, model, i!, o!).costUsd, 0);
        assert.ok(Math.abs(out.cost_usd - summed) < 1e-9, 'cost summed over every call of the step');
        // The http tool went through the http executor, with the step's key and a tool suffix.
        assert.equal(target.seen.length, 1);
        assert.equal(target.seen[0]!.path, '/forecast?city=Paris');
        assert.equal(target.seen[0]!.headers['x-asked-by'], 'weft-test');
        assert.equal(target.seen[0]!.headers['idempotency-key'], `${runId}:ask:tool:2`);
        // The results reached the model in the next turns.
        const [, second, third] = server.requests.slice(first);
        const wire = JSON.stringify(second!.body.messages);
        assert.match(wire, /\\"celsius\\":21/);
        assert.match(wire, /\\"forecast\\":\\"sunny\\"/);
        const last = JSON.stringify(third!.body.messages);
        assert.match(last, /invalid arguments for 'lookup'/);
        if (provider === 'anthropic') assert.match(last, /"is_error":true/);
        assert.equal(second!.body.tools.length, 2);
        await assertNoSecrets(ctx.db, runId);
      });
    }

    void test('max_tool_rounds: a model that keeps asking for tools fails the step clearly', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const call = { type: 'tool_calls' as const, calls: [{ name: 'echo', arguments: { x: 1 } }] };
      server.script(call, call);
      const { runId, status } = await runToEnd(ctx.engine, {
        name: 'rounds',
        steps: { a: { type: 'agent', provider: 'openai', prompt: 'loop', max_tool_rounds: 1, tools: { echo: { type: 'transform', parameters: { type: 'object' }, expr: '$args' } } } },
      });
      assert.equal(status, 'failed');
      const step = (await ctx.engine.getRun(runId))!.steps[0]!;
      assert.equal(step.error?.code, 'WEFT_STEP_FAILED');
      assert.match(step.error!.message, /still asked for tools after 1 round/);
    });

    void test('structured output: valid at once; repaired once (broken JSON, then a schema mismatch); invalid after the repair fails', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const definition = { name: 'structured', steps: { a: { type: 'agent', provider: 'openai', prompt: 'Title for {{ $input.topic }}', output_schema: TITLE_SCHEMA } } };

      server.script({ type: 'json', value: { title: 'Durable', tags: ['x'] } });
      let first = since();
      let run = await runToEnd(ctx.engine, definition, { topic: 'a' });
      assert.equal(run.status, 'succeeded');
      let out = await outputOf(ctx.db, run.runId, 'a');
      assert.deepEqual([out.json, out.repaired], [{ title: 'Durable', tags: ['x'] }, false]);
      assert.equal(since() - first, 1);
      assert.deepEqual(server.requests.at(-1)!.body.response_format, { type: 'json_schema', json_schema: { name: 'response', schema: TITLE_SCHEMA, strict: true } });

      for (const broken of [{ type: 'text' as const, text: 'Sure! {"title": ' }, { type: 'json' as const, value: { title: 'ok', tags: 'none' } }]) {
        server.script(broken, { type: 'json', value: { title: 'Fixed', tags: [] } });
        first = since();
        run = await runToEnd(ctx.engine, definition, { topic: 'b' });
        assert.equal(run.status, 'succeeded');
        out = await outputOf(ctx.db, run.runId, 'a');
        assert.deepEqual([out.json, out.repaired], [{ title: 'Fixed', tags: [] }, true]);
        assert.equal(since() - first, 2);
        const repair = server.requests.at(-1)!.body.messages as { role: string; content: string }[];
        assert.deepEqual(repair.map((m) => m.role), ['user', 'assistant', 'user']);
        assert.equal(repair[1]!.content, broken.type === 'text' ? broken.text : JSON.stringify(broken.value), 'the model sees its answer');
        assert.match(repair[2]!.content, broken.type === 'text' ? /not valid JSON/ : /\/tags: .*type/i);
      }

      server.script({ type: 'json', value: { title: 'no', tags: [] } }, { type: 'json', value: { title: 'no' } });
      first = since();
      run = await runToEnd(ctx.engine, definition, { topic: 'c' });
      assert.equal(run.status, 'failed');
      assert.equal(since() - first, 2, 'exactly one repair attempt');
      const step = (await ctx.engine.getRun(run.runId))!.steps[0]!;
      assert.equal(step.error?.code, 'WEFT_OUTPUT_INVALID');
      assert.equal(step.error?.retryable, false);
      assert.equal(step.attempt, 1);
      assert.match(step.error!.message, /after one repair attempt: .*required property "tags"/);
    });

    void test('a stored agent profile supplies provider, model, sampling and system; an update is used by the next run', async (t) => {
      let offset = 0;
      const ctx = await testEngine(backend, t, { clock: { now: () => Date.now() + offset } });
      if (!ctx) return;
      await ctx.db.transaction((tx) => createAgent(tx, 'writer', agentConfig('You are Writer, version one.'), null));
      const definition = { name: 'profiled', steps: { a: { type: 'agent', agent: 'writer', prompt: 'Go', stream: false } } };
      server.script({ type: 'text', text: 'v1' });
      let run = await runToEnd(ctx.engine, definition);
      assert.equal(run.status, 'succeeded');
      let body = server.requests.at(-1)!.body;
      assert.deepEqual(
        [body.model, body.messages[0], body.temperature, body.top_p, body.max_completion_tokens, body.stream],
        ['gpt-4.1-mini', { role: 'system', content: 'You are Writer, version one.' }, 0.3, 0.9, 300, undefined],
      );
      assert.deepEqual((await outputOf(ctx.db, run.runId, 'a')).agent, { name: 'writer', version: 1 });
      assert.equal(streamedText(await ctx.engine.listEvents(run.runId), 'a').deltas, 0, 'stream: false streams nothing');

      await ctx.db.transaction((tx) => updateAgent(tx, 'writer', agentConfig('You are Writer, version two.', { temperature: 0.5 }), null));
      offset += 60_000; // past the worker's agent cache
      server.script({ type: 'text', text: 'v2' });
      const overriding = { name: 'profiled', steps: { a: { type: 'agent', agent: 'writer', prompt: 'Go', temperature: 0.1, system: 'Step system', stream: false } } };
      run = await runToEnd(ctx.engine, overriding);
      assert.equal(run.status, 'succeeded');
      body = server.requests.at(-1)!.body;
      assert.deepEqual([body.messages[0].content, body.temperature], ['Step system', 0.1], 'step fields win over the profile');
      assert.deepEqual((await outputOf(ctx.db, run.runId, 'a')).agent, { name: 'writer', version: 2 });
      run = await runToEnd(ctx.engine, definition);
      assert.equal(server.requests.at(-1)!.body.messages[0].content, 'You are Writer, version two.');

      run = await runToEnd(ctx.engine, { name: 'unknown agent', steps: { a: { type: 'agent', agent: 'nobody', prompt: 'x', provider: 'simulated' } } });
      assert.equal(run.status, 'failed');
      const step = (await ctx.engine.getRun(run.runId))!.steps[0]!;
      assert.equal(step.error?.code, 'WEFT_NOT_FOUND');
      assert.match(step.error!.message, /agent 'nobody'/);
      assert.equal(step.error?.retryable, false);
    });

    void test('review: scored from the model\'s JSON, passed against the threshold; an agent supplies system and provider; simulated stays labelled', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      await ctx.db.transaction((tx) => createAgent(tx, 'critic', agentConfig('You are a harsh critic.', { provider: 'anthropic', model: 'claude-haiku-4-5' }), null));
      server.script(
        { type: 'json', value: { score: 8, feedback: 'Clear and useful.', suggestions: ['Add a diagram'] }, usage: { input: 500, output: 60 } },
        { type: 'json', value: { score: 8, feedback: 'Clear and useful.', suggestions: [] } },
      );
      const first = since();
      const { runId, status } = await runToEnd(ctx.engine, {
        name: 'review',
        steps: {
          draft: { type: 'transform', expr: '"A draft about durable workflows."' },
          lenient: { type: 'review', provider: 'openai', needs: ['draft'], criteria: 'clarity', with: { text: '$draft' } },
          strict: { type: 'review', agent: 'critic', needs: ['draft'], threshold: 9, with: { text: '$draft' } },
          offline: { type: 'review', provider: 'simulated', needs: ['draft'], with: { text: '$draft' } },
        },
      });
      assert.equal(status, 'succeeded');
      const lenient = await outputOf(ctx.db, runId, 'lenient');
      assert.deepEqual(
        [lenient.score, lenient.passed, lenient.threshold, lenient.feedback, lenient.suggestions, lenient.simulated],
        [8, true, 7, 'Clear and useful.', ['Add a diagram'], false],
      );
      assert.equal(lenient.cost_usd, costOf('openai', 'gpt-4.1-mini', 500, 60).costUsd);
      const strict = await outputOf(ctx.db, runId, 'strict');
      assert.deepEqual([strict.score, strict.passed, strict.threshold, strict.provider, strict.model], [8, false, 9, 'anthropic', 'claude-haiku-4-5']);
      const requests = server.requests.slice(first);
      const toOpenAi = requests.find((r) => r.api === 'openai-chat')!;
      assert.equal(toOpenAi.body.response_format.json_schema.strict, true);
      assert.match(JSON.stringify(toOpenAi.body.messages), /Criteria: clarity/);
      const toAnthropic = requests.find((r) => r.api === 'anthropic-messages')!;
      assert.match(toAnthropic.body.system, /^You are a harsh critic\./);
      const offline = await outputOf(ctx.db, runId, 'offline');
      const score = simulateReviewScore('A draft about durable workflows.');
      assert.deepEqual([offline.score, offline.passed, offline.simulated], [score, score >= 7, true]);
      assert.match(offline.feedback, /^\[simulated\]/);
    });

    void test('image: the bytes are stored with the run and the output points at the file', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const png = makePng([10, 200, 30], 16);
      server.script({ type: 'image', bytes: png });
      const { runId, status } = await runToEnd(ctx.engine, { name: 'img', steps: { hero: { type: 'image', provider: 'openai', prompt: 'A green square', size: '1024x1024' } } });
      assert.equal(status, 'succeeded');
      const out = await outputOf(ctx.db, runId, 'hero');
      const sha256 = createHash('sha256').update(png).digest('hex');
      assert.deepEqual(
        [out.url, out.sha256, out.content_type, out.size, out.name, out.stored, out.prompt, out.model, out.provider, out.simulated],
        [`/api/runs/${runId}/files/${sha256}`, sha256, 'image/png', png.length, 'hero.png', true, 'A green square', 'gpt-image-1', 'openai', false],
      );
      const file = await getRunFile(ctx.db, runId, sha256);
      assert.ok(file);
      assert.deepEqual(Buffer.from(file.bytes), png);
      assert.deepEqual([file.contentType, file.stepId, file.name], ['image/png', 'hero', 'hero.png']);
      await assertNoSecrets(ctx.db, runId);
    });

    void test('a 429 with Retry-After is retried by the provider inside the step; a hanging model times the step out', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      server.rateLimit(1, '1');
      server.script({ type: 'text', text: 'after the wait' });
      const first = since();
      let run = await runToEnd(ctx.engine, { name: 'limited', steps: { a: { type: 'agent', provider: 'openai', prompt: 'hi' } } });
      assert.equal(run.status, 'succeeded');
      const [limited, retried] = server.requests.slice(first);
      assert.ok(retried!.at - limited!.at >= 900, `waited ${Math.round(retried!.at - limited!.at)} ms as asked`);
      const step = (await ctx.engine.getRun(run.runId))!.steps[0]!;
      assert.equal(step.attempt, 1, 'one step attempt: the provider retried');
      assert.equal((await outputOf(ctx.db, run.runId, 'a')).text, 'after the wait');

      server.script({ type: 'hang' });
      const started = Date.now();
      run = await runToEnd(ctx.engine, { name: 'hangs', steps: { a: { type: 'agent', provider: 'anthropic', prompt: 'hi', timeout_ms: 400, retry: { max: 0 } } } });
      assert.equal(run.status, 'failed');
      assert.ok(Date.now() - started < 5000);
      const timedOut = (await ctx.engine.getRun(run.runId))!.steps[0]!;
      assert.equal(timedOut.error?.code, 'WEFT_STEP_TIMEOUT');
    });

    void test('API keys never reach events, outputs or errors, even when the API echoes one', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      server.script(
        { type: 'text', text: 'fine' },
        { type: 'error', status: 400, message: `Invalid request from key ${OPENAI_KEY} (Bearer ${OPENAI_KEY})` },
      );
      const { runId, status } = await runToEnd(ctx.engine, {
        name: 'secrets',
        steps: {
          ok: { type: 'agent', provider: 'openai', prompt: 'hi' },
          bad: { type: 'agent', provider: 'openai', needs: ['ok'], prompt: 'again', retry: { max: 0 } },
        },
      });
      assert.equal(status, 'failed');
      const run = (await ctx.engine.getRun(runId))!;
      const bad = run.steps.find((s) => s.step_id === 'bad')!;
      assert.match(bad.error!.message, /Invalid request from key \[redacted\]/, 'the error is kept, the key is not');
      assert.ok(server.requests.slice(-2).every((r) => r.headers['authorization'] === `Bearer ${OPENAI_KEY}`), 'the key was sent');
      await assertNoSecrets(ctx.db, runId);
    });
  });
}
