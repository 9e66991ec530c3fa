/**
 * From stored credentials to this process's provider registry, kept in step with the database:
 * `weft serve` (at start, after each change through the API) and `weft worker` / `weft run`
 * (at start) load them, and every process reloads when another announces a change (NOTIFY
 * weft_credentials), so all processes sharing a database converge. The built-in `openai` and
 * `anthropic` from environment variables stay available unless a credential takes their name.
 *
 * Keys are opened here and held only in the provider closures; no log line or status quotes one.
 */
import type { Logger } from '../engine/log.ts';
import { NotifiedReload } from '../engine/notified-reload.ts';
import { BUILTIN_PROVIDERS, configureProviders, listProviders, type ProviderConfig, type ProviderStatus } from '../providers/registry.ts';
import {
  CREDENTIALS_CHANNEL, listSealedCredentials, type CredentialKind, type CredentialRecord, type SealedCredential,
} from '../store/credentials.ts';
import type { Db } from '../store/db.ts';
import { SecretError, type SecretBox } from './secrets.ts';

/** The registry's rule for provider names; `simulated` is the offline provider's. */
export const PROVIDER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const RESERVED_NAME = 'simulated';

export function builtinFor(name: string, kind: CredentialKind): ProviderConfig | undefined {
  return BUILTIN_PROVIDERS.find((b) => b.name === name && b.kind === kind);
}

/**
 * The registry config of a credential. One named like a built-in of the same kind takes the
 * built-in's defaults for what it leaves out: its URL (and URL variable) without a base_url,
 * its key variable without a stored key, its models and token field. A credential whose key
 * cannot be decrypted is registered as needing a key, so steps fail saying so instead of
 * falling back to something the admin did not configure. `allow_private` opens private
 * addresses for this provider alone.
 */
export function credentialProviderConfig(c: SealedCredential, apiKey: string | undefined, keyUnreadable = false): ProviderConfig {
  const builtin = builtinFor(c.name, c.kind);
  const url = c.base_url !== null
    ? { baseUrl: c.base_url }
    : { baseUrl: builtin?.baseUrl ?? (c.kind === 'anthropic' ? 'https://api.anthropic.com' : undefined), baseUrlEnv: builtin?.baseUrlEnv };
  const key = keyUnreadable ? { requiresKey: true } : apiKey !== undefined ? { apiKey } : { apiKeyEnv: builtin?.apiKeyEnv };
  const defaultModel = c.default_model ?? builtin?.defaultModel;
  const network = c.allow_private ? { allowPrivateNetwork: true } : {};
  if (c.kind === 'anthropic') return { kind: 'anthropic', name: c.name, ...url, ...key, defaultModel, ...network };
  const openai = builtin?.kind === 'openai-compatible' ? builtin : undefined;
  return {
    kind: 'openai-compatible', name: c.name, ...url, ...key, defaultModel, ...network,
    ...(openai?.defaultImageModel ? { defaultImageModel: openai.defaultImageModel } : {}),
    ...(openai?.maxTokensField ? { maxTokensField: openai.maxTokensField } : {}),
  };
}

/** The stored credentials as this process's providers, kept in step with the database. */
export class CredentialProviders extends NotifiedReload {
  /** Credentials whose keys did not decrypt: name → why. */
  private unreadable = new Map<string, string>();
  /** Credential-backed providers: name → kind. */
  private kinds = new Map<string, CredentialKind>();

  /**
   * `box` undefined: this process has no secret key (a worker without WEFT_SECRET_KEY or the
   * server's key file); credentials with a stored key are then listed as unusable, saying why.
   */
  constructor(
    db: Db,
    private readonly box: SecretBox | undefined,
    log: Logger,
    private readonly allowPrivateNetwork: boolean,
  ) {
    super(db, log, CREDENTIALS_CHANNEL, 'providers from credentials');
  }

  /** Seals an API key for credential `id` (the API's writes). */
  seal(apiKey: string, id: string): string {
    if (!this.box) throw new Error('this process has no secret key to seal credentials with');
    return this.box.seal(apiKey, id);
  }

  protected async load(): Promise<void> {
    const rows = await listSealedCredentials(this.db);
    const unreadable = new Map<string, string>();
    const configs: ProviderConfig[] = [];
    for (const row of rows) {
      if (!new RegExp(PROVIDER_NAME_PATTERN).test(row.name) || row.name === RESERVED_NAME) {
        this.log.error('credential skipped: its name is not a valid provider name', { credential_id: row.id });
        continue;
      }
      let apiKey: string | undefined;
      if (row.api_key_sealed !== null) {
        if (!this.box) {
          unreadable.set(row.name, 'this process has no secret key: set WEFT_SECRET_KEY to the server\'s, or give it the server\'s data folder');
        } else {
          try {
            apiKey = this.box.open(row.api_key_sealed, row.id, `the API key of credential '${row.name}'`);
          } catch (error) {
            if (!(error instanceof SecretError)) throw error;
            unreadable.set(row.name, error.message);
            this.log.error('credential key cannot be decrypted', { credential: row.name, reason: error.reason, error: error.message });
          }
        }
      }
      configs.push(credentialProviderConfig(row, apiKey, unreadable.has(row.name)));
    }
    // Synchronous from here on: no step in this process resolves a provider half-way.
    configureProviders({ providers: configs, allowPrivateNetwork: this.allowPrivateNetwork });
    this.unreadable = unreadable;
    this.kinds = new Map(rows.map((r) => [r.name, r.kind]));
    this.log.info('providers loaded from credentials', { credentials: rows.map((r) => r.name), unusable: [...unreadable.keys()] });
  }

  /** Every provider of this process and whether steps can use it (never a key). */
  statuses(): ProviderStatus[] {
    return listProviders().map((s) => {
      const kind = this.kinds.get(s.name);
      const unreadable = this.unreadable.get(s.name);
      return {
        ...s,
        ...(kind === undefined ? {} : { kind }),
        ...(unreadable === undefined ? {} : { available: false, reason: `its stored key cannot be used: ${unreadable}` }),
      };
    });
  }

  /** A credential as the API shows it, with its provider's status. */
  view(c: CredentialRecord): CredentialRecord & { status: { available: boolean; reason?: string } } {
    const status = this.statuses().find((s) => s.name === c.name);
    return {
      ...c,
      status: status
        ? { available: status.available, ...(status.reason === undefined ? {} : { reason: status.reason }) }
        : { available: false, reason: 'not loaded yet' },
    };
  }
}
