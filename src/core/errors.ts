/**
 * Errors with a stable `code`, a `retryable` flag and, for definition problems, the path
 * of what is wrong. The API maps codes to RFC 9457 problem documents; the engine reads
 * `retryable` to decide between a retry and an immediate failure.
 */

export type ErrorCode =
  // definitions and inputs
  | 'WEFT_PARSE'
  | 'WEFT_TOO_LARGE'
  | 'WEFT_SCHEMA'
  | 'WEFT_DUPLICATE_ID'
  | 'WEFT_UNKNOWN_STEP_TYPE'
  | 'WEFT_UNKNOWN_NEED'
  | 'WEFT_UNKNOWN_BRANCH'
  | 'WEFT_CYCLE'
  | 'WEFT_ISOLATED_STEP'
  | 'WEFT_UNREACHABLE_STEP'
  | 'WEFT_UNKNOWN_REFERENCE'
  | 'WEFT_NOT_ANCESTOR'
  | 'WEFT_EXPRESSION_SYNTAX'
  | 'WEFT_INVALID_INPUTS'
  // expressions at run time
  | 'WEFT_EXPRESSION_ERROR'
  | 'WEFT_EXPRESSION_LIMIT'
  // execution
  | 'WEFT_LEASE_LOST'
  | 'WEFT_STEP_TIMEOUT'
  | 'WEFT_STEP_FAILED'
  | 'WEFT_CANCELLED'
  | 'WEFT_PROVIDER_MISSING'
  /** The next AI step's estimated cost would pass the run's budget_usd: the run pauses into an approval. */
  | 'WEFT_BUDGET_EXCEEDED'
  /** A model's structured output did not match its schema, even after the repair attempt. */
  | 'WEFT_OUTPUT_INVALID'
  | 'WEFT_HTTP_BLOCKED'
  | 'WEFT_HTTP_ERROR'
  | 'WEFT_NOT_FOUND'
  | 'WEFT_CONFLICT'
  | 'WEFT_DATABASE'
  | 'WEFT_INTERNAL';

/** One problem found in a definition or in launch inputs; `path` is a JSON pointer. */
export interface Problem {
  code: ErrorCode;
  path: string;
  message: string;
  /** Absent means 'error'; warnings are reported but do not stop compilation. */
  severity?: 'error' | 'warning';
}

export interface WeftErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  problems?: Problem[];
  details?: Record<string, unknown>;
}

export class WeftError extends Error {
  override readonly name: string = 'WeftError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly problems: Problem[];
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: WeftErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.problems = options.problems ?? [];
    this.details = options.details;
  }
}

/** A definition (or launch input) failed validation; `problems` lists every issue found. */
export class DefinitionError extends WeftError {
  override readonly name = 'DefinitionError';
  constructor(problems: Problem[]) {
    const first = problems[0];
    const summary = first ? `${first.path || '/'}: ${first.message}` : 'invalid definition';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super(first?.code ?? 'WEFT_SCHEMA', summary + more, { problems });
  }
}

/** The plain, serialisable form stored in step_runs.error and run events. */
export interface ErrorRecord {
  code: string;
  message: string;
  retryable: boolean;
}

export function toErrorRecord(error: unknown): ErrorRecord {
  if (error instanceof WeftError) return { code: error.code, message: error.message, retryable: error.retryable };
  if (error instanceof Error) return { code: 'WEFT_STEP_FAILED', message: error.message, retryable: true };
  return { code: 'WEFT_STEP_FAILED', message: String(error), retryable: true };
}

/** RFC 6901 pointer segment escaping, for problem paths. */
export function pointer(...segments: (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}
