import { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable, QueryResult } from './db.ts';

type PGliteLike = Pick<PGlite, 'query' | 'exec' | 'transaction' | 'listen' | 'close'> & { clone?: () => Promise<unknown> };

function wrapQueryable(q: Pick<PGlite, 'query'>): Queryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const result = await q.query<R>(text, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
  };
}

/** Wraps an open PGlite instance (used directly by tests that clone a migrated template). */
export function pgliteDb(pg: PGliteLike, description: string): Db & { pglite: PGliteLike } {
  const base = wrapQueryable(pg as Pick<PGlite, 'query'>);
  return {
    kind: 'pglite',
    description,
    pglite: pg,
    query: base.query,
    transaction: (fn) => pg.transaction((tx) => fn(wrapQueryable(tx))),
    exec: async (script) => {
      await pg.exec(script);
    },
    listen: async (channel, onNotify) => {
      const unsubscribe = await pg.listen(channel, onNotify);
      return () => unsubscribe();
    },
    close: () => pg.close(),
  };
}

/**
 * Opens the embedded database: a data folder (created if missing), or memory when `dataDir`
 * is undefined. PGlite is one connection in this process: transactions serialise.
 */
export async function openPglite(dataDir: string | undefined): Promise<Db> {
  const pg = dataDir === undefined ? await PGlite.create() : await PGlite.create(dataDir);
  return pgliteDb(pg, dataDir === undefined ? 'PGlite (in memory)' : `PGlite (${dataDir})`);
}
