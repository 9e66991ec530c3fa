/**
 * Queries for users. Emails are unique case-insensitively (`users_email` on `lower(email)`), so
 * every lookup compares `lower(email)`.
 *
 * The password hash is read by one function only (`findLoginByEmail`, for login, and
 * `getPasswordHash`, for a password change); every other function leaves it out of its
 * columns, so a route cannot answer it by accident.
 */
import { randomUUID } from 'node:crypto';
import type { Queryable } from './db.ts';

export type UserRole = 'admin' | 'user';

/** A user as routes see it: never the password hash. */
export interface UserRecord {
  id: string;
  email: string;
  name: string;
  role: UserRole;
  disabled: boolean;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const USER_COLUMNS = 'id, email, name, role, disabled_at IS NOT NULL AS disabled, disabled_at, created_at, updated_at';

export interface NewUser {
  email: string;
  name: string;
  role: UserRole;
  /** NULL: the user cannot log in with a password (external identity provider only). */
  passwordHash: string | null;
}

/** Inserts a user; a duplicate email fails with SQLSTATE 23505 (`SQLSTATE.uniqueViolation`). */
export async function insertUser(q: Queryable, u: NewUser): Promise<UserRecord> {
  const { rows } = await q.query<UserRecord>(
    `INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING ${USER_COLUMNS}`,
    [randomUUID(), u.email, u.name, u.role, u.passwordHash],
  );
  return rows[0]!;
}

/**
 * Inserts a user unless one with this email exists, and returns whichever is there: two
 * concurrent first requests of an external user must not fail on the unique index.
 */
export async function ensureUser(q: Queryable, u: NewUser): Promise<UserRecord> {
  await q.query(
    `INSERT INTO users (id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT ((lower(email))) DO NOTHING`,
    [randomUUID(), u.email, u.name, u.role, u.passwordHash],
  );
  return (await findUserByEmail(q, u.email))!;
}

export async function getUser(q: Queryable, id: string): Promise<UserRecord | undefined> {
  const { rows } = await q.query<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0];
}

export async function findUserByEmail(q: Queryable, email: string): Promise<UserRecord | undefined> {
  const { rows } = await q.query<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE lower(email) = lower($1)`, [email]);
  return rows[0];
}

/** For login only: the user with their password hash. */
export async function findLoginByEmail(q: Queryable, email: string): Promise<(UserRecord & { password_hash: string | null }) | undefined> {
  const { rows } = await q.query<UserRecord & { password_hash: string | null }>(
    `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)`,
    [email],
  );
  return rows[0];
}

/** For a password change only: undefined when there is no such user, null when it has no password. */
export async function getPasswordHash(q: Queryable, id: string): Promise<string | null | undefined> {
  const { rows } = await q.query<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE id = $1', [id]);
  return rows[0]?.password_hash;
}

export interface UserFilter {
  role?: UserRole | undefined;
  /** Text in the email or the name. */
  q?: string | undefined;
  sort: 'created_at' | 'email' | 'name';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

const SORT_COLUMNS: Record<UserFilter['sort'], string> = { created_at: 'created_at', email: 'lower(email)', name: 'lower(name)' };

export async function listUsers(q: Queryable, f: UserFilter): Promise<{ items: UserRecord[]; total: number }> {
  const where = `($1::text IS NULL OR role = $1)
     AND ($2::text IS NULL OR email ILIKE '%' || $2 || '%' OR name ILIKE '%' || $2 || '%')`;
  const params = [f.role ?? null, escapeLike(f.q)];
  const { rows } = await q.query<UserRecord>(
    `SELECT ${USER_COLUMNS} FROM users WHERE ${where}
     ORDER BY ${SORT_COLUMNS[f.sort]} ${f.order === 'asc' ? 'ASC' : 'DESC'}, id LIMIT $3 OFFSET $4`,
    [...params, f.limit, f.offset],
  );
  // A separate count: a window count is absent when the page is past the end.
  const count = await q.query<{ total: number }>(`SELECT count(*)::int AS total FROM users WHERE ${where}`, params);
  return { items: rows, total: count.rows[0]?.total ?? 0 };
}

function escapeLike(text: string | undefined): string | null {
  return text === undefined || text === '' ? null : text.replace(/[\\%_]/g, (c) => '\\' + c);
}

export interface UserPatch {
  name?: string | undefined;
  role?: UserRole | undefined;
  /** true sets `disabled_at` (kept if already set); false clears it. */
  disabled?: boolean | undefined;
  passwordHash?: string | undefined;
}

/** Updates the given fields; undefined when there is no such user. */
export async function updateUser(q: Queryable, id: string, p: UserPatch): Promise<UserRecord | undefined> {
  const { rows } = await q.query<UserRecord>(
    `UPDATE users SET
       name = COALESCE($2, name), role = COALESCE($3, role),
       disabled_at = CASE WHEN $4::boolean IS NULL THEN disabled_at WHEN $4 THEN COALESCE(disabled_at, now()) ELSE NULL END,
       password_hash = COALESCE($5, password_hash), updated_at = now()
     WHERE id = $1 RETURNING ${USER_COLUMNS}`,
    [id, p.name ?? null, p.role ?? null, p.disabled ?? null, p.passwordHash ?? null],
  );
  return rows[0];
}

export async function countUsers(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
  return rows[0]?.n ?? 0;
}
