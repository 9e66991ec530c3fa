/**
 * The API's read side for runs: lists with filters, one run with its steps, always scoped by
 * the viewer (owners see their runs, admins every run). Not on the hot path.
 */
import type { Queryable } from './db.ts';
import type { Viewer } from './workflows.ts';

export interface RunSummary {
  id: string;
  workflow_id: string;
  workflow_name: string;
  version_id: string;
  version: number;
  owner_id: string;
  status: string;
  mode: string;
  steps_total: number;
  steps_done: number;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
  budget_usd: number | null;
  provider: string | null;
  simulated: boolean;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  duration_ms: number | null;
}

export interface RunFilter {
  status?: string[] | undefined;
  workflowId?: string | undefined;
  agent?: string | undefined;
  council?: string | undefined;
  creator?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  sort: 'created_at' | 'finished_at' | 'duration_ms' | 'cost_usd';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

const SUMMARY_COLUMNS = `r.id, r.workflow_id, w.name AS workflow_name, r.version_id, v.version, r.owner_id, r.status, r.mode,
  r.steps_total,
  (SELECT count(*)::int FROM step_runs s WHERE s.run_id = r.id AND s.status IN ('succeeded', 'failed', 'skipped', 'cancelled')) AS steps_done,
  r.tokens_in::int AS tokens_in, r.tokens_out::int AS tokens_out, r.cost_usd::float8 AS cost_usd, r.budget_usd::float8 AS budget_usd, r.provider, r.simulated,
  r.created_at, r.updated_at, r.finished_at,
  CASE WHEN r.finished_at IS NULL THEN NULL ELSE (extract(epoch FROM r.finished_at - r.created_at) * 1000)::int END AS duration_ms`;

const SORTS: Record<RunFilter['sort'], string> = {
  created_at: 'r.created_at',
  finished_at: 'r.finished_at',
  duration_ms: '(r.finished_at - r.created_at)',
  cost_usd: 'r.cost_usd',
};

/**
 * Runs the viewer may see. `agent` and `council` match runs whose pinned definition has a
 * step naming that agent or council.
 */
export async function listRunSummaries(q: Queryable, viewer: Viewer, f: RunFilter): Promise<{ items: RunSummary[]; total: number }> {
  const { rows } = await q.query<RunSummary & { total: number }>(
    `SELECT ${SUMMARY_COLUMNS}, count(*) OVER ()::int AS total
     FROM runs r JOIN workflows w ON w.id = r.workflow_id JOIN workflow_versions v ON v.id = r.version_id
     WHERE ($1::boolean OR r.owner_id = $2)
       AND ($3::text[] IS NULL OR r.status = ANY($3::text[]))
       AND ($4::uuid IS NULL OR r.workflow_id = $4)
       AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_each(v.definition->'steps') s WHERE s.value->>'agent' = $5))
       AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM jsonb_each(v.definition->'steps') s WHERE s.value->>'council' = $6))
       AND ($7::text IS NULL OR r.owner_id = $7)
       AND ($8::timestamptz IS NULL OR r.created_at >= $8)
       AND ($9::timestamptz IS NULL OR r.created_at < $9)
     ORDER BY ${SORTS[f.sort]} ${f.order === 'asc' ? 'ASC' : 'DESC'} NULLS LAST, r.id
     LIMIT $10 OFFSET $11`,
    [viewer.admin, viewer.userId, f.status ?? null, f.workflowId ?? null, f.agent ?? null, f.council ?? null, f.creator ?? null,
      f.from ?? null, f.to ?? null, f.limit, f.offset],
  );
  let total = rows[0]?.total ?? 0;
  if (rows.length === 0 && f.offset > 0) total = (await listRunSummaries(q, viewer, { ...f, offset: 0, limit: 1 })).total;
  return { items: rows.map(({ total: _t, ...r }) => r), total };
}

export interface RunDetailRow extends RunSummary {
  inputs: unknown;
  outputs: unknown;
  error: unknown;
  idempotency_key: string | null;
}

export async function getRunDetail(q: Queryable, viewer: Viewer, runId: string): Promise<RunDetailRow | undefined> {
  const { rows } = await q.query<RunDetailRow>(
    `SELECT ${SUMMARY_COLUMNS}, r.inputs, r.outputs, r.error, r.idempotency_key
     FROM runs r JOIN workflows w ON w.id = r.workflow_id JOIN workflow_versions v ON v.id = r.version_id
     WHERE r.id = $1 AND ($2::boolean OR r.owner_id = $3)`,
    [runId, viewer.admin, viewer.userId],
  );
  return rows[0];
}

/** True when the run exists and the viewer may see it (the API answers 404 otherwise). */
export async function canViewRun(q: Queryable, viewer: Viewer, runId: string): Promise<boolean> {
  const { rows } = await q.query('SELECT 1 FROM runs WHERE id = $1 AND ($2::boolean OR owner_id = $3)', [runId, viewer.admin, viewer.userId]);
  return rows.length > 0;
}

export interface StepDetailRow {
  step_id: string;
  status: string;
  attempt: number;
  branch: string | null;
  skip_reason: string | null;
  error: unknown;
  available_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  provider: string | null;
  model: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
  cost_usd: number | null;
}

export async function listStepDetails(q: Queryable, runId: string): Promise<StepDetailRow[]> {
  const { rows } = await q.query<StepDetailRow>(
    `SELECT step_id, status, attempt, branch, skip_reason, error, available_at, started_at, finished_at, duration_ms,
       provider, model, tokens_in, tokens_out, cost_usd::float8 AS cost_usd
     FROM step_runs WHERE run_id = $1`,
    [runId],
  );
  return rows;
}
