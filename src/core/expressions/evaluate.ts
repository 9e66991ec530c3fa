/**
 * Running one compiled expression: a fresh budget attached to JSONata's execution frame, errors
 * converted to WeftError, group-by inputs repaired, and the result converted to plain JSON.
 */

import { WeftError } from '../errors.ts';
import type { CompiledExpression, ExpressionLimits } from './api.ts';
import { closeBudget, newBudget, resolveLimits, startWithBudget } from './budget.ts';
import { compileInternal, internals } from './compile.ts';
import { toRuntimeError } from './failures.ts';
import { repairGroupInput } from './hooks.ts';
import type { PreparedScope } from './plain-json.ts';
import { prepareScope, toPlainResult } from './plain-json.ts';

export async function runCompiled(
  compiled: CompiledExpression,
  prepared: PreparedScope,
  limits: ExpressionLimits,
  deadline?: number,
): Promise<unknown> {
  const internal = internals.get(compiled);
  if (internal === undefined) throw new WeftError('WEFT_INTERNAL', 'not a compiled expression');
  const budget = newBudget(limits, deadline);
  if (Date.now() > budget.deadline) {
    throw new WeftError('WEFT_EXPRESSION_LIMIT', `expression evaluation exceeded ${limits.timeoutMs} ms`, {
      retryable: false, details: { limit: 'time' },
    });
  }
  const pending = startWithBudget(budget, () => internal.expr.evaluate(prepared.doc, prepared.doc));
  let raw: unknown;
  try {
    if (!budget.attached) {
      pending.catch(() => undefined);
      throw new WeftError('WEFT_INTERNAL', 'expression budget could not be attached (unsupported jsonata version?)');
    }
    raw = await pending;
  } catch (err) {
    throw toRuntimeError(err);
  } finally {
    closeBudget(budget);
    for (const arr of budget.repairs) repairGroupInput(arr);
  }
  return toPlainResult(raw, limits);
}

/** Evaluate with each scope key bound as `$key`; the JSONata input document `$` is the scope object too. */
export async function evaluateExpression(
  src: string,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  const compiled = compileInternal(src);
  const resolved = resolveLimits(limits);
  return runCompiled(compiled, prepareScope(scope), resolved);
}
