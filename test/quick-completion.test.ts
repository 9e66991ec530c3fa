/**
 * Quick completions (migrations 0006, 0008, 0013; store/quick-completion.ts,
 * engine/quick-advance.ts, engine/completion-batcher.ts): a success decided from step states
 * read earlier is written in one statement, only if the run still has exactly those states;
 * otherwise nothing is written and the caller decides again. Several completions of different
 * runs go in one statement, each answered as it would be alone.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../src/engine/engine.ts';
import { completeSucceeded, type QuickSuccess } from '../src/engine/quick-advance.ts';
import { VersionCache } from '../src/engine/version-cache.ts';
import type { Db, Queryable } from '../src/store/db.ts';
import { sqlState } from '../src/store/db.ts';
import { completeBatch, completeOne, readRunSnapshot, runningSnapshot, type QuickAnswer, type QuickCompletion } from '../src/store/quick-completion.ts';
import { getRunStatus } from '../src/store/runs.ts';
import { claimQueued } from '../src/store/step-runs.ts';
import { BACKENDS, closeTemplates, openTestDb, type Backend } from './helpers/db.ts';
import { example, FAST_WORKER, launch, sleep, testEngine } from './helpers/engine.ts';

after(closeTemplates);

interface Counts {
  transactions: number;
  /** Calls of the one-statement completion (migration 0006), of its batched form (0013) and of the start (0009). */
  quick: number;
  batches: number;
  starts: number;
}

/** `db`, with `before` called on the text of every statement it runs, in a transaction or not, and awaited before it is sent. */
function intercepted(db: Db, before: (text: string) => void | Promise<void>, onTransaction = () => {}): Db {
  const query = async <R>(q: Queryable, text: string, params?: readonly unknown[]) => {
    await before(text);
    return q.query<R>(text, params);
  };
  return Object.assign(Object.create(db) as Db, {
    query: ((text: string, params?: readonly unknown[]) => query(db, text, params)) as Db['query'],
    transaction: (<T>(fn: (tx: Queryable) => Promise<T>) => {
      onTransaction();
      return db.transaction((tx) => fn({ query: (text, params) => query(tx, text, params) } as Queryable));
    }) as Db['transaction'],
  });
}

/** Counts what reaches the database: transactions, and calls of the one-statement completion and start. */
function counting(db: Db): { db: Db; counts: Counts } {
  const counts = { transactions: 0, quick: 0, batches: 0, starts: 0 };
  const count = (text: string) => {
    if (text.includes('weft_complete_attempt(')) counts.quick++;
    if (text.includes('weft_complete_attempts(')) counts.batches++;
    if (text.includes('weft_start_run(')) counts.starts++;
  };
  return { db: intercepted(db, count, () => counts.transactions++), counts };
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

/** The two ways a completion reaches the database: alone, and as an item of a batch (here of one). */
const SENDERS: [string, (db: Db, c: QuickCompletion) => Promise<QuickAnswer>][] = [
  ['alone', (db, c) => completeOne(db, c)],
  ['in a batch', async (db, c) => (await completeBatch(db, [c]))[0]!],
];

/**
 * What a run's completions wrote, without ids, and with the times before `since` (its start)
 * shown as 'before': to compare two runs started one after the other that went the same way.
 */
async function runRows(db: Db, runId: string, since: Date): Promise<unknown> {
  const { rows } = await db.query(
    `SELECT (SELECT to_jsonb(x) FROM (SELECT status, outputs, error, tokens_in::int, tokens_out::int, cost_usd::float8, simulated, updated_at, finished_at
              FROM runs WHERE id = $1) x) AS run,
            (SELECT json_agg(json_build_array(step_id, status, attempt, branch, skip_reason, lease_owner, lease_expires_at, started_at,
              finished_at, available_at, duration_ms, provider, model, tokens_in, tokens_out, cost_usd::float8) ORDER BY step_id) FROM step_runs WHERE run_id = $1) AS steps,
            (SELECT json_agg(json_build_array(step_id, type, attempt, data, created_at) ORDER BY id) FROM run_events WHERE run_id = $1) AS events,
            (SELECT json_agg(json_build_array(step_id, name, version, content, is_latest, produced_by, attempt, created_at) ORDER BY step_id, version)
              FROM artifacts WHERE run_id = $1) AS artifacts`,
    [runId],
  );
  const earlier = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(earlier);
    if (value instanceof Date) return value < since ? 'before' : value.toISOString();
    if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) return new Date(value) < since ? 'before' : new Date(value).toISOString();
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, earlier(v)]));
    return value;
  };
  return earlier(rows[0]);
}

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

    void test('runs in flight at once: their completions share statements, and every run ends as it would alone', async (t) => {
      const ctx = await countingEngine(backend, t);
      if (!ctx) return;
      const { engine, counts } = ctx;
      const v = await engine.registerWorkflow(CHAIN);
      const runIds = await Promise.all(Array.from({ length: 16 }, () => engine.startRun({ versionId: v.versionId, inputs: {} })));
      for (const runId of runIds) assert.equal(await engine.waitForRun(runId, 20_000), 'succeeded');
      for (const runId of runIds) {
        assert.deepEqual((await engine.getRun(runId))!.outputs, { last: 6 });
        const types = (await engine.listEvents(runId)).map((e) => `${e.stepId ?? '-'}:${e.type}`);
        assert.equal(types.filter((x) => x.endsWith(':step_succeeded')).length, 6);
        assert.equal(types.at(-1), '-:run_succeeded');
      }
      const { metrics } = engine.worker!;
      assert.equal(metrics.quickCompletions, 16 * 6, 'every success went the quick way');
      assert.equal(metrics.quickStatements, counts.quick + counts.batches);
      assert.ok(counts.batches > 0 && metrics.quickStatements < metrics.quickCompletions,
        `completions shared statements (${metrics.quickCompletions} in ${metrics.quickStatements})`);
      assert.equal(counts.transactions, 1, 'registering the workflow; nothing went through advance');
    });

    void test('stopping the worker waits for a success still being recorded, so the database outlives it', async (t) => {
      const raw = await openTestDb(backend, t);
      if (!raw) return;
      // Every quick completion reaches the database 300 ms late: the attempt has ended (it is
      // no longer in flight) while its outcome is not written yet.
      let delayed = 0;
      const db = intercepted(raw, async (text) => {
        if (!text.includes('weft_complete_attempt')) return;
        delayed++;
        await sleep(300);
      });
      const engine = new Engine({ db, worker: FAST_WORKER });
      t.after(() => raw.close());
      await engine.start();
      const runId = await launch(engine, { name: 'one', steps: { only: { type: 'transform', expr: '1' } } });
      while (delayed === 0) await sleep(5);
      assert.equal(engine.worker!.inFlight, 0, 'the attempt itself has ended');
      await engine.stop();
      assert.equal(await getRunStatus(raw, runId), 'succeeded');
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

    for (const [path, send] of SENDERS) {
    void test(`${path}: a stale snapshot, a lost lease or a paused run write nothing; the stale answer carries the states read under the lock`, async (t) => {
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
      const refused = await send(db, { ...completion, expected: stale });
      assert.ok(refused.kind === 'stale', `stale: ${refused.kind}`);
      assert.equal(refused.current.statesText, snapshot.statesText, 'the current states, as the database renders them');
      assert.deepEqual(refused.current.steps, snapshot.steps);
      assert.deepEqual(await rowCounts(db, runId), before, 'a stale snapshot wrote nothing');

      const lost = await send(db, { ...completion, workerId: 'w2' });
      assert.equal(lost.kind, 'lease_lost');
      assert.deepEqual(await rowCounts(db, runId), before, 'a lost lease wrote nothing');

      const answer = await send(db, completion);
      assert.ok(answer.kind === 'done');
      const done = answer.claimed;
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
      const refusedPaused = await send(db, next);
      assert.ok(refusedPaused.kind === 'stale');
      assert.equal(refusedPaused.current.status, 'paused');
      assert.deepEqual(await rowCounts(db, runId), beforePause, 'nothing written in a paused run');
    });
    }

    void test('a batch writes and answers each item exactly as it would alone: claims, queues, skips, finishes, stale and lost items', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { db, engine } = ctx;
      const deps = { versions: new VersionCache(), random: () => 0.5 };
      const at = new Date(Date.now() + 1000);
      const leaseUntil = new Date(at.getTime() + 60_000);
      // Each case twice: set A goes as one batch, set B item by item through completeOne.
      const cases: { name: string; definition: unknown; inputs?: unknown; output: unknown; branch?: string; spoil?: (c: QuickCompletion) => QuickCompletion }[] = [
        { name: 'chain: claims its successor', definition: CHAIN, output: 1 },
        { name: 'one step: finishes the run with outputs', definition: { name: 'one', steps: { only: { type: 'transform', expr: '$input.n * 2' } }, outputs: { doubled: '$only', n: '$input.n' } }, inputs: { n: 21 }, output: 42 },
        { name: 'condition: skips a branch, claims the other', definition: await example('conditional-branch.yaml'), inputs: { amount: 5 }, output: { branch: 'small' }, branch: 'small' },
        { name: 'fan-out: queues one, claims one', definition: { name: 'fan', steps: { root: { type: 'transform', expr: '1' }, x: { type: 'transform', needs: ['root'], expr: '$root' }, y: { type: 'transform', needs: ['root'], expr: '$root' } } }, output: { nested: ['jsonb', 'reorders', { keys: 1, k: 2 }] } },
        { name: 'stale states', definition: CHAIN, output: 1, spoil: (c) => ({ ...c, expected: { ...c.expected, statesText: c.expected.statesText.replace('"pending"', '"queued"') } }) },
        { name: 'lost lease', definition: CHAIN, output: 1, spoil: (c) => ({ ...c, attempt: c.attempt + 1 }) },
      ];
      const runs: { A: string; B: string }[] = [];
      for (const c of cases) {
        const v = await engine.registerWorkflow(c.definition);
        runs.push({
          A: await engine.startRun({ versionId: v.versionId, inputs: c.inputs ?? {} }),
          B: await engine.startRun({ versionId: v.versionId, inputs: c.inputs ?? {} }),
        });
      }
      const claimed = await claimQueued(db, { workerId: 'w1', now: new Date(), leaseUntil, limit: 100 });
      const completionOf = async (runId: string, i: number): Promise<QuickCompletion> => {
        const step = claimed.find((c) => c.runId === runId)!;
        assert.ok(step.statesText, `${cases[i]!.name}: a root alone in flight comes with its states`);
        let captured: QuickCompletion | undefined;
        const capture = (completion: QuickCompletion): Promise<QuickAnswer> => {
          captured = completion;
          return Promise.resolve({ kind: 'lease_lost' });
        };
        await completeSucceeded(db, capture, deps, step, runningSnapshot(step.statesText), {
          now: () => at, workerId: 'w1', output: cases[i]!.output, branch: cases[i]!.branch ?? null, durationMs: 3,
          usage: { provider: 'simulated', model: 'm', tokensIn: 2, tokensOut: 3, costUsd: 0.5 },
          runUsage: { tokensIn: 2, tokensOut: 3, costUsd: 0.5, simulated: true },
          events: [{ stepId: step.stepId, type: 'step_succeeded', attempt: step.attempt, data: { duration_ms: 3 } }],
          claimFor: { workerId: 'w1', leaseUntil },
        }).catch(() => undefined);
        assert.ok(captured, `${cases[i]!.name}: the quick path takes it`);
        return cases[i]!.spoil ? cases[i]!.spoil!(captured) : captured;
      };
      const batch = await Promise.all(runs.map((r, i) => completionOf(r.A, i)));
      const alone = await Promise.all(runs.map((r, i) => completionOf(r.B, i)));
      assert.ok(batch.some((c) => c.queue.length > 0) && batch.some((c) => c.skips.length > 0) && batch.some((c) => c.finish), 'every kind of write is covered');

      const batchAnswers = await completeBatch(db, batch);
      const aloneAnswers: QuickAnswer[] = [];
      for (const c of alone) aloneAnswers.push(await completeOne(db, c));

      const comparable = (a: QuickAnswer): unknown => {
        if (a.kind === 'stale') return { kind: a.kind, status: a.current.status, states: a.current.statesText };
        if (a.kind === 'lease_lost' || !a.claimed) return { kind: a.kind };
        const { runId: _run, versionId: _version, ...claim } = a.claimed.claimed;
        return { kind: a.kind, claim, states: a.claimed.snapshot.statesText };
      };
      cases.forEach((c, i) => {
        assert.deepEqual(comparable(batchAnswers[i]!), comparable(aloneAnswers[i]!), `${c.name}: the same answer`);
      });
      assert.deepEqual(batchAnswers.map((a) => a.kind), ['done', 'done', 'done', 'done', 'stale', 'lease_lost']);
      for (const [i, r] of runs.entries()) {
        assert.deepEqual(await runRows(db, r.A, at), await runRows(db, r.B, at), `${cases[i]!.name}: the same rows`);
      }
      const finished = await engine.getRun(runs[1]!.A);
      assert.equal(finished?.status, 'succeeded');
      assert.deepEqual(finished?.outputs, { doubled: 42, n: 21 });
    });

    void test('a batch that names a run twice is refused whole, and writes nothing', async (t) => {
      const ctx = await testEngine(backend, t, { worker: false });
      if (!ctx) return;
      const { db, engine } = ctx;
      const runId = await launch(engine, CHAIN);
      const other = await launch(engine, CHAIN);
      const now = new Date();
      const claimed = await claimQueued(db, { workerId: 'w1', now, leaseUntil: new Date(now.getTime() + 60_000), limit: 2 });
      const completion = (c: (typeof claimed)[number]): QuickCompletion => ({
        runId: c.runId, stepId: c.stepId, attempt: c.attempt, workerId: 'w1', expected: runningSnapshot(c.statesText), at: now, output: 1,
        branch: null, durationMs: 1, usage: undefined, runUsage: undefined, events: [], queue: [], skips: [], claim: undefined, finish: undefined,
      });
      const first = completion(claimed.find((c) => c.runId === runId)!);
      const before = [await rowCounts(db, runId), await rowCounts(db, other)];
      const refused = await completeBatch(db, [completion(claimed.find((c) => c.runId === other)!), first, { ...first, output: 2 }]).catch((e: unknown) => e);
      assert.equal(sqlState(refused), 'WF400');
      assert.deepEqual([await rowCounts(db, runId), await rowCounts(db, other)], before);
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
      const done = await completeSucceeded(db, (c) => completeOne(db, c), deps, a!, held, success);
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
      assert.equal(await completeSucceeded(db, (c) => completeOne(db, c), deps, x, fanSnapshot, { ...success, events: [] }), undefined);
      assert.equal(await completeSucceeded(db, (c) => completeOne(db, c), deps, x, undefined, { ...success, events: [] }), undefined, 'nor without a snapshot');
      assert.deepEqual(await rowCounts(db, fan), before);
    });
  });
}
