/**
 * Our access tokens: short-lived JWTs signed with the server's Ed25519 key.
 *
 * Verification pins the algorithm to EdDSA, so `alg: none` and the classic confusion of an
 * HMAC "signed" with the public key are refused before any signature is checked; it requires
 * `exp`, `iat`, `nbf`, `sub` and `jti`, and checks the issuer, audience and the `at+jwt` type.
 * `role` and `email` in a token are hints for clients only: the server reloads the user on
 * every request.
 */
import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { ApiConfig } from '../config.ts';
import { ACCESS_TOKEN_ALG, type SigningKey } from './signing-key.ts';

/** Allowed clock skew between servers when checking `exp` and `nbf`, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;

/** RFC 9068 token type: keeps an ID token or another JWT from being taken for an access token. */
const TOKEN_TYPE = 'at+jwt';

export interface AccessTokenSubject {
  id: string;
  role: string;
  email: string;
}

export interface AccessTokenClaims extends JWTPayload {
  sub: string;
  jti: string;
  role?: unknown;
  email?: unknown;
}

/** Signs an access token for `user`, valid from `nowMs` for `accessTtlSeconds`. */
export async function issueAccessToken(key: SigningKey, jwt: ApiConfig['jwt'], user: AccessTokenSubject, nowMs: number): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({ role: user.role, email: user.email })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, typ: TOKEN_TYPE, kid: key.kid })
    .setSubject(user.id)
    .setIssuer(jwt.issuer)
    .setAudience(jwt.audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + jwt.accessTtlSeconds)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/** Verifies one of our access tokens at `nowMs`; throws a jose error when it is not valid. */
export async function verifyAccessToken(key: SigningKey, jwt: ApiConfig['jwt'], token: string, nowMs: number): Promise<AccessTokenClaims> {
  const { payload } = await jwtVerify(token, key.publicKey, {
    algorithms: [ACCESS_TOKEN_ALG],
    issuer: jwt.issuer,
    audience: jwt.audience,
    typ: TOKEN_TYPE,
    requiredClaims: ['exp', 'iat', 'nbf', 'sub', 'jti'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    currentDate: new Date(nowMs),
  });
  return payload as AccessTokenClaims;
}
