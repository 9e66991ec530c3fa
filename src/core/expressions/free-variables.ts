/**
 * Free-variable analysis: the root variables an expression reads, so the compiler can check a
 * workflow's data flow before running it (see freeVariables in compile.ts for the contract).
 */

import { JSONATA_BUILTINS } from './api.ts';
import type { AstNode } from './ast.ts';
import { childNodes } from './ast.ts';

export function collectFreeVariables(root: AstNode): string[] {
  const out = new Set<string>();
  const isNode = (v: unknown): v is AstNode => typeof v === 'object' && v !== null && !Array.isArray(v);

  const isBuiltinCall = (proc: unknown, scope: ReadonlySet<string>): boolean =>
    isNode(proc) && proc.type === 'variable' && typeof proc.value === 'string'
    && JSONATA_BUILTINS.has(proc.value) && !scope.has(proc.value);

  /** Predicates, stages and group-by of any node: evaluated against that node's items. */
  const walkDecorations = (n: AstNode, scope: Set<string>, includeStages: boolean): void => {
    if (Array.isArray(n.predicate)) {
      for (const p of n.predicate) if (isNode(p) && p.type === 'filter') walk(p.expr, scope, false);
    }
    if (includeStages && Array.isArray(n.stages)) {
      for (const s of n.stages) {
        if (!isNode(s)) continue;
        if (s.type === 'filter') walk(s.expr, scope, false);
        else if (s.type === 'index' && typeof s.value === 'string') scope.add(s.value);
      }
    }
    const group = n.group as { lhs?: unknown } | undefined;
    if (group && Array.isArray(group.lhs)) {
      for (const pair of group.lhs) if (Array.isArray(pair)) for (const e of pair) walk(e, scope, false);
    }
  };

  const walk = (node: unknown, scope: ReadonlySet<string>, rootContext: boolean): void => {
    if (!isNode(node)) return;
    const n = node;
    switch (n.type) {
      case 'variable': {
        const name = n.value;
        if (typeof name === 'string' && name !== '' && name !== '$' && !scope.has(name)) out.add(name);
        walkDecorations(n, new Set(scope), true);
        return;
      }
      case 'path': {
        const steps = Array.isArray(n.steps) ? (n.steps as unknown[]) : [];
        const pathScope = new Set(scope);
        const first = steps[0];
        steps.forEach((step, i) => {
          if (!isNode(step)) return;
          if (i === 0 && step.type === 'name' && rootContext && typeof step.value === 'string') out.add(step.value);
          if (i === 1 && step.type === 'name' && typeof step.value === 'string' && isNode(first) && first.type === 'variable'
            && (first.value === '$' || (first.value === '' && rootContext))) {
            out.add(step.value);
          }
          // The step's own expression, then its tuple bindings, then its stages.
          walkStep(step, pathScope, i === 0 ? rootContext : false);
          if (typeof step.focus === 'string') pathScope.add(step.focus);
          if (typeof step.index === 'string') pathScope.add(step.index);
          walkDecorations(step, pathScope, true);
        });
        walkDecorations(n, pathScope, false);
        return;
      }
      default:
        walkStep(n, scope, rootContext);
        walkDecorations(n, new Set(scope), true);
    }
  };

  /** The node itself, without its predicates/stages/group. */
  const walkStep = (n: AstNode, scope: ReadonlySet<string>, rootContext: boolean): void => {
    switch (n.type) {
      case 'variable': {
        const name = n.value;
        if (typeof name === 'string' && name !== '' && name !== '$' && !scope.has(name)) out.add(name);
        return;
      }
      case 'path':
        walk({ ...n, predicate: undefined, group: undefined }, scope, rootContext);
        return;
      case 'bind': {
        const lhs = n.lhs as AstNode | undefined;
        const name = lhs && typeof lhs.value === 'string' ? lhs.value : undefined;
        const rhs = n.rhs;
        if (isNode(rhs) && rhs.type === 'lambda' && name !== undefined) {
          // `$f := function(…){ … $f(…) … }`: the body runs after the binding exists.
          walk(rhs, new Set([...scope, name]), rootContext);
        } else {
          walk(rhs, scope, rootContext);
        }
        return;
      }
      case 'block': {
        const blockScope = new Set(scope);
        for (const e of Array.isArray(n.expressions) ? n.expressions : []) {
          walk(e, blockScope, rootContext);
          if (isNode(e) && e.type === 'bind' && isNode(e.lhs) && typeof e.lhs.value === 'string') blockScope.add(e.lhs.value);
        }
        return;
      }
      case 'lambda': {
        const lambdaScope = new Set(scope);
        for (const a of Array.isArray(n.arguments) ? n.arguments : []) {
          if (isNode(a) && typeof a.value === 'string') lambdaScope.add(a.value);
        }
        walk(n.body, lambdaScope, rootContext);
        return;
      }
      case 'function':
      case 'partial':
        if (!isBuiltinCall(n.procedure, scope)) walk(n.procedure, scope, rootContext);
        for (const a of Array.isArray(n.arguments) ? n.arguments : []) walk(a, scope, rootContext);
        return;
      case 'apply':
        walk(n.lhs, scope, rootContext);
        if (!isBuiltinCall(n.rhs, scope)) walk(n.rhs, scope, rootContext);
        return;
      case 'transform':
        walk(n.pattern, scope, false);
        walk(n.update, scope, false);
        walk(n.delete, scope, false);
        return;
      case 'sort':
        if (Array.isArray(n.terms)) for (const t of n.terms) walk((t as { expression?: unknown }).expression, scope, false);
        return;
      case 'unary':
      case 'binary':
      case 'condition':
        for (const child of childNodes({ ...n, predicate: undefined, stages: undefined, group: undefined })) {
          walk(child, scope, rootContext);
        }
        return;
      default:
        // Literals, names, wildcards, descendants, parent, regex, operator: nothing bound or read by name.
        return;
    }
  };

  walk(root, new Set(), true);
  return [...out].sort();
}
