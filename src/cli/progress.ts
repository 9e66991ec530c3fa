/**
 * Live progress of a run in the terminal, from the run event log: a line per transition, or,
 * on a TTY, a redrawn tree of steps (status, attempt, duration). Written to stderr so that
 * stdout carries only the run's outputs.
 */
import type { RunEvent } from '../store/events.ts';

interface StepView {
  status: string;
  attempt: number;
  durationMs: number | undefined;
  note: string;
}

const SYMBOL: Record<string, string> = {
  pending: '·', queued: '○', running: '◐', succeeded: '✔', failed: '✘', skipped: '↷', cancelled: '⊘', retrying: '↻',
};

const STATUS_OF: Partial<Record<RunEvent['type'], string>> = {
  step_queued: 'queued', step_started: 'running', step_succeeded: 'succeeded', step_failed: 'failed',
  step_skipped: 'skipped', step_cancelled: 'cancelled', step_retry_scheduled: 'retrying', lease_expired: 'retrying',
};

export class Progress {
  private readonly steps = new Map<string, StepView>();
  private drawnLines = 0;
  private runLine = '';

  constructor(private readonly out: NodeJS.WriteStream, stepIds: readonly string[], private readonly live: boolean) {
    for (const id of stepIds) this.steps.set(id, { status: 'pending', attempt: 0, durationMs: undefined, note: '' });
  }

  apply(events: readonly RunEvent[]): void {
    for (const e of events) {
      if (e.stepId) this.applyStep(e.stepId, e);
      else this.runLine = e.type.replace('run_', 'run ');
      if (!this.live) this.out.write(formatLine(e) + '\n');
    }
    if (this.live && events.length > 0) this.draw();
  }

  private applyStep(id: string, e: RunEvent): void {
    const view = this.steps.get(id) ?? { status: 'pending', attempt: 0, durationMs: undefined, note: '' };
    view.status = STATUS_OF[e.type] ?? view.status;
    if (e.attempt !== null) view.attempt = e.attempt;
    const ms = e.data['duration_ms'];
    if (typeof ms === 'number') view.durationMs = ms;
    const error = e.data['error'] as { message?: string } | undefined;
    view.note = error?.message ? error.message : typeof e.data['reason'] === 'string' ? `(${e.data['reason']})` : view.note;
    this.steps.set(id, view);
  }

  private draw(): void {
    const width = Math.max(...[...this.steps.keys()].map((k) => k.length), 4);
    const lines = [...this.steps].map(([id, v]) => {
      const duration = v.durationMs === undefined ? '' : `${v.durationMs} ms`;
      const attempt = v.attempt > 1 ? `attempt ${v.attempt}` : '';
      return `  ${SYMBOL[v.status] ?? '?'} ${id.padEnd(width)}  ${v.status.padEnd(9)} ${attempt.padEnd(10)} ${duration.padStart(9)}  ${v.note.slice(0, 60)}`;
    });
    if (this.runLine) lines.push(this.runLine);
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}A\x1b[J`);
    this.out.write(lines.join('\n') + '\n');
    this.drawnLines = lines.length;
  }
}

export function formatLine(e: RunEvent): string {
  const time = e.createdAt.toISOString().slice(11, 23);
  const parts = [time, e.stepId ? `${e.stepId}` : 'run', e.type];
  if (e.attempt !== null) parts.push(`attempt=${e.attempt}`);
  for (const k of ['duration_ms', 'delay_ms', 'reason', 'branch'] as const) {
    if (e.data[k] !== undefined) parts.push(`${k}=${String(e.data[k])}`);
  }
  const error = e.data['error'] as { code?: string; message?: string } | undefined;
  if (error) parts.push(`error=${error.code}: ${error.message}`);
  return parts.join(' ');
}
