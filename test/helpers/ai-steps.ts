/**
 * Shared setup for the AI-step tests: the local LLM server configured as the `openai` and
 * `anthropic` providers (so the default price table applies), with recognisable API keys that
 * must never show up in anything a run stores.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compileDefinition } from '../../src/core/compiler.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { configureProviders } from '../../src/providers/registry.ts';
import type { StepContext } from '../../src/steps/types.ts';
import type { Db } from '../../src/store/db.ts';
import type { RunEvent } from '../../src/store/events.ts';
import type { LlmServer } from './llm-server.ts';

export const OPENAI_KEY = 'sk-weft-OPENAI-SECRET-5b2f81c4e9';
export const ANTHROPIC_KEY = 'sk-ant-weft-ANTHROPIC-SECRET-77d0a3';
export const SECRETS = [OPENAI_KEY, ANTHROPIC_KEY];

/** Registers the server as `openai` (default model gpt-4.1-mini) and `anthropic` (claude-sonnet-4-5). */
export function configureLlmProviders(server: LlmServer): void {
  const http = { retryBaseMs: 10, retryMaxMs: 40 };
  configureProviders({
    providers: [
      {
        kind: 'openai-compatible', name: 'openai', baseUrl: server.openaiBaseUrl, apiKey: OPENAI_KEY,
        defaultModel: 'gpt-4.1-mini', defaultImageModel: 'gpt-image-1', maxTokensField: 'max_completion_tokens', http,
      },
      { kind: 'anthropic', name: 'anthropic', baseUrl: server.url, apiKey: ANTHROPIC_KEY, defaultModel: 'claude-sonnet-4-5', http },
    ],
    allowPrivateNetwork: true,
    env: {},
  });
}

export function resetProviders(): void {
  configureProviders({ providers: [], allowPrivateNetwork: false, env: {} });
}

/** Registers a definition, starts a run and waits for it to end; returns the run id and status. */
export async function runToEnd(engine: Engine, definition: unknown, inputs: unknown = {}, options: { budgetUsd?: number } = {}): Promise<{ runId: string; status: string }> {
  const v = await engine.registerWorkflow(definition);
  const runId = await engine.startRun({ versionId: v.versionId, inputs, ...options });
  return { runId, status: await engine.waitForRun(runId, 15_000) };
}

/** The latest output of a step. */
export async function outputOf(db: Db, runId: string, stepId: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { rows } = await db.query<{ content: unknown }>('SELECT content FROM artifacts WHERE run_id = $1 AND step_id = $2 AND is_latest', [runId, stepId]);
  assert.equal(rows.length, 1, `one latest output of ${stepId}`);
  return rows[0]!.content;
}

/** The text a step streamed: its step_output_delta events in order. */
export function streamedText(events: RunEvent[], stepId: string): { text: string; deltas: number } {
  const deltas = events.filter((e) => e.type === 'step_output_delta' && e.stepId === stepId);
  const seqs = deltas.map((e) => e.data['seq']);
  assert.deepEqual(seqs, deltas.map((_, i) => i), 'deltas are numbered in order');
  return { text: deltas.map((e) => e.data['text'] as string).join(''), deltas: deltas.length };
}

/** Fails when any API key appears in anything the database holds about the run. */
export async function assertNoSecrets(db: Db, runId: string): Promise<void> {
  const tables = ['runs', 'step_runs', 'run_events', 'artifacts'];
  for (const table of tables) {
    const key = table === 'runs' ? 'id' : 'run_id';
    const { rows } = await db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${table} t WHERE ${key} = $1`, [runId]);
    assert.ok(rows.length > 0, `${table} has rows for the run`);
    for (const { row } of rows) for (const secret of SECRETS) assert.ok(!row.includes(secret), `${table} holds an API key: ${row.slice(0, 200)}`);
  }
}

/** A loopback HTTP target for http tools: answers JSON and records what it got. */
export async function startToolTarget(): Promise<{ url: string; seen: { path: string; headers: IncomingHttpHeaders }[]; close: () => Promise<void> }> {
  const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', headers: req.headers });
    const city = new URL(req.url ?? '/', 'http://x').searchParams.get('city');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ city, forecast: 'sunny' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A StepContext for calling an executor directly (unit level). */
export function stepContext(definition: Record<string, unknown>, overrides: Partial<StepContext> = {}): StepContext {
  const wf = compileDefinition({ name: 'unit', steps: { a: definition } });
  return {
    runId: '00000000-0000-4000-8000-000000000001',
    stepId: 'a',
    attempt: 1,
    idempotencyKey: 'run:a',
    step: wf.steps['a']!,
    scope: { input: {}, context: {} },
    params: {},
    signal: AbortSignal.timeout(10_000),
    settings: { allowPrivateNetwork: true, defaultProvider: undefined },
    agents: async () => undefined,
    streamOutput: () => {},
    ...overrides,
  };
}
