/**
 * Agents (versioned, seeded built-ins, admin-managed) and credentials (encrypted at rest,
 * never returned, feeding the provider registry), against a real server on both backends.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { loadApiConfig } from '../src/api/config.ts';
import { credentialProvidersOf } from '../src/api/routes/credentials-routes.ts';
import { loadSecretBox, parseSecretKey, SecretBox, SecretError, SECRET_KEY_FILE_NAME } from '../src/api/secrets.ts';
import { startApiServer } from '../src/api/server.ts';
import { WeftError } from '../src/core/errors.ts';
import { memoryLogger, silentLogger } from '../src/engine/log.ts';
import { configureProviders, resolveProvider } from '../src/providers/registry.ts';
import type { ChatRequest } from '../src/providers/types.ts';
import { BUILTIN_AGENTS } from '../src/steps/agents.ts';
import { BUILTIN_AGENT_SEEDS, getAgentProfile, seedBuiltinAgents } from '../src/store/agents.ts';
import { insertCredential, notifyCredentialsChanged } from '../src/store/credentials.ts';
import { startTestApi } from './helpers/api.ts';
import { BACKENDS, closeTemplates, openTestDb } from './helpers/db.ts';
import { eventually } from './helpers/engine.ts';
import { startLlmServer, type LlmServer } from './helpers/llm-server.ts';

after(async () => {
  configureProviders({ providers: [], allowPrivateNetwork: false, env: {} });
  await closeTemplates();
});

function chat(): ChatRequest {
  return { model: undefined, system: undefined, prompt: 'Hello', temperature: undefined, maxTokens: undefined, idempotencyKey: 'run:step:1', signal: AbortSignal.timeout(10_000) };
}

/** Every way the key could show up in text: as is, and its bytes in base64 and hex. */
function leaks(text: string, key: string): boolean {
  const bytes = Buffer.from(key);
  return [key, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')].some((form) => text.includes(form));
}

function missingProvider(name: string): (e: unknown) => boolean {
  return (e) => e instanceof WeftError && e.code === 'WEFT_PROVIDER_MISSING' && e.message.includes(`'${name}'`);
}

async function withLlm(t: { after: (fn: () => Promise<void>) => void }, key: string): Promise<LlmServer> {
  const llm = await startLlmServer({ openaiKey: key });
  t.after(() => llm.close());
  return llm;
}

const RESEARCHER = {
  name: 'researcher',
  description: 'Finds things out',
  system: 'You research. Cite sources.',
  provider: 'openai',
  model: 'gpt-4.1-mini',
  temperature: 0.7,
  top_p: 0.9,
  max_tokens: 800,
  tools: ['web_search'],
  output_schema: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'] },
};

for (const backend of BACKENDS) {
  void describe(`agents (${backend})`, () => {
    void test('built-ins are seeded once, readable by users, with the profiles\' prompts and temperatures', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      const list = await t.request('GET', '/api/agents?limit=200', { token: t.alice.token });
      assert.equal(list.status, 200);
      const names = list.body.items.map((a: { name: string }) => a.name);
      assert.deepEqual(names, [...Object.keys(BUILTIN_AGENTS)].sort());
      for (const agent of list.body.items) {
        assert.equal(agent.version, 1);
        assert.equal(agent.builtin, true);
        assert.ok(agent.system.startsWith(BUILTIN_AGENTS[agent.name]!.system), agent.name);
        assert.ok(agent.system.length > BUILTIN_AGENTS[agent.name]!.system.length + 200, `${agent.name} adds a working method`);
        assert.equal(agent.temperature, BUILTIN_AGENTS[agent.name]!.temperature);
      }
      // A second start on the same database seeds nothing, and keeps an admin's edit.
      const edited = await t.request('PUT', '/api/agents/qa', { token: t.admin.token, body: { system: 'Check spelling only.' } });
      assert.equal(edited.body.version, 2);
      assert.deepEqual(await seedBuiltinAgents(t.api.services.db), []);
      assert.equal((await getAgentProfile(t.api.services.db, 'qa'))?.system, 'Check spelling only.');
    });

    void test('CRUD with versions: admins write, users read, old versions stay, deleting is soft', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      assert.equal((await t.request('POST', '/api/agents', { token: t.alice.token, body: RESEARCHER })).status, 403);
      const created = await t.request('POST', '/api/agents', { token: t.admin.token, body: RESEARCHER });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.headers.get('location'), '/api/agents/researcher');
      const { created_at: _c, updated_at: _u, ...fields } = created.body;
      assert.deepEqual(fields, { ...RESEARCHER, version: 1, builtin: false });
      assert.equal((await t.request('POST', '/api/agents', { token: t.admin.token, body: RESEARCHER })).status, 409);

      // PUT replaces the whole configuration as version 2; the same PUT again changes nothing.
      const v2 = { system: 'You research carefully.', temperature: 0.2 };
      assert.equal((await t.request('PUT', '/api/agents/researcher', { token: t.bob.token, body: v2 })).status, 403);
      const put = await t.request('PUT', '/api/agents/researcher', { token: t.admin.token, body: v2 });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.body.version, 2);
      assert.equal(put.body.model, null, 'PUT is a whole configuration: what it leaves out is cleared');
      assert.deepEqual(put.body.tools, []);
      assert.equal((await t.request('PUT', '/api/agents/researcher', { token: t.admin.token, body: v2 })).body.version, 2);
      const got = await t.request('GET', '/api/agents/researcher', { token: t.alice.token });
      assert.equal(got.body.system, 'You research carefully.');

      const versions = await t.request('GET', '/api/agents/researcher/versions', { token: t.alice.token });
      assert.equal(versions.status, 200);
      assert.equal(versions.body.total, 2);
      assert.deepEqual(versions.body.items.map((v: { version: number }) => v.version), [2, 1]);
      assert.equal(versions.body.items[1].system, RESEARCHER.system);
      assert.deepEqual(versions.body.items[1].output_schema, RESEARCHER.output_schema);
      assert.equal(versions.body.items[0].created_by, t.admin.id);

      // What the step executor reads: the latest version, in the provider API's terms.
      const profile = await getAgentProfile(t.api.services.db, 'researcher');
      assert.deepEqual(profile, { name: 'researcher', version: 2, system: 'You research carefully.', temperature: 0.2, tools: [] });

      assert.equal((await t.request('DELETE', '/api/agents/researcher', { token: t.alice.token })).status, 403);
      assert.equal((await t.request('DELETE', '/api/agents/researcher', { token: t.admin.token })).status, 204);
      assert.equal((await t.request('GET', '/api/agents/researcher', { token: t.alice.token })).status, 404);
      assert.equal((await t.request('GET', '/api/agents/researcher/versions', { token: t.alice.token })).status, 404);
      assert.equal((await t.request('PUT', '/api/agents/researcher', { token: t.admin.token, body: v2 })).status, 404);
      assert.equal((await t.request('DELETE', '/api/agents/researcher', { token: t.admin.token })).status, 404);
      assert.equal(await getAgentProfile(t.api.services.db, 'researcher'), undefined);
      assert.ok(!(await t.request('GET', '/api/agents', { token: t.alice.token })).body.items.some((a: { name: string }) => a.name === 'researcher'));

      // Created again, the name continues its history.
      const revived = await t.request('POST', '/api/agents', { token: t.admin.token, body: RESEARCHER });
      assert.equal(revived.status, 201);
      assert.equal(revived.body.version, 3);
      assert.equal((await t.request('GET', '/api/agents/researcher/versions', { token: t.alice.token })).body.total, 3);
    });

    void test('invalid agents are refused with the path of each problem; output schemas are vetted, not compiled', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      const post = (body: unknown) => t.request('POST', '/api/agents', { token: t.admin.token, body });
      const refused = async (body: unknown, path: string, message?: RegExp) => {
        const r = await post(body);
        assert.equal(r.status, 400, `${path}: ${r.text}`);
        assert.equal(r.body.code, 'WEFT_VALIDATION');
        const hit = r.body.errors.find((e: { path: string }) => e.path === path);
        assert.ok(hit, `${path} in ${JSON.stringify(r.body.errors)}`);
        if (message) assert.match(hit.message, message);
      };
      const base = { name: 'a1', system: 'x' };
      await refused({ ...base, name: 'Has Spaces' }, '/body/name');
      await refused({ name: 'a1' }, '/body/system');
      await refused({ ...base, temperature: 3 }, '/body/temperature');
      await refused({ ...base, top_p: 1.5 }, '/body/top_p');
      await refused({ ...base, max_tokens: 0 }, '/body/max_tokens');
      await refused({ ...base, tools: ['ok', 'not ok'] }, '/body/tools/1');
      await refused({ ...base, version: 7 }, '/body/version');
      await refused({ ...base, output_schema: { type: 'array' } }, '/body/output_schema/type', /JSON object/);
      await refused({ ...base, output_schema: { properties: {} } }, '/body/output_schema/type');
      await refused({ ...base, output_schema: { type: 'object', properties: { s: { type: 'string', pattern: '(a+)+$' } } } }, '/body/output_schema/properties/s/pattern', /catastrophic/);
      await refused({ ...base, output_schema: { type: 'object', properties: { s: { type: 'strin' } } } }, '/body/output_schema/properties/s/type');
      await refused({ ...base, output_schema: { type: 'object', properties: { s: { $ref: 'https://example.com/s.json' } } } }, '/body/output_schema/properties/s/$ref');
      await refused({ ...base, output_schema: { type: 'object', $defs: { n: { type: 'object', properties: { next: { $ref: '#/$defs/n' } } } }, properties: { n: { $ref: '#/$defs/n' } } } }, '/body/output_schema', /recursive/);
      const wide = { type: 'object', properties: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`p${i}`, { type: 'string' }])) };
      await refused({ ...base, output_schema: wide }, '/body/output_schema', /bytes|too complex/);
      const deep = { type: 'object', $defs: { a: { type: 'object', properties: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`q${i}`, { type: 'string' }])) } }, properties: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`r${i}`, { $ref: '#/$defs/a' }])) };
      await refused({ ...base, output_schema: deep }, '/body/output_schema', /too complex/);
      assert.equal((await t.request('GET', '/api/agents/a1', { token: t.admin.token })).status, 404, 'nothing was stored');
      assert.equal((await post({ ...base, output_schema: RESEARCHER.output_schema })).status, 201);
    });
  });

  void describe(`credentials (${backend})`, () => {
    void test('a credential makes its provider available, its key reaches the provider, and deleting it removes the provider', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      assert.notEqual(process.env['WEFT_ALLOW_PRIVATE_NETWORK'], '1', 'this test needs the server-wide private-network switch off');
      const key = `sk-test-${randomBytes(18).toString('base64url')}`;
      const llm = await withLlm(ctx, key);
      assert.throws(() => resolveProvider('x', 'local-llm', undefined), missingProvider('local-llm'));

      const body = { name: 'local-llm', kind: 'openai-compatible', base_url: llm.openaiBaseUrl, api_key: key, default_model: 'llama3.2' };
      assert.equal((await t.request('POST', '/api/credentials', { token: t.alice.token, body })).status, 403);
      assert.equal((await t.request('POST', '/api/credentials', { body })).status, 401);
      const created = await t.request('POST', '/api/credentials', { token: t.admin.token, body });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(
        { ...created.body, id: undefined, created_at: undefined, updated_at: undefined },
        { id: undefined, name: 'local-llm', kind: 'openai-compatible', base_url: llm.openaiBaseUrl, default_model: 'llama3.2', allow_private: false, has_secret: true, status: { available: true }, created_by: t.admin.id, created_at: undefined, updated_at: undefined },
      );
      const id = created.body.id as string;

      // The provider exists at once; loopback stays closed until the credential opens it.
      const blocked = await resolveProvider('x', 'local-llm', undefined).chat(chat()).then(() => undefined, (e: unknown) => e);
      assert.ok(blocked instanceof WeftError && blocked.code === 'WEFT_HTTP_BLOCKED', String(blocked));
      const opened = await t.request('PATCH', `/api/credentials/${id}`, { token: t.admin.token, body: { allow_private: true } });
      assert.equal(opened.status, 200, opened.text);
      assert.equal(opened.body.allow_private, true);
      const reply = await resolveProvider('x', 'local-llm', undefined).chat(chat());
      assert.equal(reply.text, 'Echo: Hello');
      assert.equal(reply.model, 'llama3.2');
      assert.equal(llm.requests.at(-1)?.headers['authorization'], `Bearer ${key}`, 'the decrypted key is what the provider sends');
      // Only this provider was opened: the server-wide policy still applies to the others.
      const other = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { ...body, name: 'closed-llm' } });
      assert.equal(other.status, 201);
      const stillBlocked = await resolveProvider('x', 'closed-llm', undefined).chat(chat()).then(() => undefined, (e: unknown) => e);
      assert.ok(stillBlocked instanceof WeftError && stillBlocked.code === 'WEFT_HTTP_BLOCKED', String(stillBlocked));

      // Everyone signed in may see which providers exist; nobody sees a key.
      const providers = await t.request('GET', '/api/providers', { token: t.alice.token });
      assert.equal(providers.status, 200);
      assert.deepEqual(providers.body.items.find((p: { name: string }) => p.name === 'local-llm'), { name: 'local-llm', kind: 'openai-compatible', available: true });
      assert.ok(providers.body.items.some((p: { name: string }) => p.name === 'openai'), 'the built-ins stay');
      assert.ok(!leaks(providers.text, key));

      // A new key replaces the old one.
      const key2 = `sk-test-${randomBytes(18).toString('base64url')}`;
      const rotated = await t.request('PATCH', `/api/credentials/${id}`, { token: t.admin.token, body: { api_key: key2 } });
      assert.equal(rotated.status, 200);
      await assert.rejects(resolveProvider('x', 'local-llm', undefined).chat(chat()), /401|API key/i);
      assert.equal(llm.requests.at(-1)?.headers['authorization'], `Bearer ${key2}`);

      assert.equal((await t.request('DELETE', `/api/credentials/${id}`, { token: t.bob.token })).status, 403);
      assert.equal((await t.request('DELETE', `/api/credentials/${id}`, { token: t.admin.token })).status, 204);
      assert.throws(() => resolveProvider('x', 'local-llm', undefined), missingProvider('local-llm'));
      assert.equal((await t.request('GET', `/api/credentials/${id}`, { token: t.admin.token })).status, 404);
      assert.equal((await t.request('DELETE', `/api/credentials/${id}`, { token: t.admin.token })).status, 404);
      const rows = await t.api.services.db.query('SELECT 1 FROM credentials WHERE id = $1', [id]);
      assert.equal(rows.rows.length, 0, 'deleting removes the sealed key too');
    });

    void test('keys are encrypted at rest and appear in no answer, error or log line', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      const key = `sk-ant-${randomBytes(24).toString('hex')}`;
      const created = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { name: 'claude', kind: 'anthropic', api_key: key } });
      assert.equal(created.status, 201, created.text);
      const id = created.body.id as string;
      assert.equal(created.body.base_url, null);
      assert.equal(created.body.status.available, true, 'an anthropic credential without base_url uses the vendor URL');
      assert.equal(resolveProvider('x', 'claude', undefined).name, 'claude');

      // The raw row: the sealed form only; neither the key nor an encoding of it anywhere in it.
      const raw = await t.api.services.db.query<{ sealed: string; row: string }>('SELECT api_key_sealed AS sealed, c::text AS row FROM credentials c WHERE id = $1', [id]);
      const { sealed, row } = raw.rows[0]!;
      assert.match(sealed, /^v1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
      assert.ok(!leaks(row, key), 'the stored row holds no plaintext key');
      // Each value has its own IV: the same key stored twice seals differently.
      const twin = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { name: 'claude-2', kind: 'anthropic', api_key: key } });
      const twinSealed = (await t.api.services.db.query<{ s: string }>('SELECT api_key_sealed AS s FROM credentials WHERE id = $1', [twin.body.id])).rows[0]!.s;
      assert.notEqual(twinSealed.split('.')[2], sealed.split('.')[2]);
      assert.notEqual(twinSealed.split('.')[4], sealed.split('.')[4]);

      const texts: string[] = [created.text, twin.text];
      const call = async (method: string, path: string, body?: unknown) => {
        const r = await t.request(method, path, { token: t.admin.token, ...(body === undefined ? {} : { body }) });
        texts.push(r.text);
        return r;
      };
      assert.equal((await call('GET', '/api/credentials')).body.items.length, 2);
      assert.equal((await call('GET', `/api/credentials/${id}`)).body.has_secret, true);
      assert.equal((await call('PATCH', `/api/credentials/${id}`, { default_model: 'claude-sonnet-4-5' })).status, 200);
      // Errors, with the key in the request: a taken name, invalid fields, a wrong type.
      assert.equal((await call('POST', '/api/credentials', { name: 'claude', kind: 'anthropic', api_key: key })).status, 409);
      const invalid = await call('POST', '/api/credentials', { name: 'simulated', kind: 'anthropic', api_key: `${key} `, base_url: `https://user:${key}@example.com` });
      assert.equal(invalid.status, 400);
      assert.deepEqual(invalid.body.errors.map((e: { path: string }) => e.path).sort(), ['/body/api_key', '/body/base_url', '/body/name']);
      assert.equal((await call('POST', '/api/credentials', { name: 'x', kind: 'anthropic', api_key: key + 'x'.repeat(5000) })).status, 400);
      assert.equal((await call('POST', '/api/credentials', { name: 'x', kind: 'nope', api_key: key, extra: key })).status, 400);
      assert.equal((await call('PATCH', `/api/credentials/${id}`, { api_key: `\n${key}` })).status, 400);
      assert.equal((await call('GET', '/api/openapi.json')).status, 200);
      for (const text of texts) assert.ok(!leaks(text, key), `an answer quotes the key: ${text.slice(0, 300)}`);
      assert.ok(!leaks(JSON.stringify(t.log.lines), key), 'a log line quotes the key');
      assert.ok(t.log.lines.some((l) => l.message === 'credential created' && l.fields?.['credential'] === 'claude'), 'changes are logged by name');

      // The OpenAPI document marks the key write-only.
      const doc = JSON.parse(texts.at(-1)!) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, { writeOnly?: boolean }> } }> } }>> };
      assert.equal(doc.paths['/api/credentials']?.['post']?.requestBody?.content['application/json']?.schema.properties['api_key']?.writeOnly, true);
    });

    void test('a tampered, moved or foreign-key ciphertext is refused with a clear error, and its provider is not used', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      const key = `sk-${randomBytes(20).toString('hex')}`;
      const a = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { name: 'openai', kind: 'openai-compatible', api_key: key } });
      const b = await t.request('POST', '/api/credentials', { token: t.admin.token, body: { name: 'other', kind: 'anthropic', api_key: 'sk-other-key' } });
      assert.equal(a.status, 201, a.text);
      assert.equal(a.body.status.available, true, "'openai' takes the built-in's URL");
      const db = t.api.services.db;
      const sealedOf = async (id: string) => (await db.query<{ s: string }>('SELECT api_key_sealed AS s FROM credentials WHERE id = $1', [id])).rows[0]!.s;
      const original = await sealedOf(a.body.id);

      // Flip one bit of the ciphertext.
      const parts = original.split('.');
      const ct = Buffer.from(parts[4]!, 'base64url');
      ct[0] = ct[0]! ^ 1;
      const tampered = [...parts.slice(0, 4), ct.toString('base64url')].join('.');
      await db.query('UPDATE credentials SET api_key_sealed = $2 WHERE id = $1', [a.body.id, tampered]);
      await credentialProvidersOf(t.api.services).reload();
      const got = await t.request('GET', `/api/credentials/${a.body.id}`, { token: t.admin.token });
      assert.equal(got.body.status.available, false);
      assert.match(got.body.status.reason, /credential 'openai' failed its integrity check: the stored value was altered/);
      // Not a silent fall back to the built-in `openai` (OPENAI_API_KEY): the step fails saying why.
      assert.throws(() => resolveProvider('x', 'openai', undefined), missingProvider('openai'));
      const logged = t.log.lines.find((l) => l.message === 'credential key cannot be decrypted');
      assert.equal(logged?.fields?.['reason'], 'altered');
      assert.ok(!leaks(JSON.stringify(t.log.lines), key));

      // Another row's ciphertext (valid, under the same key) does not open here either.
      await db.query('UPDATE credentials SET api_key_sealed = $2 WHERE id = $1', [a.body.id, await sealedOf(b.body.id)]);
      await credentialProvidersOf(t.api.services).reload();
      assert.match((await t.request('GET', `/api/credentials/${a.body.id}`, { token: t.admin.token })).body.status.reason, /altered, or belongs to another record/);

      // Restored, it opens again; storing a new key over a broken one is the fix the message names.
      await db.query('UPDATE credentials SET api_key_sealed = $2 WHERE id = $1', [a.body.id, original]);
      await credentialProvidersOf(t.api.services).reload();
      assert.equal((await t.request('GET', `/api/credentials/${a.body.id}`, { token: t.admin.token })).body.status.available, true);

      // A second server with another secret key reads the same database: it says so.
      const dataDir = await mkdtemp(join(tmpdir(), 'weft-secret-'));
      ctx.after(() => rm(dataDir, { recursive: true, force: true }));
      const config = loadApiConfig({}, { dataDir, secretKey: randomBytes(32).toString('hex') });
      const log = memoryLogger();
      const second = await startApiServer({ db, engine: t.api.services.engine, config, log, port: 0 });
      try {
        const status = credentialProvidersOf(second.services).view({ ...a.body, created_at: new Date(), updated_at: new Date() }).status;
        assert.equal(status.available, false);
        assert.match(status.reason!, /was encrypted with another secret key .*WEFT_SECRET_KEY/);
        assert.ok(log.lines.some((l) => l.fields?.['reason'] === 'other_key'));
      } finally {
        await second.close();
      }
    });

    void test('a change another server makes reaches this one through NOTIFY', async (ctx) => {
      const t = await startTestApi(backend, ctx);
      if (!t) return;
      const providers = credentialProvidersOf(t.api.services);
      assert.throws(() => resolveProvider('x', 'from-elsewhere', undefined), missingProvider('from-elsewhere'));
      const id = '00000000-0000-4000-8000-000000000001';
      await t.api.services.db.transaction(async (tx) => {
        await insertCredential(tx, {
          id, name: 'from-elsewhere', kind: 'anthropic', baseUrl: 'https://anthropic.example.test', defaultModel: null,
          allowPrivate: false, apiKeySealed: providers.seal('sk-elsewhere', id), createdBy: null,
        });
        await notifyCredentialsChanged(tx);
      });
      await eventually(async () => {
        try {
          return resolveProvider('x', 'from-elsewhere', undefined);
        } catch {
          return undefined;
        }
      }, 5000, 'the provider from the NOTIFY');
    });
  });
}

void describe('secret key and sealing', () => {
  void test('generated into the data folder (mode 0600) on first start, then reused; or taken from WEFT_SECRET_KEY', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'weft-secret-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const first = await loadSecretBox({ dataDir: join(dataDir, 'nested') }, silentLogger);
    const path = join(dataDir, 'nested', SECRET_KEY_FILE_NAME);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const again = await loadSecretBox({ dataDir: join(dataDir, 'nested') }, silentLogger);
    assert.equal(again.keyId, first.keyId);
    assert.equal(again.open(first.seal('hello', 'ctx'), 'ctx'), 'hello');

    const raw = randomBytes(32);
    const fromHex = await loadSecretBox({ dataDir, secretKey: raw.toString('hex') }, silentLogger);
    const fromBase64 = await loadSecretBox({ dataDir, secretKey: raw.toString('base64') }, silentLogger);
    const fromBase64Url = new SecretBox(parseSecretKey(` ${raw.toString('base64url')}\n`, 'test'));
    assert.equal(fromHex.keyId, fromBase64.keyId);
    assert.equal(fromHex.keyId, fromBase64Url.keyId);
    assert.notEqual(fromHex.keyId, first.keyId);
    assert.equal(loadApiConfig({ WEFT_SECRET_KEY: raw.toString('hex') }).secretKey, raw.toString('hex'));
    const stored = (await readFile(path, 'utf8')).trim();
    assert.equal(new SecretBox(parseSecretKey(stored, 'file')).keyId, first.keyId);

    for (const bad of ['short', raw.subarray(0, 16).toString('hex'), randomBytes(33).toString('base64'), 'z'.repeat(64)]) {
      await assert.rejects(loadSecretBox({ dataDir, secretKey: bad }, silentLogger), (e: unknown) => {
        assert.ok(e instanceof SecretError && e.code === 'WEFT_SECRET_KEY_INVALID', String(e));
        assert.match(e.message, /WEFT_SECRET_KEY must be 32 bytes/);
        assert.ok(!e.message.includes(bad), 'the message does not quote the key');
        return true;
      });
    }
  });

  void test('opening checks the tag, the context, the key and the format', () => {
    const keyBytes = randomBytes(32);
    const box = new SecretBox(keyBytes);
    const sealed = box.seal('sk-secret-value', 'row-1');
    assert.notEqual(box.seal('sk-secret-value', 'row-1'), sealed, 'a fresh IV every time');
    assert.equal(box.open(sealed, 'row-1'), 'sk-secret-value');
    const reason = (fn: () => unknown): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (e) {
        assert.ok(e instanceof SecretError && e.code === 'WEFT_SECRET_UNREADABLE' && !e.retryable);
        assert.ok(!e.message.includes('sk-secret-value') && !e.message.includes(sealed));
        return e.reason;
      }
    };
    const parts = sealed.split('.');
    const flip = (i: number) => {
      const bytes = Buffer.from(parts[i]!, 'base64url');
      bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x80;
      return parts.map((p, j) => (j === i ? bytes.toString('base64url') : p)).join('.');
    };
    assert.equal(reason(() => box.open(flip(4), 'row-1')), 'altered', 'ciphertext');
    assert.equal(reason(() => box.open(flip(3), 'row-1')), 'altered', 'tag');
    assert.equal(reason(() => box.open(flip(2), 'row-1')), 'altered', 'iv');
    assert.equal(reason(() => box.open(sealed, 'row-2')), 'altered', 'context');
    assert.equal(reason(() => new SecretBox(randomBytes(32)).open(sealed, 'row-1')), 'other_key');
    assert.equal(reason(() => box.open('sk-secret-value', 'row-1')), 'malformed');
    assert.equal(reason(() => box.open(parts.slice(0, 4).join('.'), 'row-1')), 'malformed');
    assert.equal(reason(() => box.open(['v2', ...parts.slice(1)].join('.'), 'row-1')), 'malformed');
    assert.throws(() => box.open(flip(4), 'row-1', "credential 'x'"), /^SecretError: credential 'x' failed its integrity check/);
    // The key does not print.
    for (const text of [JSON.stringify(box), inspect(box, { showHidden: true, depth: 10 })]) {
      assert.ok(![keyBytes.toString('hex'), keyBytes.toString('base64'), keyBytes.toString('base64url')].some((k) => text.includes(k)), text);
    }
  });

  void test('getAgentProfile serves the built-ins from code until a server seeds them, and a deleted one stays deleted', async (t) => {
    const db = await openTestDb('pglite', t);
    if (!db) return;
    t.after(() => db.close());
    const unseeded = await getAgentProfile(db, 'compliance');
    assert.equal(unseeded?.version, 0);
    assert.equal(unseeded?.system, BUILTIN_AGENT_SEEDS['compliance']!.system);
    assert.equal(await getAgentProfile(db, 'nobody'), undefined);
    assert.equal(await getAgentProfile(db, 'constructor'), undefined, 'no prototype lookups');
    assert.equal((await seedBuiltinAgents(db)).length, Object.keys(BUILTIN_AGENTS).length);
    assert.equal((await getAgentProfile(db, 'compliance'))?.version, 1);
    await db.query("UPDATE agents SET deleted_at = now() WHERE name = 'compliance'");
    assert.deepEqual(await seedBuiltinAgents(db), []);
    assert.equal(await getAgentProfile(db, 'compliance'), undefined);
  });
});
