/** Server configuration: defaults, then environment variables, then explicit overrides. */

export interface ExternalIdpConfig {
  /** JWKS URL of an external identity provider whose access tokens are accepted. */
  jwksUrl: string;
  issuer: string;
  audience: string;
  /** Accepted signature algorithms (pinned; default RS256 and ES256). */
  algorithms: string[];
}

export interface RateLimitConfig {
  /** Login attempts per client IP per minute. */
  loginPerIp: number;
  /** Login attempts per account (email) per minute. */
  loginPerAccount: number;
  /** Run launches per owner per minute. */
  launchesPerOwner: number;
}

export interface ApiConfig {
  /** Folder for the embedded database and the generated signing key. */
  dataDir: string;
  /** Base URL printed in setup links (WEFT_PUBLIC_URL); empty: the address the server listens on. */
  publicUrl: string;
  /** Default maximum request body, in bytes. */
  bodyLimit: number;
  /** Use the first X-Forwarded-For address as the client IP (only behind a trusted proxy). */
  trustProxy: boolean;
  jwt: {
    issuer: string;
    audience: string;
    accessTtlSeconds: number;
    refreshTtlSeconds: number;
    /** A PKCS#8 PEM Ed25519 private key from config; otherwise one is generated into dataDir. */
    privateKeyPem?: string | undefined;
  };
  external?: ExternalIdpConfig | undefined;
  /** First-admin credentials, used once on an empty database. */
  adminEmail?: string | undefined;
  adminPassword?: string | undefined;
  rateLimits: RateLimitConfig;
  /**
   * WEFT_SECRET_KEY: 32 bytes, base64 or hex, that encrypt stored credentials (AES-256-GCM).
   * Unset: a key generated into `<dataDir>/secret.key`. Servers sharing a database share it.
   */
  secretKey?: string | undefined;
  /** Seed the workflow templates of `templates/` at start (WEFT_SEED_TEMPLATES=0 turns it off). */
  seedTemplates: boolean;
}

export const DEFAULT_API_CONFIG: ApiConfig = {
  dataDir: '.weft',
  publicUrl: '',
  bodyLimit: 1024 * 1024,
  trustProxy: false,
  jwt: { issuer: 'weft', audience: 'weft-api', accessTtlSeconds: 15 * 60, refreshTtlSeconds: 30 * 24 * 3600 },
  rateLimits: { loginPerIp: 20, loginPerAccount: 10, launchesPerOwner: 600 },
  seedTemplates: true,
};

/** Reads WEFT_* variables over the defaults; `overrides` win over both. */
export function loadApiConfig(env: NodeJS.ProcessEnv, overrides: Partial<ApiConfig> = {}): ApiConfig {
  const base = DEFAULT_API_CONFIG;
  const jwks = env['WEFT_JWKS_URL'];
  const fromEnv: Partial<ApiConfig> = {
    ...(env['WEFT_PUBLIC_URL'] ? { publicUrl: env['WEFT_PUBLIC_URL'] } : {}),
    ...(env['WEFT_TRUST_PROXY'] === '1' ? { trustProxy: true } : {}),
    ...(env['WEFT_SEED_TEMPLATES'] === '0' ? { seedTemplates: false } : {}),
    adminEmail: env['WEFT_ADMIN_EMAIL'] || undefined,
    adminPassword: env['WEFT_ADMIN_PASSWORD'] || undefined,
    jwt: { ...base.jwt, privateKeyPem: env['WEFT_JWT_PRIVATE_KEY'] || undefined },
    secretKey: env['WEFT_SECRET_KEY'] || undefined,
    ...(jwks
      ? {
          external: {
            jwksUrl: jwks,
            issuer: env['WEFT_JWKS_ISSUER'] ?? '',
            audience: env['WEFT_JWKS_AUDIENCE'] ?? '',
            algorithms: (env['WEFT_JWKS_ALGORITHMS'] ?? 'RS256,ES256').split(',').map((s) => s.trim()).filter(Boolean),
          },
        }
      : {}),
  };
  return {
    ...base,
    ...fromEnv,
    ...overrides,
    jwt: { ...base.jwt, ...fromEnv.jwt, ...overrides.jwt },
    rateLimits: { ...base.rateLimits, ...overrides.rateLimits },
  };
}
