/**
 * Queries for credentials: provider endpoints and their API keys, sealed by the caller
 * (src/api/secrets.ts) before they reach this module. The API's views select
 * `api_key_sealed IS NOT NULL` and never the column itself; only `listSealedCredentials`,
 * which feeds the provider registry, reads it.
 */
import type { Queryable } from './db.ts';

export type CredentialKind = 'openai-compatible' | 'anthropic';

/** NOTIFY channel: a credential changed, every server reloads its providers. */
export const CREDENTIALS_CHANNEL = 'weft_credentials';

/** A credential as the API shows it: no key, only whether one is stored. */
export interface CredentialRecord {
  id: string;
  name: string;
  kind: CredentialKind;
  base_url: string | null;
  default_model: string | null;
  allow_private: boolean;
  has_secret: boolean;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
}

/** What the provider registry is built from. */
export interface SealedCredential extends Pick<CredentialRecord, 'id' | 'name' | 'kind' | 'base_url' | 'default_model' | 'allow_private'> {
  api_key_sealed: string | null;
}

const RECORD_COLUMNS = `id, name, kind, base_url, default_model, allow_private, api_key_sealed IS NOT NULL AS has_secret,
  created_by, created_at, updated_at`;

export interface CredentialPage {
  sort: 'name' | 'created_at' | 'updated_at';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

export async function listCredentials(q: Queryable, p: CredentialPage): Promise<{ items: CredentialRecord[]; total: number }> {
  const { rows } = await q.query<CredentialRecord & { total: number }>(
    `SELECT ${RECORD_COLUMNS}, count(*) OVER ()::int AS total FROM credentials
     ORDER BY ${p.sort === 'name' ? 'name' : p.sort === 'created_at' ? 'created_at' : 'updated_at'} ${p.order === 'asc' ? 'ASC' : 'DESC'}, id
     LIMIT $1 OFFSET $2`,
    [p.limit, p.offset],
  );
  const total = rows[0]?.total ?? (p.offset > 0 ? await countCredentials(q) : 0);
  return { items: rows.map(({ total: _t, ...r }) => r), total };
}

async function countCredentials(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM credentials');
  return rows[0]?.n ?? 0;
}

/** With `lock`, the row is held (FOR UPDATE) until the transaction ends. */
export async function getCredential(q: Queryable, id: string, lock = false): Promise<CredentialRecord | undefined> {
  const { rows } = await q.query<CredentialRecord>(`SELECT ${RECORD_COLUMNS} FROM credentials WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0];
}

export interface NewCredential {
  /** Chosen by the caller: the sealed key is bound to it. */
  id: string;
  name: string;
  kind: CredentialKind;
  baseUrl: string | null;
  defaultModel: string | null;
  allowPrivate: boolean;
  apiKeySealed: string | null;
  createdBy: string | null;
}

/** Inserts a credential; a taken name raises SQLSTATE 23505 (unique_violation). */
export async function insertCredential(q: Queryable, c: NewCredential): Promise<CredentialRecord> {
  const { rows } = await q.query<CredentialRecord>(
    `INSERT INTO credentials (id, name, kind, base_url, default_model, allow_private, api_key_sealed, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${RECORD_COLUMNS}`,
    [c.id, c.name, c.kind, c.baseUrl, c.defaultModel, c.allowPrivate, c.apiKeySealed, c.createdBy],
  );
  return rows[0]!;
}

/** Fields to change; undefined leaves one as it is, null clears it. */
export interface CredentialChange {
  name?: string | undefined;
  kind?: CredentialKind | undefined;
  baseUrl?: string | null | undefined;
  defaultModel?: string | null | undefined;
  allowPrivate?: boolean | undefined;
  apiKeySealed?: string | null | undefined;
}

/** Updates a credential; undefined when there is none. A taken name raises SQLSTATE 23505. */
export async function updateCredential(q: Queryable, id: string, c: CredentialChange): Promise<CredentialRecord | undefined> {
  const { rows } = await q.query<CredentialRecord>(
    `UPDATE credentials SET
       name = COALESCE($2, name), kind = COALESCE($3, kind),
       base_url = CASE WHEN $4::boolean THEN $5 ELSE base_url END,
       default_model = CASE WHEN $6::boolean THEN $7 ELSE default_model END,
       allow_private = COALESCE($8, allow_private),
       api_key_sealed = CASE WHEN $9::boolean THEN $10 ELSE api_key_sealed END,
       updated_at = now()
     WHERE id = $1 RETURNING ${RECORD_COLUMNS}`,
    [
      id, c.name ?? null, c.kind ?? null,
      c.baseUrl !== undefined, c.baseUrl ?? null,
      c.defaultModel !== undefined, c.defaultModel ?? null,
      c.allowPrivate ?? null,
      c.apiKeySealed !== undefined, c.apiKeySealed ?? null,
    ],
  );
  return rows[0];
}

/** Deletes a credential and its sealed key; false when there was none. */
export async function deleteCredential(q: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await q.query('DELETE FROM credentials WHERE id = $1', [id]);
  return rowCount > 0;
}

/** Every credential with its sealed key, for the provider registry. */
export async function listSealedCredentials(q: Queryable): Promise<SealedCredential[]> {
  const { rows } = await q.query<SealedCredential>(
    'SELECT id, name, kind, base_url, default_model, allow_private, api_key_sealed FROM credentials ORDER BY name',
  );
  return rows;
}

/** Tells every server (this one included) to reload its providers once the transaction commits. */
export async function notifyCredentialsChanged(q: Queryable): Promise<void> {
  await q.query(`SELECT pg_notify('${CREDENTIALS_CHANNEL}', '')`);
}
