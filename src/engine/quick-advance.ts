/**
 * The worker's common step completion, in one statement. The worker decides from the run's
 * step states it already holds — returned with the step it runs by the completion that
 * claimed it (a quick one, advance(), the run's start, or the worker's read after a claim from
 * the queue) — and hands the fence, the output and the decision's writes to weft_complete_attempt, which applies them only if the run still has exactly those states
 * (store/quick-completion.ts). advance() does the same in five round trips (BEGIN, lock,
 * fence, writes, COMMIT), holding the run lock across them.
 *
 * Only what advance() would write in its last statement goes this way: a success of the run's
 * only step in flight whose decision appends events, queues, skips or claims steps. A decision
 * that finishes, fails, retries, waits or changes the run's status, a run that is not running
 * in auto mode, files to store, no states held, or a second stale answer: the caller uses
 * advance(), which decides again under the lock.
 */
import { decide } from '../core/scheduler.ts';
import type { Db } from '../store/db.ts';
import type { NewEvent } from '../store/events.ts';
import { completeQuickly, StaleSnapshot, type RunSnapshot } from '../store/quick-completion.ts';
import type { UsageDelta } from '../store/runs.ts';
import type { AttemptUsage, ClaimedStep } from '../store/step-runs.ts';
import { aloneInFlight, isQuickPlan, planWrites, type AdvanceDeps } from './advance.ts';

export interface QuickSuccess {
  /** The clock: each try takes its time from it, so a second one is later than the change that made the first stale. */
  now: () => Date;
  workerId: string;
  output: unknown;
  branch: string | null;
  durationMs: number;
  usage: AttemptUsage | undefined;
  runUsage: UsageDelta | undefined;
  /** The attempt's own event (step_succeeded). */
  events: NewEvent[];
  claimFor: { workerId: string; leaseUntil: Date } | undefined;
}

export type QuickResult = { claimed: ClaimedStep; snapshot: RunSnapshot } | { claimed: undefined };

/**
 * Completes a succeeded attempt quickly. undefined: not a quick case, nothing was written —
 * use advance(). Throws WEFT_LEASE_LOST when the attempt lost its lease; any other error
 * (a deadlock, a dropped connection) also wrote nothing, and advance() may still succeed.
 */
export async function completeSucceeded(
  db: Db,
  deps: AdvanceDeps,
  c: ClaimedStep,
  held: RunSnapshot | undefined,
  s: QuickSuccess,
): Promise<QuickResult | undefined> {
  if (!held) return undefined;
  let snapshot = held;
  let at = s.now();
  const wf = await deps.versions.get(db, c.versionId);
  for (let tries = 0; tries < 2; tries++) {
    const { steps } = snapshot;
    // Another step of the run in flight would likely complete first and make the snapshot
    // stale (a fan-out's siblings all would): advance() waits for the lock instead.
    if (snapshot.status !== 'running' || snapshot.mode !== 'auto' || !aloneInFlight(steps, c.stepId)) return undefined;
    const decision = decide(wf, { status: 'running', steps }, { type: 'step_succeeded', stepId: c.stepId, branch: s.branch }, deps.random);
    // A decision that changes the run's status carries a command isQuickPlan refuses.
    const plan = planWrites({ at, events: s.events, claimFor: s.claimFor }, decision, 'running', (id) => (steps[id]?.attempt ?? 0) + 1);
    if (!isQuickPlan(plan)) return undefined;
    try {
      const done = await completeQuickly(db, {
        runId: c.runId, stepId: c.stepId, attempt: c.attempt, workerId: s.workerId, expected: snapshot,
        at, output: s.output, branch: s.branch, durationMs: s.durationMs, usage: s.usage, runUsage: s.runUsage,
        events: plan.events, queue: plan.queue, skips: plan.skips,
        claim: plan.claimId === undefined ? undefined : { stepId: plan.claimId, leaseUntil: s.claimFor!.leaseUntil },
      });
      return done ?? { claimed: undefined };
    } catch (error) {
      if (!(error instanceof StaleSnapshot)) throw error;
      snapshot = error.current;
      at = s.now();
    }
  }
  return undefined;
}
