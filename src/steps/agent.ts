import { WeftError } from '../core/errors.ts';
import { renderTemplate } from '../core/expressions.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { resolveProvider } from '../providers/registry.ts';
import { BUILTIN_AGENTS, type AgentProfile } from './agents.ts';
import type { StepContext, StepExecutor } from './types.ts';

export function findAgent(stepId: string, name: string | undefined): AgentProfile | undefined {
  if (name === undefined) return undefined;
  const profile = BUILTIN_AGENTS[name];
  if (!profile) {
    throw new WeftError('WEFT_NOT_FOUND', `step '${stepId}' names agent '${name}', which does not exist (built in: ${Object.keys(BUILTIN_AGENTS).join(', ')})`);
  }
  return profile;
}

/** Renders a template to text: objects and arrays interpolated alone become JSON. */
export async function renderText(template: string, ctx: StepContext): Promise<string> {
  const value = await renderTemplate(template, { ...ctx.scope, with: ctx.params });
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  return JSON.stringify(value);
}

/**
 * `agent`: one chat completion from the step's prompt (and the agent's system prompt). A prompt
 * given with the step's trigger (ctx.overrides) replaces the definition's.
 */
export const agentStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'agent'>;
  const profile = findAgent(ctx.stepId, def.agent);
  const provider = resolveProvider(ctx.stepId, def.provider, ctx.settings.defaultProvider);
  const system = def.system !== undefined ? await renderText(def.system, ctx) : profile?.system;
  const response = await provider.chat({
    model: def.model,
    system,
    prompt: await renderText(ctx.overrides?.prompt ?? def.prompt, ctx),
    temperature: def.temperature ?? profile?.temperature,
    maxTokens: def.max_tokens,
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
  });
  return {
    output: { text: response.text, model: response.model, provider: provider.name, simulated: provider.simulated },
    usage: {
      provider: provider.name,
      model: response.model,
      tokensIn: response.tokensIn,
      tokensOut: response.tokensOut,
      costUsd: 0,
      simulated: provider.simulated,
    },
  };
};
