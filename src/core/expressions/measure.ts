/**
 * Approximate JSON size and nesting of the values an evaluation produces, memoised per object so
 * that bounding every intermediate value stays linear (an object "DAG bomb" shares subtrees; each
 * is measured once). A breach fails the evaluation's budget.
 */

import type { Budget } from './budget.ts';
import { fail } from './budget.ts';
import { isFunctionLike } from './jsonata-internals.ts';
import { verifiedPlain } from './plain-json.ts';

export interface Measured {
  size: number;
  height: number;
}

/** Objects whose size/height are known and cannot change (JSONata results, verified scope values). */
const sizeMemo = new WeakMap<object, Measured>();
/** Objects created by our $clone: the transform operator mutates them, so never memoise them. */
export const volatile = new WeakSet<object>();

interface MeasureContext {
  maxBytes: number;
  maxDepth: number;
  reachedLevel: number;
  unstable: boolean;
  /** Breaches fail this evaluation's budget. */
  budget: Budget;
}

function exceeded(ctx: MeasureContext, kind: 'size' | 'depth', message: string): never {
  fail(ctx.budget, kind, `expression produced a ${message}`);
}

export function primitiveSize(v: unknown): number {
  switch (typeof v) {
    case 'string':
      return v.length + 2;
    case 'number':
      return 8;
    case 'boolean':
      return 5;
    default:
      return v === null ? 4 : 0;
  }
}

/** Approximate JSON size of `v` at nesting `level`; throws via ctx.onExceed past the limits. */
function measureAt(v: unknown, level: number, ctx: MeasureContext): number {
  if (typeof v !== 'object' || v === null) return primitiveSize(v);
  if (isFunctionLike(v)) return 0;
  const memo = sizeMemo.get(v);
  if (memo !== undefined) {
    const reached = level + memo.height;
    if (reached > ctx.maxDepth) exceeded(ctx, 'depth', `value nested deeper than ${ctx.maxDepth} levels`);
    if (memo.size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    if (reached > ctx.reachedLevel) ctx.reachedLevel = reached;
    return memo.size;
  }
  if (level + 1 > ctx.maxDepth) exceeded(ctx, 'depth', `value nested deeper than ${ctx.maxDepth} levels`);
  const outerReached = ctx.reachedLevel;
  const outerUnstable = ctx.unstable;
  ctx.reachedLevel = level + 1;
  ctx.unstable = volatile.has(v);
  let size = 2;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      size += measureAt(v[i], level + 1, ctx) + 1;
      if (size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    }
  } else {
    const record = v as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      size += key.length + 4 + measureAt(record[key], level + 1, ctx);
      if (size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    }
  }
  const height = ctx.reachedLevel - level;
  if (!ctx.unstable) sizeMemo.set(v, { size, height });
  ctx.reachedLevel = Math.max(outerReached, ctx.reachedLevel);
  ctx.unstable = outerUnstable || ctx.unstable;
  return size;
}

export function measureInBudget(b: Budget, v: unknown): Measured {
  const ctx: MeasureContext = { maxBytes: b.maxBytes, maxDepth: b.maxDepth, reachedLevel: 0, unstable: false, budget: b };
  const size = measureAt(v, 0, ctx);
  return { size, height: ctx.reachedLevel };
}

/** Bound a value some AST node produced. Scope values read as they are were verified up front. */
export function boundValue(b: Budget, v: unknown): void {
  if (typeof v === 'string') {
    if (v.length + 2 > b.maxBytes) fail(b, 'size', `expression produced a string longer than ${b.maxBytes} characters`);
    return;
  }
  if (typeof v !== 'object' || v === null || verifiedPlain.has(v)) return;
  measureInBudget(b, v);
}

export function markVolatile(v: unknown, level = 0): void {
  if (typeof v !== 'object' || v === null || level > 10_000) return;
  volatile.add(v);
  if (Array.isArray(v)) for (const e of v) markVolatile(e, level + 1);
  else for (const key of Object.keys(v)) markVolatile((v as Record<string, unknown>)[key], level + 1);
}
