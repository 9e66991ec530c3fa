/**
 * Aggregates for the dashboard: totals, status distribution, runs by workflow, agent and
 * council, duration percentiles, cost and tokens over time — over the runs the viewer may see,
 * created in [from, to).
 */
import type { Queryable } from './db.ts';
import type { Viewer } from './workflows.ts';

export interface MetricsWindow {
  from: Date;
  to: Date;
  bucket: 'hour' | 'day';
}

export interface RunMetrics {
  totals: { runs: number; steps: number; tokens_in: number; tokens_out: number; cost_usd: number; simulated_runs: number };
  status: Record<string, number>;
  by_workflow: { workflow_id: string; name: string; runs: number; succeeded: number; failed: number; cost_usd: number }[];
  by_agent: { agent: string; steps: number; tokens_in: number; tokens_out: number; cost_usd: number }[];
  by_council: { council: string; steps: number }[];
  duration_ms: { p50: number | null; p95: number | null; finished_runs: number };
  over_time: { bucket: Date; runs: number; tokens_in: number; tokens_out: number; cost_usd: number }[];
}

/** The viewer's runs in the window, as a CTE every aggregate reads. */
const SCOPE = `scoped AS (
  SELECT r.* FROM runs r
  WHERE ($1::boolean OR r.owner_id = $2) AND r.created_at >= $3 AND r.created_at < $4)`;

export async function runMetrics(q: Queryable, viewer: Viewer, w: MetricsWindow): Promise<RunMetrics> {
  const params = [viewer.admin, viewer.userId, w.from, w.to];
  const [totals, status, byWorkflow, byStep, durations, overTime] = await Promise.all([
    q.query<RunMetrics['totals']>(
      `WITH ${SCOPE} SELECT count(*)::int AS runs, COALESCE(sum(steps_total), 0)::int AS steps,
         COALESCE(sum(tokens_in), 0)::float8 AS tokens_in, COALESCE(sum(tokens_out), 0)::float8 AS tokens_out,
         COALESCE(sum(cost_usd), 0)::float8 AS cost_usd, count(*) FILTER (WHERE simulated)::int AS simulated_runs FROM scoped`,
      params,
    ),
    q.query<{ status: string; count: number }>(`WITH ${SCOPE} SELECT status, count(*)::int AS count FROM scoped GROUP BY status`, params),
    q.query<RunMetrics['by_workflow'][number]>(
      `WITH ${SCOPE} SELECT s.workflow_id, w.name, count(*)::int AS runs,
         count(*) FILTER (WHERE s.status = 'succeeded')::int AS succeeded, count(*) FILTER (WHERE s.status = 'failed')::int AS failed,
         COALESCE(sum(s.cost_usd), 0)::float8 AS cost_usd
       FROM scoped s JOIN workflows w ON w.id = s.workflow_id GROUP BY s.workflow_id, w.name ORDER BY runs DESC, w.name LIMIT 50`,
      params,
    ),
    q.query<{ agent: string | null; council: string | null; steps: number; tokens_in: number; tokens_out: number; cost_usd: number }>(
      `WITH ${SCOPE} SELECT v.definition->'steps'->sr.step_id->>'agent' AS agent, v.definition->'steps'->sr.step_id->>'council' AS council,
         count(*)::int AS steps, COALESCE(sum(sr.tokens_in), 0)::float8 AS tokens_in, COALESCE(sum(sr.tokens_out), 0)::float8 AS tokens_out,
         COALESCE(sum(sr.cost_usd), 0)::float8 AS cost_usd
       FROM scoped s JOIN step_runs sr ON sr.run_id = s.id JOIN workflow_versions v ON v.id = s.version_id
       WHERE sr.attempt > 0
       GROUP BY 1, 2`,
      params,
    ),
    q.query<{ p50: number | null; p95: number | null; finished_runs: number }>(
      `WITH ${SCOPE} SELECT
         percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000)::float8 AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000)::float8 AS p95,
         count(*)::int AS finished_runs
       FROM scoped WHERE finished_at IS NOT NULL`,
      params,
    ),
    q.query<RunMetrics['over_time'][number]>(
      `WITH ${SCOPE} SELECT date_trunc($5, created_at) AS bucket, count(*)::int AS runs,
         COALESCE(sum(tokens_in), 0)::float8 AS tokens_in, COALESCE(sum(tokens_out), 0)::float8 AS tokens_out,
         COALESCE(sum(cost_usd), 0)::float8 AS cost_usd
       FROM scoped GROUP BY 1 ORDER BY 1`,
      [...params, w.bucket],
    ),
  ]);
  return {
    totals: totals.rows[0]!,
    status: Object.fromEntries(status.rows.map((r) => [r.status, r.count])),
    by_workflow: byWorkflow.rows,
    by_agent: groupBy(byStep.rows, 'agent').map(({ key, steps, tokens_in, tokens_out, cost_usd }) => ({ agent: key, steps, tokens_in, tokens_out, cost_usd })),
    by_council: groupBy(byStep.rows, 'council').map(({ key, steps }) => ({ council: key, steps })),
    duration_ms: durations.rows[0] ?? { p50: null, p95: null, finished_runs: 0 },
    over_time: overTime.rows,
  };
}

function groupBy<K extends 'agent' | 'council'>(
  rows: ({ [k in K]: string | null } & { steps: number; tokens_in: number; tokens_out: number; cost_usd: number })[],
  key: K,
): { key: string; steps: number; tokens_in: number; tokens_out: number; cost_usd: number }[] {
  const out = new Map<string, { key: string; steps: number; tokens_in: number; tokens_out: number; cost_usd: number }>();
  for (const row of rows) {
    const k = row[key];
    if (k === null) continue;
    const g = out.get(k) ?? { key: k, steps: 0, tokens_in: 0, tokens_out: 0, cost_usd: 0 };
    g.steps += row.steps;
    g.tokens_in += row.tokens_in;
    g.tokens_out += row.tokens_out;
    g.cost_usd += row.cost_usd;
    out.set(k, g);
  }
  return [...out.values()].sort((a, b) => b.steps - a.steps || a.key.localeCompare(b.key));
}
