/**
 * Agent tools: the model may call `http` and `transform` tools declared on the step. A tool
 * runs through the same executor as a step of its type (the SSRF guard, bounds and the step's
 * abort signal included), with the model's arguments in scope as `$args` after they were
 * checked against the tool's `parameters`. A failed or refused call goes back to the model as
 * an error result (it may correct itself); it fails the step only through the round limit.
 */
import type { AgentToolDefinition } from '../core/definition-schema.ts';
import type { CompiledStep } from '../core/compiled.ts';
import type { ToolCall, ToolDefinition } from '../providers/types.ts';
import { httpStep } from './http.ts';
import { schemaErrors } from './structured-output.ts';
import { transformStep } from './transform.ts';
import type { StepContext } from './types.ts';

/** Largest tool result sent back to the model, in characters. */
const MAX_RESULT_CHARS = 32_000;

const ANY_OBJECT = { type: 'object', properties: {}, additionalProperties: true };

/** The step's tools as the provider API wants them; `allowed` (an agent's list) narrows them when not empty. */
export function toolDefinitions(tools: Record<string, AgentToolDefinition>, allowed: readonly string[]): ToolDefinition[] {
  return Object.entries(tools)
    .filter(([name]) => allowed.length === 0 || allowed.includes(name))
    .map(([name, t]) => ({ name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters ?? ANY_OBJECT }));
}

export interface ToolOutcome {
  ok: boolean;
  /** What the model is told (JSON text). */
  content: string;
}

/** Runs one call the model asked for; `n` numbers the step's calls (for the idempotency key). */
export async function runTool(ctx: StepContext, tools: Record<string, AgentToolDefinition>, offered: readonly ToolDefinition[], call: ToolCall, n: number): Promise<ToolOutcome> {
  const tool = Object.hasOwn(tools, call.name) && offered.some((t) => t.name === call.name) ? tools[call.name] : undefined;
  if (!tool) return refuse(`there is no tool named '${call.name}'`);
  const args = call.arguments ?? {};
  const problems = tool.parameters ? schemaErrors(tool.parameters, args) : [];
  if (problems.length > 0) return refuse(`invalid arguments for '${call.name}': ${problems.join('; ')}`);
  const { type: _t, description: _d, parameters: _p, ...fields } = tool;
  const step = { ...ctx.step, type: tool.type, definition: { type: tool.type, ...fields } } as CompiledStep;
  const toolCtx: StepContext = { ...ctx, step, scope: { ...ctx.scope, args }, idempotencyKey: `${ctx.idempotencyKey}:tool:${n}` };
  try {
    const result = await (tool.type === 'http' ? httpStep : transformStep)(toolCtx);
    return { ok: true, content: clip(JSON.stringify(result.output ?? null)) };
  } catch (error) {
    // The step's own abort (timeout, cancel, lease loss) ends the step, not just the call.
    if (ctx.signal.aborted) throw error;
    return refuse(error instanceof Error ? error.message : String(error));
  }
}

function refuse(message: string): ToolOutcome {
  return { ok: false, content: JSON.stringify({ error: message }) };
}

function clip(text: string): string {
  return text.length <= MAX_RESULT_CHARS ? text : `${text.slice(0, MAX_RESULT_CHARS)}…[truncated ${text.length - MAX_RESULT_CHARS} characters]`;
}
