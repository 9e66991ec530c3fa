/**
 * The JSONata built-ins we shadow with bounded versions: `$eval` throws; `$pad`, `$join`,
 * `$string`, `$clone` size what they would build first; regex and lambda matchers check the
 * budget at every match; `$distinct` and default `$sort` run in linear/n log n time instead of
 * JSONata's quadratic versions. The shadows are bound in each compiled expression's own frame.
 */

import type jsonata from 'jsonata';
import type { Budget } from './budget.ts';
import { budgetOfFocus, charge, checkBudget, fail } from './budget.ts';
import { RuntimeSignal, jsonataThrow } from './failures.ts';
import type { JImpl } from './jsonata-internals.ts';
import { captureBuiltins, isFunctionLike } from './jsonata-internals.ts';
import { markVolatile, measureInBudget, primitiveSize } from './measure.ts';

/** `$match` returns at most this many matches (more is a WEFT_EXPRESSION_LIMIT error). */
const MAX_MATCHES = 100_000;

export const SHADOWED = ['eval', 'pad', 'join', 'string', 'clone', 'match', 'replace', 'split', 'contains', 'distinct', 'sort'] as const;
type ShadowedName = (typeof SHADOWED)[number];

const originals = captureBuiltins(SHADOWED);

function original(name: ShadowedName): JImpl {
  const def = originals.get(name);
  if (def === undefined) throw new Error(`missing built-in ${name}`);
  return def.implementation;
}

const origPad = original('pad');
const origJoin = original('join');
const origString = original('string');
const origClone = original('clone');
const origMatch = original('match');
const origReplace = original('replace');
const origSplit = original('split');
const origContains = original('contains');
const origSort = original('sort');

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

type MatcherFn = (this: unknown, ...args: unknown[]) => unknown;

/** Wrap a matcher (regex closure or lambda closure) so every match, including `next()`, checks the budget. */
function guardMatcher(b: Budget, fn: MatcherFn): MatcherFn {
  const wrapResult = (r: unknown): unknown => {
    if (typeof r === 'object' && r !== null && typeof (r as { next?: unknown }).next === 'function') {
      const next = (r as { next: MatcherFn }).next;
      return { ...(r as object), next: guardMatcher(b, next) };
    }
    return r;
  };
  const guarded = function (this: unknown, ...args: unknown[]): unknown {
    checkBudget(b);
    const r = fn.apply(this, args);
    return isPromiseLike(r) ? Promise.resolve(r).then(wrapResult) : wrapResult(r);
  };
  (guarded as unknown as { arity?: unknown }).arity = (fn as unknown as { arity?: unknown }).arity;
  return guarded;
}

function guardFunctionArg(b: Budget, v: unknown): unknown {
  return typeof v === 'function' ? guardMatcher(b, v as MatcherFn) : v;
}

function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

const shadows: Record<ShadowedName, { impl: JImpl; signature?: string }> = {
  eval: {
    impl() {
      throw new RuntimeSignal('$eval is disabled in weft expressions');
    },
  },
  pad: {
    signature: '<s-ns?:s>',
    impl(str, width, char) {
      const b = budgetOfFocus(this);
      if (typeof str === 'string' && typeof width === 'number') {
        const w = Math.abs(Math.trunc(width));
        const charLen = typeof char === 'string' && char.length > 0 ? char.length : 1;
        const cost = Math.max(w - codePointLength(str), 0) * charLen + str.length;
        if (!(cost + 2 <= b.maxBytes)) fail(b, 'size', `$pad would build a string of ${cost} characters (limit ${b.maxBytes})`);
        charge(b, cost, '$pad');
      }
      return origPad.call(this, str, width, char);
    },
  },
  join: {
    signature: '<a<s>s?:s>',
    impl(strs, separator) {
      const b = budgetOfFocus(this);
      if (Array.isArray(strs)) {
        const sep = typeof separator === 'string' ? separator.length : 0;
        let total = Math.max(strs.length - 1, 0) * sep;
        for (const s of strs) total += typeof s === 'string' ? s.length : 0;
        if (total + 2 > b.maxBytes) fail(b, 'size', `$join would build a string of ${total} characters (limit ${b.maxBytes})`);
        charge(b, total, '$join');
      }
      return origJoin.call(this, strs, separator);
    },
  },
  string: {
    signature: '<x-b?:s>',
    impl(arg, prettify) {
      const b = budgetOfFocus(this);
      if (typeof arg === 'object' && arg !== null && !isFunctionLike(arg)) {
        const m = measureInBudget(b, arg);
        let cost = m.size;
        if (prettify === true) cost = prettySize(b, arg, 0);
        if (cost + 2 > b.maxBytes) fail(b, 'size', `$string would build a string of about ${cost} characters (limit ${b.maxBytes})`);
        charge(b, cost, '$string');
      }
      return origString.call(this, arg, prettify);
    },
  },
  clone: {
    signature: '<(oa)-:o>',
    impl(arg) {
      const b = budgetOfFocus(this);
      if (typeof arg === 'object' && arg !== null) charge(b, measureInBudget(b, arg).size * 2, '$clone');
      const copy = origClone.call(this, arg);
      markVolatile(copy);
      return copy;
    },
  },
  match: {
    signature: '<s-f<s:o>n?:a<o>>',
    async impl(str, regex, limit) {
      const b = budgetOfFocus(this);
      const capped = typeof limit === 'number' && limit >= 0 && limit <= MAX_MATCHES;
      const effective = typeof limit === 'number' && limit < 0 ? limit : capped ? limit : MAX_MATCHES + 1;
      const result = await origMatch.call(this, str, guardFunctionArg(b, regex), effective);
      if (!capped && Array.isArray(result) && result.length > MAX_MATCHES) {
        fail(b, 'size', `$match found more than ${MAX_MATCHES} matches; pass a limit`);
      }
      return result;
    },
  },
  replace: {
    signature: '<s-(sf)(sf)n?:s>',
    impl(str, pattern, replacement, limit) {
      const b = budgetOfFocus(this);
      return origReplace.call(this, str, guardFunctionArg(b, pattern), guardFunctionArg(b, replacement), limit);
    },
  },
  split: {
    signature: '<s-(sf)n?:a<s>>',
    impl(str, separator, limit) {
      const b = budgetOfFocus(this);
      if (typeof str === 'string' && typeof separator === 'string') {
        const max = typeof limit === 'number' && limit >= 0 ? limit : Infinity;
        let pieces = 1;
        if (separator === '') {
          pieces = str.length;
        } else {
          for (let i = str.indexOf(separator); i !== -1 && pieces <= max; i = str.indexOf(separator, i + separator.length)) {
            pieces++;
            if (pieces % 4096 === 0) checkBudget(b);
          }
        }
        pieces = Math.min(pieces, max);
        const estimate = str.length + pieces * 3 + 2;
        if (estimate > b.maxBytes) fail(b, 'size', `$split would produce ${pieces} pieces (about ${estimate} bytes, limit ${b.maxBytes})`);
      }
      return origSplit.call(this, str, guardFunctionArg(b, separator), limit);
    },
  },
  contains: {
    signature: '<s-(sf):b>',
    impl(str, token) {
      const b = budgetOfFocus(this);
      return origContains.call(this, str, guardFunctionArg(b, token));
    },
  },
  distinct: {
    signature: '<x:x>',
    impl(arr) {
      const b = budgetOfFocus(this);
      if (!Array.isArray(arr) || arr.length <= 1) return arr;
      // JSONata compares every pair (quadratic). Same semantics — keep the first of each set of
      // deep-equal values — in linear time, keyed by a canonical (sorted-key) encoding.
      measureInBudget(b, arr);
      const seen = new Set<string>();
      const identities = new Map<object, string>();
      const results = (arr as { sequence?: unknown }).sequence === true ? this.createSequence() : [];
      for (const value of arr) {
        const key = canonicalKey(value, identities);
        if (!seen.has(key)) {
          seen.add(key);
          results.push(value);
        }
      }
      return results;
    },
  },
  sort: {
    signature: '<af?:a>',
    impl(arr, comparator) {
      const b = budgetOfFocus(this);
      if (arr === undefined) return undefined;
      if (!Array.isArray(arr) || arr.length <= 1) return arr;
      if (comparator === undefined) {
        // JSONata's merge sort slices arrays at every step (quadratic). The default comparator
        // (a > b, stable) is exactly a stable ascending native sort.
        const allNumbers = arr.every((v) => typeof v === 'number');
        const allStrings = !allNumbers && arr.every((v) => typeof v === 'string');
        if (!allNumbers && !allStrings) jsonataThrow('D3070', { index: 1 });
        return [...(arr as (number | string)[])].sort((x, y) => (x > y ? 1 : x < y ? -1 : 0));
      }
      return origSort.call(this, arr, guardFunctionArg(b, comparator));
    },
  },
};

/** Canonical encoding for $distinct: deep-equal values (JSONata's isDeepEqual) map to one key. */
function canonicalKey(v: unknown, identities: Map<object, string>): string {
  if (v === undefined) return 'u';
  if (typeof v === 'string') return 's' + JSON.stringify(v);
  if (typeof v === 'number') return 'n' + (Object.is(v, -0) ? '0' : String(v));
  if (typeof v === 'boolean' || v === null) return 'p' + String(v);
  if (typeof v === 'object' && !isFunctionLike(v)) {
    if (Array.isArray(v)) return '[' + v.map((e) => canonicalKey(e, identities)).join(',') + ']';
    const record = v as Record<string, unknown>;
    const keys = Object.getOwnPropertyNames(record).sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalKey(record[k], identities)).join(',') + '}';
  }
  // Functions, lambdas: equal only to themselves.
  const obj = v as object;
  let id = identities.get(obj);
  if (id === undefined) {
    id = 'f' + identities.size;
    identities.set(obj, id);
  }
  return id;
}

/** Size of JSON.stringify(v, null, 2): each value on its own line, indented two spaces per level. */
function prettySize(b: Budget, v: unknown, level: number): number {
  if (typeof v !== 'object' || v === null || isFunctionLike(v)) return primitiveSize(v);
  let size = 2 + 2 * level + 1;
  const step = (child: unknown, extra: number): void => {
    size += extra + 2 * (level + 1) + 2 + prettySize(b, child, level + 1);
    if (size > b.maxBytes) fail(b, 'size', `$string would build a string larger than ${b.maxBytes} characters`);
  };
  if (Array.isArray(v)) for (const e of v) step(e, 0);
  else for (const key of Object.keys(v)) step((v as Record<string, unknown>)[key], key.length + 4);
  return size;
}

/** The shadow definitions, built once by JSONata itself (so they carry parsed signatures). */
export const shadowDefs = captureBuiltins([...SHADOWED], (factory) => {
  for (const name of SHADOWED) {
    const { impl, signature } = shadows[name];
    factory.registerFunction(name, impl as unknown as (this: jsonata.Focus, ...args: unknown[]) => unknown, signature);
  }
});
