/**
 * A real API server on a loopback port over an isolated test database, with an admin and two
 * users (alice, bob) logged in, and a small fetch wrapper for requests.
 */
import type { TestContext } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadApiConfig, type ApiConfig } from '../../src/api/config.ts';
import { startApiServer, type ApiServer } from '../../src/api/server.ts';
import { memoryLogger } from '../../src/engine/log.ts';
import type { Backend } from './db.ts';
import { testEngine } from './engine.ts';

export interface Reply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export interface RequestOptions {
  token?: string | undefined;
  body?: unknown;
  /** Raw body text (with `contentType`), instead of JSON. */
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
  token: string;
}

export interface TestApi {
  api: ApiServer;
  url: string;
  admin: TestUser;
  alice: TestUser;
  bob: TestUser;
  log: ReturnType<typeof memoryLogger>;
  request(method: string, path: string, options?: RequestOptions): Promise<Reply>;
}

export const ADMIN = { email: 'admin@example.test', password: 'correct horse battery staple' };

export async function request(base: string, method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (options.raw !== undefined) {
    body = options.raw;
    if (options.contentType) headers['content-type'] = options.contentType;
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = options.contentType ?? 'application/json';
  }
  const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text && (res.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export async function login(base: string, email: string, password: string): Promise<string> {
  const r = await request(base, 'POST', '/api/auth/login', { body: { email, password } });
  if (r.status !== 200) throw new Error(`login ${email}: ${r.status} ${r.text}`);
  return (r.body as { access_token: string }).access_token;
}

/** Starts engine + API; undefined when the backend is unavailable (the test is then skipped). */
export async function startTestApi(backend: Backend, t: TestContext, overrides: Partial<ApiConfig> = {}): Promise<TestApi | undefined> {
  const setup = await testEngine(backend, t);
  if (!setup) return undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-api-'));
  const log = memoryLogger();
  // Templates are off unless a test asks for them: most tests count the workflows they made.
  const config = loadApiConfig({}, { dataDir, adminEmail: ADMIN.email, adminPassword: ADMIN.password, seedTemplates: false, ...overrides });
  const api = await startApiServer({ db: setup.db, engine: setup.engine, config, log, port: 0, feedPollMs: 20 });
  t.after(async () => {
    await api.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const url = api.url;
  const adminToken = await login(url, ADMIN.email, ADMIN.password);
  const me = await request(url, 'GET', '/api/me', { token: adminToken });
  const admin: TestUser = { id: (me.body as { id: string }).id, ...ADMIN, token: adminToken };
  const makeUser = async (name: string): Promise<TestUser> => {
    const email = `${name}@example.test`;
    const password = `${name}-password-123`;
    const created = await request(url, 'POST', '/api/users', { token: adminToken, body: { email, name, role: 'user', password } });
    if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.text}`);
    return { id: (created.body as { id: string }).id, email, password, token: await login(url, email, password) };
  };
  const alice = await makeUser('alice');
  const bob = await makeUser('bob');
  return { api, url, admin, alice, bob, log, request: (method, path, options) => request(url, method, path, options) };
}

/** A small valid workflow: two transform steps. */
export const TWO_STEPS = {
  name: 'two steps',
  inputs: { type: 'object', properties: { n: { type: 'number', default: 1 } } },
  steps: {
    a: { type: 'transform', expr: '$input.n + 1' },
    b: { type: 'transform', needs: ['a'], expr: '$a * 2' },
  },
  outputs: { result: '$b' },
};
