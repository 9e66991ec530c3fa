import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { resolveProvider } from '../providers/registry.ts';
import { renderText } from './agent.ts';
import type { StepExecutor } from './types.ts';

/**
 * `image`: one generated image; the output carries its URL (a data: URL for `simulated`). A
 * prompt given with the step's trigger (ctx.overrides) replaces the definition's.
 */
export const imageStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'image'>;
  const provider = resolveProvider(ctx.stepId, def.provider, ctx.settings.defaultProvider);
  const prompt = await renderText(ctx.overrides?.prompt ?? def.prompt, ctx);
  const image = await provider.image({
    model: def.model,
    prompt,
    size: def.size ?? '1024x1024',
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
  });
  return {
    output: { url: image.url, content_type: image.contentType, prompt, model: image.model, provider: provider.name, simulated: provider.simulated },
    usage: { provider: provider.name, model: image.model, tokensIn: 0, tokensOut: 0, costUsd: 0, simulated: provider.simulated },
  };
};
