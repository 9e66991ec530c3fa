/**
 * One whole scenario through a client generated from the server's own OpenAPI document (every
 * answer validated against its documented schema): sign in, create a workflow, launch a run,
 * page through its events with `after` = next_cursor to the terminal event, read the run, its
 * outputs and artifacts. The same run followed over Server-Sent Events must show exactly the
 * events the JSON pages showed — same ids, same order, same content — and SSE must resume
 * after Last-Event-ID (or ?after=), answer 204 after the end, and let an aborted client go.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, sleep } from './helpers/engine.ts';
import { startTestApi, TWO_STEPS } from './helpers/api.ts';
import { generateClient, type CallOptions, type CallResult, type GeneratedClient } from './helpers/openapi-client.ts';
import { followSse, openSse, type SseEvent } from './helpers/sse-client.ts';

interface WireEvent {
  id: string;
  run_id: string;
  step_id: string | null;
  type: string;
  attempt: number | null;
  data: unknown;
  created_at: string;
}

after(closeTemplates);

const TERMINAL = new Set(['run_succeeded', 'run_failed', 'run_cancelled']);

/** The generated operation, or a failure naming the missing operationId. */
function op(client: GeneratedClient, operationId: string): (options?: CallOptions) => Promise<CallResult> {
  const fn = client[operationId];
  if (!fn) throw new Error(`the OpenAPI document has no operation ${operationId}`);
  return fn;
}

/** (tx, id) of a cursor `<tx>-<id>`, for order checks. */
function cursorKey(id: string): [bigint, bigint] {
  const m = /^(\d+)-(\d+)$/.exec(id);
  assert.ok(m, `event id '${id}' is a cursor`);
  return [BigInt(m[1]!), BigInt(m[2]!)];
}

function assertAscending(ids: string[]): void {
  for (let i = 1; i < ids.length; i++) {
    const [at, ai] = cursorKey(ids[i - 1]!);
    const [bt, bi] = cursorKey(ids[i]!);
    assert.ok(at < bt || (at === bt && ai < bi), `event ids ascend: ${ids[i - 1]} before ${ids[i]}`);
  }
}

/** SSE events as wire events, checking that each frame's `id:` and `event:` agree with its data. */
function wireEvents(events: SseEvent[]): WireEvent[] {
  return events.map((e) => {
    const data = JSON.parse(e.data) as WireEvent;
    assert.equal(e.id, data.id, 'SSE id: is the event id');
    assert.equal(e.event, data.type, 'SSE event: is the event type');
    return data;
  });
}

/** Pages through listRunEvents with `after` = next_cursor until the terminal event. */
async function pageToTerminal(listRunEvents: ReturnType<typeof op>, token: string, runId: string, limit: number): Promise<{ items: WireEvent[]; pages: number; cursor: string }> {
  const items: WireEvent[] = [];
  let cursor: string | undefined;
  let pages = 0;
  const deadline = Date.now() + 15_000;
  while (!items.some((e) => TERMINAL.has(e.type))) {
    assert.ok(Date.now() < deadline, `run ${runId} reached no terminal event within 15 s (${items.map((e) => e.type).join(', ')})`);
    const page = await listRunEvents({ token, params: { id: runId }, query: { limit, ...(cursor === undefined ? {} : { after: cursor }) } });
    assert.equal(page.status, 200);
    pages++;
    const got = page.body.items as WireEvent[];
    assert.ok(got.length <= limit, 'a page holds at most `limit` events');
    items.push(...got);
    if (got.length === 0) {
      assert.equal(page.body.next_cursor, cursor ?? null, 'an empty page keeps the cursor it was given');
      await sleep(20);
    } else {
      assert.equal(page.body.next_cursor, got.at(-1)!.id, 'next_cursor is the last event of the page');
    }
    cursor = (page.body.next_cursor as string | null) ?? undefined;
  }
  return { items, pages, cursor: cursor! };
}

for (const backend of BACKENDS) {
  void test(`${backend}: scenario through the generated client — login, workflow, run, events (JSON pages = SSE), outputs, artifacts`, async (ctx) => {
    const t = await startTestApi(backend, ctx);
    if (!t) return;
    const docResponse = await fetch(`${t.url}/api/openapi.json`);
    assert.equal(docResponse.status, 200);
    const client = generateClient((await docResponse.json()) as Record<string, unknown>, t.url);

    const signedIn = await op(client, 'login')({ body: { email: t.alice.email, password: t.alice.password } });
    assert.equal(signedIn.status, 200);
    const token = signedIn.body.access_token as string;

    const workflow = await op(client, 'createWorkflow')({ token, body: TWO_STEPS });
    assert.equal(workflow.status, 201);
    assert.equal(workflow.body.name, TWO_STEPS.name);

    const launched = await op(client, 'launchRun')({ token, body: { workflow_id: workflow.body.id, inputs: { n: 4 } } });
    assert.equal(launched.status, 201);
    const runId = launched.body.id as string;
    assert.equal(launched.response.headers.get('location'), `/api/runs/${runId}`);

    // Follow over SSE from the start while the JSON pages are read: the stream sees the run live.
    const eventsUrl = `${t.url}/api/runs/${runId}/events`;
    const following = followSse(eventsUrl, { token, until: (e) => TERMINAL.has(e.event), signal: AbortSignal.timeout(15_000) });

    const listRunEvents = op(client, 'listRunEvents');
    // limit 2: the run's ~8 events take several pages, so the cursor is really exercised.
    const { items, pages, cursor } = await pageToTerminal(listRunEvents, token, runId, 2);
    assert.ok(pages >= 3, `the events came in several pages (${pages})`);
    assert.equal(items.at(-1)!.type, 'run_succeeded', 'the terminal event is the last one');
    assert.equal(items.filter((e) => TERMINAL.has(e.type)).length, 1, 'exactly one terminal event');
    assert.equal(items[0]!.type, 'run_created');
    assert.ok(items.every((e) => e.run_id === runId));
    assertAscending(items.map((e) => e.id));
    for (const step of ['a', 'b']) {
      assert.ok(items.some((e) => e.type === 'step_succeeded' && e.step_id === step), `step ${step} succeeded (${items.map((e) => `${e.type}:${e.step_id}`).join(' ')})`);
    }
    const beyond = await listRunEvents({ token, params: { id: runId }, query: { after: cursor } });
    assert.deepEqual(beyond.body, { items: [], next_cursor: cursor }, 'nothing follows the terminal event');
    const whole = await listRunEvents({ token, params: { id: runId }, query: { limit: 1000 } });
    assert.deepEqual(whole.body.items, items, 'one page of everything equals the pages put together');

    const run = await op(client, 'getRun')({ token, params: { id: runId } });
    assert.equal(run.status, 200);
    assert.equal(run.body.status, 'succeeded');
    assert.deepEqual(run.body.outputs, { result: 10 });
    assert.deepEqual(run.body.steps.map((s: { step_id: string; status: string }) => [s.step_id, s.status]), [['a', 'succeeded'], ['b', 'succeeded']]);

    const artifacts = await op(client, 'listArtifacts')({ token, params: { id: runId } });
    assert.equal(artifacts.status, 200);
    assert.deepEqual(artifacts.body.items.map((a: { step_id: string; name: string; version: number }) => [a.step_id, a.name, a.version]).sort(), [['a', 'output', 1], ['b', 'output', 1]]);
    const artifact = await op(client, 'getArtifact')({ token, params: { id: runId, stepId: 'b', name: 'output' } });
    assert.equal(artifact.status, 200);
    assert.equal(artifact.body.content, 10);
    const first = await op(client, 'getArtifact')({ token, params: { id: runId, stepId: 'a', name: 'output' } });
    assert.equal(first.body.content, 5);

    // The SSE stream: the same events, ids and order, ended by the server after the terminal event.
    const sse = await following;
    assert.equal(sse.ended, 'until');
    assert.equal(sse.connections, 1, 'no reconnect was needed');
    assert.deepEqual(wireEvents(sse.events), items, 'SSE events equal the JSON pages\' events');

    // Resuming: Last-Event-ID, or ?after=, gives exactly the rest; after the end, 204.
    const resumed = await followSse(eventsUrl, { token, lastEventId: items[2]!.id, until: (e) => TERMINAL.has(e.event) });
    assert.deepEqual(wireEvents(resumed.events), items.slice(3));
    const byQuery = await followSse(`${eventsUrl}?after=${encodeURIComponent(items[1]!.id)}`, { token, until: (e) => TERMINAL.has(e.event) });
    assert.deepEqual(wireEvents(byQuery.events), items.slice(2));
    const ended = await openSse(eventsUrl, { token, lastEventId: cursor });
    assert.equal(ended.status, 204, 'a client that has the terminal event is told to stop');
    const malformed = await openSse(eventsUrl, { token, lastEventId: 'not-a-cursor' });
    assert.equal(malformed.status, 400);
    await malformed.response.text();
    const stranger = await openSse(eventsUrl, { token: t.bob.token });
    assert.equal(stranger.status, 404, "another user's run is not found over SSE either");
    await stranger.response.text();
  });

  void test(`${backend}: SSE — abort mid-run frees the subscription; Last-Event-ID resumes a live run to its end`, async (ctx) => {
    const t = await startTestApi(backend, ctx);
    if (!t) return;
    const docResponse = await fetch(`${t.url}/api/openapi.json`);
    const client = generateClient((await docResponse.json()) as Record<string, unknown>, t.url);
    const token = t.alice.token;
    const workflow = await op(client, 'createWorkflow')({ token, body: TWO_STEPS });
    // Step mode: the run waits for a trigger, so it stays open while the stream is cut.
    const launched = await op(client, 'launchRun')({ token, body: { workflow_id: workflow.body.id, mode: 'step' } });
    assert.equal(launched.status, 201);
    const runId = launched.body.id as string;
    const eventsUrl = `${t.url}/api/runs/${runId}/events`;
    const feed = t.api.services.feed;

    const controller = new AbortController();
    const cut = await followSse(eventsUrl, {
      token, signal: controller.signal,
      onEvent: () => controller.abort(),
    });
    assert.equal(cut.ended, 'aborted');
    assert.equal(cut.events.length, 1, 'the stream was cut after its first event');
    assert.equal(wireEvents(cut.events)[0]!.type, 'run_created');
    await eventually(async () => (feed.subscriberCount === 0 ? true : undefined), 5000, 'the server to drop the aborted stream');

    // Reconnect from the last id while the run is still open, then end it: the rest arrives live.
    const rest = followSse(eventsUrl, { token, lastEventId: cut.lastEventId, until: (e) => TERMINAL.has(e.event), signal: AbortSignal.timeout(15_000) });
    await eventually(async () => (feed.subscriberCount === 1 ? true : undefined), 5000, 'the resumed stream to subscribe');
    const cancelled = await op(client, 'cancelRun')({ token, params: { id: runId } });
    assert.equal(cancelled.status, 200);
    const resumed = await rest;
    assert.equal(resumed.ended, 'until');
    assert.equal(resumed.events.at(-1)?.event, 'run_cancelled');

    const all = await op(client, 'listRunEvents')({ token, params: { id: runId }, query: { limit: 1000 } });
    assert.deepEqual([...wireEvents(cut.events), ...wireEvents(resumed.events)], all.body.items, 'cut + resumed = the whole log, nothing lost or repeated');
    await eventually(async () => (feed.subscriberCount === 0 ? true : undefined), 5000, 'the finished stream to unsubscribe');
  });
}
