/**
 * Budget pauses end to end on both databases: an agent step on a priced model (the built-in
 * `openai` provider pointed at the local LLM server, gpt-4.1-mini) in a run whose budget_usd
 * does not cover the call. The run pauses into an approval instead of failing; approving with
 * a higher budget resumes it, rejecting cancels it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError } from '../src/core/errors.ts';
import type { Engine } from '../src/engine/engine.ts';
import { configureProviders } from '../src/providers/registry.ts';
import { listRunApprovals } from '../src/store/approvals.ts';
import type { Db } from '../src/store/db.ts';
import { BUDGETED, PARALLEL } from './helpers/budget.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually, sleep, testEngine } from './helpers/engine.ts';
import { startLlmServer, type LlmServer } from './helpers/llm-server.ts';

let llm: LlmServer;

before(async () => {
  llm = await startLlmServer({ openaiKey: 'sk-budget-test' });
  configureProviders({ providers: [], allowPrivateNetwork: true, env: { OPENAI_API_KEY: 'sk-budget-test', OPENAI_BASE_URL: llm.openaiBaseUrl } });
});

after(async () => {
  configureProviders({ providers: [], allowPrivateNetwork: false, env: {} });
  await llm.close();
  await closeTemplates();
});

async function launchBudgeted(engine: Engine, definition: unknown, budgetUsd: number, mode: 'auto' | 'step' = 'auto'): Promise<string> {
  const v = await engine.registerWorkflow(definition);
  return engine.startRun({ versionId: v.versionId, budgetUsd, mode });
}

async function pausedWithApproval(engine: Engine, db: Db, runId: string, parked: readonly string[] = ['ask']) {
  return eventually(async () => {
    const run = (await engine.getRun(runId))!;
    const approvals = await listRunApprovals(db, runId);
    const pending = approvals.filter((a) => a.status === 'pending');
    const stepsParked = parked.every((id) => run.steps.find((s) => s.step_id === id)?.error?.code === 'WEFT_BUDGET_EXCEEDED' && run.steps.find((s) => s.step_id === id)?.status === 'pending');
    return run.status === 'paused' && pending.length === 1 && stepsParked ? { run, approval: pending[0]!, approvals } : undefined;
  }, 5000, 'the run paused into an approval');
}

function rejectsWith(code: string): (e: unknown) => boolean {
  return (e) => e instanceof WeftError && e.code === code;
}

for (const backend of BACKENDS) {
  void describe(`budget pauses on ${backend}`, () => {
    void test('a call over budget pauses the run into an approval; approving with more budget resumes it to success', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const before = llm.requests.length;
      const runId = await launchBudgeted(engine, BUDGETED, 0.0001);
      const { run, approval } = await pausedWithApproval(engine, db, runId);
      assert.equal(llm.requests.length, before, 'the refused call was never sent');
      const ask = run.steps.find((s) => s.step_id === 'ask')!;
      assert.equal(ask.attempt, 1);
      assert.equal(ask.attempt - ask.attempt_base, 0, 'the hold used none of the step\'s attempts');
      assert.ok(run.steps.every((s) => s.status === 'pending'), 'nothing failed, nothing else started');
      assert.equal(approval.kind, 'budget');
      assert.equal(approval.step_id, 'ask');
      const data = approval.data as { step_id: string; estimate_usd: number; spent_usd: number; budget_usd: number; steps: Record<string, number> };
      assert.equal(data.step_id, 'ask');
      assert.equal(data.budget_usd, 0.0001);
      assert.equal(data.spent_usd, 0);
      assert.ok(data.estimate_usd > 0.0001 && data.estimate_usd < 0.001, `estimate ${data.estimate_usd}`);
      assert.deepEqual(Object.keys(data.steps), ['ask']);

      const events = await engine.listEvents(runId);
      const types = events.map((e) => e.type);
      assert.ok(types.includes('approval_requested') && types.includes('run_paused'), types.join(','));
      assert.ok(!types.some((x) => x === 'step_failed' || x === 'step_attempt_failed' || x === 'step_retry_scheduled'), types.join(','));
      const requested = events.find((e) => e.type === 'approval_requested')!;
      assert.equal(requested.stepId, 'ask');
      assert.equal(requested.data['approval_id'], approval.id);
      assert.ok(types.indexOf('approval_requested') < types.indexOf('run_paused'));
      await sleep(200);
      assert.equal((await engine.getRun(runId))!.status, 'paused', 'the run stays paused until someone decides');

      // Below what is spent (0) is impossible to test with 0 spent; a negative budget is refused up front.
      await assert.rejects(engine.decideApproval(runId, approval.id, { decision: 'approve', budgetUsd: -1, by: 'u1' }), rejectsWith('WEFT_INVALID_INPUTS'));
      const decided = await engine.decideApproval(runId, approval.id, { decision: 'approve', budgetUsd: 1, comment: 'fine', by: 'u1' });
      assert.equal(decided.status, 'running');
      assert.equal(decided.approval.status, 'approved');
      assert.equal(decided.approval.decided_by, 'u1');
      assert.equal(await engine.waitForRun(runId, 10_000), 'succeeded');
      const done = (await engine.getRun(runId))!;
      assert.deepEqual(done.outputs, { text: 'Echo: Say hi' });
      assert.ok(done.cost_usd > 0, 'the call was priced');
      const askDone = done.steps.find((s) => s.step_id === 'ask')!;
      assert.equal(askDone.attempt, 2);
      assert.equal(askDone.attempt - askDone.attempt_base, 1, 'one attempt of the family used: the successful one');
      const after = (await engine.listEvents(runId)).map((e) => e.type);
      assert.deepEqual(after.filter((x) => x.startsWith('approval_') || x.startsWith('run_')), [
        'run_created', 'approval_requested', 'run_paused', 'approval_decided', 'run_resumed', 'run_succeeded',
      ]);
      const decidedEvent = (await engine.listEvents(runId)).find((e) => e.type === 'approval_decided')!;
      assert.deepEqual(decidedEvent.data, { approval_id: approval.id, kind: 'budget', decision: 'approved', by: 'u1', budget_usd: 1, comment: 'fine' });

      // Deciding it again is a conflict; so is an unknown approval a 404.
      await assert.rejects(engine.decideApproval(runId, approval.id, { decision: 'reject', by: 'u1' }), rejectsWith('WEFT_CONFLICT'));
      await assert.rejects(engine.decideApproval(runId, '00000000-0000-4000-8000-000000000000', { decision: 'approve', by: 'u1' }), rejectsWith('WEFT_NOT_FOUND'));
    });

    void test('rejecting cancels the run; the parked step is cancelled, never called', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchBudgeted(engine, BUDGETED, 0.0001);
      const { approval } = await pausedWithApproval(engine, db, runId);
      const before = llm.requests.length;
      const decided = await engine.decideApproval(runId, approval.id, { decision: 'reject', comment: 'too dear', by: 'u2' });
      assert.equal(decided.status, 'cancelled');
      assert.equal(decided.approval.status, 'rejected');
      assert.equal(await engine.waitForRun(runId, 5000), 'cancelled');
      const run = (await engine.getRun(runId))!;
      assert.ok(run.steps.every((s) => s.status === 'cancelled'));
      assert.equal(llm.requests.length, before);
      await assert.rejects(engine.decideApproval(runId, approval.id, { decision: 'approve', by: 'u2' }), rejectsWith('WEFT_CONFLICT'));
    });

    void test('approving with a budget below what the run has spent is refused; without a raise the step pauses again into a new approval', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchBudgeted(engine, BUDGETED, 0.0001);
      const first = await pausedWithApproval(engine, db, runId);
      // Spending as a finished priced step would have left it.
      await db.query('UPDATE runs SET cost_usd = 0.00005 WHERE id = $1', [runId]);
      await assert.rejects(
        engine.decideApproval(runId, first.approval.id, { decision: 'approve', budgetUsd: 0.00001, by: 'u1' }),
        (e: unknown) => rejectsWith('WEFT_INVALID_INPUTS')(e) && (e as WeftError).details?.['spent_usd'] === 0.00005,
      );
      assert.equal((await listRunApprovals(db, runId))[0]!.status, 'pending', 'the refused decision changed nothing');
      assert.equal((await engine.getRun(runId))!.status, 'paused');

      // Approve as is: the step runs under the same budget, is refused again, and a second approval opens.
      await engine.decideApproval(runId, first.approval.id, { decision: 'approve', by: 'u1' });
      const second = await eventually(async () => {
        const approvals = await listRunApprovals(db, runId);
        const run = (await engine.getRun(runId))!;
        return approvals.length === 2 && run.status === 'paused' ? { approvals, run } : undefined;
      }, 5000, 'a second approval');
      assert.deepEqual(second.approvals.map((a) => a.status), ['approved', 'pending']);
      const ask = second.run.steps.find((s) => s.step_id === 'ask')!;
      assert.equal(ask.status, 'pending');
      assert.equal(ask.attempt, 2);
      assert.equal(ask.attempt - ask.attempt_base, 0, 'two holds, still no attempt used');
      await engine.decideApproval(runId, second.approvals[1]!.id, { decision: 'approve', budgetUsd: 0.5, by: 'u1' });
      assert.equal(await engine.waitForRun(runId, 10_000), 'succeeded');
    });

    void test('two steps refused at once share one approval; approving resumes both', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchBudgeted(engine, PARALLEL, 0.0001);
      // The first refusal pauses the run: the other root may still be queued then (a paused run
      // starts nothing). Resuming by hand (no decision) re-queues what waits until both were refused.
      const { approval, approvals } = await eventually(async () => {
        const paused = await pausedWithApproval(engine, db, runId, []);
        const parked = paused.run.steps.filter((s) => s.status === 'pending' && s.error?.code === 'WEFT_BUDGET_EXCEEDED').map((s) => s.step_id);
        if (parked.length === 2) return paused;
        await engine.resumeRun(runId).catch(() => {});
        return undefined;
      }, 10_000, 'both steps refused');
      assert.equal(approvals.length, 1, 'every refusal reused the pending approval');
      const data = approval.data as { estimate_usd: number; steps: Record<string, number> };
      assert.deepEqual(Object.keys(data.steps).sort(), ['left', 'right']);
      assert.ok(Math.abs(data.estimate_usd - (data.steps['left']! + data.steps['right']!)) < 1e-12, 'the estimate covers both');
      const requested = (await engine.listEvents(runId)).filter((e) => e.type === 'approval_requested');
      assert.equal(requested.filter((e) => e.data['reused'] === false).length, 1, 'one approval opened, the other refusals reused it');
      assert.ok(requested.length >= 2);
      await engine.decideApproval(runId, approval.id, { decision: 'approve', budgetUsd: 1, by: 'u1' });
      assert.equal(await engine.waitForRun(runId, 10_000), 'succeeded');
      assert.deepEqual((await engine.getRun(runId))!.outputs, { text: 'Echo: LeftEcho: Right' });
    });

    void test('step mode: the parked step is queued again on approval, without a second trigger', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchBudgeted(engine, BUDGETED, 0.0001, 'step');
      await engine.triggerStep(runId, 'ask');
      const { approval } = await pausedWithApproval(engine, db, runId);
      await engine.decideApproval(runId, approval.id, { decision: 'approve', budgetUsd: 1, by: 'u1' });
      const run = await eventually(async () => {
        const r = (await engine.getRun(runId))!;
        return r.steps.find((s) => s.step_id === 'after')?.status === 'waiting' ? r : undefined;
      }, 5000, 'ask done, after waiting');
      assert.equal(run.steps.find((s) => s.step_id === 'ask')!.status, 'succeeded');
      await engine.triggerStep(runId, 'after');
      assert.equal(await engine.waitForRun(runId, 5000), 'succeeded');
    });

    void test('cancelling a paused run closes its pending approval', async (t) => {
      const ctx = await testEngine(backend, t);
      if (!ctx) return;
      const { engine, db } = ctx;
      const runId = await launchBudgeted(engine, BUDGETED, 0.0001);
      const { approval } = await pausedWithApproval(engine, db, runId);
      assert.equal(await engine.cancelRun(runId), 'cancelled');
      const [closed] = await listRunApprovals(db, runId);
      assert.equal(closed!.status, 'rejected');
      assert.match(closed!.comment ?? '', /cancelled/);
      await assert.rejects(engine.decideApproval(runId, approval.id, { decision: 'approve', by: 'u1' }), rejectsWith('WEFT_CONFLICT'));
    });
  });
}
