/**
 * Walking definition values (step inputs, request bodies…): every string is an expression
 * (resolveBindings) or a template (renderTemplates), each evaluated with its own budget; syntax
 * errors are reported before anything is evaluated.
 */

import type { ExpressionLimits } from './api.ts';
import { resolveLimits } from './budget.ts';
import { compileInternal } from './compile.ts';
import { runCompiled } from './evaluate.ts';
import { limitError } from './failures.ts';
import { MAX_WALK_DEPTH, prepareScope, setOwn } from './plain-json.ts';
import { checkTemplate, renderPrepared, templateVariables } from './templates.ts';

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

async function walkValue(
  value: unknown,
  level: number,
  onString: (s: string) => Promise<unknown>,
): Promise<unknown> {
  if (typeof value === 'string') return onString(value);
  if (level > MAX_WALK_DEPTH) throw limitError(`value nested deeper than ${MAX_WALK_DEPTH} levels`);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const e of value) out.push(await walkValue(e, level + 1, onString));
    return out;
  }
  if (isPlainRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) setOwn(out, key, await walkValue(value[key], level + 1, onString));
    return out;
  }
  return value;
}

function collectStrings(value: unknown, level: number, onString: (s: string) => void): void {
  if (typeof value === 'string') {
    onString(value);
    return;
  }
  if (level > MAX_WALK_DEPTH) throw limitError(`value nested deeper than ${MAX_WALK_DEPTH} levels`);
  if (Array.isArray(value)) for (const e of value) collectStrings(e, level + 1, onString);
  else if (isPlainRecord(value)) for (const key of Object.keys(value)) collectStrings(value[key], level + 1, onString);
}

/**
 * Walk a JSON value: every string is an expression, evaluated (each with its own budget); arrays
 * and objects are recursed (keys kept, an undefined result stays undefined); other values as is.
 */
export async function resolveBindings(
  value: unknown,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  collectStrings(value, 0, (s) => void compileInternal(s)); // syntax errors before any evaluation
  const resolved = resolveLimits(limits);
  const prepared = prepareScope(scope);
  return walkValue(value, 0, (s) => runCompiled(compileInternal(s), prepared, resolved));
}

/** Walk a JSON value: every string is a template, rendered (each with its own budget). */
export async function renderTemplates(
  value: unknown,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  collectStrings(value, 0, (s) => checkTemplate(s));
  const resolved = resolveLimits(limits);
  const prepared = prepareScope(scope);
  return walkValue(value, 0, (s) => renderPrepared(s, prepared, resolved));
}

/** The free variables used anywhere in a value walked as by resolveBindings. */
export function bindingVariables(value: unknown): string[] {
  const out = new Set<string>();
  collectStrings(value, 0, (s) => {
    for (const v of compileInternal(s).variables) out.add(v);
  });
  return [...out].sort();
}

/** The free variables used anywhere in a value walked as by renderTemplates. */
export function templatesVariables(value: unknown): string[] {
  const out = new Set<string>();
  collectStrings(value, 0, (s) => {
    for (const v of templateVariables(s)) out.add(v);
  });
  return [...out].sort();
}
