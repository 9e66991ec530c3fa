import { Engine } from '../engine/engine.ts';
import { startHealthServer } from '../engine/health-server.ts';
import { streamLogger } from '../engine/log.ts';
import { DEFAULT_WORKER_OPTIONS } from '../engine/worker.ts';
import { migrate } from '../store/migrate.ts';
import { openPg } from '../store/pg-db.ts';
import { parse, UsageError } from './args.ts';
import { followStoredSettings, type StoredSettings } from './stored-settings.ts';
import { stopSignal } from './stop-signal.ts';

const USAGE = `Usage: weft worker [--db URL] [--concurrency N] [--health-port P] [--drain-ms MS] [--lease-ms MS] [--data DIR]

Runs steps from the shared PostgreSQL (--db or DATABASE_URL) until SIGTERM/SIGINT, then stops
claiming, lets running steps finish within --drain-ms and hands the rest back. Stored
credentials and prices are loaded from the database and followed; credential keys open with
WEFT_SECRET_KEY or the server's DIR/secret.key (--data, default WEFT_DATA or ./.weft).`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer\n\n${USAGE}`);
  return n;
}

/** A worker process: workers only, any number of them on any number of machines. */
export async function workerCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    db: { type: 'string' },
    concurrency: { type: 'string' },
    'health-port': { type: 'string' },
    'drain-ms': { type: 'string' },
    'lease-ms': { type: 'string' },
    data: { type: 'string' },
  }, USAGE);
  if (positionals.length > 0) throw new UsageError(USAGE);
  const url = values.db ?? process.env['DATABASE_URL'];
  if (!url) {
    throw new UsageError(`weft worker needs PostgreSQL (--db URL or DATABASE_URL): the embedded database belongs to one process\n\n${USAGE}`);
  }
  const concurrency = positiveInt('concurrency', values.concurrency, DEFAULT_WORKER_OPTIONS.concurrency);
  const leaseMs = positiveInt('lease-ms', values['lease-ms'], DEFAULT_WORKER_OPTIONS.leaseMs);
  const worker = {
    concurrency,
    leaseMs,
    heartbeatMs: Math.max(50, Math.floor(leaseMs / 3)),
    sweepMs: Math.max(50, Math.floor(leaseMs / 6)),
    drainMs: positiveInt('drain-ms', values['drain-ms'], DEFAULT_WORKER_OPTIONS.drainMs),
  };
  const healthPort = values['health-port'] === undefined ? undefined : positiveInt('health-port', values['health-port'], 0);

  const log = streamLogger((line) => process.stderr.write(line));
  const db = await openPg({ connectionString: url, max: concurrency + 4 });
  const engine = new Engine({ db, log, worker });
  let settings: StoredSettings | undefined;
  const health = healthPort === undefined ? undefined : await startHealthServer(db, engine.worker!, healthPort);
  try {
    // Retried until the database answers: a worker started before PostgreSQL waits for it.
    for (let wait = 200; ; wait = Math.min(wait * 2, 5000)) {
      try {
        await migrate(db);
        break;
      } catch (error) {
        log.warn('database not ready; retrying', { error: (error as Error).message, retry_ms: wait });
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    settings = await followStoredSettings(db, log, values.data ?? process.env['WEFT_DATA'] ?? '.weft');
    // Before "worker started": see stopSignal.
    const signalled = stopSignal();
    await engine.start();
    log.info('worker started', { worker: engine.worker!.id, concurrency, lease_ms: leaseMs, db: db.description, health_port: healthPort });
    // The worker's own timers are unref'd and its sockets close while PostgreSQL is down: this
    // ref'd timer keeps the process alive until a signal (else Node would exit mid-outage).
    const keepAlive = setInterval(() => {}, 1 << 30);
    const signal = await signalled;
    clearInterval(keepAlive);
    log.info('stopping', { worker: engine.worker!.id, signal, in_flight: engine.worker!.inFlight });
    await engine.stop();
    log.info('stopped', { worker: engine.worker!.id });
    return 0;
  } finally {
    await settings?.stop();
    await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
    await db.close();
  }
}
