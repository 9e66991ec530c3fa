/**
 * The HTTP transport every real provider shares: one JSON POST through the SSRF guard, with
 * retries, a timeout and cancellation, and optional server-sent-event streaming.
 *
 * Why not `guardedRequest` from net-guard.ts: it buffers the whole body, and streaming tokens
 * must be delivered as they arrive. This client applies the same guard — `checkUrl` on the
 * base URL (literal IPs) and `createGuardedLookup` for names, so node connects only to the
 * addresses that were checked — and follows no redirects (an API answering 3xx is an error).
 *
 * Retry policy (per call, within one step attempt):
 * - 408, 409, 429 and 5xx, and connection failures before a response, are retried up to
 *   `maxAttempts` in all; `x-should-retry: true|false` from the API overrides the status.
 * - The wait is the API's `retry-after-ms` or `Retry-After` (seconds or an HTTP date) when given,
 *   else exponential backoff with jitter. A Retry-After longer than `maxRetryAfterMs` is not
 *   slept through: the call fails retryable with `details.retryAfterMs`, for the engine to
 *   schedule, rather than holding a worker slot.
 * - A stream that fails after its 200 is not retried here: tokens may already have gone out
 *   through `onToken`, and a retry would repeat them. The error is retryable for the engine.
 * - Timeouts are not retried here either: `timeoutMs` bounds one attempt, and the step's own
 *   retry policy (and its timeout) decide what happens next.
 */
import http from 'node:http';
import https from 'node:https';
import { WeftError } from '../core/errors.ts';
import { checkUrl, createGuardedLookup, type AddressClass, type GuardOptions, type Resolver } from '../steps/net-guard.ts';
import { SseParser, type SseEvent } from './sse-parser.ts';
import { redact, type ApiErrorInfo } from './reply-parsing.ts';

/** Transport settings shared by a provider's calls. */
export interface ProviderHttpOptions {
  /** Open loopback/private ranges to the base URL (never metadata endpoints). */
  allowPrivateNetwork: boolean;
  /** One attempt's deadline, headers to last byte (default 10 minutes, as the official SDKs). */
  timeoutMs?: number;
  /** Attempts in all, including the first (default 3). */
  maxAttempts?: number;
  /** First backoff step (default 500 ms); doubles per retry, up to `retryMaxMs` (default 8 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** The longest Retry-After slept through (default 60 s). */
  maxRetryAfterMs?: number;
  /** Largest non-streamed response body (default 64 MiB: inline images are big). */
  maxBodyBytes?: number;
  /** Test seam: replaces the system resolver. */
  resolve?: Resolver;
  /** Test seam: replaces the address classifier. */
  classify?: (ip: string) => AddressClass;
}

/** One API call. */
export interface ProviderCall {
  /** Provider name, for messages. */
  provider: string;
  url: URL;
  headers: Record<string, string>;
  /** Serialised as JSON. */
  body: unknown;
  signal: AbortSignal;
  /** When set, a 2xx body is parsed as an event stream and each event handed over. */
  onEvent?: (event: SseEvent) => void;
  /** Turns an error body into the API's own message (and type/code) for the thrown error. */
  describeError: (status: number, body: string) => ApiErrorInfo;
  /** Values that must never appear in an error message (API keys). */
  secrets: readonly string[];
}

/** A completed non-streamed call. */
export interface ProviderReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const DEFAULTS = { timeoutMs: 600_000, maxAttempts: 3, retryBaseMs: 500, retryMaxMs: 8_000, maxRetryAfterMs: 60_000, maxBodyBytes: 64 * 1024 * 1024 };
const NON_RETRYABLE_NET_CODES = new Set(['ENOTFOUND', 'ERR_INVALID_URL', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_INVALID_CHAR', 'ERR_HTTP_INVALID_HEADER_VALUE']);

/** Whether an HTTP status is worth retrying; `x-should-retry` (as the APIs send it) wins. */
export function isRetryableStatus(status: number, shouldRetry?: string): boolean {
  if (shouldRetry === 'true') return true;
  if (shouldRetry === 'false') return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * How long the API asked to wait, in ms: `retry-after-ms`, else `Retry-After` as seconds or as an
 * HTTP date. Undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(headers: Record<string, string>, now = Date.now()): number | undefined {
  const ms = Number.parseFloat(headers['retry-after-ms'] ?? '');
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers['retry-after']?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number.parseFloat(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Exponential backoff with "equal jitter": half fixed, half random, so retries spread but still grow. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

function abortError(signal: AbortSignal, provider: string): WeftError {
  const reason: unknown = signal.reason;
  if (reason instanceof WeftError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new WeftError('WEFT_STEP_TIMEOUT', `${provider}: request timed out`, { retryable: true, cause: reason });
  }
  return new WeftError('WEFT_CANCELLED', `${provider}: request aborted`, { retryable: false, cause: reason });
}

function sleep(ms: number, signal: AbortSignal, provider: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal, provider));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal, provider));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function networkError(err: unknown, call: ProviderCall): WeftError {
  if (err instanceof WeftError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const what = redact(code ?? (e instanceof Error ? e.message : String(err)), call.secrets);
  // The cause is dropped on purpose: node errors can quote request options.
  return new WeftError('WEFT_HTTP_ERROR', `${call.provider}: request to ${call.url.host} failed: ${what}`, {
    retryable: code === undefined || !NON_RETRYABLE_NET_CODES.has(code),
    details: { provider: call.provider, host: call.url.host, ...(code === undefined ? {} : { code }) },
  });
}

function plainHeaders(raw: string[]): Record<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase();
    const prev = map.get(name);
    map.set(name, prev === undefined ? (raw[i + 1] ?? '') : `${prev}, ${raw[i + 1] ?? ''}`);
  }
  return Object.fromEntries(map);
}

/** Failures of one attempt that this module may retry: network errors before any event was delivered. */
const RETRY_HERE = new WeakSet<WeftError>();

/** Outcome of one attempt: a response (body read or streamed) or a failure before the first event. */
interface Attempt {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One guarded exchange. A 2xx with `onEvent` is streamed into the SSE parser; anything else is
 * buffered (up to `maxBodyBytes`). `signal` aborts it (timeout included).
 */
function attemptOnce(call: ProviderCall, payload: Buffer, guard: GuardOptions, signal: AbortSignal, maxBodyBytes: number): Promise<Attempt> {
  const url = call.url;
  return new Promise<Attempt>((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal, call.provider));
    let req: http.ClientRequest | undefined;
    let settled = false;
    let streamStarted = false;
    const finish = (err: WeftError | undefined, result?: Attempt): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err !== undefined) {
        req?.destroy();
        if (!streamStarted && err.code === 'WEFT_HTTP_ERROR' && err.retryable) RETRY_HERE.add(err);
        reject(err);
      } else resolve(result as Attempt);
    };
    const onAbort = (): void => finish(abortError(signal, call.provider));
    signal.addEventListener('abort', onAbort, { once: true });
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    try {
      req = (url.protocol === 'https:' ? https : http).request({
        protocol: url.protocol,
        hostname: host,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: { ...call.headers, 'content-length': String(payload.length) },
        lookup: createGuardedLookup(guard),
        agent: false,
      });
    } catch (err) {
      return finish(networkError(err, call));
    }
    req.on('error', (err) => finish(networkError(err, call)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const headers = plainHeaders(res.rawHeaders);
      const streaming = call.onEvent !== undefined && status >= 200 && status < 300;
      streamStarted = streaming;
      // Events still buffered in a chunk are dropped once the attempt is over (an abort from onToken).
      const parser = streaming ? new SseParser((event) => settled || call.onEvent!(event)) : undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        if (parser) {
          try {
            parser.push(chunk);
          } catch (err) {
            finish(err instanceof WeftError ? err : streamError(call, err));
          }
          return;
        }
        size += chunk.length;
        if (size > maxBodyBytes) {
          finish(new WeftError('WEFT_HTTP_ERROR', `${call.provider}: response body exceeds ${maxBodyBytes} bytes`, { retryable: false }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        try {
          parser?.end();
        } catch (err) {
          return finish(err instanceof WeftError ? err : streamError(call, err));
        }
        finish(undefined, { status, headers, body: Buffer.concat(chunks) });
      });
      res.on('error', (err) => finish(networkError(err, call)));
      res.on('close', () => {
        if (!res.complete) finish(networkError(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' }), call));
      });
    });
    req.end(payload);
  });
}

function streamError(call: ProviderCall, err: unknown): WeftError {
  const what = redact(err instanceof Error ? err.message : String(err), call.secrets);
  return new WeftError('WEFT_HTTP_ERROR', `${call.provider}: reading the event stream failed: ${what}`, { retryable: true });
}

/** The thrown error for a non-2xx answer: the API's own message, redacted, and a retry flag. */
function statusError(call: ProviderCall, attempt: Attempt, retryAfterMs: number | undefined): WeftError {
  // Redacted before excerpting: a cut could leave a fragment of a key that no longer matches.
  const text = redact(attempt.body.toString('utf8'), call.secrets);
  const info = call.describeError(attempt.status, text);
  const label = [info.type, info.code].filter((s) => s !== undefined && s !== '').join('/');
  const message = redact(`${call.provider}: HTTP ${attempt.status}${label === '' ? '' : ` ${label}`}: ${info.message}`, call.secrets);
  const requestId = attempt.headers['x-request-id'] ?? attempt.headers['request-id'];
  return new WeftError('WEFT_HTTP_ERROR', message, {
    retryable: isRetryableStatus(attempt.status, attempt.headers['x-should-retry']),
    details: {
      provider: call.provider,
      status: attempt.status,
      ...(info.type === undefined ? {} : { type: info.type }),
      ...(info.code === undefined ? {} : { apiCode: info.code }),
      ...(requestId === undefined ? {} : { requestId }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    },
  });
}

/**
 * POSTs `call.body` as JSON through the SSRF guard and returns the 2xx reply (for a streamed
 * call, after the stream has ended). Non-2xx answers and failures throw WeftError:
 * WEFT_HTTP_BLOCKED (guard), WEFT_HTTP_ERROR (status or network; `retryable` as above),
 * WEFT_STEP_TIMEOUT (retryable), WEFT_CANCELLED or the signal's WeftError reason (abort).
 */
export async function postJson(call: ProviderCall, options: ProviderHttpOptions): Promise<ProviderReply> {
  const o = { ...DEFAULTS, ...stripUndefined(options) };
  const guard: GuardOptions = {
    allowPrivate: options.allowPrivateNetwork,
    ...(options.resolve ? { resolve: options.resolve } : {}),
    ...(options.classify ? { classify: options.classify } : {}),
  };
  const payload = Buffer.from(JSON.stringify(call.body));
  for (let attemptNo = 1; ; attemptNo++) {
    checkUrl(call.url, guard); // literal-IP hosts never reach the guarded lookup
    const controller = new AbortController();
    const onOuterAbort = (): void => controller.abort(call.signal.reason);
    if (call.signal.aborted) onOuterAbort();
    else call.signal.addEventListener('abort', onOuterAbort, { once: true });
    const timer = setTimeout(() => {
      controller.abort(new WeftError('WEFT_STEP_TIMEOUT', `${call.provider}: no complete answer from ${call.url.host} within ${o.timeoutMs} ms`, { retryable: true }));
    }, o.timeoutMs);
    let delay: number | undefined;
    let failure: WeftError;
    try {
      const attempt = await attemptOnce(call, payload, guard, controller.signal, o.maxBodyBytes);
      if (attempt.status >= 200 && attempt.status < 300) return attempt;
      const retryAfter = parseRetryAfter(attempt.headers);
      failure = statusError(call, attempt, retryAfter);
      delay = retryAfter;
    } catch (err) {
      // Only failures before any event are retried here (see the module comment).
      if (!(err instanceof WeftError) || !RETRY_HERE.has(err)) throw err;
      failure = err;
    } finally {
      clearTimeout(timer);
      call.signal.removeEventListener('abort', onOuterAbort);
    }
    if (!failure.retryable || attemptNo >= o.maxAttempts) throw failure;
    if (delay !== undefined && delay > o.maxRetryAfterMs) throw failure; // the engine schedules it
    await sleep(delay ?? backoffDelay(attemptNo, o.retryBaseMs, o.retryMaxMs), call.signal, call.provider);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Joins a base URL and an API path ('/chat/completions'), keeping the base's own path and query. */
export function joinUrl(base: string, path: string, query: Record<string, string> = {}): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  return url;
}

/**
 * Runs `fn` and makes sure no error leaving it quotes a secret — the last line of defence
 * behind the redaction at each message's source (an error that would quote one is rebuilt
 * without its cause, which could quote it too).
 */
export async function withRedaction<T>(provider: string, secrets: readonly string[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof WeftError) {
      const message = redact(err.message, secrets);
      if (message === err.message) throw err;
      throw new WeftError(err.code, message, { retryable: err.retryable, ...(err.details ? { details: err.details } : {}) });
    }
    const original = err instanceof Error ? err.message : String(err);
    const message = redact(original, secrets);
    if (message === original) throw err;
    throw new WeftError('WEFT_HTTP_ERROR', `${provider}: ${message}`, { retryable: false });
  }
}
