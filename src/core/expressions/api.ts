/**
 * Public types and constants of the expressions module, re-exported unchanged by
 * ../expressions.ts. Kept apart so every internal module can use them without importing the
 * entry point (which would make a cycle).
 */

export interface ExpressionLimits {
  /** Wall-clock budget of one evaluation (one expression, or one whole template). */
  timeoutMs: number;
  /** Maximum evaluation depth (JSONata's nested evaluation frames) and value nesting depth. */
  maxDepth: number;
  /** Maximum approximate JSON size of the result and of every intermediate value. */
  maxResultBytes: number;
}

export const DEFAULT_LIMITS: ExpressionLimits = Object.freeze({
  timeoutMs: 250,
  maxDepth: 300,
  maxResultBytes: 8 * 1024 * 1024,
});

export type TemplatePart = { kind: 'text'; text: string } | { kind: 'expr'; src: string; offset: number };

/** An expression that compiled; opaque apart from its source and free variables. */
export interface CompiledExpression {
  readonly source: string;
  /** Same as freeVariables(source). */
  readonly variables: readonly string[];
}

/**
 * Names of JSONata's built-in functions (plus `$now`/`$millis`). Calling one of these is not a
 * variable reference; passing one as a value (`$map(xs, $string)`) is reported as a free variable
 * by freeVariables — callers may use this set to tell the two apart.
 */
export const JSONATA_BUILTINS: ReadonlySet<string> = new Set([
  'sum', 'count', 'max', 'min', 'average', 'string', 'substring', 'substringBefore', 'substringAfter',
  'lowercase', 'uppercase', 'length', 'trim', 'pad', 'match', 'contains', 'replace', 'split', 'join',
  'formatNumber', 'formatBase', 'formatInteger', 'parseInteger', 'number', 'floor', 'ceil', 'round',
  'abs', 'sqrt', 'power', 'random', 'boolean', 'not', 'map', 'zip', 'filter', 'single', 'reduce',
  'sift', 'keys', 'lookup', 'append', 'exists', 'spread', 'merge', 'reverse', 'each', 'error',
  'assert', 'type', 'sort', 'shuffle', 'distinct', 'base64encode', 'base64decode',
  'encodeUrlComponent', 'encodeUrl', 'decodeUrlComponent', 'decodeUrl', 'eval', 'toMillis',
  'fromMillis', 'clone', 'now', 'millis',
]);
