/**
 * Queries for the editable price table: admins' overrides on top of the code's default list
 * prices, as one server_settings row (key 'prices', value `{provider: {model: {input_per_1m,
 * output_per_1m}}}`). Each write is one statement, so two admins editing at once cannot lose
 * each other's change; each is announced on PRICES_CHANNEL for every process to reload.
 */
import type { Queryable } from './db.ts';

export const PRICES_SETTING = 'prices';

/** NOTIFY channel: the price table changed, every process reloads it. */
export const PRICES_CHANNEL = 'weft_prices';

/** USD per 1M tokens, as stored and as the API shows it. */
export interface StoredPrice {
  input_per_1m: number;
  output_per_1m: number;
}

export type StoredPrices = Record<string, Record<string, StoredPrice>>;

export async function loadPriceOverrides(q: Queryable): Promise<StoredPrices> {
  const { rows } = await q.query<{ value: StoredPrices }>('SELECT value FROM server_settings WHERE key = $1', [PRICES_SETTING]);
  return rows[0]?.value ?? {};
}

/** Sets one model's price (replacing an earlier override of it). */
export async function putPriceOverride(q: Queryable, provider: string, model: string, price: StoredPrice): Promise<void> {
  const value = JSON.stringify({ input_per_1m: price.input_per_1m, output_per_1m: price.output_per_1m });
  await q.query(
    `INSERT INTO server_settings (key, value) VALUES ($1, jsonb_build_object($2::text, jsonb_build_object($3::text, $4::jsonb)))
     ON CONFLICT (key) DO UPDATE SET updated_at = now(), value = server_settings.value
       || jsonb_build_object($2::text, coalesce(server_settings.value->$2::text, '{}'::jsonb) || jsonb_build_object($3::text, $4::jsonb))`,
    [PRICES_SETTING, provider, model, value],
  );
}

/** Removes one model's override (its default price, if any, applies again); false when there was none. */
export async function deletePriceOverride(q: Queryable, provider: string, model: string): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE server_settings SET updated_at = now(), value = value #- ARRAY[$2::text, $3::text]
     WHERE key = $1 AND jsonb_exists(coalesce(value->$2::text, '{}'::jsonb), $3::text)`,
    [PRICES_SETTING, provider, model],
  );
  return rowCount === 1;
}

export async function notifyPricesChanged(q: Queryable): Promise<void> {
  await q.query(`SELECT pg_notify('${PRICES_CHANNEL}', '')`);
}
