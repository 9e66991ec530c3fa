/**
 * advance: the one transaction shape that moves a run forward. Lock the run (and read every
 * step's state) → run the caller's fence → ask the pure scheduler → write its commands and
 * the events → optionally claim one newly ready step for the calling worker. Completing a
 * step, a guard, a failure, a lease expiry, cancel, pause and resume all go through here.
 */
import type { CompiledWorkflow } from '../core/compiled.ts';
import { WeftError, toErrorRecord, type ErrorRecord } from '../core/errors.ts';
import { evaluateExpression } from '../core/expressions.ts';
import { decide, type SchedulerDecision } from '../core/scheduler.ts';
import { TERMINAL_STEP, type Random, type RunMode, type RunState, type RunStatus, type SchedulerCommand, type SchedulerEvent } from '../core/scheduler-types.ts';
import type { Queryable } from '../store/db.ts';
import type { NewEvent } from '../store/events.ts';
import { readRunSnapshot, type RunSnapshot } from '../store/quick-completion.ts';
import { finishRun, loadRunScope, lockRun, setRunStatus, type LockedRun, type UsageDelta } from '../store/runs.ts';
import {
  failStep, holdStep, loadStepStates, reopenSteps, scheduleRetry, waitSteps, writeDecision,
  type ClaimedStep, type ReopenedStep, type StepStates,
} from '../store/step-runs.ts';
import type { VersionCache } from './version-cache.ts';

export interface AdvanceDeps {
  versions: VersionCache;
  random: Random;
}

export interface AdvanceRequest {
  runId: string;
  event: SchedulerEvent;
  at: Date;
  usage?: UsageDelta;
  /**
   * Runs under the run lock before deciding and returns the run's step states (a fenced write
   * reads them in the same statement); undefined aborts with WEFT_LEASE_LOST. It may also throw
   * (e.g. WEFT_CONFLICT) to refuse a request the locked state does not allow.
   */
  fence?: (tx: Queryable, run: LockedRun) => Promise<StepStates | undefined>;
  /** Sees the decision (and what it was decided from) before anything of it is written; throws to roll back. */
  check?: (decision: SchedulerDecision, wf: CompiledWorkflow, state: RunState) => void;
  /** Events to record before the decision's own (e.g. the attempt's outcome). */
  events?: NewEvent[];
  /** Run statuses this request is valid in; others answer WEFT_CONFLICT. */
  allowedFrom?: readonly RunStatus[];
  /** Claim one step the decision makes ready for this worker instead of queueing it (only when the run ends up running). */
  claimFor?: { workerId: string; leaseUntil: Date } | undefined;
}

export interface AdvanceResult {
  status: RunStatus;
  finished: boolean;
  claimed: ClaimedStep | undefined;
  /** The run's states after this write, when the claimed step can complete quickly (see snapshotForQuickCompletion). */
  snapshot?: RunSnapshot;
  /** The decision scheduled (or held) a retry. */
  retried: boolean;
}

export async function advance(tx: Queryable, deps: AdvanceDeps, req: AdvanceRequest): Promise<AdvanceResult> {
  const locked = await lockRun(tx, req.runId, req.at, req.usage);
  if (!locked) throw new WeftError('WEFT_NOT_FOUND', `run ${req.runId} not found`);
  if (req.allowedFrom && !req.allowedFrom.includes(locked.status)) {
    throw new WeftError('WEFT_CONFLICT', `run ${req.runId} is ${locked.status}: ${req.event.type.replace('run_', '')} is not allowed`, {
      details: { status: locked.status },
    });
  }
  const steps = req.fence ? await req.fence(tx, locked) : await loadStepStates(tx, req.runId);
  if (!steps) throw new WeftError('WEFT_LEASE_LOST', `step attempt no longer holds its lease (run ${req.runId})`);
  const wf = await deps.versions.get(tx, locked.versionId);
  const state: RunState = locked.mode === 'step' ? { status: locked.status, steps, mode: locked.mode } : { status: locked.status, steps };
  const decision = decide(wf, state, req.event, deps.random);
  req.check?.(decision, wf, state);
  const result = await applyCommands(tx, wf, { ...req, at: locked.at }, decision, locked, (stepId) => (steps[stepId]?.attempt ?? 0) + 1);
  const retried = decision.commands.some((c) => c.type === 'retry_step' || c.type === 'hold_step');
  const snapshot = result.claimed && (await snapshotForQuickCompletion(tx, locked.mode, decision.state, result.claimed));
  return { status: decision.state.status, retried, ...result, ...(snapshot ? { snapshot } : {}) };
}

/** No other step of the run is queued or running: a quick completion of `stepId` will likely find the states it decided from. */
export function aloneInFlight(steps: StepStates, stepId: string): boolean {
  return Object.entries(steps).every(([id, s]) => id === stepId || (s.status !== 'queued' && s.status !== 'running'));
}

/**
 * The run's states after a claim, read in the claiming transaction, when the claimed step can
 * complete quickly (quick-advance.ts): an auto-mode run, the step alone in flight, and either
 * another step still to run or no budget (a completion that finishes a run with a budget goes
 * through advance(), which closes its approvals, so the read would be wasted).
 */
export async function snapshotForQuickCompletion(
  tx: Queryable,
  mode: RunMode,
  state: RunState,
  claimed: Pick<ClaimedStep, 'runId' | 'stepId' | 'budgetUsd'>,
): Promise<RunSnapshot | undefined> {
  return snapshotWorthReading(mode, state, claimed.stepId, claimed.budgetUsd) ? readRunSnapshot(tx, claimed.runId) : undefined;
}

/** Whether a step claimed in `state` can complete quickly, so that its run's states are worth reading. */
export function snapshotWorthReading(mode: RunMode, state: RunState, stepId: string, budgetUsd: number | null): boolean {
  return mode === 'auto' && aloneInFlight(state.steps, stepId)
    && (budgetUsd === null || Object.entries(state.steps).some(([id, s]) => id !== stepId && !TERMINAL_STEP.has(s.status)));
}

/** A write carried out by its own statement, in decision order. */
type DirectWrite =
  | { type: 'retry'; stepId: string; availableAt: Date }
  | { type: 'hold'; stepId: string }
  | { type: 'fail'; stepId: string; error: ErrorRecord }
  | { type: 'status'; from: RunStatus; to: RunStatus };

/** What one decision writes, worked out before anything is written. */
export interface WritePlan {
  /** The request's own events, then the commands', then step_started and step_queued (finishing adds the run's). */
  events: NewEvent[];
  queue: string[];
  skips: { stepId: string; reason: string }[];
  cancels: string[];
  waits: string[];
  reopened: ReopenedStep[];
  direct: DirectWrite[];
  finish: Extract<SchedulerCommand, { type: 'finish_run' }> | undefined;
  /** The one step made ready that the calling worker claims instead of queueing it. */
  claimId: string | undefined;
}

/** Groups a decision's commands into the writes that carry them out (pure). */
export function planWrites(
  req: Pick<AdvanceRequest, 'at' | 'events' | 'claimFor'>,
  decision: SchedulerDecision,
  statusBefore: RunStatus,
  nextAttempt: (stepId: string) => number,
): WritePlan {
  const plan: WritePlan = {
    events: [...(req.events ?? [])], queue: [], skips: [], cancels: [], waits: [], reopened: [], direct: [],
    finish: undefined, claimId: undefined,
  };
  const { events } = plan;
  for (const cmd of decision.commands) {
    switch (cmd.type) {
      case 'queue_step':
        plan.queue.push(cmd.stepId);
        break;
      case 'wait_step':
        plan.waits.push(cmd.stepId);
        events.push(stepEvent(cmd.stepId, 'step_waiting', null, {}));
        break;
      case 'restart_step':
        // Re-opened first, then queued (or claimed) like any ready step.
        plan.reopened.push({ stepId: cmd.stepId, from: 'failed', attempt: cmd.attempt });
        plan.queue.push(cmd.stepId);
        break;
      case 'reset_step':
        plan.reopened.push({ stepId: cmd.stepId, from: cmd.from, attempt: cmd.attempt });
        events.push(stepEvent(cmd.stepId, 'step_reset', null, { from: cmd.from }));
        break;
      case 'retry_step': {
        const availableAt = new Date(req.at.getTime() + cmd.delayMs);
        plan.direct.push({ type: 'retry', stepId: cmd.stepId, availableAt });
        events.push(stepEvent(cmd.stepId, 'step_retry_scheduled', cmd.attempt, {
          delay_ms: cmd.delayMs, available_at: availableAt.toISOString(), error: cmd.error,
        }));
        break;
      }
      case 'hold_step':
        // Paused: the retry waits for resume instead of a timer.
        plan.direct.push({ type: 'hold', stepId: cmd.stepId });
        events.push(stepEvent(cmd.stepId, 'step_retry_scheduled', cmd.attempt, { held_until_resume: true, error: cmd.error }));
        break;
      case 'skip_step':
        plan.skips.push({ stepId: cmd.stepId, reason: cmd.reason });
        events.push(stepEvent(cmd.stepId, 'step_skipped', null, { reason: cmd.reason }));
        break;
      case 'fail_step':
        plan.direct.push({ type: 'fail', stepId: cmd.stepId, error: cmd.error });
        events.push(stepEvent(cmd.stepId, 'step_failed', null, { error: cmd.error }));
        break;
      case 'cancel_step':
        plan.cancels.push(cmd.stepId);
        events.push(stepEvent(cmd.stepId, 'step_cancelled', null, {}));
        break;
      case 'set_run_status':
        plan.direct.push({ type: 'status', from: statusBefore, to: cmd.status });
        events.push(runStatusEvent(statusBefore, cmd.status));
        break;
      case 'finish_run':
        plan.finish = cmd;
        break;
      default:
        assertNever(cmd);
    }
  }
  // One successor made ready here is claimed by the completing worker (no queue hop); the
  // rest are queued for anyone. Not in a paused run (a retry queues there; nothing runs).
  if (req.claimFor && plan.queue.length > 0 && decision.state.status === 'running') {
    plan.claimId = plan.queue.shift()!;
    events.push(stepEvent(plan.claimId, 'step_started', nextAttempt(plan.claimId), { worker: req.claimFor.workerId }));
  }
  for (const stepId of plan.queue) events.push(stepEvent(stepId, 'step_queued', null, {}));
  return plan;
}

/** The plan only appends events, queues, skips, claims or finishes the run: a quick completion can carry it (see quick-completion.ts). */
export function isQuickPlan(plan: WritePlan): boolean {
  return plan.direct.length === 0 && plan.reopened.length === 0 && plan.waits.length === 0 && plan.cancels.length === 0;
}

/** The writes for each command, grouped so that a decision costs few statements. */
async function applyCommands(
  tx: Queryable,
  wf: CompiledWorkflow,
  req: AdvanceRequest,
  decision: SchedulerDecision,
  locked: LockedRun,
  nextAttempt: (stepId: string) => number,
): Promise<{ finished: boolean; claimed: ClaimedStep | undefined }> {
  const { runId, at } = req;
  const plan = planWrites(req, decision, locked.status, nextAttempt);
  for (const w of plan.direct) {
    if (w.type === 'retry') await scheduleRetry(tx, runId, w.stepId, w.availableAt);
    else if (w.type === 'hold') await holdStep(tx, runId, w.stepId);
    else if (w.type === 'fail') await failStep(tx, runId, w.stepId, w.error, at);
    else await setRunStatus(tx, runId, w.from, w.to, at);
  }
  // Re-opened steps first: a later command of this decision may queue, wait or skip them.
  if (plan.reopened.length > 0) await reopenSteps(tx, runId, plan.reopened);
  if (plan.waits.length > 0) await waitSteps(tx, runId, plan.waits);
  // Approvals exist only for runs with a budget (kind 'budget'): other runs skip closing them.
  if (plan.finish) await finishWithOutputs(tx, wf, runId, plan.finish, at, plan.events, locked.budgetUsd !== null);
  const { claimId } = plan;
  const claimed = await writeDecision(tx, {
    runId, at, events: plan.events, queue: plan.queue, skips: plan.skips, cancels: plan.cancels,
    claim: claimId === undefined ? undefined : { stepId: claimId, workerId: req.claimFor!.workerId, leaseUntil: req.claimFor!.leaseUntil },
  });
  if (plan.cancels.length > 0) await tx.query(`SELECT pg_notify('weft_control', $1)`, [`cancel:${runId}`]);
  return { finished: plan.finish !== undefined, claimed };
}

/** A succeeded run evaluates its `outputs` bindings; if that fails, the run fails with the reason. */
async function finishWithOutputs(
  tx: Queryable,
  wf: CompiledWorkflow,
  runId: string,
  cmd: Extract<SchedulerCommand, { type: 'finish_run' }>,
  at: Date,
  events: NewEvent[],
  closeApprovals: boolean,
): Promise<void> {
  let status = cmd.status;
  let error: ErrorRecord | undefined = cmd.error;
  let outputs: Record<string, unknown> | undefined;
  if (status === 'succeeded') {
    try {
      outputs = await evaluateOutputs(tx, wf, runId);
    } catch (e) {
      status = 'failed';
      error = toErrorRecord(e);
    }
  }
  await finishRun(tx, runId, { status, outputs, error, at, closeApprovals });
  events.push(finishEvent(status, error));
}

/** The event that records a run's end. */
export function finishEvent(status: 'succeeded' | 'failed' | 'cancelled', error: ErrorRecord | undefined): NewEvent {
  const type = status === 'succeeded' ? 'run_succeeded' : status === 'failed' ? 'run_failed' : 'run_cancelled';
  return runEvent(type, error ? { error } : {});
}

async function evaluateOutputs(tx: Queryable, wf: CompiledWorkflow, runId: string): Promise<Record<string, unknown>> {
  if (!wf.definition.outputs) return {};
  const { inputs, context, outputs } = await loadRunScope(tx, runId, wf.outputRefs);
  return evaluateOutputBindings(wf, inputs, context, outputs);
}

/** The workflow's `outputs` bindings evaluated over the run's inputs, context and the outputs of `wf.outputRefs`; throws what an expression throws. */
export async function evaluateOutputBindings(
  wf: CompiledWorkflow,
  inputs: Record<string, unknown>,
  context: Record<string, unknown>,
  stepOutputs: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const scope = { input: inputs, context, ...stepOutputs };
  const result: Record<string, unknown> = {};
  for (const [name, expr] of Object.entries(wf.definition.outputs ?? {})) {
    const value = await evaluateExpression(expr, scope);
    result[name] = value === undefined ? null : value;
  }
  return result;
}

function stepEvent(stepId: string, type: NewEvent['type'], attempt: number | null, data: Record<string, unknown>): NewEvent {
  return { stepId, type, attempt, data };
}

function runEvent(type: NewEvent['type'], data: Record<string, unknown>): NewEvent {
  return { stepId: null, type, attempt: null, data };
}

/** paused → run_paused; out of paused → run_resumed; → waiting: run_waiting; → running otherwise (a trigger, a retry re-opening a failed run): run_running. */
function runStatusEvent(from: RunStatus, to: RunStatus): NewEvent {
  if (to === 'paused') return runEvent('run_paused', {});
  if (from === 'paused') return runEvent('run_resumed', to === 'running' ? {} : { status: to });
  return runEvent(to === 'waiting' ? 'run_waiting' : 'run_running', { from });
}

function assertNever(value: never): never {
  throw new Error(`unhandled scheduler command: ${JSON.stringify(value)}`);
}
