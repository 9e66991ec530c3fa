/**
 * The OpenAPI 3.1 document, built from the route declarations: the same TypeBox schemas the
 * router validates with (OpenAPI 3.1 speaks JSON Schema 2020-12, so they go in unchanged).
 */
import type { TSchema } from '@sinclair/typebox';
import { mediaTypesOf } from './http/body.ts';
import type { AnyRoute } from './http/route.ts';
import { ProblemSchema } from './schemas.ts';

type Json = Record<string, unknown>;

/** Plain JSON copy of a TypeBox schema (drops its symbol-keyed metadata). */
function plain(schema: TSchema): Json {
  return JSON.parse(JSON.stringify(schema)) as Json;
}

export function buildOpenApi(routes: readonly AnyRoute[], info: { version: string }): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
    const parameters: Json[] = [];
    for (const [name, schema] of Object.entries((route.params?.properties ?? {}) as Record<string, TSchema>)) {
      parameters.push({ name, in: 'path', required: true, schema: plain(schema) });
    }
    const required = new Set((route.query?.required ?? []) as string[]);
    for (const [name, schema] of Object.entries((route.query?.properties ?? {}) as Record<string, TSchema>)) {
      const s = plain(schema);
      parameters.push({
        name, in: 'query', required: required.has(name), schema: s,
        ...(s['type'] === 'array' ? { style: 'form', explode: true } : {}),
        ...(typeof s['description'] === 'string' ? { description: s['description'] } : {}),
      });
    }
    for (const h of route.headerParams ?? []) parameters.push({ name: h.name, in: 'header', required: false, description: h.description, schema: plain(h.schema) });
    const operation: Json = {
      operationId: route.operationId,
      summary: route.summary,
      tags: route.tags,
      'x-weft-policy': route.policy,
      security: route.policy === 'public' ? [] : [{ bearer: [] }],
      ...(parameters.length > 0 ? { parameters } : {}),
      responses: Object.fromEntries(Object.entries(route.responses).map(([status, spec]) => [
        status,
        {
          description: spec.description,
          ...(spec.schema
            ? {
                content: {
                  [spec.contentType ?? 'application/json']: { schema: refProblem(plain(spec.schema), spec.contentType) },
                  ...Object.fromEntries((spec.alternatives ?? []).map((a) => [a.contentType, { schema: plain(a.schema) }])),
                },
              }
            : {}),
        },
      ])),
    };
    if (route.body) {
      const schema = plain(route.body);
      operation['requestBody'] = { required: true, content: Object.fromEntries(mediaTypesOf(route.bodyTypes ?? ['json']).map((t) => [t, { schema }])) };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'weft API',
      version: info.version,
      description: 'Durable AI-agent workflows. Errors are RFC 9457 problem documents with a stable `code`. Authenticate with `Authorization: Bearer <token>`: an access token from POST /api/auth/login or a personal API token.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'JWT access token or personal API token (weft_pat_…)' } },
      schemas: { Problem: plain(ProblemSchema) },
    },
    paths,
  };
}

/** Problem responses point at the one shared component schema. */
function refProblem(schema: Json, contentType: string | undefined): Json {
  return contentType === 'application/problem+json' ? { $ref: '#/components/schemas/Problem' } : schema;
}
