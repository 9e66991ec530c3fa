/**
 * `http`: one HTTP(S) request through the SSRF guard (net-guard.ts).
 *
 * Templates (url, headers, query, body) are rendered over the step's scope plus `with`.
 * Output: `{ status, headers, body }` — headers lower-cased, body parsed JSON for
 * `response: json` (or `auto` with a JSON content type), text otherwise.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { WeftError } from '../core/errors.ts';
import { renderTemplate, renderTemplates } from '../core/expressions.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import { guardedRequest, type AddressClass, type GuardedResponse, type Resolver } from './net-guard.ts';
import type { StepContext, StepExecutor } from './types.ts';

/** Used when the step sets no timeout_ms (the engine may abort earlier through the signal). */
export const DEFAULT_HTTP_TIMEOUT_MS = 300_000;
const EXCERPT_CHARS = 200;
const USER_AGENT = 'weft/0.1';

export interface HttpStepOptions {
  /** Test seam: replaces the system resolver. */
  resolve?: Resolver;
  /** Test seam: replaces the address classifier. */
  classify?: (ip: string) => AddressClass;
  maxBodyBytes?: number;
  maxRedirects?: number;
}

type HttpDefinition = StepDefinitionOf<'http'>;

function definitionError(ctx: StepContext, message: string): WeftError {
  return new WeftError('WEFT_HTTP_ERROR', `step '${ctx.stepId}': ${message}`, { retryable: false });
}

/** A rendered header/query value as text; null/undefined → omitted. */
function scalarText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599);
}

function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mime = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return mime === 'application/json' || mime.endsWith('+json');
}

function decodeText(body: Buffer, contentType: string | undefined): string {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '')?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}

function excerpt(text: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS)}…` : flat;
}

function parseBody(ctx: StepContext, def: HttpDefinition, res: GuardedResponse): unknown {
  const contentType = res.headers['content-type'];
  const text = decodeText(res.body, contentType);
  const mode = def.response ?? 'auto';
  if (mode === 'text') return text;
  if (mode === 'auto' && !isJsonContentType(contentType)) return text;
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    if (mode === 'auto') return text; // content type claimed JSON but it is not: hand back the text
    throw definitionError(ctx, `response from ${new URL(res.url).host} is not valid JSON (HTTP ${res.status}): ${excerpt(text)}`);
  }
}

async function buildRequest(ctx: StepContext, def: HttpDefinition) {
  const scope = { ...ctx.scope, with: ctx.params };

  const renderedUrl = await renderTemplate(def.url, scope);
  if (typeof renderedUrl !== 'string') throw definitionError(ctx, `url must render to a string, got ${renderedUrl === null ? 'null' : typeof renderedUrl}`);
  let url: URL;
  try {
    url = new URL(renderedUrl.trim());
  } catch {
    // The URL is not echoed: it may carry credentials rendered from the scope.
    throw definitionError(ctx, 'url does not render to a valid absolute URL');
  }

  for (const [name, template] of Object.entries(def.query ?? {})) {
    const value = await renderTemplate(template, scope);
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      const text = scalarText(v);
      if (text !== undefined) url.searchParams.append(name, text);
    }
  }

  const headers: Record<string, string> = {};
  const userHeaderNames = new Set<string>();
  for (const [name, template] of Object.entries(def.headers ?? {})) {
    const lower = name.toLowerCase();
    userHeaderNames.add(lower);
    try {
      validateHeaderName(name);
    } catch {
      throw definitionError(ctx, `invalid header name "${name.slice(0, 100)}"`);
    }
    const text = scalarText(await renderTemplate(template, scope));
    if (text === undefined) continue; // null/undefined: header omitted
    try {
      validateHeaderValue(name, text);
    } catch {
      // Never echo the value: headers carry secrets.
      throw definitionError(ctx, `header "${name}" renders to an invalid value (control characters?)`);
    }
    headers[lower] = text;
  }

  let body: Buffer | undefined;
  if (def.body !== undefined && def.body !== null) {
    const rendered = typeof def.body === 'string' ? await renderTemplate(def.body, scope) : await renderTemplates(def.body, scope);
    if (typeof def.body === 'string' && typeof rendered === 'string') {
      body = Buffer.from(rendered, 'utf8');
      if (!userHeaderNames.has('content-type')) headers['content-type'] = 'text/plain; charset=utf-8';
    } else if (rendered !== undefined) {
      body = Buffer.from(JSON.stringify(rendered), 'utf8');
      if (!userHeaderNames.has('content-type')) headers['content-type'] = 'application/json';
    }
  }

  // A user header that renders to null opts out of the default.
  if (!userHeaderNames.has('idempotency-key')) headers['idempotency-key'] = ctx.idempotencyKey;
  if (!userHeaderNames.has('user-agent')) headers['user-agent'] = USER_AGENT;
  if (!userHeaderNames.has('accept') && def.response === 'json') headers['accept'] = 'application/json';

  const method = def.method ?? (def.body !== undefined && def.body !== null ? 'POST' : 'GET');
  return { url, method, headers, body };
}

/** Builds the executor; production uses `httpStep` (no seams). */
export function createHttpStep(options: HttpStepOptions = {}): StepExecutor {
  return async (ctx) => {
    const def = ctx.step.definition as HttpDefinition;
    const { url, method, headers, body } = await buildRequest(ctx, def);
    const okStatus = def.ok_status;
    const isOk = (status: number): boolean => (okStatus ? okStatus.includes(status) : status >= 200 && status <= 299);

    const res = await guardedRequest({
      method,
      url,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: ctx.signal,
      timeoutMs: ctx.step.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
      allowPrivate: ctx.settings.allowPrivateNetwork,
      // A redirect status the step declares ok is returned, not followed.
      noFollow: (status) => okStatus !== undefined && okStatus.includes(status),
      ...(options.resolve ? { resolve: options.resolve } : {}),
      ...(options.classify ? { classify: options.classify } : {}),
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      ...(options.maxRedirects !== undefined ? { maxRedirects: options.maxRedirects } : {}),
    });

    if (!isOk(res.status)) {
      const host = new URL(res.url).host;
      const text = excerpt(decodeText(res.body, res.headers['content-type']));
      const retryAfter = res.headers['retry-after'];
      throw new WeftError('WEFT_HTTP_ERROR', `HTTP ${res.status} from ${method} ${host}${text === '' ? '' : `: ${text}`}`, {
        retryable: isRetryableStatus(res.status),
        details: { status: res.status, ...(retryAfter === undefined ? {} : { retryAfter }) },
      });
    }

    return { output: { status: res.status, headers: res.headers, body: parseBody(ctx, def, res) } };
  };
}

export const httpStep: StepExecutor = createHttpStep();
