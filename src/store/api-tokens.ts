/**
 * Queries for personal API tokens. Only a SHA-256 of a token is stored; a lookup is one probe
 * of the unique `token_hash` index joined to the user by primary key.
 */
import type { Queryable } from './db.ts';
import type { UserRole } from './users.ts';

/** A token as its owner sees it in a list: never the token or its hash. */
export interface ApiTokenRecord {
  id: string;
  name: string;
  prefix: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
}

const TOKEN_COLUMNS = 'id, name, prefix, created_at, expires_at, last_used_at';

export async function insertApiToken(
  q: Queryable,
  t: { id: string; userId: string; name: string; prefix: string; tokenHash: string; expiresAt: Date | null },
): Promise<ApiTokenRecord> {
  const { rows } = await q.query<ApiTokenRecord>(
    `INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6::timestamptz)
     RETURNING ${TOKEN_COLUMNS}`,
    [t.id, t.userId, t.name, t.prefix, t.tokenHash, t.expiresAt?.toISOString() ?? null],
  );
  return rows[0]!;
}

/** The owner of a live token: not revoked, not expired at `at`, user not disabled. */
export interface ActiveApiToken {
  token_id: string;
  last_used_at: Date | null;
  user_id: string;
  email: string;
  role: UserRole;
}

export async function findActiveApiToken(q: Queryable, tokenHash: string, at: Date): Promise<ActiveApiToken | undefined> {
  const { rows } = await q.query<ActiveApiToken>(
    `SELECT t.id AS token_id, t.last_used_at, u.id AS user_id, u.email, u.role
     FROM api_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2::timestamptz)
       AND u.disabled_at IS NULL`,
    [tokenHash, at.toISOString()],
  );
  return rows[0];
}

/**
 * Records a use, at most once a minute per token (the condition makes concurrent requests
 * write once): a write on every request would double the cost of an authenticated call.
 */
export async function touchApiToken(q: Queryable, id: string, at: Date): Promise<void> {
  await q.query(
    `UPDATE api_tokens SET last_used_at = $2::timestamptz
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')`,
    [id, at.toISOString()],
  );
}

/** The user's tokens that are not revoked (expired ones stay listed until revoked). */
export async function listApiTokens(q: Queryable, userId: string): Promise<ApiTokenRecord[]> {
  const { rows } = await q.query<ApiTokenRecord>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id`,
    [userId],
  );
  return rows;
}

/** Revokes one of the user's own live tokens; false when there is none with this id. */
export async function revokeApiToken(q: Queryable, userId: string, id: string): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL',
    [id, userId],
  );
  return rowCount > 0;
}
