/**
 * A run's start in one statement (migration 0009, weft_start_run): the run row, every step in
 * the status the start decision gave it, the decision's events, and the root claimed for this
 * process's worker, if any, with the run's states for its quick completion.
 */
import type { RunMode } from '../core/scheduler-types.ts';
import type { Queryable } from './db.ts';
import type { NewEvent } from './events.ts';
import { runningSnapshot, type RunSnapshot } from './quick-completion.ts';
import { CLAIM_COLUMNS, toClaimed, type ClaimRow, type ClaimedStep } from './step-runs.ts';

export interface NewRun {
  id: string;
  versionId: string;
  ownerId: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  /** An earlier start with the same owner and key wins: this one then starts nothing. */
  idempotencyKey: string | null;
  at: Date;
  mode: RunMode;
  /** The status the start decision leaves the run in. */
  status: 'running' | 'waiting';
  /** Spending limit in USD (null: none). */
  budgetUsd: number | null;
  /** Default provider for steps and agents that name none (null: the server's). */
  provider: string | null;
  /** Every step, in the workflow's order, with the steps whose outputs it reads. */
  steps: readonly { stepId: string; refs: readonly string[] }[];
  events: readonly NewEvent[];
  queue: readonly string[];
  waits: readonly string[];
  /** The root claimed for this process's worker; `states`: also return the run's states. */
  claim: { stepId: string; workerId: string; leaseUntil: Date; states: boolean } | undefined;
}

/** The run's id (an earlier run's, for a key already used: then nothing was claimed) and the claimed root. */
export interface StartedRun {
  runId: string;
  claimed: ClaimedStep | undefined;
  snapshot: RunSnapshot | undefined;
}

/**
 * The claimed root is read back as stored (inputs and context in jsonb's key order), as a claim
 * from the queue returns it, so a step sees the same values whichever way it was claimed.
 */
export async function startRunRecord(q: Queryable, r: NewRun): Promise<StartedRun> {
  const { rows } = await q.query<Omit<ClaimRow, 'run_id' | 'step_id'> & { run_id: string | null; step_id: string | null; states: string | null }>(
    `SELECT ${CLAIM_COLUMNS}
     FROM weft_start_run($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12::text[], $13::jsonb[],
       $14::text[], $15::text[], $16::int[], $17::jsonb[], $18::text[], $19::text[], $20, $21, $22, $23)`,
    [
      r.id, r.versionId, r.ownerId, r.status, r.mode, JSON.stringify(r.inputs), JSON.stringify(r.context),
      r.idempotencyKey, r.at, r.budgetUsd, r.provider,
      r.steps.map((s) => s.stepId), r.steps.map((s) => JSON.stringify(s.refs)),
      r.events.map((e) => e.stepId), r.events.map((e) => e.type), r.events.map((e) => e.attempt), r.events.map((e) => JSON.stringify(e.data)),
      r.queue, r.waits, r.claim?.stepId ?? null, r.claim?.workerId ?? null, r.claim?.leaseUntil ?? null, r.claim?.states ?? false,
    ],
  );
  const row = rows[0];
  if (!row?.run_id) throw new Error(`run ${r.id} was not started: no workflow version ${r.versionId}`);
  // A key already used returns the other run's id and no step.
  const claimed = row.step_id === null ? undefined : toClaimed({ ...row, run_id: row.run_id, step_id: row.step_id });
  return { runId: row.run_id, claimed, snapshot: claimed && r.claim?.states ? runningSnapshot(row.states) : undefined };
}
