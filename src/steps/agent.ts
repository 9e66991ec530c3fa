/**
 * `agent`: a model call from the step's prompt and its agent profile (stored, versioned; see
 * store/agents.ts), streaming into the run's live events, optionally calling tools and
 * answering in JSON that matches a schema. Usage is the sum over every call the step made.
 */
import { WeftError } from '../core/errors.ts';
import { renderTemplate } from '../core/expressions.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import type { ChatMessage, ChatRequest, ChatResponse } from '../providers/types.ts';
import { runTool, toolDefinitions } from './agent-tools.ts';
import { findAgent, Meter, meteredChat, providerFor } from './model-call.ts';
import { chatJson } from './structured-output.ts';
import type { StepContext, StepExecutor } from './types.ts';

const DEFAULT_TOOL_ROUNDS = 5;

/** Renders a template to text: objects and arrays interpolated alone become JSON. */
export async function renderText(template: string, ctx: StepContext): Promise<string> {
  const value = await renderTemplate(template, { ...ctx.scope, with: ctx.params });
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  return JSON.stringify(value);
}

/**
 * A prompt given with the step's trigger (ctx.overrides) replaces the definition's. Fields set
 * on the step win over the agent's; the provider falls back to the run's or server's default.
 */
export const agentStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'agent'>;
  const profile = await findAgent(ctx, def.agent);
  const provider = providerFor(ctx, def.provider, profile);
  const meter = new Meter(provider);
  const stream = def.stream ?? true;
  const base: ChatRequest = {
    model: def.model ?? profile?.model,
    system: def.system !== undefined ? await renderText(def.system, ctx) : profile?.system,
    prompt: await renderText(ctx.overrides?.prompt ?? def.prompt, ctx),
    temperature: def.temperature ?? profile?.temperature,
    topP: def.top_p ?? profile?.topP,
    maxTokens: def.max_tokens ?? profile?.maxTokens,
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
    ...(stream ? { onToken: ctx.streamOutput } : {}),
  };

  const toolCalls: { name: string; arguments: unknown; ok: boolean }[] = [];
  const reply = def.tools ? await converse(ctx, def, profile?.tools ?? [], base, meter, toolCalls) : undefined;
  const schema = def.output_schema ?? profile?.outputSchema;
  let response: ChatResponse;
  let json: unknown;
  let repaired = false;
  if (schema) {
    // After tool rounds the answer is asked for again as JSON, with the whole conversation.
    const request = reply ? { ...base, messages: reply.messages, prompt: '' } : base;
    const r = await chatJson(ctx, meter, request, schema);
    ({ response, value: json, repaired } = r);
  } else {
    response = reply?.last ?? (await meteredChat(ctx, meter, base));
  }
  return {
    output: {
      text: response.text,
      ...(schema ? { json, repaired } : {}),
      ...(def.tools ? { tool_calls: toolCalls, tool_rounds: reply?.rounds ?? 0 } : {}),
      model: response.model,
      provider: provider.name,
      ...(profile ? { agent: { name: profile.name, version: profile.version } } : {}),
      finish_reason: response.finishReason,
      ...meter.totals(),
      simulated: provider.simulated,
    },
    usage: meter.usage(),
  };
};

/**
 * The tool loop: the model answers or asks for tools; each call's result goes back as a `tool`
 * message, up to `max_tool_rounds` rounds of calls. Returns the last reply and the history.
 */
async function converse(
  ctx: StepContext, def: StepDefinitionOf<'agent'>, allowed: readonly string[], base: ChatRequest, meter: Meter,
  record: { name: string; arguments: unknown; ok: boolean }[],
): Promise<{ last: ChatResponse; messages: ChatMessage[]; rounds: number }> {
  const tools = def.tools ?? {};
  const missing = allowed.find((name) => !Object.hasOwn(tools, name));
  if (missing !== undefined) {
    throw new WeftError('WEFT_STEP_FAILED', `step '${ctx.stepId}': agent '${def.agent}' uses tool '${missing}', which the step does not define`);
  }
  const offered = toolDefinitions(tools, allowed);
  const rounds = def.max_tool_rounds ?? DEFAULT_TOOL_ROUNDS;
  const messages: ChatMessage[] = [{ role: 'user', content: base.prompt }];
  for (let round = 0; ; round++) {
    const last = await meteredChat(ctx, meter, { ...base, messages, prompt: '', ...(offered.length > 0 ? { tools: offered } : {}) });
    messages.push({ role: 'assistant', content: last.text, ...(last.toolCalls.length > 0 ? { toolCalls: last.toolCalls } : {}) });
    if (last.toolCalls.length === 0) return { last, messages, rounds: round };
    if (round >= rounds) {
      throw new WeftError('WEFT_STEP_FAILED', `step '${ctx.stepId}': the model still asked for tools after ${rounds} rounds (max_tool_rounds)`);
    }
    for (const call of last.toolCalls) {
      const outcome = await runTool(ctx, tools, offered, call, record.length + 1);
      record.push({ name: call.name, arguments: call.arguments, ok: outcome.ok });
      messages.push({ role: 'tool', toolCallId: call.id, content: outcome.content, ...(outcome.ok ? {} : { isError: true }) });
    }
  }
}
