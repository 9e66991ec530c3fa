/**
 * `weft serve`: the API (and, later, the UI) with the engine's workers in one process, on the
 * embedded database in --data (default ./.weft) or on PostgreSQL (--db or DATABASE_URL).
 */
import { loadApiConfig } from '../api/config.ts';
import { startApiServer } from '../api/server.ts';
import { Engine } from '../engine/engine.ts';
import { streamLogger } from '../engine/log.ts';
import { DEFAULT_WORKER_OPTIONS } from '../engine/worker.ts';
import { migrate } from '../store/migrate.ts';
import { openDatabase } from '../store/open-db.ts';
import { parse, UsageError } from './args.ts';
import { stopSignal } from './stop-signal.ts';

const USAGE = `Usage: weft serve [--port N] [--host H] [--data DIR | --db URL] [--concurrency N] [--workers 0]

Serves the API on http://HOST:PORT/api (default 127.0.0.1:8080, or PORT), docs at /api/docs.
First start on an empty database creates the first admin from WEFT_ADMIN_EMAIL and
WEFT_ADMIN_PASSWORD, or prints a one-time setup link.`;

export async function serveCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    db: { type: 'string' },
    concurrency: { type: 'string' },
    workers: { type: 'string' },
  }, USAGE);
  if (positionals.length > 0) throw new UsageError(USAGE);
  const port = Number(values.port ?? process.env['PORT'] ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number\n\n${USAGE}`);
  const concurrency = Number(values.concurrency ?? DEFAULT_WORKER_OPTIONS.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency must be a positive integer\n\n${USAGE}`);
  if (values.workers !== undefined && values.workers !== '0' && values.workers !== '1') throw new UsageError(`--workers takes 0 (API only) or 1\n\n${USAGE}`);
  const host = values.host ?? process.env['HOST'] ?? '127.0.0.1';
  const dataDir = values.data ?? process.env['WEFT_DATA'] ?? '.weft';
  const url = values.db ?? process.env['DATABASE_URL'];

  const log = streamLogger((line) => process.stderr.write(line));
  const config = loadApiConfig(process.env, { dataDir });
  const db = await openDatabase({ url, dataDir });
  try {
    await migrate(db);
    const engine = new Engine({ db, log, worker: values.workers === '0' ? false : { ...DEFAULT_WORKER_OPTIONS, concurrency } });
    // Before the "serving" line: see stopSignal.
    const signalled = stopSignal();
    await engine.start();
    const api = await startApiServer({ db, engine, config, log, host, port });
    process.stdout.write(`weft is serving ${api.url}/api  (docs: ${api.url}/api/docs, database: ${db.description})\n`);
    if (api.setup.createdAdmin) process.stdout.write(`created the first admin: ${api.setup.createdAdmin}\n`);
    if (api.setup.setupUrl) {
      process.stdout.write(`no users yet: create the first admin once with POST ${api.url}/api/auth/setup, token in this one-time link:\n  ${api.setup.setupUrl}\n`);
    }
    const signal = await signalled;
    log.info('stopping', { signal });
    await api.close();
    await engine.stop();
    return 0;
  } finally {
    await db.close();
  }
}
