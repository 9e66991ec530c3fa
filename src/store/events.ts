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
