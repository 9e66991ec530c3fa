/**
 * The scheduler's vocabulary: statuses, the state it reads, the events it reacts to and
 * the commands it answers with. Events and commands are discriminated unions; handlers are
 * mapped types so a new variant does not compile until it is handled.
 */
import type { ErrorRecord } from './errors.ts';

export type RunStatus = 'queued' | 'running' | 'paused' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';
/** auto: a ready step is queued at once; step: a ready step waits for a human trigger. */
export type RunMode = 'auto' | 'step';

export const TERMINAL_STEP: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
export const TERMINAL_RUN: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface StepState {
  status: StepStatus;
  /** Attempts started so far (0 before the first claim). Never decreases: it fences workers. */
  attempt: number;
  /**
   * `attempt` when the current attempt family began (absent = 0). A human retry, or a reset of
   * a step the retry re-opens, starts a new family: the retry policy counts `attempt −
   * attemptBase`, so the step gets its whole budget again while `attempt` stays monotonic.
   */
  attemptBase?: number;
  /** For a succeeded condition step: the branch it picked. */
  branch?: string | null;
  /**
   * Pending, but already admitted: a budget pause handed its attempt back before it spent
   * anything (the run paused into an approval). Resume queues it like a held retry — also in
   * step mode, where it was triggered already — instead of deciding it again.
   */
  parked?: true;
}

export interface RunState {
  status: RunStatus;
  steps: Record<string, StepState>;
  /** Absent = 'auto'. */
  mode?: RunMode;
}

export type SchedulerEvent =
  /** The run was created: roots become ready. */
  | { type: 'run_started' }
  /** An attempt succeeded (condition steps report the branch they picked). */
  | { type: 'step_succeeded'; stepId: string; branch?: string | null }
  /** The step's `when` guard was false. */
  | { type: 'step_guard_false'; stepId: string }
  /** An attempt failed; `retryable` false fails the step at once. */
  | { type: 'step_failed'; stepId: string; error: ErrorRecord }
  /** The worker holding the step stopped heartbeating. Counts as a retryable failure. */
  | { type: 'lease_expired'; stepId: string }
  | { type: 'run_cancelled' }
  | { type: 'run_paused' }
  | { type: 'run_resumed' }
  /** Step mode: a human started a step that was waiting for its trigger. */
  | { type: 'step_triggered'; stepId: string }
  /** A human asked to run a failed step again (also valid in a run that failed). */
  | { type: 'step_retry_requested'; stepId: string };

export type SchedulerCommand =
  /** Make a step claimable now. */
  | { type: 'queue_step'; stepId: string }
  /** Make a step claimable again after `delayMs` (attempt `attempt` failed). */
  | { type: 'retry_step'; stepId: string; attempt: number; delayMs: number; error: ErrorRecord }
  | { type: 'skip_step'; stepId: string; reason: 'guard' | 'upstream' | 'branch' }
  | { type: 'fail_step'; stepId: string; error: ErrorRecord }
  /** Abort a running step or withdraw a pending/queued one. */
  | { type: 'cancel_step'; stepId: string }
  /** Step mode: a ready (pending) step waits for a human trigger instead of being queued. */
  | { type: 'wait_step'; stepId: string }
  /**
   * A failed step starts a new attempt family (`attemptBase` := `attempt`) and is queued at once
   * (a human asked for it: no trigger needed, and no backoff). `attempt` is the step's current one.
   */
  | { type: 'restart_step'; stepId: string; attempt: number }
  /**
   * A skipped, cancelled or (step mode) waiting step goes back to pending and starts a new
   * attempt family; it is then decided again (possibly by a later command of the same decision).
   */
  | { type: 'reset_step'; stepId: string; from: 'skipped' | 'cancelled' | 'waiting'; attempt: number }
  | { type: 'finish_run'; status: 'succeeded' | 'failed' | 'cancelled'; error?: ErrorRecord }
  | { type: 'set_run_status'; status: 'running' | 'paused' | 'waiting' };

export interface Decision {
  state: RunState;
  commands: SchedulerCommand[];
}

/** Source of randomness for jitter; tests inject a fixed one. */
export type Random = () => number;
