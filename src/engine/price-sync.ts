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

export class PriceSync {
  /** Reloads run one after another, each reading after the change that asked for it. */
  private chain: Promise<void> = Promise.resolve();
  private unlisten: (() => Promise<void>) | undefined;
  private stored: StoredPrices = {};

  constructor(private readonly db: Db, private readonly log: Logger) {}

  async start(): Promise<void> {
    await this.reload();
    this.unlisten = await this.db.listen(PRICES_CHANNEL, () => {
      this.reload().catch((error: unknown) => this.log.error('reloading prices failed', { error: error instanceof Error ? error.message : String(error) }));
    });
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch(() => {});
    await this.chain;
  }

  /** Reads the overrides and applies them; resolves once the table in force reflects them. */
  reload(): Promise<void> {
    const run = this.chain.then(() => this.load());
    this.chain = run.catch(() => {});
    return run;
  }

  /** The overrides last loaded, as stored. */
  overrides(): StoredPrices {
    return structuredClone(this.stored);
  }

  private async load(): Promise<void> {
    const stored = await loadPriceOverrides(this.db);
    const { table, applied, skipped } = mergePrices(stored);
    setPriceTable(table);
    this.stored = stored;
    if (skipped.length > 0) this.log.error('stored prices skipped: not two numbers ≥ 0', { models: skipped });
    this.log.info('prices loaded', { overrides: applied });
  }
}
