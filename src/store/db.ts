/**
 * The one narrow interface through which everything reaches the database. A PGlite adapter
 * (embedded, in process) and a `pg` adapter (PostgreSQL server) implement it in a few lines
 * each, so the same SQL runs on both.
 *
 * Conventions for callers: jsonb parameters are passed as JSON text (`JSON.stringify`) with an
 * explicit `::jsonb` cast, because the two drivers serialise JS objects and arrays differently;
 * bigint results are cast to int or text in SQL for the same reason.
 */
export interface QueryResult<R> {
  rows: R[];
  /** Rows changed by an INSERT/UPDATE/DELETE, or returned by a SELECT. */
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

export type DbKind = 'pglite' | 'postgres';

export interface Db extends Queryable {
  readonly kind: DbKind;
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs a script of several statements (migrations). No parameters. */
  exec(script: string): Promise<void>;
  /** Subscribes to NOTIFY on `channel`; the returned function unsubscribes. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
  /** Where it points, without credentials, for logs and benchmark output. */
  readonly description: string;
}

/** SQLSTATE codes we act on; matched by code, never by message text. */
export const SQLSTATE = {
  uniqueViolation: '23505',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  undefinedTable: '42P01',
} as const;

export function sqlState(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * Runs a transaction, retrying when PostgreSQL aborts it for a deadlock or a serialisation
 * failure: both mean "nothing happened, try again".
 */
export async function transactionWithRetry<T>(db: Db, fn: (tx: Queryable) => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await db.transaction(fn);
    } catch (error) {
      const state = sqlState(error);
      const transient = state === SQLSTATE.deadlockDetected || state === SQLSTATE.serializationFailure;
      if (!transient || i >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 2 * i + Math.random() * 5));
    }
  }
}
