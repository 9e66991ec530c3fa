/**
 * Access tokens from an external identity provider (OIDC), verified against its JWKS.
 *
 * The accepted algorithms are pinned by configuration and must be asymmetric: with a JWKS the
 * server holds only public keys, and an HMAC algorithm would let anyone who fetched the JWKS
 * sign tokens with it. The identity is the token's `email`; a token that says the email is
 * not verified (`email_verified: false`) is refused, else anyone able to register that
 * address at the provider would become the matching weft user.
 */
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { ExternalIdpConfig } from '../config.ts';
import { CLOCK_TOLERANCE_SECONDS } from './access-tokens.ts';

const ASYMMETRIC_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

/** Who an external token says the caller is. */
export interface ExternalIdentity {
  email: string;
  name: string;
}

/** The token verified but names no usable identity (no email, or an unverified one). */
export class ExternalIdentityError extends Error {
  override readonly name = 'ExternalIdentityError';
}

export class ExternalIdp {
  readonly issuer: string;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  /** Throws on a configuration that could not be verified safely. */
  constructor(private readonly config: ExternalIdpConfig) {
    if (!config.issuer || !config.audience) throw new Error('an external identity provider needs an issuer and an audience');
    if (config.algorithms.length === 0) throw new Error('an external identity provider needs at least one algorithm');
    const refused = config.algorithms.filter((a) => !ASYMMETRIC_ALGORITHMS.has(a));
    if (refused.length > 0) throw new Error(`external token algorithms must be asymmetric; refusing ${refused.join(', ')}`);
    const url = new URL(config.jwksUrl);
    if (url.protocol !== 'https:' && !isLoopback(url.hostname)) throw new Error('the JWKS URL must use https (plain http only on loopback)');
    this.issuer = config.issuer;
    // A token with an unknown `kid` refetches the set at most every 30 s (key rotation
    // without letting a flood of forged kids hammer the provider).
    this.jwks = createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  }

  /** Verifies a token at `nowMs`; throws a jose error or an ExternalIdentityError. */
  async verify(token: string, nowMs: number): Promise<ExternalIdentity> {
    const { payload } = await jwtVerify(token, this.jwks, {
      algorithms: this.config.algorithms,
      issuer: this.config.issuer,
      audience: this.config.audience,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(nowMs),
    });
    const email = payload['email'];
    if (typeof email !== 'string' || !/^[^\s@]{1,200}@[^\s@]{1,200}$/.test(email)) throw new ExternalIdentityError('the token carries no email');
    if (payload['email_verified'] === false) throw new ExternalIdentityError('the token email is not verified');
    const name = typeof payload['name'] === 'string' ? payload['name'].slice(0, 200) : '';
    return { email, name };
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
