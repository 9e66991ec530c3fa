/**
 * What `weft worker` and `weft run` share with `weft serve` from the database: the stored
 * credentials (as providers) and the price table, loaded at start and followed by NOTIFY.
 * The secret key that opens credentials comes from WEFT_SECRET_KEY or `<data>/secret.key`;
 * unlike the server these commands never generate one (it could not open what the server
 * stored), so without it credentials with a key are listed as unusable, saying why.
 */
import { CredentialProviders } from '../api/credential-providers.ts';
import { findSecretBox } from '../api/secrets.ts';
import type { Logger } from '../engine/log.ts';
import { PriceSync } from '../engine/price-sync.ts';
import type { Db } from '../store/db.ts';

export interface StoredSettings {
  stop(): Promise<void>;
}

/** Call after migrating. `dataDir` is where the server's `secret.key` may be. */
export async function followStoredSettings(db: Db, log: Logger, dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<StoredSettings> {
  const box = await findSecretBox({ dataDir, secretKey: env['WEFT_SECRET_KEY'] || undefined }, log);
  const providers = new CredentialProviders(db, box, log, env['WEFT_ALLOW_PRIVATE_NETWORK'] === '1');
  const prices = new PriceSync(db, log);
  await providers.start();
  try {
    await prices.start();
  } catch (error) {
    await providers.stop();
    throw error;
  }
  return {
    async stop() {
      await providers.stop();
      await prices.stop();
    },
  };
}
