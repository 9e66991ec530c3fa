/**
 * Queries for step runs: the queue. Every write that changes a claimed step is fenced on
 * (run, step, attempt, lease owner, status running) and callers check the row count: a worker
 * that lost its lease changes nothing.
 */
import { WeftError, type ErrorRecord } from '../core/errors.ts';
import type { StepState, StepStatus } from '../core/scheduler-types.ts';
import type { NewEvent } from './events.ts';
import type { Queryable } from './db.ts';

export interface ClaimedStep {
  runId: string;
  stepId: string;
  attempt: number;
  /** `attempt` when this attempt family began (0 until a human retry; see migration 0003). */
  attemptBase: number;
  /** What the trigger overrode (`{prompt}`), as stored; null for nothing. */
  overrides: Record<string, unknown> | null;
  versionId: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  /** Latest outputs of the steps this one reads (its refs), by step id. */
  deps: Record<string, unknown>;
  /** When the step became claimable; the claim latency is measured from here. */
  readyAt: Date;
  /** What the run has spent so far (USD) and its budget_usd (null: no limit). */
  spentUsd: number;
  budgetUsd: number | null;
  /** The default provider chosen at launch (null: the server's). */
  runProvider: string | null;
}

export interface ClaimRow {
  run_id: string;
  step_id: string;
  attempt: number;
  attempt_base: number;
  overrides: Record<string, unknown> | null;
  version_id: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  deps: Record<string, unknown>;
  ready_at: Date;
  spent_usd: number;
  budget_usd: number | null;
  run_provider: string | null;
}

export function toClaimed(r: ClaimRow): ClaimedStep {
  return {
    runId: r.run_id, stepId: r.step_id, attempt: r.attempt, attemptBase: r.attempt_base, overrides: r.overrides,
    versionId: r.version_id, inputs: r.inputs, context: r.context, deps: r.deps, readyAt: r.ready_at,
    spentUsd: Number(r.spent_usd), budgetUsd: r.budget_usd === null ? null : Number(r.budget_usd), runProvider: r.run_provider,
  };
}

export type StepStates = Record<string, StepState>;

/**
 * Every step's state of run $1, as one JSON value (weft_step_states, migration 0011). Fenced
 * writes select it in the same statement: the main query reads the statement's snapshot, which
 * does not include the CTE's own update, so the fenced step still shows as 'running' — the
 * state the scheduler expects.
 * `parked` (see StepState) is a pending step whose error is the budget refusal parkAttempt
 * recorded: every other write that makes a step pending clears the error or leaves a
 * failure's (holdStep, after releaseAttempt), so no extra column is needed to tell them apart.
 */
const STATES = `weft_step_states($1)::json AS steps`;

type StatesJson = [string, StepStatus, number, string | null, number, boolean][] | null;

function toStates(json: StatesJson): StepStates {
  const steps: StepStates = {};
  for (const [id, status, attempt, branch, attemptBase, parked] of json ?? []) {
    const s: StepState = attemptBase > 0 ? { status, attempt, branch, attemptBase } : { status, attempt, branch };
    if (parked) s.parked = true;
    steps[id] = s;
  }
  return steps;
}

/** Step states from weft_step_states' text (migrations 0006, 0011). */
export function parseStepStates(text: string | null): StepStates {
  return toStates(text === null || text === '' ? null : (JSON.parse(text) as StatesJson));
}

/** Reads every step's state (the caller holds the run lock, see lockRun). */
export async function loadStepStates(q: Queryable, runId: string): Promise<StepStates> {
  const { rows } = await q.query<{ steps: StatesJson }>(`SELECT ${STATES}`, [runId]);
  return toStates(rows[0]?.steps ?? null);
}

/** A fenced write's answer: the step states, or undefined when the fence held nothing. */
function fenced(rows: { n: number; steps: StatesJson }[]): StepStates | undefined {
  const row = rows[0];
  return row && row.n === 1 ? toStates(row.steps) : undefined;
}

/**
 * What a claim returns beside the step row: the run's inputs and context and the outputs the
 * step reads, so the worker can start at once with no further round trip.
 */
const CLAIM_RESULT = `
  SELECT c.run_id, c.step_id, c.attempt, c.attempt_base, c.overrides, c.available_at AS ready_at, r.version_id, r.inputs, r.context,
    r.cost_usd::float8 AS spent_usd, r.budget_usd::float8 AS budget_usd, r.provider AS run_provider,
    (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
     WHERE a.run_id = c.run_id AND a.step_id = ANY(c.refs) AND a.name = 'output' AND a.is_latest) AS deps
  FROM c JOIN runs r ON r.id = c.run_id`;

/** The columns of a claim as the SQL functions return them (weft_claim_queued, weft_complete_attempt, weft_start_run), named as in ClaimRow, and the run's states. */
export const CLAIM_COLUMNS = `o_run_id AS run_id, o_step_id AS step_id, o_attempt AS attempt, o_attempt_base AS attempt_base, o_overrides AS overrides,
  o_ready_at AS ready_at, o_version_id AS version_id, o_inputs AS inputs, o_context AS context, o_spent_usd AS spent_usd,
  o_budget_usd AS budget_usd, o_run_provider AS run_provider, o_deps AS deps, o_states AS states`;

/** A step claimed from the queue, with its run's states when it can complete quickly (else null). */
export type QueueClaim = ClaimedStep & { statesText: string | null };

/**
 * Claims up to `limit` queued steps of running runs, oldest first, with SKIP LOCKED so that
 * concurrent workers never wait on each other or claim the same row, and writes each step's
 * `step_started` event — one statement, weft_claim_queued (migration 0012), which reads the
 * claimable index in order whatever the statistics say. Each claim comes with what
 * CLAIM_RESULT returns and, for a step alone in flight in an auto-mode run with either another
 * step still to run or no budget (see snapshotForQuickCompletion), the run's states as a quick
 * completion of it decides from (weft_step_states with the claimed step: in the claiming
 * statement's snapshot the step itself still shows as queued); null otherwise.
 */
export async function claimQueued(
  q: Queryable,
  c: { workerId: string; now: Date; leaseUntil: Date; limit: number },
): Promise<QueueClaim[]> {
  const { rows } = await q.query<ClaimRow & { states: string | null }>(
    `SELECT ${CLAIM_COLUMNS} FROM weft_claim_queued($1, $2, $3, $4)`,
    [c.workerId, c.now, c.leaseUntil, c.limit],
  );
  return rows.map((r) => ({ ...toClaimed(r), statesText: r.states }));
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
 * artifact version, and reads the run's step states, in one statement. undefined means the
 * lease was lost (or the run was cancelled) and nothing was written. A step succeeds at most once per run here, so the new
 * version is the only latest one; re-running a succeeded step (rollback) must first clear
 * `is_latest` on the old version.
 */
export async function completeAttempt(
  q: Queryable,
  f: AttemptFence & { output: unknown; branch: string | null; at: Date; durationMs: number; usage: AttemptUsage | undefined },
): Promise<StepStates | undefined> {
  const { rows } = await q.query<{ n: number; steps: StatesJson }>(
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
     SELECT (SELECT count(*)::int FROM done) AS n, ${STATES}`,
    [
      f.runId, f.stepId, f.attempt, f.workerId, f.branch, JSON.stringify(f.output ?? null), f.at, f.durationMs,
      f.usage?.provider ?? null, f.usage?.model ?? null, f.usage?.tokensIn ?? null, f.usage?.tokensOut ?? null, f.usage?.costUsd ?? null,
    ],
  );
  return fenced(rows);
}

/**
 * Releases a claimed attempt that ended without success (failed, or guard false): clears the
 * lease and records the error; the scheduler's commands then set the status. Fenced like
 * completeAttempt.
 */
export async function releaseAttempt(
  q: Queryable,
  f: AttemptFence & { error: ErrorRecord | null; at: Date; durationMs: number },
): Promise<StepStates | undefined> {
  const { rows } = await q.query<{ n: number; steps: StatesJson }>(
    `WITH done AS (
       UPDATE step_runs SET lease_owner = NULL, lease_expires_at = NULL, error = $5::jsonb, finished_at = $6, duration_ms = $7
       WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND lease_owner = $4 AND status = 'running'
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM done) AS n, ${STATES}`,
    [f.runId, f.stepId, f.attempt, f.workerId, f.error === null ? null : JSON.stringify(f.error), f.at, f.durationMs],
  );
  return fenced(rows);
}

/**
 * Hands a claimed attempt back without counting it (a budget pause: the executor refused to
 * make a model call the run's budget does not cover): the step goes back to pending with its
 * lease cleared and the refusal as its error, which marks it parked (see STATES). Fenced like
 * completeAttempt; returns the step states read after the write, or undefined when the fence
 * held nothing.
 *
 * `attempt` stays as the claim left it: it never decreases, because it fences workers (a
 * stale worker of this attempt must keep failing its fence). The retry policy counts
 * `attempt − attempt_base`, so `attempt_base + 1` keeps that count where it was before the
 * claim: the hold costs the step none of its retries or lease-loss allowance, however many
 * times the run pauses. The price of reusing attempt_base: the step's idempotency key (which
 * a non-zero attempt_base changes, see worker.ts) is new after a hold — harmless, since the
 * refused call was never sent.
 */
export async function parkAttempt(
  q: Queryable,
  f: AttemptFence & { error: ErrorRecord; at: Date; durationMs: number },
): Promise<StepStates | undefined> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET status = 'pending', attempt_base = attempt_base + 1, lease_owner = NULL, lease_expires_at = NULL,
       available_at = NULL, error = $5::jsonb, finished_at = $6, duration_ms = $7
     WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND lease_owner = $4 AND status = 'running'`,
    [f.runId, f.stepId, f.attempt, f.workerId, JSON.stringify(f.error), f.at, f.durationMs],
  );
  // A second statement, so the states show the parked step (see STATES for the same-statement rule).
  return rowCount === 1 ? loadStepStates(q, f.runId) : undefined;
}

/**
 * Releases an attempt whose lease expired, whoever held it: fenced on the attempt and on the
 * lease really being past `now`, so a heartbeat that renewed it in the meantime wins.
 */
export async function expireLease(
  q: Queryable,
  f: { runId: string; stepId: string; attempt: number; now: Date },
): Promise<StepStates | undefined> {
  const { rows } = await q.query<{ n: number; steps: StatesJson }>(
    `WITH done AS (
       UPDATE step_runs SET lease_owner = NULL, lease_expires_at = NULL,
         error = '{"code":"WEFT_LEASE_LOST","message":"the worker stopped heartbeating","retryable":true}'::jsonb
       WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND status = 'running' AND lease_expires_at < $4
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM done) AS n, ${STATES}`,
    [f.runId, f.stepId, f.attempt, f.now],
  );
  return fenced(rows);
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


export async function failStep(q: Queryable, runId: string, stepId: string, error: ErrorRecord, at: Date): Promise<void> {
  await q.query(
    `UPDATE step_runs SET status = 'failed', error = $3::jsonb, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL
     WHERE run_id = $1 AND step_id = $2`,
    [runId, stepId, JSON.stringify(error), at],
  );
}


/**
 * Step mode: ready steps wait for a human trigger. Fenced on 'pending'; throws unless every
 * step changed (under the run lock a mismatch means the state read and the rows disagree).
 */
export async function waitSteps(q: Queryable, runId: string, stepIds: readonly string[]): Promise<void> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET status = 'waiting' WHERE run_id = $1 AND step_id = ANY($2::text[]) AND status = 'pending'`,
    [runId, stepIds],
  );
  expectRows('wait', runId, stepIds.length, rowCount);
}

export interface ReopenedStep {
  stepId: string;
  /** The status the scheduler saw: a retried step is 'failed'; the steps it re-opens are skipped, cancelled or waiting. */
  from: 'failed' | 'skipped' | 'cancelled' | 'waiting';
  attempt: number;
}

/**
 * Re-opens finished steps (a human retry: restart_step and reset_step), in one statement: back
 * to pending with a new attempt family (attempt_base := attempt), fenced on the status and
 * attempt the scheduler saw. The caller then queues, claims, or lets them wait like any
 * pending step. An old output stays as a version but is no longer the latest, so the next
 * success becomes the only latest one (completeAttempt relies on that).
 */
export async function reopenSteps(q: Queryable, runId: string, steps: readonly ReopenedStep[]): Promise<void> {
  const { rows } = await q.query<{ n: number }>(
    `WITH k AS (SELECT * FROM unnest($2::text[], $3::text[], $4::int[]) AS k(step_id, status, attempt)),
     re AS (
       UPDATE step_runs s SET status = 'pending', attempt_base = s.attempt, available_at = NULL, skip_reason = NULL, error = NULL,
         branch = NULL, finished_at = NULL, duration_ms = NULL, lease_owner = NULL, lease_expires_at = NULL
       FROM k WHERE s.run_id = $1 AND s.step_id = k.step_id AND s.status = k.status AND s.attempt = k.attempt
       RETURNING s.step_id
     ), old AS (
       UPDATE artifacts a SET is_latest = false
       WHERE a.run_id = $1 AND a.step_id IN (SELECT step_id FROM re) AND a.name = 'output' AND a.is_latest
     )
     SELECT count(*)::int AS n FROM re`,
    [runId, steps.map((x) => x.stepId), steps.map((x) => x.from), steps.map((x) => x.attempt)],
  );
  expectRows('re-open', runId, steps.length, rows[0]?.n ?? 0);
}

/**
 * Stores what a trigger overrides (`{prompt}`, or null for nothing) on a step that is waiting
 * for it; false when the step is not waiting (the caller answers with a conflict).
 */
export async function setStepOverrides(q: Queryable, runId: string, stepId: string, overrides: Record<string, unknown> | null): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET overrides = $3::jsonb WHERE run_id = $1 AND step_id = $2 AND status = 'waiting'`,
    [runId, stepId, overrides === null ? null : JSON.stringify(overrides)],
  );
  return rowCount === 1;
}

function expectRows(what: string, runId: string, expected: number, actual: number): void {
  if (actual !== expected) {
    throw new WeftError('WEFT_INTERNAL', `run ${runId}: ${what} changed ${actual} of ${expected} steps (their state moved under the run lock)`);
  }
}

export interface DecisionWrites {
  runId: string;
  at: Date;
  events: readonly NewEvent[];
  queue: readonly string[];
  skips: readonly { stepId: string; reason: string }[];
  cancels: readonly string[];
  /** Claim this (pending) step for the worker instead of queueing it. */
  claim?: { stepId: string; workerId: string; leaseUntil: Date } | undefined;
}

/**
 * The common writes of one scheduler decision — append its events, queue, skip and cancel
 * steps, claim one successor for the calling worker, wake the other workers — as ONE
 * statement of data-modifying CTEs (each touches different rows), so a step transition costs
 * one round trip here instead of one per kind of write. Parameters are numbered as they are
 * added; no value is ever spliced into the text.
 */
export async function writeDecision(q: Queryable, w: DecisionWrites): Promise<ClaimedStep | undefined> {
  const params: unknown[] = [w.runId, w.at];
  const p = (value: unknown) => `$${params.push(value)}`;
  const ctes: string[] = [];
  if (w.events.length > 0) {
    ctes.push(`ev AS (INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
      SELECT $1, e.step_id, e.type, e.attempt, e.data, $2
      FROM unnest(${p(w.events.map((e) => e.stepId))}::text[], ${p(w.events.map((e) => e.type))}::text[],
                  ${p(w.events.map((e) => e.attempt))}::int[], ${p(w.events.map((e) => JSON.stringify(e.data)))}::jsonb[])
           AS e(step_id, type, attempt, data))`);
  }
  if (w.queue.length > 0) {
    // 'waiting': a step-mode step its trigger queues.
    ctes.push(`q AS (UPDATE step_runs SET status = 'queued', available_at = $2
      WHERE run_id = $1 AND step_id = ANY(${p(w.queue)}::text[]) AND status IN ('pending', 'waiting') RETURNING 1)`);
  }
  if (w.skips.length > 0) {
    ctes.push(`sk AS (UPDATE step_runs s SET status = 'skipped', skip_reason = k.reason, finished_at = $2
      FROM unnest(${p(w.skips.map((x) => x.stepId))}::text[], ${p(w.skips.map((x) => x.reason))}::text[]) AS k(step_id, reason)
      WHERE s.run_id = $1 AND s.step_id = k.step_id)`);
  }
  if (w.cancels.length > 0) {
    ctes.push(`ca AS (UPDATE step_runs SET status = 'cancelled', finished_at = $2, lease_owner = NULL, lease_expires_at = NULL
      WHERE run_id = $1 AND step_id = ANY(${p(w.cancels)}::text[]) AND status IN ('pending', 'queued', 'running', 'waiting'))`);
  }
  const notify = w.queue.length > 0 ? `, (SELECT pg_notify('weft_steps', '') FROM (SELECT 1 FROM q LIMIT 1) AS any_queued) AS notified` : '';
  if (w.claim) {
    ctes.push(`c AS (UPDATE step_runs SET status = 'running', attempt = attempt + 1, lease_owner = ${p(w.claim.workerId)},
      lease_expires_at = ${p(w.claim.leaseUntil)}, started_at = $2, available_at = $2, finished_at = NULL, duration_ms = NULL
      WHERE run_id = $1 AND step_id = ${p(w.claim.stepId)} AND status IN ('pending', 'queued', 'waiting')
      RETURNING run_id, step_id, attempt, attempt_base, overrides, refs, available_at)`);
    const { rows } = await q.query<ClaimRow>(`WITH ${ctes.join(',\n')}${CLAIM_RESULT.replace('FROM c JOIN', `${notify} FROM c JOIN`)}`, params);
    if (rows[0]) return toClaimed(rows[0]);
    // Not claimable after all (cannot happen under the run lock): still wake the others.
    if (w.queue.length > 0) await q.query(`SELECT pg_notify('weft_steps', '')`);
    return undefined;
  }
  if (ctes.length === 0) return undefined;
  await q.query(`WITH ${ctes.join(',\n')} SELECT 1${notify}`, params);
  return undefined;
}

/**
 * A worker shutting down hands back the attempts it could not finish: their leases expire now,
 * so the next sweep (any worker's) retries them at once instead of after the lease time.
 */
export async function expireOwnLeases(q: Queryable, workerId: string, now: Date): Promise<number> {
  const { rowCount } = await q.query(
    `UPDATE step_runs SET lease_expires_at = $2 WHERE lease_owner = $1 AND status = 'running'`,
    [workerId, new Date(now.getTime() - 1)],
  );
  return rowCount;
}
