/**
 * The CLI as a user runs it: a child process, exit codes, outputs on stdout, problems with
 * their paths on stderr, on the embedded database and on PostgreSQL.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PG_URL, closeTemplates, emptyPostgresSchema } from './helpers/db.ts';

after(closeTemplates);

const BIN = new URL('../bin/weft.mjs', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;

function weft(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

void describe('weft CLI', () => {
  let dir = '';
  void test('setup', async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  void test('run: the blog example on the embedded database prints outputs and exits 0', async () => {
    const r = await weft(['run', 'examples/blog-article.yaml', '--input', 'topic=durable execution', '--data', dir]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['article', 'rewritten', 'score', 'image'], 'outputs in definition order');
    assert.match(String(out['article']), /^\[simulated\]/);
    assert.match(r.stderr, /outline step_started attempt=1/, 'a line per transition when not a TTY');
    assert.match(r.stderr, /run run_succeeded/);
    assert.match(r.stderr, /simulated/);
  });

  void test('run: inputs are coerced by the schema; --inputs reads a file', async () => {
    const file = join(dir, 'inputs.json');
    await writeFile(file, JSON.stringify({ n: 4 }));
    const a = await weft(['run', 'examples/diamond.yaml', '--input', 'n=10', '--data', dir, '--quiet']);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(JSON.parse(a.stdout), { result: { sum: 20, waited: 400 } });
    const b = await weft(['run', 'examples/diamond.yaml', '--inputs', file, '--data', dir, '--quiet']);
    assert.deepEqual(JSON.parse(b.stdout), { result: { sum: 8, waited: 400 } });
  });

  void test('run: bad inputs exit 2 with the path; a failed run exits 1', async () => {
    const bad = await weft(['run', 'examples/diamond.yaml', '--input', 'n=abc', '--data', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /\/n: .*integer/);
    const missing = await weft(['run', 'examples/blog-article.yaml', '--data', dir]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /\/topic: missing required property/);
    const failing = join(dir, 'failing.yaml');
    await writeFile(failing, 'name: failing\nsteps:\n  a: { type: agent, prompt: hi }\n');
    const f = await weft(['run', failing, '--data', dir]);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /run failed: WEFT_PROVIDER_MISSING/);
    assert.equal(f.stdout, '');
  });

  void test('run --detach enqueues and prints the id; status shows the waiting run', async () => {
    const data = join(dir, 'detach');
    const d = await weft(['run', 'examples/diamond.yaml', '--input', 'n=3', '--data', data, '--detach', '--quiet']);
    assert.equal(d.code, 0, d.stderr);
    const runId = d.stdout.trim();
    assert.match(runId, /^[0-9a-f-]{36}$/);
    const waiting = await weft(['status', runId, '--data', data]);
    assert.equal(waiting.code, 0, waiting.stderr);
    const view = JSON.parse(waiting.stdout) as { status: string; steps: { id: string; status: string }[] };
    assert.equal(view.status, 'running');
    assert.deepEqual(view.steps.find((s) => s.id === 'a')?.status, 'queued', 'nobody ran it: no worker in a detached run');
    const timedOut = await weft(['status', runId, '--wait', '--timeout-ms', '300', '--data', data]);
    assert.equal(timedOut.code, 2, 'no worker: --wait gives up after its timeout');
    assert.match(timedOut.stderr, /still running after 300 ms/);
    const missing = await weft(['status', '00000000-0000-0000-0000-000000000000', '--data', data]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /WEFT_NOT_FOUND/);
  });

  void test('validate: every problem with its location, exit 1; clean files exit 0 silently', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'name: bad\nsteps:\n  a: { type: agnet, prompt: hi }\n  b: { type: transform, needs: [c], expr: "$zz.x" }\n  c: { type: transform, needs: [b], expr: "1 +" }\n');
    const r = await weft(['validate', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\/steps\/a\/type: unknown step type 'agnet' \(did you mean 'agent'\?\)/);
    assert.match(r.stderr, /cycle: b → c → b/);
    assert.match(r.stderr, /\/steps\/b\/expr: .*\$zz/);
    assert.match(r.stderr, /\/steps\/c\/expr: syntax error/);
    for (const example of ['diamond.yaml', 'conditional-branch.yaml', 'retry-backoff.yaml', 'blog-article.yaml']) {
      const ok = await weft(['validate', `examples/${example}`]);
      assert.equal(ok.code, 0, `${example}: ${ok.stderr}`);
      assert.equal(ok.stderr, '');
    }
  });

  void test('validate: hostile files get a clear error, never a crash', async () => {
    const huge = join(dir, 'huge.yaml');
    await writeFile(huge, `name: huge\nsteps:\n  a: { type: transform, expr: "1" }\ndescription: "${'x'.repeat(5 * 1024 * 1024)}"\n`);
    const r1 = await weft(['validate', huge]);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /WEFT_TOO_LARGE/);
    const deep = join(dir, 'deep.json');
    await writeFile(deep, '{"name":"deep","steps":{"a":{"type":"transform","expr":"1","with":{"x":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}}}}');
    const r2 = await weft(['validate', deep]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /WEFT_TOO_LARGE/);
    const many = join(dir, 'many.json');
    const steps = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`s${i}`, { type: 'transform', expr: '1' }]));
    await writeFile(many, JSON.stringify({ name: 'many', steps }));
    const r3 = await weft(['validate', many]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /too many steps: 10000/);
    const malformed = join(dir, 'malformed.yaml');
    await writeFile(malformed, 'name: x\nsteps:\n  a: { type: transform, expr: "1"\n  b: [\n');
    const r4 = await weft(['validate', malformed]);
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /WEFT_PARSE/);
    assert.doesNotMatch(r1.stderr + r2.stderr + r3.stderr + r4.stderr, /at .*\.ts:\d+/, 'no stack traces');
  });

  void test('run and migrate on PostgreSQL with --db', async (t) => {
    const target = await emptyPostgresSchema(t, 'weft_cli');
    if (!target) return;
    const { schema, url } = target;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    t.after(async () => {
      await admin.end();
      await target.drop();
    });
    const m = await weft(['migrate', '--db', url]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /applied migrations 1/);
    const r = await weft(['run', 'examples/conditional-branch.yaml', '--input', 'amount=2500', '--quiet'], { DATABASE_URL: url });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { branch: 'large', decision: 'needs approval' });
    const { rows } = await admin.query(`SELECT status FROM ${schema}.runs`);
    assert.deepEqual(rows, [{ status: 'succeeded' }]);
  });
});

void describe('the retry example against its flaky endpoint', () => {
  void test('fails twice with 503, succeeds on the third attempt', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-retry-'));
    // Port 0: the server takes a free port and prints it (a random fixed port once hit RabbitMQ's 25672).
    const server = spawn(process.execPath, ['examples/flaky-server.mjs'], { cwd: ROOT, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(async () => {
      server.kill();
      await rm(dir, { recursive: true, force: true });
    });
    const line = await new Promise<string>((resolve) => server.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    const url = /http:\/\/127\.0\.0\.1:\d+\/flaky/.exec(line)?.[0];
    assert.ok(url, `the flaky server names its address: ${line}`);
    const blocked = await weft(['run', 'examples/retry-backoff.yaml', '--input', `url=${url}`, '--data', dir]);
    assert.equal(blocked.code, 1, 'loopback is refused by default');
    assert.match(blocked.stderr, /WEFT_HTTP_BLOCKED/);
    const r = await weft(['run', 'examples/retry-backoff.yaml', '--input', `url=${url}`, '--data', dir], { WEFT_ALLOW_PRIVATE_NETWORK: '1' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { result: { status: 200, attempts_seen_by_server: 3 } });
    assert.equal((r.stderr.match(/step_retry_scheduled/g) ?? []).length, 2);
  });
});
