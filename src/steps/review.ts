import { WeftError } from '../core/errors.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { simulateReviewScore } from '../providers/simulated.ts';
import { renderText } from './agent.ts';
import { findAgent, Meter, meteredChat, providerFor } from './model-call.ts';
import { chatJson } from './structured-output.ts';
import type { StepExecutor } from './types.ts';

const DEFAULT_THRESHOLD = 7;

const SYSTEM = 'You are a strict, fair reviewer. Score the text from 0 (unusable) to 10 (flawless) against the criteria. ' +
  'Give specific feedback and concrete suggestions for improvement. Answer only with the JSON object asked for.';

/** What the judge must answer. */
export const REVIEW_SCHEMA = {
  type: 'object',
  properties: {
    score: { type: 'number', minimum: 0, maximum: 10 },
    feedback: { type: 'string' },
    suggestions: { type: 'array', items: { type: 'string' } },
  },
  required: ['score', 'feedback', 'suggestions'],
  additionalProperties: false,
};

/**
 * `review`: an LLM-as-judge score (0–10) of `with.text` against `criteria`, with feedback,
 * suggestions and a pass/fail against `threshold`, usable in guards (`$review.score < 7`). A
 * real provider answers in JSON checked against REVIEW_SCHEMA (one repair turn); `simulated`
 * derives the score from the text so that runs are reproducible, and says so.
 */
export const reviewStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'review'>;
  const text = ctx.params['text'];
  if (typeof text !== 'string' || text.length === 0) {
    throw new WeftError('WEFT_STEP_FAILED', `review step '${ctx.stepId}' needs \`with: { text: <expression> }\` that yields the text to judge`);
  }
  const profile = await findAgent(ctx, def.agent);
  const provider = providerFor(ctx, def.provider, profile);
  const meter = new Meter(provider);
  const criteria = def.criteria !== undefined ? await renderText(def.criteria, ctx) : 'clarity, accuracy and usefulness';
  const threshold = def.threshold ?? DEFAULT_THRESHOLD;
  const request = {
    model: def.model ?? profile?.model,
    system: profile ? `${profile.system}\n\n${SYSTEM}` : SYSTEM,
    prompt: `Criteria: ${criteria}\n\nText:\n${text}`,
    temperature: 0,
    maxTokens: profile?.maxTokens,
    idempotencyKey: ctx.idempotencyKey,
    signal: ctx.signal,
  };
  if (provider.simulated) {
    await meteredChat(ctx, meter, request);
    const score = simulateReviewScore(text);
    return {
      output: {
        score, passed: score >= threshold, threshold,
        feedback: `[simulated] Scored ${score}/10 on ${criteria}.`,
        suggestions: score >= threshold ? [] : ['[simulated] Tighten the structure', '[simulated] Add a concrete example'],
        model: meter.model, provider: provider.name, ...meter.totals(), simulated: true,
      },
      usage: meter.usage(),
    };
  }
  const { value, repaired } = await chatJson(ctx, meter, request, REVIEW_SCHEMA, 'review');
  const verdict = value as { score: number; feedback: string; suggestions: string[] };
  return {
    output: {
      score: verdict.score, passed: verdict.score >= threshold, threshold, feedback: verdict.feedback, suggestions: verdict.suggestions,
      repaired, model: meter.model, provider: provider.name, ...meter.totals(), simulated: false,
    },
    usage: meter.usage(),
  };
};
