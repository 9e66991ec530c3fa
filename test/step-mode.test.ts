/**
 * Step controls end to end on both databases: step mode (every ready step waits for a human
 * trigger, optionally with another prompt) and the human retry of a failed step.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunStatus } from '../src/core/scheduler-types.ts';
import type { Engine } from '../src/engine/engine.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, sleep, testEngine } from './helpers/engine.ts';

after(closeTemplates);

const chain = {
  name: 'step by step',
  steps: {
    a: { type: 'transform', expr: '"A"' },
    b: { type: 'transform', needs: ['a'], expr: '$a & "B"' },
    c: { type: 'transform', needs: ['b'], expr: '$b & "C"' },
  },
  outputs: { c: '$c' },
};

async function launchIn(engine: Engine, definition: unknown, mode: 'auto' | 'step', inputs: unknown = {}): Promise<string> {
  const v = await engine.registerWorkflow(definition);
  return engine.startRun({ versionId: v.versionId, inputs, mode });
}

async function stepStatus(engine: Engine, runId: string, stepId: string): Promise<string> {
  const run = await engine.getRun(runId);
  const step = run?.steps.find((s) => s.step_id === stepId);
  assert.ok(step, `step ${stepId} present`);
  return step.status;
}

/**
 * Resolves once the step has the status (and the run `runStatus`, when given) and returns the
 * run then. (getRun reads the run and its steps in two statements, so one read can straddle a commit.)
 */
async function stepBecomes(engine: Engine, runId: string, stepId: string, status: string, runStatus?: RunStatus) {
  return eventually(async () => {
    const run = (await engine.getRun(runId))!;
    const ok = run.steps.find((s) => s.step_id === stepId)?.status === status && (runStatus === undefined || run.status === runStatus);
    return ok ? run : undefined;
  }, 5000, `${stepId} ${status}`);
}

/** The run-level status events, in order. */
async function runStatusEvents(engine: Engine, runId: string): Promise<string[]> {
  return (await engine.listEvents(runId)).filter((e) => e.stepId === null && e.type !== 'run_created').map((e) => e.type);
}

for (const backend of BACKENDS) {
  void describe(`step mode and retry on ${backend}`, () => {
    void test('a 3-step chain in step mode waits at each step; the run goes waiting → running → … → succeeded', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const runId = await launchIn(engine, chain, 'step');
      let run = (await engine.getRun(runId))!;
      assert.equal(run.mode, 'step');
      assert.equal(run.status, 'waiting');
      assert.deepEqual(run.steps.map((s) => [s.step_id, s.status]).sort(), [['a', 'waiting'], ['b', 'pending'], ['c', 'pending']]);
      await sleep(300);
      assert.equal(await stepStatus(engine, runId, 'a'), 'waiting', 'nothing starts without a trigger');

      for (const [stepId, next] of [['a', 'b'], ['b', 'c']] as const) {
        assert.equal(await engine.triggerStep(runId, stepId), 'running');
        run = await stepBecomes(engine, runId, next, 'waiting', 'waiting');
        assert.equal(run.steps.find((s) => s.step_id === stepId)!.status, 'succeeded');
      }
      await engine.triggerStep(runId, 'c');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      run = (await engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { c: 'ABC' });
      assert.ok(run.steps.every((s) => s.attempt === 1 && s.attempt_base === 0));
      assert.deepEqual(await runStatusEvents(engine, runId), [
        'run_waiting', 'run_running', 'run_waiting', 'run_running', 'run_waiting', 'run_running', 'run_succeeded',
      ]);
      const events = await engine.listEvents(runId);
      assert.equal(events.find((e) => e.type === 'run_created')!.data['mode'], 'step');
      assert.deepEqual(events.filter((e) => e.type === 'step_waiting').map((e) => e.stepId), ['a', 'b', 'c']);
      assert.deepEqual(events.filter((e) => e.type === 'step_triggered').map((e) => [e.stepId, e.data['prompt_override']]), [['a', false], ['b', false], ['c', false]]);
    });

    void test('routing and guards behave as in auto mode; pause and resume keep the run waiting', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const runId = await launchIn(engine, {
        name: 'routed steps',
        steps: {
          route: { type: 'condition', cases: { big: '$input.n > 10' }, default: 'small' },
          big: { type: 'transform', needs: ['route.big'], expr: '"big"' },
          small: { type: 'transform', needs: ['route.small'], when: '$input.n > 100', expr: '"small"' },
          after: { type: 'transform', needs: ['small'], expr: '"after"' },
        },
      }, 'step', { n: 3 });
      await engine.triggerStep(runId, 'route');
      let run = await stepBecomes(engine, runId, 'small', 'waiting', 'waiting');
      assert.equal(run.steps.find((s) => s.step_id === 'big')!.status, 'skipped');
      assert.equal(run.steps.find((s) => s.step_id === 'big')!.skip_reason, 'branch');
      assert.equal(await engine.pauseRun(runId), 'paused');
      await assert.rejects(engine.triggerStep(runId, 'small'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /paused/.test(e.message));
      assert.equal(await engine.resumeRun(runId), 'waiting');
      // The guard is evaluated at execution, after the trigger: false → skipped, and the skip cascades.
      await engine.triggerStep(runId, 'small');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      run = (await engine.getRun(runId))!;
      assert.equal(run.steps.find((s) => s.step_id === 'small')!.skip_reason, 'guard');
      assert.equal(run.steps.find((s) => s.step_id === 'after')!.skip_reason, 'upstream');
      assert.deepEqual(await runStatusEvents(engine, runId), ['run_waiting', 'run_running', 'run_waiting', 'run_paused', 'run_resumed', 'run_running', 'run_succeeded']);
    });

    void test('a prompt given with the trigger reaches the agent and image executors', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const runId = await launchIn(engine, {
        name: 'prompted',
        steps: {
          write: { type: 'agent', provider: 'simulated', prompt: 'Write about {{ $input.topic }}' },
          draw: { type: 'image', provider: 'simulated', needs: ['write'], prompt: 'A picture of {{ $input.topic }}' },
          again: { type: 'agent', provider: 'simulated', needs: ['draw'], prompt: 'Summarise {{ $input.topic }}' },
        },
        outputs: { text: '$write.text', prompt: '$draw.prompt', again: '$again.text' },
      }, 'step', { topic: 'cats' });
      await engine.triggerStep(runId, 'write', { prompt: 'Instead, explain {{ $input.topic }} to zebras', ownerId: 'local' });
      await stepBecomes(engine, runId, 'draw', 'waiting');
      await engine.triggerStep(runId, 'draw', { prompt: 'A zebra drawing' });
      await stepBecomes(engine, runId, 'again', 'waiting');
      await engine.triggerStep(runId, 'again');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      const run = (await engine.getRun(runId))!;
      const out = run.outputs as { text: string; prompt: string; again: string };
      assert.match(out.text, /^\[simulated\] Response to: Instead, explain cats to zebras/, 'the override is a template, rendered like the prompt it replaces');
      assert.equal(out.prompt, 'A zebra drawing');
      assert.match(out.again, /^\[simulated\] Response to: Summarise cats/, 'no override: the definition prompt');
      assert.deepEqual(run.steps.find((s) => s.step_id === 'write')!.overrides, { prompt: 'Instead, explain {{ $input.topic }} to zebras' });
      assert.equal(run.steps.find((s) => s.step_id === 'again')!.overrides, null);
      const triggered = (await engine.listEvents(runId)).filter((e) => e.type === 'step_triggered');
      assert.deepEqual(triggered[0]!.data, { prompt_override: true, prompt: 'Instead, explain {{ $input.topic }} to zebras', by: 'local' });
      assert.deepEqual(triggered[2]!.data, { prompt_override: false });
    });

    void test('triggering a step that is not waiting is a conflict naming its status; unknown run or step: not found', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const conflict = (status: string) => (e: Error & { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(e.code, 'WEFT_CONFLICT');
        assert.match(e.message, new RegExp(`is ${status}`));
        assert.equal(e.details?.['status'], status);
        return true;
      };
      const stepRun = await launchIn(engine, chain, 'step');
      await assert.rejects(engine.triggerStep(stepRun, 'b'), conflict('pending'));
      await engine.triggerStep(stepRun, 'a');
      await stepBecomes(engine, stepRun, 'b', 'waiting');
      await assert.rejects(engine.triggerStep(stepRun, 'a'), conflict('succeeded'));
      await assert.rejects(engine.triggerStep(stepRun, 'nope'), { code: 'WEFT_NOT_FOUND' });
      await assert.rejects(engine.triggerStep('00000000-0000-4000-8000-000000000000', 'a'), { code: 'WEFT_NOT_FOUND' });
      await assert.rejects(engine.triggerStep(stepRun, 'b', { ownerId: 'someone else' }), { code: 'WEFT_NOT_FOUND' });
      // Two triggers at once: one takes effect, the other finds the step no longer waiting.
      const both = await Promise.allSettled([engine.triggerStep(stepRun, 'b'), engine.triggerStep(stepRun, 'b')]);
      assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
      assert.equal((both.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.code, 'WEFT_CONFLICT');
      // Auto mode: nothing ever waits for a trigger.
      const autoRun = await launchIn(engine, { ...chain, name: 'auto chain', steps: { ...chain.steps, a: { type: 'delay', ms: 2000 } }, outputs: {} }, 'auto');
      await stepBecomes(engine, autoRun, 'a', 'running');
      await assert.rejects(engine.triggerStep(autoRun, 'a'), conflict('running'));
      await assert.rejects(engine.triggerStep(autoRun, 'b'), conflict('pending'));
      await engine.cancelRun(autoRun);
      assert.equal((await engine.listEvents(stepRun)).filter((e) => e.type === 'step_triggered' && e.stepId === 'b').length, 1);
    });

    void test('retrying a failed step re-opens the failed run: skipped steps go back to pending and run, the new output is the latest version', async (t) => {
      const target = await flakyServer();
      t.after(() => target.server.close());
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchIn(engine, {
        name: 'retry me',
        steps: {
          pre: { type: 'transform', expr: '"pre"' },
          fetch: { type: 'http', needs: ['pre'], url: `${target.url}/value`, on_error: 'continue' },
          use: { type: 'transform', needs: ['fetch'], expr: '$fetch.body.value * 2' },
          report: { type: 'transform', needs: ['use'], expr: '"used " & $string($use)' },
          note: { type: 'transform', needs: ['fetch'], trigger: 'all_done', expr: '$exists($fetch) ? "fetched" : "no fetch"' },
        },
        // Fails the run while fetch has no output: the failed step must be retried for a result.
        outputs: { report: '$exists($report) ? $report : $error("no report")', note: '$note' },
      }, 'auto');
      assert.equal(await engine.waitForRun(runId, 5000), 'failed');
      let run = (await engine.getRun(runId))!;
      assert.match(run.error!.message, /no report/);
      assert.ok(run.finished_at);
      const statuses = () => Object.fromEntries(run.steps.map((s) => [s.step_id, s.status]));
      assert.deepEqual(statuses(), { pre: 'succeeded', fetch: 'failed', use: 'skipped', report: 'skipped', note: 'succeeded' });
      // A human edited the failed step's output meanwhile: a retry keeps it as an older version.
      await db.query(`INSERT INTO artifacts (run_id, step_id, name, version, content, is_latest, produced_by) VALUES ($1, 'fetch', 'output', 1, '"by hand"', true, 'user')`, [runId]);

      await assert.rejects(engine.retryStep(runId, 'pre'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /is succeeded/.test(e.message));
      await assert.rejects(engine.retryStep(runId, 'use'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /is skipped/.test(e.message));
      await assert.rejects(engine.retryStep(runId, 'nope'), { code: 'WEFT_NOT_FOUND' });
      target.healthy = true;
      // Three requests at once: exactly one takes effect.
      const tries = await Promise.allSettled([engine.retryStep(runId, 'fetch'), engine.retryStep(runId, 'fetch'), engine.retryStep(runId, 'fetch')]);
      assert.equal(tries.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(tries));
      for (const r of tries) if (r.status === 'rejected') assert.equal(r.reason.code, 'WEFT_CONFLICT');

      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      run = (await engine.getRun(runId))!;
      assert.deepEqual(run.outputs, { report: 'used 42', note: 'no fetch' }, 'note (all_done) ran on the failure and stays as it was');
      assert.equal(run.error, null);
      assert.deepEqual(statuses(), { pre: 'succeeded', fetch: 'succeeded', use: 'succeeded', report: 'succeeded', note: 'succeeded' });
      const fetch = run.steps.find((s) => s.step_id === 'fetch')!;
      assert.equal(fetch.attempt, 2, 'attempts keep counting');
      assert.equal(fetch.attempt_base, 1, 'the retry started a new attempt family');
      assert.ok(run.steps.find((s) => s.step_id === 'use')!.skip_reason === null);
      // A new idempotency key for the new family.
      assert.deepEqual(target.keys, [`${runId}:fetch`, `${runId}:fetch:1`]);

      const { rows: versions } = await db.query<{ step_id: string; version: number; is_latest: boolean; produced_by: string; content: unknown }>(
        `SELECT step_id, version, is_latest, produced_by, content FROM artifacts WHERE run_id = $1 ORDER BY step_id, version`, [runId]);
      const fetchVersions = versions.filter((v) => v.step_id === 'fetch');
      assert.deepEqual(fetchVersions.map((v) => [v.version, v.is_latest, v.produced_by]), [[1, false, 'user'], [2, true, 'attempt']]);
      assert.deepEqual((fetchVersions[1]!.content as { body: unknown }).body, { value: 21 });
      for (const id of ['pre', 'use', 'report', 'note']) {
        assert.deepEqual(versions.filter((v) => v.step_id === id).map((v) => [v.version, v.is_latest]), [[1, true]], id);
      }

      const events = await engine.listEvents(runId);
      const types = events.map((e) => e.type);
      assert.equal(types.filter((x) => x === 'step_retry_requested').length, 1);
      assert.deepEqual(events.filter((e) => e.type === 'step_reset').map((e) => [e.stepId, e.data['from']]), [['use', 'skipped'], ['report', 'skipped']]);
      assert.deepEqual(await runStatusEvents(engine, runId), ['run_failed', 'run_running', 'run_succeeded']);
      await assert.rejects(engine.retryStep(runId, 'fetch'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /succeeded/.test(e.message));
    });

    void test('a fail-fast failure in step mode: the retried step runs at once, what the failure cancelled waits again', async (t) => {
      const target = await flakyServer();
      t.after(() => target.server.close());
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const runId = await launchIn(engine, {
        name: 'fail fast, step by step',
        steps: {
          fetch: { type: 'http', url: `${target.url}/value` },
          side: { type: 'transform', expr: '"side"' },
          use: { type: 'transform', needs: ['fetch'], expr: '$fetch.body.value + 1' },
        },
        outputs: { use: '$use', side: '$side' },
      }, 'step');
      await engine.triggerStep(runId, 'fetch');
      assert.equal(await engine.waitForRun(runId, 5000), 'failed');
      let run = (await engine.getRun(runId))!;
      assert.equal(run.steps.find((s) => s.step_id === 'side')!.status, 'cancelled', 'a waiting step is cancelled by the failure');
      target.healthy = true;
      assert.equal(await engine.retryStep(runId, 'fetch'), 'running');
      // side (cancelled while waiting) waits for its trigger again; use waits once fetch succeeds.
      run = await stepBecomes(engine, runId, 'use', 'waiting', 'waiting');
      assert.equal(run.steps.find((s) => s.step_id === 'side')!.status, 'waiting');
      await engine.triggerStep(runId, 'use');
      await engine.triggerStep(runId, 'side');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      assert.deepEqual((await engine.getRun(runId))!.outputs, { use: 22, side: 'side' });
    });

    void test('a retry waits for what is in its way, and says which step that is', async (t) => {
      const target = await flakyServer();
      t.after(() => target.server.close());
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const blockedBy = (stepId: string, pattern: RegExp) => (e: Error & { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(e.code, 'WEFT_CONFLICT');
        assert.equal(e.details?.['blocked_by'], stepId);
        assert.match(e.message, pattern);
        return true;
      };
      const runId = await launchIn(engine, {
        name: 'in the way',
        steps: {
          soft: { type: 'http', url: `${target.url}/soft`, on_error: 'continue' },
          slow: { type: 'delay', needs: ['soft'], trigger: 'all_done', ms: 600 },
          hard: { type: 'http', needs: ['slow'], url: `${target.url}/hard` },
        },
      }, 'auto');
      await stepBecomes(engine, runId, 'slow', 'running');
      // slow (all_done) started on soft's failure: soft cannot be retried under it.
      await assert.rejects(engine.retryStep(runId, 'soft'), blockedBy('slow', /"slow", which needs step "soft", is running/));
      assert.equal(await engine.waitForRun(runId, 5000), 'failed');
      // hard failed the run (on_error fail): it must be retried first.
      await assert.rejects(engine.retryStep(runId, 'soft'), blockedBy('hard', /"hard" failed run .*retry that step first/));
      target.healthy = true;
      assert.equal(await engine.retryStep(runId, 'hard'), 'running');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
      // The run succeeded with soft failed (on_error continue): finished, so no retry now.
      await assert.rejects(engine.retryStep(runId, 'soft'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /is succeeded/.test(e.message));
    });

    void test('a cancelled run stays cancelled', async (t) => {
      const target = await flakyServer();
      t.after(() => target.server.close());
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine } = ctx;
      const runId = await launchIn(engine, {
        name: 'cancelled',
        steps: { fetch: { type: 'http', url: `${target.url}/value`, on_error: 'continue' }, wait: { type: 'transform', expr: '1' } },
      }, 'step');
      await engine.triggerStep(runId, 'fetch');
      await stepBecomes(engine, runId, 'fetch', 'failed', 'waiting');
      await engine.cancelRun(runId);
      await assert.rejects(engine.retryStep(runId, 'fetch'), (e: Error & { code?: string }) => e.code === 'WEFT_CONFLICT' && /cancelled/.test(e.message));
      await assert.rejects(engine.triggerStep(runId, 'wait'), { code: 'WEFT_CONFLICT' });
    });
  });
}

/** An HTTP target that answers 404 until `healthy`, then {"value": 21}; records each request's idempotency key. */
async function flakyServer(): Promise<{ server: Server; url: string; healthy: boolean; keys: string[] }> {
  const state = { healthy: false, keys: [] as string[] };
  const server = createServer((req, res) => {
    state.keys.push(header(req.headers, 'idempotency-key'));
    res.setHeader('content-type', 'application/json');
    res.statusCode = state.healthy ? 200 : 404;
    res.end(JSON.stringify(state.healthy ? { value: 21 } : { error: 'not yet' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { server, url });
}

function header(headers: IncomingHttpHeaders, name: string): string {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v ?? '';
}
