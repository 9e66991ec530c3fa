/**
 * The contract between the engine and a step type. An executor gets everything it needs in
 * a StepContext (no database handle: the engine stores what it returns) and must honour
 * `signal` — it fires on timeout, cancel and lease loss.
 */
import type { CompiledStep } from '../core/compiled.ts';

export interface Usage {
  provider: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  /** True when the offline `simulated` provider produced this output. */
  simulated: boolean;
}

export interface StepResult {
  /** Plain JSON; stored as the step's output artifact and visible to later steps as `$<stepId>`. */
  output: unknown;
  /** Condition steps: the branch picked. */
  branch?: string;
  usage?: Usage;
}

export interface StepSettings {
  /** WEFT_ALLOW_PRIVATE_NETWORK=1: http steps and provider URLs may reach loopback/private addresses. */
  allowPrivateNetwork: boolean;
  /** Provider used by agent/image/review steps that name none (e.g. `simulated`), or undefined. */
  defaultProvider: string | undefined;
}

/** What a human chose, when triggering a step in step mode, instead of the definition. */
export interface StepOverrides {
  /** Replaces the step's `prompt` (agent, image); a template like the definition's. */
  prompt?: string;
}

export interface StepContext {
  runId: string;
  stepId: string;
  /** 1 for the first attempt; keeps counting across human retries. */
  attempt: number;
  /**
   * The same for every attempt of one attempt family of this step in this run (the automatic
   * retries after one trigger or one human retry); sent to providers and HTTP targets. A human
   * retry starts a new family with a new key: it asks for the work to be done again, so a
   * target that deduplicates must not answer with the failed attempt's stored result.
   */
  idempotencyKey: string;
  /** The trigger's overrides for this step run (step mode); absent when nothing is overridden. */
  overrides?: StepOverrides;
  step: CompiledStep;
  /** Expression variables: `input`, `context`, and each ancestor step id → its output. */
  scope: Record<string, unknown>;
  /** The step's `with` bindings, resolved. */
  params: Record<string, unknown>;
  signal: AbortSignal;
  settings: StepSettings;
}

export type StepExecutor = (ctx: StepContext) => Promise<StepResult>;
