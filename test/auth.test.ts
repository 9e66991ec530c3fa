/**
 * Authentication against a real database on both backends: passwords, sessions, API tokens,
 * the attacks an access token must survive, first-admin setup, an external identity provider
 * served by a local JWKS endpoint, and the rate limiter.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { decodeJwt, exportJWK, generateKeyPair, importPKCS8, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { AuthService } from '../src/api/auth/auth-service.ts';
import { hashPassword, needsRehash, passwordPolicyProblem, verifyPassword } from '../src/api/auth/passwords.ts';
import { generatePem, loadSigningKey } from '../src/api/auth/signing-key.ts';
import { DEFAULT_API_CONFIG, type ApiConfig } from '../src/api/config.ts';
import { HttpProblem } from '../src/api/http/problem.ts';
import { assertValid } from '../src/api/http/validate.ts';
import type { AnyRoute } from '../src/api/http/route.ts';
import { RateLimiter } from '../src/api/rate-limit.ts';
import { authRoutes } from '../src/api/routes/auth-routes.ts';
import { tokensRoutes } from '../src/api/routes/tokens-routes.ts';
import { usersRoutes } from '../src/api/routes/users-routes.ts';
import { ManualClock } from '../src/engine/clock.ts';
import { memoryLogger, silentLogger } from '../src/engine/log.ts';
import type { Db, Queryable } from '../src/store/db.ts';
import { countUsers, getPasswordHash, getUser, insertUser, listUsers, updateUser } from '../src/store/users.ts';
import { BACKENDS, closeTemplates, openTestDb, type Backend } from './helpers/db.ts';

after(closeTemplates);

const PEM = await generatePem();
const PASSWORD = 'correct horse battery';

function configFor(dataDir: string, overrides: Partial<ApiConfig> = {}): ApiConfig {
  return { ...DEFAULT_API_CONFIG, dataDir, ...overrides, jwt: { ...DEFAULT_API_CONFIG.jwt, privateKeyPem: PEM, ...overrides.jwt } };
}

const bearer = (token: string): IncomingMessage => ({ headers: { authorization: `Bearer ${token}` } }) as IncomingMessage;
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<HttpProblem> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return error instanceof HttpProblem && error.status === status && error.code === code;
  });
  return caught as HttpProblem;
}

interface Env {
  db: Db;
  auth: AuthService;
  clock: ManualClock;
  config: ApiConfig;
  log: ReturnType<typeof memoryLogger>;
}

async function openAuth(t: TestContext, backend: Backend, overrides: Partial<ApiConfig> = {}): Promise<Env | undefined> {
  const db = await openTestDb(backend, t);
  if (!db) return undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-auth-'));
  t.after(async () => {
    await db.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const clock = new ManualClock(Date.now());
  const config = configFor(dataDir, overrides);
  const log = memoryLogger();
  return { db, auth: await AuthService.create({ db, config, clock, log }), clock, config, log };
}

/**
 * A Db whose transactions each pause after their first statement until `parties` of them got
 * there (or `waitMs` passed), so racing transactions really overlap: without it, the fast
 * transaction of the first caller commits before the second begins and a missing lock goes
 * unnoticed. A transaction blocked on a lock simply arrives later.
 */
function racingTransactions(db: Db, parties: number, waitMs: number): Db {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((resolve) => (release = resolve));
  const transaction: Db['transaction'] = (fn) => db.transaction(async (tx) => {
    let first = true;
    const query: Queryable['query'] = async (text, params) => {
      const result = await tx.query(text, params);
      if (first) {
        first = false;
        if (++arrived >= parties) release();
        await Promise.race([all, delay(waitMs)]);
      }
      return result as never;
    };
    return fn({ query });
  });
  return Object.assign(Object.create(db) as Db, { transaction });
}

/** Our own signing key, as a test forging tokens "correctly" signed would use it. */
const realKey = (): Promise<CryptoKey> => importPKCS8(PEM, 'EdDSA');

async function signClaims(key: CryptoKey, claims: JWTPayload, header: Record<string, unknown> = {}, alg = 'EdDSA'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', ...header }).sign(key);
}

void describe('passwords', () => {
  void test('hash, verify, rehash and policy', async () => {
    const hash = await hashPassword(PASSWORD);
    assert.match(hash, /^scrypt\$32768\$8\$3\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.equal(await verifyPassword(PASSWORD, hash), true);
    assert.equal(await verifyPassword(PASSWORD + '!', hash), false);
    assert.notEqual(await hashPassword(PASSWORD), hash, 'every hash has its own salt');
    assert.equal(needsRehash(hash), false);
    const weaker = await hashPassword(PASSWORD, { N: 2 ** 14, r: 8, p: 1 });
    assert.equal(await verifyPassword(PASSWORD, weaker), true);
    assert.equal(needsRehash(weaker), true);
    assert.equal(await verifyPassword(PASSWORD, 'scrypt$1073741824$8$1$c2FsdHNhbHQ$' + 'A'.repeat(43)), false, 'absurd parameters are refused, not run');
    assert.equal(await verifyPassword(PASSWORD, 'plaintext'), false);
    assert.equal(needsRehash('plaintext'), true);
    assert.match(passwordPolicyProblem('short') ?? '', /at least 8/);
    assert.match(passwordPolicyProblem('x'.repeat(257)) ?? '', /at most 256/);
    assert.equal(passwordPolicyProblem('x'.repeat(256)), undefined);
  });
});

void describe('signing key', () => {
  void test('generated once into dataDir with mode 0600, and reused', async (t) => {
    const dataDir = join(await mkdtemp(join(tmpdir(), 'weft-key-')), 'nested');
    t.after(() => rm(join(dataDir, '..'), { recursive: true, force: true }));
    const config = { dataDir, jwt: { ...DEFAULT_API_CONFIG.jwt } };
    const first = await loadSigningKey(config, silentLogger);
    const mode = (await stat(join(dataDir, 'jwt-ed25519.pem'))).mode & 0o777;
    assert.equal(mode, 0o600);
    const second = await loadSigningKey(config, silentLogger);
    assert.equal(second.kid, first.kid);
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const { exportPKCS8 } = await import('jose');
    await assert.rejects(loadSigningKey({ dataDir, jwt: { ...DEFAULT_API_CONFIG.jwt, privateKeyPem: await exportPKCS8(rsa.privateKey) } }, silentLogger), /Ed25519/);
  });
});

for (const backend of BACKENDS) {
  void describe(`auth on ${backend}`, () => {
    void test('login: success, wrong password, unknown email, disabled user, rehash', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, db } = env;
      const user = await auth.createUser({ email: 'Ada@Example.com', role: 'user', password: PASSWORD });
      const pair = await auth.login('ada@example.COM', PASSWORD);
      assert.equal(pair.token_type, 'Bearer');
      assert.equal(pair.expires_in, env.config.jwt.accessTtlSeconds);
      assert.match(pair.refresh_token, /^weft_rt_/);
      assert.deepEqual(await auth.authenticate(bearer(pair.access_token)), { userId: user.id, email: 'Ada@Example.com', role: 'user', via: 'jwt' });
      const wrong = await rejectsWith(auth.login('ada@example.com', 'not the password'), 401, 'WEFT_UNAUTHENTICATED');
      const unknown = await rejectsWith(auth.login('nobody@example.com', PASSWORD), 401, 'WEFT_UNAUTHENTICATED');
      assert.equal(wrong.message, 'invalid email or password');
      assert.equal(unknown.message, wrong.message, 'the answer does not tell whether the account exists');
      await updateUser(db, user.id, { disabled: true });
      await rejectsWith(auth.login('ada@example.com', PASSWORD), 401, 'WEFT_UNAUTHENTICATED');
      // A hash with older parameters is upgraded at the next successful login.
      const old = await insertUser(db, { email: 'old@example.com', name: '', role: 'user', passwordHash: await hashPassword(PASSWORD, { N: 2 ** 14, r: 8, p: 1 }) });
      await auth.login('old@example.com', PASSWORD);
      assert.equal(needsRehash((await getPasswordHash(db, old.id))!), false);
      assert.equal(Object.hasOwn((await getUser(db, old.id))!, 'password_hash'), false, 'route-facing reads never carry the hash');
      assert.equal(env.log.lines.some((l) => JSON.stringify(l).includes(PASSWORD)), false);
    });

    void test('the Authorization header is the only credential', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      await env.auth.createUser({ email: 'h@example.com', role: 'user', password: PASSWORD });
      const { access_token } = await env.auth.login('h@example.com', PASSWORD);
      assert.equal(await env.auth.authenticate({ headers: {} } as IncomingMessage), null);
      assert.equal(await env.auth.authenticate({ headers: { cookie: `token=${access_token}`, 'x-forwarded-user': 'admin' } } as unknown as IncomingMessage), null);
      await rejectsWith(env.auth.authenticate({ headers: { authorization: `Basic ${access_token}` } } as IncomingMessage), 401, 'WEFT_UNAUTHENTICATED');
      await rejectsWith(env.auth.authenticate(bearer('not-a-jwt')), 401, 'WEFT_UNAUTHENTICATED');
    });

    void test('forged, expired and misdirected access tokens are all refused with 401', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, clock, config } = env;
      const user = await auth.createUser({ email: 'eve-target@example.com', role: 'user', password: PASSWORD });
      const { access_token: good } = await auth.login('eve-target@example.com', PASSWORD);
      const now = Math.floor(clock.now() / 1000);
      const claims = { sub: user.id, role: 'user', email: user.email, iss: config.jwt.issuer, aud: config.jwt.audience, iat: now, nbf: now, exp: now + 600, jti: 'j1' };
      const [header, payload, signature] = good.split('.') as [string, string, string];
      const publicPem = createPublicKey(PEM).export({ type: 'spki', format: 'pem' }).toString();
      const publicRaw = Buffer.from((await exportJWK(createPublicKey(PEM))).x!, 'base64url');
      const hmac = (secret: string | Buffer, body: string) => createHmac('sha256', secret).update(body).digest('base64url');
      const hsBody = `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${b64({ ...claims, role: 'admin' })}`;
      const other = (await generateKeyPair('Ed25519')).privateKey;
      const key = await realKey();
      const attacks: Record<string, string> = {
        'alg none': `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64({ ...claims, role: 'admin' })}.`,
        'HS256 keyed with the public key PEM': `${hsBody}.${hmac(publicPem, hsBody)}`,
        'HS256 keyed with the raw public key': `${hsBody}.${hmac(publicRaw, hsBody)}`,
        'tampered payload (role flipped to admin)': `${header}.${b64({ ...decodeJwt(good), role: 'admin' })}.${signature}`,
        'tampered payload (another sub)': `${header}.${b64({ ...decodeJwt(good), sub: '00000000-0000-4000-8000-000000000000' })}.${signature}`,
        'signed by another Ed25519 key': await signClaims(other, claims),
        'expired (beyond the tolerance)': await signClaims(key, { ...claims, iat: now - 700, nbf: now - 700, exp: now - 60 }),
        'not valid yet (nbf in the future)': await signClaims(key, { ...claims, nbf: now + 60 }),
        'wrong issuer': await signClaims(key, { ...claims, iss: 'someone-else' }),
        'wrong audience': await signClaims(key, { ...claims, aud: 'another-api' }),
        'no exp': await signClaims(key, { sub: claims.sub, iss: claims.iss, aud: claims.aud, iat: now, nbf: now, jti: 'j2' }),
        'not an access token (typ JWT)': await signClaims(key, claims, { typ: 'JWT' }),
        'sub that is not a user id': await signClaims(key, { ...claims, sub: "1' OR '1'='1" }),
        'unknown user': await signClaims(key, { ...claims, sub: '00000000-0000-4000-8000-000000000000' }),
        'header with signature cut off': `${header}.${payload}`,
      };
      for (const [name, token] of Object.entries(attacks)) {
        const problem = await rejectsWith(auth.authenticate(bearer(token)), 401, 'WEFT_UNAUTHENTICATED').catch((error: unknown) => {
          throw new Error(`attack "${name}" was not refused with 401`, { cause: error });
        });
        assert.equal(problem.headers?.['WWW-Authenticate'], 'Bearer error="invalid_token"', name);
      }
      // The role in a correctly signed token is only a hint: the database decides.
      const claimsAdmin = await signClaims(key, { ...claims, role: 'admin' });
      assert.equal((await auth.authenticate(bearer(claimsAdmin)))?.role, 'user');
      // Expiry honours the 5 s tolerance, then says "expired".
      clock.advance((config.jwt.accessTtlSeconds + 3) * 1000);
      assert.equal((await auth.authenticate(bearer(good)))?.userId, user.id);
      clock.advance(10_000);
      const expired = await rejectsWith(auth.authenticate(bearer(good)), 401, 'WEFT_UNAUTHENTICATED');
      assert.match(expired.message, /expired/);
    });

    void test('a disabled user or a demoted admin loses access at once', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, db } = env;
      const admin = await auth.createUser({ email: 'boss@example.com', role: 'admin', password: PASSWORD });
      const user = await auth.createUser({ email: 'u@example.com', role: 'user', password: PASSWORD });
      const adminToken = (await auth.login('boss@example.com', PASSWORD)).access_token;
      const userPair = await auth.login('u@example.com', PASSWORD);
      assert.equal((await auth.authenticate(bearer(adminToken)))?.role, 'admin');
      await updateUser(db, admin.id, { role: 'user' });
      assert.equal((await auth.authenticate(bearer(adminToken)))?.role, 'user');
      const actor = { userId: admin.id, email: admin.email, role: 'admin' as const, via: 'jwt' as const };
      await auth.updateUser(actor, user.id, { disabled: true });
      await rejectsWith(auth.authenticate(bearer(userPair.access_token)), 401, 'WEFT_UNAUTHENTICATED');
      await updateUser(db, user.id, { disabled: false });
      await rejectsWith(auth.refresh(userPair.refresh_token), 401, 'WEFT_UNAUTHENTICATED'); // disabling ended the session
    });

    void test('API tokens: create, use, list, revoke, expire', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, db, clock } = env;
      const alice = await auth.createUser({ email: 'alice@example.com', role: 'user' });
      const bob = await auth.createUser({ email: 'bob@example.com', role: 'user' });
      const created = await auth.createApiToken(alice.id, 'ci');
      assert.match(created.token, /^weft_pat_[A-Za-z0-9_-]{43}$/);
      assert.equal(created.prefix, created.token.slice(0, 12));
      assert.deepEqual(await auth.authenticate(bearer(created.token)), { userId: alice.id, email: alice.email, role: 'user', via: 'api_token' });
      const lastUsed = async () => (await db.query<{ t: Date | null }>('SELECT last_used_at AS t FROM api_tokens WHERE id = $1', [created.id])).rows[0]!.t?.getTime();
      const firstUse = await lastUsed();
      assert.equal(firstUse, clock.now());
      clock.advance(30_000);
      await auth.authenticate(bearer(created.token));
      assert.equal(await lastUsed(), firstUse, 'not rewritten within a minute');
      clock.advance(31_000);
      await auth.authenticate(bearer(created.token));
      assert.equal(await lastUsed(), clock.now());
      const listed = await auth.listApiTokens(alice.id);
      assert.deepEqual(listed.map((x) => x.id), [created.id]);
      assert.deepEqual(Object.keys(listed[0]!).sort(), ['created_at', 'expires_at', 'id', 'last_used_at', 'name', 'prefix']);
      await rejectsWith(auth.revokeApiToken(bob.id, created.id), 404, 'WEFT_NOT_FOUND');
      await auth.revokeApiToken(alice.id, created.id);
      await rejectsWith(auth.authenticate(bearer(created.token)), 401, 'WEFT_UNAUTHENTICATED');
      await rejectsWith(auth.revokeApiToken(alice.id, created.id), 404, 'WEFT_NOT_FOUND');
      const shortLived = await auth.createApiToken(alice.id, 'short', new Date(clock.now() + 60_000));
      assert.equal((await auth.authenticate(bearer(shortLived.token)))?.userId, alice.id);
      clock.advance(61_000);
      await rejectsWith(auth.authenticate(bearer(shortLived.token)), 401, 'WEFT_UNAUTHENTICATED');
      await rejectsWith(auth.createApiToken(alice.id, 'past', new Date(clock.now() - 1)), 400, 'WEFT_VALIDATION');
      await rejectsWith(auth.authenticate(bearer(created.token.slice(0, -1) + (created.token.endsWith('A') ? 'B' : 'A'))), 401, 'WEFT_UNAUTHENTICATED');
      const bobs = await auth.createApiToken(bob.id, 'bob');
      await updateUser(db, bob.id, { disabled: true });
      await rejectsWith(auth.authenticate(bearer(bobs.token)), 401, 'WEFT_UNAUTHENTICATED');
    });

    void test('refresh tokens rotate; a replayed one revokes its family only', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, clock, config } = env;
      const user = await auth.createUser({ email: 'r@example.com', role: 'user', password: PASSWORD });
      const first = await auth.login('r@example.com', PASSWORD);
      const otherDevice = await auth.login('r@example.com', PASSWORD);
      const second = await auth.refresh(first.refresh_token);
      assert.notEqual(second.refresh_token, first.refresh_token);
      assert.equal((await auth.authenticate(bearer(second.access_token)))?.userId, user.id);
      const third = await auth.refresh(second.refresh_token);
      await rejectsWith(auth.refresh(first.refresh_token), 401, 'WEFT_UNAUTHENTICATED');
      assert.ok(env.log.lines.some((l) => l.level === 'warn' && /presented again/.test(l.message)));
      await rejectsWith(auth.refresh(third.refresh_token), 401, 'WEFT_UNAUTHENTICATED');
      const stillIn = await auth.refresh(otherDevice.refresh_token);
      await rejectsWith(auth.refresh('weft_rt_' + 'A'.repeat(43)), 401, 'WEFT_UNAUTHENTICATED');
      await rejectsWith(auth.refresh('garbage'), 401, 'WEFT_UNAUTHENTICATED');
      await auth.logout(stillIn.refresh_token);
      await rejectsWith(auth.refresh(stillIn.refresh_token), 401, 'WEFT_UNAUTHENTICATED');
      const late = await auth.login('r@example.com', PASSWORD);
      clock.advance(config.jwt.refreshTtlSeconds * 1000 + 1);
      await rejectsWith(auth.refresh(late.refresh_token), 401, 'WEFT_UNAUTHENTICATED');
    });

    void test('user management: duplicates, self-protection, own password change', async (t) => {
      const env = await openAuth(t, backend);
      if (!env) return;
      const { auth, db } = env;
      const admin = await auth.createUser({ email: 'root@example.com', name: 'Root', role: 'admin', password: PASSWORD });
      const actor = { userId: admin.id, email: admin.email, role: 'admin' as const, via: 'jwt' as const };
      await rejectsWith(auth.createUser({ email: 'ROOT@example.com', role: 'user' }), 409, 'WEFT_CONFLICT');
      await rejectsWith(auth.createUser({ email: 'weak@example.com', role: 'user', password: 'short' }), 400, 'WEFT_VALIDATION');
      await rejectsWith(auth.updateUser(actor, admin.id, { disabled: true }), 403, 'WEFT_FORBIDDEN');
      await rejectsWith(auth.updateUser(actor, admin.id, { role: 'user' }), 403, 'WEFT_FORBIDDEN');
      await rejectsWith(auth.updateUser(actor, '00000000-0000-4000-8000-000000000000', { name: 'x' }), 404, 'WEFT_NOT_FOUND');
      await auth.createUser({ email: 'grace@example.com', name: 'Grace Hopper', role: 'user' });
      const page = await listUsers(db, { q: 'hopper', sort: 'email', order: 'asc', limit: 10, offset: 0 });
      assert.deepEqual(page.items.map((u) => u.email), ['grace@example.com']);
      assert.equal(page.total, 1);
      const admins = await listUsers(db, { role: 'admin', sort: 'created_at', order: 'desc', limit: 1, offset: 5 });
      assert.deepEqual({ items: admins.items.length, total: admins.total }, { items: 0, total: 1 });
      assert.equal(Object.hasOwn(page.items[0]!, 'password_hash'), false);
      const session = await auth.login('root@example.com', PASSWORD);
      await rejectsWith(auth.changeOwnPassword(admin.id, 'not it at all', 'a brand new secret'), 403, 'WEFT_FORBIDDEN');
      await auth.changeOwnPassword(admin.id, PASSWORD, 'a brand new secret');
      await rejectsWith(auth.login('root@example.com', PASSWORD), 401, 'WEFT_UNAUTHENTICATED');
      await auth.login('root@example.com', 'a brand new secret');
      await rejectsWith(auth.refresh(session.refresh_token), 401, 'WEFT_UNAUTHENTICATED');
    });

    void test('bootstrap with configured credentials creates the first admin once', async (t) => {
      const env = await openAuth(t, backend, { adminEmail: 'first@example.com', adminPassword: PASSWORD });
      if (!env) return;
      assert.deepEqual(await env.auth.bootstrap(), { createdAdmin: 'first@example.com' });
      assert.deepEqual(await env.auth.bootstrap(), {});
      assert.equal(await countUsers(env.db), 1);
      const { access_token } = await env.auth.login('first@example.com', PASSWORD);
      assert.equal((await env.auth.authenticate(bearer(access_token)))?.role, 'admin');
      const weak = await openAuth(t, backend, { adminEmail: 'a@example.com', adminPassword: 'short' });
      await assert.rejects(weak!.auth.bootstrap(), /WEFT_ADMIN_PASSWORD/);
    });

    void test('bootstrap without credentials: a one-time setup link; concurrent setups make one admin', async (t) => {
      const env = await openAuth(t, backend, { publicUrl: 'https://weft.example/' });
      if (!env) return;
      const { auth, db } = env;
      const stale = (await auth.bootstrap()).setupUrl!;
      const { setupUrl } = await auth.bootstrap();
      assert.match(setupUrl!, /^https:\/\/weft\.example\/setup\?token=weft_setup_[A-Za-z0-9_-]{43}$/);
      const token = new URL(setupUrl!).searchParams.get('token')!;
      const staleToken = new URL(stale).searchParams.get('token')!;
      const stored = JSON.stringify((await db.query('SELECT value FROM server_settings')).rows);
      assert.equal(stored.includes(token), false, 'only the hash of the setup token is stored');
      await rejectsWith(auth.completeSetup(staleToken, 'x@example.com', PASSWORD), 403, 'WEFT_FORBIDDEN');
      await rejectsWith(auth.completeSetup('weft_setup_' + 'A'.repeat(43), 'x@example.com', PASSWORD), 403, 'WEFT_FORBIDDEN');
      const racing = await AuthService.create({ db: racingTransactions(db, 2, 500), config: env.config, clock: env.clock, log: silentLogger });
      const results = await Promise.allSettled([
        racing.completeSetup(token, 'one@example.com', PASSWORD, 'One'),
        racing.completeSetup(token, 'two@example.com', PASSWORD, 'Two'),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.ok(lost[0]!.reason instanceof HttpProblem && [403, 409].includes(lost[0]!.reason.status), String(lost[0]!.reason));
      assert.equal(await countUsers(db), 1);
      const { user, tokens } = won[0]!.value;
      assert.equal(user.role, 'admin');
      assert.equal((await auth.authenticate(bearer(tokens.access_token)))?.role, 'admin');
      await rejectsWith(auth.completeSetup(token, 'three@example.com', PASSWORD), 409, 'WEFT_CONFLICT');
      assert.deepEqual(await auth.bootstrap(), {});
      assert.equal((await db.query('SELECT key FROM server_settings')).rows.length, 0);
    });

    void test('external identity provider: JWKS-verified tokens, users auto-created as role user', async (t) => {
      const idpKey = await generateKeyPair('RS256', { extractable: true });
      const jwk = { ...(await exportJWK(idpKey.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const external = { jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, issuer: 'https://idp.example', audience: 'weft', algorithms: ['RS256'] };
      const env = await openAuth(t, backend, { external });
      if (!env) return;
      const { auth, db, clock } = env;
      const now = Math.floor(clock.now() / 1000);
      const claims = { iss: external.issuer, aud: 'weft', sub: 'idp|42', email: 'ext@example.com', name: 'Ext', role: 'admin', iat: now, exp: now + 300 };
      const idpSign = (c: JWTPayload, key: CryptoKey = idpKey.privateKey) => new SignJWT(c).setProtectedHeader({ alg: 'RS256', kid: 'idp-1' }).sign(key);
      const principal = await auth.authenticate(bearer(await idpSign(claims)));
      assert.equal(principal?.via, 'external');
      assert.equal(principal?.role, 'user', 'an external role claim is ignored; new users are never admins');
      const row = await getUser(db, principal!.userId);
      assert.deepEqual([row?.email, row?.role, row?.name], ['ext@example.com', 'user', 'Ext']);
      assert.equal((await auth.authenticate(bearer(await idpSign(claims))))?.userId, principal!.userId);
      assert.equal(await countUsers(db), 1);
      await rejectsWith(auth.login('ext@example.com', ''), 401, 'WEFT_UNAUTHENTICATED');
      const publicPem = createPublicKey(await exportJWK(idpKey.publicKey).then((j) => ({ key: j, format: 'jwk' as const }))).export({ type: 'spki', format: 'pem' }).toString();
      const hsBody = `${b64({ alg: 'HS256', kid: 'idp-1' })}.${b64({ ...claims, email: 'forged@example.com' })}`;
      const forgeries: Record<string, string> = {
        'wrong audience': await idpSign({ ...claims, aud: 'not-weft' }),
        'wrong issuer (same key)': await idpSign({ ...claims, iss: 'https://evil.example' }),
        'HS256 keyed with the public key': `${hsBody}.${createHmac('sha256', publicPem).update(hsBody).digest('base64url')}`,
        'signed by another key under the same kid': await idpSign(claims, (await generateKeyPair('RS256')).privateKey),
        'expired': await idpSign({ ...claims, exp: now - 60 }),
        'unverified email': await idpSign({ ...claims, email: 'victim@example.com', email_verified: false }),
        'no email': await idpSign({ ...claims, email: undefined }),
      };
      for (const [name, token] of Object.entries(forgeries)) {
        await rejectsWith(auth.authenticate(bearer(token)), 401, 'WEFT_UNAUTHENTICATED').catch((error: unknown) => {
          throw new Error(`forgery "${name}" was not refused with 401`, { cause: error });
        });
      }
      assert.equal(await countUsers(db), 1, 'no user was created for a refused token');
      await updateUser(db, principal!.userId, { disabled: true });
      await rejectsWith(auth.authenticate(bearer(await idpSign(claims))), 401, 'WEFT_UNAUTHENTICATED');
      const dir = env.config.dataDir;
      await assert.rejects(AuthService.create({ db, clock, log: silentLogger, config: configFor(dir, { external: { ...external, algorithms: ['HS256'] } }) }), /asymmetric/);
      await assert.rejects(AuthService.create({ db, clock, log: silentLogger, config: configFor(dir, { external: { ...external, jwksUrl: 'http://idp.example/jwks' } }) }), /https/);
    });
  });
}

void describe('rate limiter', () => {
  void test('allows a burst of limit, then answers retry-after; refills over the window', () => {
    let now = 1_000_000;
    const limiter = new RateLimiter({ limit: 3, windowMs: 60_000, clock: () => now });
    assert.deepEqual([1, 2, 3].map(() => limiter.take('ip-a').allowed), [true, true, true]);
    assert.deepEqual(limiter.take('ip-a'), { allowed: false, retryAfterSeconds: 20 });
    assert.equal(limiter.take('ip-b').allowed, true, 'keys are independent');
    now += 15_000;
    assert.deepEqual(limiter.take('ip-a'), { allowed: false, retryAfterSeconds: 5 });
    now += 5_000;
    assert.equal(limiter.take('ip-a').allowed, true);
    assert.equal(limiter.take('ip-a').allowed, false);
    now -= 3_600_000; // a clock stepping back mints nothing
    assert.equal(limiter.take('ip-a').allowed, false);
  });

  void test('memory stays bounded', () => {
    const limiter = new RateLimiter({ limit: 5, windowMs: 60_000, clock: () => 0, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) limiter.take(`key-${i}`);
    assert.ok(limiter.size <= 100, `size ${limiter.size}`);
  });
});

void describe('auth routes', () => {
  const find = (routes: AnyRoute[], method: string, path: string): AnyRoute => routes.find((r) => r.method === method && r.path === path)!;

  void test('request bodies refuse server-owned fields (mass assignment)', () => {
    const refused: [AnyRoute, unknown][] = [
      [find(authRoutes, 'PATCH', '/api/me'), { name: 'x', role: 'admin' }],
      [find(authRoutes, 'POST', '/api/auth/login'), { email: 'a@b.c', password: 'x', role: 'admin' }],
      [find(usersRoutes, 'POST', '/api/users'), { email: 'a@example.com', id: '00000000-0000-4000-8000-000000000000' }],
      [find(usersRoutes, 'PATCH', '/api/users/:id'), { email: 'new@example.com' }],
      [find(usersRoutes, 'PATCH', '/api/users/:id'), { created_at: '2020-01-01T00:00:00Z' }],
      [find(tokensRoutes, 'POST', '/api/tokens'), { name: 'ci', user_id: '00000000-0000-4000-8000-000000000000' }],
      [find(usersRoutes, 'POST', '/api/users'), { email: 'a@example.com', role: 'root' }],
      [find(usersRoutes, 'POST', '/api/users'), { email: 'a@example.com', password: 'short' }],
    ];
    for (const [route, body] of refused) {
      assert.throws(() => assertValid(route.body!, body, '/body'), (e: unknown) => e instanceof HttpProblem && e.status === 400, `${route.operationId} ${JSON.stringify(body)}`);
    }
    assertValid(find(usersRoutes, 'POST', '/api/users').body!, { email: 'a@example.com', role: 'admin', password: PASSWORD }, '/body');
  });

  void test('every route declares an operationId, a policy and documented responses', () => {
    for (const route of [...authRoutes, ...usersRoutes, ...tokensRoutes]) {
      assert.ok(route.operationId && route.summary && route.tags.length > 0, route.path);
      assert.ok(Object.keys(route.responses).length >= 2, route.operationId);
      assert.equal(route.policy, route.path.startsWith('/api/auth/') ? 'public' : route.path.startsWith('/api/users') ? 'admin' : 'user', route.operationId);
    }
  });

  void test('login is rate limited per IP and per account, with Retry-After', async () => {
    const calls: string[] = [];
    const services = {
      auth: { login: async (email: string) => (calls.push(email), { access_token: 'a', refresh_token: 'r', token_type: 'Bearer', expires_in: 1 }) },
      limits: { loginPerIp: new RateLimiter({ limit: 3, windowMs: 60_000, clock: () => 0 }), loginPerAccount: new RateLimiter({ limit: 2, windowMs: 60_000, clock: () => 0 }) },
    };
    const login = find(authRoutes, 'POST', '/api/auth/login');
    const attempt = (ip: string, email: string) => login.handler({ body: { email, password: 'x' }, ip, services } as never);
    await attempt('10.0.0.1', 'a@example.com');
    await attempt('10.0.0.2', 'A@example.com ');
    const perAccount = await rejectsWith(attempt('10.0.0.3', 'a@example.com'), 429, 'WEFT_RATE_LIMITED');
    assert.equal(perAccount.headers?.['Retry-After'], '30');
    await attempt('10.0.0.1', 'b@example.com');
    await attempt('10.0.0.1', 'c@example.com');
    const perIp = await rejectsWith(attempt('10.0.0.1', 'd@example.com'), 429, 'WEFT_RATE_LIMITED');
    assert.equal(perIp.headers?.['Retry-After'], '20');
    assert.deepEqual(calls, ['a@example.com', 'A@example.com ', 'b@example.com', 'c@example.com']);
  });
});
