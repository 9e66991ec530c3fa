/**
 * What an evaluation throws (limit signals, policy signals, JSONata-style error objects) and how
 * each becomes a WeftError: WEFT_EXPRESSION_LIMIT, WEFT_EXPRESSION_ERROR or
 * WEFT_EXPRESSION_SYNTAX. Internal signals are plain classes so that an expression can neither
 * construct nor catch them.
 */

import { WeftError } from '../errors.ts';
import type { JError } from './jsonata-internals.ts';

/** Thrown inside an evaluation for a limit breach; converted to WEFT_EXPRESSION_LIMIT. */
export class LimitSignal extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Thrown inside an evaluation for a policy violation; converted to WEFT_EXPRESSION_ERROR. */
export class RuntimeSignal extends Error {}

const LIMIT_CODES = new Set(['D1011', 'D1012', 'D2014', 'D2015']);

export function isJsonataError(e: unknown): e is JError {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    && /^[A-Z]\d{4}$/.test((e as { code: string }).code);
}

export function limitError(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_EXPRESSION_LIMIT', message, { retryable: false, details });
}

export function syntaxError(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_EXPRESSION_SYNTAX', message, { retryable: false, details });
}

function describeJsonataError(e: JError): string {
  const where = typeof e.position === 'number' ? ` at position ${e.position}` : '';
  return `JSONata ${e.code}${where}: ${e.message ?? 'error'}`;
}

/** Convert anything thrown by an evaluation into a WeftError. */
export function toRuntimeError(err: unknown): WeftError {
  if (err instanceof WeftError) return err;
  if (err instanceof LimitSignal) {
    return new WeftError('WEFT_EXPRESSION_LIMIT', err.message, { retryable: false, details: { limit: err.kind } });
  }
  if (err instanceof RuntimeSignal) {
    return new WeftError('WEFT_EXPRESSION_ERROR', err.message, { retryable: false });
  }
  if (err instanceof RangeError) {
    // Stack overflow, or a string/array longer than V8 allows.
    return new WeftError('WEFT_EXPRESSION_LIMIT', `expression exceeded an engine limit: ${err.message}`, {
      retryable: false, details: { limit: 'engine' },
    });
  }
  if (isJsonataError(err)) {
    const details = { jsonataCode: err.code, position: err.position, token: typeof err.token === 'string' ? err.token : undefined };
    const code = LIMIT_CODES.has(err.code) ? 'WEFT_EXPRESSION_LIMIT' : 'WEFT_EXPRESSION_ERROR';
    return new WeftError(code, `expression failed: ${describeJsonataError(err)}`, { retryable: false, details });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new WeftError('WEFT_EXPRESSION_ERROR', `expression failed: ${message}`, { retryable: false });
}

export function jsonataThrow(code: string, extra: Partial<JError> = {}): never {
  const err: JError = { code, ...extra };
  throw err;
}
