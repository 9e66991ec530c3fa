/**
 * Test databases, each test isolated: PGlite tests get a clone of one migrated in-memory
 * template (a fresh initdb costs seconds, a clone well under one); PostgreSQL tests get a
 * schema of their own in the `test` database, dropped afterwards.
 *
 * PostgreSQL must be there in CI (CI=true): a missing server fails the test. Locally, the
 * test is skipped with the connection error as its stated reason.
 */
import type { TestContext } from 'node:test';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openPg } from '../../src/store/pg-db.ts';
import { pgliteDb } from '../../src/store/pglite-db.ts';

export type Backend = 'pglite' | 'postgres';
export const BACKENDS: readonly Backend[] = ['pglite', 'postgres'];

export const PG_URL = process.env['WEFT_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

let template: Promise<PGlite> | undefined;

function pgliteTemplate(): Promise<PGlite> {
  template ??= (async () => {
    const pgl = await PGlite.create();
    await migrate(pgliteDb(pgl, 'template'));
    return pgl;
  })();
  return template;
}

let pgReachable: Promise<string | undefined> | undefined;

/** undefined when PostgreSQL answers, else why not. */
function postgresProblem(): Promise<string | undefined> {
  pgReachable ??= (async () => {
    const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return undefined;
    } catch (error) {
      return (error as Error).message || String(error);
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgReachable;
}

/** Opens an isolated, migrated database; returns undefined when the test was skipped. */
export async function openTestDb(backend: Backend, t: TestContext, poolSize = 10): Promise<Db | undefined> {
  if (backend === 'pglite') {
    const clone = (await (await pgliteTemplate()).clone()) as unknown as PGlite;
    return pgliteDb(clone, 'PGlite (test clone)');
  }
  if (!(await requirePostgres(t))) return undefined;
  const schema = await createSchema('weft_test');
  const db = await openPg({ connectionString: PG_URL, schema, max: poolSize });
  await migrate(db);
  const close = db.close.bind(db);
  return Object.assign(db, {
    close: async () => {
      await close();
      await dropSchema(schema);
    },
  });
}

/** True when PostgreSQL answers; otherwise fails the test in CI and skips it (with the reason) locally. */
async function requirePostgres(t: TestContext): Promise<boolean> {
  const problem = await postgresProblem();
  if (problem === undefined) return true;
  if (process.env['CI']) throw new Error(`PostgreSQL at ${PG_URL} is required in CI: ${problem}`);
  t.skip(`PostgreSQL not reachable at ${PG_URL} (${problem}); runs in CI`);
  return false;
}

async function adminQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

async function createSchema(prefix: string): Promise<string> {
  const schema = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await adminQuery(`CREATE SCHEMA ${schema}`);
  return schema;
}

function dropSchema(schema: string): Promise<void> {
  return adminQuery(`DROP SCHEMA ${schema} CASCADE`);
}

/**
 * An empty schema of the test's own on the shared PostgreSQL (not migrated), for tests that
 * drive migrations or other processes themselves; `drop` it in the test's `after`, once
 * whatever uses it is closed. Undefined when the test was skipped.
 */
export async function emptyPostgresSchema(t: TestContext, prefix: string): Promise<{ schema: string; url: string; drop: () => Promise<void> } | undefined> {
  if (!(await requirePostgres(t))) return undefined;
  const schema = await createSchema(prefix);
  return { schema, url: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`, drop: () => dropSchema(schema) };
}

/** Closes the shared PGlite template so the test process can exit. */
export async function closeTemplates(): Promise<void> {
  if (template) await (await template).close();
  template = undefined;
}
