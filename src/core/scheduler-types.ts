/**
 * The scheduler's vocabulary: statuses, the state it reads, the events it reacts to and
 * the commands it answers with. Events and commands are discriminated unions; handlers are
 * mapped types so a new variant does not compile until it is handled.
 */
import type { ErrorRecord } from './errors.ts';

export type RunStatus = 'queued' | 'running' | 'paused' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export const TERMINAL_STEP: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
export const TERMINAL_RUN: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface StepState {
  status: StepStatus;
  /** Attempts started so far (0 before the first claim). */
  attempt: number;
  /** For a succeeded condition step: the branch it picked. */
  branch?: string | null;
}

export interface RunState {
  status: RunStatus;
  steps: Record<string, StepState>;
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
  | { type: 'run_resumed' };

export type SchedulerCommand =
  /** Make a step claimable now. */
  | { type: 'queue_step'; stepId: string }
  /** Make a step claimable again after `delayMs` (attempt `attempt` failed). */
  | { type: 'retry_step'; stepId: string; attempt: number; delayMs: number; error: ErrorRecord }
  | { type: 'skip_step'; stepId: string; reason: 'guard' | 'upstream' | 'branch' }
  | { type: 'fail_step'; stepId: string; error: ErrorRecord }
  /** Abort a running step or withdraw a pending/queued one. */
  | { type: 'cancel_step'; stepId: string }
  | { type: 'finish_run'; status: 'succeeded' | 'failed' | 'cancelled'; error?: ErrorRecord }
  | { type: 'set_run_status'; status: 'running' | 'paused' };

export interface Decision {
  state: RunState;
  commands: SchedulerCommand[];
}

/** Source of randomness for jitter; tests inject a fixed one. */
export type Random = () => number;
