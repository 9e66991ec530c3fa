/**
 * The compiled form of a definition: what the scheduler and the engine work from.
 * Plain data (no functions), so it can be cached per workflow version and compared in tests.
 */
import type { StepDefinition, StepType, TriggerRule, WorkflowDefinition } from './definition-schema.ts';

export interface Need {
  step: string;
  /** Set for `needs: [route.good]`: the edge holds only when `route` picked branch `good`. */
  branch?: string;
}

export interface CompiledRetry {
  /** Total attempts allowed: retry.max + 1. */
  maxAttempts: number;
  backoff: 'exponential' | 'fixed';
  baseMs: number;
  maxMs: number;
  /** 0 = none … 1 = full jitter (delay drawn from [0, d]). */
  jitter: number;
}

export interface CompiledStep {
  id: string;
  type: StepType;
  definition: StepDefinition;
  needs: Need[];
  /** Steps whose `needs` name this one (sorted). */
  dependents: string[];
  trigger: TriggerRule;
  retry: CompiledRetry;
  timeoutMs: number | undefined;
  onError: 'fail' | 'continue';
  /** Step ids whose outputs this step's expressions read (all ancestors; sorted). */
  refs: string[];
  /** Longest path from a root (roots are level 0). */
  level: number;
}

export interface CompiledWorkflow {
  definition: WorkflowDefinition;
  steps: Record<string, CompiledStep>;
  /** A topological order (ties broken by id, so it is deterministic). */
  order: string[];
  /** Steps grouped by level: each group can run in parallel. */
  levels: string[][];
  /** Steps with no needs. */
  roots: string[];
  /** Step ids read by the `outputs` bindings (sorted). */
  outputRefs: string[];
}

export const DEFAULT_RETRY: CompiledRetry = { maxAttempts: 1, backoff: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 0.2 };
