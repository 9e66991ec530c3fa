/**
 * A throwaway PostgreSQL cluster the test owns (so it can stop and restart it): `initdb` into
 * a temp folder, `pg_ctl start` on a free port of 127.0.0.1 with trust auth, torn down (stop
 * -m immediate, folder removed) in `t.after` and, as a last resort, when the test process
 * exits or is killed by SIGINT/SIGTERM/SIGHUP (see `atProcessEnd`).
 *
 * PostgreSQL refuses to run as root: when the tests run as root, every server binary runs as
 * the `postgres` user through `runuser` and the folder is chowned to it.
 *
 * The binaries are looked up in WEFT_TEST_PG_BIN, then /usr/lib/postgresql/<newest>/bin, then
 * `pg_config --bindir`. Missing binaries skip the test locally and fail it in CI (CI=true).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { atProcessEnd } from './processes.ts';

export interface PgCluster {
  readonly port: number;
  /** Connection string for database `postgres` as user `postgres` over TCP. */
  readonly url: string;
  readonly dir: string;
  /** `pg_ctl stop -m MODE` (waits until it is down). */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl start` on the same port (waits until it accepts connections). */
  start(): Promise<void>;
  /** Stops the server and removes its folder; safe to call twice. */
  destroy(): Promise<void>;
  /** The server log so far (for failure messages). */
  log(): Promise<string>;
}

function hasTools(dir: string): boolean {
  return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'));
}

/** The folder holding initdb and pg_ctl, or undefined. */
export function findPgBin(): string | undefined {
  const fromEnv = process.env['WEFT_TEST_PG_BIN'];
  if (fromEnv) return hasTools(fromEnv) ? fromEnv : undefined;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (hasTools(join(base, v, 'bin'))) return join(base, v, 'bin');
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dir && hasTools(dir)) return dir;
  } catch {
    // no pg_config on PATH
  }
  return undefined;
}

interface RunAs {
  /** Prefix for every server command: [] or ['runuser', '-u', 'postgres', '--']. */
  prefix: string[];
  uid: number | undefined;
  gid: number | undefined;
}

/** How to run the server binaries: directly, or as `postgres` when we are root. */
function runAs(): RunAs | string {
  if (process.getuid?.() !== 0) return { prefix: [], uid: undefined, gid: undefined };
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p));
    if (!runuser) return 'running as root and runuser is not installed (PostgreSQL refuses to run as root)';
    return { prefix: [runuser, '-u', 'postgres', '--'], uid, gid };
  } catch {
    return 'running as root and there is no `postgres` user to run the server as';
  }
}

function run(argv: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { cwd, timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${argv.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 55432 + Math.floor(Math.random() * 5000);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found in 55432..60431');
}

/**
 * Starts a fresh cluster and registers its teardown in `t.after`. Returns undefined when the
 * test was skipped (tools missing locally); throws in CI.
 */
export async function startPgCluster(t: TestContext): Promise<PgCluster | undefined> {
  const bin = findPgBin();
  const how = runAs();
  const problem = !bin ? 'initdb/pg_ctl not found (set WEFT_TEST_PG_BIN, or install postgresql)' : typeof how === 'string' ? how : undefined;
  if (problem) {
    if (process.env['CI']) throw new Error(`a throwaway PostgreSQL cluster is required in CI: ${problem}`);
    t.skip(problem);
    return undefined;
  }
  const as = how as RunAs;
  const dir = await mkdtemp(join(tmpdir(), 'weft-pg-'));
  if (as.uid !== undefined) await chown(dir, as.uid, as.gid!);
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const pgCtl = join(bin!, 'pg_ctl');
  let port = 0;
  let destroyed = false;

  // If the test process dies before t.after runs: stop the server, remove the folder.
  const forget = atProcessEnd(() => {
    const argv = [...as.prefix, pgCtl, '-D', data, '-m', 'immediate', '-w', 'stop'];
    spawnSync(argv[0]!, argv.slice(1), { cwd: dir, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });

  const cluster: PgCluster = {
    get port() {
      return port;
    },
    get url() {
      return `postgres://postgres@127.0.0.1:${port}/postgres`;
    },
    dir,
    async stop(mode = 'fast') {
      await run([...as.prefix, pgCtl, '-D', data, '-m', mode, '-w', '-t', '60', 'stop'], dir);
    },
    async start() {
      const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
      await run([...as.prefix, pgCtl, '-D', data, '-l', logFile, '-w', '-t', '60', '-o', opts, 'start'], dir);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      forget();
      try {
        await run([...as.prefix, pgCtl, '-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], dir);
      } catch {
        // not running (or never started)
      }
      rmSync(dir, { recursive: true, force: true });
    },
    async log() {
      return readFile(logFile, 'utf8').catch(() => '');
    },
  };
  t.after(() => cluster.destroy());

  await run([...as.prefix, join(bin!, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], dir);
  // A port found free can be taken before the server binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await cluster.start();
      break;
    } catch (error) {
      if (attempt >= 3) throw new Error(`${(error as Error).message}\nserver log:\n${await cluster.log()}`);
    }
  }
  return cluster;
}
