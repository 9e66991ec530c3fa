/**
 * The worker's common step completion, in one statement. The worker decides from the run's
 * step states it already holds — returned with the step it runs by the completion that
 * claimed it (a quick one, advance(), the run's start, or the worker's read after a claim from
 * the queue) — and sends the fence, the output and the decision's writes, which the database
 * applies only if the run still has exactly those states (store/quick-completion.ts); the
 * worker's CompletionBatcher sends them alone or with other runs' completions in one statement.
 * advance() does the same in five round trips (BEGIN, lock, fence, writes, COMMIT), holding the
 * run lock across them.
 *
 * Only what advance() would write in its last statement goes this way: a success of the run's
 * only step in flight whose decision appends events, queues, skips or claims steps, or finishes
 * the run — when the run has no budget (whose approvals advance() closes) and its `outputs`
 * read only steps whose outputs the worker holds (its own, and those it read at the claim),
 * evaluated without error. A decision that fails, retries, waits or changes the run's status,
 * a run that is not running in auto mode, files to store, no states held, or a second stale
 * answer: the caller uses advance(), which decides again under the lock.
 */
import type { CompiledWorkflow } from '../core/compiled.ts';
import { decide } from '../core/scheduler.ts';
import type { SchedulerCommand } from '../core/scheduler-types.ts';
import type { Db } from '../store/db.ts';
import type { NewEvent } from '../store/events.ts';
import { WeftError } from '../core/errors.ts';
import type { QuickAnswer, QuickCompletion, RunSnapshot } from '../store/quick-completion.ts';
import type { RunFinish, UsageDelta } from '../store/runs.ts';
import type { AttemptUsage, ClaimedStep } from '../store/step-runs.ts';
import { aloneInFlight, evaluateOutputBindings, finishEvent, isQuickPlan, planWrites, type AdvanceDeps } from './advance.ts';

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

export type QuickResult = { claimed: ClaimedStep; snapshot: RunSnapshot } | { claimed: undefined; finished: boolean };

/** Sends one quick completion (alone, or in a batch: completion-batcher.ts) and answers it. */
export type SendCompletion = (completion: QuickCompletion) => Promise<QuickAnswer>;

/**
 * Completes a succeeded attempt quickly. undefined: not a quick case, nothing was written —
 * use advance(). Throws WEFT_LEASE_LOST when the attempt lost its lease; any other error
 * (a deadlock, a dropped connection) also wrote nothing, and advance() may still succeed.
 */
export async function completeSucceeded(
  db: Db,
  send: SendCompletion,
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
    const finish = plan.finish && (await quickFinish(wf, c, s.output, plan.finish));
    if (plan.finish && !finish) return undefined;
    const answer = await send({
      runId: c.runId, stepId: c.stepId, attempt: c.attempt, workerId: s.workerId, expected: snapshot,
      at, output: s.output, branch: s.branch, durationMs: s.durationMs, usage: s.usage, runUsage: s.runUsage,
      events: finish ? [...plan.events, finishEvent(finish.status, finish.error)] : plan.events, queue: plan.queue, skips: plan.skips,
      claim: plan.claimId === undefined ? undefined : { stepId: plan.claimId, leaseUntil: s.claimFor!.leaseUntil },
      finish,
    });
    if (answer.kind === 'done') return answer.claimed ?? { claimed: undefined, finished: finish !== undefined };
    if (answer.kind === 'lease_lost') throw new WeftError('WEFT_LEASE_LOST', `step attempt no longer holds its lease (run ${c.runId})`);
    snapshot = answer.current;
    at = s.now();
  }
  return undefined;
}

/**
 * The run's end as advance() would write it (finishWithOutputs), from what the worker holds:
 * undefined when it cannot be (a budget's approvals to close, an output read from a step the
 * worker did not read at the claim, an expression that fails — advance() records that failure).
 * `deps` were read when this step was claimed; any change to them since would have changed
 * the run's step states, which the statement compares.
 */
async function quickFinish(
  wf: CompiledWorkflow,
  c: ClaimedStep,
  output: unknown,
  cmd: Extract<SchedulerCommand, { type: 'finish_run' }>,
): Promise<RunFinish | undefined> {
  if (c.budgetUsd !== null) return undefined;
  if (cmd.status !== 'succeeded') return { status: cmd.status, outputs: undefined, error: cmd.error };
  const stepOutputs: Record<string, unknown> = {};
  for (const ref of wf.outputRefs) {
    if (ref === c.stepId) stepOutputs[ref] = asStoredJson(output);
    else if (Object.hasOwn(c.deps, ref)) stepOutputs[ref] = c.deps[ref];
    else return undefined;
  }
  try {
    return { status: 'succeeded', outputs: await evaluateOutputBindings(wf, c.inputs, c.context, stepOutputs), error: undefined };
  } catch {
    return undefined;
  }
}

/**
 * A plain JSON value as it reads back from a jsonb column, which is what advance() evaluates
 * outputs from: objects' keys ordered shorter first, then by their UTF-8 bytes.
 */
export function asStoredJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asStoredJson);
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value).map((k) => ({ k, b: Buffer.from(k, 'utf8') }));
  keys.sort((x, y) => x.b.length - y.b.length || Buffer.compare(x.b, y.b));
  const out: Record<string, unknown> = {};
  for (const { k } of keys) out[k] = asStoredJson((value as Record<string, unknown>)[k]);
  return out;
}
