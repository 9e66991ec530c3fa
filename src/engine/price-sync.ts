/**
 * Keeps this process's price table (providers/pricing.ts) equal to the code's defaults plus
 * the overrides admins stored (store/price-overrides.ts): loaded at start and reloaded on
 * NOTIFY weft_prices, so servers, workers and `weft run` on one database price calls — and
 * estimate them against run budgets — alike.
 */
import { DEFAULT_PRICES, setPriceTable, type PriceTable } from '../providers/pricing.ts';
import type { Db } from '../store/db.ts';
import { loadPriceOverrides, PRICES_CHANNEL, type StoredPrices } from '../store/price-overrides.ts';
import type { Logger } from './log.ts';
import { NotifiedReload } from './notified-reload.ts';

/** DEFAULT_PRICES with `overrides` on top; entries that are not two finite prices ≥ 0 are skipped (and named). */
export function mergePrices(overrides: StoredPrices): { table: PriceTable; applied: string[]; skipped: string[] } {
  const table: PriceTable = Object.fromEntries(Object.entries(DEFAULT_PRICES).map(([p, models]) => [p, { ...models }]));
  const applied: string[] = [];
  const skipped: string[] = [];
  for (const [provider, models] of Object.entries(overrides ?? {})) {
    for (const [model, price] of Object.entries(models ?? {})) {
      const ok = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
      if (!ok(price?.input_per_1m) || !ok(price.output_per_1m)) {
        skipped.push(`${provider}/${model}`);
        continue;
      }
      const entry = { inputPer1M: price.input_per_1m, outputPer1M: price.output_per_1m };
      Object.defineProperty((table[provider] ??= {}), model, { value: entry, enumerable: true, writable: true, configurable: true });
      applied.push(`${provider}/${model}`);
    }
  }
  return { table, applied, skipped };
}

export class PriceSync extends NotifiedReload {
  private stored: StoredPrices = {};

  constructor(db: Db, log: Logger) {
    super(db, log, PRICES_CHANNEL, 'prices');
  }

  /** The overrides last loaded, as stored. */
  overrides(): StoredPrices {
    return structuredClone(this.stored);
  }

  protected async load(): Promise<void> {
    const stored = await loadPriceOverrides(this.db);
    const { table, applied, skipped } = mergePrices(stored);
    setPriceTable(table);
    this.stored = stored;
    if (skipped.length > 0) this.log.error('stored prices skipped: not two numbers ≥ 0', { models: skipped });
    this.log.info('prices loaded', { overrides: applied });
  }
}
