/**
 * The REST API over a real server on a loopback port: workflows, runs, artifacts, metrics,
 * the OpenAPI document, and the error contract (problem documents with paths; 400, 404, 405,
 * 409, 413, 415, 429), on both databases where the database matters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS } from './helpers/db.ts';
import { eventually } from './helpers/engine.ts';
import { startTestApi, TWO_STEPS, type TestApi } from './helpers/api.ts';

const YAML_WORKFLOW = `name: yaml flow
category: demos
tags: [yaml, quick]
steps:
  only:
    type: transform
    expr: "'hello ' & $input.who"
inputs:
  type: object
  properties: { who: { type: string, default: world } }
outputs:
  greeting: "$only"
`;

async function createWorkflow(t: TestApi, token: string, definition: unknown = TWO_STEPS, query = ''): Promise<string> {
  const r = await t.request('POST', `/api/workflows${query}`, { token, body: definition });
  assert.equal(r.status, 201, r.text);
  return r.body.id as string;
}

async function finishedRun(t: TestApi, token: string, runId: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return eventually(async () => {
    const r = await t.request('GET', `/api/runs/${runId}`, { token });
    return ['succeeded', 'failed', 'cancelled'].includes(r.body.status) ? r.body : undefined;
  }, 10_000, `run ${runId} to finish`);
}

for (const backend of BACKENDS) {
  void test(`${backend}: workflows — create from JSON and YAML, list, get, version, clone, delete`, async (ctx) => {
    const t = await startTestApi(backend, ctx);
    if (!t) return;
    const { alice, bob, admin } = t;
    const jsonId = await createWorkflow(t, alice.token);
    const yaml = await t.request('POST', '/api/workflows', { token: alice.token, raw: YAML_WORKFLOW, contentType: 'application/yaml' });
    assert.equal(yaml.status, 201, yaml.text);
    assert.equal(yaml.body.name, 'yaml flow');
    assert.equal(yaml.body.category, 'demos');
    assert.deepEqual(yaml.body.tags, ['yaml', 'quick']);
    assert.equal(yaml.headers.get('location'), `/api/workflows/${yaml.body.id}`);

    const list = await t.request('GET', '/api/workflows?limit=1&sort=name&order=asc', { token: alice.token });
    assert.equal(list.status, 200);
    assert.equal(list.body.total, 2);
    assert.equal(list.body.items.length, 1);
    assert.equal(list.body.items[0].name, 'two steps');
    assert.equal((await t.request('GET', '/api/workflows?tag=yaml', { token: alice.token })).body.total, 1);
    assert.equal((await t.request('GET', '/api/workflows?category=demos&q=YAML', { token: alice.token })).body.total, 1);
    assert.equal((await t.request('GET', '/api/workflows', { token: bob.token })).body.total, 0, "bob sees none of alice's private workflows");
    assert.equal((await t.request('GET', '/api/workflows', { token: admin.token })).body.total, 2, 'admins see every workflow');
    const cats = await t.request('GET', '/api/workflows/categories', { token: alice.token });
    assert.deepEqual(cats.body.items, [{ category: 'demos', count: 1 }]);

    const got = await t.request('GET', `/api/workflows/${jsonId}`, { token: alice.token });
    assert.equal(got.status, 200);
    assert.equal(got.body.latest_version, 1);
    assert.equal(got.body.definition.steps.b.expr, '$a * 2');
    assert.equal((await t.request('GET', `/api/workflows/${jsonId}`, { token: bob.token })).status, 404, "another owner's workflow is a 404, not a 403");

    // An update is a new immutable version; an unchanged definition keeps its version.
    const changed = { ...TWO_STEPS, description: 'now described' };
    assert.equal((await t.request('PUT', `/api/workflows/${jsonId}`, { token: alice.token, body: changed })).body.latest_version, 2);
    assert.equal((await t.request('PUT', `/api/workflows/${jsonId}`, { token: alice.token, body: changed })).body.latest_version, 2);
    const versions = await t.request('GET', `/api/workflows/${jsonId}/versions`, { token: alice.token });
    assert.deepEqual(versions.body.items.map((v: { version: number }) => v.version), [2, 1]);
    const v1 = await t.request('GET', `/api/workflows/${jsonId}/versions/1`, { token: alice.token });
    assert.equal(v1.body.definition.description, undefined);

    // Public: only admins publish; others can see, clone and run it, not change it.
    const publish = await t.request('PATCH', `/api/workflows/${jsonId}`, { token: alice.token, body: { visibility: 'public' } });
    assert.equal(publish.status, 403);
    assert.equal(publish.body.code, 'WEFT_FORBIDDEN');
    assert.equal((await t.request('PATCH', `/api/workflows/${jsonId}`, { token: admin.token, body: { visibility: 'public', tags: ['shared'] } })).status, 200);
    assert.equal((await t.request('GET', `/api/workflows/${jsonId}`, { token: bob.token })).status, 200);
    assert.equal((await t.request('PUT', `/api/workflows/${jsonId}`, { token: bob.token, body: TWO_STEPS })).status, 403);
    const clone = await t.request('POST', `/api/workflows/${jsonId}/clone`, { token: bob.token });
    assert.equal(clone.status, 201);
    assert.equal(clone.body.owner_id, bob.id);
    assert.equal(clone.body.visibility, 'private');

    assert.equal((await t.request('DELETE', `/api/workflows/${yaml.body.id}`, { token: bob.token })).status, 404);
    assert.equal((await t.request('DELETE', `/api/workflows/${yaml.body.id}`, { token: alice.token })).status, 204);
    assert.equal((await t.request('GET', `/api/workflows/${yaml.body.id}`, { token: alice.token })).status, 404);
  });

  void test(`${backend}: runs — launch, follow to the end, outputs, steps, artifacts, list, control conflicts, metrics`, async (ctx) => {
    const t = await startTestApi(backend, ctx);
    if (!t) return;
    const { alice, bob, admin } = t;
    const wf = await createWorkflow(t, alice.token);
    const launched = await t.request('POST', '/api/runs', { token: alice.token, body: { workflow_id: wf, inputs: { n: 4 } } });
    assert.equal(launched.status, 201, launched.text);
    assert.equal(launched.body.mode, 'auto');
    const run = await finishedRun(t, alice.token, launched.body.id);
    assert.equal(run.status, 'succeeded');
    assert.deepEqual(run.outputs, { result: 10 });
    assert.deepEqual(run.steps.map((s: { step_id: string; type: string; status: string }) => [s.step_id, s.type, s.status]), [['a', 'transform', 'succeeded'], ['b', 'transform', 'succeeded']]);
    assert.deepEqual(run.progress, { total: 2, done: 2, percent: 100 });
    assert.equal(run.simulated, false);
    assert.ok(run.duration_ms >= 0);
    assert.deepEqual(run.artifacts.map((a: { step_id: string; version: number }) => [a.step_id, a.version]), [['a', 1], ['b', 1]]);

    const art = await t.request('GET', `/api/runs/${run.id}/artifacts/b/output`, { token: alice.token });
    assert.equal(art.status, 200);
    assert.equal(art.body.content, 10);
    assert.equal((await t.request('GET', `/api/runs/${run.id}/artifacts/b/output/versions/1`, { token: alice.token })).body.content, 10);
    assert.equal((await t.request('GET', `/api/runs/${run.id}/artifacts/b/output/versions/2`, { token: alice.token })).status, 404);
    assert.equal((await t.request('GET', `/api/runs/${run.id}/artifacts`, { token: bob.token })).status, 404);

    assert.equal((await t.request('GET', `/api/runs/${run.id}`, { token: bob.token })).status, 404);
    assert.equal((await t.request('GET', `/api/runs/${run.id}`, { token: admin.token })).status, 200);
    const list = await t.request('GET', `/api/runs?status=succeeded,failed&workflow_id=${wf}`, { token: alice.token });
    assert.equal(list.body.total, 1);
    assert.equal((await t.request('GET', '/api/runs?status=running', { token: alice.token })).body.total, 0);
    assert.equal((await t.request('GET', '/api/runs', { token: bob.token })).body.total, 0);

    const resume = await t.request('POST', `/api/runs/${run.id}/resume`, { token: alice.token });
    assert.equal(resume.status, 409);
    assert.equal(resume.body.code, 'WEFT_CONFLICT');
    assert.equal((await t.request('POST', `/api/runs/${run.id}/cancel`, { token: alice.token })).status, 409);
    assert.equal((await t.request('POST', `/api/runs/${run.id}/cancel`, { token: bob.token })).status, 404);

    // Idempotent launch: the same key answers the same run.
    const k1 = await t.request('POST', '/api/runs', { token: alice.token, body: { workflow_id: wf }, headers: { 'idempotency-key': 'once' } });
    const k2 = await t.request('POST', '/api/runs', { token: alice.token, body: { workflow_id: wf }, headers: { 'idempotency-key': 'once' } });
    assert.equal(k1.body.id, k2.body.id);
    await finishedRun(t, alice.token, k1.body.id);

    // A public workflow runs as the caller: bob owns that run, alice cannot see it.
    await t.request('PATCH', `/api/workflows/${wf}`, { token: admin.token, body: { visibility: 'public' } });
    const bobs = await t.request('POST', '/api/runs', { token: bob.token, body: { workflow_id: wf, version: 1 } });
    assert.equal(bobs.status, 201);
    assert.equal(bobs.body.owner_id, bob.id);
    assert.equal((await t.request('GET', `/api/runs/${bobs.body.id}`, { token: alice.token })).status, 404);
    await finishedRun(t, bob.token, bobs.body.id);

    const metrics = await t.request('GET', '/api/metrics', { token: alice.token });
    assert.equal(metrics.status, 200);
    assert.equal(metrics.body.totals.runs, 2);
    assert.equal(metrics.body.status.succeeded, 2);
    assert.equal(metrics.body.by_workflow[0].runs, 2);
    assert.equal(metrics.body.duration_ms.finished_runs, 2);
    assert.equal((await t.request('GET', '/api/metrics', { token: admin.token })).body.totals.runs, 3);
  });
}

void test('errors are problem documents with paths: 400, 404, 405, 409, 413, 415, bad JSON, bad inputs', async (ctx) => {
  const t = await startTestApi('pglite', ctx, { bodyLimit: 64 * 1024 });
  if (!t) return;
  const { alice } = t;
  const bad = await t.request('POST', '/api/workflows', {
    token: alice.token,
    body: { name: 'bad', owner_id: 'someone-else', steps: { a: { type: 'transform', expr: '1' }, b: { type: 'transform', needs: ['zz'], expr: '2' } } },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(bad.body.status, 400);
  assert.ok(bad.body.errors.some((e: { path: string }) => e.path === '/body/owner_id'), JSON.stringify(bad.body.errors));

  const unknownNeed = await t.request('POST', '/api/workflows', { token: alice.token, body: { name: 'x', steps: { b: { type: 'transform', needs: ['zz'], expr: '2' } } } });
  assert.equal(unknownNeed.status, 400);
  assert.equal(unknownNeed.body.code, 'WEFT_UNKNOWN_NEED');
  assert.ok(unknownNeed.body.errors[0].path.startsWith('/body/steps/b/needs'), JSON.stringify(unknownNeed.body.errors));

  const notJson = await t.request('POST', '/api/workflows', { token: alice.token, raw: '{"name": ', contentType: 'application/json' });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.code, 'WEFT_BAD_REQUEST');
  const wrongType = await t.request('POST', '/api/workflows', { token: alice.token, raw: 'name: x', contentType: 'text/plain' });
  assert.equal(wrongType.status, 415);
  const huge = await t.request('POST', '/api/workflows', { token: alice.token, raw: JSON.stringify({ name: 'x'.repeat(100_000) }), contentType: 'application/json' });
  assert.equal(huge.status, 413);
  assert.equal(huge.body.code, 'WEFT_BODY_TOO_LARGE');

  assert.equal((await t.request('GET', '/api/runs/not-a-uuid', { token: alice.token })).body.errors[0].path, '/params/id');
  assert.equal((await t.request('GET', '/api/runs?limit=0', { token: alice.token })).body.errors[0].path, '/query/limit');
  assert.equal((await t.request('GET', '/api/runs?bogus=1', { token: alice.token })).status, 400);
  const missing = await t.request('GET', '/api/nothing-here', { token: alice.token });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'WEFT_ROUTE_NOT_FOUND');
  const method = await t.request('DELETE', '/api/runs', { token: alice.token });
  assert.equal(method.status, 405);
  assert.match(method.headers.get('allow') ?? '', /GET/);

  const wf = await createWorkflow(t, alice.token);
  const badInputs = await t.request('POST', '/api/runs', { token: alice.token, body: { workflow_id: wf, inputs: { n: 'four' } } });
  assert.equal(badInputs.status, 400);
  assert.equal(badInputs.body.code, 'WEFT_INVALID_INPUTS');
  assert.equal(badInputs.body.errors[0].path, '/body/inputs/n');
  const serverOwned = await t.request('POST', '/api/runs', { token: alice.token, body: { workflow_id: wf, status: 'succeeded', owner_id: 'x' } });
  assert.equal(serverOwned.status, 400);
  assert.deepEqual(serverOwned.body.errors.map((e: { path: string }) => e.path).sort(), ['/body/owner_id', '/body/status']);
  assert.equal((await t.request('GET', '/api/runs', { token: alice.token })).body.total, 0, 'nothing half-written by the refused launches');
  assert.ok(!t.log.lines.some((l) => l.level === 'error'), 'no request reached the 500 path');
});

void test('run launches are rate limited per owner (429 with Retry-After)', async (ctx) => {
  const t = await startTestApi('pglite', ctx, { rateLimits: { loginPerIp: 100, loginPerAccount: 100, launchesPerOwner: 3 } });
  if (!t) return;
  const wf = await createWorkflow(t, t.alice.token);
  for (let i = 0; i < 3; i++) assert.equal((await t.request('POST', '/api/runs', { token: t.alice.token, body: { workflow_id: wf } })).status, 201);
  const limited = await t.request('POST', '/api/runs', { token: t.alice.token, body: { workflow_id: wf } });
  assert.equal(limited.status, 429);
  assert.equal(limited.body.code, 'WEFT_RATE_LIMITED');
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  // Per owner: bob is not limited by alice's launches.
  await t.request('PATCH', `/api/workflows/${wf}`, { token: t.admin.token, body: { visibility: 'public' } });
  assert.equal((await t.request('POST', '/api/runs', { token: t.bob.token, body: { workflow_id: wf } })).status, 201);
});

void test('OpenAPI 3.1 document validates, lists every route, and the docs page is served', async (ctx) => {
  const t = await startTestApi('pglite', ctx);
  if (!t) return;
  const doc = await t.request('GET', '/api/openapi.json');
  assert.equal(doc.status, 200);
  assert.equal(doc.body.openapi, '3.1.0');
  const { validate } = await import('@readme/openapi-parser');
  const result = await validate(structuredClone(doc.body));
  assert.equal(result.valid, true, JSON.stringify(result));
  const operations = Object.values(doc.body.paths as Record<string, Record<string, { operationId: string }>>).flatMap((p) => Object.values(p).map((o) => o.operationId));
  assert.deepEqual(operations.sort(), t.api.routes.map((r) => r.operationId).sort());
  const page = await t.request('GET', '/api/docs');
  assert.equal(page.status, 200);
  assert.match(page.text, /swagger-ui-bundle\.js/);
  const bundle = await fetch(`${t.url}/api/docs/swagger-ui-bundle.js`);
  assert.equal(bundle.status, 200);
  assert.ok((await bundle.arrayBuffer()).byteLength > 100_000);
  assert.equal((await t.request('GET', '/api/docs/package.json')).status, 404, 'only the listed assets are served');
});
