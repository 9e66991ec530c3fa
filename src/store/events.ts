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
  | 'lease_expired';

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

/** Appends events in one statement (one round trip whatever their number). */
export async function insertEvents(q: Queryable, runId: string, events: readonly NewEvent[], at: Date): Promise<void> {
  if (events.length === 0) return;
  await q.query(
    `INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
     SELECT $1, e.step_id, e.type, e.attempt, e.data, $6
     FROM unnest($2::text[], $3::text[], $4::int[], $5::jsonb[]) AS e(step_id, type, attempt, data)`,
    [
      runId,
      events.map((e) => e.stepId),
      events.map((e) => e.type),
      events.map((e) => e.attempt),
      events.map((e) => JSON.stringify(e.data)),
      at,
    ],
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
