/**
 * A worker's health port (liveness, readiness, Prometheus metrics) and its LISTEN connection
 * coming back after PostgreSQL drops it.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { startHealthServer } from '../src/engine/health-server.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, launch, testEngine } from './helpers/engine.ts';

after(closeTemplates);

for (const backend of BACKENDS) {
  void describe(`worker health on ${backend}`, () => {
    void test('livez, readyz and metrics reflect what the worker did', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const server = await startHealthServer(ctx.db, ctx.engine.worker!, 0);
      t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const live = await fetch(`${base}/livez`);
      assert.equal(live.status, 200);
      assert.equal(((await live.json()) as { worker: string }).worker, ctx.engine.worker!.id);
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ready', database: true, stopping: false });

      const ok = await launch(ctx.engine, { name: 'm', steps: { a: { type: 'transform', expr: '1' }, b: { type: 'transform', needs: ['a'], expr: '2' } } });
      const bad = await launch(ctx.engine, { name: 'm2', steps: { a: { type: 'delay', ms: 5000, timeout_ms: 20, retry: { max: 1, base_ms: 1 } } } });
      assert.equal(await ctx.engine.waitForRun(ok), 'succeeded');
      assert.equal(await ctx.engine.waitForRun(bad), 'failed');
      const text = await (await fetch(`${base}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      assert.equal(value('weft_steps_completed_total'), 2);
      assert.equal(value('weft_steps_claimed_total'), 4, 'a, b, and two attempts of the failing step');
      assert.equal(value('weft_steps_failed_total'), 2);
      assert.equal(value('weft_steps_retried_total'), 1);
      assert.equal(value('weft_claim_latency_seconds_count'), 4);
      assert.equal(value('weft_queue_depth'), 0);
      assert.match(text, /# TYPE weft_step_duration_seconds histogram/);
      assert.equal((await fetch(`${base}/nope`)).status, 404);

      await ctx.engine.stop();
      const stopping = await fetch(`${base}/readyz`);
      assert.equal(stopping.status, 503, 'a stopping worker is not ready');
    });
  });
}

void test('the worker wakes on NOTIFY again after its LISTEN connection is killed', async (t) => {
  // Poll far slower than the test's patience: only a working LISTEN can start the steps quickly.
  const ctx = await testEngine('postgres', t, { worker: { pollMs: 60_000 } });
  if (!ctx) return;
  const def = { name: 'wake', steps: { a: { type: 'transform', expr: '1' }, b: { type: 'transform', expr: '2' } } };
  // Two roots: the starter claims one itself; the other is announced by NOTIFY.
  const first = await launch(ctx.engine, def);
  assert.equal(await ctx.engine.waitForRun(first, 5000), 'succeeded');
  const killed = await ctx.db.query<{ n: number }>(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND application_name = current_setting('application_name') AND pid <> pg_backend_pid()`);
  assert.ok(killed.rows[0]!.n >= 1, 'killed the LISTEN connection(s)');
  // Wait until a LISTEN connection is back, then check that NOTIFY wakes the worker.
  await eventually(async () => {
    const { rows } = await ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%weft_steps%' AND application_name = current_setting('application_name')`);
    return rows[0]!.n >= 1 ? true : undefined;
  }, 10_000, 'LISTEN reconnected');
  const started = Date.now();
  const second = await launch(ctx.engine, def);
  assert.equal(await ctx.engine.waitForRun(second, 10_000), 'succeeded');
  assert.ok(Date.now() - started < 5000, 'woken by NOTIFY, not by the 60 s poll');
});
