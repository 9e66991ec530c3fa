/** Migrations: applied once, recorded, and safe when two processes race to apply them. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { loadMigrations, migrate } from '../src/store/migrate.ts';
import { sqlState } from '../src/store/db.ts';
import { openPg } from '../src/store/pg-db.ts';
import { BACKENDS, PG_URL, closeTemplates, emptyPostgresSchema, openTestDb } from './helpers/db.ts';
import { launch, testEngine } from './helpers/engine.ts';

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
  assert.deepEqual([...ra, ...rb].sort((x, y) => x - y), all, 'between them, every migration once');
  assert.ok(ra.length === 0 || rb.length === 0, 'one of them found the work done');
  const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.weft_migrations`);
  assert.equal(rows[0].n, all.length);
});

// Migration 0007 moved the status checks from table CHECKs to domains: the same values must
// still be the only ones a row can hold, on both backends.
for (const backend of BACKENDS) {
  void test(`${backend}: status, mode, budget and artifact source refuse values outside their domain`, async (t) => {
    const ctx = await testEngine(backend, t, { worker: false });
    if (!ctx) return;
    const { db, engine } = ctx;
    const runId = await launch(engine, { name: 'one', steps: { a: { type: 'transform', expr: '1' } } });
    const refused = async (sql: string): Promise<string | undefined> => {
      try {
        await db.query(sql, [runId]);
        return undefined;
      } catch (error) {
        return sqlState(error);
      }
    };
    assert.equal(await refused(`UPDATE runs SET status = 'done' WHERE id = $1`), '23514');
    assert.equal(await refused(`UPDATE runs SET mode = 'manual' WHERE id = $1`), '23514');
    assert.equal(await refused(`UPDATE runs SET budget_usd = -1 WHERE id = $1`), '23514');
    assert.equal(await refused(`UPDATE step_runs SET status = 'later' WHERE run_id = $1`), '23514');
    assert.equal(await refused(
      `INSERT INTO artifacts (run_id, step_id, version, content, is_latest, produced_by) VALUES ($1, 'a', 9, '1', false, 'robot')`,
    ), '23514');
    // The values the engine writes still pass.
    assert.equal(await refused(`UPDATE runs SET status = 'paused', mode = 'step', budget_usd = 0 WHERE id = $1`), undefined);
    assert.equal(await refused(`UPDATE step_runs SET status = 'skipped' WHERE run_id = $1`), undefined);
  });
}
