/**
 * /api/prices: the price table every process prices model calls and estimates budgets with —
 * the code's default list prices with admins' overrides on top (stored in server_settings,
 * synced to every process by NOTIFY; see engine/price-sync.ts). Prices are not secret: any
 * signed-in user reads them; admins change them.
 */
import { Type } from '@sinclair/typebox';
import { PriceSync } from '../../engine/price-sync.ts';
import { currentPrices, PRICES_CHECKED } from '../../providers/pricing.ts';
import { deletePriceOverride, notifyPricesChanged, putPriceOverride } from '../../store/price-overrides.ts';
import { notFound } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute } from '../http/route.ts';
import type { ApiServices } from '../services.ts';
import { errors } from './common.ts';

const tags = ['prices'];

const PriceParams = Type.Object({
  provider: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'A provider name, as steps write it' }),
  model: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$', description: 'A model id, as the provider answers with it (snapshot suffixes fall back to the base id)' }),
});

const PerMillion = Type.Number({ minimum: 0, maximum: 100_000, description: 'USD per 1M tokens' });

const PriceSchema = Type.Object({
  provider: Type.String(),
  model: Type.String(),
  input_per_1m: Type.Number(),
  output_per_1m: Type.Number(),
  source: Type.Union([Type.Literal('default'), Type.Literal('override')], { description: 'default: the list price weft ships; override: set by an admin' }),
});

export const pricesRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/prices', policy: 'user', operationId: 'listPrices', tags,
    summary: 'The price table in force: default list prices and admins\' overrides, per provider and model',
    responses: {
      200: { description: 'Every priced model', schema: Type.Object({ items: Type.Array(PriceSchema), defaults_checked: Type.String({ description: 'When the default prices were last compared with the providers\' price pages' }) }) },
      ...errors(401),
    },
    handler: (ctx) => {
      const overrides = priceSyncOf(ctx.services).overrides();
      const items = Object.entries(currentPrices()).flatMap(([provider, models]) =>
        Object.entries(models).map(([model, p]) => ({
          provider, model, input_per_1m: p.inputPer1M, output_per_1m: p.outputPer1M,
          source: Object.hasOwn(overrides[provider] ?? {}, model) ? 'override' : 'default',
        })),
      ).sort((a, b) => a.provider.localeCompare(b.provider) || a.model.localeCompare(b.model));
      return Promise.resolve({ body: { items, defaults_checked: PRICES_CHECKED } });
    },
  }),
  defineRoute({
    method: 'PUT', path: '/api/prices/:provider/:model', policy: 'admin', operationId: 'setPrice', tags,
    summary: 'Set a model\'s price (every process applies it at once)',
    params: PriceParams,
    body: Type.Object({ input_per_1m: PerMillion, output_per_1m: PerMillion }, { additionalProperties: false }),
    responses: { 200: { description: 'The price now in force', schema: PriceSchema }, ...errors(400, 401, 403) },
    handler: async (ctx) => {
      const { provider, model } = ctx.params;
      await ctx.services.db.transaction(async (tx) => {
        await putPriceOverride(tx, provider, model, ctx.body);
        await notifyPricesChanged(tx);
      });
      await priceSyncOf(ctx.services).reload();
      ctx.services.log.info('price set', { provider, model, ...ctx.body, by: callerOf(ctx).userId });
      return { body: { provider, model, ...ctx.body, source: 'override' } };
    },
  }),
  defineRoute({
    method: 'DELETE', path: '/api/prices/:provider/:model', policy: 'admin', operationId: 'deletePrice', tags,
    summary: 'Remove an admin\'s price for a model: its default price (if it has one) applies again',
    params: PriceParams,
    responses: { 204: { description: 'Removed' }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const { provider, model } = ctx.params;
      await ctx.services.db.transaction(async (tx) => {
        if (!(await deletePriceOverride(tx, provider, model))) throw notFound('price override');
        await notifyPricesChanged(tx);
      });
      await priceSyncOf(ctx.services).reload();
      ctx.services.log.info('price override removed', { provider, model, by: callerOf(ctx).userId });
      return { status: 204 };
    },
  }),
];

const instances = new WeakMap<ApiServices, PriceSync>();

/** Loads the stored prices, follows changes, and makes the sync reachable from the routes. */
export async function startPriceSync(services: ApiServices): Promise<PriceSync> {
  const sync = new PriceSync(services.db, services.log);
  await sync.start();
  instances.set(services, sync);
  return sync;
}

function priceSyncOf(services: ApiServices): PriceSync {
  const sync = instances.get(services);
  if (!sync) throw new Error('price sync was not started for this server');
  return sync;
}
