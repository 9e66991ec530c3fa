import { WeftError } from '../core/errors.ts';
import { findPrice } from '../providers/pricing.ts';
import { estimateTokens } from '../providers/simulated.ts';
import type { StepContext } from './types.ts';

/** Output tokens assumed for an estimate when the step sets no max_tokens. */
export const DEFAULT_OUTPUT_ESTIMATE = 1024;

export interface CallEstimate {
  provider: string;
  model: string;
  /** Everything sent as input (system, prompt, history), for a token estimate. */
  inputText: string;
  maxOutputTokens: number | undefined;
}

/** USD a call is expected to cost at most: input estimated from its text, output at its max_tokens. 0 for an unpriced model. */
export function estimateCallUsd(call: CallEstimate): number {
  const price = findPrice(call.provider, call.model);
  if (!price) return 0;
  const tokensOut = call.maxOutputTokens ?? DEFAULT_OUTPUT_ESTIMATE;
  return (estimateTokens(call.inputText) * price.inputPer1M + tokensOut * price.outputPer1M) / 1_000_000;
}

/**
 * Throws WEFT_BUDGET_EXCEEDED (details: estimate_usd, spent_usd, budget_usd) when the run has a
 * budget and this call's estimate would take its spending past it. The worker turns that into
 * a pause with an approval rather than a failure. Call it before every model call.
 */
export function assertWithinBudget(ctx: Pick<StepContext, 'stepId' | 'budget'>, call: CallEstimate, spentInStepUsd = 0): void {
  if (!ctx.budget) return;
  const estimate = estimateCallUsd(call);
  const spent = ctx.budget.spentUsd + spentInStepUsd;
  if (spent + estimate > ctx.budget.limitUsd) {
    throw new WeftError(
      'WEFT_BUDGET_EXCEEDED',
      `step '${ctx.stepId}': the next ${call.provider}/${call.model} call is estimated at $${estimate.toFixed(6)}, which would take the run's spending from $${spent.toFixed(6)} past its budget of $${ctx.budget.limitUsd.toFixed(6)}`,
      { details: { estimate_usd: estimate, spent_usd: spent, budget_usd: ctx.budget.limitUsd } },
    );
  }
}
