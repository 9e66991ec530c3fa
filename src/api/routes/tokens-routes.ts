/** /api/tokens: your personal API tokens (for scripts and the CLI). Each is shown once, at creation. */
import { Type } from '@sinclair/typebox';
import { HttpProblem } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute } from '../http/route.ts';
import { IdParams, Nullable, Timestamp, Uuid } from '../schemas.ts';
import { errors } from './common.ts';

const tags = ['tokens'];

export const ApiTokenSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  prefix: Type.String({ description: 'The first characters of the token, to recognise it' }),
  created_at: Timestamp,
  expires_at: Nullable(Timestamp),
  last_used_at: Nullable(Timestamp),
});

export const CreatedApiTokenSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  prefix: Type.String(),
  token: Type.String({ description: 'The token itself: shown only in this answer. Send as Authorization: Bearer <token>' }),
  created_at: Timestamp,
  expires_at: Nullable(Timestamp),
});

export const tokensRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/tokens', policy: 'user', operationId: 'listApiTokens', tags,
    summary: 'Your API tokens that are not revoked (never the tokens themselves)',
    responses: { 200: { description: 'Your tokens', schema: Type.Object({ items: Type.Array(ApiTokenSchema) }) }, ...errors(401) },
    handler: async (ctx) => ({ body: { items: await ctx.services.auth.listApiTokens(callerOf(ctx).userId) } }),
  }),
  defineRoute({
    method: 'POST', path: '/api/tokens', policy: 'user', operationId: 'createApiToken', tags,
    summary: 'Create an API token; the answer is the only time the token is shown',
    body: Type.Object({
      name: Type.String({ minLength: 1, maxLength: 100 }),
      expires_at: Type.Optional(Timestamp),
    }, { additionalProperties: false }),
    responses: { 201: { description: 'Created', schema: CreatedApiTokenSchema }, ...errors(400, 401, 403) },
    handler: async (ctx) => {
      const caller = callerOf(ctx);
      // A leaked API token must not be able to mint successors that outlive its revocation.
      if (caller.via === 'api_token') throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'API tokens are created from a signed-in session, not with another API token');
      const expiresAt = ctx.body.expires_at === undefined ? undefined : new Date(ctx.body.expires_at);
      const created = await ctx.services.auth.createApiToken(caller.userId, ctx.body.name, expiresAt);
      return { status: 201, body: created, headers: { 'Cache-Control': 'no-store' } };
    },
  }),
  defineRoute({
    method: 'DELETE', path: '/api/tokens/:id', policy: 'user', operationId: 'revokeApiToken', tags,
    summary: 'Revoke one of your API tokens',
    params: IdParams,
    responses: { 204: { description: 'Revoked' }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await ctx.services.auth.revokeApiToken(callerOf(ctx).userId, ctx.params.id);
      return { status: 204 };
    },
  }),
];
