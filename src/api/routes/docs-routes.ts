/**
 * /api/openapi.json and the interactive docs at /api/docs (Swagger UI, served from the
 * swagger-ui-dist package: nothing is fetched from a CDN).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { notFound } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';

const require = createRequire(import.meta.url);
const SWAGGER_DIR = dirname(require.resolve('swagger-ui-dist/package.json'));
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>weft API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css"><link rel="icon" href="/api/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script><script src="/api/docs/init.js"></script></body></html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: false });`;

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/** `document` is built once the full route list is known (see server.ts). */
export function docsRoutes(document: () => Record<string, unknown>): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET', path: '/api/openapi.json', policy: 'public', operationId: 'getOpenApi', tags: ['system'],
      summary: 'This OpenAPI 3.1 document',
      responses: { 200: { description: 'OpenAPI document', schema: Type.Object({}, { additionalProperties: true }) } },
      handler: () => Promise.resolve({ body: document() }),
    }),
    defineRoute({
      method: 'GET', path: '/api/docs', policy: 'public', operationId: 'getApiDocs', tags: ['system'],
      summary: 'Interactive API documentation',
      responses: { 200: { description: 'HTML page', contentType: 'text/html', schema: Type.String() } },
      handler: (ctx) => {
        ctx.res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' });
        ctx.res.end(PAGE);
        return Promise.resolve({ stream: true });
      },
    }),
    defineRoute({
      method: 'GET', path: '/api/docs/:file', policy: 'public', operationId: 'getApiDocsAsset', tags: ['system'],
      summary: 'Static files of the documentation page',
      params: Type.Object({ file: Type.String({ pattern: '^[a-z0-9.-]{1,64}$' }) }),
      responses: { 200: { description: 'The file', contentType: 'application/octet-stream', schema: Type.String() }, 404: { description: 'No such file' } },
      handler: async (ctx) => {
        const { file } = ctx.params;
        if (file === 'init.js') {
          ctx.res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
          ctx.res.end(INIT);
          return { stream: true };
        }
        const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
        if (!type) throw notFound('file');
        const data = await readFile(join(SWAGGER_DIR, file));
        ctx.res.writeHead(200, { 'Content-Type': type, 'Content-Length': data.length, 'Cache-Control': 'public, max-age=3600', 'X-Content-Type-Options': 'nosniff' });
        ctx.res.end(data);
        return { stream: true };
      },
    }),
  ];
}
