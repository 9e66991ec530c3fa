/**
 * A worker's quick completions, sent in batches. A completion goes out at once when none of
 * the worker's completion statements is out; otherwise it waits, and when that statement
 * returns, every completion that waited meanwhile goes out in one statement. A completion
 * alone goes through weft_complete_attempt (migration 0008); two or more through
 * weft_complete_attempts (migration 0013), set-wise. Under load the steps of several chains
 * then share one round trip, one commit and one set of statements; a completion that finds
 * nothing out never waits.
 *
 * Why one statement out at a time: while it runs, the others gather into the next batch. With
 * two out, 4 workers × 8 slots ran a quarter fewer steps per second, each costing 0.62–0.69 ms
 * of PostgreSQL CPU instead of 0.43–0.53 (docs/BENCHMARKS.md, 2026-12-07).
 *
 * A batch holds one completion per run; a second one of the same run waits for the next
 * batch. Each item is checked against the states its run had, which another item of the same
 * run would change.
 */
import type { Queryable } from '../store/db.ts';
import { completeBatch, completeOne, type QuickAnswer, type QuickCompletion } from '../store/quick-completion.ts';

export interface CompletionSenders {
  one: (completion: QuickCompletion) => Promise<QuickAnswer>;
  /** Answers in the order of `completions` (two or more, of different runs). */
  many: (completions: readonly QuickCompletion[]) => Promise<QuickAnswer[]>;
}

interface Waiting {
  completion: QuickCompletion;
  resolve: (answer: QuickAnswer) => void;
  reject: (error: unknown) => void;
}

/** Completions in one statement at most: a worker holds no more attempts than its concurrency anyway. */
const MAX_BATCH = 64;

export class CompletionBatcher {
  private waiting: Waiting[] = [];
  private sending = false;

  constructor(private readonly send: CompletionSenders) {}

  /** Applies one completion, alone or with others; rejects with what its statement threw (see completeOne). */
  complete(completion: QuickCompletion): Promise<QuickAnswer> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ completion, resolve, reject });
      if (!this.sending) void this.sendWaiting();
    });
  }

  private async sendWaiting(): Promise<void> {
    this.sending = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.take();
        try {
          const answers = batch.length === 1
            ? [await this.send.one(batch[0]!.completion)]
            : await this.send.many(batch.map((w) => w.completion));
          batch.forEach((w, i) => w.resolve(answers[i]!));
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  /** The completions that go next: the longest waiting first, one per run. */
  private take(): Waiting[] {
    const runs = new Set<string>();
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    for (const w of this.waiting) {
      if (batch.length < MAX_BATCH && !runs.has(w.completion.runId)) {
        runs.add(w.completion.runId);
        batch.push(w);
      } else {
        rest.push(w);
      }
    }
    this.waiting = rest;
    return batch;
  }
}

/** A batcher that writes to the database; `sent` learns how many completions each statement carried. */
export function databaseBatcher(db: Queryable, sent: (completions: number) => void): CompletionBatcher {
  return new CompletionBatcher({
    one: (completion) => {
      sent(1);
      return completeOne(db, completion);
    },
    many: (completions) => {
      sent(completions.length);
      return completeBatch(db, completions);
    },
  });
}
