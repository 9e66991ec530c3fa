/** Queries for runs. */
import { WeftError, type ErrorRecord } from '../core/errors.ts';
import type { RunMode, RunStatus, StepStatus } from '../core/scheduler-types.ts';
import type { Queryable } from './db.ts';

export interface UsageDelta {
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  simulated: boolean;
}

export interface LockedRun {
  status: RunStatus;
  versionId: string;
  mode: RunMode;
  /** What the run has spent (USD), this request's usage included, and its budget_usd (null: none). */
  spentUsd: number;
  budgetUsd: number | null;
  /**
   * The time this transaction records its writes at: the request's time, or the run's last
   * recorded time when that is later. Two advances of one run may take their times before
   * either holds the lock and get it in the other order; without this the second could start a
   * join step before the first recorded its dependency finishing. A run's clock never goes back.
   */
  at: Date;
}

/**
 * Locks the run row (FOR NO KEY UPDATE, through the UPDATE) and adds the attempt's usage.
 * Every transaction that advances a run starts here, so advances of one run are serialised and
 * always lock the run before its step rows (no deadlock between two advances). The lock does
 * not conflict with the KEY SHARE locks that foreign-key checks take, so inserts of events and
 * artifacts never wait on it.
 *
 * Step states must be read by a later statement (see step-runs.ts): under READ COMMITTED a
 * statement that waited for the lock still reads with the snapshot it took before waiting, so
 * reading them here would miss the step another worker completed just before us (a diamond's
 * join would never be scheduled — seen on PostgreSQL, not on single-connection PGlite).
 */
export async function lockRun(q: Queryable, runId: string, at: Date, usage?: UsageDelta): Promise<LockedRun | undefined> {
  const { rows } = await q.query<{ status: RunStatus; version_id: string; mode: RunMode; spent_usd: number; budget_usd: number | null; at: Date }>(
    `UPDATE runs SET updated_at = GREATEST(updated_at, $2),
       tokens_in = tokens_in + $3, tokens_out = tokens_out + $4, cost_usd = cost_usd + $5, simulated = simulated OR $6
     WHERE id = $1
     RETURNING status, version_id, mode, cost_usd::float8 AS spent_usd, budget_usd::float8 AS budget_usd, updated_at AS at`,
    [runId, at, usage?.tokensIn ?? 0, usage?.tokensOut ?? 0, usage?.costUsd ?? 0, usage?.simulated ?? false],
  );
  const row = rows[0];
  return row && {
    status: row.status, versionId: row.version_id, mode: row.mode,
    spentUsd: Number(row.spent_usd), budgetUsd: row.budget_usd === null ? null : Number(row.budget_usd), at: row.at,
  };
}

/** Sets a run's budget_usd (an approval that raises it); the caller holds the run lock. */
export async function setRunBudget(q: Queryable, runId: string, budgetUsd: number, at: Date): Promise<void> {
  const { rowCount } = await q.query('UPDATE runs SET budget_usd = $2, updated_at = $3 WHERE id = $1', [runId, budgetUsd, at]);
  if (rowCount !== 1) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} not found`);
}

/**
 * Moves a live run between running, waiting and paused — or re-opens a failed one (a retried
 * step), which clears what finishing wrote (outputs, error, finished_at): a live run has none.
 * Fenced on the status the caller decided from; throws if the run was not in it.
 */
export async function setRunStatus(q: Queryable, runId: string, from: RunStatus, to: RunStatus, at: Date): Promise<void> {
  const { rowCount } = await q.query(
    `UPDATE runs SET status = $3, updated_at = $4, outputs = NULL, error = NULL, finished_at = NULL WHERE id = $1 AND status = $2`,
    [runId, from, to, at],
  );
  if (rowCount !== 1) throw new WeftError('WEFT_INTERNAL', `run ${runId} was not ${from} when it was to become ${to}`);
}

/**
 * Finishes a run. With `closeApprovals`, an approval still open (say the run was cancelled,
 * or resumed by hand and then finished) is closed in the same statement, so no list of
 * pending approvals shows a run that is over; the caller asks for it only for runs that can
 * have one (a run with a budget), keeping the common finish one plain UPDATE.
 */
export async function finishRun(q: Queryable, runId: string, f: RunFinish & { at: Date; closeApprovals: boolean }): Promise<void> {
  const close = f.closeApprovals
    ? `WITH closed AS (
         UPDATE approvals SET status = 'rejected', decided_at = $5, comment = 'closed unanswered: the run was ' || $2::text || ' first'
         WHERE run_id = $1 AND status = 'pending'
       ) `
    : '';
  await q.query(
    `${close}UPDATE runs SET status = $2, outputs = $3::jsonb, error = $4::jsonb, finished_at = $5, updated_at = $5 WHERE id = $1`,
    [runId, ...runFinishValues(f), f.at],
  );
}

/** A run's end: its final status, and its outputs (succeeded) or error. */
export interface RunFinish {
  status: 'succeeded' | 'failed' | 'cancelled';
  outputs: Record<string, unknown> | undefined;
  error: ErrorRecord | undefined;
}

/** A run's end as statement parameters: status, outputs and error (JSON text or null). */
export function runFinishValues(f: RunFinish): [string, string | null, string | null] {
  return [f.status, f.outputs === undefined ? null : JSON.stringify(f.outputs), f.error === undefined ? null : JSON.stringify(f.error)];
}

/** Inputs and context of a run, and the latest outputs of the given steps. */
export async function loadRunScope(
  q: Queryable,
  runId: string,
  stepIds: readonly string[],
): Promise<{ inputs: Record<string, unknown>; context: Record<string, unknown>; outputs: Record<string, unknown> }> {
  const { rows } = await q.query<{ inputs: Record<string, unknown>; context: Record<string, unknown>; outputs: Record<string, unknown> }>(
    `SELECT r.inputs, r.context,
       (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
        WHERE a.run_id = r.id AND a.step_id = ANY($2::text[]) AND a.name = 'output' AND a.is_latest) AS outputs
     FROM runs r WHERE r.id = $1`,
    [runId, stepIds],
  );
  const row = rows[0];
  return { inputs: row?.inputs ?? {}, context: row?.context ?? {}, outputs: row?.outputs ?? {} };
}

export interface RunRow {
  id: string;
  workflow_id: string;
  version_id: string;
  owner_id: string;
  status: RunStatus;
  mode: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  steps_total: number;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
  simulated: boolean;
  created_at: Date;
  finished_at: Date | null;
}

export interface StepRunRow {
  step_id: string;
  status: StepStatus;
  attempt: number;
  /** `attempt` when the current attempt family began (a human retry starts a new one). */
  attempt_base: number;
  /** What the step's trigger overrode (`{prompt}`), or null. */
  overrides: { prompt?: string } | null;
  branch: string | null;
  skip_reason: string | null;
  error: { code: string; message: string; retryable: boolean } | null;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  available_at: Date | null;
  provider: string | null;
  model: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
}

export async function getRun(q: Queryable, runId: string): Promise<(RunRow & { steps: StepRunRow[] }) | undefined> {
  const { rows } = await q.query<RunRow>(
    `SELECT id, workflow_id, version_id, owner_id, status, mode, inputs, outputs, error, steps_total,
       tokens_in::float8 AS tokens_in, tokens_out::float8 AS tokens_out, cost_usd::float8 AS cost_usd, simulated,
       created_at, finished_at
     FROM runs WHERE id = $1`,
    [runId],
  );
  const run = rows[0];
  if (!run) return undefined;
  const steps = await q.query<StepRunRow>(
    `SELECT step_id, status, attempt, attempt_base, overrides, branch, skip_reason, error, started_at, finished_at, duration_ms, available_at,
       provider, model, tokens_in, tokens_out
     FROM step_runs WHERE run_id = $1 ORDER BY started_at NULLS LAST, step_id`,
    [runId],
  );
  return { ...run, steps: steps.rows };
}

export async function getRunStatus(q: Queryable, runId: string): Promise<RunStatus | undefined> {
  const { rows } = await q.query<{ status: RunStatus }>('SELECT status FROM runs WHERE id = $1', [runId]);
  return rows[0]?.status;
}
