/**
 * Chaos: real `weft worker` processes against PostgreSQL, killed (-9), frozen (SIGSTOP),
 * terminated (SIGTERM), and a PostgreSQL server restarted under them. Each test checks the
 * durable record afterwards: every run terminal, one committed output per step, attempts
 * explained by lease expiries, history never rewritten.
 *
 * Needs PostgreSQL at 127.0.0.1:5432 (WEFT_TEST_DATABASE_URL) — required when CI=true, skipped
 * otherwise — and, for the restart test, initdb/pg_ctl to run a cluster of its own.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Engine } from '../src/engine/engine.ts';
import type { Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPg } from '../src/store/pg-db.ts';
import { PG_URL, openTestDb } from './helpers/db.ts';
import { startPgCluster } from './helpers/pg-cluster.ts';
import { ProcessGroup, sleep, until, type WeftProcess } from './helpers/processes.ts';

/** A connection string that puts every session of a worker in `schema`. */
function withSearchPath(url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

interface Harness {
  db: Db;
  /** For `weft worker --db`. */
  url: string;
  engine: Engine;
  procs: ProcessGroup;
}

/**
 * A schema of its own on the shared server, an engine without a worker (to start runs), and a
 * process group; after the test every child is killed first, then the schema is dropped.
 */
async function harness(t: TestContext): Promise<Harness | undefined> {
  const db = await openTestDb('postgres', t, 6);
  if (!db) return undefined;
  const procs = new ProcessGroup();
  t.after(async () => {
    await procs.killAll();
    await db.close();
  });
  const { rows } = await db.query<{ schema: string }>('SELECT current_schema() AS schema');
  return { db, url: withSearchPath(PG_URL, rows[0]!.schema), engine: new Engine({ db, worker: false }), procs };
}

function randomInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/** A chain s0 → s1 → … of `delay` steps with literal durations drawn in [lo, hi] ms now. */
function delayChain(name: string, length: number, lo: number, hi: number, extra: Record<string, unknown> = {}) {
  const steps: Record<string, unknown> = {};
  for (let i = 0; i < length; i++) {
    steps[`s${i}`] = { type: 'delay', ms: randomInt(lo, hi), ...(i > 0 ? { needs: [`s${i - 1}`] } : {}), ...extra };
  }
  return { name, steps, outputs: { last: `$s${length - 1}.waited_ms` } };
}

async function startRuns(engine: Engine, versionIds: readonly string[], count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = Array.from({ length: Math.min(10, count - i) }, (_, j) => engine.startRun({ versionId: versionIds[(i + j) % versionIds.length]! }));
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

async function countNonTerminalRuns(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')`);
  return rows[0]!.n;
}

async function runStatuses(db: Db): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM runs GROUP BY status');
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

interface StepAudit {
  run_id: string;
  step_id: string;
  status: string;
  attempt: number;
  outputs: number;
  output_attempt: number | null;
  expired: number;
  succeeded_events: number;
}

/** Per step: status, attempt, committed outputs, lease expiries and success events. */
async function auditSteps(db: Db): Promise<StepAudit[]> {
  const { rows } = await db.query<StepAudit>(
    `SELECT s.run_id, s.step_id, s.status, s.attempt,
       coalesce(a.n, 0) AS outputs, a.attempt AS output_attempt,
       coalesce(e.expired, 0) AS expired, coalesce(e.succeeded, 0) AS succeeded_events
     FROM step_runs s
     LEFT JOIN (SELECT run_id, step_id, count(*)::int AS n, max(attempt) AS attempt FROM artifacts WHERE name = 'output'
                GROUP BY run_id, step_id) a ON a.run_id = s.run_id AND a.step_id = s.step_id
     LEFT JOIN (SELECT run_id, step_id, count(*) FILTER (WHERE type = 'lease_expired')::int AS expired,
                  count(*) FILTER (WHERE type = 'step_succeeded')::int AS succeeded
                FROM run_events WHERE step_id IS NOT NULL GROUP BY run_id, step_id) e ON e.run_id = s.run_id AND e.step_id = s.step_id
     ORDER BY s.run_id, s.step_id`,
  );
  return rows;
}

/** Asserts exactly one committed output per succeeded step, by its last attempt, and one success event. */
function assertOneOutputPerStep(audit: readonly StepAudit[], expectedSteps: number): void {
  assert.equal(audit.length, expectedSteps, 'step rows');
  const show = (rows: StepAudit[]) => JSON.stringify(rows.slice(0, 5));
  const notSucceeded = audit.filter((s) => s.status !== 'succeeded');
  assert.equal(notSucceeded.length, 0, `steps not succeeded: ${show(notSucceeded)}`);
  const badOutputs = audit.filter((s) => s.outputs !== 1 || s.output_attempt !== s.attempt);
  assert.equal(badOutputs.length, 0, `steps without exactly one output committed by their last attempt: ${show(badOutputs)}`);
  const badEvents = audit.filter((s) => s.succeeded_events !== 1);
  assert.equal(badEvents.length, 0, `steps without exactly one step_succeeded event: ${show(badEvents)}`);
}

async function stepRow(db: Db, runId: string, stepId: string) {
  const { rows } = await db.query<{ status: string; attempt: number; lease_owner: string | null; started_at: Date | null; finished_at: Date | null }>(
    'SELECT status, attempt, lease_owner, started_at, finished_at FROM step_runs WHERE run_id = $1 AND step_id = $2', [runId, stepId]);
  return rows[0]!;
}

/** Everything durable about one run, to compare before and after. */
async function runRecord(db: Db, runId: string) {
  const run = await db.query('SELECT status, outputs, error, finished_at FROM runs WHERE id = $1', [runId]);
  const steps = await db.query('SELECT step_id, status, attempt, lease_owner, lease_expires_at, finished_at, error FROM step_runs WHERE run_id = $1 ORDER BY step_id', [runId]);
  const artifacts = await db.query('SELECT step_id, name, version, content, is_latest, attempt, created_at FROM artifacts WHERE run_id = $1 ORDER BY step_id, name, version', [runId]);
  const events = await db.query('SELECT id::text AS id, step_id, type, attempt, data FROM run_events WHERE run_id = $1 ORDER BY id', [runId]);
  return { run: run.rows, steps: steps.rows, artifacts: artifacts.rows, events: events.rows };
}

async function eventsOf(db: Db, runId: string) {
  const { rows } = await db.query<{ step_id: string | null; type: string; attempt: number | null; worker: string | null; created_at: Date }>(
    `SELECT step_id, type, attempt, data->>'worker' AS worker, created_at FROM run_events WHERE run_id = $1 ORDER BY id`, [runId]);
  return rows;
}

async function assertCleanExit(p: WeftProcess): Promise<void> {
  const exit = await p.terminate(30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, `${p.name} exit after SIGTERM; stderr tail:\n${p.stderr.slice(-2000)}`);
}

void describe('chaos: worker processes on PostgreSQL', () => {
  void test('SIGKILL mid-step: a worker killed every second loses nothing and duplicates nothing', { timeout: 240_000 }, async (t) => {
    const h = await harness(t);
    if (!h) return;
    const { db, url, engine, procs } = h;
    // 200 runs × 10 steps of 20–200 ms, as the scale-out issue asks. On this 2-core machine a
    // restarted worker spends ~1.2 s of CPU booting tsx, so at one kill a second booting eats
    // much of the machine: 100 runs measured 12–90 s depending on load, 200 about 70 s.
    // Runs are launched 20 a second so that work is outstanding for at least 10 kills.
    // Each step may retry (fixed 20 ms): a step killed 3 times in a row would otherwise fail
    // by design (LEASE_LOSS_ALLOWANCE), which at ~1 kill/s happened in about 1 test in 4.
    // Attempts are checked against lease expiries below, so retries cannot hide a bug.
    const RUNS = 200;
    const STEPS = 10;
    const spec = { url, concurrency: 8, leaseMs: 1000 };
    const pool: WeftProcess[] = [procs.worker(spec), procs.worker(spec), procs.worker(spec)];
    await Promise.all(pool.map((p) => p.waitForStart()));
    const versions: string[] = [];
    for (let d = 0; d < 4; d++) {
      const def = delayChain(`chaos-chain-${d}`, STEPS, 20, 200, { retry: { max: 20, backoff: 'fixed', base_ms: 20, jitter: false } });
      versions.push((await engine.registerWorkflow(def)).versionId);
    }
    const started = Date.now();
    const runIds: string[] = [];
    let launched = false;
    const launcher = (async () => {
      for (let i = 0; i < RUNS; i += 20) {
        runIds.push(...(await startRuns(engine, versions, 20)));
        await sleep(1000);
      }
    })().finally(() => (launched = true));
    launcher.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

    // Every second, kill -9 a random started worker and start a replacement at once. (Picking
    // only workers that hold steps was tried: it kept killing the one fresh worker that had
    // just claimed the retried steps, driving a few steps to 7+ attempts and the test to 70 s.)
    const kills: { victim: string; inFlight: number; outstandingRuns: number }[] = [];
    const deadline = Date.now() + 60_000; // bounds the test on a starved machine
    for (;;) {
      await sleep(1000);
      const outstandingRuns = await countNonTerminalRuns(db);
      if ((launched && outstandingRuns === 0) || Date.now() > deadline) break;
      const candidates = pool.map((p, i) => ({ p, i })).filter(({ p }) => p.alive && p.workerId !== undefined);
      if (candidates.length === 0) continue;
      const { p: victim, i } = candidates[Math.floor(Math.random() * candidates.length)]!;
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM step_runs WHERE status = 'running' AND lease_owner = $1`, [victim.workerId]);
      await victim.kill9();
      kills.push({ victim: victim.workerId!, inFlight: rows[0]!.n, outstandingRuns });
      const fresh = procs.worker(spec);
      pool[i] = fresh;
      fresh.waitForStart().catch(() => {}); // awaited below; a worker killed later has started
    }
    await launcher;
    await until(async () => ((await countNonTerminalRuns(db)) === 0 ? true : undefined), 120_000, 'every run terminal', 200);
    const elapsed = Date.now() - started;
    const outstandingKills = kills.filter((k) => k.outstandingRuns > 0).length;
    const inFlightKills = kills.filter((k) => k.inFlight > 0 && k.outstandingRuns > 0).length;
    t.diagnostic(`${RUNS} runs × ${STEPS} steps in ${elapsed} ms; ${kills.length} kills, ${outstandingKills} while runs were open, ${inFlightKills} of a worker holding steps`);

    const statuses = await runStatuses(db);
    if (statuses['succeeded'] !== RUNS) {
      const { rows } = await db.query(
        `SELECT e.run_id, e.step_id, e.type, e.attempt, e.data, e.created_at FROM run_events e
         JOIN step_runs s ON s.run_id = e.run_id AND s.step_id = e.step_id WHERE s.status <> 'succeeded' ORDER BY e.id LIMIT 60`);
      assert.fail(`runs: ${JSON.stringify(statuses)}; events of the steps that did not succeed:\n${rows.map((r) => JSON.stringify(r)).join('\n')}`);
    }
    assert.equal(runIds.length, RUNS);
    const audit = await auditSteps(db);
    assertOneOutputPerStep(audit, RUNS * STEPS);
    // Attempts are explained by lease expiries: each ended attempt but the last expired.
    const unexplained = audit.filter((s) => s.attempt !== 1 + s.expired);
    assert.equal(unexplained.length, 0, `attempt ≠ 1 + lease_expired events: ${JSON.stringify(unexplained.slice(0, 5))}`);
    assert.ok(audit.every((s) => s.attempt === 1 || s.expired > 0), 'attempt > 1 only with a lease_expired event');
    const rerun = audit.filter((s) => s.attempt > 1).length;
    const histogram: Record<number, number> = {};
    for (const s of audit) histogram[s.attempt] = (histogram[s.attempt] ?? 0) + 1;
    t.diagnostic(`steps by attempt: ${JSON.stringify(histogram)}`);
    assert.ok(outstandingKills >= 8, `at least 8 kills while runs were open (got ${outstandingKills})`);
    assert.ok(inFlightKills >= 4, `at least 4 kills of a worker holding steps (got ${inFlightKills} of ${kills.length})`);
    assert.ok(rerun > 0, 'some steps were re-run after their worker was killed');
    t.diagnostic(`${rerun} steps re-run after a kill`);

    // The survivors stop cleanly.
    await Promise.all(pool.map((p) => p.waitForStart()));
    for (const p of pool) await assertCleanExit(p);
  });

  void test('slow, not dead: a frozen worker is fenced out of a step another worker took over', { timeout: 60_000 }, async (t) => {
    const h = await harness(t);
    if (!h) return;
    const { db, url, engine, procs } = h;
    const a = procs.worker({ url, concurrency: 1, leaseMs: 1000 }, 'A');
    const aId = await a.waitForStart();

    // Part 1: A is frozen holding `slow` (2.5 s > its 1 s lease); B takes over and finishes
    // the run; A thaws after that, completes its stale attempt, and is fenced out.
    const v1 = await engine.registerWorkflow({
      name: 'slow not dead',
      steps: { slow: { type: 'delay', ms: 2500, retry: { max: 0, base_ms: 10 } }, after: { type: 'transform', needs: ['slow'], expr: '$slow.waited_ms + 1' } },
      outputs: { result: '$after' },
    });
    const r1 = await engine.startRun({ versionId: v1.versionId });
    await until(async () => {
      const s = await stepRow(db, r1, 'slow');
      return s.status === 'running' && s.lease_owner === aId ? s : undefined;
    }, 10_000, 'A holds slow');
    a.signal('SIGSTOP');
    const b = procs.worker({ url, concurrency: 1, leaseMs: 1000 }, 'B');
    const bId = await b.waitForStart();
    const takeover = await until(async () => {
      const s = await stepRow(db, r1, 'slow');
      return s.attempt === 2 && (s.lease_owner === bId || s.status === 'succeeded') ? s : undefined;
    }, 15_000, 'B takes slow over');
    assert.ok(takeover.attempt === 2);
    assert.equal(await engine.waitForRun(r1, 15_000), 'succeeded');
    const before = await runRecord(db, r1);
    assert.deepEqual(before.run[0]!['outputs'], { result: 2501 });

    a.signal('SIGCONT');
    const lost = await a.waitForLine((l) => l['run'] === r1 && (l.message ?? '').includes('lost the lease'), 10_000, '"lost the lease" for r1');
    assert.equal(lost.message, 'lost the lease; result discarded', 'A tried to complete its stale attempt and was fenced out');
    assert.equal(lost['attempt'], 1);
    await sleep(1500); // A's heartbeat and sweeper have run several times by now
    const after = await runRecord(db, r1);
    assert.deepEqual(after, before, 'the stale worker changed nothing: run, steps, artifacts, events');
    const slowOutputs = after.artifacts.filter((x) => x['step_id'] === 'slow');
    assert.equal(slowOutputs.length, 1);
    assert.equal(slowOutputs[0]!['attempt'], 2, 'the output is the takeover attempt\'s');
    const byA = (await eventsOf(db, r1)).filter((e) => e.worker === aId);
    assert.deepEqual(byA.map((e) => [e.step_id, e.type, e.attempt]), [['slow', 'step_started', 1]], 'A\'s only event is its claim');

    // Part 2: the same, but the frozen worker thaws while the other still holds the step.
    // Its heartbeat must change 0 rows (fenced on attempt and owner), so it abandons its
    // attempt at its next heartbeat — seconds before its own 6 s delay would end — and the
    // row keeps the new owner throughout. An unfenced heartbeat would keep the stale attempt
    // alive until the delay ended (and log "result discarded" instead). (base_ms: the retry
    // after a lease loss waits 10 ms instead of the default 1 s.)
    const v2 = await engine.registerWorkflow({ name: 'slow not dead 2', steps: { slow2: { type: 'delay', ms: 6000, retry: { max: 0, base_ms: 10 } } } });
    const r2 = await engine.startRun({ versionId: v2.versionId });
    const first = await until(async () => {
      const s = await stepRow(db, r2, 'slow2');
      return s.status === 'running' && s.attempt === 1 ? s : undefined;
    }, 10_000, 'someone claims slow2', 10);
    const [stale, fresh] = first.lease_owner === aId ? [a, b] : [b, a];
    stale.signal('SIGSTOP');
    const freshId = fresh.workerId!;
    await until(async () => {
      const s = await stepRow(db, r2, 'slow2');
      return s.status === 'running' && s.attempt === 2 && s.lease_owner === freshId ? s : undefined;
    }, 10_000, `${fresh.name} takes slow2 over`, 20);
    const thawedAt = Date.now();
    stale.signal('SIGCONT');
    const abandoned = stale.waitForLine((l) => l['run'] === r2 && (l.message ?? '').includes('lost the lease'), 10_000, '"lost the lease" for r2');
    // Until the stale worker gives up, the row stays the new owner's.
    let gaveUp = false;
    void abandoned.then(() => (gaveUp = true), () => (gaveUp = true));
    while (!gaveUp) {
      const s = await stepRow(db, r2, 'slow2');
      assert.equal(s.attempt, 2);
      assert.equal(s.lease_owner, freshId, 'the new owner keeps the lease while the stale worker is awake');
      assert.equal(s.status, 'running');
      await Promise.race([abandoned.catch(() => {}), sleep(25)]);
    }
    const line = await abandoned;
    assert.equal(line.message, 'lost the lease; attempt abandoned', 'the stale heartbeat found its lease gone');
    const abandonedAt = Date.parse(String(line['time']));
    // Its heartbeat is due at once on waking (every 333 ms): allow for a loaded machine.
    assert.ok(abandonedAt - thawedAt < 3000, `abandoned ${abandonedAt - thawedAt} ms after waking`);
    assert.ok(abandonedAt < first.started_at!.getTime() + 6000,
      `abandoned at +${abandonedAt - first.started_at!.getTime()} ms, before its 6 s delay would have ended`);
    t.diagnostic(`stale worker abandoned ${abandonedAt - thawedAt} ms after waking, ${abandonedAt - first.started_at!.getTime()} ms into its attempt`);
    assert.equal(await engine.waitForRun(r2, 15_000), 'succeeded');
    const rec2 = await runRecord(db, r2);
    assert.equal(rec2.artifacts.length, 1);
    assert.equal(rec2.artifacts[0]!['attempt'], 2);
    assert.equal((await eventsOf(db, r2)).filter((e) => e.worker === stale.workerId).length, 1, 'the stale worker wrote only its claim');

    await assertCleanExit(a);
    await assertCleanExit(b);
  });

  void test('PostgreSQL restart: runs in flight all finish, none duplicated, workers survive', { timeout: 150_000 }, async (t) => {
    const procs = new ProcessGroup();
    const opened: { db?: Db } = {};
    // Registered before the cluster's own teardown: children and pool go first.
    t.after(async () => {
      await procs.killAll();
      await opened.db?.close();
    });
    const cluster = await startPgCluster(t);
    if (!cluster) return;
    const db = (opened.db = await openPg({ connectionString: cluster.url, max: 4 }));
    await migrate(db);
    const engine = new Engine({ db, worker: false });
    const spec = { url: cluster.url, concurrency: 8, leaseMs: 2000 };
    const workers = [procs.worker(spec, 'W1'), procs.worker(spec, 'W2')];
    await Promise.all(workers.map((w) => w.waitForStart()));
    const RUNS = 100;
    const STEPS = 8;
    const versions: string[] = [];
    for (let d = 0; d < 3; d++) versions.push((await engine.registerWorkflow(delayChain(`restart-${d}`, STEPS, 50, 100))).versionId);
    await startRuns(engine, versions, RUNS);
    await until(async () => {
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM step_runs WHERE status = 'succeeded'`);
      return rows[0]!.n >= 50 ? true : undefined;
    }, 20_000, 'work under way');
    const { rows: inFlight } = await db.query<{ running: number; open: number }>(
      `SELECT (SELECT count(*)::int FROM step_runs WHERE status = 'running') AS running,
              (SELECT count(*)::int FROM runs WHERE status = 'running') AS open`);
    assert.ok(inFlight[0]!.running > 0 && inFlight[0]!.open > 0, `work in flight at the restart: ${JSON.stringify(inFlight[0])}`);

    const restartAt = Date.now();
    await cluster.stop('fast');
    await sleep(2000);
    await cluster.start();
    t.diagnostic(`restart with ${inFlight[0]!.running} steps running in ${inFlight[0]!.open} open runs took ${Date.now() - restartAt} ms`);

    const report = (w: WeftProcess) => `${w.name} ${w.alive ? 'alive' : `died: ${JSON.stringify(w.exit)}`}; stderr tail:\n${w.stderr.slice(-3000)}`;
    await until(async () => {
      if (workers.some((w) => !w.alive)) throw new Error(`a worker died during the restart:\n${workers.map(report).join('\n')}`);
      try {
        return (await countNonTerminalRuns(db)) === 0 ? true : undefined;
      } catch {
        return undefined; // the test's own pool reconnecting
      }
    }, 60_000 - (Date.now() - restartAt), 'every run terminal within 60 s of the restart', 250).catch(async (error: unknown) => {
      const runs = await runStatuses(db).catch(() => ({}));
      throw new Error(`${(error as Error).message}\nruns: ${JSON.stringify(runs)}\n${workers.map(report).join('\n')}`);
    });
    t.diagnostic(`all runs terminal ${Date.now() - restartAt} ms after the restart began`);
    for (const w of workers) {
      assert.ok(w.alive, `${w.name} survived the restart: ${report(w)}`);
    }
    assert.deepEqual(await runStatuses(db), { succeeded: RUNS });
    const audit = await auditSteps(db);
    assertOneOutputPerStep(audit, RUNS * STEPS);
    assert.ok(audit.every((s) => s.attempt === 1 + s.expired), 'attempts beyond the first are explained by lease expiries');
    for (const w of workers) await assertCleanExit(w);
  });

  void test('recovery never rewrites history: what succeeded before a crash stays as it was', { timeout: 90_000 }, async (t) => {
    const h = await harness(t);
    if (!h) return;
    const { db, url, engine, procs } = h;
    const w1 = procs.worker({ url, concurrency: 8, leaseMs: 1000 }, 'W1');
    await w1.waitForStart();
    const versions: string[] = [];
    for (let d = 0; d < 3; d++) versions.push((await engine.registerWorkflow(delayChain(`history-${d}`, 6, 100, 300))).versionId);
    const runIds = await startRuns(engine, versions, 30);
    await until(async () => {
      const { rows } = await db.query<{ done: number; running: number }>(
        `SELECT (SELECT count(*)::int FROM runs WHERE status = 'succeeded') AS done,
                (SELECT count(*)::int FROM step_runs WHERE status = 'running') AS running`);
      return rows[0]!.done >= 3 && rows[0]!.running >= 3 ? true : undefined;
    }, 30_000, 'some runs done, some steps running', 20);
    // Freeze, let anything already sent to the server land, snapshot, then kill: nothing the
    // worker does can fall between the snapshot and its death.
    w1.signal('SIGSTOP');
    await sleep(300);
    const snap = await db.query<{ run_id: string; step_id: string; status: string; attempt: number; finished_at: Date | null; lease_owner: string | null }>(
      'SELECT run_id, step_id, status, attempt, finished_at, lease_owner FROM step_runs ORDER BY run_id, step_id');
    const snapRuns = await db.query<{ id: string; status: string; outputs: unknown; finished_at: Date | null }>('SELECT id, status, outputs, finished_at FROM runs');
    const snapArtifacts = await db.query('SELECT run_id, step_id, name, version, content, is_latest, attempt, created_at FROM artifacts ORDER BY run_id, step_id, name, version');
    const snapEvents = await db.query<{ id: string }>('SELECT id::text AS id, run_id, step_id, type, attempt, data, created_at FROM run_events ORDER BY id');
    const maxEventId = snapEvents.rows.reduce((m, e) => (BigInt(e.id) > m ? BigInt(e.id) : m), 0n);
    await w1.kill9();
    const w2 = procs.worker({ url, concurrency: 8, leaseMs: 1000 }, 'W2');
    await w2.waitForStart();
    for (const id of runIds) assert.equal(await engine.waitForRun(id, 60_000, 100), 'succeeded');

    const running = snap.rows.filter((s) => s.status === 'running');
    const succeeded = snap.rows.filter((s) => s.status === 'succeeded');
    assert.ok(running.length >= 3 && succeeded.length > 0);
    const now = await db.query<{ run_id: string; step_id: string; status: string; attempt: number; finished_at: Date | null }>(
      'SELECT run_id, step_id, status, attempt, finished_at FROM step_runs');
    const byKey = new Map(now.rows.map((s) => [`${s.run_id}/${s.step_id}`, s]));
    for (const s of succeeded) {
      const later = byKey.get(`${s.run_id}/${s.step_id}`)!;
      assert.deepEqual({ status: later.status, attempt: later.attempt, finished_at: later.finished_at },
        { status: 'succeeded', attempt: s.attempt, finished_at: s.finished_at }, `step ${s.run_id}/${s.step_id} kept its success`);
    }
    const runsNow = new Map((await db.query<{ id: string; status: string; outputs: unknown; finished_at: Date | null }>('SELECT id, status, outputs, finished_at FROM runs')).rows.map((r) => [r.id, r]));
    for (const r of snapRuns.rows.filter((x) => x.status === 'succeeded')) assert.deepEqual(runsNow.get(r.id), r, `run ${r.id} kept its result`);
    // Artifacts and events are append-only: every row from before is still there, unchanged.
    const artifactsNow = await db.query('SELECT run_id, step_id, name, version, content, is_latest, attempt, created_at FROM artifacts ORDER BY run_id, step_id, name, version');
    const artifactKey = (a: Record<string, unknown>) => `${String(a['run_id'])}/${String(a['step_id'])}/${String(a['name'])}/${String(a['version'])}`;
    const artifactsNowByKey = new Map(artifactsNow.rows.map((a) => [artifactKey(a), a]));
    for (const a of snapArtifacts.rows) assert.deepEqual(artifactsNowByKey.get(artifactKey(a)), a, `artifact ${artifactKey(a)} unchanged`);
    const eventsNow = await db.query('SELECT id::text AS id, run_id, step_id, type, attempt, data, created_at FROM run_events WHERE id <= $1 ORDER BY id', [maxEventId.toString()]);
    assert.deepEqual(eventsNow.rows, snapEvents.rows, 'events up to the crash unchanged');
    // Recovery's lease expiries touched exactly the steps that were running, each once, at its attempt.
    const expired = await db.query<{ run_id: string; step_id: string; attempt: number }>(
      `SELECT run_id, step_id, attempt FROM run_events WHERE type = 'lease_expired' AND id > $1 ORDER BY run_id, step_id`, [maxEventId.toString()]);
    const key = (s: { run_id: string; step_id: string; attempt: number }) => `${s.run_id}/${s.step_id}@${s.attempt}`;
    assert.deepEqual(expired.rows.map(key).sort(), running.map(key).sort(), 'lease_expired for each step running at the crash, and no other');
    assert.ok(running.every((s) => s.lease_owner === w1.workerId), 'the running steps were the dead worker\'s');
    assertOneOutputPerStep(await auditSteps(db), 30 * 6);
    await assertCleanExit(w2);
  });

  void test('graceful SIGTERM: drains in-flight steps, claims nothing new, hands back what outlives the drain', { timeout: 90_000 }, async (t) => {
    const h = await harness(t);
    if (!h) return;
    const { db, url, engine, procs } = h;

    // (a) The in-flight step (2 s) fits in the drain (5 s).
    const a = procs.worker({ url, concurrency: 4, leaseMs: 60_000, drainMs: 5000 }, 'A');
    await a.waitForStart();
    const v1 = await engine.registerWorkflow({
      name: 'drain', steps: { slow: { type: 'delay', ms: 2000 }, next: { type: 'delay', ms: 10, needs: ['slow'] } },
    });
    const r1 = await engine.startRun({ versionId: v1.versionId });
    await until(async () => ((await stepRow(db, r1, 'slow')).status === 'running' ? true : undefined), 10_000, 'A runs slow', 10);
    const termAt = Date.now();
    a.signal('SIGTERM');
    await a.waitForLine((l) => l.message === 'stopping', 5000, '"stopping"');
    // New work announced while A drains (it has 3 free slots): A must leave it.
    const v2 = await engine.registerWorkflow({ name: 'after drain', steps: { root: { type: 'delay', ms: 10 } } });
    const r2 = await engine.startRun({ versionId: v2.versionId });
    const exitA = await a.exited;
    const drainTook = Date.now() - termAt;
    assert.deepEqual(exitA, { code: 0, signal: null }, a.stderr);
    assert.ok(drainTook < 5000, `A exited ${drainTook} ms after SIGTERM, within --drain-ms`);
    const slow = await stepRow(db, r1, 'slow');
    assert.equal(slow.status, 'succeeded', 'the in-flight step finished during the drain');
    assert.equal(slow.attempt, 1);
    assert.ok(slow.finished_at!.getTime() - termAt < 5000);
    assert.deepEqual(await stepRow(db, r1, 'next').then((s) => [s.status, s.attempt]), ['queued', 0], 'the successor was queued, not run by A');
    assert.deepEqual(await stepRow(db, r2, 'root').then((s) => [s.status, s.attempt]), ['queued', 0], 'new work was left for others');
    assert.equal(a.linesWith('handed back').length, 0);
    assert.equal((await eventsOf(db, r1)).filter((e) => e.type === 'lease_expired').length, 0);
    const b = procs.worker({ url, concurrency: 4, leaseMs: 60_000 }, 'B');
    const bId = await b.waitForStart();
    assert.equal(await engine.waitForRun(r1, 15_000), 'succeeded');
    assert.equal(await engine.waitForRun(r2, 15_000), 'succeeded');
    assert.equal((await eventsOf(db, r1)).find((e) => e.step_id === 'next' && e.type === 'step_started')?.worker, bId);
    assert.equal((await eventsOf(db, r2)).find((e) => e.step_id === 'root' && e.type === 'step_started')?.worker, bId);
    await assertCleanExit(b);

    // (b) The in-flight step (4 s) outlives the drain (1 s): handed back, finished elsewhere
    // long before its 60 s lease would have expired.
    const a2 = procs.worker({ url, concurrency: 2, leaseMs: 60_000, drainMs: 1000 }, 'A2');
    const a2Id = await a2.waitForStart();
    const v3 = await engine.registerWorkflow({ name: 'outlives drain', steps: { long: { type: 'delay', ms: 4000 } } });
    const r3 = await engine.startRun({ versionId: v3.versionId });
    await until(async () => ((await stepRow(db, r3, 'long')).lease_owner === a2Id ? true : undefined), 10_000, 'A2 runs long', 10);
    const term2At = Date.now();
    a2.signal('SIGTERM');
    const b2 = procs.worker({ url, concurrency: 2, leaseMs: 60_000 }, 'B2');
    const exitA2 = await a2.exited;
    const stopTook = Date.now() - term2At;
    assert.deepEqual(exitA2, { code: 0, signal: null }, a2.stderr);
    assert.ok(stopTook < 4000, `A2 exited ${stopTook} ms after SIGTERM (drain 1 s), before its step would have ended`);
    assert.equal(a2.linesWith('handed back unfinished attempts').length, 1, a2.stderr);
    const b2Id = await b2.waitForStart();
    assert.equal(await engine.waitForRun(r3, 20_000, 100), 'succeeded');
    const doneIn = Date.now() - term2At;
    assert.ok(doneIn < 20_000, `finished ${doneIn} ms after SIGTERM; the lease was 60 s`);
    const events = await eventsOf(db, r3);
    assert.deepEqual(events.filter((e) => e.step_id === 'long' && ['step_started', 'lease_expired', 'step_succeeded'].includes(e.type)).map((e) => [e.type, e.attempt, e.worker]),
      [['step_started', 1, a2Id], ['lease_expired', 1, null], ['step_started', 2, b2Id], ['step_succeeded', 2, null]]);
    const { rows } = await db.query<{ n: number; attempt: number }>(`SELECT count(*)::int AS n, max(attempt) AS attempt FROM artifacts WHERE run_id = $1`, [r3]);
    assert.deepEqual(rows[0], { n: 1, attempt: 2 });
    t.diagnostic(`drain exit ${drainTook} ms; hand-back exit ${stopTook} ms; handed-back step done ${doneIn} ms after SIGTERM`);
    await assertCleanExit(b2);
  });

  void test('idempotency key: the same on every attempt of a step, different across steps and runs', { timeout: 60_000 }, async (t) => {
    const h = await harness(t);
    if (!h) return;
    const { url, engine, procs } = h;
    const seen = new Map<string, (string | undefined)[]>();
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const keys = seen.get(req.url ?? '') ?? [];
      const header = req.headers['idempotency-key'];
      keys.push(Array.isArray(header) ? header.join(',') : header);
      seen.set(req.url ?? '', keys);
      req.resume();
      if (keys.length <= 2) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('try again');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ calls: keys.length }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;
    const w = procs.worker({ url, concurrency: 4, leaseMs: 5000, env: { WEFT_ALLOW_PRIVATE_NETWORK: '1' } }, 'W');
    await w.waitForStart();
    const retry = { max: 3, backoff: 'fixed', base_ms: 50, jitter: false };
    const v = await engine.registerWorkflow({
      name: 'idempotent calls',
      inputs: { type: 'object', required: ['tag'], properties: { tag: { type: 'string' } } },
      steps: {
        a: { type: 'http', url: `http://127.0.0.1:${port}/{{ $input.tag }}/a`, retry },
        b: { type: 'http', method: 'POST', url: `http://127.0.0.1:${port}/{{ $input.tag }}/b`, body: { x: 1 }, retry },
      },
      outputs: { a: '$a.body.calls', b: '$b.body.calls' },
    });
    const runs = [await engine.startRun({ versionId: v.versionId, inputs: { tag: 'one' } }), await engine.startRun({ versionId: v.versionId, inputs: { tag: 'two' } })];
    for (const r of runs) {
      assert.equal(await engine.waitForRun(r, 20_000, 100), 'succeeded', w.stderr);
      assert.deepEqual((await engine.getRun(r))!.outputs, { a: 3, b: 3 });
      assert.deepEqual((await engine.getRun(r))!.steps.map((s) => [s.step_id, s.attempt]).sort(), [['a', 3], ['b', 3]]);
    }
    assert.deepEqual([...seen.keys()].sort(), ['/one/a', '/one/b', '/two/a', '/two/b']);
    const perStep = [...seen.values()];
    for (const keys of perStep) {
      assert.equal(keys.length, 3, 'two 503s, then success');
      assert.ok(keys[0] && keys[0].length > 0, 'an Idempotency-Key is sent');
      assert.deepEqual(new Set(keys).size, 1, `one key for all attempts: ${JSON.stringify(keys)}`);
    }
    assert.equal(new Set(perStep.map((k) => k[0])).size, 4, 'a different key per step and per run');
    await assertCleanExit(w);
  });
});
