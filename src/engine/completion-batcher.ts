/**
 * Groups a worker's quick completions: while `maxInFlight` statements of them are in flight,
 * completions that arrive wait and go together in the next (weft_complete_attempts, migration
 * 0013), so under load several runs' steps share one statement and one commit, and when only
 * one completes at a time it goes alone, as before (completeQuickly), with no added wait.
 * Each caller gets its own item's result or refusal, as completeQuickly would give it.
 */
import type { Queryable } from '../store/db.ts';
import { completeQuickly, completeQuicklyMany, type QuickCompleted, type QuickCompletion } from '../store/quick-completion.ts';

interface Waiting {
  completion: QuickCompletion;
  resolve: (value: QuickCompleted) => void;
  reject: (error: unknown) => void;
}

export class CompletionBatcher {
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly db: Queryable,
    private readonly maxInFlight = 2,
    private readonly maxBatch = 16,
  ) {}

  complete(completion: QuickCompletion): Promise<QuickCompleted> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ completion, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) {
      const [one] = batch as [Waiting];
      try {
        one.resolve(await completeQuickly(this.db, one.completion));
      } catch (error) {
        one.reject(error);
      }
      return;
    }
    try {
      const outcomes = await completeQuicklyMany(this.db, batch.map((w) => w.completion));
      batch.forEach((w, i) => {
        const outcome = outcomes[i];
        if (!outcome) w.reject(new Error('weft_complete_attempts returned no row for an item'));
        else if (outcome.ok) w.resolve(outcome.value);
        else w.reject(outcome.error);
      });
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}
