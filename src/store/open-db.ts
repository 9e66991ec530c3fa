import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from './db.ts';
import { openPg } from './pg-db.ts';
import { openPglite } from './pglite-db.ts';

export interface DatabaseTarget {
  /** A postgres:// URL; when absent, the embedded database in `dataDir`. */
  url?: string | undefined;
  dataDir: string;
}

/** Opens PostgreSQL when a URL is given, else PGlite with its data in `<dataDir>/pgdata`. */
export async function openDatabase(target: DatabaseTarget): Promise<Db> {
  if (target.url) return openPg({ connectionString: target.url });
  await mkdir(target.dataDir, { recursive: true });
  return openPglite(join(target.dataDir, 'pgdata'));
}
