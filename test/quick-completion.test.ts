/**
 * Quick completions (migration 0006, store/quick-completion.ts, engine/quick-advance.ts): a
 * success decided from step states read earlier is written in one statement, only if the run
 * still has exactly those states; otherwise nothing is written and the caller decides again.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../src/engine/engine.ts';
import { completeSucceeded, type QuickSuccess } from '../src/engine/quick-advance.ts';
import { VersionCache } from '../src/engine/version-cache.ts';
import type { Db, Queryable } from '../src/store/db.ts';
import { completeQuickly, readRunSnapshot, StaleSnapshot, type QuickCompletion } from '../src/store/quick-completion.ts';
import { claimQueued } from '../src/store/step-runs.ts';
import { BACKENDS, closeTemplates, openTestDb, type Backend } from './helpers/db.ts';
import { FAST_WORKER, launch, testEngine } from './helpers/engine.ts';

after(closeTemplates);

interface Counts {
  transactions: number;
  /** Calls of the one-statement completion (migration 0006) and start (migration 0009). */
  quick: number;
  starts: number;
}

/** Counts what reaches the database: transactions, and calls of the one-statement completion and start. */
function counting(db: Db): { db: Db; counts: Counts } {
  const counts = { transactions: 0, quick: 0, starts: 0 };
  const count = (text: string) => {
    if (text.includes('weft_complete_attempt(')) counts.quick++;
    if (text.includes('weft_start_run(')) counts.starts++;
  };
  const wrapped: Db = Object.assign(Object.create(db) as Db, {
    query: ((text: string, params?: readonly unknown[]) => {
      count(text);
      return db.query(text, params);
    }) as Db['query'],
    transaction: (<T>(fn: (tx: Queryable) => Promise<T>) => {
      counts.transactions++;
      return db.transaction((tx) => fn({ query: (text, params) => (count(text), tx.query(text, params)) } as Queryable));
    }) as Db['transaction'],
  });
  return { db: wrapped, counts };
}

/** A started engine with a worker on a fresh database, whose statements `counts` counts. */
async function countingEngine(backend: Backend, t: TestContext): Promise<{ engine: Engine; counts: Counts } | undefined> {
  const raw = await openTestDb(backend, t);
  if (!raw) return undefined;
  const { db, counts } = counting(raw);
  const engine = new Engine({ db, worker: FAST_WORKER });
  t.after(async () => {
    await engine.stop();
    await raw.close();
  });
  await engine.start();
  return { engine, counts };
}

const CHAIN = {
  name: 'chain of six',
  steps: {
    a: { type: 'transform', expr: '1' },
    b: { type: 'transform', needs: ['a'], expr: '$a + 1' },
    c: { type: 'transform', needs: ['b'], expr: '$b + 1' },
    d: { type: 'transform', needs: ['c'], expr: '$c + 1' },
    e: { type: 'transform', needs: ['d'], expr: '$d + 1' },
    f: { type: 'transform', needs: ['e'], expr: '$e + 1' },
  },
  outputs: { last: '$f' },
};

async function rowCounts(db: Db, runId: string): Promise<unknown> {
  const { rows } = await db.query(
    `SELECT (SELECT count(*)::int FROM run_events WHERE run_id = $1) AS events,
            (SELECT count(*)::int FROM artifacts WHERE run_id = $1) AS artifacts,
            (SELECT updated_at FROM runs WHERE id = $1) AS updated_at,
            (SELECT tokens_in::int FROM runs WHERE id = $1) AS tokens_in,
            (SELECT json_agg(json_build_array(step_id, status, attempt, lease_owner) ORDER BY step_id) FROM step_runs WHERE run_id = $1) AS steps`,
    [runId],
  );
  return rows[0];
}

for (const backend of BACKENDS) {
  void describe(`quick completions on ${backend}`, () => {
    void test('a chain: every success is one statement, no transaction, the last finishing the run with its outputs', async (t) => {
      const ctx = await countingEngine(backend, t);
      if (!ctx) return;
      const { engine, counts } = ctx;
      const runId = await launch(engine, CHAIN);
      assert.equal(await engine.waitForRun(runId, 10_000), 'succeeded');
      const run = (await engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { last: 6 });
      // a (its states read when the run started and claimed it) to e: quick, each claiming its
      // successor; f: quick too, finishing the run with outputs evaluated from its own output.
      assert.equal(counts.quick, 6);
      // Registering the workflow; starting the run (which claims a) is one statement.
      assert.equal(counts.transactions, 1);
      assert.equal(counts.starts, 1);
      assert.ok(run.steps.every((s) => s.status === 'succeeded' && s.attempt === 1));
      const types = (await engine.listEvents(runId)).map((e) => `${e.stepId ?? '-'}:${e.type}`);
      assert.deepEqual(types, [
        '-:run_created', 'a:step_started', 'a:step_succeeded', 'b:step_started', 'b:step_succeeded', 'c:step_started',
        'c:step_succeeded', 'd:step_started', 'd:step_succeeded', 'e:step_started', 'e:step_succeeded', 'f:step_started',
        'f:step_succeeded', '-:run_succeeded',
      ]);
    });

    void test('a finishing completion evaluates outputs from jsonb as advance does, and declines a budget or an output it did not read', async (t) => {
      const ctx = await countingEngine(backend, t);
      if (!ctx) return;
      const { engine, counts } = ctx;
      // The last step's output is an object whose keys jsonb reorders (shorter first): the
      // outputs must read it as stored, whichever path finished the run.
      const shaped = await engine.registerWorkflow({
        name: 'shaped output',
        steps: {
          a: { type: 'transform', expr: '1' },
          b: { type: 'transform', needs: ['a'], expr: '{"bb": $a, "a": 2, "ccc": {"zzz": 1, "yy": 2, "x": [{"dd": 1, "c": 2}]}}' },
        },
        outputs: { text: '$string($b)', first: '$a' },
      });
      const expected = { text: '{"a":2,"bb":1,"ccc":{"x":[{"c":2,"dd":1}],"yy":2,"zzz":1}}', first: 1 };

      const quick = await engine.startRun({ versionId: shaped.versionId, inputs: {} });
      assert.equal(await engine.waitForRun(quick, 10_000), 'succeeded');
      assert.deepEqual((await engine.getRun(quick))!.outputs, expected);
      assert.equal(counts.quick, 2, 'a, and b finishing the run');
      assert.equal(counts.transactions, 1, 'registering the workflow');
      assert.equal(counts.starts, 1);

      // With a budget, its approvals are closed by advance(), which must agree on the outputs.
      const budgeted = await engine.startRun({ versionId: shaped.versionId, inputs: {}, budgetUsd: 5 });
      assert.equal(await engine.waitForRun(budgeted, 10_000), 'succeeded');
      assert.deepEqual((await engine.getRun(budgeted))!.outputs, expected);
      assert.equal(counts.quick, 3, 'only a of the budgeted run');
      assert.equal(counts.transactions, 2, 'its finish through advance');

      // An output read from a step the last one did not read: advance() loads it.
      const unread = await engine.registerWorkflow({
        name: 'unread output',
        steps: { a: { type: 'transform', expr: '7' }, b: { type: 'transform', needs: ['a'], expr: '2' } },
        outputs: { seven: '$a', two: '$b' },
      });
      const viaAdvance = await engine.startRun({ versionId: unread.versionId, inputs: {} });
      assert.equal(await engine.waitForRun(viaAdvance, 10_000), 'succeeded');
      assert.deepEqual((await engine.getRun(viaAdvance))!.outputs, { seven: 7, two: 2 });
      assert.equal(counts.quick, 4, 'only a');
      assert.equal(counts.transactions, 4, 'registering, and finishing through advance');
      assert.equal(counts.starts, 3);
      const types = (await engine.listEvents(quick)).map((e) => `${e.stepId ?? '-'}:${e.type}`);
      assert.deepEqual(types.slice(-2), ['b:step_succeeded', '-:run_succeeded']);
    });

    void test('a run claimed from the queue: its states come with the claim (no other read), and its steps complete quickly', async (t) => {
      const raw = await openTestDb(backend, t);
      if (!raw) return;
      const enqueuer = new Engine({ db: raw, worker: false });
      const { db, counts } = counting(raw);
      const worker = new Engine({ db, worker: FAST_WORKER });
      t.after(async () => {
        await worker.stop();
        await enqueuer.stop();
        await raw.close();
      });
      await enqueuer.start();
      const runId = await launch(enqueuer, CHAIN);
      await worker.start();
      assert.equal(await worker.waitForRun(runId, 10_000), 'succeeded');
      assert.deepEqual((await worker.getRun(runId))!.outputs, { last: 6 });
      assert.equal(counts.quick, 6, 'a to f');
      assert.equal(counts.transactions, 0);
    });

    void test('a stale snapshot, a lost lease or a paused run write nothing; the stale answer carries the states read under the lock', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { db, engine } = ctx;
      const runId = await launch(engine, CHAIN);
      const now = new Date();
      const [claimed] = await claimQueued(db, { workerId: 'w1', now, leaseUntil: new Date(now.getTime() + 60_000), limit: 1 });
      assert.equal(claimed?.stepId, 'a');
      const snapshot = (await readRunSnapshot(db, runId))!;
      assert.equal(snapshot.steps['a']?.status, 'running');
      const completion: QuickCompletion = {
        runId, stepId: 'a', attempt: 1, workerId: 'w1', expected: snapshot, at: new Date(now.getTime() + 10), output: 1, branch: null,
        durationMs: 10, usage: undefined, runUsage: { tokensIn: 5, tokensOut: 0, costUsd: 0, simulated: false },
        events: [{ stepId: 'a', type: 'step_succeeded', attempt: 1, data: {} }, { stepId: 'b', type: 'step_started', attempt: 1, data: { worker: 'w1' } }],
        queue: [], skips: [], claim: { stepId: 'b', leaseUntil: new Date(now.getTime() + 60_000) }, finish: undefined,
      };
      const before = await rowCounts(db, runId);

      const stale = { ...snapshot, statesText: snapshot.statesText.replace('"running"', '"queued"') };
      const refused = await completeQuickly(db, { ...completion, expected: stale }).catch((e: unknown) => e);
      assert.ok(refused instanceof StaleSnapshot, `stale: ${String(refused)}`);
      assert.equal(refused.current.statesText, snapshot.statesText, 'the current states, as the database renders them');
      assert.deepEqual(refused.current.steps, snapshot.steps);
      assert.deepEqual(await rowCounts(db, runId), before, 'a stale snapshot wrote nothing');

      const lost = await completeQuickly(db, { ...completion, workerId: 'w2' }).catch((e: unknown) => e);
      assert.equal((lost as { code?: string }).code, 'WEFT_LEASE_LOST');
      assert.deepEqual(await rowCounts(db, runId), before, 'a lost lease wrote nothing');

      const done = await completeQuickly(db, completion);
      assert.equal(done?.claimed.stepId, 'b');
      assert.equal(done?.claimed.attempt, 1);
      assert.deepEqual(done?.claimed.deps, { a: 1 }, 'the successor reads the output just stored');
      assert.equal(done?.snapshot.statesText, (await readRunSnapshot(db, runId))!.statesText, 'the states after the write');
      const after = (await rowCounts(db, runId)) as { events: number; artifacts: number; tokens_in: number };
      assert.equal(after.events, (before as { events: number }).events + 2);
      assert.equal(after.artifacts, 1);
      assert.equal(after.tokens_in, 5);

      // Paused: the states are unchanged, but the run is not running, so nothing may be claimed.
      await engine.pauseRun(runId);
      const paused = (await readRunSnapshot(db, runId))!;
      const next: QuickCompletion = {
        ...completion, stepId: 'b', expected: { ...paused, status: 'running' }, output: 2, runUsage: undefined,
        events: [], claim: { stepId: 'c', leaseUntil: completion.claim!.leaseUntil },
      };
      const beforePause = await rowCounts(db, runId);
      const refusedPaused = await completeQuickly(db, next).catch((e: unknown) => e);
      assert.ok(refusedPaused instanceof StaleSnapshot);
      assert.equal(refusedPaused.current.status, 'paused');
      assert.deepEqual(await rowCounts(db, runId), beforePause, 'nothing written in a paused run');
    });

    void test('the worker decides again from the states a stale answer carries, with a later time; a step with live siblings goes through advance', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { db, engine } = ctx;
      const deps = { versions: new VersionCache(), random: Math.random };
      const lease = (): Date => new Date(Date.now() + 60_000);
      const runId = await launch(engine, CHAIN);
      const [a] = await claimQueued(db, { workerId: 'w1', now: new Date(), leaseUntil: lease(), limit: 1 });
      const current = (await readRunSnapshot(db, runId))!;
      assert.equal(a!.statesText, current.statesText, 'the claim rendered the states as they read once it is in');
      // Held states that no longer match (as after another worker's write): same steps, other text.
      const held = { ...current, statesText: `${current.statesText} ` };
      const first = new Date(Date.now() - 1000);
      const later = new Date();
      let tries = 0;
      const success: QuickSuccess = {
        now: () => (tries++ === 0 ? first : later), workerId: 'w1', output: 1, branch: null, durationMs: 1, usage: undefined, runUsage: undefined,
        events: [{ stepId: 'a', type: 'step_succeeded', attempt: 1, data: {} }], claimFor: { workerId: 'w1', leaseUntil: lease() },
      };
      const done = await completeSucceeded(db, deps, a!, held, success);
      assert.equal(done?.claimed?.stepId, 'b', 'the second try, from the returned states, claimed b');
      const { rows } = await db.query<{ finished_at: Date }>(`SELECT finished_at FROM step_runs WHERE run_id = $1 AND step_id = 'a'`, [runId]);
      assert.equal(rows[0]!.finished_at.getTime(), later.getTime(), 'recorded with the time of the second try');

      // A fan-out: while a sibling is in flight the quick path declines and writes nothing.
      const fan = await launch(engine, {
        name: 'fan', steps: { x: { type: 'transform', expr: '1' }, y: { type: 'transform', expr: '2' } },
      });
      const claimed = await claimQueued(db, { workerId: 'w1', now: new Date(), leaseUntil: lease(), limit: 2 });
      const x = claimed.find((c) => c.runId === fan && c.stepId === 'x')!;
      assert.ok(claimed.some((c) => c.runId === fan && c.stepId === 'y'));
      assert.deepEqual(claimed.map((c) => c.statesText), [null, null], 'siblings claimed together: neither is alone in flight');
      const before = await rowCounts(db, fan);
      const fanSnapshot = (await readRunSnapshot(db, fan))!;
      assert.equal(await completeSucceeded(db, deps, x, fanSnapshot, { ...success, events: [] }), undefined);
      assert.equal(await completeSucceeded(db, deps, x, undefined, { ...success, events: [] }), undefined, 'nor without a snapshot');
      assert.deepEqual(await rowCounts(db, fan), before);
    });
  });
}
