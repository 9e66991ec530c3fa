/**
 * A run's clock never goes back. Two workers finish a diamond's branches and take their times
 * before either holds the run lock; the one that took the earlier time may get the lock second
 * and start the join. Its writes are recorded at the run's latest time, so the join never
 * starts before a step it needs finished (seen on PostgreSQL in CI before this was so).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { advance } from '../src/engine/advance.ts';
import { outcomeRequest } from '../src/engine/attempt.ts';
import { VersionCache } from '../src/engine/version-cache.ts';
import { transactionWithRetry } from '../src/store/db.ts';
import { claimQueued, type ClaimedStep } from '../src/store/step-runs.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { example, launch, testEngine } from './helpers/engine.ts';

after(closeTemplates);

const T0 = Date.parse('2026-12-03T12:00:00.000Z');

for (const backend of BACKENDS) {
  void describe(`a run's clock on ${backend}`, () => {
    void test('a join started by the completion that took the earlier time starts no earlier than what it needs finished', async (t) => {
      // No worker: the test claims and completes the steps itself, with the times it chooses.
      const ctx = await testEngine(backend, t, { worker: false, clock: { now: () => T0 } });
      if (!ctx) return;
      const { db, engine } = ctx;
      const deps = { versions: new VersionCache(), random: () => 0.5 };
      // A → (B, C) → D; D needs both branches.
      const runId = await launch(engine, await example('diamond.yaml'));

      const claim = async (at: number): Promise<Map<string, ClaimedStep>> => {
        const claimed = await claimQueued(db, { workerId: 'w', now: new Date(at), leaseUntil: new Date(at + 60_000), limit: 10 });
        return new Map(claimed.map((x) => [x.stepId, x]));
      };
      const succeed = (c: ClaimedStep, output: unknown, at: number, claimFor?: boolean) =>
        transactionWithRetry(db, (tx) => advance(tx, deps, {
          ...outcomeRequest('w', c, { kind: 'succeeded', result: { output }, output }, new Date(at), 1),
          claimFor: claimFor ? { workerId: 'w', leaseUntil: new Date(at + 60_000) } : undefined,
        }));

      const first = await claim(T0 + 1);
      await succeed(first.get('a')!, 1, T0 + 2);
      const branches = await claim(T0 + 3);
      assert.deepEqual([...branches.keys()].sort(), ['b', 'c']);
      // b took its time at T0+50 and c at T0+10, but b's write got the lock first.
      const byB = await succeed(branches.get('b')!, 2, T0 + 50, true);
      assert.equal(byB.claimed, undefined, 'd still waits for c');
      const byC = await succeed(branches.get('c')!, 3, T0 + 10, true);
      assert.equal(byC.claimed?.stepId, 'd', 'the second completion claims the join');

      const run = (await engine.getRun(runId))!;
      const at = (id: string, field: 'started_at' | 'finished_at') => run.steps.find((s) => s.step_id === id)![field]!.getTime();
      assert.equal(at('b', 'finished_at'), T0 + 50);
      assert.ok(at('c', 'finished_at') >= T0 + 50, `c is recorded finished at the run's latest time, not before b (${at('c', 'finished_at') - T0})`);
      assert.ok(at('d', 'started_at') >= at('b', 'finished_at') && at('d', 'started_at') >= at('c', 'finished_at'), 'd started after both');
      const events = await engine.listEvents(runId);
      const times = events.map((e) => new Date(e.createdAt).getTime());
      assert.deepEqual(times, [...times].sort((x, y) => x - y), 'the run\'s events are in time order');
    });
  });
}
