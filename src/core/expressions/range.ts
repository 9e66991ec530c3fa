/**
 * Ranges `[a..b]`: rewritten at compile time into a call of a function bound under a private
 * symbol, which sizes the range against the budget before allocating it.
 */

import type jsonata from 'jsonata';
import type { AstNode } from './ast.ts';
import { budgetOfFocus, charge, fail } from './budget.ts';
import { jsonataThrow } from './failures.ts';
import type { JFocus } from './jsonata-internals.ts';
import { captureBuiltins } from './jsonata-internals.ts';
import { PROCEDURE, mark } from './node-marks.ts';

/** Bound to our range function; unreachable from JSONata source (variables are strings). */
export const RANGE_FN = Symbol('weft.range');

/** Our range operator: same semantics as JSONata's `..`, but sized against the budget first. */
function rangeImpl(this: JFocus, lhs: unknown, rhs: unknown): unknown {
  const b = budgetOfFocus(this);
  if (lhs !== undefined && !Number.isInteger(lhs)) jsonataThrow('T2003', { value: lhs, token: '..' });
  if (rhs !== undefined && !Number.isInteger(rhs)) jsonataThrow('T2004', { value: rhs, token: '..' });
  if (typeof lhs !== 'number' || typeof rhs !== 'number' || lhs > rhs) return undefined;
  const size = rhs - lhs + 1;
  const bytes = size * 9 + 2;
  if (bytes > b.maxBytes) fail(b, 'size', `range [${lhs}..${rhs}] has ${size} elements (about ${bytes} bytes, limit ${b.maxBytes})`);
  charge(b, bytes, 'range');
  const result = new Array<number>(size);
  for (let i = 0; i < size; i++) result[i] = lhs + i;
  (result as unknown as { sequence: boolean }).sequence = true;
  return result;
}

export const rangeDef = (() => {
  const key = 'weftRange';
  return captureBuiltins([key], (factory) => {
    factory.registerFunction(key, rangeImpl as unknown as (this: jsonata.Focus, ...args: unknown[]) => unknown);
  }).get(key);
})();

/** Turn `a..b` into a call of our range function (see rangeImpl). Mutates the node in place. */
export function rewriteRange(n: AstNode): void {
  const procedure: AstNode = { type: 'variable', value: RANGE_FN, position: n.position };
  mark(procedure, PROCEDURE);
  n.arguments = [n.lhs, n.rhs];
  n.procedure = procedure;
  n.type = 'function';
  n.value = '(';
  delete n.lhs;
  delete n.rhs;
}
