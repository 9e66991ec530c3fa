/**
 * Who may call what: every route × {anonymous, other user, owner, admin} against a real
 * server, each with its expected status. A route added without an entry here fails the test.
 * Plus: forged and expired tokens, spoofed headers, mass assignment and login rate limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createHmac } from 'node:crypto';
import { ADMIN, login, startTestApi, TWO_STEPS, type TestApi } from './helpers/api.ts';
import { eventually } from './helpers/engine.ts';

type Role = 'anonymous' | 'other' | 'owner' | 'admin';
const ROLES: Role[] = ['anonymous', 'other', 'admin', 'owner'];

interface Fixture {
  workflowId: string;
  runId: string;
  tokenId: string;
  victimId: string;
  credentialId: string;
  agentName: string;
}

interface Case {
  /** [anonymous, other, admin, owner] */
  expect: [number, number, number, number];
  body?: (f: Fixture) => unknown;
  /** Needs a resource of its own per caller (the call deletes or changes it). */
  fresh?: boolean;
}

const all = (s: number): Case['expect'] => [s, s, s, s];
const owned = (ok: number): Case['expect'] => [401, 404, ok, ok];
const signedIn = (ok: number): Case['expect'] => [401, ok, ok, ok];
const adminOnly = (ok: number): Case['expect'] => [401, 403, ok, 403];

const CASES: Record<string, Case> = {
  'POST /api/auth/login': { expect: all(200), body: () => ({ email: 'alice@example.test', password: 'alice-password-123' }) },
  'POST /api/auth/refresh': { expect: all(401), body: () => ({ refresh_token: 'weft_rt_not-a-real-token' }) },
  'POST /api/auth/logout': { expect: all(204), body: () => ({ refresh_token: 'weft_rt_not-a-real-token' }) },
  'POST /api/auth/setup': { expect: all(409), body: () => ({ token: 'weft_setup_guess', email: 'mallory@example.test', password: 'mallory-password' }) },
  'GET /api/me': { expect: signedIn(200) },
  'PATCH /api/me': { expect: signedIn(200), body: () => ({ name: 'Renamed' }) },
  'GET /api/users': { expect: adminOnly(200) },
  'POST /api/users': { expect: adminOnly(201), body: () => ({ email: 'dave@example.test', name: 'Dave', role: 'user', password: 'dave-password-123' }) },
  'GET /api/users/:id': { expect: adminOnly(200) },
  'PATCH /api/users/:id': { expect: adminOnly(200), body: () => ({ name: 'Carol C.' }) },
  'DELETE /api/users/:id': { expect: adminOnly(204) },
  'GET /api/tokens': { expect: signedIn(200) },
  'POST /api/tokens': { expect: signedIn(201), body: () => ({ name: 'ci' }) },
  // Personal tokens are personal: not even an admin revokes someone else's through this route.
  'DELETE /api/tokens/:id': { expect: [401, 404, 404, 204] },
  'GET /api/workflows': { expect: signedIn(200) },
  'POST /api/workflows': { expect: signedIn(201), body: () => TWO_STEPS },
  'GET /api/workflows/categories': { expect: signedIn(200) },
  'GET /api/workflows/:id': { expect: owned(200) },
  'PUT /api/workflows/:id': { expect: owned(200), body: () => ({ ...TWO_STEPS, description: 'v2' }) },
  'PATCH /api/workflows/:id': { expect: owned(200), body: () => ({ tags: ['x'] }) },
  'DELETE /api/workflows/:id': { expect: owned(204), fresh: true },
  'GET /api/workflows/:id/versions': { expect: owned(200) },
  'GET /api/workflows/:id/versions/:version': { expect: owned(200) },
  'POST /api/workflows/:id/clone': { expect: owned(201) },
  'POST /api/runs': { expect: owned(201), body: (f) => ({ workflow_id: f.workflowId }) },
  'GET /api/runs': { expect: signedIn(200) },
  'GET /api/runs/:id': { expect: owned(200) },
  // The fixture run has finished: a transition it does not allow is a 409, once you may see it.
  'POST /api/runs/:id/cancel': { expect: owned(409) },
  'POST /api/runs/:id/pause': { expect: owned(409) },
  'POST /api/runs/:id/resume': { expect: owned(409) },
  'POST /api/runs/:id/steps/:stepId/trigger': { expect: owned(409), body: () => ({}) },
  'POST /api/runs/:id/steps/:stepId/retry': { expect: owned(409) },
  'GET /api/runs/:id/events': { expect: owned(200) },
  'GET /api/runs/:id/approvals': { expect: owned(200) },
  // The fixture run never paused, so it has no approval: 404 once you may see the run (the
  // owner-vs-other difference with a real approval is in test/budget-api.test.ts).
  'POST /api/runs/:id/approvals/:approvalId': { expect: owned(404), body: () => ({ decision: 'approve' }) },
  'GET /api/approvals': { expect: signedIn(200) },
  'GET /api/ws': { expect: all(426) },
  'GET /api/runs/:id/artifacts': { expect: owned(200) },
  'GET /api/runs/:id/artifacts/:stepId/:name': { expect: owned(200) },
  'GET /api/runs/:id/artifacts/:stepId/:name/versions': { expect: owned(200) },
  'GET /api/runs/:id/artifacts/:stepId/:name/versions/:version': { expect: owned(200) },
  // The fixture run made no files: even its owner gets a 404 for this hash (the found case,
  // headers and another user's 404 are in test/templates.test.ts).
  'GET /api/runs/:id/files/:sha256': { expect: [401, 404, 404, 404] },
  'GET /api/agents': { expect: signedIn(200) },
  'POST /api/agents': { expect: adminOnly(201), body: () => ({ name: 'fixture-created', system: 'You are terse.' }) },
  'GET /api/agents/:name': { expect: signedIn(200) },
  'PUT /api/agents/:name': { expect: adminOnly(200), body: () => ({ system: 'You are terse, version 2.', temperature: 0.1 }) },
  'GET /api/agents/:name/versions': { expect: signedIn(200) },
  'DELETE /api/agents/:name': { expect: adminOnly(204), fresh: true },
  'GET /api/credentials': { expect: adminOnly(200) },
  'POST /api/credentials': { expect: adminOnly(201), body: () => ({ name: 'fixture-created', kind: 'anthropic', api_key: 'sk-fixture-key' }) },
  'GET /api/credentials/:id': { expect: adminOnly(200) },
  'PATCH /api/credentials/:id': { expect: adminOnly(200), body: () => ({ default_model: 'llama3.2' }) },
  'DELETE /api/credentials/:id': { expect: adminOnly(204), fresh: true },
  'GET /api/providers': { expect: signedIn(200) },
  'GET /api/prices': { expect: signedIn(200) },
  'PUT /api/prices/:provider/:model': { expect: adminOnly(200), body: () => ({ input_per_1m: 1, output_per_1m: 2 }) },
  // Runs after the PUT above (route order), which stored the override it removes.
  'DELETE /api/prices/:provider/:model': { expect: adminOnly(204) },
  'GET /api/health': { expect: all(200) },
  'GET /api/health/live': { expect: all(200) },
  'GET /metrics': { expect: all(200) },
  'GET /api/metrics': { expect: signedIn(200) },
  'GET /api/openapi.json': { expect: all(200) },
  'GET /api/docs': { expect: all(200) },
  'GET /api/docs/:file': { expect: all(200) },
  'GET /setup': { expect: all(200) },
  'GET /setup/setup.js': { expect: all(200) },
};

let fixtureCount = 0;

/** An agent and a credential (admins manage both), named apart from earlier ones. */
async function makeAgentAndCredential(t: TestApi): Promise<{ credentialId: string; agentName: string }> {
  const n = ++fixtureCount;
  const agent = await t.request('POST', '/api/agents', { token: t.admin.token, body: { name: `fixture-${n}`, system: 'You are terse.' } });
  const credential = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { name: `fixture-${n}`, kind: 'openai-compatible', base_url: 'http://127.0.0.1:9/v1' } });
  if (agent.status !== 201 || credential.status !== 201) throw new Error(`fixture: ${agent.text} ${credential.text}`);
  return { credentialId: credential.body.id, agentName: agent.body.name };
}

async function makeWorkflowAndRun(t: TestApi): Promise<{ workflowId: string; runId: string }> {
  const wf = await t.request('POST', '/api/workflows', { token: t.alice.token, body: TWO_STEPS });
  const run = await t.request('POST', '/api/runs', { token: t.alice.token, body: { workflow_id: wf.body.id } });
  await eventually(async () => ((await t.request('GET', `/api/runs/${run.body.id}`, { token: t.alice.token })).body.status === 'succeeded' ? true : undefined), 10_000, 'fixture run');
  return { workflowId: wf.body.id, runId: run.body.id };
}

function fillPath(path: string, f: Fixture): string {
  if (path.startsWith('/api/agents')) return path.replace(':name', f.agentName);
  const base = path.startsWith('/api/users') ? f.victimId : path.startsWith('/api/tokens') ? f.tokenId : path.startsWith('/api/workflows') ? f.workflowId
    : path.startsWith('/api/credentials') ? f.credentialId : f.runId;
  if (path.startsWith('/api/prices')) return path.replace(':provider', 'fixture').replace(':model', 'model-1');
  return path
    .replace(':approvalId', '00000000-0000-4000-8000-00000000a000')
    .replace(':id', base)
    .replace(':stepId', 'a')
    .replace(':name', 'output')
    .replace(':version', '1')
    .replace(':sha256', 'a'.repeat(64))
    .replace(':file', 'swagger-ui.css');
}

void test('every route × {anonymous, other user, admin, owner} answers the status its policy and ownership give', async (ctx) => {
  const t = await startTestApi('pglite', ctx);
  if (!t) return;
  const keys = t.api.routes.map((r) => `${r.method} ${r.path}`);
  assert.deepEqual(keys.filter((k) => !(k in CASES)), [], 'routes without an access entry: add them to CASES');
  assert.deepEqual(Object.keys(CASES).filter((k) => !keys.includes(k)), [], 'CASES lists routes that do not exist');

  const shared = await makeWorkflowAndRun(t);
  const token = await t.request('POST', '/api/tokens', { token: t.alice.token, body: { name: 'fixture' } });
  const victim = await t.request('POST', '/api/users', { token: t.admin.token, body: { email: 'carol@example.test', name: 'Carol', role: 'user', password: 'carol-password-123' } });
  const fixture: Fixture = { ...shared, tokenId: token.body.id, victimId: victim.body.id, ...(await makeAgentAndCredential(t)) };
  const tokens: Record<Role, string | undefined> = { anonymous: undefined, other: t.bob.token, admin: t.admin.token, owner: t.alice.token };

  const failures: string[] = [];
  for (const route of t.api.routes) {
    const key = `${route.method} ${route.path}`;
    const c = CASES[key]!;
    for (const [i, role] of ROLES.entries()) {
      const f = c.fresh ? { ...fixture, ...(await makeWorkflowAndRun(t)), ...(await makeAgentAndCredential(t)) } : fixture;
      const body = c.body?.(f);
      const r = await t.request(route.method, fillPath(route.path, f), { token: tokens[role], ...(body === undefined ? {} : { body }) });
      if (r.status !== c.expect[i]) failures.push(`${key} as ${role}: expected ${c.expect[i]}, got ${r.status} ${r.text.slice(0, 200)}`);
      if (r.status >= 400 && r.status !== 426 && !(r.headers.get('content-type') ?? '').startsWith('application/problem+json')) {
        failures.push(`${key} as ${role}: error ${r.status} is not a problem document`);
      }
    }
  }
  assert.deepEqual(failures, []);
});

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

void test('forged, expired and tampered tokens, and spoofed headers, authorise nothing', async (ctx) => {
  const t = await startTestApi('pglite', ctx);
  if (!t) return;
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: t.admin.id, role: 'admin', email: ADMIN.email, iss: 'weft', aud: 'weft-api', iat: now, nbf: now, exp: now + 600, jti: 'x' };
  const [header, , signature] = t.alice.token.split('.');
  const aliceClaims = JSON.parse(Buffer.from(t.alice.token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  const { publicKey } = generateKeyPairSync('ed25519');
  const hs256 = (() => {
    const h = b64url({ alg: 'HS256', typ: 'JWT' });
    const p = b64url(claims);
    const key = publicKey.export({ format: 'pem', type: 'spki' });
    return `${h}.${p}.${createHmac('sha256', key).update(`${h}.${p}`).digest('base64url')}`;
  })();
  const forged: Record<string, string> = {
    'alg none': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`,
    'HS256 with a public key as secret': hs256,
    'tampered payload (alice → admin)': `${header}.${b64url({ ...aliceClaims, role: 'admin', sub: t.admin.id })}.${signature}`,
    'expired': `${header}.${b64url({ ...aliceClaims, exp: now - 60 })}.${signature}`,
    'garbage': 'not-a-token',
    'unknown API token': 'weft_pat_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  };
  for (const [name, token] of Object.entries(forged)) {
    const r = await t.request('GET', '/api/users', { token });
    assert.equal(r.status, 401, `${name}: ${r.text}`);
    assert.equal(r.body.code, 'WEFT_UNAUTHENTICATED');
  }

  const { runId } = await makeWorkflowAndRun(t);
  const spoofed = { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-request-from': 'internal', 'x-forwarded-user': ADMIN.email, 'x-user-id': t.alice.id, 'x-role': 'admin' };
  assert.equal((await t.request('GET', '/api/users', { headers: spoofed })).status, 401);
  assert.equal((await t.request('GET', `/api/runs/${runId}`, { headers: spoofed })).status, 401);
  assert.equal((await t.request('GET', `/api/runs/${runId}`, { token: t.bob.token, headers: spoofed })).status, 404);
  assert.equal((await t.request('GET', '/api/users', { token: t.bob.token, headers: spoofed })).status, 403);

  // Mass assignment: a user cannot make themself admin, nor set server-owned fields.
  const selfPromote = await t.request('PATCH', '/api/me', { token: t.bob.token, body: { role: 'admin' } });
  assert.equal(selfPromote.status, 400);
  assert.equal(selfPromote.body.errors[0].path, '/body/role');
  const me = await t.request('GET', '/api/me', { token: t.bob.token });
  assert.equal(me.body.role, 'user');
  const ownerSpoof = await t.request('POST', '/api/workflows?visibility=private', { token: t.bob.token, body: { ...TWO_STEPS, owner_id: t.alice.id } });
  assert.equal(ownerSpoof.status, 400);
  const idSpoof = await t.request('POST', '/api/users', { token: t.admin.token, body: { id: t.alice.id, email: 'eve@example.test', role: 'user', password: 'eve-password-123', created_at: '2000-01-01T00:00:00Z' } });
  assert.equal(idSpoof.status, 400);
  assert.deepEqual(idSpoof.body.errors.map((e: { path: string }) => e.path).sort(), ['/body/created_at', '/body/id']);
});

void test('login is rate limited per IP (X-Forwarded-For does not reset it) and per account', async (ctx) => {
  const t = await startTestApi('pglite', ctx, { rateLimits: { loginPerIp: 6, loginPerAccount: 3, launchesPerOwner: 100 } });
  if (!t) return;
  // startTestApi used 3 logins from this IP (admin, alice, bob); each account once.
  const wrong = (email: string, i: number) => t.request('POST', '/api/auth/login', { body: { email, password: 'wrong-password' }, headers: { 'x-forwarded-for': `10.0.0.${i}` } });
  assert.equal((await wrong('alice@example.test', 1)).status, 401);
  assert.equal((await wrong('alice@example.test', 2)).status, 401);
  const perAccount = await wrong('alice@example.test', 3);
  assert.equal(perAccount.status, 429, 'the fourth login to one account within a minute');
  assert.ok(Number(perAccount.headers.get('retry-after')) >= 1);
  const perIp = await wrong('bob@example.test', 4);
  assert.equal(perIp.status, 429, 'the seventh login from one IP, whatever X-Forwarded-For says');
  assert.equal(perIp.body.code, 'WEFT_RATE_LIMITED');
  await assert.rejects(login(t.url, ADMIN.email, ADMIN.password), /429/);
});

void test('a route without a valid policy stops the router from being built (deny by default)', async () => {
  const { Router } = await import('../src/api/http/router.ts');
  const handler = () => Promise.resolve({ body: {} });
  const base = { method: 'GET' as const, path: '/api/x', operationId: 'x', summary: 'x', tags: [], responses: {}, handler };
  assert.throws(() => new Router([base as never]), /declares no valid policy/);
  assert.throws(() => new Router([{ ...base, policy: 'everyone' } as never]), /declares no valid policy/);
  assert.doesNotThrow(() => new Router([{ ...base, policy: 'user' }]));
});
