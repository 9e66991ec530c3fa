/**
 * Authentication: who a request comes from, and the credentials that say so.
 *
 * Three kinds of bearer token reach `authenticate`, told apart by their shape:
 * - `weft_pat_…` personal API tokens (looked up by SHA-256);
 * - our own access JWTs (EdDSA, our issuer and audience);
 * - when configured, access JWTs of an external identity provider (its issuer; its JWKS).
 * Every one of them is resolved to the user row on each request, so disabling a user or
 * demoting an admin takes effect at once; the cost is one primary-key (or unique-index) query.
 *
 * Sessions are a short access JWT plus an opaque refresh token that rotates on every use.
 * Secrets (passwords, tokens, hashes) are never logged; log fields name users by id.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeJwt, errors as joseErrors } from 'jose';
import type { Clock } from '../../engine/clock.ts';
import type { Logger } from '../../engine/log.ts';
import { findActiveApiToken, insertApiToken, listApiTokens, revokeApiToken, touchApiToken, type ApiTokenRecord } from '../../store/api-tokens.ts';
import { SQLSTATE, sqlState, type Db } from '../../store/db.ts';
import { findRefreshFamily, insertRefreshToken, lockRefreshToken, markRefreshTokenUsed, revokeRefreshFamily, revokeUserRefreshTokens } from '../../store/refresh-tokens.ts';
import {
  ensureUser, findLoginByEmail, findUserByEmail, getPasswordHash, getUser, insertUser, updateUser, type UserRecord, type UserRole,
} from '../../store/users.ts';
import type { ApiConfig } from '../config.ts';
import { HttpProblem, notFound } from '../http/problem.ts';
import type { Principal } from '../http/route.ts';
import { issueAccessToken, verifyAccessToken } from './access-tokens.ts';
import { ExternalIdentityError, ExternalIdp } from './external-idp.ts';
import { bootstrapFirstAdmin, completeFirstAdminSetup, type BootstrapResult } from './first-admin.ts';
import { hashPassword, needsRehash, passwordPolicyProblem, prepareDummyHash, verifyDummy, verifyPassword } from './passwords.ts';
import { loadSigningKey, type SigningKey } from './signing-key.ts';

/** What login, refresh and setup answer (OAuth 2.0 token response field names). */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  /** Seconds until the access token expires. */
  expires_in: number;
}

/** A new API token: the only time `token` itself is ever shown. */
export interface CreatedApiToken {
  id: string;
  name: string;
  prefix: string;
  token: string;
  created_at: Date;
  expires_at: Date | null;
}

export const API_TOKEN_PREFIX = 'weft_pat_';
export const REFRESH_TOKEN_PREFIX = 'weft_rt_';
/** 32 random bytes in base64url are 43 characters. */
const API_TOKEN_FORMAT = /^weft_pat_[A-Za-z0-9_-]{43}$/;
const REFRESH_TOKEN_FORMAT = /^weft_rt_[A-Za-z0-9_-]{43}$/;
const UUID_FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_TOKEN_LENGTH = 8192;
const TOUCH_INTERVAL_MS = 60_000;

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** 401 for a bearer token that is not valid; the detail never says which check failed. */
export function invalidToken(detail = 'invalid access token'): HttpProblem {
  return new HttpProblem(401, 'WEFT_UNAUTHENTICATED', detail, undefined, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
}
const badLogin = (): HttpProblem => new HttpProblem(401, 'WEFT_UNAUTHENTICATED', 'invalid email or password', undefined, { 'WWW-Authenticate': 'Bearer' });
const badRefresh = (): HttpProblem => new HttpProblem(401, 'WEFT_UNAUTHENTICATED', 'invalid or expired refresh token', undefined, { 'WWW-Authenticate': 'Bearer' });

function policyProblem(password: string, path: string): HttpProblem | undefined {
  const problem = passwordPolicyProblem(password);
  return problem === undefined ? undefined : new HttpProblem(400, 'WEFT_VALIDATION', problem, [{ path, message: problem }]);
}

export interface AuthServiceOptions {
  db: Db;
  config: ApiConfig;
  clock: Clock;
  log: Logger;
}

export class AuthService {
  private constructor(
    private readonly db: Db,
    private readonly config: ApiConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly key: SigningKey,
    private readonly external: ExternalIdp | undefined,
  ) {}

  /** Loads (or creates) the signing key and checks the external provider's configuration. */
  static async create(opts: AuthServiceOptions): Promise<AuthService> {
    const key = await loadSigningKey(opts.config, opts.log);
    const external = opts.config.external ? new ExternalIdp(opts.config.external) : undefined;
    if (external && external.issuer === opts.config.jwt.issuer) throw new Error('the external issuer must differ from weft\'s own JWT issuer');
    await prepareDummyHash();
    return new AuthService(opts.db, opts.config, opts.clock, opts.log, key, external);
  }

  /**
   * The caller of a request, from `Authorization: Bearer <token>` only (cookies and other
   * headers are ignored, so there is no CSRF surface). No header: null. A header with an
   * invalid token: a 401 problem.
   */
  async authenticate(req: IncomingMessage): Promise<Principal | null> {
    const header = req.headers.authorization;
    if (header === undefined) return null;
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match || match[1]!.length > MAX_TOKEN_LENGTH) throw invalidToken('send Authorization: Bearer <token>');
    const token = match[1]!;
    if (token.startsWith(API_TOKEN_PREFIX)) return this.authenticateApiToken(token);
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw invalidToken();
    }
    if (this.external && issuer === this.external.issuer) return this.authenticateExternal(this.external, token);
    return this.authenticateOwnJwt(token);
  }

  private async authenticateOwnJwt(token: string): Promise<Principal> {
    let sub: string;
    try {
      sub = (await verifyAccessToken(this.key, this.config.jwt, token, this.clock.now())).sub;
    } catch (error) {
      throw this.tokenFailure(error);
    }
    const user = UUID_FORMAT.test(sub) ? await getUser(this.db, sub) : undefined;
    if (!user || user.disabled) throw invalidToken();
    return { userId: user.id, email: user.email, role: user.role, via: 'jwt' };
  }

  private async authenticateExternal(idp: ExternalIdp, token: string): Promise<Principal> {
    let identity;
    try {
      identity = await idp.verify(token, this.clock.now());
    } catch (error) {
      throw this.tokenFailure(error);
    }
    let user = await findUserByEmail(this.db, identity.email);
    if (!user) {
      // Never admin: an external identity gets the admin role only from a weft admin.
      user = await ensureUser(this.db, { email: identity.email, name: identity.name, role: 'user', passwordHash: null });
      this.log.info('created a user for an external identity', { user_id: user.id });
    }
    if (user.disabled) throw invalidToken();
    return { userId: user.id, email: user.email, role: user.role, via: 'external' };
  }

  private async authenticateApiToken(token: string): Promise<Principal> {
    if (!API_TOKEN_FORMAT.test(token)) throw invalidToken('invalid API token');
    const now = new Date(this.clock.now());
    const found = await findActiveApiToken(this.db, sha256Hex(token), now);
    if (!found) throw invalidToken('invalid, expired or revoked API token');
    if (!found.last_used_at || now.getTime() - found.last_used_at.getTime() >= TOUCH_INTERVAL_MS) {
      await touchApiToken(this.db, found.token_id, now);
    }
    return { userId: found.user_id, email: found.email, role: found.role, via: 'api_token' };
  }

  /**
   * A verification failure as a 401. jose errors are the token's fault; anything else (the
   * provider's JWKS unreachable) is logged for the operator, and the caller still gets a 401.
   */
  private tokenFailure(error: unknown): HttpProblem {
    if (error instanceof joseErrors.JWTExpired) return invalidToken('access token expired');
    if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError || error instanceof ExternalIdentityError)) {
      this.log.warn('could not verify a bearer token', { error: error instanceof Error ? error.name : 'unknown' });
    }
    return invalidToken();
  }

  /** Email and password to a new session. Every failure is the same 401, in about the same time. */
  async login(email: string, password: string): Promise<TokenPair> {
    const user = await findLoginByEmail(this.db, email.trim());
    if (!user || user.password_hash === null) {
      await verifyDummy(password);
      throw badLogin();
    }
    if (!(await verifyPassword(password, user.password_hash)) || user.disabled) throw badLogin();
    if (needsRehash(user.password_hash)) await updateUser(this.db, user.id, { passwordHash: await hashPassword(password) });
    return this.startSession(user);
  }

  /** A new session family for `user`: an access token and its first refresh token. */
  async startSession(user: Pick<UserRecord, 'id' | 'email' | 'role'>): Promise<TokenPair> {
    const refreshToken = REFRESH_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const now = this.clock.now();
    await insertRefreshToken(this.db, { userId: user.id, familyId: randomUUID(), tokenHash: sha256Hex(refreshToken), expiresAt: this.refreshExpiry(now) });
    return this.tokenPair(user, refreshToken, now);
  }

  private refreshExpiry(nowMs: number): Date {
    return new Date(nowMs + this.config.jwt.refreshTtlSeconds * 1000);
  }

  private async tokenPair(user: Pick<UserRecord, 'id' | 'email' | 'role'>, refreshToken: string, nowMs: number): Promise<TokenPair> {
    const accessToken = await issueAccessToken(this.key, this.config.jwt, user, nowMs);
    return { access_token: accessToken, refresh_token: refreshToken, token_type: 'Bearer', expires_in: this.config.jwt.accessTtlSeconds };
  }

  /**
   * Exchanges a refresh token for a new pair; the presented one is spent. A spent token
   * presented again revokes its whole family: either its owner or a thief used it first, and
   * the server cannot tell which, so both lose the session. The revocation commits even though
   * the answer is a 401.
   */
  async refresh(refreshToken: string): Promise<TokenPair> {
    if (!REFRESH_TOKEN_FORMAT.test(refreshToken)) throw badRefresh();
    const now = this.clock.now();
    const next = REFRESH_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const outcome = await this.db.transaction(async (tx) => {
      const row = await lockRefreshToken(tx, sha256Hex(refreshToken));
      if (!row || row.revoked_at) return { kind: 'invalid' } as const;
      if (row.used_at) {
        await revokeRefreshFamily(tx, row.family_id);
        return { kind: 'replayed', row } as const;
      }
      if (row.expires_at.getTime() <= now || row.user_disabled) return { kind: 'invalid' } as const;
      if (!(await markRefreshTokenUsed(tx, row.id, new Date(now)))) return { kind: 'invalid' } as const;
      await insertRefreshToken(tx, { userId: row.user_id, familyId: row.family_id, tokenHash: sha256Hex(next), expiresAt: this.refreshExpiry(now) });
      return { kind: 'rotated', row } as const;
    });
    if (outcome.kind === 'replayed') {
      this.log.warn('a spent refresh token was presented again; its session family is revoked', { user_id: outcome.row.user_id, family_id: outcome.row.family_id });
    }
    if (outcome.kind !== 'rotated') throw badRefresh();
    return this.tokenPair({ id: outcome.row.user_id, email: outcome.row.email, role: outcome.row.role }, next, now);
  }

  /** Ends the session the refresh token belongs to (its whole family). Unknown tokens are ignored. */
  async logout(refreshToken: string): Promise<void> {
    if (!REFRESH_TOKEN_FORMAT.test(refreshToken)) return;
    const family = await findRefreshFamily(this.db, sha256Hex(refreshToken));
    if (family) await revokeRefreshFamily(this.db, family);
  }

  /** Creates a personal API token; the answer is the only place the token appears. */
  async createApiToken(userId: string, name: string, expiresAt?: Date): Promise<CreatedApiToken> {
    if (expiresAt && !(expiresAt.getTime() > this.clock.now())) {
      throw new HttpProblem(400, 'WEFT_VALIDATION', 'expires_at must be in the future', [{ path: '/body/expires_at', message: 'must be in the future' }]);
    }
    const token = API_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const record = await insertApiToken(this.db, {
      id: randomUUID(), userId, name, prefix: token.slice(0, 12), tokenHash: sha256Hex(token), expiresAt: expiresAt ?? null,
    });
    return { id: record.id, name: record.name, prefix: record.prefix, token, created_at: record.created_at, expires_at: record.expires_at };
  }

  /** The user's unrevoked tokens, without the tokens themselves. */
  listApiTokens(userId: string): Promise<ApiTokenRecord[]> {
    return listApiTokens(this.db, userId);
  }

  /** Revokes one of the caller's own tokens; someone else's is a 404, like a missing one. */
  async revokeApiToken(userId: string, tokenId: string): Promise<void> {
    if (!UUID_FORMAT.test(tokenId) || !(await revokeApiToken(this.db, userId, tokenId))) throw notFound('API token');
  }

  /** First start on an empty database: the configured admin, or a one-time setup link. */
  bootstrap(): Promise<BootstrapResult> {
    return bootstrapFirstAdmin(this.db, this.config, this.clock, this.log);
  }

  /** Creates the first admin with the setup token (409 once users exist, 403 for a bad token) and signs them in. */
  async completeSetup(token: string, email: string, password: string, name?: string): Promise<{ user: UserRecord; tokens: TokenPair }> {
    const user = await completeFirstAdminSetup(this.db, this.clock, token, { email: email.trim(), password, name: name ?? '' });
    this.log.info('created the first admin through the setup link', { user_id: user.id });
    return { user, tokens: await this.startSession(user) };
  }

  /** Creates a user (admins only; the route enforces it). 409 when the email is taken. */
  async createUser(input: { email: string; name?: string | undefined; role: UserRole; password?: string | undefined }): Promise<UserRecord> {
    const problem = input.password === undefined ? undefined : policyProblem(input.password, '/body/password');
    if (problem) throw problem;
    const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
    try {
      return await insertUser(this.db, { email: input.email.trim(), name: input.name ?? '', role: input.role, passwordHash });
    } catch (error) {
      if (sqlState(error) === SQLSTATE.uniqueViolation) throw new HttpProblem(409, 'WEFT_CONFLICT', 'a user with this email exists');
      throw error;
    }
  }

  /**
   * An admin's change to a user. Admins cannot disable or demote themselves, so the server
   * always keeps an admin who can undo mistakes. Disabling or a new password ends the user's
   * sessions; their access tokens stop working at once because each request reloads the user.
   */
  async updateUser(
    actor: Principal,
    id: string,
    patch: { name?: string | undefined; role?: UserRole | undefined; disabled?: boolean | undefined; password?: string | undefined },
  ): Promise<UserRecord> {
    if (id === actor.userId && (patch.disabled === true || patch.role === 'user')) {
      throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'you cannot disable or demote your own account');
    }
    const problem = patch.password === undefined ? undefined : policyProblem(patch.password, '/body/password');
    if (problem) throw problem;
    const passwordHash = patch.password === undefined ? undefined : await hashPassword(patch.password);
    const updated = await this.db.transaction(async (tx) => {
      const user = await updateUser(tx, id, { name: patch.name, role: patch.role, disabled: patch.disabled, passwordHash });
      if (user && (patch.disabled === true || passwordHash !== undefined)) await revokeUserRefreshTokens(tx, id);
      return user;
    });
    if (!updated) throw notFound('user');
    return updated;
  }

  /** A user's own password change: needs the current password (403 when wrong); ends every session. */
  async changeOwnPassword(userId: string, currentPassword: string, newPassword: string): Promise<void> {
    const problem = policyProblem(newPassword, '/body/password');
    if (problem) throw problem;
    const stored = await getPasswordHash(this.db, userId);
    const ok = stored ? await verifyPassword(currentPassword, stored) : await verifyDummy(currentPassword);
    if (!ok) throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'the current password is not correct');
    const passwordHash = await hashPassword(newPassword);
    await this.db.transaction(async (tx) => {
      await updateUser(tx, userId, { passwordHash });
      await revokeUserRefreshTokens(tx, userId);
    });
  }
}
