/**
 * The AI-step executors called directly with a StepContext (budget refusals, profile tool
 * choice, images without bytes), and the compiler's treatment of agent tools (`$args`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDefinition, compileDefinition } from '../src/core/compiler.ts';
import { WeftError } from '../src/core/errors.ts';
import { registerProvider } from '../src/providers/registry.ts';
import { simulatedProvider } from '../src/providers/simulated.ts';
import { agentStep } from '../src/steps/agent.ts';
import { imageStep } from '../src/steps/image.ts';
import type { AgentProfile } from '../src/steps/types.ts';
import { startLlmServer, type LlmServer } from './helpers/llm-server.ts';
import { OPENAI_KEY, configureLlmProviders, resetProviders, stepContext } from './helpers/ai-steps.ts';

let server: LlmServer;
before(async () => {
  server = await startLlmServer({ openaiKey: OPENAI_KEY });
  configureLlmProviders(server);
});
after(async () => {
  resetProviders();
  await server.close();
});

const ECHO_TOOL = { type: 'transform', parameters: { type: 'object', properties: { x: { type: 'number' } } }, expr: '$args' };

async function rejection(promise: Promise<unknown>): Promise<WeftError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WeftError, `a WeftError, not ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

void describe('budget', () => {
  void test('a call whose estimate would pass the run budget is refused before it is sent', async () => {
    const before = server.requests.length;
    const error = await rejection(agentStep(stepContext({ type: 'agent', provider: 'openai', prompt: 'Write a long essay' }, { budget: { limitUsd: 0.0001, spentUsd: 0 } })));
    assert.equal(error.code, 'WEFT_BUDGET_EXCEEDED');
    assert.match(error.message, /openai\/gpt-4\.1-mini/);
    assert.equal(server.requests.length, before, 'nothing was sent');
  });

  void test('what the step already spent counts: the call after an expensive tool round is refused', async () => {
    server.script({ type: 'tool_calls', calls: [{ name: 'echo', arguments: { x: 1 } }], usage: { input: 20_000, output: 1000 } });
    const before = server.requests.length;
    // 20k in + 1k out at gpt-4.1-mini = $0.0096; the next call's estimate (1024 tokens out) passes $0.01.
    const ctx = stepContext({ type: 'agent', provider: 'openai', prompt: 'p', tools: { echo: ECHO_TOOL } }, { budget: { limitUsd: 0.01, spentUsd: 0 } });
    const error = await rejection(agentStep(ctx));
    assert.equal(error.code, 'WEFT_BUDGET_EXCEEDED');
    assert.equal(server.requests.length - before, 1);
    assert.ok((error.details?.['spent_usd'] as number) >= 0.0096);
  });

  void test('within budget, the step runs', async () => {
    server.script({ type: 'text', text: 'ok', usage: { input: 10, output: 2 } });
    const result = await agentStep(stepContext({ type: 'agent', provider: 'openai', prompt: 'p', max_tokens: 50 }, { budget: { limitUsd: 1, spentUsd: 0.5 } }));
    assert.equal((result.output as { text: string }).text, 'ok');
    assert.ok(result.usage!.costUsd > 0);
  });
});

void describe('agent profiles at the executor', () => {
  const profile = (extra: Partial<AgentProfile>): AgentProfile => ({ name: 'helper', version: 3, system: 'You help.', tools: [], ...extra });

  void test("a profile's tools choose which of the step's tools are offered; one the step lacks is an error", async () => {
    const tools = { echo: ECHO_TOOL, other: ECHO_TOOL, third: ECHO_TOOL };
    server.script({ type: 'text', text: 'done' });
    await agentStep(stepContext({ type: 'agent', provider: 'openai', agent: 'helper', prompt: 'p', tools }, { agents: async () => profile({ tools: ['other', 'echo'] }) }));
    assert.deepEqual(server.requests.at(-1)!.body.tools.map((t: { function: { name: string } }) => t.function.name), ['echo', 'other']);
    const error = await rejection(agentStep(stepContext({ type: 'agent', provider: 'openai', agent: 'helper', prompt: 'p', tools }, { agents: async () => profile({ tools: ['missing'] }) })));
    assert.match(error.message, /agent 'helper' uses tool 'missing', which the step does not define/);
  });

  void test("the profile's output schema applies when the step has none (simulated answers it, labelled)", async () => {
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 1, maximum: 3 } }, required: ['n'], additionalProperties: false };
    const result = await agentStep(stepContext({ type: 'agent', agent: 'helper', prompt: 'p' }, { agents: async () => profile({ provider: 'simulated', outputSchema: schema }) }));
    const out = result.output as { json: { n: number }; simulated: boolean; agent: unknown; priced: boolean };
    assert.ok(out.json.n >= 1 && out.json.n <= 3);
    assert.deepEqual([out.simulated, out.agent, out.priced], [true, { name: 'helper', version: 3 }, false]);
  });
});

void describe('image without bytes', () => {
  void test('keeps the provider URL and says it is not stored', async () => {
    registerProvider({
      name: 'links-only', simulated: false,
      chat: simulatedProvider.chat,
      image: async (r) => ({ url: 'https://images.example/abc.png', contentType: 'image/png', model: r.model ?? 'm', sha256: '', size: 0 }),
    });
    const result = await imageStep(stepContext({ type: 'image', provider: 'links-only', prompt: 'x' }));
    assert.equal(result.files, undefined);
    assert.deepEqual(result.output, { url: 'https://images.example/abc.png', content_type: 'image/png', stored: false, prompt: 'x', model: 'm', provider: 'links-only', tokens_in: 0, tokens_out: 0, cost_usd: 0, priced: false, simulated: false });
  });
});

void describe('compiler: agent tools', () => {
  const tool = (extra: Record<string, unknown>) => ({ type: 'http', parameters: { type: 'object' }, url: 'https://api.example/x', ...extra });
  const wf = (agent: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
    name: 'tools', steps: { src: { type: 'transform', expr: '1' }, other: { type: 'transform', expr: '2' }, a: { type: 'agent', prompt: 'p', needs: ['src'], ...agent }, ...more },
  });

  void test('$args is accepted inside tool definitions, and the tools\' other references are checked and recorded', () => {
    const compiled = compileDefinition(wf({
      tools: {
        get: tool({ url: 'https://api.example/{{ $args.id }}', headers: { x: '{{ $src }}' }, query: { q: '{{ $args.q }}' }, body: { n: '{{ $args.n }}' } }),
        calc: { type: 'transform', parameters: { type: 'object' }, expr: '$args.n + $src' },
      },
    }));
    assert.deepEqual(compiled.steps['a']!.refs, ['src']);
  });

  void test('$args elsewhere, a non-ancestor read in a tool, a broken tool and a dangerous schema are reported', () => {
    const codes = (definition: unknown) => checkDefinition(definition).filter((p) => p.severity !== 'warning').map((p) => `${p.code} ${p.path}`);
    assert.deepEqual(codes(wf({ prompt: 'Use {{ $args.x }}' })), ['WEFT_UNKNOWN_REFERENCE /steps/a/prompt']);
    assert.deepEqual(codes(wf({ tools: { t: { type: 'transform', parameters: {}, expr: '$other' } } })), ['WEFT_NOT_ANCESTOR /steps/a/tools/t/expr']);
    assert.deepEqual(codes(wf({ tools: { t: tool({ url: '{{ $args.x }}' }) } }, { b: { type: 'transform', needs: ['a'], expr: '$args' } })), ['WEFT_UNKNOWN_REFERENCE /steps/b/expr']);
    assert.deepEqual(codes(wf({ tools: { t: { type: 'http', parameters: {} } } })), ['WEFT_SCHEMA /steps/a/tools/t/url'], 'the tool is read as the http kind its type names');
    assert.deepEqual(codes(wf({ tools: { 'bad name!': tool({}) } })), ['WEFT_SCHEMA /steps/a/tools/bad name!']);
    const risky = checkDefinition(wf({ output_schema: { type: 'string', pattern: '^(a+)+$' } })).filter((p) => p.severity !== 'warning');
    assert.deepEqual(risky.map((p) => p.path), ['/steps/a/output_schema/pattern']);
    assert.match(risky[0]!.message, /catastrophic backtracking/);
    assert.deepEqual(codes(wf({ output_schema: { type: 'array', items: { type: 'string' } } })), [], 'an output schema may describe any value');
    assert.deepEqual(codes(wf({ tools: { t: tool({ parameters: { type: 'string' } }) } })).map((c) => c.split(' ')[0]), ['WEFT_SCHEMA'], 'tool arguments are an object');
  });
});
