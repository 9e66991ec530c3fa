/**
 * The engine: registers workflow versions, starts runs, cancels/pauses/resumes them, and
 * (optionally) runs a worker in this process. Every state change is a committed row before
 * it is reported.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { compileDefinition } from '../core/compiler.ts';
import type { CompiledWorkflow } from '../core/compiled.ts';
import { WeftError } from '../core/errors.ts';
import { checkLaunchInputs } from '../core/inputs.ts';
import { decide, initialState, planRetry, type RetryPlan } from '../core/scheduler.ts';
import { TERMINAL_RUN, type Random, type RunMode, type RunStatus, type SchedulerEvent, type StepState } from '../core/scheduler-types.ts';
import { transactionWithRetry, type Db, type Queryable } from '../store/db.ts';
import type { ApprovalRecord } from '../store/approvals.ts';
import { startRunRecord } from '../store/run-start.ts';
import { listEvents, type NewEvent, type RunEvent } from '../store/events.ts';
import { getRun, getRunStatus, type LockedRun, type RunRow, type StepRunRow } from '../store/runs.ts';
import { loadStepStates, setStepOverrides, type StepStates } from '../store/step-runs.ts';
import { definitionHash, ensureVersion, findWorkflowByName, insertWorkflow, lockWorkflow } from '../store/workflows.ts';
import type { StepSettings } from '../steps/types.ts';
import { advance, snapshotWorthReading, type AdvanceRequest, type AdvanceResult } from './advance.ts';
import { approvalDecisionRequest, checkApprovalDecision, type ApprovalDecision } from './approval-decision.ts';
import { systemClock, type Clock } from './clock.ts';
import { silentLogger, type Logger } from './log.ts';
import { VersionCache } from './version-cache.ts';
import { DEFAULT_WORKER_OPTIONS, Worker, type Claiming, type WorkerOptions } from './worker.ts';

export interface EngineOptions {
  db: Db;
  clock?: Clock;
  random?: Random;
  log?: Logger;
  settings?: Partial<StepSettings>;
  /** Run a worker in this process (default), with these options; `false` for none. */
  worker?: Partial<WorkerOptions> | false;
}

export interface RegisteredVersion {
  workflowId: string;
  versionId: string;
  version: number;
}

export interface StartRunRequest {
  versionId: string;
  inputs?: unknown;
  ownerId?: string;
  /** A second start with the same key (per owner) returns the first run instead. */
  idempotencyKey?: string;
  /** 'step': every step that becomes ready waits for `triggerStep`. Default 'auto'. */
  mode?: RunMode;
  /** Spending limit in USD: an AI step whose estimate would pass it pauses the run into an approval. */
  budgetUsd?: number;
  /** Default provider for this run's steps and agents that name none (e.g. 'simulated', 'openai'). */
  provider?: string;
}

export interface TriggerStepOptions {
  /** Replaces the step's prompt (agent and image steps) for the attempts this trigger starts. */
  prompt?: string;
  /** When given, the run must be this owner's (else WEFT_NOT_FOUND); recorded as who triggered. */
  ownerId?: string;
}

export interface RetryStepOptions {
  /** When given, the run must be this owner's (else WEFT_NOT_FOUND); recorded as who retried. */
  ownerId?: string;
}

/** Run statuses in which a failed step may be retried (a cancelled run stays cancelled). */
const RETRY_FROM: readonly RunStatus[] = ['failed', 'running', 'waiting', 'paused'];

export const LOCAL_OWNER = 'local';

export class Engine {
  readonly db: Db;
  readonly clock: Clock;
  readonly log: Logger;
  readonly worker: Worker | undefined;
  private readonly versions = new VersionCache();
  private readonly random: Random;
  private readonly finished = new EventEmitter();

  constructor(options: EngineOptions) {
    this.db = options.db;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? silentLogger;
    this.finished.setMaxListeners(0);
    const settings: StepSettings = {
      allowPrivateNetwork: options.settings?.allowPrivateNetwork ?? process.env['WEFT_ALLOW_PRIVATE_NETWORK'] === '1',
      defaultProvider: options.settings?.defaultProvider ?? (process.env['WEFT_DEFAULT_PROVIDER'] || undefined),
    };
    this.worker = options.worker === false ? undefined : new Worker(
      {
        db: this.db, clock: this.clock, log: this.log, settings, versions: this.versions, random: this.random,
        onRunFinished: (runId) => this.finished.emit(runId),
      },
      { ...DEFAULT_WORKER_OPTIONS, ...options.worker },
    );
  }

  async start(): Promise<void> {
    await this.worker?.start();
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
  }

  /**
   * Validates a definition and stores it as a version of the owner's workflow of that name
   * (created if missing). An unchanged definition returns its existing version.
   */
  async registerWorkflow(definition: unknown, ownerId = LOCAL_OWNER): Promise<RegisteredVersion & { compiled: CompiledWorkflow }> {
    const compiled = compileDefinition(definition);
    const { name, description } = compiled.definition;
    const hash = definitionHash(compiled.definition);
    const version = await transactionWithRetry(this.db, async (tx) => {
      const workflow = (await findWorkflowByName(tx, ownerId, name)) ?? (await insertWorkflow(tx, { ownerId, name, description: description ?? '' }));
      await lockWorkflow(tx, workflow.id);
      return ensureVersion(tx, workflow.id, compiled.definition, hash);
    });
    this.versions.put(version.id, compiled);
    return { workflowId: version.workflow_id, versionId: version.id, version: version.version, compiled };
  }

  /**
   * Starts a run of a pinned version: checks the inputs (defaults applied), inserts the run and
   * its steps with the roots queued, and — when this process has a worker with a free slot —
   * claims one root for it, all in one statement (store/run-start.ts). With an idempotency key
   * the owner already used, returns that run's id and starts nothing.
   */
  async startRun(request: StartRunRequest): Promise<string> {
    const ownerId = request.ownerId ?? LOCAL_OWNER;
    const mode = request.mode ?? 'auto';
    if (mode !== 'auto' && mode !== 'step') throw new WeftError('WEFT_INVALID_INPUTS', `mode must be 'auto' or 'step', not ${JSON.stringify(mode)}`);
    const wf = await this.versions.get(this.db, request.versionId);
    const inputs = checkLaunchInputs(wf, request.inputs ?? {});
    if (request.budgetUsd !== undefined && !(Number.isFinite(request.budgetUsd) && request.budgetUsd >= 0)) {
      throw new WeftError('WEFT_INVALID_INPUTS', `budget_usd must be a number ≥ 0, not ${JSON.stringify(request.budgetUsd)}`);
    }
    if (request.provider !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(request.provider)) {
      throw new WeftError('WEFT_INVALID_INPUTS', 'provider must be a provider name (letters, digits, ".", "_", "-")');
    }
    const { state, commands } = decide(wf, initialState(wf, mode), { type: 'run_started' }, this.random);
    const status = state.status === 'waiting' ? 'waiting' : 'running';
    // Every step is written in the status the decision gives it: the roots queued (or one
    // claimed for this process's worker), or waiting for a trigger in step mode.
    const queued = commands.flatMap((c) => (c.type === 'queue_step' ? [c.stepId] : []));
    const waits = commands.flatMap((c) => (c.type === 'wait_step' ? [c.stepId] : []));
    const budgetUsd = request.budgetUsd ?? null;
    const started = await this.withClaimSlot((worker) => {
      const claimId = worker ? queued[0] : undefined;
      const queue = queued.filter((id) => id !== claimId);
      const events: NewEvent[] = [
        { stepId: null, type: 'run_created', attempt: null, data: mode === 'step' ? { version_id: request.versionId, mode } : { version_id: request.versionId } },
        ...(claimId === undefined ? [] : [{ stepId: claimId, type: 'step_started' as const, attempt: 1, data: { worker: worker!.id } }]),
        ...queue.map((stepId) => ({ stepId, type: 'step_queued' as const, attempt: null, data: {} })),
        ...waits.map((stepId) => ({ stepId, type: 'step_waiting' as const, attempt: null, data: {} })),
        ...(status === 'waiting' ? [{ stepId: null, type: 'run_waiting' as const, attempt: null, data: { from: 'created' } }] : []),
      ];
      return startRunRecord(this.db, {
        id: randomUUID(), versionId: request.versionId, ownerId, inputs, context: wf.definition.context ?? {},
        idempotencyKey: request.idempotencyKey ?? null, at: new Date(this.clock.now()), mode, status, budgetUsd, provider: request.provider ?? null,
        steps: wf.order.map((id) => ({ stepId: id, refs: wf.steps[id]!.refs })), events, queue, waits,
        // A root alone in flight can complete quickly: it needs the states it will decide from.
        claim: claimId === undefined ? undefined
          : { stepId: claimId, workerId: worker!.id, leaseUntil: worker!.leaseUntil(), states: snapshotWorthReading(mode, state, claimId, budgetUsd) },
      });
    });
    return started.runId;
  }

  cancelRun(runId: string): Promise<RunStatus> {
    return this.control(runId, { type: 'run_cancelled' }, ['queued', 'running', 'paused', 'waiting']);
  }

  pauseRun(runId: string): Promise<RunStatus> {
    return this.control(runId, { type: 'run_paused' }, ['queued', 'running', 'waiting']);
  }

  resumeRun(runId: string): Promise<RunStatus> {
    return this.control(runId, { type: 'run_resumed' }, ['paused']);
  }

  /**
   * Step mode: starts a step that is waiting for its trigger — queued, or claimed at once by
   * this process's worker when it has a free slot — optionally with another prompt, which the
   * agent and image executors use instead of the definition's for this step run (it is a
   * template like the definition's, and it stays with the step for its automatic and human
   * retries until a new trigger). One transaction under the run lock.
   *
   * WEFT_NOT_FOUND: unknown run or step (or another owner's run, when `ownerId` is given).
   * WEFT_CONFLICT: the step is not waiting (its status is named: in auto mode nothing waits),
   * or the run is paused (resume it first) or finished.
   */
  async triggerStep(runId: string, stepId: string, options: TriggerStepOptions = {}): Promise<RunStatus> {
    const { prompt, ownerId } = options;
    if (prompt !== undefined && typeof prompt !== 'string') throw new WeftError('WEFT_INVALID_INPUTS', 'prompt must be a string');
    const data: Record<string, unknown> = { prompt_override: prompt !== undefined };
    if (prompt !== undefined) data['prompt'] = prompt;
    if (ownerId !== undefined) data['by'] = ownerId;
    return this.controlStep({
      runId, at: new Date(this.clock.now()),
      event: { type: 'step_triggered', stepId },
      events: [{ stepId, type: 'step_triggered', attempt: null, data }],
      fence: async (tx, run) => {
        const { steps, step } = await this.lockedStep(tx, run, runId, stepId, ownerId);
        if (step.status !== 'waiting') {
          throw conflict(`step "${stepId}" of run ${runId} is ${step.status}: only a step waiting for its trigger can be triggered`, step.status, run.status);
        }
        if (run.mode !== 'step') throw conflict(`run ${runId} runs in auto mode: its steps start by themselves`, step.status, run.status);
        if (run.status !== 'running' && run.status !== 'waiting') {
          throw conflict(`run ${runId} is ${run.status}: a step can be triggered only while the run is running or waiting`, step.status, run.status);
        }
        if (!(await setStepOverrides(tx, runId, stepId, prompt === undefined ? null : { prompt }))) {
          throw new WeftError('WEFT_INTERNAL', `step "${stepId}" of run ${runId} stopped waiting under the run lock`);
        }
        return steps;
      },
      check: (d) => expectCommand(d.commands, 'queue_step', runId, stepId),
    });
  }

  /**
   * Runs a failed step again, with its whole retry budget (a new attempt family: `attempt`
   * keeps counting, `attempt_base` marks where the family began, and the idempotency key
   * changes, see worker.ts). The steps it re-opens go back to pending and are decided again:
   * those downstream of it that were skipped without running, cancelled, or (step mode) are
   * waiting for a trigger, and — when its failure failed the run (on_error fail) — every step
   * that failure cancelled. Dependents that already ran on the failure (all_done) stay. A failed run
   * becomes running again (outputs, error and finished_at cleared). The step is queued at
   * once, even in step mode (the retry is its trigger), and in a paused run waits for resume.
   * One transaction under the run lock, fenced on the statuses the scheduler saw.
   *
   * WEFT_NOT_FOUND: unknown run or step (or another owner's run, when `ownerId` is given).
   * WEFT_CONFLICT: the step is not failed (its status is named), the run is succeeded or
   * cancelled, or the retry has to wait (`details.blocked_by` names the step in the way):
   * another step's fail-fast failure failed the run (retry that one first), a step it needs is
   * not finished, or a step that needs it already started on its failure (an all_done step).
   */
  async retryStep(runId: string, stepId: string, options: RetryStepOptions = {}): Promise<RunStatus> {
    const { ownerId } = options;
    const events: NewEvent[] = [];
    return this.controlStep({
      runId, at: new Date(this.clock.now()),
      event: { type: 'step_retry_requested', stepId },
      events,
      fence: async (tx, run) => {
        const { steps, step } = await this.lockedStep(tx, run, runId, stepId, ownerId);
        if (!RETRY_FROM.includes(run.status)) {
          throw conflict(`run ${runId} is ${run.status}: a step can be retried only while the run is ${RETRY_FROM.join(', ')}`, step.status, run.status);
        }
        if (step.status !== 'failed') {
          throw conflict(`step "${stepId}" of run ${runId} is ${step.status}: only a failed step can be retried`, step.status, run.status);
        }
        const data: Record<string, unknown> = { attempt_base: step.attempt, run_status: run.status };
        if (ownerId !== undefined) data['by'] = ownerId;
        events.push({ stepId, type: 'step_retry_requested', attempt: null, data });
        return steps;
      },
      check: (d, wf, state) => {
        if (d.commands.some((c) => c.type === 'restart_step')) return;
        const blocked = planRetry(wf, state, stepId).blockedBy;
        if (blocked) throw retryBlocked(runId, stepId, blocked, state.status);
        expectCommand(d.commands, 'restart_step', runId, stepId);
      },
    });
  }

  /**
   * Decides a pending approval of the run (a budget pause): approve — optionally with a new
   * budget_usd, which must cover what the run has spent — resumes the run and its parked
   * steps; reject cancels the run. One transaction under the run lock (approval-decision.ts).
   * Approving without a higher budget re-runs the parked steps under the old one: a step whose
   * call still does not fit pauses the run again, into a new approval.
   *
   * WEFT_NOT_FOUND: no such approval on this run. WEFT_CONFLICT: decided already, or closed
   * when the run finished. WEFT_INVALID_INPUTS: a bad decision, or budget_usd below spending.
   */
  async decideApproval(runId: string, approvalId: string, decision: ApprovalDecision): Promise<{ status: RunStatus; approval: ApprovalRecord }> {
    checkApprovalDecision(decision);
    const { request, decided } = approvalDecisionRequest(runId, approvalId, decision, new Date(this.clock.now()));
    const status = await this.controlStep(request);
    this.worker?.wake();
    return { status, approval: decided.approval! };
  }

  /** The run's step states and the one step, under the run lock; WEFT_NOT_FOUND for another owner's run or an unknown step. */
  private async lockedStep(
    tx: Queryable, run: LockedRun, runId: string, stepId: string, ownerId: string | undefined,
  ): Promise<{ steps: StepStates; step: StepState }> {
    if (ownerId !== undefined) {
      const { rows } = await tx.query<{ owner_id: string }>('SELECT owner_id FROM runs WHERE id = $1', [runId]);
      if (rows[0]?.owner_id !== ownerId) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} not found`);
    }
    const steps = await loadStepStates(tx, runId);
    const step = Object.hasOwn(steps, stepId) ? steps[stepId] : undefined;
    if (!step) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} has no step "${stepId}"`, { details: { run_status: run.status } });
    return { steps, step };
  }

  /** advance for a step control, claiming a step it readies for this process's worker when it has room. */
  private async controlStep(request: Omit<AdvanceRequest, 'claimFor'>): Promise<RunStatus> {
    const result: AdvanceResult = await this.withClaimSlot((worker) => transactionWithRetry(this.db, (tx) =>
      advance(tx, { versions: this.versions, random: this.random }, {
        ...request,
        claimFor: worker ? { workerId: worker.id, leaseUntil: worker.leaseUntil() } : undefined,
      }),
    ));
    if (result.finished) this.finished.emit(request.runId);
    return result.status;
  }

  /**
   * A write that may claim a step for this process's worker: given the worker when it has a
   * free slot, which stays held for the write and takes what it claimed (Worker.claimWith).
   */
  private withClaimSlot<T extends Claiming>(write: (worker: Worker | undefined) => Promise<T>): Promise<T> {
    const worker = this.worker && this.worker.freeSlots > 0 ? this.worker : undefined;
    return worker ? worker.claimWith(() => write(worker)) : write(undefined);
  }

  private async control(runId: string, event: SchedulerEvent, allowedFrom: RunStatus[]): Promise<RunStatus> {
    const at = new Date(this.clock.now());
    const result = await transactionWithRetry(this.db, (tx) =>
      advance(tx, { versions: this.versions, random: this.random }, { runId, at, event, allowedFrom }),
    );
    if (result.finished) this.finished.emit(runId);
    this.worker?.wake();
    return result.status;
  }

  async getRun(runId: string): Promise<(RunRow & { steps: StepRunRow[] }) | undefined> {
    return getRun(this.db, runId);
  }

  listEvents(runId: string, afterId?: string): Promise<RunEvent[]> {
    return listEvents(this.db, runId, afterId);
  }

  /**
   * Resolves when the run is terminal: at once for runs this process finishes, by polling
   * for runs other processes finish.
   */
  async waitForRun(runId: string, timeoutMs = 60_000, pollMs = 200): Promise<RunStatus> {
    const deadline = Date.now() + timeoutMs;
    // Subscribe before reading the status, so a finish between the two is not missed.
    let signalled = false;
    let wake = () => {};
    const listener = () => {
      signalled = true;
      wake();
    };
    this.finished.on(runId, listener);
    try {
      for (;;) {
        signalled = false;
        const status = await getRunStatus(this.db, runId);
        if (status === undefined) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} not found`);
        if (TERMINAL_RUN.has(status)) return status;
        const left = deadline - Date.now();
        if (left <= 0) throw new WeftError('WEFT_INTERNAL', `run ${runId} still ${status} after ${timeoutMs} ms`);
        if (signalled) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(pollMs, left));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      this.finished.off(runId, listener);
    }
  }
}

function conflict(message: string, stepStatus: string, runStatus: RunStatus): WeftError {
  return new WeftError('WEFT_CONFLICT', message, { details: { status: stepStatus, run_status: runStatus } });
}

/** Why a retry has to wait (see planRetry), as a conflict that names the step in the way. */
function retryBlocked(runId: string, stepId: string, b: NonNullable<RetryPlan['blockedBy']>, runStatus: RunStatus): WeftError {
  const message =
    b.relation === 'failure' ? `step "${b.stepId}" failed run ${runId} (on_error: fail): retry that step first`
    : b.relation === 'need' ? `step "${stepId}" needs step "${b.stepId}", which is ${b.status}: retry it once that step has finished`
    : `step "${b.stepId}", which needs step "${b.of}", is ${b.status}: retry "${stepId}" once it has finished`;
  return new WeftError('WEFT_CONFLICT', message, {
    details: { status: 'failed', run_status: runStatus, blocked_by: b.stepId, blocked_by_status: b.status },
  });
}

/** The decision must carry out what the control asked for; anything else is a bug (rolled back). */
function expectCommand(commands: readonly { type: string; stepId?: string }[], type: string, runId: string, stepId: string): void {
  if (!commands.some((c) => c.type === type && c.stepId === stepId)) {
    throw new WeftError('WEFT_INTERNAL', `run ${runId}: the scheduler did not ${type.replace('_step', '')} step "${stepId}"`);
  }
}
