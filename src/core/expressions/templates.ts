/**
 * `{{ … }}` templates: parsing (bounded cache), checking, free variables, and rendering with one
 * time budget for the whole template.
 */

import { WeftError } from '../errors.ts';
import { LIMITS } from '../definition-schema.ts';
import type { CompiledExpression, ExpressionLimits, TemplatePart } from './api.ts';
import { resolveLimits } from './budget.ts';
import { compileInternal } from './compile.ts';
import { runCompiled } from './evaluate.ts';
import { limitError, syntaxError } from './failures.ts';
import { cacheGet, cacheSet } from './lru-cache.ts';
import type { PreparedScope } from './plain-json.ts';
import { prepareScope } from './plain-json.ts';

/** Parsed templates kept. */
const TEMPLATE_CACHE_SIZE = 1000;

const templateCache = new Map<string, TemplatePart[]>();

/** Index of the `}}` closing an interpolation whose body starts at `start`, or -1. */
function findClose(src: string, start: number): number {
  let depth = 0;
  for (let i = start; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      if (end === -1) return -1;
      i = end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) return -1;
      i = end + 1;
    } else if (c === '{') {
      depth++;
    } else if (c === '}') {
      if (depth === 0 && src[i + 1] === '}') return i;
      if (depth > 0) depth--;
    }
  }
  return -1;
}

function parseTemplateInternal(src: string): TemplatePart[] {
  if (typeof src !== 'string') throw syntaxError('template must be a string');
  const hit = cacheGet(templateCache, src);
  if (hit !== undefined) return hit;
  if (src.length > LIMITS.expressionLength) {
    throw limitError(`template is ${src.length} characters long; the limit is ${LIMITS.expressionLength}`);
  }
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  for (;;) {
    const open = src.indexOf('{{', i);
    if (open === -1) {
      text += src.slice(i);
      break;
    }
    text += src.slice(i, open);
    const close = findClose(src, open + 2);
    if (close === -1) throw syntaxError(`unclosed "{{" at offset ${open} in template`, { offset: open });
    const inner = src.slice(open + 2, close);
    const lead = inner.length - inner.trimStart().length;
    const body = inner.trim();
    if (body === '') throw syntaxError(`empty interpolation "{{ }}" at offset ${open} in template`, { offset: open });
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
    parts.push({ kind: 'expr', src: body, offset: open + 2 + lead });
    i = close + 2;
  }
  if (text !== '') parts.push({ kind: 'text', text });
  for (const p of parts) Object.freeze(p);
  Object.freeze(parts);
  cacheSet(templateCache, src, parts, TEMPLATE_CACHE_SIZE);
  return parts;
}

/** Split `{{ … }}` interpolations; unclosed `{{` or empty `{{ }}` → WEFT_EXPRESSION_SYNTAX. */
export function parseTemplate(src: string): TemplatePart[] {
  return parseTemplateInternal(src).map((p) => ({ ...p }));
}

function compileTemplatePart(part: { src: string; offset: number }): CompiledExpression {
  try {
    return compileInternal(part.src);
  } catch (err) {
    if (err instanceof WeftError) {
      const position = typeof err.details?.position === 'number' ? err.details.position : undefined;
      const at = position === undefined ? '' : ` (template position ${part.offset + position})`;
      throw new WeftError(err.code, `in template interpolation at offset ${part.offset}${at}: ${err.message}`, {
        retryable: false,
        details: { ...err.details, offset: part.offset },
      });
    }
    throw err;
  }
}

/** Throws on a syntax error in any interpolation (message names the offset). */
export function checkTemplate(src: string): void {
  for (const part of parseTemplateInternal(src)) if (part.kind === 'expr') compileTemplatePart(part);
}

/** Union of freeVariables over a template's interpolations. */
export function templateVariables(src: string): string[] {
  const out = new Set<string>();
  for (const part of parseTemplateInternal(src)) {
    if (part.kind === 'expr') for (const v of compileTemplatePart(part).variables) out.add(v);
  }
  return [...out].sort();
}

// ---------------------------------------------------------------------------------------------
// Rendering

function isWhitespaceText(part: TemplatePart): boolean {
  return part.kind === 'text' && part.text.trim() === '';
}

function interpolate(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export async function renderPrepared(src: string, prepared: PreparedScope, limits: ExpressionLimits): Promise<unknown> {
  const parts = parseTemplateInternal(src);
  const exprs = parts.filter((p): p is Extract<TemplatePart, { kind: 'expr' }> => p.kind === 'expr');
  const compiled = exprs.map((p) => compileTemplatePart(p));
  const deadline = Date.now() + limits.timeoutMs; // one budget of time for the whole template
  const run = async (i: number): Promise<unknown> => {
    const part = exprs[i];
    const c = compiled[i];
    if (part === undefined || c === undefined) return undefined;
    try {
      return await runCompiled(c, prepared, limits, deadline);
    } catch (err) {
      if (err instanceof WeftError && err.code !== 'WEFT_INTERNAL') {
        throw new WeftError(err.code, `in template interpolation at offset ${part.offset}: ${err.message}`, {
          retryable: false, details: { ...err.details, offset: part.offset },
        });
      }
      throw err;
    }
  };
  if (exprs.length === 1 && parts.every((p) => p.kind === 'expr' || isWhitespaceText(p))) return run(0);
  let out = '';
  let index = 0;
  for (const part of parts) {
    out += part.kind === 'text' ? part.text : interpolate(await run(index++));
    if (out.length > limits.maxResultBytes) {
      throw limitError(`rendered template is longer than ${limits.maxResultBytes} characters`, { limit: 'size' });
    }
  }
  return out;
}

/**
 * Render a template to a string; but a template that is exactly one interpolation (whitespace
 * around allowed) returns the raw value (object, number…). Interpolated values: strings as is,
 * undefined → '', others JSON.stringify.
 */
export async function renderTemplate(
  src: string,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  parseTemplateInternal(src);
  const resolved = resolveLimits(limits);
  return renderPrepared(src, prepareScope(scope), resolved);
}
