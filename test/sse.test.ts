/**
 * Live events over the wire, on a real loopback HTTP server with runs of a real engine: the SSE
 * stream (parsed here, byte by byte as fetch delivers it) to the terminal event, resuming after
 * a client abort and after a server-side cut with Last-Event-ID / ?after=, 204 once the run is
 * over; and the WebSocket endpoint with a real `ws` client: auth, run and my_runs
 * subscriptions, identical answers for missing and forbidden runs, limits.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { EventFeed } from '../src/api/events/event-feed.ts';
import type { WireEvent } from '../src/api/events/event-wire.ts';
import { parseCursor, streamRunEvents } from '../src/api/events/sse.ts';
import { attachEventSocket, type SocketPrincipal } from '../src/api/events/websocket.ts';
import type { Engine } from '../src/engine/engine.ts';
import { silentLogger } from '../src/engine/log.ts';
import type { Db } from '../src/store/db.ts';
import { FEED_START, listRunEventsAfter } from '../src/store/events.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, testEngine } from './helpers/engine.ts';

after(closeTemplates);

/** Five steps, two of them short delays, so a stream is still live when it starts. */
const CHAIN = {
  name: 'chain',
  steps: {
    a: { type: 'transform', expr: '1' },
    b: { type: 'delay', needs: ['a'], ms: 80 },
    c: { type: 'transform', needs: ['b'], expr: '2' },
    d: { type: 'delay', needs: ['c'], ms: 80 },
    e: { type: 'transform', needs: ['d'], expr: '3' },
  },
};

/** Fails at once (no retries), so the run fails — until someone retries the step. */
const FAILING = { name: 'failing', steps: { a: { type: 'transform', expr: '$error("boom")' } } };

async function launchAs(engine: Engine, ownerId: string, definition: unknown = CHAIN): Promise<string> {
  const v = await engine.registerWorkflow(definition, ownerId);
  return engine.startRun({ versionId: v.versionId, ownerId });
}

async function allIds(db: Db, runId: string): Promise<string[]> {
  return (await listRunEventsAfter(db, runId, FEED_START, 100_000)).map((e) => `${e.tx}-${e.id}`);
}

function startFeed(t: TestContext, db: Db): EventFeed {
  const feed = new EventFeed({ db, log: silentLogger });
  feed.start();
  t.after(() => feed.stop());
  return feed;
}

async function listen(t: TestContext, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * GET /runs/:id/events as the events route will serve it: cursor from Last-Event-ID or ?after=,
 * 400 when malformed, `?follow=1`. `?cut=k` (tests only) destroys the connection just after the k-th event.
 */
async function sseServer(t: TestContext, feed: EventFeed): Promise<string> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const runId = /^\/runs\/([^/]+)\/events$/.exec(url.pathname)?.[1];
    if (!runId) return void res.writeHead(404).end();
    const header = req.headers['last-event-id'];
    const cursor = typeof header === 'string' ? header : url.searchParams.get('after') ?? undefined;
    if (cursor !== undefined && !parseCursor(cursor)) return void res.writeHead(400).end();
    const cut = Number(url.searchParams.get('cut') ?? 0);
    if (cut > 0) {
      let sent = 0;
      const write = res.write.bind(res) as (chunk: string) => boolean;
      res.write = ((chunk: string) => {
        const flushed = write(chunk);
        // After the frames are flushed (Node corks a response's writes until the next tick).
        if (chunk.startsWith('id: ') && ++sent === cut) setTimeout(() => res.destroy(), 5);
        return flushed;
      }) as typeof res.write;
    }
    const follow = url.searchParams.get('follow') === '1';
    void streamRunEvents({ req, res, feed, runId, ...(cursor === undefined ? {} : { cursor }), follow, heartbeatMs: 40 });
  });
  return `http://${await listen(t, server)}`;
}

const eventsOf = (r: SseResult): WireEvent[] => r.frames.filter((f) => f.id !== undefined).map((f) => JSON.parse(f.data!) as WireEvent);

for (const backend of BACKENDS) {
  void describe(`SSE on ${backend}`, () => {
    void test('streams the whole run to its terminal event, then 204 for a reconnect after it', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const base = await sseServer(t, startFeed(t, ctx.db));
      const runId = await launchAs(ctx.engine, 'alice');
      const r = await readSse(`${base}/runs/${runId}/events`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.match(r.headers.get('cache-control') ?? '', /no-cache/);
      assert.equal(r.headers.get('x-accel-buffering'), 'no');
      assert.equal(r.ended, 'eof', 'the server ended the stream');
      assert.match(r.frames[0]?.retry ?? '', /^\d+$/, 'a retry hint first');
      const events = eventsOf(r);
      assert.deepEqual(events.map((e) => e.id), await allIds(ctx.db, runId), 'every event, once, in order');
      assert.equal(events.at(-1)?.type, 'run_succeeded');
      for (const f of r.frames.filter((x) => x.id !== undefined)) {
        const e = JSON.parse(f.data!) as WireEvent;
        assert.equal(f.id, e.id);
        assert.equal(f.event, e.type);
        assert.equal(e.run_id, runId);
      }
      assert.ok(r.frames.some((f) => f.comments.length > 0), 'heartbeat comments while the run works');

      const again = await readSse(`${base}/runs/${runId}/events`, { headers: { 'Last-Event-ID': events.at(-1)!.id } });
      assert.equal(again.status, 204, 'EventSource stops reconnecting');
      assert.equal((await readSse(`${base}/runs/${runId}/events?after=12x`)).status, 400);
    });

    void test('resumes after a client abort and after a server-side cut: nothing lost, nothing repeated', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const feed = startFeed(t, ctx.db);
      const base = await sseServer(t, feed);

      const runId = await launchAs(ctx.engine, 'alice');
      const first = await readSse(`${base}/runs/${runId}/events`, { stopAfter: 3 });
      assert.equal(first.ended, 'aborted');
      assert.equal(eventsOf(first).length, 3);
      await eventually(async () => (feed.subscriberCount === 0 ? true : undefined), 2000, 'the server unsubscribed on close');
      const rest = await readSse(`${base}/runs/${runId}/events`, { headers: { 'Last-Event-ID': eventsOf(first).at(-1)!.id } });
      assert.equal(rest.ended, 'eof');
      assert.deepEqual([...eventsOf(first), ...eventsOf(rest)].map((e) => e.id), await allIds(ctx.db, runId));

      // The server drops the connection mid-stream; the client resumes with ?after=.
      const cutRun = await launchAs(ctx.engine, 'alice');
      const cutOff = await readSse(`${base}/runs/${cutRun}/events?cut=4`);
      assert.equal(cutOff.ended, 'error', 'the connection was cut, not ended');
      const kept = eventsOf(cutOff);
      assert.ok(kept.length >= 1, `events before the cut (${kept.length})`);
      const resumed = await readSse(`${base}/runs/${cutRun}/events?after=${kept.at(-1)!.id}`);
      assert.equal(resumed.ended, 'eof');
      assert.deepEqual([...kept, ...eventsOf(resumed)].map((e) => e.id), await allIds(ctx.db, cutRun));
    });
    void test('a failed run retried by hand: 204 while it is over, then the rest; follow stays open across', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const base = await sseServer(t, startFeed(t, ctx.db));
      const runId = await launchAs(ctx.engine, 'alice', FAILING);
      const first = await readSse(`${base}/runs/${runId}/events`);
      assert.equal(first.ended, 'eof');
      const failed = eventsOf(first).at(-1)!;
      assert.equal(failed.type, 'run_failed');
      assert.equal((await readSse(`${base}/runs/${runId}/events`, { headers: { 'Last-Event-ID': failed.id } })).status, 204);

      let sawFirstFailure!: () => void;
      const firstFailureSeen = new Promise<void>((resolve) => (sawFirstFailure = resolve));
      let failures = 0;
      const following = readSse(`${base}/runs/${runId}/events?follow=1`, {
        until: (e) => {
          if (e.type !== 'run_failed') return false;
          if (++failures === 1) sawFirstFailure();
          return failures === 2;
        },
      });
      await firstFailureSeen;
      await ctx.engine.retryStep(runId, 'a');
      const followed = await following;
      assert.equal(followed.ended, 'aborted', 'still open after the first run_failed');
      const all = await allIds(ctx.db, runId);
      assert.deepEqual(eventsOf(followed).map((e) => e.id), all);

      const resumed = await readSse(`${base}/runs/${runId}/events`, { headers: { 'Last-Event-ID': failed.id } });
      assert.equal(resumed.status, 200, 'events after the old end: no longer 204');
      assert.deepEqual(eventsOf(resumed).map((e) => e.id), all.slice(all.indexOf(failed.id) + 1));
      assert.equal(eventsOf(resumed).at(-1)?.type, 'run_failed');
    });
  });

  void describe(`WebSocket on ${backend}`, () => {
    const TOKENS: Record<string, SocketPrincipal> = {
      'alice-token': { userId: 'alice', role: 'user' },
      'bob-token': { userId: 'bob', role: 'user' },
    };

    async function wsServer(t: TestContext, db: Db, limits: { maxSubscriptions?: number } = {}) {
      const feed = startFeed(t, db);
      const server = createServer((_req, res) => void res.writeHead(404).end());
      const sockets = attachEventSocket(server, {
        feed, path: '/api/ws', log: silentLogger, authTimeoutMs: 300, ...limits,
        authenticate: async (token) => TOKENS[token] ?? null,
        canReadRun: async (principal, runId) => {
          const { rows } = await db.query<{ owner_id: string }>('SELECT owner_id FROM runs WHERE id = $1', [runId]);
          return rows[0] !== undefined && (principal.role === 'admin' || rows[0].owner_id === principal.userId);
        },
      });
      t.after(() => sockets.close());
      return { url: `ws://${await listen(t, server)}/api/ws`, sockets };
    }

    void test('authentication: by first message only, within the deadline', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { url } = await wsServer(t, ctx.db);

      const silent = await connectWs(url);
      assert.equal((await silent.closed).code, 4401, 'no auth message: closed at the deadline');
      const early = await connectWs(url);
      early.send({ type: 'subscribe', id: 1, scope: 'my_runs' });
      assert.equal((await early.closed).code, 4401, 'subscribing before auth');
      const wrong = await connectWs(url);
      wrong.send({ type: 'auth', token: 'stolen' });
      assert.equal((await wrong.closed).code, 4401, 'an unknown token');
      const inUrl = await connectWs(`${url}?token=alice-token`);
      assert.equal((await inUrl.closed).code, 4401, 'a token in the URL is not read');
      await assert.rejects(connectWs(url.replace('/api/ws', '/elsewhere')), /404/, 'other paths are not upgraded');

      const ok = await connectWs(url);
      ok.send({ type: 'auth', token: 'alice-token' });
      assert.deepEqual(await ok.next((m) => m['type'] === 'authenticated'), { type: 'authenticated', user_id: 'alice' });
      ok.close();
    });

    void test('subscriptions: two runs and my_runs; a forbidden run answers like a missing one', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { url } = await wsServer(t, ctx.db);
      const [r1, r2, bobs] = [await launchAs(ctx.engine, 'alice'), await launchAs(ctx.engine, 'alice'), await launchAs(ctx.engine, 'bob')];
      const ws = await connectWs(url);
      ws.send({ type: 'auth', token: 'alice-token' });
      await ws.next((m) => m['type'] === 'authenticated');

      ws.send({ type: 'subscribe', id: 'one', run_id: r1 });
      ws.send({ type: 'subscribe', id: 'two', run_id: r2 });
      ws.send({ type: 'subscribe', id: 'mine', scope: 'my_runs' });
      ws.send({ type: 'subscribe', id: 'theirs', run_id: bobs });
      ws.send({ type: 'subscribe', id: 'ghost', run_id: randomUUID() });
      const forbidden = await ws.next((m) => m['type'] === 'error' && m['sub'] === 'theirs');
      const missing = await ws.next((m) => m['type'] === 'error' && m['sub'] === 'ghost');
      assert.equal(forbidden['code'], 'WEFT_NOT_FOUND');
      assert.deepEqual({ ...forbidden, sub: 'x' }, { ...missing, sub: 'x' }, 'indistinguishable');
      await ws.next((m) => m['type'] === 'subscribed' && m['sub'] === 'mine');
      const r3 = await launchAs(ctx.engine, 'alice');
      const bobs2 = await launchAs(ctx.engine, 'bob');

      const isEnd = (sub: string, runId: string) => (m: Record<string, unknown>) =>
        m['type'] === 'event' && m['sub'] === sub && (m['event'] as WireEvent).run_id === runId && (m['event'] as WireEvent).type === 'run_succeeded';
      await ws.next(isEnd('one', r1), 10_000);
      await ws.next(isEnd('two', r2), 10_000);
      await ws.next(isEnd('mine', r3), 10_000);
      assert.equal(await ctx.engine.waitForRun(bobs2, 10_000), 'succeeded');

      const received = (sub: string, runId?: string) => ws.messages
        .filter((m) => m['type'] === 'event' && m['sub'] === sub)
        .map((m) => m['event'] as WireEvent)
        .filter((e) => runId === undefined || e.run_id === runId);
      assert.deepEqual(received('one').map((e) => e.id), await allIds(ctx.db, r1));
      assert.deepEqual(received('two').map((e) => e.id), await allIds(ctx.db, r2));
      assert.deepEqual(received('mine', r3).map((e) => e.id), await allIds(ctx.db, r3), 'a run started after subscribing, whole');
      assert.ok(received('mine').every((e) => [r1, r2, r3].includes(e.run_id)), "only alice's runs");
      assert.ok(!ws.messages.some((m) => JSON.stringify(m).includes(bobs) || JSON.stringify(m).includes(bobs2)), "nothing of bob's");

      // A run subscription outlives the run's end (a failed run can be retried): its id stays
      // taken until the client lets it go.
      ws.send({ type: 'subscribe', id: 'one', run_id: r1 });
      assert.equal((await ws.next((m) => m['type'] === 'error' && m['sub'] === 'one'))['code'], 'WEFT_CONFLICT');
      ws.send({ type: 'unsubscribe', id: 'one' });
      ws.send({ type: 'subscribe', id: 'one', run_id: r1, after: received('one').at(-1)!.id });
      await ws.next((m) => m['type'] === 'subscribed' && m['sub'] === 'one');
      ws.close();
    });

    void test('limits and malformed messages', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { url, sockets } = await wsServer(t, ctx.db, { maxSubscriptions: 2 });
      const runId = await launchAs(ctx.engine, 'alice');
      const ws = await connectWs(url);
      ws.send({ type: 'auth', token: 'alice-token' });
      await ws.next((m) => m['type'] === 'authenticated');
      const errorFor = (sub: unknown) => ws.next((m) => m['type'] === 'error' && m['sub'] === sub);

      ws.send({ type: 'subscribe', id: 1, run_id: runId, after: 'not-a-cursor' });
      assert.equal((await errorFor(1))['code'], 'WEFT_BAD_REQUEST');
      ws.send({ type: 'subscribe', id: 1, run_id: runId });
      ws.send({ type: 'subscribe', id: 1, scope: 'my_runs' });
      assert.equal((await errorFor(1))['code'], 'WEFT_CONFLICT');
      ws.send({ type: 'subscribe', id: 2, scope: 'my_runs' });
      ws.send({ type: 'subscribe', id: 3, scope: 'my_runs' });
      assert.equal((await errorFor(3))['code'], 'WEFT_TOO_MANY_SUBSCRIPTIONS');
      ws.send({ type: 'unsubscribe', id: 2 });
      ws.send({ type: 'subscribe', id: 3, scope: 'my_runs' });
      await ws.next((m) => m['type'] === 'subscribed' && m['sub'] === 3);
      ws.sendRaw('{not json');
      assert.equal((await ws.next((m) => m['type'] === 'error' && m['sub'] === undefined))['code'], 'WEFT_BAD_REQUEST');

      const big = await connectWs(url);
      big.sendRaw(JSON.stringify({ type: 'auth', token: 'x'.repeat(64 * 1024) }));
      assert.equal((await big.closed).code, 1009, 'a message over maxPayload closes the socket');

      await sockets.close();
      assert.equal((await ws.closed).code, 1001, 'server shutdown closes cleanly');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Clients: an SSE reader over fetch (frames parsed here, as they arrive) and a `ws` client.

interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
  comments: string[];
}

interface SseResult {
  status: number;
  headers: Headers;
  frames: SseFrame[];
  /** eof: the server ended the stream; aborted: we did (stopAfter/until); error: the connection broke. */
  ended: 'eof' | 'aborted' | 'error' | 'none';
}

/** Reads an SSE response to its end, or until `until` says so (after `stopAfter` events), then aborts. */
async function readSse(
  url: string,
  opts: { headers?: Record<string, string>; stopAfter?: number; until?: (event: WireEvent) => boolean } = {},
): Promise<SseResult> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: opts.headers ?? {}, signal: controller.signal });
  const frames: SseFrame[] = [];
  const result = (ended: SseResult['ended']): SseResult => ({ status: res.status, headers: res.headers, frames, ended });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    return result('none');
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let events = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch {
      return result('error');
    }
    if (chunk.done) return result('eof');
    buffer += decoder.decode(chunk.value, { stream: true });
    // Only whole frames count: a frame cut off by a broken connection is not an event.
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      frames.push(frame);
      if (frame.id === undefined) continue;
      if (++events === opts.stopAfter || opts.until?.(JSON.parse(frame.data ?? 'null') as WireEvent)) {
        controller.abort();
        return result('aborted');
      }
    }
  }
}

function parseFrame(block: string): SseFrame {
  const frame: SseFrame = { comments: [] };
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`;
    else if (field === 'id' || field === 'event' || field === 'retry') frame[field] = value;
  }
  return frame;
}

type Message = Record<string, unknown>;

interface WsClient {
  messages: Message[];
  closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  sendRaw(text: string): void;
  close(): void;
  /** The first message matching `match` not returned before (already received or to come). */
  next(match: (m: Message) => boolean, timeoutMs?: number): Promise<Message>;
}

async function connectWs(url: string): Promise<WsClient> {
  const ws = new WebSocket(url);
  const messages: Message[] = [];
  const taken = new Set<Message>();
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)) as Message);
    for (const w of waiters) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => {});
  return {
    messages, closed,
    send: (message) => ws.send(JSON.stringify(message)),
    sendRaw: (text) => ws.send(text),
    close: () => ws.close(),
    next: (match, timeoutMs = 5000) => new Promise((resolve, reject) => {
      const check = () => {
        const found = messages.find((m) => !taken.has(m) && match(m));
        if (!found) return;
        taken.add(found);
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 2000)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    }),
  };
}
