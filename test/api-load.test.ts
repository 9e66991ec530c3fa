/**
 * 200 concurrent clients for 30 s against one API server on loopback (engine in process,
 * PostgreSQL), each repeatedly launching a 3-step run, following its events over SSE to the end
 * and reading the run back (bench/api-load.ts). It fails on any failed request (non-2xx,
 * network error, timeout, a stream that stopped short, a wrong output) and on any lost, extra
 * or reordered event: afterwards every run's SSE events are compared with its stored log.
 * The latency and throughput figures are printed as a diagnostic, never asserted.
 *
 * PostgreSQL is the backend; locally, when it cannot be reached, PGlite stands in (and says
 * so). In CI PostgreSQL is required, as everywhere (test/helpers/db.ts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { diffEventLogs, formatFigures, prepareApiLoad, runApiLoad, watchServer } from '../bench/api-load.ts';
import { closeTemplates, PG_URL, type Backend } from './helpers/db.ts';
import { startTestApi } from './helpers/api.ts';
import type { SseEvent } from './helpers/sse-client.ts';

after(closeTemplates);

const CLIENTS = 200;
const DURATION_MS = 30_000;
/** Users created for the load; alice and bob join them. */
const USERS = 4;

/** PostgreSQL when it answers (or in CI, where its absence fails the test), else PGlite. */
async function loadBackend(): Promise<{ backend: Backend; note: string }> {
  if (process.env['CI']) return { backend: 'postgres', note: '' };
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { backend: 'postgres', note: '' };
  } catch (error) {
    return { backend: 'pglite', note: ` — PostgreSQL at ${PG_URL} unreachable (${(error as Error).message}), PGlite instead` };
  } finally {
    await client.end().catch(() => {});
  }
}

void test(`API load: ${CLIENTS} clients × ${DURATION_MS / 1000} s of launch → SSE → GET, no failed request, no lost event`, { timeout: 120_000 }, async (ctx) => {
  const started = performance.now();
  const { backend, note } = await loadBackend();
  const t = await startTestApi(backend, ctx, { rateLimits: { loginPerIp: 1000, loginPerAccount: 1000, launchesPerOwner: 1_000_000 } });
  if (!t) return;
  const prepared = await prepareApiLoad({ url: t.url, adminToken: t.admin.token, users: USERS });
  const tokens = [...prepared.tokens, t.alice.token, t.bob.token];
  const { workflowId } = prepared;
  const setupMs = performance.now() - started;
  const watch = watchServer(t.api.server, t.api.services.feed);
  const figures = await runApiLoad({ url: t.url, tokens, clients: CLIENTS, durationMs: DURATION_MS, workflowId });
  watch.stop();

  console.log(`API load on ${backend}${note} (setup ${(setupMs / 1000).toFixed(1)} s)`);
  for (const line of formatFigures(figures)) console.log(`  ${line}`);
  console.log(`  server: peak open connections ${watch.peakConnections}, peak SSE subscriptions ${watch.peakStreams}`);

  assert.deepEqual(figures.errorSamples, [], `no request failed (${figures.errors} failed: ${JSON.stringify(figures.errorsByKind)})`);
  assert.equal(figures.errors, 0);
  assert.ok(figures.runs >= CLIENTS, `every client finished runs (${figures.runs} runs)`);
  assert.equal(figures.verified, figures.runs, 'every run was checked against its stored log');
  assert.deepEqual(figures.mismatchSamples, [], 'every run\'s SSE events equal its stored events');
  assert.equal(figures.lostEvents, 0);
  assert.ok(watch.peakConnections >= CLIENTS, `the clients were really concurrent: ${watch.peakConnections} connections open at once`);
  assert.ok(!t.log.lines.some((l) => l.level === 'error'), `no request reached the 500 path: ${JSON.stringify(t.log.lines.filter((l) => l.level === 'error').slice(0, 3))}`);
});

void test('the load check catches a lost, repeated, reordered or altered event', () => {
  const log = ['run_created', 'step_started', 'step_succeeded', 'run_succeeded'].map((type, i) => ({ id: `7-${i + 1}`, run_id: 'r', type, data: {} }));
  const frames = (events: typeof log): SseEvent[] => events.map((e) => ({ id: e.id, event: e.type, data: JSON.stringify(e) }));
  assert.equal(diffEventLogs(frames(log), log), undefined, 'the same events pass');
  assert.equal(diffEventLogs(frames([log[0]!, log[1]!, log[3]!]), log)?.lost, 1, 'a lost event');
  assert.ok(diffEventLogs(frames([log[0]!, log[1]!, log[1]!, log[2]!, log[3]!]), log), 'a repeated event');
  assert.ok(diffEventLogs(frames([log[1]!, log[0]!, log[2]!, log[3]!]), log), 'a reordered pair');
  assert.ok(diffEventLogs(frames([log[0]!, log[1]!, { ...log[2]!, data: { x: 1 } }, log[3]!]), log), 'an altered event');
  assert.ok(diffEventLogs([...frames(log).slice(0, 3), { id: '7-9', event: 'run_succeeded', data: JSON.stringify(log[3]) }], log), 'a frame whose id: disagrees with its data');
  assert.ok(diffEventLogs(frames(log.slice(0, 3)), log.slice(0, 3)), 'a log that does not end with run_succeeded');
});
