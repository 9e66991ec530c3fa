/**
 * What every AI step does around a model call: pick the agent profile and provider, check the
 * run's budget before the call, and add the call's tokens and cost to the step's meter. A step
 * may make several calls (tool rounds, a structured-output repair); its usage is their sum.
 */
import { WeftError } from '../core/errors.ts';
import { resolveProvider } from '../providers/registry.ts';
import { costOf } from '../providers/pricing.ts';
import type { ChatRequest, ChatResponse, Provider } from '../providers/types.ts';
import { assertWithinBudget } from './budget.ts';
import type { AgentProfile, StepContext, Usage } from './types.ts';

/** Looks up `agent: name`; undefined when the step names none. Unknown names fail clearly. */
export async function findAgent(ctx: StepContext, name: string | undefined): Promise<AgentProfile | undefined> {
  if (name === undefined) return undefined;
  const profile = await ctx.agents(name);
  if (!profile) {
    throw new WeftError('WEFT_NOT_FOUND', `step '${ctx.stepId}' names agent '${name}', which does not exist (see GET /api/agents)`);
  }
  return profile;
}

/** The step's provider: its own `provider`, else its agent's, else the run's or server's default. */
export function providerFor(ctx: StepContext, stepProvider: string | undefined, profile: AgentProfile | undefined): Provider {
  return resolveProvider(ctx.stepId, stepProvider ?? profile?.provider, ctx.settings.defaultProvider);
}

/** Sums a step's model calls. */
export class Meter {
  tokensIn = 0;
  tokensOut = 0;
  costUsd = 0;
  calls = 0;
  /** False once a call used a model with no price in the table (its cost counts as 0; `simulated` has none). */
  priced = true;
  model = '';

  constructor(readonly provider: Provider) {}

  add(model: string, tokensIn: number, tokensOut: number): void {
    const cost = costOf(this.provider.name, model, tokensIn, tokensOut);
    this.tokensIn += tokensIn;
    this.tokensOut += tokensOut;
    this.costUsd = Math.round((this.costUsd + cost.costUsd) * 1e8) / 1e8;
    this.priced &&= cost.priced;
    this.calls++;
    this.model = model;
  }

  /** The step's totals as its output shows them. */
  totals(): { tokens_in: number; tokens_out: number; cost_usd: number; priced: boolean } {
    return { tokens_in: this.tokensIn, tokens_out: this.tokensOut, cost_usd: this.costUsd, priced: this.priced };
  }

  usage(): Usage {
    return {
      provider: this.provider.name, model: this.model, tokensIn: this.tokensIn, tokensOut: this.tokensOut,
      costUsd: this.costUsd, simulated: this.provider.simulated,
    };
  }
}


/** One chat call: budget check first (with what this step spent already), then the call, metered. */
export async function meteredChat(ctx: StepContext, meter: Meter, request: ChatRequest): Promise<ChatResponse> {
  const history = (request.messages ?? []).map((m) => m.content).join('\n');
  assertWithinBudget(ctx, {
    provider: meter.provider.name,
    model: request.model ?? meter.provider.defaultModel ?? '',
    inputText: `${request.system ?? ''}\n${history}\n${request.prompt}`,
    maxOutputTokens: request.maxTokens,
  }, meter.costUsd);
  const response = await meter.provider.chat(request);
  meter.add(response.model, response.tokensIn, response.tokensOut);
  return response;
}
