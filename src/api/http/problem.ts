/**
 * RFC 9457 problem documents. Every error the API answers is one: a stable `code`, a title,
 * a detail, and for invalid input the JSON pointer of each invalid field in `errors`.
 */
import { WeftError, type ErrorCode } from '../../core/errors.ts';

export type ApiErrorCode =
  | ErrorCode
  | 'WEFT_BAD_REQUEST'
  | 'WEFT_VALIDATION'
  | 'WEFT_UNAUTHENTICATED'
  | 'WEFT_FORBIDDEN'
  | 'WEFT_ROUTE_NOT_FOUND'
  | 'WEFT_METHOD_NOT_ALLOWED'
  | 'WEFT_INVALID_TRANSITION'
  | 'WEFT_BODY_TOO_LARGE'
  | 'WEFT_UNSUPPORTED_MEDIA_TYPE'
  | 'WEFT_RATE_LIMITED'
  | 'WEFT_SETUP_REQUIRED';

export interface FieldError {
  /** JSON pointer into the request: `/body/steps/a/type`, `/query/limit`, `/params/id`. */
  path: string;
  message: string;
  code?: string;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

/** An error the API answers as a problem document with `status`. */
export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const notFound = (what: string): HttpProblem => new HttpProblem(404, 'WEFT_NOT_FOUND', `${what} not found`);

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Engine and core codes that are the caller's fault, and the status each answers. */
const WEFT_STATUS: Partial<Record<ErrorCode, number>> = {
  WEFT_PARSE: 400,
  WEFT_TOO_LARGE: 413,
  WEFT_SCHEMA: 400,
  WEFT_DUPLICATE_ID: 400,
  WEFT_UNKNOWN_STEP_TYPE: 400,
  WEFT_UNKNOWN_NEED: 400,
  WEFT_UNKNOWN_BRANCH: 400,
  WEFT_CYCLE: 400,
  WEFT_ISOLATED_STEP: 400,
  WEFT_UNREACHABLE_STEP: 400,
  WEFT_UNKNOWN_REFERENCE: 400,
  WEFT_NOT_ANCESTOR: 400,
  WEFT_EXPRESSION_SYNTAX: 400,
  WEFT_INVALID_INPUTS: 400,
  WEFT_NOT_FOUND: 404,
  WEFT_CONFLICT: 409,
};

/**
 * Turns anything thrown by a handler into a problem document. Unknown errors become a 500
 * whose detail says nothing about internals (the caller logs the cause).
 */
export function toProblem(error: unknown, instance?: string): { problem: ProblemDocument; headers?: Record<string, string>; internal: boolean } {
  if (error instanceof HttpProblem) {
    return { problem: problemDocument(error.status, error.code, error.message, instance, error.errors), headers: error.headers, internal: false };
  }
  if (error instanceof WeftError) {
    const status = WEFT_STATUS[error.code];
    if (status !== undefined) {
      const errors = error.problems.length > 0
        ? error.problems.map((p) => ({ path: prefixPath(p.path, error.code === 'WEFT_INVALID_INPUTS' ? '/body/inputs' : '/body'), message: p.message, code: p.code }))
        : undefined;
      return { problem: problemDocument(status, error.code, error.message, instance, errors), internal: false };
    }
  }
  return { problem: problemDocument(500, 'WEFT_INTERNAL', 'internal error', instance), internal: true };
}

function prefixPath(path: string, prefix: string): string {
  return path === '' || path === '/' ? prefix : prefix + path;
}

export function problemDocument(status: number, code: string, detail: string, instance?: string, errors?: FieldError[]): ProblemDocument {
  return {
    type: `https://weft.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    code,
    detail,
    ...(instance === undefined ? {} : { instance }),
    ...(errors === undefined ? {} : { errors }),
  };
}
