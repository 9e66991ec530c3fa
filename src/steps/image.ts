import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { renderText } from './agent.ts';
import { describeFile, makeFile } from './files.ts';
import { providerFor } from './model-call.ts';
import type { StepExecutor } from './types.ts';

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif', 'image/svg+xml': 'svg' };

/**
 * `image`: one generated image. The bytes are stored as a run file (content type, size,
 * SHA-256) and the output's `url` is where the API serves them; a provider that returned only
 * a URL (which may expire) is kept as it is, with `stored: false`. A prompt given with the
 * step's trigger (ctx.overrides) replaces the definition's.
 */
export const imageStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'image'>;
  const provider = providerFor(ctx, def.provider, undefined);
  const prompt = await renderText(ctx.overrides?.prompt ?? def.prompt, ctx);
  const image = await provider.image({
    model: def.model,
    prompt,
    size: def.size ?? '1024x1024',
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
  });
  const usage = { provider: provider.name, model: image.model, tokensIn: 0, tokensOut: 0, costUsd: 0, simulated: provider.simulated };
  // Images are not priced yet (the price table holds token prices): cost 0, priced false.
  const about = { prompt, model: image.model, provider: provider.name, tokens_in: 0, tokens_out: 0, cost_usd: 0, priced: false, simulated: provider.simulated };
  if (!image.bytes) {
    return { output: { url: image.url, content_type: image.contentType, stored: false, ...about }, usage };
  }
  const file = makeFile(`${ctx.stepId}.${EXTENSIONS[image.contentType] ?? 'bin'}`, image.contentType, image.bytes);
  return { output: { ...describeFile(ctx.runId, file), stored: true, ...about }, files: [file], usage };
};
