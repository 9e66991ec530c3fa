/**
 * Where the CPU goes during a measurement: the worker processes, this process, and the
 * PostgreSQL backends serving this database — read from /proc (Linux), so that a figure on a
 * 2-core machine can say which side ran out of CPU. Elsewhere the readings are 0.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { Db } from '../src/store/db.ts';

/** Linux reports process times in clock ticks; 100 per second on every mainstream kernel build. */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used, or 0 when it is gone or /proc is absent. */
function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

function machineBusySeconds(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    busy += all - times.idle;
    total += all;
  }
  return { busy: busy / 1000, total: total / 1000 };
}

export interface CpuSnapshot {
  workers: number;
  self: number;
  backends: Map<number, number>;
  machine: { busy: number; total: number };
}

/** The client backends connected to the database `db` points at (the bench's and its workers'). */
async function backendPids(db: Db): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`);
  return rows.map((r) => r.pid);
}

export async function cpuSnapshot(db: Db, workerPids: readonly number[]): Promise<CpuSnapshot> {
  const usage = process.cpuUsage();
  return {
    workers: workerPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0),
    self: (usage.user + usage.system) / 1e6,
    backends: new Map((await backendPids(db)).map((pid) => [pid, processCpuSeconds(pid)])),
    machine: machineBusySeconds(),
  };
}

export interface CpuUse {
  /** CPU seconds over the interval. */
  workers: number;
  self: number;
  postgres: number;
  /** Share of all cores busy over the interval, whoever used them (other sessions included). */
  machineBusy: number;
  /**
   * CPU seconds used by every other process: PostgreSQL's own background processes (WAL writer,
   * checkpointer) and whatever else ran meanwhile — a large figure means the run was disturbed.
   */
  others: number;
}

/**
 * The difference between two snapshots. A backend that appeared in between counts from zero;
 * one that ended in between is lost (the pools keep their connections during a round).
 */
export async function cpuSince(before: CpuSnapshot, db: Db, workerPids: readonly number[]): Promise<CpuUse> {
  const after = await cpuSnapshot(db, workerPids);
  let postgres = 0;
  for (const [pid, seconds] of after.backends) postgres += seconds - (before.backends.get(pid) ?? 0);
  const total = after.machine.total - before.machine.total;
  const busy = after.machine.busy - before.machine.busy;
  const workers = after.workers - before.workers;
  const self = after.self - before.self;
  return {
    workers, self, postgres,
    machineBusy: total > 0 ? busy / total : Number.NaN,
    others: Math.max(0, busy - workers - self - postgres),
  };
}
