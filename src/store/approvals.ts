/**
 * Queries for approvals: decisions a person must take before a run goes on (migration 0005).
 * Kind 'budget': the run paused because a step's next model call would pass its budget_usd.
 * Writes happen under the run lock (inside `advance`) and are fenced on `status = 'pending'`.
 */
import type { Queryable } from './db.ts';
import type { Viewer } from './workflows.ts';

export type ApprovalStatus = 'pending' | 'approved' | 'rejected';

/**
 * What a budget approval records. `steps` maps each step the pause parked to its refused
 * call's estimate; `estimate_usd` is their sum, so `spent_usd + estimate_usd` is the budget
 * that lets every parked step make its call.
 */
export interface BudgetApprovalData {
  step_id: string;
  estimate_usd: number;
  spent_usd: number;
  budget_usd: number;
  steps: Record<string, number>;
}

export interface ApprovalRecord {
  id: string;
  run_id: string;
  step_id: string | null;
  kind: 'budget';
  status: ApprovalStatus;
  data: Record<string, unknown>;
  decided_by: string | null;
  decided_at: Date | null;
  comment: string | null;
  created_at: Date;
}

const COLUMNS = 'id, run_id, step_id, kind, status, data, decided_by, decided_at, comment, created_at';

/**
 * Opens the run's budget approval, or — when one is pending already (the partial unique index
 * allows one per run) — adds this step's refusal to it: its estimate replaces an earlier one of
 * the same step, and spent and budget are brought up to date. `reused` tells which happened.
 */
export async function openBudgetApproval(
  q: Queryable,
  a: { id: string; runId: string; stepId: string; estimateUsd: number; spentUsd: number; budgetUsd: number; at: Date },
): Promise<{ approval: ApprovalRecord; reused: boolean }> {
  const data: BudgetApprovalData = {
    step_id: a.stepId, estimate_usd: a.estimateUsd, spent_usd: a.spentUsd, budget_usd: a.budgetUsd, steps: { [a.stepId]: a.estimateUsd },
  };
  const { rows } = await q.query<ApprovalRecord>(
    `INSERT INTO approvals (id, run_id, step_id, kind, data, created_at) VALUES ($1, $2, $3, 'budget', $4::jsonb, $5)
     ON CONFLICT (run_id) WHERE status = 'pending' AND kind = 'budget'
     DO UPDATE SET data = approvals.data || jsonb_build_object(
       'spent_usd', EXCLUDED.data->'spent_usd',
       'budget_usd', EXCLUDED.data->'budget_usd',
       'steps', coalesce(approvals.data->'steps', '{}'::jsonb) || (EXCLUDED.data->'steps'),
       'estimate_usd', (SELECT sum(e.value::numeric) FROM jsonb_each_text(coalesce(approvals.data->'steps', '{}'::jsonb) || (EXCLUDED.data->'steps')) AS e))
     RETURNING ${COLUMNS}`,
    [a.id, a.runId, a.stepId, JSON.stringify(data), a.at],
  );
  const approval = rows[0]!;
  return { approval, reused: approval.id !== a.id };
}

/** One approval of a run (FOR UPDATE when deciding it); undefined for another run's or none. */
export async function getApproval(q: Queryable, runId: string, approvalId: string, forUpdate = false): Promise<ApprovalRecord | undefined> {
  const { rows } = await q.query<ApprovalRecord>(
    `SELECT ${COLUMNS} FROM approvals WHERE id = $1 AND run_id = $2${forUpdate ? ' FOR UPDATE' : ''}`,
    [approvalId, runId],
  );
  return rows[0];
}

/** Records a decision; fenced on the approval still pending (undefined when it was not). */
export async function decideApprovalRow(
  q: Queryable,
  d: { runId: string; approvalId: string; status: 'approved' | 'rejected'; by: string; comment: string | null; at: Date },
): Promise<ApprovalRecord | undefined> {
  const { rows } = await q.query<ApprovalRecord>(
    `UPDATE approvals SET status = $3, decided_by = $4, comment = $5, decided_at = $6
     WHERE id = $1 AND run_id = $2 AND status = 'pending'
     RETURNING ${COLUMNS}`,
    [d.approvalId, d.runId, d.status, d.by, d.comment, d.at],
  );
  return rows[0];
}

/** A run's approvals, oldest first. */
export async function listRunApprovals(q: Queryable, runId: string): Promise<ApprovalRecord[]> {
  const { rows } = await q.query<ApprovalRecord>(`SELECT ${COLUMNS} FROM approvals WHERE run_id = $1 ORDER BY created_at, id`, [runId]);
  return rows;
}

/** Approvals of the viewer's runs (admins: every run's) by creation time, optionally of one status. */
export async function listApprovals(
  q: Queryable,
  viewer: Viewer,
  f: { status: ApprovalStatus | undefined; limit: number; offset: number; order: 'asc' | 'desc' },
): Promise<{ items: ApprovalRecord[]; total: number }> {
  const where = `WHERE ($1::boolean OR r.owner_id = $2) AND ($3::text IS NULL OR a.status = $3)`;
  const params = [viewer.admin, viewer.userId, f.status ?? null];
  const [items, total] = await Promise.all([
    q.query<ApprovalRecord>(
      `SELECT ${COLUMNS.split(', ').map((c) => `a.${c}`).join(', ')} FROM approvals a JOIN runs r ON r.id = a.run_id ${where}
       ORDER BY a.created_at ${f.order === 'asc' ? 'ASC' : 'DESC'}, a.id LIMIT $4 OFFSET $5`,
      [...params, f.limit, f.offset],
    ),
    q.query<{ n: number }>(`SELECT count(*)::int AS n FROM approvals a JOIN runs r ON r.id = a.run_id ${where}`, params),
  ]);
  return { items: items.rows, total: total.rows[0]?.n ?? 0 };
}
