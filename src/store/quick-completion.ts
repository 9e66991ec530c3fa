/**
 * The common step completion in one statement: the caller decided from step states it read
 * earlier (as text: `statesText`), and the database applies the fence, the output and the
 * decision's writes only if the run still has exactly those states, under the run lock. No
 * BEGIN, no COMMIT, one round trip — where advance() takes five. One completion goes through
 * weft_complete_attempt (migrations 0006, 0008); several of different runs through
 * weft_complete_attempts (migration 0013), in one statement, each answered on its own.
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
 * What a quick completion came to: done (with the successor it claimed for the worker and the
 * run's states after the write, if any); stale (the run moved: `current` is its state read
 * under the lock, and nothing was written); or lease lost (nothing was written).
 */
export type QuickAnswer =
  | { kind: 'done'; claimed: { claimed: ClaimedStep; snapshot: RunSnapshot } | undefined }
  | { kind: 'stale'; current: RunSnapshot }
  | { kind: 'lease_lost' };

/**
 * Applies one quick completion (weft_complete_attempt). Throws what is not an answer: a
 * statement that failed (nothing written), or a connection lost on the way (written or not;
 * the fence of advance(), which the worker falls back to, settles which).
 */
export async function completeOne(q: Queryable, c: QuickCompletion): Promise<QuickAnswer> {
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
    if (state === 'WF409') return staleAnswer((error as { detail?: string }).detail);
    if (state === 'WF410') return { kind: 'lease_lost' };
    throw error;
  }
  const row = rows[0];
  return { kind: 'done', claimed: row && { claimed: toClaimed(row), snapshot: runningSnapshot(row.states) } };
}

/** The answer to a completion whose run moved, from the database's {status, mode, states}. */
function staleAnswer(detail: string | null | undefined): QuickAnswer {
  const current = JSON.parse(detail ?? '{}') as { status: RunStatus; mode: RunMode; states: string | null };
  return { kind: 'stale', current: snapshot(current.status, current.mode, current.states) };
}

type BatchRow = ClaimRow & { item: number; error: 'WF409' | 'WF410' | null; detail: string | null; states: string | null };

/**
 * Applies several quick completions, of different runs, in one statement
 * (weft_complete_attempts): each is checked, fenced and written as completeOne would alone,
 * and answered on its own, in the order given. Throws, for the whole batch, what completeOne
 * throws.
 */
export async function completeBatch(q: Queryable, items: readonly QuickCompletion[]): Promise<QuickAnswer[]> {
  const workerId = items[0]?.workerId;
  if (workerId === undefined) return [];
  if (items.some((c) => c.workerId !== workerId)) throw new WeftError('WEFT_INTERNAL', 'a batch of completions comes from one worker');
  const events = items.flatMap((c, i) => c.events.map((e) => ({ item: i + 1, e })));
  const queue = items.flatMap((c, i) => c.queue.map((stepId) => ({ item: i + 1, stepId })));
  const skips = items.flatMap((c, i) => c.skips.map((s) => ({ item: i + 1, s })));
  const finishes = items.map((c) => (c.finish ? runFinishValues(c.finish) : [null, null, null] as const));
  const { rows } = await q.query<BatchRow>(
    `SELECT o_item AS item, o_error AS error, o_detail AS detail, ${CLAIM_COLUMNS}
     FROM weft_complete_attempts($1, $2::uuid[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[], $7::numeric[], $8::boolean[],
       $9::text[], $10::int[], $11::jsonb[], $12::text[], $13::int[], $14::text[], $15::text[], $16::int[], $17::int[], $18::numeric[],
       $19::int[], $20::text[], $21::text[], $22::int[], $23::jsonb[], $24::int[], $25::text[], $26::int[], $27::text[], $28::text[],
       $29::text[], $30::timestamptz[], $31::text[], $32::jsonb[], $33::jsonb[])`,
    [
      workerId,
      items.map((c) => c.runId), items.map((c) => c.expected.statesText), items.map((c) => c.at.toISOString()),
      items.map((c) => c.runUsage?.tokensIn ?? 0), items.map((c) => c.runUsage?.tokensOut ?? 0),
      items.map((c) => c.runUsage?.costUsd ?? 0), items.map((c) => c.runUsage?.simulated ?? false),
      items.map((c) => c.stepId), items.map((c) => c.attempt), items.map((c) => JSON.stringify(c.output ?? null)),
      items.map((c) => c.branch), items.map((c) => c.durationMs),
      items.map((c) => c.usage?.provider ?? null), items.map((c) => c.usage?.model ?? null),
      items.map((c) => c.usage?.tokensIn ?? null), items.map((c) => c.usage?.tokensOut ?? null), items.map((c) => c.usage?.costUsd ?? null),
      events.map((x) => x.item), events.map((x) => x.e.stepId), events.map((x) => x.e.type), events.map((x) => x.e.attempt),
      events.map((x) => JSON.stringify(x.e.data)),
      queue.map((x) => x.item), queue.map((x) => x.stepId),
      skips.map((x) => x.item), skips.map((x) => x.s.stepId), skips.map((x) => x.s.reason),
      items.map((c) => c.claim?.stepId ?? null), items.map((c) => c.claim?.leaseUntil.toISOString() ?? null),
      finishes.map((f) => f[0]), finishes.map((f) => f[1]), finishes.map((f) => f[2]),
    ],
  );
  const answers: (QuickAnswer | undefined)[] = items.map(() => undefined);
  for (const row of rows) answers[row.item - 1] = toAnswer(row);
  return answers.map((a, i) => {
    if (!a) throw new WeftError('WEFT_INTERNAL', `no answer for item ${i + 1} of a batch of completions`);
    return a;
  });
}

function toAnswer(row: BatchRow): QuickAnswer {
  if (row.error === 'WF410') return { kind: 'lease_lost' };
  if (row.error === 'WF409') return staleAnswer(row.detail);
  return { kind: 'done', claimed: row.run_id === null ? undefined : { claimed: toClaimed(row), snapshot: runningSnapshot(row.states) } };
}

