/** The append-only run event log. */
import type { Queryable } from './db.ts';

export type RunEventType =
  | 'run_created'
  | 'run_paused'
  | 'run_resumed'
  | 'run_succeeded'
  | 'run_failed'
  | 'run_cancelled'
  | 'step_queued'
  | 'step_started'
  | 'step_succeeded'
  | 'step_attempt_failed'
  | 'step_retry_scheduled'
  | 'step_failed'
  | 'step_skipped'
  | 'step_cancelled'
  | 'lease_expired'
  // step controls (step mode, manual retry)
  | 'run_waiting'
  | 'run_running'
  | 'step_waiting'
  | 'step_triggered'
  | 'step_retry_requested'
  | 'step_reset'
  // AI steps: partial output as it streams; budget approvals
  | 'step_output_delta'
  | 'approval_requested'
  | 'approval_decided';

export interface NewEvent {
  stepId: string | null;
  type: RunEventType;
  attempt: number | null;
  data: Record<string, unknown>;
}

export interface RunEvent extends NewEvent {
  id: string;
  runId: string;
  createdAt: Date;
}

/**
 * Appends events outside a decision (e.g. streamed output): one statement, no run lock. Events
 * that belong to a transition go through writeDecision with it instead.
 */
export async function appendEvents(q: Queryable, runId: string, at: Date, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await q.query(
    `INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
     SELECT $1, e.step_id, e.type, e.attempt, e.data, $2
     FROM unnest($3::text[], $4::text[], $5::int[], $6::jsonb[]) AS e(step_id, type, attempt, data)`,
    [runId, at, events.map((e) => e.stepId), events.map((e) => e.type), events.map((e) => e.attempt), events.map((e) => JSON.stringify(e.data))],
  );
}

export async function listEvents(q: Queryable, runId: string, afterId = '0', limit = 1000): Promise<RunEvent[]> {
  const { rows } = await q.query<{
    id: string; run_id: string; step_id: string | null; type: RunEventType; attempt: number | null;
    data: Record<string, unknown>; created_at: Date;
  }>(
    `SELECT id::text AS id, run_id, step_id, type, attempt, data, created_at FROM run_events
     WHERE run_id = $1 AND id > $2::bigint ORDER BY run_events.id LIMIT $3`,
    [runId, afterId, limit],
  );
  return rows.map((r) => ({
    id: r.id, runId: r.run_id, stepId: r.step_id, type: r.type, attempt: r.attempt, data: r.data, createdAt: r.created_at,
  }));
}

// ---------------------------------------------------------------------------------------------
// The commit-ordered feed (migration 0002). Event ids come from a sequence, so a transaction can
// commit a lower id after a reader has passed a higher one; ordering by (tx, id) and reading only
// below the oldest running transaction (`pg_snapshot_xmin`) makes every read a prefix that later
// commits can only extend. Both parts stay decimal text in SQL results: xid8 and bigint exceed
// 2^53, and the two drivers would parse them differently. ORDER BY names the table's columns
// (`e.tx`), because a bare `tx` would sort by the text output column of that name.

/** A position in the feed: the writing transaction's id, then the event id. */
export interface EventPosition {
  tx: bigint;
  id: bigint;
}

/** The position before every event. */
export const FEED_START: EventPosition = { tx: 0n, id: 0n };

/** A run event with its feed position. */
export interface PositionedEvent extends RunEvent {
  tx: string;
}

/** A feed event with its run's owner, for per-owner fan-out. */
export interface FeedEvent extends PositionedEvent {
  ownerId: string;
}

/**
 * Events that end a run — for now: a failed run can be retried by hand, and its log then goes
 * on (step_retry_requested, …). Nothing follows run_succeeded or run_cancelled.
 */
export const TERMINAL_EVENT_TYPES: ReadonlySet<RunEventType> = new Set(['run_succeeded', 'run_failed', 'run_cancelled']);

interface PositionedRow {
  tx: string; id: string; run_id: string; step_id: string | null; type: RunEventType; attempt: number | null;
  data: Record<string, unknown>; created_at: Date;
}

function toPositioned(r: PositionedRow): PositionedEvent {
  return {
    tx: r.tx, id: r.id, runId: r.run_id, stepId: r.step_id, type: r.type, attempt: r.attempt, data: r.data, createdAt: r.created_at,
  };
}

/**
 * One run's committed events after `after`, in (tx, id) order; only events whose transaction
 * is older than every transaction still running, so nothing can later appear before them.
 * Uses run_events_run_tx (run_id, tx, id) as an index range.
 */
export async function listRunEventsAfter(q: Queryable, runId: string, after: EventPosition, limit = 500): Promise<PositionedEvent[]> {
  const { rows } = await q.query<PositionedRow>(
    `SELECT e.tx::text AS tx, e.id::text AS id, e.run_id, e.step_id, e.type, e.attempt, e.data, e.created_at FROM run_events e
     WHERE e.run_id = $1 AND (e.tx, e.id) > ($2::xid8, $3::bigint) AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.tx, e.id LIMIT $4`,
    [runId, after.tx.toString(), after.id.toString(), limit],
  );
  return rows.map(toPositioned);
}

/**
 * All runs' committed events after `after`, in (tx, id) order, each with its run's owner.
 * Uses run_events_feed (tx, id) as an index range, then the runs primary key per event.
 */
export async function listFeedEventsAfter(q: Queryable, after: EventPosition, limit = 1000): Promise<FeedEvent[]> {
  const { rows } = await q.query<PositionedRow & { owner_id: string }>(
    `SELECT e.tx::text AS tx, e.id::text AS id, e.run_id, e.step_id, e.type, e.attempt, e.data, e.created_at, r.owner_id
     FROM run_events e JOIN runs r ON r.id = e.run_id
     WHERE (e.tx, e.id) > ($1::xid8, $2::bigint) AND e.tx < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.tx, e.id LIMIT $3`,
    [after.tx.toString(), after.id.toString(), limit],
  );
  return rows.map((r) => ({ ...toPositioned(r), ownerId: r.owner_id }));
}

/**
 * The feed's head: the last committed event nothing can still appear before (FEED_START when
 * there is none). A reader that starts here sees exactly the events committed from now on.
 */
export async function readFeedHead(q: Queryable): Promise<EventPosition> {
  const { rows } = await q.query<{ tx: string; id: string }>(
    `SELECT e.tx::text AS tx, e.id::text AS id FROM run_events e
     WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY e.tx DESC, e.id DESC LIMIT 1`,
  );
  const row = rows[0];
  return row ? { tx: BigInt(row.tx), id: BigInt(row.id) } : FEED_START;
}

/**
 * The run's latest visible event (undefined when it has none): a stream resuming after it has
 * nothing to send yet. Not restricted to the commit-safe horizon — it answers "is there anything
 * after this cursor", where a committed event is enough. Uses run_events_run_tx backwards.
 */
export async function findLastRunEvent(q: Queryable, runId: string): Promise<{ position: EventPosition; type: RunEventType } | undefined> {
  const { rows } = await q.query<{ tx: string; id: string; type: RunEventType }>(
    `SELECT e.tx::text AS tx, e.id::text AS id, e.type FROM run_events e
     WHERE e.run_id = $1 ORDER BY e.tx DESC, e.id DESC LIMIT 1`,
    [runId],
  );
  const row = rows[0];
  return row ? { position: { tx: BigInt(row.tx), id: BigInt(row.id) }, type: row.type } : undefined;
}
