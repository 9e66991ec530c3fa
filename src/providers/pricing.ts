/**
 * What model calls cost, in USD. The table is a DEFAULT to be edited: list prices change, and
 * contracts differ. Prices are per 1M tokens (input, output) from the providers' public price
 * pages as last checked by hand (see PRICES_CHECKED); a model not in the table costs 0 and is
 * reported `priced: false`, so a missing price is visible rather than guessed.
 */

/** USD per 1M tokens. */
export interface ModelPrice {
  inputPer1M: number;
  outputPer1M: number;
}

/** provider name → model id → price. */
export type PriceTable = Record<string, Record<string, ModelPrice>>;

/** When the default prices were last compared with the public price pages. */
export const PRICES_CHECKED = '2025-11';

const p = (inputPer1M: number, outputPer1M: number): ModelPrice => ({ inputPer1M, outputPer1M });

/** Default list prices (standard tier, no batch or cache discounts). Edit with `setPrice`. */
export const DEFAULT_PRICES: Readonly<PriceTable> = Object.freeze({
  openai: {
    'gpt-5': p(1.25, 10),
    'gpt-5-mini': p(0.25, 2),
    'gpt-5-nano': p(0.05, 0.4),
    'gpt-5.1': p(1.25, 10),
    'gpt-4.1': p(2, 8),
    'gpt-4.1-mini': p(0.4, 1.6),
    'gpt-4.1-nano': p(0.1, 0.4),
    'gpt-4o': p(2.5, 10),
    'gpt-4o-mini': p(0.15, 0.6),
    o3: p(2, 8),
    'o4-mini': p(1.1, 4.4),
  },
  anthropic: {
    'claude-opus-4-5': p(5, 25),
    'claude-opus-4-1': p(15, 75),
    'claude-sonnet-4-5': p(3, 15),
    'claude-sonnet-4': p(3, 15),
    'claude-haiku-4-5': p(1, 5),
    'claude-3-5-haiku': p(0.8, 4),
  },
});

function copyTable(table: Readonly<PriceTable>): PriceTable {
  return Object.fromEntries(Object.entries(table).map(([provider, models]) => [provider, { ...models }]));
}

let prices: PriceTable = copyTable(DEFAULT_PRICES);

/** Sets (or, with `undefined`, removes) one model's price — e.g. from an admin's settings. */
export function setPrice(provider: string, model: string, price: ModelPrice | undefined): void {
  const models = (prices[provider] ??= {});
  if (price === undefined) delete models[model];
  else models[model] = { inputPer1M: price.inputPer1M, outputPer1M: price.outputPer1M };
}

/** Replaces the whole table (`DEFAULT_PRICES` restores the defaults). */
export function setPriceTable(table: Readonly<PriceTable>): void {
  prices = copyTable(table);
}

/** A copy of the table in force. */
export function currentPrices(): PriceTable {
  return copyTable(prices);
}

/**
 * The price of `model`: an exact entry, else the entry for the model without its snapshot
 * suffix (APIs answer with `gpt-4o-mini-2024-07-18` or `claude-sonnet-4-5-20250929`), else the
 * entry without a `-latest` suffix.
 */
export function findPrice(provider: string, model: string): ModelPrice | undefined {
  const models = prices[provider];
  if (!models) return undefined;
  const candidates = [model, model.replace(/-(\d{4}-\d{2}-\d{2}|\d{8})$/, ''), model.replace(/-latest$/, '')];
  for (const name of candidates) {
    if (Object.hasOwn(models, name)) return models[name];
  }
  return undefined;
}

/** The cost of one call, and whether the model had a price. */
export interface Cost {
  costUsd: number;
  priced: boolean;
}

/** USD for `tokensIn` input and `tokensOut` output tokens; `{ costUsd: 0, priced: false }` for unknown models. */
export function costOf(provider: string, model: string, tokensIn: number, tokensOut: number): Cost {
  const price = findPrice(provider, model);
  if (!price) return { costUsd: 0, priced: false };
  const usd = (tokensIn * price.inputPer1M + tokensOut * price.outputPer1M) / 1_000_000;
  // Rounded to a millionth of a cent so sums stay readable; far below any real price step.
  return { costUsd: Math.round(usd * 1e8) / 1e8, priced: true };
}
