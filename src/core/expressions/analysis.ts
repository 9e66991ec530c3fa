/**
 * Compile-time analysis of a parsed expression: bounds the AST depth, rejects risky regular
 * expressions, marks the nodes the hooks treat specially (node-marks.ts), and collects the nodes
 * compile.ts rewrites afterwards (ranges, group-by inputs).
 */

import type { AstNode } from './ast.ts';
import { childNodes } from './ast.ts';
import { limitError } from './failures.ts';
import { OBJECT_CONSTRUCTOR, PARALLEL_LEAF, PARALLEL_ROOT, PATTERN, PROCEDURE, TRIVIAL_LEAF, mark } from './node-marks.ts';
import { regexRisk } from './regex-guard.ts';

/** AST depth accepted after parsing (bracket nesting in the source is bounded in compile.ts). */
const MAX_AST_DEPTH = 200;

export interface Analysis {
  /** `a..b` nodes, rewritten after free-variable analysis. */
  ranges: AstNode[];
  /** Nodes carrying a group-by, whose input gets copied first (see protectGroupInput). */
  groupHolders: AstNode[];
}

const LEAF_TYPES = new Set(['string', 'number', 'value', 'regex', 'variable']);

function isLeaf(n: AstNode): boolean {
  return typeof n.type === 'string' && LEAF_TYPES.has(n.type) && n.predicate === undefined && n.group === undefined
    && n.stages === undefined;
}

function markParallel(v: unknown): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
  const n = v as AstNode;
  mark(n, isLeaf(n) ? PARALLEL_LEAF : PARALLEL_ROOT);
}

function markGroupValues(pairs: unknown): void {
  if (Array.isArray(pairs)) for (const pair of pairs) if (Array.isArray(pair)) markParallel(pair[1]);
}

export function analyse(root: AstNode): Analysis {
  const ranges: AstNode[] = [];
  const groupHolders: AstNode[] = [];
  const visit = (n: AstNode, level: number): void => {
    if (level > MAX_AST_DEPTH) {
      throw limitError(`expression is nested deeper than ${MAX_AST_DEPTH} levels`);
    }
    if (n.type === 'binary' && n.value === '..') ranges.push(n);
    if (isLeaf(n)) mark(n, TRIVIAL_LEAF);
    if (n.type === 'function' || n.type === 'partial') {
      if (typeof n.procedure === 'object' && n.procedure !== null) mark(n.procedure, PROCEDURE);
    }
    if (n.type === 'transform' && typeof n.pattern === 'object' && n.pattern !== null) mark(n.pattern, PATTERN);
    if (n.type === 'unary' && n.value === '[' && Array.isArray(n.expressions)) for (const e of n.expressions) markParallel(e);
    if (n.type === 'unary' && n.value === '{') {
      mark(n, OBJECT_CONSTRUCTOR);
      markGroupValues(n.lhs);
    }
    if (n.group !== undefined) {
      groupHolders.push(n);
      markGroupValues((n.group as { lhs?: unknown } | undefined)?.lhs);
    }
    if (n.type === 'regex' && n.value instanceof RegExp) {
      const risk = regexRisk(n.value.source, n.value.flags.includes('i'));
      if (risk !== undefined) {
        throw limitError(
          `regular expression /${n.value.source}/ at position ${n.position ?? '?'} risks catastrophic backtracking: ${risk}`,
          { position: n.position },
        );
      }
    }
    for (const child of childNodes(n)) visit(child, level + 1);
  };
  visit(root, 1);
  return { ranges, groupHolders };
}

/**
 * JSONata's group-by pushes `undefined` into its input when that is an empty array — which may
 * be the caller's array. A pass-through filter `[true]` before the grouping hands it a fresh
 * sequence with the same items instead (same result, caller data untouched). Object
 * constructors `{…}` group their context directly; those are repaired in the hooks instead.
 * (A path ending in `[]` still sets a non-index `keepSingleton` property on a caller array it
 * returns as is; that tag is invisible to JSON and harmless, and copying would change results.)
 */
export function protectGroupInput(n: AstNode): void {
  const passThrough = (): AstNode => ({
    type: 'filter',
    expr: { type: 'value', value: true, position: n.position },
    position: n.position,
  });
  if (n.type === 'path') {
    const steps = Array.isArray(n.steps) ? (n.steps as AstNode[]) : [];
    if (steps.some((step) => step.tuple === true)) return; // grouped input is a fresh tuple stream
    const last = steps[steps.length - 1];
    if (last === undefined) return;
    last.stages = [...(Array.isArray(last.stages) ? last.stages : []), passThrough()];
  } else {
    n.predicate = [...(Array.isArray(n.predicate) ? n.predicate : []), passThrough()];
  }
}
