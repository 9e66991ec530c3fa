import { WeftError } from '../core/errors.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { resolveProvider } from '../providers/registry.ts';
import { simulateReviewScore } from '../providers/simulated.ts';
import { findAgent, renderText } from './agent.ts';
import type { StepExecutor } from './types.ts';

const DEFAULT_THRESHOLD = 7;

/**
 * `review`: an LLM-as-judge score (0–10) of `with.text` against `criteria`, with feedback and a
 * pass/fail against `threshold`. The output is usable in guards: `$review.score < 7`.
 * Real providers are asked for JSON in the AI-steps issue; `simulated` derives the score from
 * the text so that runs are reproducible.
 */
export const reviewStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'review'>;
  const text = ctx.params['text'];
  if (typeof text !== 'string' || text.length === 0) {
    throw new WeftError('WEFT_STEP_FAILED', `review step '${ctx.stepId}' needs \`with: { text: <expression> }\` that yields the text to judge`);
  }
  findAgent(ctx.stepId, def.agent);
  const provider = resolveProvider(ctx.stepId, def.provider, ctx.settings.defaultProvider);
  const criteria = def.criteria !== undefined ? await renderText(def.criteria, ctx) : 'clarity, accuracy and usefulness';
  const threshold = def.threshold ?? DEFAULT_THRESHOLD;
  if (!provider.simulated) {
    // Only `simulated` is registered until real providers land; this keeps a future provider
    // from silently getting a made-up score.
    throw new WeftError('WEFT_PROVIDER_MISSING', `review step '${ctx.stepId}': scoring with provider '${provider.name}' is not supported yet`);
  }
  const response = await provider.chat({
    model: def.model,
    system: 'You are a strict reviewer. Score the text from 0 to 10 against the criteria and give feedback.',
    prompt: `Criteria: ${criteria}\n\nText:\n${text}`,
    temperature: 0,
    maxTokens: undefined,
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
  });
  const score = simulateReviewScore(text);
  return {
    output: {
      score,
      passed: score >= threshold,
      threshold,
      feedback: `[simulated] Scored ${score}/10 on ${criteria}.`,
      suggestions: score >= threshold ? [] : ['[simulated] Tighten the structure', '[simulated] Add a concrete example'],
      simulated: true,
    },
    usage: { provider: provider.name, model: response.model, tokensIn: response.tokensIn, tokensOut: response.tokensOut, costUsd: 0, simulated: true },
  };
};
