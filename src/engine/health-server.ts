/**
 * `--health-port`: liveness (`/livez`: the process answers), readiness (`/readyz`: the
 * database answers within 2 s and the worker is not stopping) and Prometheus metrics
 * (`/metrics`). Bound to 127.0.0.1 unless told otherwise; it exposes no run data.
 */
import { createServer, type Server } from 'node:http';
import type { Db } from '../store/db.ts';
import type { Worker } from './worker.ts';

export async function startHealthServer(db: Db, worker: Worker, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, JSON.stringify({ error: 'method not allowed' }));
    switch (req.url) {
      case '/livez':
        return reply(200, JSON.stringify({ status: 'ok', worker: worker.id }));
      case '/readyz':
        void databaseAnswers(db).then((ok) =>
          reply(ok && !worker.isStopping ? 200 : 503, JSON.stringify({ status: ok && !worker.isStopping ? 'ready' : 'not ready', database: ok, stopping: worker.isStopping })));
        return;
      case '/metrics':
        void queueDepth(db).then((depth) => reply(200, worker.metrics.render({ queueDepth: depth, inFlight: worker.inFlight, concurrency: worker.options.concurrency }), 'text/plain; version=0.0.4'));
        return;
      default:
        return reply(404, JSON.stringify({ error: 'not found' }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export async function databaseAnswers(db: Db): Promise<boolean> {
  const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000).unref());
  return Promise.race([db.query('SELECT 1').then(() => true, () => false), timeout]);
}

export async function queueDepth(db: Db): Promise<number | undefined> {
  try {
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM step_runs WHERE status = 'queued' AND available_at <= now()`);
    return rows[0]?.n;
  } catch {
    return undefined;
  }
}
