/**
 * Budget approvals and the editable price table through the HTTP API, on both databases: the
 * `openai` provider is a stored credential (allow_private, so only it may reach the loopback
 * LLM server) and gpt-4.1-mini has a default price.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configureProviders } from '../src/providers/registry.ts';
import { costOf, DEFAULT_PRICES, setPriceTable } from '../src/providers/pricing.ts';
import { notifyPricesChanged } from '../src/store/price-overrides.ts';
import { startTestApi, type TestApi } from './helpers/api.ts';
import { BUDGETED } from './helpers/budget.ts';
import { BACKENDS, closeTemplates } from './helpers/db.ts';
import { eventually } from './helpers/engine.ts';
import { startLlmServer, type LlmServer } from './helpers/llm-server.ts';

const KEY = 'sk-budget-api-test-key';
let llm: LlmServer;

before(async () => {
  llm = await startLlmServer({ openaiKey: KEY });
});

after(async () => {
  configureProviders({ providers: [], allowPrivateNetwork: false, env: {} });
  setPriceTable(DEFAULT_PRICES);
  await llm.close();
  await closeTemplates();
});

async function withOpenAiCredential(t: TestApi): Promise<void> {
  const created = await t.request('POST', '/api/credentials', {
    token: t.admin.token,
    body: { name: 'openai', kind: 'openai-compatible', base_url: llm.openaiBaseUrl, api_key: KEY, allow_private: true },
  });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.body.status.available, true);
}

async function launchPaused(t: TestApi): Promise<{ runId: string; approvalId: string }> {
  const wf = await t.request('POST', '/api/workflows', { token: t.alice.token, body: BUDGETED });
  assert.equal(wf.status, 201, wf.text);
  const run = await t.request('POST', '/api/runs', { token: t.alice.token, body: { workflow_id: wf.body.id, budget_usd: 0.0001 } });
  assert.equal(run.status, 201, run.text);
  const runId = run.body.id as string;
  const paused = await eventually(async () => {
    const r = await t.request('GET', `/api/runs/${runId}`, { token: t.alice.token });
    return r.body.status === 'paused' && r.body.approvals.length === 1 ? r.body : undefined;
  }, 5000, 'the run paused');
  assert.equal(paused.approvals[0].status, 'pending');
  assert.equal(paused.steps.find((s: { step_id: string }) => s.step_id === 'ask').error.code, 'WEFT_BUDGET_EXCEEDED');
  return { runId, approvalId: paused.approvals[0].id };
}

for (const backend of BACKENDS) {
  void describe(`approvals over HTTP on ${backend}`, () => {
    void test('list, decide, and nobody else sees or decides them', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      await withOpenAiCredential(t);
      const { runId, approvalId } = await launchPaused(t);
      const base = `/api/runs/${runId}/approvals`;

      const listed = await t.request('GET', base, { token: t.alice.token });
      assert.equal(listed.status, 200);
      assert.equal(listed.body.items.length, 1);
      const approval = listed.body.items[0];
      assert.equal(approval.kind, 'budget');
      assert.equal(approval.step_id, 'ask');
      assert.equal(approval.data.budget_usd, 0.0001);
      assert.ok(approval.data.estimate_usd > 0.0001);
      assert.equal((await t.request('GET', base, { token: t.bob.token })).status, 404);
      assert.equal((await t.request('GET', base, { token: t.admin.token })).status, 200);

      const mine = await t.request('GET', '/api/approvals?status=pending', { token: t.alice.token });
      assert.deepEqual(mine.body.items.map((a: { id: string }) => a.id), [approvalId]);
      assert.equal(mine.body.total, 1);
      assert.deepEqual((await t.request('GET', '/api/approvals?status=pending', { token: t.bob.token })).body.items, []);
      assert.deepEqual((await t.request('GET', '/api/approvals', { token: t.admin.token })).body.items.map((a: { id: string }) => a.id), [approvalId]);
      assert.equal((await t.request('GET', '/api/approvals?status=maybe', { token: t.alice.token })).status, 400);

      // Bob may not decide; bad bodies are 400 with their paths; a budget below spending too.
      assert.equal((await t.request('POST', `${base}/${approvalId}`, { token: t.bob.token, body: { decision: 'approve' } })).status, 404);
      const bad = await t.request('POST', `${base}/${approvalId}`, { token: t.alice.token, body: { decision: 'maybe', extra: 1 } });
      assert.equal(bad.status, 400);
      assert.ok(bad.body.errors.some((e: { path: string }) => e.path === '/body/decision'), bad.text);
      await t.api.services.db.query('UPDATE runs SET cost_usd = 0.00005 WHERE id = $1', [runId]);
      const below = await t.request('POST', `${base}/${approvalId}`, { token: t.alice.token, body: { decision: 'approve', budget_usd: 0.00001 } });
      assert.equal(below.status, 400, below.text);
      assert.equal(below.body.code, 'WEFT_INVALID_INPUTS');
      assert.deepEqual(below.body.errors.map((e: { path: string }) => e.path), ['/body/budget_usd']);
      const unknown = await t.request('POST', `${base}/00000000-0000-4000-8000-000000000000`, { token: t.alice.token, body: { decision: 'approve' } });
      assert.equal(unknown.status, 404);

      const approved = await t.request('POST', `${base}/${approvalId}`, { token: t.alice.token, body: { decision: 'approve', budget_usd: 1, comment: 'go' } });
      assert.equal(approved.status, 200, approved.text);
      assert.equal(approved.body.budget_usd, 1);
      assert.equal(approved.body.approvals[0].status, 'approved');
      assert.equal(approved.body.approvals[0].decided_by, t.alice.id);
      assert.equal(approved.body.approvals[0].comment, 'go');
      const again = await t.request('POST', `${base}/${approvalId}`, { token: t.alice.token, body: { decision: 'reject' } });
      assert.equal(again.status, 409);
      const done = await eventually(async () => {
        const r = await t.request('GET', `/api/runs/${runId}`, { token: t.alice.token });
        return r.body.status === 'succeeded' ? r.body : undefined;
      }, 10_000, 'the run succeeded');
      assert.deepEqual(done.outputs, { text: 'Echo: Say hi' });
      assert.equal(llm.requests.at(-1)?.headers['authorization'], `Bearer ${KEY}`);
      assert.deepEqual((await t.request('GET', '/api/approvals?status=pending', { token: t.alice.token })).body.items, []);
      // The key never shows in what the API or the log says.
      assert.ok(!JSON.stringify(done).includes(KEY) && !JSON.stringify(t.log.lines).includes(KEY));
    });

    void test('rejecting over HTTP cancels the run', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      await withOpenAiCredential(t);
      const { runId, approvalId } = await launchPaused(t);
      const rejected = await t.request('POST', `/api/runs/${runId}/approvals/${approvalId}`, { token: t.admin.token, body: { decision: 'reject' } });
      assert.equal(rejected.status, 200, rejected.text);
      assert.equal(rejected.body.status, 'cancelled');
      assert.equal(rejected.body.approvals[0].status, 'rejected');
    });
  });

  void describe(`prices over HTTP on ${backend}`, () => {
    void test('users read the table; admins set and remove prices; every process follows NOTIFY', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      type Price = { provider: string; model: string; input_per_1m: number; output_per_1m: number; source: string };
      const price = (items: Price[], provider: string, model: string): Price | undefined => items.find((p) => p.provider === provider && p.model === model);
      const listed = await t.request('GET', '/api/prices', { token: t.alice.token });
      assert.equal(listed.status, 200);
      assert.deepEqual(price(listed.body.items, 'openai', 'gpt-4.1-mini'), { provider: 'openai', model: 'gpt-4.1-mini', input_per_1m: 0.4, output_per_1m: 1.6, source: 'default' });
      assert.equal((await t.request('GET', '/api/prices')).status, 401);

      const path = '/api/prices/openai/gpt-4.1-mini';
      assert.equal((await t.request('PUT', path, { token: t.alice.token, body: { input_per_1m: 10, output_per_1m: 20 } })).status, 403);
      const bad = await t.request('PUT', path, { token: t.admin.token, body: { input_per_1m: -1, output_per_1m: 'x' } });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path).sort(), ['/body/input_per_1m', '/body/output_per_1m']);
      const put = await t.request('PUT', path, { token: t.admin.token, body: { input_per_1m: 10, output_per_1m: 20 } });
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(costOf('openai', 'gpt-4.1-mini', 1_000_000, 1_000_000), { costUsd: 30, priced: true });
      const custom = await t.request('PUT', '/api/prices/ollama/llama3.1:8b', { token: t.admin.token, body: { input_per_1m: 0, output_per_1m: 0.5 } });
      assert.equal(custom.status, 200, custom.text);
      assert.deepEqual(costOf('ollama', 'llama3.1:8b', 0, 2_000_000), { costUsd: 1, priced: true });
      const after = (await t.request('GET', '/api/prices', { token: t.bob.token })).body.items;
      assert.equal(price(after, 'openai', 'gpt-4.1-mini')?.source, 'override');
      assert.equal(price(after, 'openai', 'gpt-4.1-mini')?.input_per_1m, 10);

      // Another process's change arrives by NOTIFY: pretend this process's table went stale.
      setPriceTable(DEFAULT_PRICES);
      assert.equal(costOf('openai', 'gpt-4.1-mini', 1_000_000, 0).costUsd, 0.4);
      await notifyPricesChanged(t.api.services.db);
      await eventually(async () => (costOf('openai', 'gpt-4.1-mini', 1_000_000, 0).costUsd === 10 ? true : undefined), 5000, 'the reload after NOTIFY');

      assert.equal((await t.request('DELETE', path, { token: t.alice.token })).status, 403);
      assert.equal((await t.request('DELETE', path, { token: t.admin.token })).status, 204);
      assert.equal(costOf('openai', 'gpt-4.1-mini', 1_000_000, 0).costUsd, 0.4, 'the default applies again');
      assert.equal((await t.request('DELETE', path, { token: t.admin.token })).status, 404);
      assert.equal(costOf('ollama', 'llama3.1:8b', 0, 2_000_000).costUsd, 1, 'the other override stays');
    });
  });
}
