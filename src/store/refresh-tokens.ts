/**
 * Queries for refresh tokens. A token is used once: refreshing marks it used and adds its
 * successor to the same family. A used token presented again means two parties hold it (one
 * of them stole it), so the whole family is revoked.
 */
import { randomUUID } from 'node:crypto';
import type { Queryable } from './db.ts';
import type { UserRole } from './users.ts';

export async function insertRefreshToken(
  q: Queryable,
  t: { userId: string; familyId: string; tokenHash: string; expiresAt: Date },
): Promise<void> {
  await q.query(
    'INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5::timestamptz)',
    [randomUUID(), t.userId, t.familyId, t.tokenHash, t.expiresAt.toISOString()],
  );
}

/** A refresh token with what deciding on it needs of its user. */
export interface RefreshTokenRow {
  id: string;
  user_id: string;
  family_id: string;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  email: string;
  role: UserRole;
  user_disabled: boolean;
}

/**
 * The token with this hash, its row locked until the transaction ends: two refreshes with
 * the same token run one after the other, so the second sees it used.
 */
export async function lockRefreshToken(q: Queryable, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  const { rows } = await q.query<RefreshTokenRow>(
    `SELECT t.id, t.user_id, t.family_id, t.expires_at, t.used_at, t.revoked_at, u.email, u.role,
            u.disabled_at IS NOT NULL AS user_disabled
     FROM refresh_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash = $1 FOR UPDATE OF t`,
    [tokenHash],
  );
  return rows[0];
}

/** Marks a live token used; false when it was used or revoked meanwhile (the caller refuses). */
export async function markRefreshTokenUsed(q: Queryable, id: string, at: Date): Promise<boolean> {
  const { rowCount } = await q.query(
    'UPDATE refresh_tokens SET used_at = $2::timestamptz WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL',
    [id, at.toISOString()],
  );
  return rowCount > 0;
}

export async function revokeRefreshFamily(q: Queryable, familyId: string): Promise<void> {
  await q.query('UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL', [familyId]);
}

/** Ends every session of a user (disabled, password changed). */
export async function revokeUserRefreshTokens(q: Queryable, userId: string): Promise<void> {
  await q.query('UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL', [userId]);
}

/** The family of the token with this hash, whatever its state. */
export async function findRefreshFamily(q: Queryable, tokenHash: string): Promise<string | undefined> {
  const { rows } = await q.query<{ family_id: string }>('SELECT family_id FROM refresh_tokens WHERE token_hash = $1', [tokenHash]);
  return rows[0]?.family_id;
}
