/**
 * `npm run bench:scale`: does weft scale out? 1, 2 and 4 `weft worker` processes share one
 * PostgreSQL (schema `weft_bench_scale`, dropped afterwards) while this process — an Engine
 * with no worker — enqueues the runs. A benchmark, not a test: nothing here asserts a time.
 *
 * Workloads, per configuration (each worker gets --concurrency WEFT_BENCH_SCALE_CONCURRENCY):
 *   drain: 1,000 runs enqueued while the (warmed-up) workers are stopped with SIGSTOP, then
 *          drained after SIGCONT: steps/s from the first step started to the last finished — the
 *          workers' pace with no enqueuer competing with them for the CPU.
 *   burst: 1,000 runs of a 10-step chain of trivial steps (`transform`, expr "1"), all enqueued
 *          at once. Reported: steps/s = 10,000 step completions / (last run finished − first run
 *          created), and claim latency ready → started read from the database afterwards.
 *   paced: 200 runs enqueued at a steady rate (half of what the burst sustained), so that slots
 *          are free when a step becomes ready: the claim latency of the queue itself (NOTIFY →
 *          claim), without the time a step waits for a free slot.
 *
 * Claim latency: for each step, `started_at` of its final attempt minus the moment it became
 * ready (the previous step's `finished_at`, or the run's `created_at` for the first step).
 * The worker that completes a step claims its successor in the same transaction, so those are
 * 0 by construction; steps that went through the queue (they have a `step_queued` event: here
 * the first step of each run, enqueued by a process without a worker) are reported on their
 * own. Timestamps come from each process's Date.now(), so the resolution is 1 ms. As a cross-
 * check, each worker's `weft_claim_latency_seconds` histogram is scraped before and after.
 *
 * It is kept out of `npm run bench` because it takes about four minutes and starts processes.
 *
 * Environment: WEFT_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres),
 * WEFT_BENCH_SCALE_RUNS (1000), WEFT_BENCH_SCALE_WORKERS ("1,2,4"),
 * WEFT_BENCH_SCALE_CONCURRENCY (8), WEFT_BENCH_SCALE_ROUNDS (3), WEFT_BENCH_SCALE_PACED (200),
 * WEFT_BENCH_NODE_ARGS (extra node flags for the worker processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/engine/engine.ts';
import type { Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPg } from '../src/store/pg-db.ts';
import { cpuSince, cpuSnapshot, type CpuUse } from './cpu.ts';
import {
  adminExec, DEFAULT_PG_URL, fmt, freePort, machineLine, median, postgresVersion, quantile, sleep, sortedCopy, spread, urlWithSearchPath,
} from './common.ts';

const PG_URL = process.env['WEFT_BENCH_PG'] ?? DEFAULT_PG_URL;
const SCHEMA = 'weft_bench_scale';
const RUNS = Number(process.env['WEFT_BENCH_SCALE_RUNS'] ?? 1000);
const WORKER_COUNTS = (process.env['WEFT_BENCH_SCALE_WORKERS'] ?? '1,2,4').split(',').map(Number);
// 8, not 16: 4 workers × 16 slots need ~90 connections, the whole of a default max_connections
// (100); one worker measured the same with 8 as with 16 (the steps are trivial: the 2 cores are the limit).
const CONCURRENCY = Number(process.env['WEFT_BENCH_SCALE_CONCURRENCY'] ?? 8);
const ROUNDS = Number(process.env['WEFT_BENCH_SCALE_ROUNDS'] ?? 3);
const PACED_RUNS = Number(process.env['WEFT_BENCH_SCALE_PACED'] ?? 200);
const STEPS = 10;
const NODE_ARGS = (process.env['WEFT_BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
/** The enqueuer's pool is small: it must leave connections to the workers. */
const ENQUEUER_POOL = 8;
const WARM_UP_RUNS = 100;
const WEFT_BIN = fileURLToPath(new URL('../bin/weft.mjs', import.meta.url));

const TARGET_STEPS_PER_SEC = 2000;
const TARGET_P99_MS = 10;

const chain = {
  name: 'bench scale-out chain 10',
  steps: Object.fromEntries(Array.from({ length: STEPS }, (_, i) => [`s${i}`, { type: 'transform', expr: '1', ...(i > 0 ? { needs: [`s${i - 1}`] } : {}) }])),
};

// ---------------------------------------------------------------- worker processes

interface WorkerProcess {
  child: ChildProcess;
  port: number;
  /** Last lines of its stderr (JSON logs), shown if it dies. */
  log: string[];
}

function spawnWorker(url: string, port: number): WorkerProcess {
  const child = spawn(process.execPath, [...NODE_ARGS, WEFT_BIN, 'worker', '--db', url, '--concurrency', String(CONCURRENCY), '--health-port', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    log.push(...chunk.split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - 20));
  });
  return { child, port, log };
}

async function waitReady(w: WorkerProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (w.child.exitCode !== null) throw new Error(`worker exited with ${w.child.exitCode}:\n${w.log.join('\n')}`);
    try {
      const res = await fetch(`http://127.0.0.1:${w.port}/readyz`);
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw new Error(`worker on port ${w.port} not ready after ${timeoutMs} ms:\n${w.log.join('\n')}`);
}

async function startWorkers(n: number, url: string): Promise<WorkerProcess[]> {
  const workers: WorkerProcess[] = [];
  try {
    for (let i = 0; i < n; i++) workers.push(spawnWorker(url, await freePort()));
    await Promise.all(workers.map((w) => waitReady(w)));
    return workers;
  } catch (error) {
    await stopWorkers(workers);
    throw error;
  }
}

/** SIGTERM (the worker drains and exits), then SIGKILL if it is still there after 15 s. */
async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  await Promise.all(workers.map(async ({ child }) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // in case a failure left it frozen by drain()
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }));
}

// ---------------------------------------------------------------- metrics scraping

/** Cumulative bucket counts of weft_claim_latency_seconds, by upper bound in seconds. */
type Buckets = Map<number, number>;

async function scrapeClaimLatency(port: number): Promise<Buckets> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const buckets: Buckets = new Map();
  for (const m of text.matchAll(/^weft_claim_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) {
    buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

async function scrapeAll(workers: readonly WorkerProcess[]): Promise<Buckets> {
  const total: Buckets = new Map();
  for (const b of await Promise.all(workers.map((w) => scrapeClaimLatency(w.port)))) {
    for (const [le, n] of b) total.set(le, (total.get(le) ?? 0) + n);
  }
  return total;
}

function diffBuckets(after: Buckets, before: Buckets): Buckets {
  return new Map([...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)]));
}

/** The smallest bucket bound holding the q-quantile: "≤ x ms", Prometheus-style. */
function bucketQuantile(b: Buckets, q: number): string {
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const total = b.get(Infinity) ?? 0;
  if (total === 0) return 'n/a';
  const le = bounds.find((bound) => b.get(bound)! >= q * total)!;
  return le === Infinity ? '> 10 s' : `≤ ${fmt(le * 1000, le < 0.001 ? 1 : 0)} ms`;
}

// ---------------------------------------------------------------- enqueueing and reading back

async function enqueueBurst(engine: Engine, versionId: string, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, () => engine.startRun({ versionId })));
}

/** Open loop: run i is started at t0 + i / rate, whether or not earlier ones are done. */
async function enqueuePaced(engine: Engine, versionId: string, n: number, runsPerSec: number): Promise<string[]> {
  const t0 = performance.now();
  const started: Promise<string>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = t0 + (i * 1000) / runsPerSec - performance.now();
    if (wait > 0) await sleep(wait);
    started.push(engine.startRun({ versionId }));
  }
  return Promise.all(started);
}

/**
 * Waits until no run of the schema is live (every run in it is the bench's), then checks this
 * batch's runs once. The poll is an index scan of the live runs: an `id = ANY(1,000 ids)`
 * filter over every run of the schema each 100 ms cost PostgreSQL more CPU than some of the
 * work measured (and was JIT-compiled), and that CPU was counted as the workers'.
 */
async function waitAllTerminal(db: Db, runIds: readonly string[], timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ live: number }>(
      `SELECT count(*)::int AS live FROM runs WHERE status IN ('queued', 'running', 'paused', 'waiting')`);
    const live = rows[0]!.live;
    if (live === 0) break;
    if (Date.now() > deadline) throw new Error(`${live} runs still live after ${timeoutMs} ms`);
    // Polled rarely: the wall time is read from the rows, not from when this loop notices.
    await sleep(100);
  }
  const { rows } = await db.query<{ done: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS done, count(*) FILTER (WHERE status <> 'succeeded')::int AS failed
     FROM runs WHERE id = ANY($1::uuid[])`, [runIds]);
  const { done, failed } = rows[0]!;
  if (failed > 0) throw new Error(`${failed} bench runs did not succeed`);
  if (done !== runIds.length) throw new Error(`only ${done}/${runIds.length} bench runs were found`);
}

/** First enqueue to last terminal, from the rows' own timestamps (ms). */
async function wallMs(db: Db, runIds: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ ms: number }>(
    `SELECT extract(epoch FROM max(finished_at) - min(created_at)) * 1000 AS ms FROM runs WHERE id = ANY($1::uuid[])`, [runIds]);
  return Number(rows[0]!.ms);
}

interface Latencies {
  all: number[];
  /** Steps claimed from the queue (they were announced with a step_queued event). */
  queued: number[];
  /** Steps claimed by the worker that completed their predecessor, in the same transaction. */
  chained: number[];
}

async function claimLatencies(db: Db, runIds: readonly string[]): Promise<Latencies> {
  const { rows } = await db.query<{ ms: number; queued: boolean }>(
    `WITH s AS (
       SELECT run_id, step_id, started_at, finished_at, substring(step_id FROM 2)::int AS idx
       FROM step_runs WHERE run_id = ANY($1::uuid[])
     )
     SELECT extract(epoch FROM s.started_at - coalesce(p.finished_at, r.created_at)) * 1000 AS ms,
            EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = s.run_id AND e.step_id = s.step_id AND e.type = 'step_queued') AS queued
     FROM s JOIN runs r ON r.id = s.run_id
     LEFT JOIN s p ON p.run_id = s.run_id AND p.idx = s.idx - 1`, [runIds]);
  const all = rows.map((r) => Number(r.ms));
  return {
    all,
    queued: rows.filter((r) => r.queued).map((r) => Number(r.ms)),
    chained: rows.filter((r) => !r.queued).map((r) => Number(r.ms)),
  };
}

// ---------------------------------------------------------------- one configuration

interface Round {
  stepsPerSec: number;
  /** CPU used during the burst, by side. */
  cpu: CpuUse;
  wallMs: number;
  enqueueMs: number;
  burst: Latencies;
  burstMetrics: Buckets;
  paced: Latencies;
  pacedRate: number;
}

function describeLatency(label: string, ms: readonly number[]): string {
  const s = sortedCopy(ms);
  return `${label.padEnd(34)} n=${String(s.length).padStart(5)}  p50 ${fmt(quantile(s, 0.5), 0)} ms  p99 ${fmt(quantile(s, 0.99), 0)} ms  max ${fmt(s[s.length - 1] ?? NaN, 0)} ms`;
}

async function measureRound(engine: Engine, db: Db, workers: readonly WorkerProcess[], versionId: string): Promise<Round> {
  const before = await scrapeAll(workers);
  const pids = workers.map((w) => w.child.pid!);
  const cpuBefore = await cpuSnapshot(db, pids);
  const t0 = performance.now();
  const ids = await enqueueBurst(engine, versionId, RUNS);
  const enqueueMs = performance.now() - t0;
  await waitAllTerminal(db, ids);
  const cpu = await cpuSince(cpuBefore, db, pids);
  const burstMetrics = diffBuckets(await scrapeAll(workers), before);
  const wall = await wallMs(db, ids);
  const stepsPerSec = (RUNS * STEPS) / (wall / 1000);

  // Paced at half the burst's run rate: below capacity, so a ready step finds a free slot.
  const pacedRate = Math.max(1, stepsPerSec / STEPS / 2);
  const pacedIds = await enqueuePaced(engine, versionId, PACED_RUNS, pacedRate);
  await waitAllTerminal(db, pacedIds);

  return {
    stepsPerSec, cpu, wallMs: wall, enqueueMs, burstMetrics, pacedRate,
    burst: await claimLatencies(db, ids),
    paced: await claimLatencies(db, pacedIds),
  };
}

/** CPU per step completion, by side: which one the two cores ran out for. */
function describeCpu(cpu: CpuUse): string {
  const perStep = (seconds: number) => `${fmt((seconds * 1000) / (RUNS * STEPS), 2)} ms`;
  return `${'burst, CPU per step'.padEnd(34)} workers ${perStep(cpu.workers)}, PostgreSQL backends of this database ${perStep(cpu.postgres)}, ` +
    `enqueuer (this process) ${perStep(cpu.self)}, every other process ${perStep(cpu.others)}; machine ${fmt(cpu.machineBusy * 100)} % busy`;
}

function printRound(n: number, round: number, r: Round): void {
  console.log(`  round ${round}: ${fmt(r.stepsPerSec)} steps/s (${fmt(RUNS * STEPS)} steps in ${fmt(r.wallMs)} ms; enqueueing the ${fmt(RUNS)} runs took ${fmt(r.enqueueMs)} ms)`);
  console.log(`    ${describeCpu(r.cpu)}`);
  console.log(`    ${describeLatency('burst, every step ready → started', r.burst.all)}`);
  console.log(`    ${describeLatency('burst, chained (same transaction)', r.burst.chained)}`);
  console.log(`    ${describeLatency('burst, claimed from the queue', r.burst.queued)}`);
  console.log(`    ${'burst, /metrics histogram (all)'.padEnd(34)} p50 ${bucketQuantile(r.burstMetrics, 0.5)}, p99 ${bucketQuantile(r.burstMetrics, 0.99)} (bucket bounds, ${n} worker${n > 1 ? 's' : ''} summed)`);
  console.log(`    ${describeLatency(`paced ${fmt(r.pacedRate, 0)} runs/s, from the queue`, r.paced.queued)}`);
  console.log(`    ${describeLatency('paced, every step ready → started', r.paced.all)}`);
}

/**
 * A worker's pool holds up to --concurrency + 4 connections (src/cli/worker-command.ts) and it
 * LISTENs on two more. On a server with max_connections 100, shared with other sessions, 4 × 16
 * slots would not fit: check before starting rather than measure a starved run.
 */
const connectionsPerWorker = CONCURRENCY + 6;

async function checkConnectionBudget(workers: number): Promise<string> {
  const db = await openPg({ connectionString: PG_URL, max: 1 });
  try {
    const { rows } = await db.query<{ usable: number; used: number }>(
      `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int AS usable,
              (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS used`);
    const { usable, used } = rows[0]!;
    const need = workers * connectionsPerWorker + ENQUEUER_POOL;
    const line = `connections: up to ${need} needed (${workers} × ${connectionsPerWorker} + ${ENQUEUER_POOL}), ${usable - used + 1} free of ${usable}`;
    if (need > usable - used + 1) throw new Error(`${line}: lower WEFT_BENCH_SCALE_CONCURRENCY or wait for other sessions to finish`);
    return line;
  } finally {
    await db.close();
  }
}

/** A fresh schema per configuration, so every configuration starts from the same empty tables. */
async function resetSchema(): Promise<void> {
  await adminExec(PG_URL, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`, `CREATE SCHEMA ${SCHEMA}`);
}

interface Configuration {
  /** Steps/s draining runs enqueued while the workers were stopped. */
  drain: number;
  rounds: Round[];
}

/** Steps/s from the first step started to the last finished: the workers' own pace. */
async function drainStepsPerSec(db: Db, runIds: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ ms: number }>(
    `SELECT extract(epoch FROM max(finished_at) - min(started_at)) * 1000 AS ms FROM step_runs WHERE run_id = ANY($1::uuid[])`, [runIds]);
  return (runIds.length * STEPS) / (Number(rows[0]!.ms) / 1000);
}

/**
 * Drain: the workers are frozen (SIGSTOP) while the runs are enqueued, then thawed (SIGCONT), so
 * they find the whole queue full and no enqueuer competes with them for the two cores. Frozen,
 * they hold no lease (every earlier run is finished) and miss nothing: NOTIFYs wait in their
 * sockets, and their first claim takes what is queued.
 */
async function drain(engine: Engine, db: Db, workers: readonly WorkerProcess[], versionId: string): Promise<number> {
  for (const w of workers) w.child.kill('SIGSTOP');
  let ids: string[];
  try {
    ids = await enqueueBurst(engine, versionId, RUNS);
  } finally {
    for (const w of workers) w.child.kill('SIGCONT');
  }
  await waitAllTerminal(db, ids);
  return drainStepsPerSec(db, ids);
}

async function benchConfiguration(n: number): Promise<Configuration> {
  await resetSchema();
  const db = await openPg({ connectionString: PG_URL, schema: SCHEMA, max: ENQUEUER_POOL });
  await migrate(db);
  const engine = new Engine({ db, worker: false });
  const workers = await startWorkers(n, urlWithSearchPath(PG_URL, SCHEMA));
  try {
    const { versionId } = await engine.registerWorkflow(chain);
    await waitAllTerminal(db, await enqueueBurst(engine, versionId, WARM_UP_RUNS));
    const drained = await drain(engine, db, workers, versionId);
    console.log(`  drain: ${fmt(drained)} steps/s (${fmt(RUNS)} runs enqueued while the workers were stopped; first step started → last finished)`);
    const rounds: Round[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const r = await measureRound(engine, db, workers, versionId);
      printRound(n, round, r);
      rounds.push(r);
    }
    return { drain: drained, rounds };
  } finally {
    await stopWorkers(workers);
    await db.close();
  }
}


// ---------------------------------------------------------------- summary

interface Summary {
  workers: number;
  drain: number;
  stepsPerSec: number[];
  queuedP99: number[];
  allP99: number[];
  pacedQueuedP99: number[];
}

function summarise(workers: number, { drain, rounds }: Configuration): Summary {
  const p99 = (ms: number[]) => quantile(sortedCopy(ms), 0.99);
  return {
    workers,
    drain,
    stepsPerSec: rounds.map((r) => r.stepsPerSec),
    allP99: rounds.map((r) => p99(r.burst.all)),
    queuedP99: rounds.map((r) => p99(r.burst.queued)),
    pacedQueuedP99: rounds.map((r) => p99(r.paced.queued)),
  };
}

function printSummary(summaries: readonly Summary[]): void {
  const base = summaries[0];
  const ratio = (value: number, of: number | undefined) => `${(of === undefined ? 1 : value / of).toFixed(2)}×`;
  console.log(`\n## Summary (burst: median of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, spread = min–max of the rounds; drain: one pass)`);
  console.log('  workers | burst steps/s (spread)  | vs 1st | drain steps/s | vs 1st | burst p99 all | burst p99 queue | paced p99 queue');
  for (const s of summaries) {
    const rate = median(s.stepsPerSec);
    console.log(`  ${String(s.workers).padStart(7)} | ${`${fmt(rate)} (${spread(s.stepsPerSec)})`.padEnd(23)} | ${ratio(rate, base && median(base.stepsPerSec)).padStart(6)} | ` +
      `${fmt(s.drain).padStart(13)} | ${ratio(s.drain, base?.drain).padStart(6)} | ` +
      `${`${fmt(median(s.allP99))} ms`.padStart(13)} | ${`${fmt(median(s.queuedP99))} ms`.padStart(15)} | ${`${fmt(median(s.pacedQueuedP99))} ms`.padStart(15)}`);
  }
  const four = summaries.find((s) => s.workers === 4);
  console.log(`\n  targets (printed, not asserted): ≥ ${fmt(TARGET_STEPS_PER_SEC)} step completions/s with 4 workers` +
    `${four ? ` — measured ${fmt(median(four.stepsPerSec))} (burst), ${fmt(four.drain)} (drain)` : ''}; p99 ready → started ≤ ${TARGET_P99_MS} ms`);
}

async function main(): Promise<void> {
  console.log(`weft scale-out bench — ${new Date().toISOString()}`);
  console.log(await machineLine(`${await postgresVersion(PG_URL)} on the same machine`));
  console.log('note: the 2 cores are shared by PostgreSQL, every worker process and this bench process (which enqueues the runs);');
  console.log('      more workers add processes, not cores — the ratios below measure contention as much as scale-out.');
  console.log(`workload: ${fmt(RUNS)} runs × ${STEPS}-step chain of transform "1" (burst), then ${PACED_RUNS} runs paced at half the burst's rate;` +
    ` before them, ${WARM_UP_RUNS} warm-up runs and a drain of ${fmt(RUNS)} runs enqueued while the workers are stopped; workers: ${WORKER_COUNTS.join(', ')} × --concurrency ${CONCURRENCY}; ${ROUNDS} round(s) each`);
  console.log(`database: ${PG_URL} schema ${SCHEMA} (recreated per configuration, dropped at the end)`);
  console.log(await checkConnectionBudget(Math.max(...WORKER_COUNTS)));
  const summaries: Summary[] = [];
  try {
    for (const n of WORKER_COUNTS) {
      console.log(`\n## ${n} worker process${n > 1 ? 'es' : ''} × --concurrency ${CONCURRENCY}`);
      summaries.push(summarise(n, await benchConfiguration(n)));
    }
  } finally {
    await adminExec(PG_URL, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  }
  printSummary(summaries);
}

await main();
