/**
 * The pure scheduler: (compiled workflow, run state, one event) → (new state, commands).
 * No I/O and no clock: time only appears as the `delayMs` of a retry, randomness only
 * through the injected `random`. `decide` never mutates its inputs and returns fresh objects.
 *
 * Step lifecycle
 *   pending → queued (claimable) → running → succeeded | failed | skipped | cancelled.
 *   The engine moves queued → running and increments `attempt` when a worker claims a step;
 *   the scheduler never sees a claim, but the state it is given may contain running steps.
 *   In auto mode 'waiting' steps are treated like running ones (in flight, but they hold no
 *   lease). In step mode 'waiting' means "ready, awaiting a human trigger" (see "Step mode").
 *   `decide(…).state` is the input state with the event's own effect (for step_succeeded:
 *   status 'succeeded' and `branch`, which the engine writes itself with the output: there is
 *   no command for it) and every returned command applied:
 *     queue_step → 'queued'            retry_step → 'queued' (attempt unchanged)
 *     hold_step  → 'pending' (attempt unchanged; see "pause")
 *     skip_step  → 'skipped'           fail_step → 'failed'       cancel_step → 'cancelled'
 *     wait_step  → 'waiting'
 *     restart_step → 'queued', attemptBase := attempt      reset_step → 'pending', attemptBase := attempt
 *     finish_run → run status          set_run_status → run status
 *
 * Edges
 *   A need `{step, branch?}` is satisfied when `step` succeeded and (if `branch` is set)
 *   picked that branch; it is unsatisfied when `step` is terminal otherwise (failed, skipped,
 *   cancelled, or succeeded with another branch). A condition step itself is 'succeeded'
 *   whatever branch it picked.
 *
 * Deciding a pending step
 *   Only once every need is terminal (no step starts earlier, even under one_success).
 *   A step with no needs is queued (at run_started; in step mode "queued" here and below means
 *   wait_step, see "Step mode"). Otherwise by trigger rule:
 *     all_success: queue if every edge is satisfied, else skip;
 *     all_done:    queue;
 *     one_success: queue if at least one edge is satisfied, else skip.
 *   The skip reason is 'branch' when every unsatisfied edge is a branch mismatch of a
 *   succeeded condition step, else 'upstream'. Decisions run over `wf.order` (topological)
 *   in one pass, so skips cascade to a fixed point within a single `decide` call.
 *
 * Events (an event for a step in an unexpected status, for an unknown step, or for a run
 * that is already terminal yields no commands and an unchanged state: stale events are harmless.
 * Step events are handled the same in every non-terminal run status except 'paused'.)
 *   run_started       (run queued or running) queue the roots; a 'queued' run is first set to
 *                     'running'. An empty workflow finishes at once.
 *   step_succeeded    (step running|waiting) record success + branch, decide successors.
 *   step_guard_false  (step running: the engine evaluates `when` once it has claimed the step)
 *                     skip_step 'guard', decide successors.
 *   step_failed       (step running|waiting) if `error.retryable` and attempt < maxAttempts:
 *                     retry_step {attempt, delayMs: computeBackoff(retry, attempt), error}.
 *                     Otherwise fail_step; then with onError 'continue' the failed step is just
 *                     terminal (an unsatisfied edge for its dependents, which are decided), and
 *                     with onError 'fail' every other non-terminal step gets cancel_step (running
 *                     ones included: the engine aborts them) and the run gets
 *                     finish_run {status:'failed', error} naming the failed step.
 *   lease_expired     (step running) as step_failed with a retryable WEFT_LEASE_LOST error, with
 *                     LEASE_LOSS_ALLOWANCE attempts on top of the retry policy (see attemptLimit).
 *   run_cancelled     cancel_step every non-terminal step, finish_run 'cancelled'.
 *   run_paused        (run running|waiting) set_run_status 'paused'; nothing else changes (queued
 *                     steps stay queued — the engine must not let workers claim steps of a paused
 *                     run — running steps keep running, waiting steps keep waiting).
 *   run_resumed       (run paused) set_run_status 'running' (or 'waiting', see "Run status"),
 *                     queue every held step, and decide every pending step as usual.
 *   step_triggered    (step mode, run running|waiting, step waiting) queue_step.
 *   step_retry_requested  (step failed; run failed|running|waiting|paused — the one event a
 *                     finished run accepts, and only a failed one) see "Retry".
 *
 * Pause
 *   While paused, outcomes of running steps are still recorded and successors are decided, but
 *   no work is started: a step that would be queued stays 'pending' (no command), and a step
 *   that would be retried gets `hold_step` (→ 'pending', attempt unchanged, the failed
 *   attempt's error attached) instead of `retry_step`. Skips, failures and run completion still
 *   happen while paused. On resume a held step (pending with attempts in its family) is queued
 *   at once with `queue_step`: the backoff is not replayed (the pause stands in for it).
 *   A parked step (pending, `parked`: a budget pause handed its attempt back, see StepState)
 *   is treated like a held step: resume queues it, in step mode too (no second trigger).
 *
 * Step mode (state.mode 'step')
 *   Wherever auto mode would queue a step it has decided to run, step mode gives wait_step: the
 *   step waits for a human (step_triggered). Guards are still evaluated at execution, after the
 *   trigger; routing, skips and trigger rules are exactly those of auto mode. A retry (automatic,
 *   by policy) or a held retry is queued at once: the trigger admitted the step, not the attempt.
 *   Step outcome events for a waiting step are stale there (it never started).
 *
 * Run status (running ↔ waiting)
 *   After every decision that changed something in a run that is running or waiting (or was
 *   just resumed or reopened): the run is 'waiting' when no step is queued or running and at
 *   least one step is waiting; otherwise 'running'. One set_run_status carries the net change.
 *   Paused and finished runs are left alone.
 *
 * Retry (step_retry_requested)
 *   Which failed step: while one step's fail-fast (on_error 'fail') failure stands — it failed
 *   the run and cancelled whatever was not finished — only that step can be retried; other
 *   failed steps can be once it has been. So cancelled steps only ever exist in a cancelled run
 *   or in a run failed by the one fail-fast failure that cancelled them all.
 *   The failed step gets restart_step (queued, new attempt family: its retry budget and backoff
 *   count from here; no trigger needed even in step mode; queued even while paused, when the
 *   engine does not let it be claimed). A failed run gets set_run_status 'running' first.
 *   Then, in topological order, reset_step re-opens (→ pending, new attempt family):
 *     - every cancelled step, if the retried step is on_error 'fail' (its failure cancelled
 *       them — in a run that is not cancelled, only the fail-fast failure cancels);
 *     - every cancelled step, and every step skipped without running (attempt = attemptBase:
 *       an 'upstream' or 'branch' skip, never a 'guard' skip, which runs first), that needs a
 *       step re-opened before it;
 *     - in step mode, every waiting step that needs one (it was readied by the failure; it is
 *       decided again when its needs are done).
 *   Steps that succeeded (e.g. all_done dependents that ran anyway) and guard skips stay as
 *   they are (a failed one among them can be retried in turn once what it needs is finished).
 *   The retry is blocked (no commands; the engine answers with a conflict naming the step,
 *   see planRetry) by another fail-fast failure (above), while a need of the failed step is
 *   not finished (an earlier retry re-opened it), or while a step that needs a re-opened step
 *   has started or been admitted (queued, running, a held retry, or waiting in auto mode): no
 *   step is ever queued or in flight while one of its needs is not finished.
 *   The re-opened steps are then decided as usual (settle), so a reset step may get a second
 *   command in the same decision (its new verdict) — the only exception to "one command per
 *   step".
 *
 * Completion
 *   When every step is terminal and the run is not: finish_run 'succeeded' (steps failed under
 *   onError 'continue' and skipped steps do not fail the run), or 'failed' if a step failed
 *   under onError 'fail' (normally already handled when that step failed).
 *
 * Command order: set_run_status first (at most one), then step commands in topological order,
 * finish_run last. Each step gets at most one command per decision, except after reset_step.
 */
import type { CompiledRetry, CompiledStep, CompiledWorkflow } from './compiled.ts';
import type { ErrorRecord } from './errors.ts';
import { TERMINAL_RUN, TERMINAL_STEP } from './scheduler-types.ts';
import type {
  Random,
  RunMode,
  RunState,
  RunStatus,
  SchedulerCommand,
  SchedulerEvent,
  StepState,
  StepStatus,
} from './scheduler-types.ts';

/**
 * Added here (not in scheduler-types.ts): a retryable failure while the run is paused.
 * The engine writes status 'pending' (attempt unchanged) and records `error` as the outcome
 * of attempt `attempt`; the step is not claimable. The scheduler queues it on run_resumed.
 */
export interface HoldStepCommand {
  type: 'hold_step';
  stepId: string;
  attempt: number;
  error: ErrorRecord;
}

/** Everything the engine must be able to apply: the scheduler vocabulary plus hold_step. */
export type EngineCommand = SchedulerCommand | HoldStepCommand;

/** `Decision` with the engine-facing command union. */
export interface SchedulerDecision {
  state: RunState;
  commands: EngineCommand[];
}

/**
 * Extra attempts a step gets when its worker died or stalled (lease lost). A crash is not the
 * step's fault, so a step with no retry policy still survives one — as in Temporal, and unlike
 * n8n's "crashed" runs — but a step that kills every worker it lands on fails after a few.
 */
export const LEASE_LOSS_ALLOWANCE = 2;

/** How many attempts in total a failure with this error may have used before the step fails. */
export function attemptLimit(retry: CompiledRetry, error: ErrorRecord): number {
  return retry.maxAttempts + (error.code === 'WEFT_LEASE_LOST' ? LEASE_LOSS_ALLOWANCE : 0);
}

/** From (compiled workflow, current state, one event) to (new state, commands). Pure and deterministic given `random`. Never mutates its inputs. */
export function decide(wf: CompiledWorkflow, state: RunState, event: SchedulerEvent, random: Random): SchedulerDecision {
  const reopening = event.type === 'step_retry_requested' && state.status === 'failed';
  if (TERMINAL_RUN.has(state.status) && !reopening) return { state: copyState(state), commands: [] };
  const draft = new Draft(wf, state, random);
  // An unknown event type can only come from untyped input (a stored event of a newer version).
  if (!Object.hasOwn(handlers, event.type)) return draft.result();
  const handler = handlers[event.type] as (d: Draft, e: SchedulerEvent) => void;
  handler(draft, event);
  draft.reconcileStatus();
  return draft.result();
}

/**
 * Initial state for a new run: run 'running', every step 'pending' attempt 0, and the mode
 * when it is 'step'. (The engine then applies decide(…, {type:'run_started'}).)
 */
export function initialState(wf: CompiledWorkflow, mode: RunMode = 'auto'): RunState {
  const steps: Record<string, StepState> = {};
  for (const id of [...wf.order, ...Object.keys(wf.steps)]) put(steps, id, { status: 'pending', attempt: 0 });
  return mode === 'step' ? { status: 'running', steps, mode } : { status: 'running', steps };
}

/** Attempts of the step's current family (see StepState.attemptBase). */
export function familyAttempts(s: StepState): number {
  return s.attempt - (s.attemptBase ?? 0);
}

/** Delay before attempt `failedAttempt + 1`: exponential = baseMs * 2^(failedAttempt-1), fixed = baseMs; capped at maxMs; with jitter j the delay is drawn uniformly from [d*(1-j), d]. */
export function computeBackoff(retry: CompiledRetry, failedAttempt: number, random: Random): number {
  const n = Math.max(1, Math.floor(failedAttempt));
  const base = Math.max(0, retry.baseMs);
  const raw = retry.backoff === 'fixed' ? base : base * 2 ** (n - 1);
  const d = Math.min(raw, Math.max(0, retry.maxMs));
  const j = clamp01(retry.jitter);
  if (j === 0 || d === 0) return d;
  const r = clamp01(random());
  // ceil keeps the integer result inside [d*(1-j), d] (d is an integer for integer inputs).
  return Math.min(d, Math.ceil(d * (1 - j) + r * d * j));
}

// ---------------------------------------------------------------------------------------

/** Run statuses in which a failed step may be retried (see "Retry"). */
const RETRY_FROM: ReadonlySet<RunStatus> = new Set(['failed', 'running', 'waiting', 'paused']);

type Handlers = { [K in SchedulerEvent['type']]: (d: Draft, event: Extract<SchedulerEvent, { type: K }>) => void };

const handlers: Handlers = {
  run_started(d) {
    if (d.status === 'queued') d.emit({ type: 'set_run_status', status: 'running' });
    else if (d.status !== 'running') return;
    d.settle();
  },

  step_succeeded(d, e) {
    const s = d.step(e.stepId);
    if (!s || !d.inFlight(s)) return;
    const next: StepState = { ...s, status: 'succeeded' };
    if (e.branch !== undefined) next.branch = e.branch;
    d.put(e.stepId, next);
    d.changed = true;
    d.settle();
  },

  step_guard_false(d, e) {
    const s = d.step(e.stepId);
    if (!s || s.status !== 'running') return;
    d.emit({ type: 'skip_step', stepId: e.stepId, reason: 'guard' });
    d.settle();
  },

  step_failed(d, e) {
    const s = d.step(e.stepId);
    if (!s || !d.inFlight(s)) return;
    d.fail(e.stepId, e.error);
  },

  lease_expired(d, e) {
    const s = d.step(e.stepId);
    if (!s || s.status !== 'running') return;
    d.fail(e.stepId, {
      code: 'WEFT_LEASE_LOST',
      message: `lease on step "${e.stepId}" expired during attempt ${s.attempt} (the worker stopped heartbeating)`,
      retryable: true,
    });
  },

  run_cancelled(d) {
    d.cancelAll();
    d.emit({ type: 'finish_run', status: 'cancelled' });
  },

  run_paused(d) {
    if (d.status !== 'running' && d.status !== 'waiting') return;
    d.emit({ type: 'set_run_status', status: 'paused' });
  },

  run_resumed(d) {
    if (d.status !== 'paused') return;
    d.emit({ type: 'set_run_status', status: 'running' });
    d.settle();
  },

  step_triggered(d, e) {
    if (d.mode !== 'step' || (d.status !== 'running' && d.status !== 'waiting')) return;
    const s = d.step(e.stepId);
    if (!s || s.status !== 'waiting') return;
    d.emit({ type: 'queue_step', stepId: e.stepId });
  },

  step_retry_requested(d, e) {
    const s = d.step(e.stepId);
    if (!s || s.status !== 'failed' || !RETRY_FROM.has(d.status)) return;
    const plan = planRetry(d.wf, { status: d.status, steps: d.steps, mode: d.mode }, e.stepId);
    if (plan.blockedBy !== undefined) return;
    if (d.status === 'failed') d.emit({ type: 'set_run_status', status: 'running' });
    d.emit({ type: 'restart_step', stepId: e.stepId, attempt: s.attempt });
    for (const r of plan.resets) d.emit({ type: 'reset_step', ...r });
    d.settle();
  },
};

/** What a retry of a failed step would re-open, or the started step that blocks it (see "Retry"). */
export interface RetryPlan {
  /** reset_step commands, in topological order. */
  resets: { stepId: string; from: 'skipped' | 'cancelled' | 'waiting'; attempt: number }[];
  /**
   * Why the retry cannot happen now: another step's fail-fast failure failed the run (retry that
   * one first), a step it needs is not finished (an earlier retry re-opened it), or a step that
   * needs a step the retry would re-open has started (or been admitted).
   */
  blockedBy?: { stepId: string; status: StepStatus; relation: 'failure' | 'need' | 'dependent'; of: string };
}

/**
 * The "Retry" rule as a pure function, for the scheduler and for the engine's error messages.
 * `stepId` must be a failed step of the workflow.
 */
export function planRetry(wf: CompiledWorkflow, state: RunState, stepId: string): RetryPlan {
  const stepMode = state.mode === 'step';
  const reopened = new Set([stepId]);
  const resets: RetryPlan['resets'] = [];
  const cancelledByIt = own(wf.steps, stepId)?.onError === 'fail';
  for (const id of allIds(wf)) {
    if (id !== stepId && own(state.steps, id)?.status === 'failed' && own(wf.steps, id)?.onError === 'fail') {
      return { resets, blockedBy: { stepId: id, status: 'failed', relation: 'failure', of: stepId } };
    }
  }
  for (const n of own(wf.steps, stepId)?.needs ?? []) {
    const up = own(state.steps, n.step);
    if (up && !TERMINAL_STEP.has(up.status)) return { resets, blockedBy: { stepId: n.step, status: up.status, relation: 'need', of: stepId } };
  }
  for (const id of allIds(wf)) {
    const t = own(state.steps, id);
    const step = own(wf.steps, id);
    if (!t || !step || reopened.has(id)) continue;
    const need = step.needs.find((n) => reopened.has(n.step));
    if (need !== undefined && admitted(t, stepMode)) return { resets, blockedBy: { stepId: id, status: t.status, relation: 'dependent', of: need.step } };
    let from: 'skipped' | 'cancelled' | 'waiting' | undefined;
    if (t.status === 'cancelled' && (cancelledByIt || need !== undefined)) from = 'cancelled';
    else if (need === undefined) continue;
    else if (t.status === 'skipped' && familyAttempts(t) === 0) from = 'skipped';
    else if (t.status === 'waiting' && stepMode) from = 'waiting';
    if (from === undefined) continue;
    resets.push({ stepId: id, from, attempt: t.attempt });
    reopened.add(id);
  }
  return { resets };
}

/** Started, or decided to start: queued, running, a held retry or parked step, or (auto mode) waiting in flight. */
function admitted(s: StepState, stepMode: boolean): boolean {
  return s.status === 'queued' || s.status === 'running' || (s.status === 'waiting' && !stepMode)
    || (s.status === 'pending' && (familyAttempts(s) > 0 || s.parked === true));
}

type Verdict = 'wait' | 'queue' | 'upstream' | 'branch';

/** What a pending step's needs and trigger rule say, given the current step states. */
function verdict(step: CompiledStep, steps: Record<string, StepState>): Verdict {
  if (step.needs.length === 0) return 'queue';
  let satisfied = 0;
  let onlyBranchMismatches = true;
  for (const need of step.needs) {
    const up = own(steps, need.step);
    if (!up || !TERMINAL_STEP.has(up.status)) return 'wait';
    if (up.status === 'succeeded') {
      if (need.branch === undefined || up.branch === need.branch) satisfied++;
      // else: a branch mismatch of a succeeded condition step
    } else {
      onlyBranchMismatches = false;
    }
  }
  const skip: Verdict = onlyBranchMismatches ? 'branch' : 'upstream';
  switch (step.trigger) {
    case 'all_success':
      return satisfied === step.needs.length ? 'queue' : skip;
    case 'all_done':
      return 'queue';
    case 'one_success':
      return satisfied > 0 ? 'queue' : skip;
    default:
      return assertNever(step.trigger);
  }
}

/** A working copy of the state; every emitted command is applied to it at once. */
class Draft {
  status: RunStatus;
  readonly steps: Record<string, StepState>;
  readonly mode: RunMode;
  changed = false;
  private readonly commands: EngineCommand[] = [];
  private readonly hasMode: boolean;
  private readonly initialStatus: RunStatus;

  constructor(
    readonly wf: CompiledWorkflow,
    state: RunState,
    readonly random: Random,
  ) {
    const copy = copyState(state);
    this.status = copy.status;
    this.initialStatus = copy.status;
    this.steps = copy.steps;
    this.mode = state.mode ?? 'auto';
    this.hasMode = state.mode !== undefined;
  }

  /** In flight: running, or (auto mode) waiting on something outside the engine. */
  inFlight(s: StepState): boolean {
    return s.status === 'running' || (s.status === 'waiting' && this.mode !== 'step');
  }

  /** The state of a step of this workflow, or undefined for an unknown step. */
  step(id: string): StepState | undefined {
    if (!Object.hasOwn(this.wf.steps, id)) return undefined;
    return own(this.steps, id);
  }

  put(id: string, s: StepState): void {
    put(this.steps, id, s);
  }

  emit(command: EngineCommand): void {
    this.changed = true;
    if (command.type === 'set_run_status') {
      // One set_run_status per decision, carrying the net change (none if back where it began).
      const i = this.commands.findIndex((c) => c.type === 'set_run_status');
      if (i >= 0) this.commands.splice(i, 1);
      if (command.status !== this.initialStatus) this.commands.push(command);
      this.status = command.status;
      return;
    }
    this.commands.push(command);
    switch (command.type) {
      case 'queue_step':
      case 'retry_step':
        this.setStatus(command.stepId, 'queued');
        return;
      case 'wait_step':
        this.setStatus(command.stepId, 'waiting');
        return;
      case 'restart_step':
        this.put(command.stepId, { ...this.stateOf(command.stepId), status: 'queued', attemptBase: command.attempt });
        return;
      case 'reset_step':
        this.put(command.stepId, { ...this.stateOf(command.stepId), status: 'pending', attemptBase: command.attempt });
        return;
      case 'hold_step':
        this.setStatus(command.stepId, 'pending');
        return;
      case 'skip_step':
        this.setStatus(command.stepId, 'skipped');
        return;
      case 'fail_step':
        this.setStatus(command.stepId, 'failed');
        return;
      case 'cancel_step':
        this.setStatus(command.stepId, 'cancelled');
        return;
      case 'finish_run':
        this.status = command.status;
        return;
      default:
        assertNever(command);
    }
  }

  /** The "Run status" rule: waiting iff nothing is queued or running and something waits. */
  reconcileStatus(): void {
    if (!this.changed || (this.status !== 'running' && this.status !== 'waiting')) return;
    let waiting = false;
    for (const id of this.ids()) {
      const status = this.stateOf(id).status;
      if (status === 'queued' || status === 'running') {
        waiting = false;
        break;
      }
      if (status === 'waiting') waiting = true;
    }
    const want = waiting ? 'waiting' : 'running';
    if (want !== this.status) this.emit({ type: 'set_run_status', status: want });
  }

  /** A parked step that moves on (queued, skipped, cancelled…) is no longer parked. */
  private setStatus(id: string, status: StepStatus): void {
    const { parked: _parked, ...rest } = this.stateOf(id);
    this.put(id, { ...rest, status });
  }

  /** A step missing from the state counts as pending, attempt 0. */
  private stateOf(id: string): StepState {
    return own(this.steps, id) ?? { status: 'pending', attempt: 0 };
  }

  /** A failed attempt of an in-flight step: retry, hold (paused), or fail. */
  fail(id: string, error: ErrorRecord): void {
    const step = own(this.wf.steps, id);
    const s = own(this.steps, id);
    if (!step || !s) return;
    const used = familyAttempts(s);
    if (error.retryable && used < attemptLimit(step.retry, error)) {
      if (this.status === 'paused') this.emit({ type: 'hold_step', stepId: id, attempt: s.attempt, error });
      else this.emit({ type: 'retry_step', stepId: id, attempt: s.attempt, delayMs: computeBackoff(step.retry, used, this.random), error });
      return;
    }
    this.emit({ type: 'fail_step', stepId: id, error });
    if (step.onError === 'fail') {
      this.cancelAll();
      this.emit({ type: 'finish_run', status: 'failed', error: runError(id, error) });
      return;
    }
    this.settle();
  }

  cancelAll(): void {
    for (const id of this.ids()) {
      if (!TERMINAL_STEP.has(this.stateOf(id).status)) this.emit({ type: 'cancel_step', stepId: id });
    }
  }

  /** Decide every pending step whose needs are terminal, in topological order, then check completion. */
  settle(): void {
    const paused = this.status === 'paused';
    for (const id of this.wf.order) {
      const step = own(this.wf.steps, id);
      const s = this.stateOf(id);
      if (!step || s.status !== 'pending') continue;
      // A pending step with attempts behind it in its family was held for retry while paused,
      // and a parked one was handed back by a budget pause: already admitted (and, in step
      // mode, already triggered).
      const held = familyAttempts(s) > 0 || s.parked === true;
      const v = held ? 'queue' : verdict(step, this.steps);
      if (v === 'wait') continue;
      if (v === 'queue') {
        if (!paused) this.emit({ type: this.mode === 'step' && !held ? 'wait_step' : 'queue_step', stepId: id });
      } else {
        this.emit({ type: 'skip_step', stepId: id, reason: v });
      }
    }
    this.complete();
  }

  private complete(): void {
    if (TERMINAL_RUN.has(this.status)) return;
    let failedStep: string | undefined;
    for (const id of this.ids()) {
      const status = this.stateOf(id).status;
      if (!TERMINAL_STEP.has(status)) return;
      if (status === 'failed' && failedStep === undefined && own(this.wf.steps, id)?.onError === 'fail') failedStep = id;
    }
    if (failedStep === undefined) this.emit({ type: 'finish_run', status: 'succeeded' });
    else this.emit({ type: 'finish_run', status: 'failed', error: runError(failedStep, undefined) });
  }

  /** Every step of the workflow, topological order first. */
  ids(): string[] {
    return allIds(this.wf);
  }

  result(): SchedulerDecision {
    const state: RunState = this.hasMode ? { status: this.status, steps: this.steps, mode: this.mode } : { status: this.status, steps: this.steps };
    if (!this.changed) return { state, commands: [] };
    const index = orderIndex(this.wf);
    const rank = (c: EngineCommand): number => {
      if (c.type === 'set_run_status') return -1;
      if (c.type === 'finish_run') return Number.MAX_SAFE_INTEGER;
      return index.get(c.stepId) ?? Number.MAX_SAFE_INTEGER - 1;
    };
    // Array.prototype.sort is stable: ties keep emission order.
    const commands = this.commands
      .map((c, i) => ({ c, r: rank(c), i }))
      .sort((a, b) => a.r - b.r || a.i - b.i)
      .map((x) => x.c);
    return { state, commands };
  }
}

const indexCache = new WeakMap<CompiledWorkflow, Map<string, number>>();

function orderIndex(wf: CompiledWorkflow): Map<string, number> {
  let index = indexCache.get(wf);
  if (!index) {
    index = new Map(wf.order.map((id, i) => [id, i]));
    indexCache.set(wf, index);
  }
  return index;
}

/** Every step of the workflow, topological order first. */
function allIds(wf: CompiledWorkflow): string[] {
  const order = wf.order;
  if (order.length === Object.keys(wf.steps).length) return order;
  const seen = new Set(order);
  return [...order, ...Object.keys(wf.steps).filter((id) => !seen.has(id)).sort()];
}

function runError(stepId: string, error: ErrorRecord | undefined): ErrorRecord {
  return {
    code: error?.code ?? 'WEFT_STEP_FAILED',
    message: error ? `step "${stepId}" failed: ${error.message}` : `step "${stepId}" failed`,
    retryable: false,
  };
}

function copyState(state: RunState): RunState {
  // fromEntries defines own properties, so even a step called `__proto__` is copied as data.
  const steps = Object.fromEntries(Object.entries(state.steps).map(([id, s]) => [id, { ...s }]));
  return state.mode === undefined ? { status: state.status, steps } : { status: state.status, steps, mode: state.mode };
}

/** Own-property read: step ids are arbitrary identifiers (`constructor`, `__proto__`…). */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function put<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

function clamp01(x: number): number {
  if (!(x > 0)) return 0; // also NaN
  return x > 1 ? 1 : x;
}

function assertNever(x: never): never {
  throw new Error(`unhandled variant: ${JSON.stringify(x)}`);
}
