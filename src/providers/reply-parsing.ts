/**
 * Reading what LLM APIs answer: their error bodies, 2xx JSON, and the JSON a model writes
 * (tool arguments, structured replies).
 */
import http from 'node:http';
import { WeftError } from '../core/errors.ts';

/** Replaces every occurrence of a secret with `[redacted]`. Secrets shorter than 4 characters are left alone. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  return out;
}

/** What an API said about a failed request. */
export interface ApiErrorInfo {
  message: string;
  type?: string | undefined;
  code?: string | undefined;
}

/** A short, single-line excerpt of a body for messages. */
export function excerpt(text: string, max = 300): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/**
 * Reads the error shapes LLM APIs answer with: OpenAI and llama.cpp `{error:{message,type,code}}`,
 * Anthropic `{type:'error', error:{type,message}}`, Ollama `{error:'…'}`; else an excerpt of the body.
 */
export function describeJsonError(status: number, body: string): ApiErrorInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { message: body.trim() === '' ? http.STATUS_CODES[status] ?? 'error' : excerpt(body) };
  }
  const root = (parsed ?? {}) as Record<string, unknown>;
  const error = root['error'];
  if (typeof error === 'string') return { message: excerpt(error) };
  const e = (typeof error === 'object' && error !== null ? error : root) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
  return {
    message: excerpt(str(e['message']) ?? str(e['detail']) ?? body),
    type: str(e['type']),
    code: str(e['code']),
  };
}

/** Parses a 2xx JSON body; a body that is not JSON (a proxy's HTML page) is worth another attempt. */
export function parseJsonReply(provider: string, body: Buffer, secrets: readonly string[]): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    const text = excerpt(redact(body.toString('utf8'), secrets), 120);
    throw new WeftError('WEFT_HTTP_ERROR', `${provider}: the reply is not JSON: ${text}`, { retryable: true });
  }
}

/** Parses a JSON text the model produced; broken JSON (often a cut-off reply) is worth another attempt. */
export function parseModelJson(provider: string, what: string, text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new WeftError('WEFT_STEP_FAILED', `${provider}: the model's ${what} is not valid JSON`, { retryable: true });
  }
}
