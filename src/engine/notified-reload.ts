import type { Db } from '../store/db.ts';
import type { Logger } from './log.ts';

/**
 * Keeps something this process holds (the provider registry, the price table) equal to what
 * the database stores: `load` at start and again whenever another process announces a change
 * on `channel`. Reloads run one after another, each reading after the change that asked for
 * it, so the last one to finish reflects the last change.
 */
export abstract class NotifiedReload {
  private chain: Promise<void> = Promise.resolve();
  private unlisten: (() => Promise<void>) | undefined;

  protected constructor(protected readonly db: Db, protected readonly log: Logger, private readonly channel: string, private readonly what: string) {}

  /** Reads the stored state and applies it to this process. */
  protected abstract load(): Promise<void>;

  /** Loads now and follows changes other processes announce. */
  async start(): Promise<void> {
    await this.reload();
    this.unlisten = await this.db.listen(this.channel, () => {
      this.reload().catch((error: unknown) => this.log.error(`reloading ${this.what} failed`, { error: error instanceof Error ? error.message : String(error) }));
    });
  }

  /** Stops following changes. The database may be closed already (shutdown order varies): that ends the subscription too. */
  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch(() => {});
    await this.chain;
  }

  /** Loads again; resolves once this process reflects what is stored now. */
  reload(): Promise<void> {
    const run = this.chain.then(() => this.load());
    this.chain = run.catch(() => {});
    return run;
  }
}
