/**
 * `npm run bench`: weft's engine on PGlite and on PostgreSQL, beside the floor — a bare
 * claim+complete transaction on the same database. Prints the machine, each workload and
 * medians. A benchmark, not a test: nothing here asserts a time.
 *
 * Workloads:
 *   (a) one run of 3 sequential no-op steps, 100 samples after warm-up: median, p95, per step
 *   (b) a chain of 40 steps each computing fibo(10) in process: total time (median of 5)
 *   (c) 200 concurrent 3-step runs: runs/s (median of 3)
 *   (d) a fan-out of 100 parallel steps into one join: total time (median of 5)
 *
 * Environment: WEFT_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres; "off" to
 * skip PostgreSQL), WEFT_BENCH_SAMPLES (default 100).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../src/engine/engine.ts';
import type { Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPg } from '../src/store/pg-db.ts';
import { openPglite } from '../src/store/pglite-db.ts';

const PG_URL = process.env['WEFT_BENCH_PG'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SAMPLES = Number(process.env['WEFT_BENCH_SAMPLES'] ?? 100);

const noop = { type: 'transform', expr: '1' };
const threeSteps = { name: 'bench 3 sequential', steps: { a: noop, b: { ...noop, needs: ['a'] }, c: { ...noop, needs: ['b'] } } };
const FIB = '($fib := function($n) { $n < 2 ? $n : $fib($n - 1) + $fib($n - 2) }; $fib(10))';
const chain40 = {
  name: 'bench chain 40 fibo(10)',
  steps: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`s${i}`, { type: 'transform', expr: FIB, ...(i > 0 ? { needs: [`s${i - 1}`] } : {}) }])),
};
const fanOut = {
  name: 'bench fan-out 100',
  steps: {
    root: noop,
    ...Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`p${i}`, { ...noop, needs: ['root'] }])),
    join: { ...noop, needs: Array.from({ length: 100 }, (_, i) => `p${i}`) },
  },
};

interface Figures {
  floorTxPerSec: number;
  seq3MedianMs: number;
  seq3P95Ms: number;
  chain40Ms: number;
  concurrentRunsPerSec: number;
  fanOutMs: number;
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

async function timeRun(engine: Engine, versionId: string): Promise<number> {
  const t0 = performance.now();
  const runId = await engine.startRun({ versionId });
  const status = await engine.waitForRun(runId, 120_000);
  const ms = performance.now() - t0;
  if (status !== 'succeeded') throw new Error(`bench run ${runId} ended ${status}`);
  return ms;
}

/** The floor: one transaction that claims a queued row with SKIP LOCKED and completes it. */
async function floor(db: Db, n: number): Promise<number> {
  await db.exec(`DROP TABLE IF EXISTS bench_floor; CREATE TABLE bench_floor (id serial PRIMARY KEY, status text NOT NULL, result jsonb);
    CREATE INDEX bench_floor_q ON bench_floor (id) WHERE status = 'queued';`);
  await db.query(`INSERT INTO bench_floor (status) SELECT 'queued' FROM generate_series(1, $1)`, [n]);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: number }>(
        `UPDATE bench_floor SET status = 'running' WHERE id = (SELECT id FROM bench_floor WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id`);
      await tx.query(`UPDATE bench_floor SET status = 'done', result = '{"ok":true}' WHERE id = $1`, [rows[0]!.id]);
    });
  }
  const perSec = n / ((performance.now() - t0) / 1000);
  await db.exec('DROP TABLE bench_floor');
  return perSec;
}

async function benchDatabase(db: Db, concurrency: number): Promise<Figures> {
  await migrate(db);
  const floorTxPerSec = await floor(db, 1000);
  const engine = new Engine({ db, worker: { concurrency, pollMs: 1000, heartbeatMs: 10_000, leaseMs: 30_000, sweepMs: 10_000 } });
  await engine.start();
  try {
    const seq = await engine.registerWorkflow(threeSteps);
    for (let i = 0; i < 20; i++) await timeRun(engine, seq.versionId);
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) samples.push(await timeRun(engine, seq.versionId));
    samples.sort((a, b) => a - b);

    const chain = await engine.registerWorkflow(chain40);
    await timeRun(engine, chain.versionId);
    const chainMs: number[] = [];
    for (let i = 0; i < 5; i++) chainMs.push(await timeRun(engine, chain.versionId));

    const rates: number[] = [];
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const ids = await Promise.all(Array.from({ length: 200 }, () => engine.startRun({ versionId: seq.versionId })));
      const statuses = await Promise.all(ids.map((id) => engine.waitForRun(id, 300_000)));
      if (statuses.some((s) => s !== 'succeeded')) throw new Error('a concurrent bench run did not succeed');
      rates.push(200 / ((performance.now() - t0) / 1000));
    }

    const fan = await engine.registerWorkflow(fanOut);
    await timeRun(engine, fan.versionId);
    const fanMs: number[] = [];
    for (let i = 0; i < 5; i++) fanMs.push(await timeRun(engine, fan.versionId));

    return {
      floorTxPerSec,
      seq3MedianMs: quantile(samples, 0.5),
      seq3P95Ms: quantile(samples, 0.95),
      chain40Ms: median(chainMs),
      concurrentRunsPerSec: median(rates),
      fanOutMs: median(fanMs),
    };
  } finally {
    await engine.stop();
  }
}

function print(label: string, f: Figures): void {
  const floorMs = 1000 / f.floorTxPerSec;
  const rows: [string, string][] = [
    ['floor: bare claim+complete tx', `${f.floorTxPerSec.toFixed(0)} tx/s (${floorMs.toFixed(3)} ms each)`],
    ['(a) 3 sequential no-op steps', `median ${f.seq3MedianMs.toFixed(2)} ms, p95 ${f.seq3P95Ms.toFixed(2)} ms, ${(f.seq3MedianMs / 3).toFixed(2)} ms/step (${(f.seq3MedianMs / 3 / floorMs).toFixed(1)}× floor)`],
    ['(b) chain of 40 × fibo(10)', `${f.chain40Ms.toFixed(1)} ms total, ${(f.chain40Ms / 40).toFixed(2)} ms/step`],
    ['(c) 200 concurrent 3-step runs', `${f.concurrentRunsPerSec.toFixed(0)} runs/s (${(f.concurrentRunsPerSec * 3).toFixed(0)} steps/s)`],
    ['(d) fan-out 100 → join', `${f.fanOutMs.toFixed(1)} ms total`],
  ];
  console.log(`\n## ${label}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(32)} ${v}`);
}

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`weft bench — ${new Date().toISOString()}`);
  console.log(`machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}`);
  console.log(`samples: ${SAMPLES} for (a) after 20 warm-up runs; medians of 5 for (b) and (d), of 3 for (c)`);

  const dir = await mkdtemp(join(tmpdir(), 'weft-bench-'));
  try {
    const pgl = await openPglite(join(dir, 'pgdata'));
    try {
      print(`PGlite 0.5 (data folder ${dir})`, await benchDatabase(pgl, 8));
    } finally {
      await pgl.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  if (PG_URL !== 'off') {
    const admin = await openPg({ connectionString: PG_URL, max: 1 });
    let version = 'PostgreSQL';
    try {
      const { rows } = await admin.query<{ server_version: string }>('SHOW server_version');
      version = `PostgreSQL ${rows[0]?.server_version ?? '?'}`;
      await admin.exec('DROP SCHEMA IF EXISTS weft_bench CASCADE; CREATE SCHEMA weft_bench');
    } catch (error) {
      console.log(`\n## PostgreSQL: skipped — cannot reach ${PG_URL}: ${(error as Error).message}`);
      await admin.close();
      return;
    }
    await admin.close();
    const db = await openPg({ connectionString: PG_URL, schema: 'weft_bench', max: 20 });
    try {
      print(`${version} (${db.description})`, await benchDatabase(db, 16));
    } finally {
      await db.close();
      const cleanup = await openPg({ connectionString: PG_URL, max: 1 });
      await cleanup.exec('DROP SCHEMA IF EXISTS weft_bench CASCADE');
      await cleanup.close();
    }
  }
}

await main();
