import { evaluateExpression } from '../core/expressions.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import type { StepExecutor } from './types.ts';

/**
 * `condition`: picks the first case (in written order) whose guard is true, else `default`.
 * Steps that need `route.<branch>` run only on the branch picked; the others are skipped.
 * With no match and no default, no branch is picked and every branch edge is unsatisfied.
 */
export const conditionStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'condition'>;
  const scope = { ...ctx.scope, with: ctx.params };
  for (const [branch, guard] of Object.entries(def.cases)) {
    if (isTruthy(await evaluateExpression(guard, scope))) return { output: { branch }, branch };
  }
  if (def.default !== undefined) return { output: { branch: def.default }, branch: def.default };
  return { output: { branch: null } };
};

/** JSONata's boolean coercion for guards: empty strings, 0, empty arrays, null and no value are false. */
export function isTruthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(isTruthy);
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (typeof value === 'number') return !Number.isNaN(value);
  return true;
}
