/**
 * One attempt's pieces around its executor, free of the worker's state: what the executor is
 * given (idempotency key, overrides), how it is raced against its abort signal, how its output
 * is stored, and what advance() records for its outcome.
 */
import type { CompiledStep } from '../core/compiled.ts';
import { WeftError, type ErrorRecord } from '../core/errors.ts';
import type { SchedulerEvent } from '../core/scheduler-types.ts';
import type { NewEvent } from '../store/events.ts';
import { insertRunFiles } from '../store/run-files.ts';
import type { UsageDelta } from '../store/runs.ts';
import { completeAttempt, releaseAttempt, type AttemptUsage, type ClaimedStep } from '../store/step-runs.ts';
import type { StepOverrides, StepResult } from '../steps/types.ts';
import type { AdvanceRequest } from './advance.ts';
import { budgetHoldRequest } from './budget-hold.ts';

export type AttemptOutcome =
  | { kind: 'succeeded'; result: StepResult; output: unknown }
  | { kind: 'guard_false' }
  | { kind: 'failed'; error: ErrorRecord }
  /** The executor refused a model call the run's budget does not cover: park the step, pause into an approval. */
  | { kind: 'budget_exceeded'; error: WeftError }
  /** Cancelled or lease lost: someone else owns what happens next; write nothing. */
  | { kind: 'abandoned'; reason: WeftError };

/** Largest step output accepted (serialised JSON); larger outputs fail the attempt. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** What advance() records for an attempt's outcome. */
export function outcomeRequest(workerId: string, c: ClaimedStep, outcome: Exclude<AttemptOutcome, { kind: 'abandoned' }>, at: Date, durationMs: number): AdvanceRequest {
  const fence = { runId: c.runId, stepId: c.stepId, attempt: c.attempt, workerId };
  if (outcome.kind === 'succeeded') {
    const { result } = outcome;
    const branch = result.branch ?? null;
    const usage = runUsageOf(result);
    return {
      runId: c.runId, at,
      event: { type: 'step_succeeded', stepId: c.stepId, branch },
      ...(usage ? { usage } : {}),
      fence: async (tx, run) => {
        // Inside the fence's transaction: a stale attempt's files roll back with it.
        if (result.files?.length) await insertRunFiles(tx, c.runId, c.stepId, result.files, run.at);
        return completeAttempt(tx, { ...fence, output: outcome.output, branch, at: run.at, durationMs, usage: attemptUsageOf(result) });
      },
      events: [successEvent(c, result, durationMs)],
    };
  }
  if (outcome.kind === 'budget_exceeded') return budgetHoldRequest(c, fence, outcome.error, at, durationMs);
  const error = outcome.kind === 'failed' ? outcome.error : null;
  const event: SchedulerEvent = outcome.kind === 'failed'
    ? { type: 'step_failed', stepId: c.stepId, error: outcome.error }
    : { type: 'step_guard_false', stepId: c.stepId };
  return {
    runId: c.runId, at, event,
    fence: (tx, run) => releaseAttempt(tx, { ...fence, error, at: run.at, durationMs }),
    events: outcome.kind === 'failed' ? [attemptEvent(c, 'step_attempt_failed', { duration_ms: durationMs, error: outcome.error })] : [],
  };
}

export function attemptUsageOf(result: StepResult): AttemptUsage | undefined {
  const usage = result.usage;
  return usage && { provider: usage.provider, model: usage.model, tokensIn: usage.tokensIn, tokensOut: usage.tokensOut, costUsd: usage.costUsd };
}

/** What a success adds to the run's totals. */
export function runUsageOf(result: StepResult): UsageDelta | undefined {
  const usage = result.usage;
  return usage && { tokensIn: usage.tokensIn, tokensOut: usage.tokensOut, costUsd: usage.costUsd, simulated: usage.simulated };
}

export function successEvent(c: ClaimedStep, result: StepResult, durationMs: number): NewEvent {
  const branch = result.branch ?? null;
  return attemptEvent(c, 'step_succeeded', { duration_ms: durationMs, ...(branch !== null ? { branch } : {}), ...(result.usage?.simulated ? { simulated: true } : {}) });
}

export function attemptEvent(c: ClaimedStep, type: NewEvent['type'], data: Record<string, unknown>): NewEvent {
  return { stepId: c.stepId, type, attempt: c.attempt, data };
}

/**
 * One key per attempt family: the automatic retries of one trigger share it (a target that
 * deduplicates sees one logical request); a human retry starts a new family (attemptBase > 0)
 * and gets a new key, because it asks for the work to be done again.
 */
export function idempotencyKey(c: { runId: string; stepId: string; attemptBase: number }): string {
  return c.attemptBase > 0 ? `${c.runId}:${c.stepId}:${c.attemptBase}` : `${c.runId}:${c.stepId}`;
}

/** The stored overrides as the executor contract has them (unknown fields are ignored). */
export function toOverrides(stored: Record<string, unknown>): StepOverrides | undefined {
  const prompt = stored['prompt'];
  return typeof prompt === 'string' ? { prompt } : undefined;
}

/** Settles with the executor, or as soon as the signal aborts (an executor that ignores it cannot hold the slot). */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/** Outputs are stored as JSON: normalise (drops undefined, functions) and bound the size. */
export function toPlainJson(value: unknown, step: CompiledStep): unknown {
  const text = JSON.stringify(value ?? null);
  if (text.length > MAX_OUTPUT_BYTES) {
    throw new WeftError('WEFT_STEP_FAILED', `step '${step.id}' produced ${text.length} bytes of output; the limit is ${MAX_OUTPUT_BYTES}`);
  }
  return JSON.parse(text);
}
