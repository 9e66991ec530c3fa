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
export async function completeQuickly(q: Queryable, c: QuickCompletion): Promise<QuickCompleted> {
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
    const refusal = refusalOf(c, sqlState(error), (error as { detail?: string }).detail);
    throw refusal ?? error;
  }
  return completed(rows[0]);
}

export type QuickCompleted = { claimed: ClaimedStep; snapshot: RunSnapshot } | undefined;

/** What one item of a batch came to: its result, or the refusal completeQuickly would have thrown. */
export type BatchOutcome = { ok: true; value: QuickCompleted } | { ok: false; error: Error };

/**
 * Applies several quick completions in one statement (weft_complete_attempts, migration 0013):
 * each as completeQuickly would, in its own subtransaction, so a stale or fenced-out item is
 * refused alone. Items are sent in run-id order (concurrent batches lock runs in one order);
 * outcomes come back in the order given. Any other error fails the whole batch: nothing of it
 * was written.
 */
export async function completeQuicklyMany(q: Queryable, items: readonly QuickCompletion[]): Promise<BatchOutcome[]> {
  const order = items.map((_, i) => i).sort((a, b) => (items[a]!.runId < items[b]!.runId ? -1 : items[a]!.runId > items[b]!.runId ? 1 : a - b));
  const { rows } = await q.query<ClaimRow & { states: string; item: number; error: string | null; detail: string | null }>(
    `SELECT o_item AS item, o_error AS error, o_detail AS detail, ${CLAIM_COLUMNS} FROM weft_complete_attempts($1::jsonb)`,
    [JSON.stringify(order.map((i) => batchItem(items[i]!)))],
  );
  const outcomes: BatchOutcome[] = new Array(items.length);
  for (const row of rows) {
    const index = order[row.item - 1]!;
    const refusal = row.error === null ? undefined : refusalOf(items[index]!, row.error, row.detail ?? undefined);
    outcomes[index] = refusal ? { ok: false, error: refusal } : { ok: true, value: completed(row.run_id === null ? undefined : row) };
  }
  return outcomes;
}

function completed(row: (ClaimRow & { states: string }) | undefined): QuickCompleted {
  return row ? { claimed: toClaimed(row), snapshot: runningSnapshot(row.states) } : undefined;
}

/** WF409 (the run moved) and WF410 (the lease is lost) as completeQuickly reports them. */
function refusalOf(c: QuickCompletion, state: string | undefined, detail: string | undefined): Error | undefined {
  if (state === 'WF409') {
    const current = JSON.parse(detail ?? '{}') as { status: RunStatus; mode: RunMode; states: string | null };
    return new StaleSnapshot(snapshot(current.status, current.mode, current.states));
  }
  if (state === 'WF410') return new WeftError('WEFT_LEASE_LOST', `step attempt no longer holds its lease (run ${c.runId})`);
  return undefined;
}

/** One completion as weft_complete_attempts reads it: weft_complete_attempt's arguments by name (absent: NULL). */
function batchItem(c: QuickCompletion): Record<string, unknown> {
  return {
    run: c.runId, expected: c.expected.statesText, at: c.at.toISOString(),
    usage_in: c.runUsage?.tokensIn ?? 0, usage_out: c.runUsage?.tokensOut ?? 0, usage_cost: c.runUsage?.costUsd ?? 0,
    usage_simulated: c.runUsage?.simulated ?? false,
    step: c.stepId, attempt: c.attempt, worker: c.workerId, output: c.output ?? null, branch: c.branch, duration_ms: c.durationMs,
    provider: c.usage?.provider ?? null, model: c.usage?.model ?? null, tokens_in: c.usage?.tokensIn ?? null,
    tokens_out: c.usage?.tokensOut ?? null, cost: c.usage?.costUsd ?? null,
    event_steps: c.events.map((e) => e.stepId), event_types: c.events.map((e) => e.type), event_attempts: c.events.map((e) => e.attempt),
    event_data: c.events.map((e) => e.data),
    queue: c.queue, skip_steps: c.skips.map((x) => x.stepId), skip_reasons: c.skips.map((x) => x.reason),
    claim: c.claim?.stepId ?? null, lease_until: c.claim?.leaseUntil.toISOString() ?? null,
    // undefined drops the key: SQL NULL, as completeQuickly passes an absent outputs or error.
    finish: c.finish?.status ?? null, run_outputs: c.finish?.outputs, run_error: c.finish?.error,
  };
}
