/**
 * /api/credentials (admins): provider endpoints and their API keys, and the provider registry
 * they feed.
 *
 * A credential is what steps name in `provider:`. Its key is sealed (src/api/secrets.ts)
 * before it reaches the database, is never selected by an API view, and is never returned,
 * logged or quoted in an error: answers carry `has_secret` only.
 *
 * `CredentialProviders` (../credential-providers.ts, shared with `weft worker` and `weft run`)
 * rebuilds the process's provider registry from the stored credentials at server start, after
 * each change made here, and when another process announces one (NOTIFY weft_credentials).
 */
import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import {
  deleteCredential, getCredential, insertCredential, listCredentials, notifyCredentialsChanged, updateCredential, type CredentialKind,
} from '../../store/credentials.ts';
import { builtinFor, CredentialProviders, PROVIDER_NAME_PATTERN, RESERVED_NAME } from '../credential-providers.ts';
import { sqlState, SQLSTATE } from '../../store/db.ts';
import { HttpProblem, notFound, type FieldError } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute } from '../http/route.ts';
import { IdParams, Nullable, page, pageQuery, Timestamp, Uuid } from '../schemas.ts';
import { loadSecretBox } from '../secrets.ts';
import type { ApiServices } from '../services.ts';
import { errors, paging } from './common.ts';

const tags = ['credentials'];

const ProviderName = Type.String({ pattern: PROVIDER_NAME_PATTERN, description: 'The provider name steps write in `provider:` (letters, digits, `.`, `_`, `-`; not `simulated`)' });
const Kind = Type.Union([Type.Literal('openai-compatible'), Type.Literal('anthropic')], { description: 'The API the endpoint speaks' });
const BaseUrl = Type.String({ minLength: 1, maxLength: 2000, description: 'http(s) URL of the API, e.g. http://localhost:11434/v1 (Ollama); without user:password. Default for `openai` and `anthropic`: the vendor\'s.' });
const ApiKey = Type.String({ minLength: 1, maxLength: 4096, writeOnly: true, description: 'Stored encrypted (AES-256-GCM); never returned' });
const Model = Type.String({ minLength: 1, maxLength: 200 });
const AllowPrivate = Type.Boolean({ description: 'The endpoint may be on loopback or a private network (a local Ollama), whatever the server-wide setting' });

export const ProviderStatusSchema = Type.Object({
  available: Type.Boolean(),
  reason: Type.Optional(Type.String({ description: 'Why steps cannot use it' })),
});

export const CredentialSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  kind: Kind,
  base_url: Nullable(Type.String()),
  default_model: Nullable(Type.String()),
  allow_private: Type.Boolean(),
  has_secret: Type.Boolean({ description: 'An API key is stored (it is never returned)' }),
  status: ProviderStatusSchema,
  created_by: Nullable(Uuid),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const credentialsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/credentials', policy: 'admin', operationId: 'listCredentials', tags,
    summary: 'List stored provider credentials (never their keys)',
    query: pageQuery({}, ['name', 'created_at', 'updated_at']),
    responses: { 200: { description: 'A page of credentials', schema: page(CredentialSchema) }, ...errors(400, 401, 403) },
    handler: async (ctx) => {
      const p = paging({ order: 'asc', ...ctx.query }, 'name' as 'name' | 'created_at' | 'updated_at');
      const result = await listCredentials(ctx.services.db, p);
      const providers = credentialProvidersOf(ctx.services);
      return { body: { items: result.items.map((c) => providers.view(c)), total: result.total, limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/credentials', policy: 'admin', operationId: 'createCredential', tags,
    summary: 'Store a provider credential; steps can use the provider at once',
    body: Type.Object({
      name: ProviderName,
      kind: Kind,
      base_url: Type.Optional(BaseUrl),
      api_key: Type.Optional(ApiKey),
      default_model: Type.Optional(Model),
      allow_private: Type.Optional(AllowPrivate),
    }, { additionalProperties: false }),
    responses: { 201: { description: 'Created', schema: CredentialSchema }, ...errors(400, 401, 403, 409) },
    handler: async (ctx) => {
      const b = ctx.body;
      checkFields({ name: b.name, baseUrl: b.base_url, apiKey: b.api_key });
      checkComplete(b.name, b.kind, b.base_url ?? null);
      const providers = credentialProvidersOf(ctx.services);
      const id = randomUUID();
      const created = await uniqueName(b.name, () => ctx.services.db.transaction(async (tx) => {
        const row = await insertCredential(tx, {
          id, name: b.name, kind: b.kind, baseUrl: b.base_url ?? null, defaultModel: b.default_model ?? null,
          allowPrivate: b.allow_private ?? false,
          apiKeySealed: b.api_key === undefined ? null : providers.seal(b.api_key, id),
          createdBy: callerOf(ctx).userId,
        });
        await notifyCredentialsChanged(tx);
        return row;
      }));
      await providers.reload();
      ctx.services.log.info('credential created', { credential: created.name, kind: created.kind, by: callerOf(ctx).userId });
      return { status: 201, body: providers.view(created), headers: { Location: `/api/credentials/${created.id}` } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/credentials/:id', policy: 'admin', operationId: 'getCredential', tags,
    summary: 'One credential (never its key), with whether steps can use its provider',
    params: IdParams,
    responses: { 200: { description: 'The credential', schema: CredentialSchema }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const credential = await getCredential(ctx.services.db, ctx.params.id);
      if (!credential) throw notFound('credential');
      return { body: credentialProvidersOf(ctx.services).view(credential) };
    },
  }),
  defineRoute({
    method: 'PATCH', path: '/api/credentials/:id', policy: 'admin', operationId: 'updateCredential', tags,
    summary: 'Change a credential: a new api_key replaces the stored one, null removes it (and base_url, default_model)',
    params: IdParams,
    body: Type.Object({
      name: Type.Optional(ProviderName),
      kind: Type.Optional(Kind),
      base_url: Type.Optional(Nullable(BaseUrl)),
      api_key: Type.Optional(Nullable(ApiKey)),
      default_model: Type.Optional(Nullable(Model)),
      allow_private: Type.Optional(AllowPrivate),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'The credential', schema: CredentialSchema }, ...errors(400, 401, 403, 404, 409) },
    handler: async (ctx) => {
      const b = ctx.body;
      checkFields({ name: b.name, baseUrl: b.base_url ?? undefined, apiKey: b.api_key ?? undefined });
      const providers = credentialProvidersOf(ctx.services);
      const id = ctx.params.id;
      const updated = await uniqueName(b.name ?? '', () => ctx.services.db.transaction(async (tx) => {
        const current = await getCredential(tx, id, true);
        if (!current) throw notFound('credential');
        checkComplete(b.name ?? current.name, b.kind ?? current.kind, b.base_url === undefined ? current.base_url : b.base_url);
        const row = await updateCredential(tx, id, {
          name: b.name, kind: b.kind, baseUrl: b.base_url, defaultModel: b.default_model, allowPrivate: b.allow_private,
          apiKeySealed: b.api_key === undefined ? undefined : b.api_key === null ? null : providers.seal(b.api_key, id),
        });
        await notifyCredentialsChanged(tx);
        return row!;
      }));
      await providers.reload();
      ctx.services.log.info('credential changed', { credential: updated.name, fields: Object.keys(b), by: callerOf(ctx).userId });
      return { body: providers.view(updated) };
    },
  }),
  defineRoute({
    method: 'DELETE', path: '/api/credentials/:id', policy: 'admin', operationId: 'deleteCredential', tags,
    summary: 'Delete a credential and its key; steps naming its provider then fail (or use the built-in of that name)',
    params: IdParams,
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const deleted = await ctx.services.db.transaction(async (tx) => {
        const current = await getCredential(tx, ctx.params.id, true);
        if (!current || !(await deleteCredential(tx, ctx.params.id))) throw notFound('credential');
        await notifyCredentialsChanged(tx);
        return current;
      });
      await credentialProvidersOf(ctx.services).reload();
      ctx.services.log.info('credential deleted', { credential: deleted.name, by: callerOf(ctx).userId });
      return { status: 204 };
    },
  }),
];

// ---------------------------------------------------------------------------------------
// Checks the schemas cannot express. Their messages never quote the key or the URL.

function invalid(errors: FieldError[]): HttpProblem {
  return new HttpProblem(400, 'WEFT_VALIDATION', `${errors[0]!.path}: ${errors[0]!.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, errors);
}

function checkFields(f: { name: string | undefined; baseUrl: string | undefined; apiKey: string | undefined }): void {
  const problems: FieldError[] = [];
  if (f.name === RESERVED_NAME) problems.push({ path: '/body/name', message: `'${RESERVED_NAME}' is the offline provider's name; choose another` });
  const urlProblem = f.baseUrl === undefined ? undefined : baseUrlProblem(f.baseUrl);
  if (urlProblem !== undefined) problems.push({ path: '/body/base_url', message: urlProblem });
  // Keys travel in HTTP headers: a space, a control character or a non-ASCII letter is a paste error.
  if (f.apiKey !== undefined && !/^[\x21-\x7e]+$/.test(f.apiKey)) {
    problems.push({ path: '/body/api_key', message: 'must be printable ASCII, without spaces or line breaks' });
  }
  if (problems.length > 0) throw invalid(problems);
}

function baseUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a valid URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http or https URL';
  // base_url is shown to admins and in logs; a key in it would be neither encrypted nor hidden.
  if (url.username !== '' || url.password !== '') return 'must not contain user:password; put the key in api_key';
  return undefined;
}

/** An OpenAI-compatible endpoint has no default URL unless it is the built-in `openai`. */
function checkComplete(name: string, kind: CredentialKind, baseUrl: string | null): void {
  if (baseUrl === null && kind === 'openai-compatible' && builtinFor(name, kind) === undefined) {
    throw invalid([{ path: '/body/base_url', message: `is required for an openai-compatible provider (only 'openai' has a default)` }]);
  }
}

async function uniqueName<T>(name: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (sqlState(error) === SQLSTATE.uniqueViolation) throw new HttpProblem(409, 'WEFT_CONFLICT', `a credential named '${name}' exists`);
    throw error;
  }
}

const instances = new WeakMap<ApiServices, CredentialProviders>();

/**
 * Loads the secret key and the stored credentials into the registry, follows changes, and
 * makes them reachable from the routes. `allowPrivateNetwork` is the server-wide policy
 * (default WEFT_ALLOW_PRIVATE_NETWORK=1, as the engine reads it).
 */
export async function startCredentialProviders(
  services: ApiServices,
  allowPrivateNetwork = process.env['WEFT_ALLOW_PRIVATE_NETWORK'] === '1',
): Promise<CredentialProviders> {
  const box = await loadSecretBox(services.config, services.log);
  const providers = new CredentialProviders(services.db, box, services.log, allowPrivateNetwork);
  await providers.start();
  // Beside ApiServices rather than in it: the routes reach it without widening that contract.
  instances.set(services, providers);
  return providers;
}

export function credentialProvidersOf(services: ApiServices): CredentialProviders {
  const providers = instances.get(services);
  if (!providers) throw new Error('credential providers were not started for this server');
  return providers;
}
