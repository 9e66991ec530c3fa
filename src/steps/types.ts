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

/**
 * A binary file a step produced (an image, a site bundle). The worker stores it with the
 * step's completion, in the same transaction (table `run_files`, content-addressed per run),
 * and the API serves it at `fileUrl(runId, sha256)`. The step's JSON output refers to it by
 * that URL and hash; the bytes never go into the JSON.
 */
export interface StepFile {
  /** A file name for downloads (`hero.png`, `site.zip`); not a path. */
  name: string;
  contentType: string;
  bytes: Uint8Array;
  /** Hex SHA-256 of `bytes` (see `describeFile`). */
  sha256: string;
}

/** How a stored file is referenced from JSON outputs (what `describeFile` returns). */
export interface FileRef {
  url: string;
  sha256: string;
  content_type: string;
  size: number;
  name: string;
}

/** Where the API serves a run's file. */
export function fileUrl(runId: string, sha256: string): string {
  return `/api/runs/${runId}/files/${sha256}`;
}

export interface StepResult {
  /** Plain JSON; stored as the step's output artifact and visible to later steps as `$<stepId>`. */
  output: unknown;
  /** Condition steps: the branch picked. */
  branch?: string;
  usage?: Usage;
  /** Binary files to store with the output (all or nothing, with the completion). */
  files?: StepFile[];
}

/**
 * An agent profile as executors see it (the stored agent's latest version): absent fields are
 * left to the step or the provider.
 */
export interface AgentProfile {
  name: string;
  /** The stored version; 0 for a built-in read from code (a database no server has seeded). */
  version: number;
  system: string;
  provider?: string;
  model?: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  /** Names of tools the agent may call (matched against the step's `tools`). */
  tools: string[];
  outputSchema?: Record<string, unknown>;
}

/** Finds a live agent by name; undefined when there is none. */
export type AgentLookup = (name: string) => Promise<AgentProfile | undefined>;

/** The run's spending limit (`budget_usd` at launch) and what it has spent so far. */
export interface StepBudget {
  limitUsd: number;
  spentUsd: number;
}

export interface StepSettings {
  /** WEFT_ALLOW_PRIVATE_NETWORK=1: http steps and provider URLs may reach loopback/private addresses. */
  allowPrivateNetwork: boolean;
  /**
   * Provider used by agent/image/review steps (and agents) that name none: the run's
   * `provider` chosen at launch, else the server's WEFT_DEFAULT_PROVIDER, else undefined
   * (such a step fails with WEFT_PROVIDER_MISSING).
   */
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
  /** Stored agents (the latest version of each), cached briefly by the worker. */
  agents: AgentLookup;
  /**
   * Partial output as it arrives (agent token streaming). The worker batches the pieces into
   * `step_output_delta` events on the run's live stream; their concatenation, in order, is
   * what streamed. Never throws; cheap to call per token.
   */
  streamOutput: (text: string) => void;
  /** Present when the run has a `budget_usd`: an AI step whose estimated cost would pass it throws WEFT_BUDGET_EXCEEDED. */
  budget?: StepBudget;
}

export type StepExecutor = (ctx: StepContext) => Promise<StepResult>;
