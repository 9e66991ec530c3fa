/**
 * The worker: claims ready steps, runs them, and completes them through `advance`.
 *
 * Modes of the loop (one Worker, any number of in-flight attempts up to `concurrency`):
 * - idle: nothing claimable; woken by NOTIFY on `weft_steps`, or by the poll timer as a
 *   fallback (and for retries whose backoff has elapsed).
 * - claiming: one claim statement at a time takes up to the free capacity (SKIP LOCKED).
 * - running: each attempt executes with a lease; one batched heartbeat statement renews all
 *   leases, and an attempt whose lease is gone is aborted. When an attempt ends, the
 *   completing transaction claims one successor it made ready, which runs at once. Successes
 *   that can complete quickly go out through the CompletionBatcher: one statement out at a
 *   time, and those that end meanwhile together in the next.
 * - stopping: no new claims; in-flight attempts get `drainMs` to finish, then are aborted
 *   (their leases expire and another worker retries them).
 * A sweeper timer requeues steps whose lease expired (their worker died or stalled).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { WeftError, toErrorRecord } from '../core/errors.ts';
import { evaluateExpression, resolveBindings } from '../core/expressions.ts';
import { transactionWithRetry, type Db } from '../store/db.ts';
import { claimQueued, expireLease, expireOwnLeases, findExpiredLeases, heartbeat, type ClaimedStep, type HeldLease, type QueueClaim } from '../store/step-runs.ts';
import { runningSnapshot, type RunSnapshot } from '../store/quick-completion.ts';
import { isTruthy } from '../steps/condition.ts';
import { executors } from '../steps/registry.ts';
import type { StepResult, StepSettings } from '../steps/types.ts';
import { advance, type AdvanceDeps, type AdvanceRequest, type AdvanceResult } from './advance.ts';
import { AgentCache } from './agent-cache.ts';
import { OutputStream } from './output-stream.ts';
import { databaseBatcher, type CompletionBatcher } from './completion-batcher.ts';
import { completeSucceeded, type QuickSuccess } from './quick-advance.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { WorkerMetrics } from './metrics.ts';
import {
  attemptUsageOf, idempotencyKey, outcomeRequest, raceAbort, runUsageOf, successEvent, toOverrides, toPlainJson,
  type AttemptOutcome,
} from './attempt.ts';

export interface WorkerOptions {
  concurrency: number;
  leaseMs: number;
  heartbeatMs: number;
  pollMs: number;
  sweepMs: number;
  drainMs: number;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  concurrency: 8,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  pollMs: 1_000,
  sweepMs: 5_000,
  drainMs: 10_000,
};

export interface WorkerDeps extends AdvanceDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  settings: StepSettings;
  /** Called after a transaction that finished a run has committed. */
  onRunFinished(runId: string): void;
}

interface InFlight {
  lease: HeldLease;
  controller: AbortController;
}

export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly inflight = new Map<string, InFlight>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unlisteners: (() => Promise<void>)[] = [];
  private claiming = false;
  private claimAgain = false;
  /** A wake-up arrived while every slot was busy: look for work when one frees up. */
  private missedWake = false;
  /** Slots held by claims being made (see claimWith), counted as taken. */
  private held = 0;
  private stopping = false;
  /** Chains running: an attempt executing, or its outcome being recorded (runChain). */
  private chains = 0;
  private readonly idle = new Set<() => void>();
  readonly metrics = new WorkerMetrics();
  private readonly agents: AgentCache;
  private readonly completions: CompletionBatcher;

  constructor(private readonly deps: WorkerDeps, readonly options: WorkerOptions) {
    this.agents = new AgentCache(deps.db, () => deps.clock.now());
    this.completions = databaseBatcher(deps.db, (completions) => {
      this.metrics.quickStatements++;
      this.metrics.quickCompletions += completions;
    });
  }

  async start(): Promise<void> {
    this.unlisteners.push(await this.deps.db.listen('weft_steps', () => this.wake()));
    this.unlisteners.push(await this.deps.db.listen('weft_control', (payload) => this.onControl(payload)));
    this.every(this.options.pollMs, () => this.wake());
    this.every(this.options.heartbeatMs, () => this.heartbeat());
    this.every(this.options.sweepMs, async () => {
      await this.sweep();
    });
    this.wake();
  }

  /**
   * Stops claiming, lets in-flight attempts finish within drainMs, then aborts the rest and
   * hands them back (their leases expire now and are swept at once), so no step waits a full
   * lease for another worker.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers.splice(0)) clearInterval(t);
    // Chains, not attempts: a chain whose attempt has ended may still be recording its outcome
    // (a completion waiting for its batch), and the database must outlive that.
    if (this.chains > 0) {
      const drained = new Promise<void>((resolve) => this.idle.add(resolve));
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, this.options.drainMs).unref());
      await Promise.race([drained, deadline]);
    }
    if (this.chains > 0) {
      const settled = new Promise<void>((resolve) => this.idle.add(resolve));
      for (const f of this.inflight.values()) f.controller.abort(new WeftError('WEFT_CANCELLED', 'worker shutting down', { retryable: true }));
      await settled;
      try {
        const handed = await expireOwnLeases(this.deps.db, this.id, new Date(this.deps.clock.now()));
        if (handed > 0) {
          this.deps.log.warn('handed back unfinished attempts', { worker: this.id, attempts: handed });
          await this.sweep();
        }
      } catch (error) {
        this.deps.log.error('could not hand back attempts; their leases will expire', { worker: this.id, error: toErrorRecord(error) });
      }
    }
    await Promise.all(this.unlisteners.splice(0).map((u) => u().catch(() => {})));
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  get freeSlots(): number {
    return this.stopping ? 0 : this.options.concurrency - this.inflight.size - this.held;
  }

  /**
   * Runs a write that may claim a step for this worker (a run's start, a step control) with a
   * free slot held for it, and adopts what it claimed before letting the slot go: claims made
   * at the same time — these, the claim loop's, a completion claiming its successor — then stay
   * within `concurrency` together.
   */
  async claimWith<T extends Claiming>(write: () => Promise<T>): Promise<T> {
    this.held++;
    try {
      const result = await write();
      if (result.claimed) this.adopt(result.claimed, result.snapshot);
      return result;
    } finally {
      this.held--;
      this.slotFreed();
    }
  }

  /** Only claim here if work was announced while we were full; otherwise NOTIFY (or the
   *  poll) tells us, and an idle claim would cost a statement per finished chain. */
  private slotFreed(): void {
    if (this.missedWake && !this.stopping && this.freeSlots > 0) {
      this.missedWake = false;
      this.wake();
    }
  }

  /** Lease deadline for an attempt claimed now. */
  leaseUntil(): Date {
    return new Date(this.deps.clock.now() + this.options.leaseMs);
  }

  /**
   * Runs an attempt claimed for this worker, and its successors; with the run's states after
   * the claim when the step may complete quickly (quick-advance.ts).
   */
  private adopt(claimed: ClaimedStep, snapshot?: RunSnapshot): void {
    this.track(claimed);
    this.metrics.claimed++;
    this.metrics.claimLatency.observe(Math.max(0, this.deps.clock.now() - claimed.readyAt.getTime()) / 1000);
    void this.runChain(claimed, snapshot);
  }

  wake(): void {
    if (this.stopping) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    void this.claimLoop();
  }

  private async claimLoop(): Promise<void> {
    this.claiming = true;
    try {
      do {
        this.claimAgain = false;
        const limit = this.freeSlots;
        if (limit <= 0) {
          this.missedWake = true;
          break;
        }
        this.held += limit;
        let claimed: QueueClaim[];
        try {
          const now = new Date(this.deps.clock.now());
          claimed = await claimQueued(this.deps.db, { workerId: this.id, now, leaseUntil: this.leaseUntil(), limit });
          for (const c of claimed) this.adopt(c, c.statesText === null ? undefined : runningSnapshot(c.statesText));
        } finally {
          this.held -= limit;
        }
        if (claimed.length === limit) this.claimAgain = true;
      } while (this.claimAgain && !this.stopping);
    } catch (error) {
      this.deps.log.error('claim failed', { worker: this.id, error: toErrorRecord(error) });
    } finally {
      this.claiming = false;
    }
  }

  private track(c: ClaimedStep): InFlight {
    const entry = { lease: { runId: c.runId, stepId: c.stepId, attempt: c.attempt }, controller: new AbortController() };
    this.inflight.set(key(c), entry);
    return entry;
  }

  /** Runs an attempt, then the successor its completion claimed, and so on down the chain. */
  private async runChain(first: ClaimedStep, firstSnapshot: RunSnapshot | undefined): Promise<void> {
    this.chains++;
    try {
      await this.runAttempts(first, firstSnapshot);
    } finally {
      this.chains--;
    }
    if (this.chains === 0) for (const resolve of this.idle) resolve();
    this.slotFreed();
  }

  private async runAttempts(first: ClaimedStep, firstSnapshot: RunSnapshot | undefined): Promise<void> {
    let current: ClaimedStep | undefined = first;
    let snapshot = firstSnapshot;
    while (current) {
      const entry = this.inflight.get(key(current))!;
      const started = this.deps.clock.now();
      const outcome = await this.execute(current, entry.controller);
      this.inflight.delete(key(current));
      this.held++; // the slot stays taken while the completion claims the successor into it
      try {
        ({ claimed: current, snapshot } = await this.finish(current, outcome, this.deps.clock.now() - started, snapshot));
        if (current) {
          this.track(current);
          this.metrics.claimed++;
          this.metrics.claimLatency.observe(0);
        }
      } finally {
        this.held--;
      }
    }
  }

  private async execute(c: ClaimedStep, controller: AbortController): Promise<AttemptOutcome> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const wf = await this.deps.versions.get(this.deps.db, c.versionId);
      const step = wf.steps[c.stepId];
      if (!step) throw new WeftError('WEFT_INTERNAL', `step ${c.stepId} is not in its workflow version`);
      const scope: Record<string, unknown> = { ...c.deps, input: c.inputs, context: c.context };
      const guard = step.definition.when;
      if (guard !== undefined && !isTruthy(await evaluateExpression(guard, scope))) return { kind: 'guard_false' };
      const params = (step.definition.with ? await resolveBindings(step.definition.with, scope) : {}) as Record<string, unknown>;
      if (step.timeoutMs !== undefined) {
        const ms = step.timeoutMs;
        timer = setTimeout(() => controller.abort(new WeftError('WEFT_STEP_TIMEOUT', `step '${c.stepId}' timed out after ${ms} ms`, { retryable: true })), ms);
      }
      const overrides = c.overrides === null ? undefined : toOverrides(c.overrides);
      const settings = c.runProvider === null ? this.deps.settings : { ...this.deps.settings, defaultProvider: c.runProvider };
      // Only AI steps stream; the stream (and its timer) is created on the first piece.
      let stream: OutputStream | undefined;
      const streamOutput = (text: string) => (stream ??= new OutputStream(this.deps, c)).push(text);
      let result: StepResult;
      try {
        result = await raceAbort(
          executors[step.type]({
            runId: c.runId, stepId: c.stepId, attempt: c.attempt, idempotencyKey: idempotencyKey(c),
            step, scope, params, signal: controller.signal, settings, agents: this.agents.get, streamOutput,
            ...(overrides ? { overrides } : {}),
            ...(c.budgetUsd === null ? {} : { budget: { limitUsd: c.budgetUsd, spentUsd: c.spentUsd } }),
          }),
          controller.signal,
        );
      } finally {
        await stream?.close();
      }
      return { kind: 'succeeded', result, output: toPlainJson(result.output, step) };
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      if (reason instanceof WeftError && (reason.code === 'WEFT_CANCELLED' || reason.code === 'WEFT_LEASE_LOST')) {
        return { kind: 'abandoned', reason };
      }
      if (reason instanceof WeftError && reason.code === 'WEFT_BUDGET_EXCEEDED') return { kind: 'budget_exceeded', error: reason };
      return { kind: 'failed', error: toErrorRecord(reason) };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Records an attempt's outcome; returns the successor claimed in the same transaction, if
   * any, with the run's states after it when a quick completion (quick-advance.ts) claimed it.
   */
  private async finish(c: ClaimedStep, outcome: AttemptOutcome, durationMs: number, held: RunSnapshot | undefined): Promise<NextStep> {
    if (outcome.kind === 'abandoned') {
      if (outcome.reason.code === 'WEFT_LEASE_LOST') this.metrics.leaseLost++;
      this.deps.log.warn(outcome.reason.code === 'WEFT_LEASE_LOST' ? 'lost the lease; attempt abandoned' : 'attempt cancelled', {
        worker: this.id, run: c.runId, step: c.stepId, attempt: c.attempt,
      });
      return { claimed: undefined };
    }
    this.metrics.stepDuration.observe(durationMs / 1000);
    if (outcome.kind === 'succeeded') this.metrics.completed++;
    if (outcome.kind === 'failed') this.metrics.failed++;
    if (outcome.kind === 'budget_exceeded') {
      this.metrics.budgetHolds++;
      this.deps.log.info('budget exceeded; run paused for approval', {
        worker: this.id, run: c.runId, step: c.stepId, attempt: c.attempt, ...outcome.error.details,
      });
    }
    const claimFor = this.stopping ? undefined : { workerId: this.id, leaseUntil: this.leaseUntil() };
    if (outcome.kind === 'succeeded' && !outcome.result.files?.length) {
      const quick = await this.completeQuickly(c, held, {
        now: () => new Date(this.deps.clock.now()), workerId: this.id, output: outcome.output, branch: outcome.result.branch ?? null, durationMs,
        usage: attemptUsageOf(outcome.result), runUsage: runUsageOf(outcome.result), events: [successEvent(c, outcome.result, durationMs)], claimFor,
      });
      if (quick) return quick;
    }
    // Taken after a quick try, which may have waited for another completion of this run.
    const request = outcomeRequest(this.id, c, outcome, new Date(this.deps.clock.now()), durationMs);
    if (claimFor) request.claimFor = claimFor;
    const result = await this.advanceSafely(request, c);
    if (result?.retried) this.metrics.retried++;
    return { claimed: result?.claimed, ...(result?.snapshot ? { snapshot: result.snapshot } : {}) };
  }

  /** A success in one statement (quick-advance.ts); undefined: use advance(), nothing was written. */
  private async completeQuickly(c: ClaimedStep, held: RunSnapshot | undefined, s: QuickSuccess): Promise<NextStep | undefined> {
    try {
      const done = await completeSucceeded(this.deps.db, (completion) => this.completions.complete(completion), this.deps, c, held, s);
      if (done?.claimed === undefined && done?.finished) this.deps.onRunFinished(c.runId);
      return done;
    } catch (error) {
      if (!(error instanceof WeftError && error.code === 'WEFT_LEASE_LOST')) return undefined;
      this.metrics.leaseLost++;
      this.deps.log.warn('lost the lease; result discarded', { worker: this.id, run: c.runId, step: c.stepId, attempt: c.attempt });
      return { claimed: undefined };
    }
  }

  /** `ownAttempt` false: a sweep, whose fence failing only means someone else got there first. */
  private async advanceSafely(request: AdvanceRequest, c: { runId: string; stepId: string; attempt: number }, ownAttempt = true): Promise<AdvanceResult | undefined> {
    try {
      const result = await transactionWithRetry(this.deps.db, (tx) => advance(tx, this.deps, request));
      if (result.finished) this.deps.onRunFinished(request.runId);
      return result;
    } catch (error) {
      if (error instanceof WeftError && error.code === 'WEFT_LEASE_LOST') {
        if (!ownAttempt) return undefined;
        this.metrics.leaseLost++;
        this.deps.log.warn('lost the lease; result discarded', { worker: this.id, run: c.runId, step: c.stepId, attempt: c.attempt });
      } else {
        // The attempt stays running with our lease; when the lease expires the sweeper retries it.
        this.deps.log.error('could not record attempt outcome', { worker: this.id, run: c.runId, step: c.stepId, error: toErrorRecord(error) });
      }
      return undefined;
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.inflight.size === 0) return;
    const leases = [...this.inflight.values()].map((f) => f.lease);
    try {
      const held = await heartbeat(this.deps.db, { workerId: this.id, leases, leaseUntil: this.leaseUntil() });
      const stillHeld = new Set(held.map(key));
      for (const lease of leases) {
        if (stillHeld.has(key(lease))) continue;
        const entry = this.inflight.get(key(lease));
        if (entry) {
          entry.controller.abort(new WeftError('WEFT_LEASE_LOST', `lease on ${lease.stepId} attempt ${lease.attempt} was lost`));
        }
      }
    } catch (error) {
      this.deps.log.error('heartbeat failed', { worker: this.id, error: toErrorRecord(error) });
    }
  }

  /** Requeues (or fails, when out of attempts) steps whose worker stopped heartbeating. */
  async sweep(): Promise<number> {
    let swept = 0;
    try {
      const now = new Date(this.deps.clock.now());
      for (const lease of await findExpiredLeases(this.deps.db, now, 100)) {
        const result = await this.advanceSafely({
          runId: lease.runId, at: now,
          event: { type: 'lease_expired', stepId: lease.stepId },
          fence: (tx) => expireLease(tx, { ...lease, now }),
          events: [{ stepId: lease.stepId, type: 'lease_expired', attempt: lease.attempt, data: {} }],
        }, lease, false);
        if (result) swept++;
      }
    } catch (error) {
      this.deps.log.error('sweep failed', { worker: this.id, error: toErrorRecord(error) });
    }
    return swept;
  }

  private onControl(payload: string): void {
    const [verb, runId] = payload.split(':');
    if (verb !== 'cancel' || !runId) return;
    for (const f of this.inflight.values()) {
      if (f.lease.runId === runId) f.controller.abort(new WeftError('WEFT_CANCELLED', `run ${runId} was cancelled`));
    }
  }

  private every(ms: number, fn: () => void | Promise<void>): void {
    const t = setInterval(() => void fn(), ms);
    t.unref();
    this.timers.push(t);
  }
}

/** What a write claimed for this worker (if anything), and the run's states after it when known. */
export interface Claiming {
  claimed?: ClaimedStep | undefined;
  snapshot?: RunSnapshot | undefined;
}

/** The successor an attempt's completion claimed, and the run's states after it when known. */
type NextStep = { claimed: ClaimedStep | undefined; snapshot?: RunSnapshot };

/**
 * In-flight attempts are keyed by attempt too: the same worker can hold a stale attempt of a
 * step (its lease expired, it is still running) and claim the step's next attempt; each must
 * keep its own entry, abort controller and slot.
 */
function key(s: { runId: string; stepId: string; attempt: number }): string {
  return `${s.runId}/${s.stepId}/${s.attempt}`;
}
