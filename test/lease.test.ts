/**
 * Leases and fencing: a worker that stops heartbeating loses its step, which is re-run once
 * and committed once; a stale worker's writes change nothing.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../src/engine/engine.ts';
import { memoryLogger } from '../src/engine/log.ts';
import { completeAttempt, heartbeat, releaseAttempt } from '../src/store/step-runs.ts';
import { BACKENDS, closeTemplates, openTestDb } from './helpers/db.ts';
import { eventually, FAST_WORKER, launch } from './helpers/engine.ts';

after(closeTemplates);

for (const backend of BACKENDS) {
  void describe(`leases on ${backend}`, () => {
    void test('a worker that stops heartbeating loses its lease; the step re-runs once and commits once', async (t) => {
      const db = await openTestDb(backend, t);
      if (!db) return;
      // Worker A heartbeats never (interval far beyond its 300 ms lease) and sweeps never; with
      // one slot, busy with the stalled attempt, it cannot claim the step again.
      const logA = memoryLogger();
      const a = new Engine({ db, log: logA, worker: { ...FAST_WORKER, concurrency: 1, leaseMs: 300, heartbeatMs: 3_600_000, sweepMs: 3_600_000 } });
      const b = new Engine({ db, worker: { ...FAST_WORKER, leaseMs: 5000 } });
      t.after(async () => {
        await a.stop();
        await b.stop();
        await db.close();
      });
      await a.start();
      // A claims the first step when the run starts (its worker has free slots).
      const runId = await launch(a, {
        name: 'lease loss',
        steps: { slow: { type: 'delay', ms: 2000, retry: { max: 0, base_ms: 50 } }, after: { type: 'transform', needs: ['slow'], expr: '$slow.waited_ms' } },
        outputs: { waited: '$after' },
      });
      const first = await eventually(async () => {
        const run = await a.getRun(runId);
        const s = run!.steps.find((x) => x.step_id === 'slow')!;
        return s.status === 'running' && s.attempt === 1 ? s : undefined;
      });
      assert.equal(first.attempt, 1);
      await b.start();
      assert.equal(await b.waitForRun(runId, 10_000), 'succeeded');
      const run = (await b.getRun(runId))!;
      const slow = run.steps.find((x) => x.step_id === 'slow')!;
      assert.equal(slow.attempt, 2, 're-run exactly once');
      const artifacts = await db.query<{ n: number; attempt: number }>(
        `SELECT count(*)::int AS n, max(attempt) AS attempt FROM artifacts WHERE run_id = $1 AND step_id = 'slow'`, [runId]);
      assert.deepEqual(artifacts.rows[0], { n: 1, attempt: 2 }, 'committed once, by attempt 2');
      const events = (await b.listEvents(runId)).map((e) => e.type);
      assert.equal(events.filter((e) => e === 'lease_expired').length, 1);
      assert.equal(events.filter((e) => e === 'step_succeeded').length, 2, 'slow and after, once each');
      // A finishes its (stale) attempt later: its completion is fenced out and it says so.
      await eventually(async () => (logA.lines.some((l) => l.message.includes('lost the lease')) ? true : undefined), 5000, 'A logs lease loss');
      assert.equal((await b.getRun(runId))!.status, 'succeeded');
      assert.deepEqual((await b.getRun(runId))!.outputs, { waited: 2000 });
    });

    void test('stale attempt: complete, fail and heartbeat with an old attempt or another owner change 0 rows', async (t) => {
      const db = await openTestDb(backend, t);
      if (!db) return;
      t.after(() => db.close());
      const engine = new Engine({ db, worker: false });
      const runId = await launch(engine, { name: 'fence', steps: { s: { type: 'transform', expr: '1' } } });
      // Claim as worker w1 (attempt 1), then pretend the lease moved to w2 (attempt 2).
      await db.query(`UPDATE step_runs SET status = 'running', attempt = 2, lease_owner = 'w2', lease_expires_at = now() + interval '1 minute' WHERE run_id = $1`, [runId]);
      const at = new Date();
      const stale = { runId, stepId: 's', attempt: 1, workerId: 'w1' };
      assert.equal(await completeAttempt(db, { ...stale, output: 1, branch: null, at, durationMs: 1, usage: undefined }), undefined);
      assert.equal(await completeAttempt(db, { ...stale, attempt: 2, output: 1, branch: null, at, durationMs: 1, usage: undefined }), undefined, 'right attempt, wrong owner');
      assert.equal(await releaseAttempt(db, { ...stale, error: null, at, durationMs: 1 }), undefined);
      assert.deepEqual(await heartbeat(db, { workerId: 'w1', leases: [{ runId, stepId: 's', attempt: 1 }], leaseUntil: at }), []);
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM artifacts WHERE run_id = $1', [runId]);
      assert.equal(rows[0]!.n, 0, 'no output written by a stale worker');
      const states = await completeAttempt(db, { ...stale, attempt: 2, workerId: 'w2', output: 1, branch: null, at, durationMs: 1, usage: undefined });
      assert.deepEqual(states, { s: { status: 'running', attempt: 2, branch: null } }, 'the holder can; it reads the states as they were before its write');
    });
  });
}
