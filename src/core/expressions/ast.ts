/**
 * The shape of JSONata's processed AST, as far as we rely on it, and a generic walk over a
 * node's children. Shared by the compile-time analysis and the free-variable collection; it
 * encodes JSONata 2.x internals, so a JSONata upgrade should be checked against it.
 */

export interface AstNode {
  type?: string;
  value?: unknown;
  position?: number;
  [key: string]: unknown;
}

/** Child AST nodes of a processed JSONata AST node. */
export function childNodes(n: AstNode): AstNode[] {
  const out: AstNode[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) out.push(v as AstNode);
  };
  const addAll = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) add(e);
  };
  const addPairs = (v: unknown): void => {
    if (Array.isArray(v)) for (const pair of v) if (Array.isArray(pair)) for (const e of pair) add(e);
  };
  switch (n.type) {
    case 'path':
      addAll(n.steps);
      break;
    case 'binary':
    case 'apply':
    case 'bind':
      add(n.lhs);
      add(n.rhs);
      break;
    case 'unary':
      if (n.value === '[') addAll(n.expressions);
      else if (n.value === '{') addPairs(n.lhs);
      else add(n.expression);
      break;
    case 'function':
    case 'partial':
      add(n.procedure);
      addAll(n.arguments);
      break;
    case 'lambda':
      add(n.body);
      break;
    case 'condition':
      add(n.condition);
      add(n.then);
      add(n.else);
      break;
    case 'transform':
      add(n.pattern);
      add(n.update);
      add(n.delete);
      break;
    case 'block':
      addAll(n.expressions);
      break;
    case 'sort':
      if (Array.isArray(n.terms)) for (const t of n.terms) add((t as { expression?: unknown }).expression);
      break;
    default:
      break;
  }
  for (const list of [n.predicate, n.stages]) {
    if (Array.isArray(list)) for (const s of list) if ((s as AstNode).type === 'filter') add((s as AstNode).expr);
  }
  const group = n.group as { lhs?: unknown } | undefined;
  if (group) addPairs(group.lhs);
  return out;
}
