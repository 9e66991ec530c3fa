/** Migrations: applied once, recorded, and safe when two processes race to apply them. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { loadMigrations, migrate } from '../src/store/migrate.ts';
import { openPg } from '../src/store/pg-db.ts';
import { PG_URL, closeTemplates, emptyPostgresSchema, openTestDb } from './helpers/db.ts';

after(closeTemplates);

void test('migrations are numbered, and a migrated database has nothing left to apply', async (t) => {
  const migrations = await loadMigrations();
  assert.deepEqual(migrations.map((m) => m.id), migrations.map((_, i) => i + 1), 'numbered 1..n without gaps');
  const db = await openTestDb('pglite', t);
  assert.ok(db);
  t.after(() => db.close());
  assert.deepEqual(await migrate(db), []);
  const { rows } = await db.query<{ id: number }>('SELECT id FROM weft_migrations ORDER BY id');
  assert.deepEqual(rows.map((r) => r.id), migrations.map((m) => m.id));
});

void test('two processes migrating one PostgreSQL at once: each migration applied exactly once', async (t) => {
  const target = await emptyPostgresSchema(t, 'weft_mig');
  if (!target) return;
  const { schema } = target;
  const a = await openPg({ connectionString: PG_URL, schema, max: 2 });
  const b = await openPg({ connectionString: PG_URL, schema, max: 2 });
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  t.after(async () => {
    await a.close();
    await b.close();
    await admin.end();
    await target.drop();
  });
  const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
  const all = (await loadMigrations()).map((m) => m.id);
  assert.deepEqual([...ra, ...rb].sort(), all, 'between them, every migration once');
  assert.ok(ra.length === 0 || rb.length === 0, 'one of them found the work done');
  const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.weft_migrations`);
  assert.equal(rows[0].n, all.length);
});
