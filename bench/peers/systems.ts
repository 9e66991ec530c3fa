/**
 * The systems `bench/peers/run.ts` compares, each behind the same small interface: set up,
 * run one workflow of 3 sequential trivial steps to completion, tear down. Every system
 * records each step durably before the next one starts, with its default durability settings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DBOS } from '@dbos-inc/dbos-sdk';
import * as restate from '@restatedev/restate-sdk';
import pg from 'pg';
import { Engine } from '../../src/engine/engine.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPg } from '../../src/store/pg-db.ts';
import { adminExec, freePort, sleep, urlWithDatabase } from '../common.ts';

export interface PeerSystem {
  readonly name: string;
  /** Version and where it keeps its state, filled in by setup. */
  description: string;
  setup(): Promise<void>;
  /** Starts one 3-step workflow and resolves when its result is durable and returned. */
  runOnce(): Promise<void>;
  teardown(): Promise<void>;
}

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/** An installed package's version, read from its folder (not every package exports ./package.json). */
function versionOf(pkg: string): string {
  return (JSON.parse(readFileSync(join(here, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}

// ---------------------------------------------------------------- weft

/** weft in this process: an Engine with its worker, on a schema of the local PostgreSQL. */
export class WeftSystem implements PeerSystem {
  readonly name = 'weft';
  description = '';
  private db: Db | undefined;
  private engine: Engine | undefined;
  private versionId = '';
  private readonly schema = 'weft_bench_peers';

  constructor(private readonly pgUrl: string) {}

  async setup(): Promise<void> {
    await adminExec(this.pgUrl, `DROP SCHEMA IF EXISTS ${this.schema} CASCADE`, `CREATE SCHEMA ${this.schema}`);
    // The same engine settings as bench/run.ts on PostgreSQL.
    this.db = await openPg({ connectionString: this.pgUrl, schema: this.schema, max: 20 });
    await migrate(this.db);
    this.engine = new Engine({ db: this.db, worker: { concurrency: 16, pollMs: 1000, heartbeatMs: 10_000, leaseMs: 30_000, sweepMs: 10_000 } });
    await this.engine.start();
    const noop = { type: 'transform', expr: '1' };
    const { versionId } = await this.engine.registerWorkflow({
      name: 'bench peers 3 sequential', steps: { a: noop, b: { ...noop, needs: ['a'] }, c: { ...noop, needs: ['b'] } },
    });
    this.versionId = versionId;
    const weftVersion = (JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
    this.description = `weft ${weftVersion} in process, PostgreSQL schema ${this.schema}, worker concurrency 16, pool 20`;
  }

  async runOnce(): Promise<void> {
    const runId = await this.engine!.startRun({ versionId: this.versionId });
    const status = await this.engine!.waitForRun(runId, 120_000);
    if (status !== 'succeeded') throw new Error(`weft run ${runId} ended ${status}`);
  }

  async teardown(): Promise<void> {
    await this.engine?.stop();
    await this.db?.close();
    await adminExec(this.pgUrl, `DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }
}

// ---------------------------------------------------------------- DBOS Transact

const dbosStep = async (): Promise<number> => 1;

/** A DBOS workflow of 3 steps (`DBOS.runStep`); registered at load, as DBOS requires before launch. */
const dbosWorkflow = DBOS.registerWorkflow(async (): Promise<number> => {
  await DBOS.runStep(dbosStep, { name: 'a' });
  await DBOS.runStep(dbosStep, { name: 'b' });
  return DBOS.runStep(dbosStep, { name: 'c' });
}, { name: 'benchThreeSteps' });

/** DBOS Transact in this process; its system database is a database of its own, dropped afterwards. */
export class DbosSystem implements PeerSystem {
  readonly name = 'DBOS Transact';
  description = '';
  private readonly database = 'weft_bench_dbos';

  constructor(private readonly pgUrl: string) {}

  async setup(): Promise<void> {
    await adminExec(this.pgUrl, `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`, `CREATE DATABASE ${this.database}`);
    // Pool 20, like weft's engine here; logs at warn so that logging costs neither side time.
    DBOS.setConfig({
      name: 'weft-bench-peers',
      applicationVersion: '0.1.0',
      systemDatabaseUrl: urlWithDatabase(this.pgUrl, this.database),
      systemDatabasePoolSize: 20,
      logLevel: 'warn',
    });
    await DBOS.launch();
    this.description = `@dbos-inc/dbos-sdk ${versionOf('@dbos-inc/dbos-sdk')} in process, PostgreSQL database ${this.database}, pool 20`;
  }

  async runOnce(): Promise<void> {
    if ((await dbosWorkflow()) !== 1) throw new Error('DBOS workflow returned an unexpected result');
  }

  async teardown(): Promise<void> {
    await DBOS.shutdown();
    // DBOS retires its LISTEN connection after shutdown resolves; dropping the database under it
    // makes DBOS log a pool error, so give it a moment (FORCE still ends any straggler).
    await waitForNoSessions(this.pgUrl, this.database, 5_000);
    await adminExec(this.pgUrl, `DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
  }
}

async function waitForNoSessions(pgUrl: string, database: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [database]);
      if (rows[0]!.n === 0) return;
      await sleep(50);
    }
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------- Restate

/**
 * Why the SDK is pinned to 1.12.0: the later releases checked (1.14.5, 1.15.1, 1.16.9, 1.17.2)
 * call Promise.withResolvers, which Node 20 lacks (it came with Node 22); with 1.17.2 every
 * invocation fails with "Promise.withResolvers is not a function" and Restate keeps retrying it,
 * so the ingress call never answers. 1.12.0 is the newest release without it.
 */
const RESTATE_SDK_NOTE = 'SDK pinned: 1.14.5+ needs Node 22 for Promise.withResolvers';

const restateService = restate.service({
  name: 'bench',
  handlers: {
    run: async (ctx: restate.Context): Promise<number> => {
      await ctx.run('a', () => 1);
      await ctx.run('b', () => 1);
      return ctx.run('c', () => 1);
    },
  },
});

/** The server binary that @restatedev/restate-server ships in its per-platform npm package. */
function restateServerBinary(): string {
  return require.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`);
}

/**
 * restate-server (its own process, state in RocksDB under a temporary folder, not PostgreSQL)
 * with the service endpoint served from this process over HTTP/2; invoked through its ingress.
 * Everything listens on 127.0.0.1 only, and the server's telemetry is off.
 */
export class RestateSystem implements PeerSystem {
  readonly name = 'Restate';
  description = '';
  private server: ChildProcess | undefined;
  private endpoint: Http2Server | undefined;
  private dir = '';
  private ingress = '';
  private readonly log: string[] = [];

  async setup(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'weft-bench-restate-'));
    const [ingressPort, adminPort, fabricPort, endpointPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    this.ingress = `http://127.0.0.1:${ingressPort}`;
    const admin = `http://127.0.0.1:${adminPort}`;
    this.server = spawn(restateServerBinary(), ['--no-logo', '--base-dir', join(this.dir, 'data'), '--node-name', 'bench'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        RESTATE_DISABLE_TELEMETRY: 'true',
        RESTATE_LISTEN_MODE: 'tcp',
        RESTATE_BIND_IP: '127.0.0.1',
        RESTATE_BIND_PORT: String(fabricPort),
        RESTATE_INGRESS__BIND_PORT: String(ingressPort),
        RESTATE_ADMIN__BIND_PORT: String(adminPort),
        RESTATE_LOG_FILTER: 'warn',
        RESTATE_LOG_DISABLE_ANSI_CODES: 'true',
      },
    });
    for (const stream of [this.server.stdout!, this.server.stderr!]) {
      stream.setEncoding('utf8').on('data', (chunk: string) => {
        this.log.push(...chunk.split('\n').filter(Boolean));
        this.log.splice(0, Math.max(0, this.log.length - 30));
      });
    }
    this.endpoint = createHttp2Server(restate.createEndpointHandler({ services: [restateService] }));
    await new Promise<void>((resolve) => this.endpoint!.listen(endpointPort, '127.0.0.1', () => resolve()));

    await this.waitFor(`${admin}/health`);
    await this.waitFor(`${this.ingress}/restate/health`);
    const registered = await fetch(`${admin}/deployments`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uri: `http://127.0.0.1:${endpointPort}` }),
    });
    if (!registered.ok) throw new Error(`registering the deployment failed: ${registered.status} ${await registered.text()}`);
    await this.waitUntilInvocable();
    this.description = `restate-server ${versionOf('@restatedev/restate-server')} (own process, state in RocksDB under ${this.dir}, its defaults: WAL fsync on) + ` +
      `@restatedev/restate-sdk ${versionOf('@restatedev/restate-sdk')} endpoint in process over HTTP/2 (${RESTATE_SDK_NOTE})`;
  }

  /** The ingress answers when the invocation has completed; a stuck one fails after a minute, not undici's five. */
  async runOnce(timeoutMs = 60_000): Promise<void> {
    const res = await fetch(`${this.ingress}/bench/run`, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    if (!res.ok || body !== '1') throw new Error(`Restate invocation answered ${res.status}: ${body}`);
  }

  async teardown(): Promise<void> {
    if (this.server && this.server.exitCode === null) {
      const exited = new Promise((resolve) => this.server!.once('exit', resolve));
      this.server.kill('SIGTERM');
      const timer = setTimeout(() => this.server?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await new Promise((resolve) => (this.endpoint ? this.endpoint.close(resolve) : resolve(undefined)));
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private async waitFor(url: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.server?.exitCode !== null) throw new Error(`restate-server exited with ${this.server?.exitCode}:\n${this.log.join('\n')}`);
      try {
        if ((await fetch(url)).ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${this.log.join('\n')}`);
  }

  /** A new deployment reaches the ingress a moment after the admin API accepts it. */
  private async waitUntilInvocable(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.runOnce(2_000);
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  }
}
