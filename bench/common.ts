/**
 * Helpers shared by the benchmarks (`bench/scale-out.ts`, `bench/peers/run.ts`): quantiles,
 * the machine line, PostgreSQL URLs and free ports. Nothing here measures anything.
 */
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import pg from 'pg';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** The q-quantile of an ascending array (nearest rank, as bench/run.ts does). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function sortedCopy(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** The median; of an even count, the mean of the two middle values (two rounds → their mean). */
export function median(xs: readonly number[]): number {
  const s = sortedCopy(xs);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** "min–max" of a list of figures, for the spread between rounds. */
export function spread(xs: readonly number[], digits = 0): string {
  const s = sortedCopy(xs);
  return s.length < 2 ? 'one round' : `${fmt(s[0]!, digits)}–${fmt(s[s.length - 1]!, digits)}`;
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Idle and total CPU time since boot, summed over cores (os.cpus() times, in ms). */
function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

/**
 * Share of the machine that was idle over `ms`: the machine is shared (other people's test
 * runs, PostgreSQL), and a figure measured on a busy machine must say so.
 */
export async function idleShare(ms = 1000): Promise<number> {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  return b.total === a.total ? Number.NaN : (b.idle - a.idle) / (b.total - a.total);
}

/** What a figure is measured on: cores, memory, Node, the database server and how busy it was. */
export async function machineLine(extra = ''): Promise<string> {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  const idle = await idleShare();
  return `machine: ${cpus().length} × ${model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}` +
    `${extra ? `, ${extra}` : ''}\nbefore the run: load average ${load}, CPU ${(idle * 100).toFixed(0)} % idle over 1 s`;
}

export async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return `PostgreSQL ${rows[0]?.server_version ?? '?'}`;
  } finally {
    await client.end();
  }
}

/** Runs statements on their own short-lived connection (schema and database DDL). */
export async function adminExec(url: string, ...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * The same URL with `search_path` set through libpq's `options` parameter: how a separate
 * process (`weft worker --db URL`) is put into a schema, since the CLI takes only a URL.
 */
export function urlWithSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  // URLSearchParams encodes spaces as '+', which libpq-style parsers do not decode.
  return u.toString().replace(/\+/g, '%20');
}

/** The same URL pointing at another database on the same server. */
export function urlWithDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';
}
