/** /api/providers: which providers steps can name on this server, and why one cannot be used. */
import { Type } from '@sinclair/typebox';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { errors } from './common.ts';
import { credentialProvidersOf } from './credentials-routes.ts';

const ProviderSchema = Type.Object({
  name: Type.String({ description: 'What steps write in `provider:`' }),
  kind: Type.String({ description: 'simulated, openai-compatible, anthropic or custom' }),
  available: Type.Boolean(),
  reason: Type.Optional(Type.String({ description: 'Why steps cannot use it, and what to set' })),
});

export const providersRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/providers', policy: 'user', operationId: 'listProviders', tags: ['credentials'],
    summary: 'Providers steps can name: simulated, the built-ins and stored credentials, with their availability (never keys or URLs)',
    responses: { 200: { description: 'The providers', schema: Type.Object({ items: Type.Array(ProviderSchema) }) }, ...errors(401) },
    handler: (ctx) => Promise.resolve({ body: { items: credentialProvidersOf(ctx.services).statuses() } }),
  }),
];
