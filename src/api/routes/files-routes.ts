/**
 * /api/runs/:id/files/:sha256: the bytes of a file a step produced (an image, a site bundle),
 * to whoever may see the run. Files are content-addressed, so the hash is the ETag.
 *
 * The bytes come from models and users, and this is our origin: a stored SVG or HTML file
 * opened here must never run script in it (where the docs page, and later the UI, hold access
 * tokens). So every answer is `Content-Security-Policy: sandbox` (a unique origin, no script), `nosniff`
 * (the declared type is final), and only raster images are shown inline — anything else
 * (SVG included) is a download.
 */
import { Type } from '@sinclair/typebox';
import { getRunFile } from '../../store/run-files.ts';
import { notFound } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { Uuid } from '../schemas.ts';
import { errors, requireVisibleRun, viewerOf } from './common.ts';

/** Shown inline: formats browsers decode as pictures, never as documents. */
const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp']);
/** A media type with optional parameters, in header-safe characters. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(;[ -~]{0,200})?$/;

const CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";

/**
 * `inline` or `attachment` with the name twice: an ASCII fallback in a quoted string (quotes,
 * backslashes and anything outside printable ASCII replaced) and the exact name in RFC 8187
 * `filename*`, which never needs quoting.
 */
export function contentDisposition(contentType: string, name: string): string {
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  const kind = INLINE_TYPES.has(type) ? 'inline' : 'attachment';
  const fallback = name.replace(/[^A-Za-z0-9._ -]/g, '_').slice(0, 200) || 'file';
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

export const filesRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/runs/:id/files/:sha256', policy: 'user', operationId: 'getRunFile', tags: ['artifacts'],
    summary: 'The bytes of a file a step produced (images, site bundles), by its SHA-256',
    params: Type.Object({ id: Uuid, sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Hex SHA-256 of the file (its `sha256` in outputs)' }) }),
    headerParams: [{ name: 'If-None-Match', description: 'The ETag from an earlier answer: 304 when it still matches', schema: Type.String() }],
    responses: {
      200: {
        description: 'The file, with its stored Content-Type, an ETag (its hash), Content-Disposition and Content-Security-Policy: sandbox',
        contentType: 'application/octet-stream', schema: Type.String({ format: 'binary' }),
      },
      304: { description: 'Not modified (If-None-Match matched)' },
      ...errors(400, 401, 404),
    },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      const file = await getRunFile(ctx.services.db, ctx.params.id, ctx.params.sha256);
      if (!file) throw notFound('file');
      const etag = `"${file.sha256}"`;
      const headers: Record<string, string | number> = {
        ETag: etag,
        'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': CSP,
        'Cross-Origin-Resource-Policy': 'same-origin',
        // Content-addressed, but behind authorisation: browsers may keep it, shared caches not.
        'Cache-Control': 'private, max-age=86400',
      };
      const match = ctx.req.headers['if-none-match'];
      if (typeof match === 'string' && match.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}`)) {
        ctx.res.writeHead(304, headers);
        ctx.res.end();
        return { stream: true };
      }
      ctx.res.writeHead(200, {
        ...headers,
        'Content-Type': MEDIA_TYPE.test(file.contentType) ? file.contentType : 'application/octet-stream',
        'Content-Length': file.bytes.length,
        'Content-Disposition': contentDisposition(file.contentType, file.name),
      });
      ctx.res.end(file.bytes);
      return { stream: true };
    },
  }),
];
