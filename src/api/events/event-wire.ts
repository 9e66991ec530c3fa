/**
 * How run events look on the wire (SSE `data:`, WebSocket `event`), and the cursor that names a
 * position in the commit-ordered event log.
 *
 * A cursor is `${tx}-${id}`, both decimal: the writing transaction's id (xid8) and the event id
 * (bigint). It is opaque to clients — they only echo back the `id` of the last event they saw
 * (SSE `Last-Event-ID`, `?after=`, WebSocket `after`). Ordering is by tx, then id; see
 * migration 0002 for why the event id alone is not a safe cursor.
 */
import { TERMINAL_EVENT_TYPES, type EventPosition, type PositionedEvent, type RunEventType } from '../../store/events.ts';

/** A position in the event log; `{0, 0}` is before every event. */
export type Cursor = EventPosition;

/** One run event as clients receive it. */
export interface WireEvent {
  /** The event's cursor: pass it back to resume after this event. */
  id: string;
  run_id: string;
  step_id: string | null;
  type: RunEventType;
  attempt: number | null;
  data: Record<string, unknown>;
  /** ISO 8601. */
  created_at: string;
}

const MAX_XID8 = (1n << 64n) - 1n;
const MAX_BIGINT = (1n << 63n) - 1n;
// At most 20 digits each (2^64 has 20), no sign, no leading '+', no whitespace.
const CURSOR = /^(\d{1,20})-(\d{1,20})$/;

/**
 * Parses a wire cursor; undefined when it is malformed or out of range (the route answers
 * 400). Callers must not pass a cursor they did not validate to the store: it goes into SQL as
 * a parameter, but an out-of-range value would fail there as a 500.
 */
export function parseCursor(text: string): Cursor | undefined {
  const m = CURSOR.exec(text);
  if (!m) return undefined;
  const tx = BigInt(m[1]!);
  const id = BigInt(m[2]!);
  if (tx > MAX_XID8 || id > MAX_BIGINT) return undefined;
  return { tx, id };
}

export function formatCursor(c: Cursor): string {
  return `${c.tx}-${c.id}`;
}

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareCursors(a: Cursor, b: Cursor): number {
  if (a.tx !== b.tx) return a.tx < b.tx ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

export function cursorOf(e: PositionedEvent): Cursor {
  return { tx: BigInt(e.tx), id: BigInt(e.id) };
}

export function toWireEvent(e: PositionedEvent): WireEvent {
  return {
    id: `${e.tx}-${e.id}`,
    run_id: e.runId,
    step_id: e.stepId,
    type: e.type,
    attempt: e.attempt,
    data: e.data,
    created_at: e.createdAt.toISOString(),
  };
}

/** run_succeeded, run_failed, run_cancelled: the run is over (a failed one until retried). */
export function isTerminalEvent(e: { type: RunEventType }): boolean {
  return TERMINAL_EVENT_TYPES.has(e.type);
}
