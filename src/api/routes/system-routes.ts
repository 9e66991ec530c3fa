/** Health, Prometheus metrics, dashboard metrics. */
import { Type } from '@sinclair/typebox';
import { databaseAnswers, queueDepth } from '../../engine/health-server.ts';
import { runMetrics } from '../../store/metrics-queries.ts';
import { HttpProblem } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { Nullable, Timestamp } from '../schemas.ts';
import { errors, viewerOf } from './common.ts';

const DAY_MS = 24 * 3600 * 1000;

const Count = Type.Number();
const MetricsSchema = Type.Object({
  window: Type.Object({ from: Timestamp, to: Timestamp, bucket: Type.String() }),
  totals: Type.Object({ runs: Count, steps: Count, tokens_in: Count, tokens_out: Count, cost_usd: Count, simulated_runs: Count }),
  status: Type.Record(Type.String(), Type.Integer()),
  by_workflow: Type.Array(Type.Object({ workflow_id: Type.String(), name: Type.String(), runs: Count, succeeded: Count, failed: Count, cost_usd: Count })),
  by_agent: Type.Array(Type.Object({ agent: Type.String(), steps: Count, tokens_in: Count, tokens_out: Count, cost_usd: Count })),
  by_council: Type.Array(Type.Object({ council: Type.String(), steps: Count })),
  duration_ms: Type.Object({ p50: Nullable(Type.Number()), p95: Nullable(Type.Number()), finished_runs: Count }),
  over_time: Type.Array(Type.Object({ bucket: Timestamp, runs: Count, tokens_in: Count, tokens_out: Count, cost_usd: Count })),
});

export const systemRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/health', policy: 'public', operationId: 'getHealth', tags: ['system'],
    summary: 'Readiness: the process answers and the database answers within 2 s (503 otherwise)',
    responses: {
      200: { description: 'Ready', schema: Type.Object({ status: Type.String(), database: Type.Boolean(), workers: Type.Boolean() }) },
      503: { description: 'Not ready', schema: Type.Object({ status: Type.String(), database: Type.Boolean(), workers: Type.Boolean() }) },
    },
    handler: async (ctx) => {
      const database = await databaseAnswers(ctx.services.db);
      const worker = ctx.services.engine.worker;
      const workers = worker === undefined || !worker.isStopping;
      const ready = database && workers;
      return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not ready', database, workers } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/health/live', policy: 'public', operationId: 'getLiveness', tags: ['system'],
    summary: 'Liveness: the process answers',
    responses: { 200: { description: 'Alive', schema: Type.Object({ status: Type.String() }) } },
    handler: () => Promise.resolve({ body: { status: 'ok' } }),
  }),
  defineRoute({
    method: 'GET', path: '/metrics', policy: 'public', operationId: 'getPrometheusMetrics', tags: ['system'],
    summary: "Prometheus metrics of this process's workers (counters and histograms; no run data)",
    responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain', schema: Type.String() } },
    handler: async (ctx) => {
      const worker = ctx.services.engine.worker;
      const depth = await queueDepth(ctx.services.db);
      const text = worker
        ? worker.metrics.render({ queueDepth: depth, inFlight: worker.inFlight, concurrency: worker.options.concurrency })
        : `# HELP weft_queue_depth Steps queued and due, all workers.\n# TYPE weft_queue_depth gauge\nweft_queue_depth ${depth ?? 0}\n`;
      ctx.res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Cache-Control': 'no-store' });
      ctx.res.end(text);
      return { stream: true };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/metrics', policy: 'user', operationId: 'getMetrics', tags: ['metrics'],
    summary: 'Totals, status distribution, runs by workflow/agent/council, duration p50/p95, cost and tokens over time (your runs; admins: all)',
    query: Type.Object({
      from: Type.Optional(Timestamp),
      to: Type.Optional(Timestamp),
      bucket: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')])),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'Metrics', schema: MetricsSchema }, ...errors(400, 401) },
    handler: async (ctx) => {
      const to = ctx.query.to ? new Date(ctx.query.to) : new Date(ctx.services.clock.now() + 60_000);
      const from = ctx.query.from ? new Date(ctx.query.from) : new Date(to.getTime() - 30 * DAY_MS);
      if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to) {
        throw new HttpProblem(400, 'WEFT_VALIDATION', 'from must be a date before to', [{ path: '/query/from', message: 'must be before to' }]);
      }
      const bucket = ctx.query.bucket ?? (to.getTime() - from.getTime() <= 2 * DAY_MS ? 'hour' : 'day');
      const metrics = await runMetrics(ctx.services.db, viewerOf(ctx), { from, to, bucket });
      return { body: { window: { from, to, bucket }, ...metrics } };
    },
  }),
];
