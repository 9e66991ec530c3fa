/**
 * Turning an image API's answer (inline base64 or a URL) into bytes with a checked content
 * type and a SHA-256, so steps can store the image itself rather than a link that expires.
 */
import { createHash } from 'node:crypto';
import { WeftError } from '../core/errors.ts';
import { guardedRequest } from '../steps/net-guard.ts';
import type { ImageResponse } from './types.ts';
import type { ProviderHttpOptions } from './provider-http.ts';

/** The image format from its magic bytes, or undefined when it is none we know. */
export function sniffImageType(bytes: Uint8Array): string | undefined {
  const b = (i: number): number => bytes[i] ?? -1;
  const ascii = (from: number, to: number): string => String.fromCharCode(...bytes.subarray(from, to));
  if (b(0) === 0x89 && ascii(1, 4) === 'PNG') return 'image/png';
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return 'image/jpeg';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'image/webp';
  if (ascii(0, 4) === 'GIF8') return 'image/gif';
  return undefined;
}

function describe(bytes: Uint8Array, url: string, model: string, declared: string | undefined, provider: string): ImageResponse {
  const declaredMime = declared?.split(';')[0]?.trim().toLowerCase();
  const contentType = sniffImageType(bytes) ?? (declaredMime?.startsWith('image/') ? declaredMime : undefined);
  if (contentType === undefined) {
    // An HTML error page or JSON stored as "the image" would be a fake success.
    throw new WeftError('WEFT_HTTP_ERROR', `${provider}: the image returned is not a recognised image format`, { retryable: false });
  }
  return {
    url,
    contentType,
    model,
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
  };
}

/** An image given inline as base64 (OpenAI's `b64_json`). */
export function imageFromBase64(b64: string, model: string, provider: string): ImageResponse {
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  if (bytes.length === 0) throw new WeftError('WEFT_HTTP_ERROR', `${provider}: the image returned is empty`, { retryable: false });
  const described = describe(bytes, '', model, undefined, provider);
  return { ...described, url: `data:${described.contentType};base64,${b64}` };
}

/**
 * An image the API left at a URL: fetched through the SSRF guard (the URL comes from the
 * API's answer, so it is as untrusted as any other). The API key is not sent to it.
 */
export async function imageFromUrl(
  url: string,
  model: string,
  provider: string,
  signal: AbortSignal,
  http: ProviderHttpOptions,
): Promise<ImageResponse> {
  const res = await guardedRequest({
    method: 'GET',
    url,
    signal,
    timeoutMs: http.timeoutMs ?? 600_000,
    allowPrivate: http.allowPrivateNetwork,
    maxBodyBytes: http.maxBodyBytes ?? 64 * 1024 * 1024,
    ...(http.resolve ? { resolve: http.resolve } : {}),
    ...(http.classify ? { classify: http.classify } : {}),
  });
  if (res.status < 200 || res.status > 299) {
    throw new WeftError('WEFT_HTTP_ERROR', `${provider}: fetching the generated image failed with HTTP ${res.status}`, {
      retryable: res.status === 429 || res.status >= 500,
      details: { provider, status: res.status },
    });
  }
  return describe(new Uint8Array(res.body), url, model, res.headers['content-type'], provider);
}
