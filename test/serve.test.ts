/**
 * `weft serve` as a child process on a fresh embedded database: first start creates the first
 * admin from the environment, or prints a one-time setup link that works exactly once; the
 * server answers, and SIGTERM stops it cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftProcess, until } from './helpers/processes.ts';
import { login, request } from './helpers/api.ts';

async function startServe(t: { after: (fn: () => Promise<void>) => void }, env: Record<string, string | undefined>): Promise<{ proc: WeftProcess; url: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-serve-'));
  const proc = new WeftProcess('serve', ['serve', '--port', '0', '--data', dir], { DATABASE_URL: undefined, PORT: undefined, ...env });
  t.after(async () => {
    if (proc.alive) proc.child.kill('SIGKILL');
    await proc.exited;
    await rm(dir, { recursive: true, force: true });
  });
  const url = await until(async () => /weft is serving (http:\/\/\S+)\/api/.exec(proc.stdout)?.[1] ?? (proc.alive ? undefined : 'exited'), 60_000, 'the serving line');
  assert.notEqual(url, 'exited', proc.stderr);
  return { proc, url };
}

void test('weft serve: first admin from WEFT_ADMIN_EMAIL/PASSWORD, API answers, SIGTERM exits 0', async (t) => {
  const { proc, url } = await startServe(t, { WEFT_ADMIN_EMAIL: 'boss@example.test', WEFT_ADMIN_PASSWORD: 'boss-password-123' });
  assert.match(proc.stdout, /created the first admin: boss@example.test/);
  assert.doesNotMatch(proc.stdout + proc.stderr, /boss-password-123/, 'the password is never printed');
  const health = await request(url, 'GET', '/api/health');
  assert.deepEqual(health.body, { status: 'ready', database: true, workers: true });
  const token = await login(url, 'boss@example.test', 'boss-password-123');
  const me = await request(url, 'GET', '/api/me', { token });
  assert.equal(me.body.role, 'admin');
  proc.child.kill('SIGTERM');
  const exit = await proc.exited;
  assert.equal(exit.code, 0, proc.stderr);
});

void test('weft serve: without admin settings it prints a one-time setup link that works once', async (t) => {
  const { proc, url } = await startServe(t, { WEFT_ADMIN_EMAIL: undefined, WEFT_ADMIN_PASSWORD: undefined });
  const link = /(http:\/\/127\.0\.0\.1:[1-9]\d*\/setup\?token=(\S+))/.exec(proc.stdout);
  assert.ok(link, proc.stdout);
  const token = decodeURIComponent(link[2]!);
  const page = await request(url, 'GET', `/setup?token=${encodeURIComponent(token)}`);
  assert.equal(page.status, 200);
  assert.match(page.text, /Create the first admin/);
  assert.equal((await request(url, 'POST', '/api/auth/setup', { body: { token: token + 'x', email: 'first@example.test', password: 'first-password-1' } })).status, 403);
  const done = await request(url, 'POST', '/api/auth/setup', { body: { token, email: 'first@example.test', password: 'first-password-1' } });
  assert.equal(done.status, 201, done.text);
  assert.equal(done.body.user.role, 'admin');
  const again = await request(url, 'POST', '/api/auth/setup', { body: { token, email: 'second@example.test', password: 'second-password-1' } });
  assert.equal(again.status, 409);
  await login(url, 'first@example.test', 'first-password-1');
  proc.child.kill('SIGTERM');
  assert.equal((await proc.exited).code, 0);
});
