import { evaluateExpression } from '../core/expressions.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import type { StepExecutor } from './types.ts';

/** `transform`: the value of a JSONata expression over the step's scope is its output. */
export const transformStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'transform'>;
  const output = await evaluateExpression(def.expr, { ...ctx.scope, with: ctx.params });
  return { output: output ?? null };
};
