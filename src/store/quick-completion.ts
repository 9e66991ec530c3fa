/**
 * The common step completion in one statement (migrations 0006, 0008): the caller decided from step
 * states it read earlier (as text: `statesText`), and weft_complete_attempt applies the fence,
 * the output and the decision's writes only if the run still has exactly those states, under
 * the run lock. No BEGIN, no COMMIT, one round trip — where advance() takes five.
 */
import { WeftError } from '../core/errors.ts';
import type { RunMode, RunStatus } from '../core/scheduler-types.ts';
import { sqlState, type Queryable } from './db.ts';
import type { NewEvent } from './events.ts';
import { CLAIM_COLUMNS, parseStepStates, toClaimed, type AttemptFence, type AttemptUsage, type ClaimRow, type ClaimedStep, type StepStates } from './step-runs.ts';
import { runFinishValues, type RunFinish, type UsageDelta } from './runs.ts';

/** A run's state as a quick completion decides from it. */
export interface RunSnapshot {
  status: RunStatus;
  mode: RunMode;
  /** weft_step_states' text: compared, not parsed, by the database. */
  statesText: string;
  steps: StepStates;
}

/** The run's state now, read without a lock (undefined: no such run). */
export async function readRunSnapshot(q: Queryable, runId: string): Promise<RunSnapshot | undefined> {
  const { rows } = await q.query<{ status: RunStatus; mode: RunMode; states: string | null }>(
    'SELECT status, mode, weft_step_states(id) AS states FROM runs WHERE id = $1',
    [runId],
  );
  const row = rows[0];
  return row ? snapshot(row.status, row.mode, row.states) : undefined;
}

function snapshot(status: RunStatus, mode: RunMode, statesText: string | null): RunSnapshot {
  return { status, mode, statesText: statesText ?? '', steps: parseStepStates(statesText) };
}

/** The snapshot of a running auto-mode run whose states a write just returned. */
export function runningSnapshot(statesText: string | null): RunSnapshot {
  return snapshot('running', 'auto', statesText);
}

/** The run changed since its snapshot was read: decide again from `current` (read under the lock). */
export class StaleSnapshot extends Error {
  constructor(readonly current: RunSnapshot) {
    super('the run changed since its step states were read');
  }
}

export interface QuickCompletion extends AttemptFence {
  expected: RunSnapshot;
  at: Date;
  output: unknown;
  branch: string | null;
  durationMs: number;
  usage: AttemptUsage | undefined;
  runUsage: UsageDelta | undefined;
  events: readonly NewEvent[];
  queue: readonly string[];
  skips: readonly { stepId: string; reason: string }[];
  claim: { stepId: string; leaseUntil: Date } | undefined;
  /** The run's end, when this completion finishes it. */
  finish: RunFinish | undefined;
}

/**
 * Applies a quick completion. Returns the claimed successor (with the run's states after this
 * write, for its own quick completion) or undefined when nothing was claimed; throws
 * StaleSnapshot when the run moved, and WEFT_LEASE_LOST when the attempt lost its lease.
 */
export async function completeQuickly(q: Queryable, c: QuickCompletion): Promise<{ claimed: ClaimedStep; snapshot: RunSnapshot } | undefined> {
  let rows: (ClaimRow & { states: string })[];
  try {
    ({ rows } = await q.query<ClaimRow & { states: string }>(
      `SELECT ${CLAIM_COLUMNS}
       FROM weft_complete_attempt($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $15, $16, $17, $18,
         $19::text[], $20::text[], $21::int[], $22::jsonb[], $23::text[], $24::text[], $25::text[], $26, $27,
         $28, $29::jsonb, $30::jsonb)`,
      [
        c.runId, c.expected.statesText, c.at,
        c.runUsage?.tokensIn ?? 0, c.runUsage?.tokensOut ?? 0, c.runUsage?.costUsd ?? 0, c.runUsage?.simulated ?? false,
        c.stepId, c.attempt, c.workerId, JSON.stringify(c.output ?? null), c.branch, c.durationMs,
        c.usage?.provider ?? null, c.usage?.model ?? null, c.usage?.tokensIn ?? null, c.usage?.tokensOut ?? null, c.usage?.costUsd ?? null,
        c.events.map((e) => e.stepId), c.events.map((e) => e.type), c.events.map((e) => e.attempt), c.events.map((e) => JSON.stringify(e.data)),
        c.queue, c.skips.map((s) => s.stepId), c.skips.map((s) => s.reason),
        c.claim?.stepId ?? null, c.claim?.leaseUntil ?? null,
        ...(c.finish ? runFinishValues(c.finish) : [null, null, null]),
      ],
    ));
  } catch (error) {
    const state = sqlState(error);
    if (state === 'WF409') {
      const current = JSON.parse((error as { detail?: string }).detail ?? '{}') as { status: RunStatus; mode: RunMode; states: string | null };
      throw new StaleSnapshot(snapshot(current.status, current.mode, current.states));
    }
    if (state === 'WF410') throw new WeftError('WEFT_LEASE_LOST', `step attempt no longer holds its lease (run ${c.runId})`);
    throw error;
  }
  const row = rows[0];
  if (!row) return undefined;
  return { claimed: toClaimed(row), snapshot: runningSnapshot(row.states) };
}
