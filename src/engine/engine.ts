/**
 * The engine: registers workflow versions, starts runs, cancels/pauses/resumes them, and
 * (optionally) runs a worker in this process. Every state change is a committed row before
 * it is reported.
 */
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { compileDefinition } from '../core/compiler.ts';
import type { CompiledWorkflow } from '../core/compiled.ts';
import { WeftError } from '../core/errors.ts';
import { checkLaunchInputs } from '../core/inputs.ts';
import { decide, initialState } from '../core/scheduler.ts';
import { TERMINAL_RUN, type Random, type RunStatus, type SchedulerEvent } from '../core/scheduler-types.ts';
import { transactionWithRetry, type Db } from '../store/db.ts';
import { listEvents, type NewEvent, type RunEvent } from '../store/events.ts';
import { findRunByIdempotencyKey, getRun, getRunStatus, insertRun, type RunRow, type StepRunRow } from '../store/runs.ts';
import { insertStepRuns, writeDecision } from '../store/step-runs.ts';
import { ensureVersion, findWorkflowByName, insertWorkflow, lockWorkflow } from '../store/workflows.ts';
import type { StepSettings } from '../steps/types.ts';
import { advance } from './advance.ts';
import { systemClock, type Clock } from './clock.ts';
import { silentLogger, type Logger } from './log.ts';
import { VersionCache } from './version-cache.ts';
import { DEFAULT_WORKER_OPTIONS, Worker, type WorkerOptions } from './worker.ts';

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
}

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
      defaultProvider: options.settings?.defaultProvider,
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
    const hash = createHash('sha256').update(canonicalJson(compiled.definition)).digest('hex');
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
   * claims one root for it, all in one transaction.
   */
  async startRun(request: StartRunRequest): Promise<string> {
    const ownerId = request.ownerId ?? LOCAL_OWNER;
    const wf = await this.versions.get(this.db, request.versionId);
    const inputs = checkLaunchInputs(wf, request.inputs ?? {});
    const runId = randomUUID();
    const at = new Date(this.clock.now());
    const worker = this.worker && this.worker.freeSlots > 0 ? this.worker : undefined;

    const outcome = await transactionWithRetry(this.db, async (tx) => {
      if (request.idempotencyKey !== undefined) {
        const existing = await findRunByIdempotencyKey(tx, ownerId, request.idempotencyKey);
        if (existing) return { runId: existing, claimed: undefined };
      }
      await insertRun(tx, {
        id: runId, versionId: request.versionId, ownerId, inputs,
        context: wf.definition.context ?? {}, stepsTotal: wf.order.length, idempotencyKey: request.idempotencyKey ?? null, at,
      });
      // Every step starts pending; the roots are then queued (or one claimed for this process's
      // worker) by the same one-statement write that carries out any other decision.
      await insertStepRuns(tx, runId, wf.order.map((id) => ({ stepId: id, refs: wf.steps[id]!.refs })));
      const { commands } = decide(wf, initialState(wf), { type: 'run_started' }, this.random);
      const queued = commands.flatMap((c) => (c.type === 'queue_step' ? [c.stepId] : []));
      const claimId = worker ? queued[0] : undefined;
      const queue = queued.filter((id) => id !== claimId);
      const events: NewEvent[] = [
        { stepId: null, type: 'run_created', attempt: null, data: { version_id: request.versionId } },
        ...(claimId === undefined ? [] : [{ stepId: claimId, type: 'step_started' as const, attempt: 1, data: { worker: worker!.id } }]),
        ...queue.map((stepId) => ({ stepId, type: 'step_queued' as const, attempt: null, data: {} })),
      ];
      const claimed = await writeDecision(tx, {
        runId, at, events, queue, skips: [], cancels: [],
        claim: claimId === undefined ? undefined : { stepId: claimId, workerId: worker!.id, leaseUntil: worker!.leaseUntil() },
      });
      return { runId, claimed };
    });
    if (outcome.claimed) worker!.adopt(outcome.claimed);
    return outcome.runId;
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

/** JSON with sorted keys, so that equal definitions hash equally. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
