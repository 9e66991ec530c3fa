/** Queries for server-wide settings: one jsonb value per key. */
import type { Queryable } from './db.ts';

export async function getSetting<T>(q: Queryable, key: string): Promise<T | undefined> {
  const { rows } = await q.query<{ value: T }>('SELECT value FROM server_settings WHERE key = $1', [key]);
  return rows[0]?.value;
}

/** Sets a value, replacing any previous one. */
export async function putSetting(q: Queryable, key: string, value: unknown): Promise<void> {
  await q.query(
    `INSERT INTO server_settings (key, value) VALUES ($1, $2::jsonb)
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [key, JSON.stringify(value)],
  );
}

/** Deletes a setting; false when there was none. */
export async function deleteSetting(q: Queryable, key: string): Promise<boolean> {
  const { rowCount } = await q.query('DELETE FROM server_settings WHERE key = $1', [key]);
  return rowCount > 0;
}
