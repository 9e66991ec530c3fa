/**
 * Batches an attempt's streamed output (agent tokens) into `step_output_delta` events, so a
 * live stream shows text as it arrives without a row per token: a batch is written when
 * `flushMs` has passed since its first piece, or when it reaches `maxChars`. Writes are
 * serialised, so deltas keep their order (`seq` counts them from 0), and `close` waits for
 * the last one before the attempt's outcome is recorded, so every delta precedes it in the log.
 * Writing is best effort: a failed write is logged and the stream goes on (the final output is
 * what counts; deltas are a view of it).
 */
import type { Db } from '../store/db.ts';
import { appendEvents } from '../store/events.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';

export interface OutputStreamOptions {
  flushMs: number;
  maxChars: number;
}

export const DEFAULT_OUTPUT_STREAM: OutputStreamOptions = { flushMs: 100, maxChars: 4096 };

export class OutputStream {
  private pending = '';
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly deps: { db: Db; clock: Clock; log: Logger },
    private readonly attempt: { runId: string; stepId: string; attempt: number },
    private readonly options: OutputStreamOptions = DEFAULT_OUTPUT_STREAM,
  ) {}

  /** Adds a piece; never throws. Pieces after `close` are dropped. */
  readonly push = (text: string): void => {
    if (this.closed || typeof text !== 'string' || text.length === 0) return;
    this.pending += text;
    if (this.pending.length >= this.options.maxChars) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.options.flushMs);
  };

  /** Writes what is pending and waits for every write. */
  async close(): Promise<void> {
    this.flush();
    this.closed = true;
    await this.writing;
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const text = this.pending;
    this.pending = '';
    const seq = this.seq++;
    const { runId, stepId, attempt } = this.attempt;
    this.writing = this.writing.then(() =>
      appendEvents(this.deps.db, runId, new Date(this.deps.clock.now()), [{ stepId, type: 'step_output_delta', attempt, data: { seq, text } }]).catch((error: unknown) => {
        this.deps.log.warn('could not write streamed output', { run: runId, step: stepId, attempt, error: String(error) });
      }),
    );
  }
}
