/**
 * Plain JSON in and out. Scope values are caller data: verified once per object (WeakSet cache)
 * or replaced by a plain copy of their own enumerable data properties, never invoking a getter.
 * Results are converted to plain JSON (sequences become arrays, null-prototype objects ordinary
 * objects, a function anywhere is an error), bounded by maxResultBytes and maxDepth.
 */

import { WeftError } from '../errors.ts';
import type { ExpressionLimits } from './api.ts';
import { limitError } from './failures.ts';
import { isFunctionLike } from './jsonata-internals.ts';

/** Nesting accepted in values walked by resolveBindings/renderTemplates (definition values). */
export const MAX_WALK_DEPTH = 256;

/** Scope objects verified to be plain JSON (they and everything below them). */
export const verifiedPlain = new WeakSet<object>();

// ---------------------------------------------------------------------------------------------
// Scope preparation (plain JSON in)

export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/**
 * `v` itself when it is plain JSON (cached), otherwise a plain copy made of own enumerable data
 * properties only: getters are never invoked, prototypes never consulted for values.
 */
function plainScopeValue(v: unknown, level: number): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'object':
      break;
    default:
      return undefined; // functions, symbols, bigints: not JSON
  }
  if (v === null || verifiedPlain.has(v)) return v;
  if (level > MAX_WALK_DEPTH) throw limitError(`scope value nested deeper than ${MAX_WALK_DEPTH} levels`);
  let plain = true;
  let result: unknown;
  if (Array.isArray(v)) {
    plain = Object.getPrototypeOf(v) === Array.prototype && Object.keys(v).length === v.length;
    const items: unknown[] = [];
    for (let i = 0; i < v.length; i++) {
      const d = Object.getOwnPropertyDescriptor(v, i);
      if (d === undefined || !('value' in d)) {
        plain = false;
        items.push(null);
        continue;
      }
      const e = plainScopeValue(d.value, level + 1);
      if (e !== d.value || e === undefined) plain = false;
      items.push(e === undefined ? null : e);
    }
    result = plain ? v : items;
  } else {
    const proto = Object.getPrototypeOf(v) as unknown;
    plain = proto === Object.prototype || proto === null;
    const copy: Record<string, unknown> = {};
    for (const key of Object.getOwnPropertyNames(v)) {
      const d = Object.getOwnPropertyDescriptor(v, key);
      if (d === undefined || !('value' in d) || d.enumerable !== true) {
        plain = false;
        continue;
      }
      const e = plainScopeValue(d.value, level + 1);
      if (e !== d.value) plain = false;
      if (e !== undefined) setOwn(copy, key, e);
    }
    if (Object.getOwnPropertySymbols(v).length > 0) plain = false;
    result = plain ? v : copy;
  }
  verifiedPlain.add(result as object);
  return result;
}

export interface PreparedScope {
  doc: Record<string, unknown>;
}

export function prepareScope(scope: Record<string, unknown>): PreparedScope {
  if (typeof scope !== 'object' || scope === null || Array.isArray(scope)) {
    throw new WeftError('WEFT_INTERNAL', 'expression scope must be an object');
  }
  const doc = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(scope)) {
    const d = Object.getOwnPropertyDescriptor(scope, key);
    if (d === undefined || !('value' in d)) continue; // never invoke a getter
    setOwn(doc, key, plainScopeValue(d.value, 1));
  }
  verifiedPlain.add(doc); // `$` read as is is caller data, not something the expression built
  return { doc };
}

// ---------------------------------------------------------------------------------------------
// Results (plain JSON out)

export function toPlainResult(v: unknown, limits: ExpressionLimits): unknown {
  let total = 0;
  const add = (n: number): void => {
    total += n;
    if (total > limits.maxResultBytes) {
      throw limitError(`expression result is larger than ${limits.maxResultBytes} bytes`, { limit: 'size' });
    }
  };
  const convert = (x: unknown, level: number): unknown => {
    switch (typeof x) {
      case 'string':
        add(x.length + 2);
        return x;
      case 'boolean':
        add(5);
        return x;
      case 'undefined':
        return undefined;
      case 'number':
        if (!Number.isFinite(x)) {
          throw new WeftError('WEFT_EXPRESSION_ERROR', 'expression produced a non-finite number', { retryable: false });
        }
        add(8);
        return Object.is(x, -0) ? 0 : x;
      case 'object':
        break;
      default:
        throw new WeftError('WEFT_EXPRESSION_ERROR', `expression produced a ${typeof x}, which is not JSON`, { retryable: false });
    }
    if (x === null) {
      add(4);
      return null;
    }
    if (isFunctionLike(x)) {
      throw new WeftError('WEFT_EXPRESSION_ERROR', 'expression result contains a function; functions cannot leave the evaluator', {
        retryable: false,
      });
    }
    if (level > limits.maxDepth) {
      throw limitError(`expression result is nested deeper than ${limits.maxDepth} levels`, { limit: 'depth' });
    }
    add(2);
    if (Array.isArray(x)) {
      const out: unknown[] = [];
      for (let i = 0; i < x.length; i++) {
        const e = convert(x[i], level + 1);
        add(1);
        out.push(e === undefined ? null : e);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    const record = x as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const e = convert(record[key], level + 1);
      if (e === undefined) continue;
      add(key.length + 4);
      setOwn(out, key, e);
    }
    return out;
  };
  return convert(v, 1);
}
