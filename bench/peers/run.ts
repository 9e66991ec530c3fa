/**
 * `npm run bench:peers`: weft beside DBOS Transact and Restate on the same two workloads, on
 * this machine, against the same local PostgreSQL where the system uses one. Prints each
 * figure and its ratio to weft. A benchmark, not a test: nothing here asserts a time.
 *
 * Workloads (the same as bench/run.ts's (a) and (c)):
 *   (i)  latency of one workflow of 3 sequential trivial steps: 20 warm-up runs, then
 *        WEFT_BENCH_SAMPLES (100) runs one after another: median and p95
 *   (ii) 200 workflows of 3 steps started at once: runs/s, median of 3 rounds after 1 warm-up round
 *
 * A system that cannot be installed or started here is reported with the reason, and the
 * others go on; no figure is ever filled in for it.
 *
 * Its dependencies live in bench/peers/package.json and are installed only by this script
 * (`npm run bench:peers`), never by the root `npm ci`.
 *
 * Environment: WEFT_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres),
 * WEFT_BENCH_SAMPLES (100), WEFT_BENCH_PEERS (comma-separated subset: weft,dbos,restate).
 */
import { DEFAULT_PG_URL, fmt, machineLine, median, postgresVersion, quantile, sortedCopy } from '../common.ts';
import type { PeerSystem } from './systems.ts';

// The Restate SDK reads its log level once, when it is loaded; at its default (INFO) it prints
// a line per invocation, which would cost the benchmark time. Hence the import after this.
process.env['RESTATE_LOGGING'] ??= 'WARN';
const { DbosSystem, RestateSystem, WeftSystem } = await import('./systems.ts');

const PG_URL = process.env['WEFT_BENCH_PG'] ?? DEFAULT_PG_URL;
const SAMPLES = Number(process.env['WEFT_BENCH_SAMPLES'] ?? 100);
const WARM_UP = 20;
const CONCURRENT = 200;
const CONCURRENT_ROUNDS = 3;
const SELECTED = new Set((process.env['WEFT_BENCH_PEERS'] ?? 'weft,dbos,restate').split(','));

interface Figures {
  medianMs: number;
  p95Ms: number;
  runsPerSec: number;
  /** Each round of (ii), to show the spread. */
  rounds: number[];
}

type Outcome = { system: PeerSystem; figures: Figures } | { system: PeerSystem; error: string };

async function timeOne(system: PeerSystem): Promise<number> {
  const t0 = performance.now();
  await system.runOnce();
  return performance.now() - t0;
}

async function latency(system: PeerSystem): Promise<{ medianMs: number; p95Ms: number }> {
  for (let i = 0; i < WARM_UP; i++) await system.runOnce();
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) samples.push(await timeOne(system));
  const sorted = sortedCopy(samples);
  return { medianMs: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95) };
}

async function concurrentRound(system: PeerSystem): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENT }, () => system.runOnce()));
  return CONCURRENT / ((performance.now() - t0) / 1000);
}

/**
 * One unrecorded round first: the first burst of 200 opens every pooled connection (and, for
 * weft, prepares its statements on each), which (i) never does: it measured 15–60 % slower.
 */
async function concurrentRounds(system: PeerSystem): Promise<number[]> {
  await concurrentRound(system);
  const rates: number[] = [];
  for (let round = 0; round < CONCURRENT_ROUNDS; round++) rates.push(await concurrentRound(system));
  return rates;
}

/** Runs both workloads on one system; any failure becomes its recorded reason. */
async function benchSystem(system: PeerSystem): Promise<Outcome> {
  try {
    await system.setup();
    const { medianMs, p95Ms } = await latency(system);
    const rounds = await concurrentRounds(system);
    return { system, figures: { medianMs, p95Ms, runsPerSec: median(rounds), rounds } };
  } catch (error) {
    return { system, error: (error as Error).message.split('\n').slice(0, 6).join('\n    ') };
  } finally {
    await system.teardown().catch((error: unknown) => console.log(`  (teardown of ${system.name} failed: ${(error as Error).message})`));
  }
}

function ratio(value: number, weft: number | undefined): string {
  return weft === undefined ? '' : ` (${(value / weft).toFixed(2)}× weft)`;
}

function printTable(outcomes: readonly Outcome[]): void {
  const weft = outcomes.find((o): o is Extract<Outcome, { figures: Figures }> => o.system.name === 'weft' && 'figures' in o)?.figures;
  console.log(`\n## Results — (i) one run of 3 sequential trivial steps, ${SAMPLES} samples after ${WARM_UP} warm-up; (ii) ${CONCURRENT} concurrent 3-step runs, median of ${CONCURRENT_ROUNDS} after a warm-up round`);
  console.log('| system | (i) median | (i) p95 | (ii) runs/s | (ii) rounds |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const o of outcomes) {
    if ('error' in o) {
      console.log(`| ${o.system.name} | not measured | | | |`);
      continue;
    }
    const f = o.figures;
    console.log(`| ${o.system.name} | ${fmt(f.medianMs, 2)} ms${ratio(f.medianMs, weft?.medianMs)} | ${fmt(f.p95Ms, 2)} ms${ratio(f.p95Ms, weft?.p95Ms)} | ` +
      `${fmt(f.runsPerSec)}${ratio(f.runsPerSec, weft?.runsPerSec)} | ${f.rounds.map((r) => fmt(r)).join(', ')} |`);
  }
  console.log('(ratios: for latency lower is better, for runs/s higher is better)');
  for (const o of outcomes) {
    console.log(`  ${o.system.name}: ${'error' in o ? `NOT MEASURED — ${o.error}` : o.system.description}`);
  }
}

async function main(): Promise<void> {
  console.log(`weft peers bench — ${new Date().toISOString()}`);
  console.log(await machineLine(`${await postgresVersion(PG_URL)} on the same machine (fsync on)`));
  console.log('note: 2 cores shared by PostgreSQL, this process (engine/SDK and client) and, for Restate, restate-server.');
  const systems: PeerSystem[] = [new WeftSystem(PG_URL), new DbosSystem(PG_URL), new RestateSystem()]
    .filter((s) => SELECTED.has(s.name.split(' ')[0]!.toLowerCase()));
  const outcomes: Outcome[] = [];
  for (const system of systems) {
    console.log(`\n## ${system.name}`);
    const outcome = await benchSystem(system);
    console.log('error' in outcome
      ? `  not measured: ${outcome.error}`
      : `  (i) median ${fmt(outcome.figures.medianMs, 2)} ms, p95 ${fmt(outcome.figures.p95Ms, 2)} ms; (ii) ${fmt(outcome.figures.runsPerSec)} runs/s (rounds ${outcome.figures.rounds.map((r) => fmt(r)).join(', ')})`);
    outcomes.push(outcome);
  }
  printTable(outcomes);
}

await main();
