/**
 * API load: many concurrent HTTP clients against one weft server on loopback, each repeatedly
 *   1. POST /api/runs of a small workflow (3 transform steps),
 *   2. follows that run's events over SSE to the terminal event,
 *   3. GET /api/runs/:id (status and outputs checked),
 * for a fixed time. Afterwards every run's full event log is read as JSON
 * (GET /api/runs/:id/events) and compared with what its SSE stream delivered: the same events,
 * byte for byte, in the same order, ending with run_succeeded — so a lost, repeated or reordered
 * event is counted, not just a slow one.
 *
 * `runApiLoad` is the load itself (used by test/api-load.test.ts); run directly
 * (`npm run bench:api`) this file starts the engine and the API in process and prints the
 * machine, the workload and the figures, beside a 1-client baseline measured in the same process
 * just before. A benchmark, not a test: nothing here asserts a time.
 *
 * Environment (bench only): DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; a
 * fresh schema, dropped afterwards; PGlite when PostgreSQL cannot be reached),
 * WEFT_BENCH_API_CLIENTS (200), WEFT_BENCH_API_SECONDS (30), WEFT_BENCH_API_BASELINE_SECONDS (5),
 * WEFT_BENCH_API_USERS (8), WEFT_BENCH_API_POOL (10, as `weft serve`),
 * WEFT_BENCH_API_CONCURRENCY (8 worker slots, as `weft serve`).
 *
 * HTTP client: Node's fetch. Its global dispatcher (undici's Agent) opens as many connections
 * per origin as there are requests in flight (`connections: null`), so 200 clients really are
 * 200 concurrent streams; `watchServer` counts the server's open connections to prove it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadApiConfig } from '../src/api/config.ts';
import type { EventFeed } from '../src/api/events/event-feed.ts';
import { startApiServer } from '../src/api/server.ts';
import { Engine } from '../src/engine/engine.ts';
import { silentLogger } from '../src/engine/log.ts';
import { DEFAULT_WORKER_OPTIONS } from '../src/engine/worker.ts';
import type { Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPg } from '../src/store/pg-db.ts';
import { openPglite } from '../src/store/pglite-db.ts';
import { followSse, SseHttpError, type SseEvent } from '../test/helpers/sse-client.ts';
import { adminExec, fmt, machineLine, postgresVersion } from './common.ts';
import { cpuSince, cpuSnapshot } from './cpu.ts';

/** The workload's workflow: three dependent transform steps; `result` is 3·(n+1). */
export const LOAD_WORKFLOW = {
  name: 'api load: three transforms',
  inputs: { type: 'object', properties: { n: { type: 'number', default: 0 } } },
  steps: {
    a: { type: 'transform', expr: '$input.n + 1' },
    b: { type: 'transform', needs: ['a'], expr: '$a * 2' },
    c: { type: 'transform', needs: ['a', 'b'], expr: '$b + $a' },
  },
  outputs: { result: '$c' },
};

export function expectedLoadResult(n: number): { result: number } {
  return { result: 3 * (n + 1) };
}

export interface ApiLoadOptions {
  /** Server base URL, e.g. http://127.0.0.1:PORT. */
  url: string;
  /** Access tokens; client i uses tokens[i % tokens.length]. Each must be able to launch `workflowId`. */
  tokens: string[];
  clients: number;
  /** Clients start no new run after this; runs under way are finished. */
  durationMs: number;
  /** A workflow shaped like LOAD_WORKFLOW (its outputs are checked against `expectedLoadResult`). */
  workflowId: string;
  /** Longest a request, or a run's stream to its terminal event, may take (default 20 s). */
  requestTimeoutMs?: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ApiLoadFigures {
  clients: number;
  users: number;
  durationMs: number;
  /** From the first launch to the end of the last run (the runs under way at the deadline included). */
  elapsedMs: number;
  launches: number;
  /** Runs followed to run_succeeded and read back. */
  runs: number;
  /** SSE events received. */
  events: number;
  /** HTTP requests made during the load (SSE connections included, verification reads not). */
  requests: number;
  runsPerSec: number;
  eventsPerSec: number;
  /** Milliseconds. launch: POST /api/runs; get: GET /api/runs/:id; follow: SSE request to its end; run: launch start → terminal event received. */
  latency: { launch: LatencySummary; get: LatencySummary; follow: LatencySummary; run: LatencySummary };
  /** Requests that failed: non-2xx, network error, timeout, a stream that did not reach the terminal event, a wrong answer. */
  errors: number;
  errorsByKind: Record<string, number>;
  errorSamples: string[];
  /** Runs whose SSE events were compared with the stored log afterwards. */
  verified: number;
  /** Stored events that the run's SSE stream did not deliver. */
  lostEvents: number;
  /** Runs whose SSE events differ from the stored log in any way (lost, extra, repeated, reordered, altered). */
  mismatchedRuns: number;
  mismatchSamples: string[];
  /** How long the verification reads took (after the load). */
  verifyMs: number;
  /** SSE reconnects (Last-Event-ID) the clients needed. */
  reconnects: number;
  /** Most client requests in flight at once. */
  peakInFlight: number;
}

interface FollowedRun {
  runId: string;
  token: string;
  streamed: SseEvent[];
}

interface Recorder {
  latency: { launch: number[]; get: number[]; follow: number[]; run: number[] };
  errorsByKind: Map<string, number>;
  errorSamples: string[];
  requests: number;
  inFlight: number;
  peakInFlight: number;
  reconnects: number;
  events: number;
}

const TERMINAL = new Set(['run_succeeded', 'run_failed', 'run_cancelled']);
const SAMPLE_LIMIT = 20;

/** Runs the load and verifies every run's events; see the file comment. */
export async function runApiLoad(opts: ApiLoadOptions): Promise<ApiLoadFigures> {
  if (opts.tokens.length === 0) throw new Error('runApiLoad needs at least one token');
  const timeoutMs = opts.requestTimeoutMs ?? 20_000;
  const rec: Recorder = {
    latency: { launch: [], get: [], follow: [], run: [] },
    errorsByKind: new Map(), errorSamples: [], requests: 0, inFlight: 0, peakInFlight: 0, reconnects: 0, events: 0,
  };
  const runs: FollowedRun[] = [];
  let launches = 0;
  const started = performance.now();
  const deadline = started + opts.durationMs;

  const client = async (index: number): Promise<void> => {
    const token = opts.tokens[index % opts.tokens.length]!;
    for (let iteration = 0; performance.now() < deadline; iteration++) {
      const n = index * 100_000 + iteration;
      const t0 = performance.now();
      launches++;
      const launched = await send(rec, 'launch', opts.url, 'POST', '/api/runs', token, timeoutMs, { workflow_id: opts.workflowId, inputs: { n } });
      if (!launched || launched.status !== 201) {
        await pauseAfterError();
        continue;
      }
      rec.latency.launch.push(launched.ms);
      const runId = (launched.body as { id: string }).id;

      const t1 = performance.now();
      const streamed = await follow(rec, opts.url, runId, token, timeoutMs);
      if (!streamed) {
        await pauseAfterError();
        continue;
      }
      const t2 = performance.now();
      rec.latency.follow.push(t2 - t1);
      rec.latency.run.push(t2 - t0);

      const got = await send(rec, 'get', opts.url, 'GET', `/api/runs/${runId}`, token, timeoutMs);
      if (!got || got.status !== 200) {
        await pauseAfterError();
        continue;
      }
      rec.latency.get.push(got.ms);
      const run = got.body as { status?: string; outputs?: unknown };
      if (run.status !== 'succeeded' || JSON.stringify(run.outputs) !== JSON.stringify(expectedLoadResult(n))) {
        recordError(rec, 'wrong run answer', `run ${runId}: status ${run.status}, outputs ${JSON.stringify(run.outputs)} (expected ${JSON.stringify(expectedLoadResult(n))}) after its SSE stream delivered ${streamed.at(-1)?.event}`);
      }
      runs.push({ runId, token, streamed });
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)));
  const elapsedMs = performance.now() - started;

  const peakInFlight = rec.peakInFlight;
  const verifyStarted = performance.now();
  const check = await verifyRuns(opts.url, runs, timeoutMs, rec);
  const verifyMs = performance.now() - verifyStarted;
  const errors = [...rec.errorsByKind.values()].reduce((a, b) => a + b, 0);
  return {
    clients: opts.clients,
    users: new Set(opts.tokens).size,
    durationMs: opts.durationMs,
    elapsedMs,
    launches,
    runs: runs.length,
    events: rec.events,
    requests: rec.requests,
    runsPerSec: runs.length / (elapsedMs / 1000),
    eventsPerSec: rec.events / (elapsedMs / 1000),
    latency: {
      launch: summarise(rec.latency.launch),
      get: summarise(rec.latency.get),
      follow: summarise(rec.latency.follow),
      run: summarise(rec.latency.run),
    },
    errors,
    errorsByKind: Object.fromEntries(rec.errorsByKind),
    errorSamples: rec.errorSamples,
    ...check,
    verifyMs,
    reconnects: rec.reconnects,
    peakInFlight,
  };
}

/** A client that just failed waits a little, so that a broken server is not hammered in a tight loop. */
function pauseAfterError(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 50));
}

function recordError(rec: Recorder, kind: string, detail: string): void {
  rec.errorsByKind.set(kind, (rec.errorsByKind.get(kind) ?? 0) + 1);
  if (rec.errorSamples.length < SAMPLE_LIMIT) rec.errorSamples.push(`${kind}: ${detail}`);
}

interface Answer {
  status: number;
  body: unknown;
  ms: number;
}

/** One JSON request, timed to the end of its body; undefined (and an error recorded) unless 2xx. */
async function send(
  rec: Recorder, kind: string, base: string, method: string, path: string, token: string, timeoutMs: number, body?: unknown,
): Promise<Answer | undefined> {
  rec.requests++;
  rec.peakInFlight = Math.max(rec.peakInFlight, ++rec.inFlight);
  const t0 = performance.now();
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, {
      method, headers, signal: AbortSignal.timeout(timeoutMs), ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    if (res.status < 200 || res.status > 299) {
      recordError(rec, `${kind} ${res.status}`, `${method} ${path}: ${text.slice(0, 200)}`);
      return undefined;
    }
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined, ms };
  } catch (error) {
    recordError(rec, `${kind} network`, `${method} ${path}: ${describe(error)}`);
    return undefined;
  } finally {
    rec.inFlight--;
  }
}

/** The run's SSE stream to its terminal event; undefined (and an error recorded) when it failed. */
async function follow(rec: Recorder, base: string, runId: string, token: string, timeoutMs: number): Promise<SseEvent[] | undefined> {
  rec.peakInFlight = Math.max(rec.peakInFlight, ++rec.inFlight);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const result = await followSse(`${base}/api/runs/${runId}/events`, { token, signal, until: (e) => TERMINAL.has(e.event) });
    rec.requests += result.connections;
    rec.reconnects += result.connections - 1;
    rec.events += result.events.length;
    if (result.ended !== 'until') {
      recordError(rec, 'follow', `run ${runId}: the stream ended '${result.ended}' after ${result.events.length} events, without the terminal event`);
      return undefined;
    }
    return result.events;
  } catch (error) {
    rec.requests++;
    recordError(rec, error instanceof SseHttpError ? `follow ${error.status}` : 'follow network', `run ${runId}: ${describe(error)}`);
    return undefined;
  } finally {
    rec.inFlight--;
  }
}

/**
 * How a run's SSE events differ from its stored log (the JSON items): undefined when they are
 * the same events, byte for byte, in the same order, and the log ends with run_succeeded.
 * Each SSE frame's `id:` and `event:` must agree with its data.
 */
export function diffEventLogs(streamed: readonly SseEvent[], stored: readonly unknown[]): { lost: number; detail: string } | undefined {
  const storedText = stored.map((e) => JSON.stringify(e));
  const storedIds = stored.map((e) => (e as { id: string }).id);
  const streamedIds = new Set<string>();
  let frameProblem: string | undefined;
  for (const e of streamed) {
    let data: { id?: string; type?: string };
    try {
      data = JSON.parse(e.data) as { id?: string; type?: string };
    } catch {
      frameProblem ??= `frame ${e.id} carries no JSON`;
      continue;
    }
    if (data.id !== e.id || data.type !== e.event) frameProblem ??= `frame id/event ${e.id}/${e.event} differ from its data ${data.id}/${data.type}`;
    if (data.id !== undefined) streamedIds.add(data.id);
  }
  const lost = storedIds.filter((id) => !streamedIds.has(id)).length;
  const last = (stored.at(-1) as { type?: string } | undefined)?.type;
  if (last !== 'run_succeeded') return { lost, detail: `the stored log ends with ${last ?? 'nothing'}, not run_succeeded` };
  if (frameProblem) return { lost, detail: frameProblem };
  const same = streamed.length === storedText.length && streamed.every((e, i) => e.data === storedText[i]);
  if (same) return undefined;
  const at = streamed.findIndex((e, i) => e.data !== storedText[i]);
  return {
    lost,
    detail: `SSE delivered ${streamed.length} events, the log holds ${stored.length}; first difference at #${at === -1 ? Math.min(streamed.length, stored.length) : at}: ` +
      `SSE ${streamed.map((e) => e.event).join(',')} vs log ${stored.map((e) => (e as { type: string }).type).join(',')}`,
  };
}

/** Reads every run's stored events (JSON pages) and compares them with what its stream delivered. */
async function verifyRuns(
  base: string, runs: readonly FollowedRun[], timeoutMs: number, rec: Recorder,
): Promise<{ verified: number; lostEvents: number; mismatchedRuns: number; mismatchSamples: string[] }> {
  let next = 0;
  let verified = 0;
  let lostEvents = 0;
  let mismatchedRuns = 0;
  const mismatchSamples: string[] = [];
  const reader = async (): Promise<void> => {
    while (next < runs.length) {
      const run = runs[next++]!;
      const stored: unknown[] = [];
      let after = '';
      for (;;) {
        const qs = `?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
        const page = await send(rec, 'verify', base, 'GET', `/api/runs/${run.runId}/events${qs}`, run.token, timeoutMs);
        if (!page) return;
        const { items, next_cursor } = page.body as { items: unknown[]; next_cursor: string | null };
        stored.push(...items);
        if (items.length < 1000 || next_cursor === null) break;
        after = next_cursor;
      }
      verified++;
      const diff = diffEventLogs(run.streamed, stored);
      if (diff) {
        mismatchedRuns++;
        lostEvents += diff.lost;
        if (mismatchSamples.length < SAMPLE_LIMIT) mismatchSamples.push(`run ${run.runId}: ${diff.detail}`);
      }
    }
  };
  // Verification reads are not part of the load: a few at a time, after it.
  const requestsBefore = rec.requests;
  await Promise.all(Array.from({ length: 32 }, reader));
  rec.requests = requestsBefore;
  return { verified, lostEvents, mismatchedRuns, mismatchSamples };
}

function summarise(ms: number[]): LatencySummary {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => (s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!);
  return { count: s.length, p50: q(0.5), p99: q(0.99), max: s.at(-1) ?? Number.NaN };
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return `${error.name}: ${error.message}${cause instanceof Error ? ` (${cause.message})` : ''}`;
}

// ------------------------------------------------------------------------------------------
// Setup shared by the test and the bench.

async function call(base: string, method: string, path: string, token: string | undefined, body: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status < 200 || res.status > 299) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Creates `users` users (POST /api/users as the admin) and signs each in, and a public
 * LOAD_WORKFLOW they can all launch. The server's login limits must allow `users` sign-ins.
 */
export async function prepareApiLoad(opts: { url: string; adminToken: string; users: number }): Promise<{ tokens: string[]; workflowId: string }> {
  const tag = randomUUID().slice(0, 8);
  // In parallel: each user costs two password hashes (scrypt, ~0.1–0.2 s), which run on libuv's thread pool.
  const tokens = await Promise.all(Array.from({ length: opts.users }, async (_, i) => {
    const email = `load-${tag}-${i}@example.test`;
    const password = `load-${tag}-${i}-password`;
    await call(opts.url, 'POST', '/api/users', opts.adminToken, { email, name: `load ${i}`, role: 'user', password });
    return (await call(opts.url, 'POST', '/api/auth/login', undefined, { email, password })).body.access_token as string;
  }));
  const workflow = await call(opts.url, 'POST', '/api/workflows?visibility=public', opts.adminToken, LOAD_WORKFLOW);
  return { tokens, workflowId: workflow.body.id as string };
}

/**
 * What the server saw: its most open connections (sampled; idle keep-alive connections count,
 * as they are what a capped client pool would reuse) and most open event subscriptions at once.
 */
export function watchServer(server: Server, feed: EventFeed): { peakConnections: number; peakStreams: number; stop(): void } {
  const state = { peakConnections: 0, peakStreams: 0, stop };
  const sample = () => {
    state.peakStreams = Math.max(state.peakStreams, feed.subscriberCount);
    server.getConnections((error, count) => {
      if (!error) state.peakConnections = Math.max(state.peakConnections, count);
    });
  };
  const timer = setInterval(sample, 25);
  function stop(): void {
    clearInterval(timer);
    sample();
  }
  return state;
}

/** The figures as the lines the test and the bench print. */
export function formatFigures(f: ApiLoadFigures): string[] {
  const l = (s: LatencySummary) => `p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(0)} ms (n=${s.count})`;
  return [
    `workload: ${f.clients} clients over ${f.users} users for ${(f.durationMs / 1000).toFixed(0)} s (launch → SSE to the end → GET), ${(f.elapsedMs / 1000).toFixed(1)} s until the last run ended`,
    `runs: ${f.runs} (${f.runsPerSec.toFixed(1)} runs/s), launches ${f.launches}, SSE events ${f.events} (${f.eventsPerSec.toFixed(0)} events/s), requests ${f.requests}`,
    `launch  POST /api/runs          ${l(f.latency.launch)}`,
    `get     GET /api/runs/:id       ${l(f.latency.get)}`,
    `follow  SSE to run_succeeded    ${l(f.latency.follow)}`,
    `run     launch → terminal event ${l(f.latency.run)}`,
    `errors ${f.errors}${f.errors > 0 ? ` ${JSON.stringify(f.errorsByKind)}` : ''}; verified ${f.verified} runs (in ${(f.verifyMs / 1000).toFixed(1)} s): lost events ${f.lostEvents}, mismatched runs ${f.mismatchedRuns}; SSE reconnects ${f.reconnects}; peak client requests in flight ${f.peakInFlight}`,
  ];
}

// ------------------------------------------------------------------------------------------
// `npm run bench:api`

const BENCH_PG_URL = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function main(): Promise<void> {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  const clients = env('WEFT_BENCH_API_CLIENTS', 200);
  const seconds = env('WEFT_BENCH_API_SECONDS', 30);
  const baselineSeconds = env('WEFT_BENCH_API_BASELINE_SECONDS', 5);
  const users = env('WEFT_BENCH_API_USERS', 8);
  const poolSize = env('WEFT_BENCH_API_POOL', 10);
  const concurrency = env('WEFT_BENCH_API_CONCURRENCY', DEFAULT_WORKER_OPTIONS.concurrency);

  const dir = await mkdtemp(join(tmpdir(), 'weft-bench-api-'));
  let database: string;
  let db: Db;
  let dropSchema: (() => Promise<void>) | undefined;
  let onPostgres = false;
  try {
    database = await postgresVersion(BENCH_PG_URL);
    const schema = `weft_bench_api_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    await adminExec(BENCH_PG_URL, `CREATE SCHEMA ${schema}`);
    dropSchema = () => adminExec(BENCH_PG_URL, `DROP SCHEMA ${schema} CASCADE`);
    db = await openPg({ connectionString: BENCH_PG_URL, schema, max: poolSize });
    database += `; ${db.description}; pool ${poolSize}`;
    onPostgres = true;
  } catch (error) {
    database = `PGlite in ${dir} (PostgreSQL at ${BENCH_PG_URL} unreachable: ${describe(error)})`;
    db = await openPglite(join(dir, 'pgdata'));
  }

  console.log(`weft bench:api — ${new Date().toISOString()}`);
  console.log(await machineLine(database));
  console.log(`server: engine (worker, ${concurrency} slots) and API in this process, the clients too, over loopback; Node's fetch (undici, no connection cap)`);
  try {
    await migrate(db);
    const engine = new Engine({ db, log: silentLogger, worker: { ...DEFAULT_WORKER_OPTIONS, concurrency } });
    await engine.start();
    const admin = { email: 'bench-admin@example.test', password: 'bench admin password' };
    const config = loadApiConfig({}, {
      dataDir: dir, adminEmail: admin.email, adminPassword: admin.password,
      rateLimits: { loginPerIp: 10_000, loginPerAccount: 10_000, launchesPerOwner: 10_000_000 },
    });
    const api = await startApiServer({ db, engine, config, log: silentLogger, port: 0 });
    try {
      const adminToken = (await call(api.url, 'POST', '/api/auth/login', undefined, admin)).body.access_token as string;
      const { tokens, workflowId } = await prepareApiLoad({ url: api.url, adminToken, users });
      await runApiLoad({ url: api.url, tokens, clients: 1, durationMs: 1000, workflowId }); // warm-up, not reported

      const baseline = await runApiLoad({ url: api.url, tokens, clients: 1, durationMs: baselineSeconds * 1000, workflowId });
      console.log(`\n## baseline: 1 client, ${baselineSeconds} s`);
      for (const line of formatFigures(baseline)) console.log(`  ${line}`);

      const watch = watchServer(api.server, api.services.feed);
      const cpuBefore = onPostgres ? await cpuSnapshot(db, []) : undefined;
      const load = await runApiLoad({ url: api.url, tokens, clients, durationMs: seconds * 1000, workflowId });
      const cpu = cpuBefore ? await cpuSince(cpuBefore, db, []) : undefined;
      watch.stop();
      console.log(`\n## load: ${clients} clients, ${seconds} s`);
      for (const line of formatFigures(load)) console.log(`  ${line}`);
      console.log(`  server: peak open connections ${watch.peakConnections}, peak SSE subscriptions ${watch.peakStreams}`);
      if (cpu) {
        console.log(`  CPU over the load: this process ${fmt(cpu.self, 1)} s, PostgreSQL backends ${fmt(cpu.postgres, 1)} s, others ${fmt(cpu.others, 1)} s; machine ${(cpu.machineBusy * 100).toFixed(0)} % busy`);
      }
      const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
      console.log(`\n## ratios, ${clients} clients against the 1-client baseline (same process, same minute)`);
      console.log(`  throughput: runs/s ${ratio(load.runsPerSec, baseline.runsPerSec)}, events/s ${ratio(load.eventsPerSec, baseline.eventsPerSec)}`);
      console.log(`  p50 latency: launch ${ratio(load.latency.launch.p50, baseline.latency.launch.p50)}, get ${ratio(load.latency.get.p50, baseline.latency.get.p50)}, run ${ratio(load.latency.run.p50, baseline.latency.run.p50)}`);
      if (load.errors + load.mismatchedRuns + baseline.errors + baseline.mismatchedRuns > 0) {
        console.log('\n## problems');
        for (const s of [...baseline.errorSamples, ...load.errorSamples, ...baseline.mismatchSamples, ...load.mismatchSamples]) console.log(`  ${s}`);
        process.exitCode = 1;
      }
    } finally {
      await api.close();
      await engine.stop();
    }
  } finally {
    await db.close();
    await dropSchema?.();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
