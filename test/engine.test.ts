/**
 * The engine end to end on both databases: parallelism, branches, guards, retries with
 * backoff on an injected clock, timeouts, cancel, pause/resume, on_error, inputs.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DefinitionError } from '../src/core/errors.ts';
import { createHash } from 'node:crypto';
import { ManualClock } from '../src/engine/clock.ts';
import { getRunFile } from '../src/store/run-files.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, example, launch, sleep, testEngine } from './helpers/engine.ts';

after(closeTemplates);

function stepOf<T extends { step_id: string }>(steps: T[], id: string): T {
  const s = steps.find((x) => x.step_id === id);
  assert.ok(s, `step ${id} present`);
  return s;
}

for (const backend of BACKENDS) {
  void describe(`engine on ${backend}`, () => {
    void test('diamond: B and C overlap in time, D joins them, outputs evaluated', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, await example('diamond.yaml'), { n: 21 });
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'succeeded');
      const run = (await ctx.engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { result: { sum: 42, waited: 400 } });
      const b = stepOf(run.steps, 'b');
      const c = stepOf(run.steps, 'c');
      assert.ok(b.started_at! < c.finished_at! && c.started_at! < b.finished_at!, 'b and c ran at the same time');
      const d = stepOf(run.steps, 'd');
      assert.ok(d.started_at! >= b.finished_at! && d.started_at! >= c.finished_at!, 'd waited for both');
      assert.ok(run.steps.every((s) => s.status === 'succeeded' && s.attempt === 1));
    });

    void test('condition routes to one branch and skips the other cone', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const def = await example('conditional-branch.yaml');
      const large = await launch(ctx.engine, def, { amount: 5000 });
      const small = await launch(ctx.engine, def, { amount: 10 });
      assert.equal(await ctx.engine.waitForRun(large, 10_000), 'succeeded');
      assert.equal(await ctx.engine.waitForRun(small, 10_000), 'succeeded');
      const l = (await ctx.engine.getRun(large))!;
      assert.deepEqual(l.outputs, { branch: 'large', decision: 'needs approval' });
      assert.equal(stepOf(l.steps, 'auto_approve').status, 'skipped');
      assert.equal(stepOf(l.steps, 'notify_large').status, 'succeeded');
      const s = (await ctx.engine.getRun(small))!;
      assert.deepEqual(s.outputs, { branch: 'small', decision: 'approved' });
      assert.equal(stepOf(s.steps, 'review_large').status, 'skipped');
      assert.equal(stepOf(s.steps, 'notify_large').status, 'skipped', 'skip cascades down the cone');
      assert.equal(stepOf(s.steps, 'report').status, 'succeeded');
    });

    void test('a false `when` skips the step and, under all_success, its dependents', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, {
        name: 'guards',
        steps: {
          a: { type: 'transform', expr: '1' },
          b: { type: 'transform', needs: ['a'], when: '$a > 5', expr: '2' },
          c: { type: 'transform', needs: ['b'], expr: '3' },
          d: { type: 'transform', needs: ['b'], trigger: 'all_done', expr: '$exists($b) ? "ran b" : "no b"' },
        },
        outputs: { d: '$d' },
      });
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'succeeded');
      const run = (await ctx.engine.getRun(runId))!;
      assert.equal(stepOf(run.steps, 'b').status, 'skipped');
      assert.equal(stepOf(run.steps, 'b').skip_reason, 'guard');
      assert.equal(stepOf(run.steps, 'c').status, 'skipped');
      assert.deepEqual(run.outputs, { d: 'no b' });
    });

    void test('retries follow the exponential backoff on an injected clock', async (t) => {
      let calls = 0;
      const server = await listen((_req, res) => {
        calls++;
        res.statusCode = calls <= 2 ? 503 : 200;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ calls }));
      });
      t.after(() => server.close());
      const clock = new ManualClock();
      const ctx = await testEngine(backend, t, { clock, random: () => 0.5 });
      if (!ctx) return;
      const runId = await launch(ctx.engine, {
        name: 'flaky',
        steps: {
          fetch: {
            type: 'http', url: `http://127.0.0.1:${port(server)}/x`,
            retry: { max: 3, backoff: 'exponential', base_ms: 1000, max_ms: 10_000, jitter: 0.5 },
          },
        },
        outputs: { calls: '$fetch.body.calls' },
      });
      const retries = async (n: number) => {
        const events = (await ctx.engine.listEvents(runId)).filter((e) => e.type === 'step_retry_scheduled');
        return events.length >= n ? events : undefined;
      };
      // attempt 1 fails at t0: delay = 1000 * 2^0, jittered into [500, 1000] by random 0.5 → 750
      const first = await eventually(() => retries(1), 5000, 'first retry');
      assert.equal(first[0]!.data['delay_ms'], 750);
      const t0 = clock.now();
      assert.equal(first[0]!.data['available_at'], new Date(t0 + 750).toISOString());
      // Not due yet: the worker polls but must not claim it.
      await sleep(300);
      assert.equal(calls, 1);
      clock.advance(749);
      ctx.engine.worker!.wake();
      await sleep(300);
      assert.equal(calls, 1, 'not claimed 1 ms before it is due');
      clock.advance(1);
      // attempt 2 fails: delay = 1000 * 2^1 = 2000, jittered → 1500
      const second = await eventually(() => retries(2), 5000, 'second retry');
      assert.equal(second[1]!.data['delay_ms'], 1500);
      assert.equal(calls, 2);
      clock.advance(1500);
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'succeeded');
      const run = (await ctx.engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { calls: 3 });
      assert.equal(run.steps[0]!.attempt, 3);
    });

    void test('a non-retryable error fails the run at once; retries stop at the limit', async (t) => {
      const server = await listen((req, res) => {
        res.statusCode = req.url === '/gone' ? 404 : 500;
        res.end('no');
      });
      t.after(() => server.close());
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const base = `http://127.0.0.1:${port(server)}`;
      const gone = await launch(ctx.engine, { name: 'gone', steps: { f: { type: 'http', url: `${base}/gone`, retry: { max: 3, base_ms: 10 } } } });
      const broken = await launch(ctx.engine, { name: 'broken', steps: { f: { type: 'http', url: `${base}/err`, retry: { max: 2, base_ms: 10, max_ms: 20 } } } });
      assert.equal(await ctx.engine.waitForRun(gone, 10_000), 'failed');
      assert.equal(await ctx.engine.waitForRun(broken, 10_000), 'failed');
      const g = (await ctx.engine.getRun(gone))!;
      assert.equal(g.steps[0]!.attempt, 1, '404 is not retried');
      assert.equal(g.error?.code, 'WEFT_HTTP_ERROR');
      const b = (await ctx.engine.getRun(broken))!;
      assert.equal(b.steps[0]!.attempt, 3, 'max 2 retries = 3 attempts');
      assert.equal(b.steps[0]!.status, 'failed');
    });

    void test('timeout_ms aborts a step; on_error continue lets the run go on', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const started = Date.now();
      const runId = await launch(ctx.engine, {
        name: 'timeouts',
        steps: {
          slow: { type: 'delay', ms: 30_000, timeout_ms: 150, on_error: 'continue' },
          after_slow: { type: 'transform', needs: ['slow'], trigger: 'all_done', expr: '"went on"' },
          strict: { type: 'transform', needs: ['slow'], expr: '"never"' },
        },
        outputs: { r: '$after_slow' },
      });
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'succeeded');
      assert.ok(Date.now() - started < 5000, 'the 30 s delay was cut short');
      const run = (await ctx.engine.getRun(runId))!;
      const slow = stepOf(run.steps, 'slow');
      assert.equal(slow.status, 'failed');
      assert.equal(slow.error?.code, 'WEFT_STEP_TIMEOUT');
      assert.equal(stepOf(run.steps, 'strict').status, 'skipped');
      assert.deepEqual(run.outputs, { r: 'went on' });
    });

    void test('cancel aborts running steps and pending ones never start', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, {
        name: 'cancel me',
        steps: { wait: { type: 'delay', ms: 30_000 }, next: { type: 'transform', needs: ['wait'], expr: '1' } },
      });
      await eventually(async () => ((await ctx.engine.getRun(runId))!.steps.find((s) => s.step_id === 'wait')!.status === 'running' ? true : undefined));
      const before = Date.now();
      assert.equal(await ctx.engine.cancelRun(runId), 'cancelled');
      assert.equal(await ctx.engine.waitForRun(runId, 5000), 'cancelled');
      const run = (await ctx.engine.getRun(runId))!;
      assert.equal(stepOf(run.steps, 'wait').status, 'cancelled');
      assert.equal(stepOf(run.steps, 'next').status, 'cancelled');
      assert.equal(stepOf(run.steps, 'next').attempt, 0, 'never started');
      // The worker aborted the delay: its slot is free again promptly.
      await eventually(async () => (ctx.engine.worker!.freeSlots === 8 ? true : undefined), 2000, 'slot freed');
      assert.ok(Date.now() - before < 2000);
      await assert.rejects(ctx.engine.resumeRun(runId), { code: 'WEFT_CONFLICT' });
      await assert.rejects(ctx.engine.cancelRun(runId), { code: 'WEFT_CONFLICT' });
    });

    void test('pause lets the running step finish and starts nothing new; resume continues', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, {
        name: 'pausable',
        steps: { a: { type: 'delay', ms: 300 }, b: { type: 'transform', needs: ['a'], expr: '"b ran"' } },
        outputs: { b: '$b' },
      });
      await eventually(async () => ((await ctx.engine.getRun(runId))!.steps.find((s) => s.step_id === 'a')!.status === 'running' ? true : undefined));
      assert.equal(await ctx.engine.pauseRun(runId), 'paused');
      await eventually(async () => ((await ctx.engine.getRun(runId))!.steps.find((s) => s.step_id === 'a')!.status === 'succeeded' ? true : undefined), 5000, 'a finished');
      await sleep(300);
      let run = (await ctx.engine.getRun(runId))!;
      assert.equal(run.status, 'paused');
      assert.equal(stepOf(run.steps, 'b').status, 'pending', 'nothing new starts while paused');
      await assert.rejects(ctx.engine.pauseRun(runId), { code: 'WEFT_CONFLICT' });
      assert.equal(await ctx.engine.resumeRun(runId), 'running');
      assert.equal(await ctx.engine.waitForRun(runId, 5000), 'succeeded');
      run = (await ctx.engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { b: 'b ran' });
      const types = (await ctx.engine.listEvents(runId)).map((e) => e.type);
      assert.ok(types.indexOf('run_paused') < types.indexOf('run_resumed'));
    });

    void test('bad launch inputs are refused with paths and write nothing', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const v = await ctx.engine.registerWorkflow(await example('blog-article.yaml'));
      await assert.rejects(ctx.engine.startRun({ versionId: v.versionId, inputs: { topic: 42 } }), (e: unknown) => {
        assert.ok(e instanceof DefinitionError);
        assert.equal(e.problems[0]!.path, '/topic');
        return true;
      });
      const { rows } = await ctx.db.query<{ n: number }>('SELECT count(*)::int AS n FROM runs');
      assert.equal(rows[0]!.n, 0);
    });

    void test('runs started at once never take more than the worker\'s concurrency', async (t) => {
      let running = 0;
      let most = 0;
      const server = await listen((_req, res) => {
        most = Math.max(most, ++running);
        setTimeout(() => {
          running--;
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        }, 100);
      });
      t.after(() => server.close());
      const ctx = await testEngine(backend, t, { worker: { concurrency: 2 } });
      if (!ctx) return;
      const v = await ctx.engine.registerWorkflow({ name: 'slow', steps: { f: { type: 'http', url: `http://127.0.0.1:${port(server)}/` } } });
      // Each start may claim its root for this process's worker: together they must leave the
      // rest queued for the slots as they free up.
      const ids = await Promise.all(Array.from({ length: 8 }, () => ctx.engine.startRun({ versionId: v.versionId })));
      for (const id of ids) assert.equal(await ctx.engine.waitForRun(id, 10_000), 'succeeded');
      assert.equal(most, 2);
    });

    void test('an idempotency key returns the first run', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const v = await ctx.engine.registerWorkflow({ name: 'once', steps: { a: { type: 'transform', expr: '1' } } });
      const r1 = await ctx.engine.startRun({ versionId: v.versionId, idempotencyKey: 'k1' });
      const r2 = await ctx.engine.startRun({ versionId: v.versionId, idempotencyKey: 'k1' });
      assert.equal(r1, r2);
      // Concurrent starts with one new key (on PostgreSQL, in separate transactions that wait on
      // the key): one run, every caller gets its id, and its steps are written once.
      const racing = await Promise.all(Array.from({ length: 6 }, () => ctx.engine.startRun({ versionId: v.versionId, idempotencyKey: 'k2' })));
      assert.equal(new Set(racing).size, 1);
      const { rows } = await ctx.db.query<{ runs: number; steps: number }>(
        `SELECT (SELECT count(*)::int FROM runs WHERE idempotency_key = 'k2') AS runs,
                (SELECT count(*)::int FROM step_runs WHERE run_id = $1) AS steps`, [racing[0]]);
      assert.deepEqual(rows[0], { runs: 1, steps: 1 });
      assert.equal(await ctx.engine.waitForRun(racing[0]!, 10_000), 'succeeded');
      const again = await ctx.engine.registerWorkflow({ name: 'once', steps: { a: { type: 'transform', expr: '1' } } });
      assert.equal(again.versionId, v.versionId, 'an unchanged definition keeps its version');
      const changed = await ctx.engine.registerWorkflow({ name: 'once', steps: { a: { type: 'transform', expr: '2' } } });
      assert.equal(changed.version, 2);
    });

    void test('the blog article example runs on the labelled simulated provider', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, await example('blog-article.yaml'), { topic: 'durable execution' });
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'succeeded');
      const run = (await ctx.engine.getRun(runId))!;
      assert.equal(run.simulated, true);
      assert.ok(run.tokens_in > 0 && run.tokens_out > 0);
      const out = run.outputs as { article: string; image: string; score: number; rewritten: boolean };
      assert.match(out.article, /^\[simulated\]/);
      const sha = new RegExp(`^/api/runs/${runId}/files/([0-9a-f]{64})$`).exec(out.image)?.[1];
      assert.ok(sha, `the image is a stored run file: ${out.image}`);
      const file = await getRunFile(ctx.db, runId, sha);
      assert.equal(file?.contentType, 'image/svg+xml');
      assert.match(Buffer.from(file!.bytes).toString(), /^<svg [^>]*>.*simulated: /);
      assert.equal(createHash('sha256').update(file!.bytes).digest('hex'), sha, 'stored under its own hash');
      assert.equal(out.rewritten, out.score < 7);
      assert.equal(stepOf(run.steps, 'rewrite').status, out.rewritten ? 'succeeded' : 'skipped');
      assert.equal(stepOf(run.steps, 'article').provider, 'simulated');
    });

    void test('a step without a provider fails with a clear error, not a fake success', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const runId = await launch(ctx.engine, { name: 'no provider', steps: { a: { type: 'agent', prompt: 'hi' } } });
      assert.equal(await ctx.engine.waitForRun(runId, 10_000), 'failed');
      const run = (await ctx.engine.getRun(runId))!;
      assert.equal(run.error?.code, 'WEFT_PROVIDER_MISSING');
      assert.match(run.error!.message, /provider: simulated/);
      assert.equal(run.steps[0]!.attempt, 1, 'not retried');
    });
  });
}

function listen(handler: Parameters<typeof createServer>[1]): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function port(server: Server): number {
  return (server.address() as AddressInfo).port;
}
