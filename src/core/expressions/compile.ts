/**
 * Compilation: source limits, parsing, analysis and rewrites, binding of the hooks and guarded
 * built-ins, and the bounded cache of compiled expressions keyed by source.
 */

import jsonata from 'jsonata';
import { WeftError } from '../errors.ts';
import { LIMITS } from '../definition-schema.ts';
import type { CompiledExpression } from './api.ts';
import { analyse, protectGroupInput } from './analysis.ts';
import type { AstNode } from './ast.ts';
import { isJsonataError, limitError, syntaxError } from './failures.ts';
import { collectFreeVariables } from './free-variables.ts';
import { SHADOWED, shadowDefs } from './guarded-builtins.ts';
import { onEntry, onExit } from './hooks.ts';
import { ENTRY_HOOK, EXIT_HOOK } from './jsonata-internals.ts';
import { cacheGet, cacheSet } from './lru-cache.ts';
import { RANGE_FN, rangeDef, rewriteRange } from './range.ts';

/** Compiled expressions kept (least recently used evicted first). */
const CACHE_SIZE = 2000;
/** Bracket nesting accepted in source (the AST depth after parsing is bounded in analysis.ts). */
const MAX_SOURCE_NESTING = 128;

interface Internal {
  expr: jsonata.Expression;
}

export const internals = new WeakMap<CompiledExpression, Internal>();
const cache = new Map<string, CompiledExpression>();

/** Deepest bracket nesting, ignoring string literals, quoted names and comments. */
function sourceNesting(src: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      i = end === -1 ? src.length : end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end === -1 ? src.length : end + 1;
    } else if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth > max) max = depth;
    } else if (c === ')' || c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    }
  }
  return max;
}

export function compileInternal(src: string): CompiledExpression {
  if (typeof src !== 'string') throw syntaxError('expression must be a string');
  const hit = cacheGet(cache, src);
  if (hit !== undefined) return hit;
  if (src.length > LIMITS.expressionLength) {
    throw limitError(`expression is ${src.length} characters long; the limit is ${LIMITS.expressionLength}`);
  }
  const nesting = sourceNesting(src);
  if (nesting > MAX_SOURCE_NESTING) {
    throw limitError(`expression nests brackets ${nesting} deep; the limit is ${MAX_SOURCE_NESTING}`);
  }
  let expr: jsonata.Expression;
  try {
    expr = jsonata(src);
  } catch (err) {
    if (err instanceof RangeError) throw limitError(`expression is too deeply nested to parse: ${err.message}`);
    if (isJsonataError(err)) {
      throw syntaxError(`syntax error at position ${err.position ?? '?'}: ${err.message ?? err.code} (JSONata ${err.code})`, {
        jsonataCode: err.code,
        position: err.position,
        token: typeof err.token === 'string' ? err.token : undefined,
      });
    }
    throw syntaxError(`syntax error: ${err instanceof Error ? err.message : String(err)}`);
  }
  let variables: string[];
  try {
    const ast = expr.ast() as unknown as AstNode;
    const { ranges, groupHolders } = analyse(ast);
    variables = collectFreeVariables(ast);
    for (const r of ranges) rewriteRange(r);
    for (const g of groupHolders) protectGroupInput(g);
  } catch (err) {
    if (err instanceof WeftError) throw err;
    if (err instanceof RangeError) throw limitError(`expression is too deeply nested: ${err.message}`);
    throw err;
  }
  expr.assign(ENTRY_HOOK as unknown as string, onEntry);
  expr.assign(EXIT_HOOK as unknown as string, onExit);
  for (const name of SHADOWED) expr.assign(name, shadowDefs.get(name));
  expr.assign(RANGE_FN as unknown as string, rangeDef);
  const compiled: CompiledExpression = Object.freeze({ source: src, variables: Object.freeze(variables) });
  internals.set(compiled, { expr });
  cacheSet(cache, src, compiled, CACHE_SIZE);
  return compiled;
}

/**
 * Compile (cached in a bounded Map keyed by source). Throws WeftError WEFT_EXPRESSION_SYNTAX
 * (message includes the position and JSONata's message) or WEFT_EXPRESSION_LIMIT (too long,
 * too deeply nested, or a regular expression with nested quantifiers).
 */
export function compileExpression(src: string): CompiledExpression {
  return compileInternal(src);
}

/** Throws like compileExpression; returns nothing. */
export function checkExpression(src: string): void {
  compileInternal(src);
}

/**
 * Free root variable names an expression reads, without `$`, sorted and unique:
 * `$article.text & $input.x` → ['article','input'].
 *
 * Excludes variables bound inside the expression (`:=` in a block, for the expressions after it;
 * lambda parameters; `@$v`/`#$i` for the rest of their path), built-in functions in call position,
 * and `$`/`$$` themselves. Because the JSONata input document is the scope object, a bare field
 * read at the root context (`review.score`, `$$.review`, `$.review` at the root) is reported too.
 * When unsure (e.g. a lambda calling a function bound later in the same block) a name is reported.
 * Reads of the whole scope (`$`, `$$`, `*`, `**` at the root) are not reported.
 */
export function freeVariables(src: string): string[] {
  return [...compileInternal(src).variables];
}
