/**
 * Queries for step runs: the queue. Every write that changes a claimed step is fenced on
 * (run, step, attempt, lease owner, status running) and callers check the row count: a worker
 * that lost its lease changes nothing.
 */
import type { ErrorRecord } from '../core/errors.ts';
import type { StepStatus } from '../core/scheduler-types.ts';
import type { Queryable } from './db.ts';

export interface NewStepRun {
  stepId: string;
  status: StepStatus;
  refs: readonly string[];
}

/** Inserts every step of a new run in one statement (refs as a JSON array per step). */
export async function insertStepRuns(q: Queryable, runId: string, steps: readonly NewStepRun[], at: Date): Promise<void> {
  await q.query(
    `INSERT INTO step_runs (run_id, step_id, status, refs, available_at)
     SELECT $1, s.step_id, s.status, ARRAY(SELECT jsonb_array_elements_text(s.refs)), CASE WHEN s.status = 'queued' THEN $5::timestamptz END
     FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS s(step_id, status, refs)`,
    [runId, steps.map((s) => s.stepId), steps.map((s) => s.status), steps.map((s) => JSON.stringify(s.refs)), at],
  );
}

export interface ClaimedStep {
  runId: string;
  stepId: string;
  attempt: number;
  versionId: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  /** Latest outputs of the steps this one reads (its refs), by step id. */
  deps: Record<string, unknown>;
}

interface ClaimRow {
  run_id: string;
  step_id: string;
  attempt: number;
  version_id: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  deps: Record<string, unknown>;
}

function toClaimed(r: ClaimRow): ClaimedStep {
  return { runId: r.run_id, stepId: r.step_id, attempt: r.attempt, versionId: r.version_id, inputs: r.inputs, context: r.context, deps: r.deps };
}

/**
 * What a claim returns beside the step row: the run's inputs and context and the outputs the
 * step reads, so the worker can start at once with no further round trip.
 */
const CLAIM_RESULT = `
  SELECT c.run_id, c.step_id, c.attempt, r.version_id, r.inputs, r.context,
    (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
     WHERE a.run_id = c.run_id AND a.step_id = ANY(c.refs) AND a.name = 'output' AND a.is_latest) AS deps
  FROM c JOIN runs r ON r.id = c.run_id`;

/**
 * Claims up to `limit` queued steps of running runs, oldest first, with SKIP LOCKED so that
 * concurrent workers never wait on each other or claim the same row; writes each step's
 * `step_started` event in the same statement.
 */
export async function claimQueued(
  q: Queryable,
  c: { workerId: string; now: Date; leaseUntil: Date; limit: number },
): Promise<ClaimedStep[]> {
  const { rows } = await q.query<ClaimRow>(
    `WITH c AS (
       UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1, lease_owner = $1,
         lease_expires_at = $3, started_at = $2, finished_at = NULL, duration_ms = NULL
       FROM (SELECT q.run_id, q.step_id FROM step_runs q JOIN runs r ON r.id = q.run_id
             WHERE q.status = 'queued' AND q.available_at <= $2 AND r.status = 'running'
             ORDER BY q.available_at LIMIT $4 FOR UPDATE OF q SKIP LOCKED) pick
       WHERE s.run_id = pick.run_id AND s.step_id = pick.step_id
       RETURNING s.run_id, s.step_id, s.attempt, s.refs
     ), e AS (
       INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
       SELECT run_id, step_id, 'step_started', attempt, jsonb_build_object('worker', $1::text), $2 FROM c
     )${CLAIM_RESULT}`,
    [c.workerId, c.now, c.leaseUntil, c.limit],
  );
  return rows.map(toClaimed);
}

/**
 * Claims one step the caller has just made ready, inside the transaction that made it ready
 * (the caller holds the run lock): the completing worker runs its successor with no queue hop.
 */
export async function claimReadyStep(
  q: Queryable,
  c: { runId: string; stepId: string; workerId: string; now: Date; leaseUntil: Date },
): Promise<ClaimedStep | undefined> {
  const { rows } = await q.query<ClaimRow>(
    `WITH c AS (
       UPDATE step_runs SET status = 'running', attempt = attempt + 1, lease_owner = $3, lease_expires_at = $5,
         started_at = $4, available_at = $4, finished_at = NULL, duration_ms = NULL
       WHERE run_id = $1 AND step_id = $2 AND status IN ('pending', 'queued')
       RETURNING run_id, step_id, attempt, refs
     )${CLAIM_RESULT}`,
    [c.runId, c.stepId, c.workerId, c.now, c.leaseUntil],
  );
  return rows[0] ? toClaimed(rows[0]) : undefined;
}

export interface AttemptFence {
  runId: string;
  stepId: string;
  attempt: number;
  workerId: string;
}

export interface AttemptUsage {
  provider: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

/**
 * Records a successful attempt: marks the step succeeded and stores its output as the next
 * artifact version, in one statement; 0 rows means the lease was lost (or the run was
 * cancelled) and nothing was written. A step succeeds at most once per run here, so the new
 * version is the only latest one; re-running a succeeded step (rollback) must first clear
 * `is_latest` on the old version.
 */
export async function completeAttempt(
  q: Queryable,
  f: AttemptFence & { output: unknown; branch: string | null; at: Date; durationMs: number; usage: AttemptUsage | undefined },
): Promise<boolean> {
  const { rows } = await q.query<{ n: number }>(
    `WITH done AS (
       UPDATE step_runs SET status = 'succeeded', branch = $5, finished_at = $7, duration_ms = $8,
         lease_owner = NULL, lease_expires_at = NULL, error = NULL,
         provider = $9, model = $10, tokens_in = $11, tokens_out = $12, cost_usd = $13
       WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND lease_owner = $4 AND status = 'running'
       RETURNING run_id, step_id, attempt
     ), art AS (
       INSERT INTO artifacts (run_id, step_id, name, version, content, is_latest, produced_by, attempt, created_at)
       SELECT run_id, step_id, 'output',
         1 + coalesce((SELECT max(version) FROM artifacts WHERE run_id = $1 AND step_id = $2 AND name = 'output'), 0),
         $6::jsonb, true, 'attempt', attempt, $7
       FROM done
     )
     SELECT count(*)::int AS n FROM done`,
    [
      f.runId, f.stepId, f.attempt, f.workerId, f.branch, JSON.stringify(f.output ?? null), f.at, f.durationMs,
      f.usage?.provider ?? null, f.usage?.model ?? null, f.usage?.tokensIn ?? null, f.usage?.tokensOut ?? null, f.usage?.costUsd ?? null,
    ],
  );
  return rows[0]?.n === 1;
}

/**
 * Releases a claimed attempt that ended without success (failed, or guard false): clears the
 * lease and records the error; the scheduler's commands then set the status. Fenced like
 * completeAttempt.
 */
export async function releaseAttempt(
  q: Queryable,
  f: AttemptFence & { error: ErrorRecord | null; at: Date; durationMs: number },
): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET lease_owner = NULL, lease_expires_at = NULL, error = $5::jsonb, finished_at = $6, duration_ms = $7
     WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND lease_owner = $4 AND status = 'running'`,
    [f.runId, f.stepId, f.attempt, f.workerId, f.error === null ? null : JSON.stringify(f.error), f.at, f.durationMs],
  );
  return rowCount === 1;
}

/**
 * Releases an attempt whose lease expired, whoever held it: fenced on the attempt and on the
 * lease really being past `now`, so a heartbeat that renewed it in the meantime wins.
 */
export async function expireLease(q: Queryable, f: { runId: string; stepId: string; attempt: number; now: Date }): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET lease_owner = NULL, lease_expires_at = NULL,
       error = '{"code":"WEFT_LEASE_LOST","message":"the worker stopped heartbeating","retryable":true}'::jsonb
     WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND status = 'running' AND lease_expires_at < $4`,
    [f.runId, f.stepId, f.attempt, f.now],
  );
  return rowCount === 1;
}

export async function findExpiredLeases(
  q: Queryable,
  now: Date,
  limit: number,
): Promise<{ runId: string; stepId: string; attempt: number }[]> {
  const { rows } = await q.query<{ run_id: string; step_id: string; attempt: number }>(
    `SELECT run_id, step_id, attempt FROM step_runs
     WHERE status = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2`,
    [now, limit],
  );
  return rows.map((r) => ({ runId: r.run_id, stepId: r.step_id, attempt: r.attempt }));
}

export interface HeldLease {
  runId: string;
  stepId: string;
  attempt: number;
}

/**
 * Extends the leases this worker holds, in one statement, and returns those it still holds
 * with their run's status. A lease missing from the answer was lost (expired and re-claimed, or
 * its step was cancelled): the worker must abort that attempt.
 */
export async function heartbeat(
  q: Queryable,
  h: { workerId: string; leases: readonly HeldLease[]; leaseUntil: Date },
): Promise<(HeldLease & { runStatus: string })[]> {
  if (h.leases.length === 0) return [];
  const { rows } = await q.query<{ run_id: string; step_id: string; attempt: number; run_status: string }>(
    `WITH held AS (
       UPDATE step_runs s SET lease_expires_at = $5
       FROM unnest($2::uuid[], $3::text[], $4::int[]) AS l(run_id, step_id, attempt)
       WHERE s.run_id = l.run_id AND s.step_id = l.step_id AND s.attempt = l.attempt
         AND s.lease_owner = $1 AND s.status = 'running'
       RETURNING s.run_id, s.step_id, s.attempt
     )
     SELECT held.run_id, held.step_id, held.attempt, r.status AS run_status FROM held JOIN runs r ON r.id = held.run_id`,
    [h.workerId, h.leases.map((l) => l.runId), h.leases.map((l) => l.stepId), h.leases.map((l) => l.attempt), h.leaseUntil],
  );
  return rows.map((r) => ({ runId: r.run_id, stepId: r.step_id, attempt: r.attempt, runStatus: r.run_status }));
}

// ---- writes that carry out scheduler commands (the caller holds the run lock) ----

/** Makes pending steps claimable and wakes listening workers, in one statement. */
export async function queueSteps(q: Queryable, runId: string, stepIds: readonly string[], at: Date): Promise<void> {
  if (stepIds.length === 0) return;
  await q.query(
    `WITH u AS (
       UPDATE step_runs SET status = 'queued', available_at = $3
       WHERE run_id = $1 AND step_id = ANY($2::text[]) AND status = 'pending' RETURNING 1
     )
     SELECT pg_notify('weft_steps', '') FROM (SELECT 1 FROM u LIMIT 1) AS any_queued`,
    [runId, stepIds, at],
  );
}

export async function scheduleRetry(q: Queryable, runId: string, stepId: string, availableAt: Date): Promise<void> {
  await q.query(
    `UPDATE step_runs SET status = 'queued', available_at = $3 WHERE run_id = $1 AND step_id = $2`,
    [runId, stepId, availableAt],
  );
}

/** Puts a step back to pending (a retry held while the run is paused). */
export async function holdStep(q: Queryable, runId: string, stepId: string): Promise<void> {
  await q.query(`UPDATE step_runs SET status = 'pending', available_at = NULL WHERE run_id = $1 AND step_id = $2`, [runId, stepId]);
}

export async function skipSteps(
  q: Queryable,
  runId: string,
  skips: readonly { stepId: string; reason: string }[],
  at: Date,
): Promise<void> {
  if (skips.length === 0) return;
  await q.query(
    `UPDATE step_runs s SET status = 'skipped', skip_reason = k.reason, finished_at = $4
     FROM unnest($2::text[], $3::text[]) AS k(step_id, reason)
     WHERE s.run_id = $1 AND s.step_id = k.step_id`,
    [runId, skips.map((s) => s.stepId), skips.map((s) => s.reason), at],
  );
}

export async function failStep(q: Queryable, runId: string, stepId: string, error: ErrorRecord, at: Date): Promise<void> {
  await q.query(
    `UPDATE step_runs SET status = 'failed', error = $3::jsonb, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL
     WHERE run_id = $1 AND step_id = $2`,
    [runId, stepId, JSON.stringify(error), at],
  );
}

/** Cancels steps that are not yet terminal; a running one's worker sees it at its next heartbeat. */
export async function cancelSteps(q: Queryable, runId: string, stepIds: readonly string[], at: Date): Promise<void> {
  if (stepIds.length === 0) return;
  await q.query(
    `UPDATE step_runs SET status = 'cancelled', finished_at = $3, lease_owner = NULL, lease_expires_at = NULL
     WHERE run_id = $1 AND step_id = ANY($2::text[]) AND status IN ('pending', 'queued', 'running', 'waiting')`,
    [runId, stepIds, at],
  );
}
