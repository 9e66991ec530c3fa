/**
 * Model-based property test of the queue. Random sequences of commands — start runs of small
 * random DAGs, claim, heartbeat, complete/fail (the fenced `advance` requests Worker.finish
 * builds, for leases the worker believes it holds, possibly stale), crash, move the clock, stall
 * a worker past its leases, sweep (at once, or scan now and apply later as a slow sweeper does),
 * pause/resume/cancel, and an impostor that knows the current attempt but is not its owner —
 * run against the REAL store functions and `advance` on PGlite, beside an in-memory model that
 * predicts every step's status, attempt, lease owner, lease expiry and availability, which
 * successor a completing worker claims, and which writes must be refused. Time is a manual
 * clock passed as `now`/`at`; nothing sleeps.
 *
 * After every command the database is read back and checked against the model and against
 * invariants that do not depend on it (one lease per running step, attempts bounded, one
 * artifact per succeeded step, events append-only and matching the artifacts, terminal runs
 * frozen, a refused write changes nothing). When the sequence ends, the system is driven to
 * quiescence (tick past leases and backoffs, resume, sweep, claim with a fresh worker, complete
 * everything): every run and every step must end terminal.
 *
 * The sanity tests at the end run the same property against deliberately broken copies of
 * the fences (the SQL of the real store functions with one condition removed, rewritten on
 * the way to the database) and require the property to fail on one of its checks.
 *
 * WEFT_QUEUE_MODEL_RUNS=n changes the number of sequences of the main property (default 100).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import type { TriggerRule } from '../src/core/definition-schema.ts';
import { WeftError, type ErrorRecord } from '../src/core/errors.ts';
import { LEASE_LOSS_ALLOWANCE } from '../src/core/scheduler.ts';
import { TERMINAL_RUN, TERMINAL_STEP, type RunStatus, type StepStatus } from '../src/core/scheduler-types.ts';
import { advance, type AdvanceDeps, type AdvanceRequest, type AdvanceResult } from '../src/engine/advance.ts';
import { Engine } from '../src/engine/engine.ts';
import { VersionCache } from '../src/engine/version-cache.ts';
import { transactionWithRetry, type Db, type Queryable, type QueryResult } from '../src/store/db.ts';
import {
  claimQueued, completeAttempt, expireLease, findExpiredLeases, heartbeat, releaseAttempt, type ClaimedStep,
} from '../src/store/step-runs.ts';
import { closeTemplates, openTestDb } from './helpers/db.ts';

after(closeTemplates);

const LEASE_MS = 1000;
const START = Date.parse('2030-01-01T00:00:00Z');
/** The scheduler's jitter draw, fixed so that the model can predict every backoff. */
const RANDOM = 0.5;
/** Longer than any lease and any backoff these workflows can produce (default policy: 900, 1800 ms). */
const QUIESCE_TICK = 4000;
const MAX_RUNS = 4;
/** w1..w3 take random commands; the fourth worker only drains the queue at the end. */
const WORKER_NAMES = ['w1', 'w2', 'w3', 'drain'] as const;
const DRAIN = 3;

// ---------------------------------------------------------------------------------------
// Workflows: 1–4 transform steps, each needing a subset of the earlier ones (chains, fans,
// diamonds, several roots), with a trigger rule, an optional retry policy and on_error.

interface StepSpec {
  needs: number[];
  trigger: TriggerRule;
  retry: { max: number; backoff: 'exponential' | 'fixed' } | null;
  onError: 'fail' | 'continue';
}
type WorkflowSpec = StepSpec[];

const sid = (i: number): string => `s${i}`;

function stepSpecArb(i: number): fc.Arbitrary<StepSpec> {
  return fc.record({
    needs: i === 0 ? fc.constant([]) : fc.subarray(Array.from({ length: i }, (_, k) => k)),
    trigger: fc.constantFrom<TriggerRule>('all_success', 'all_success', 'all_done', 'one_success'),
    retry: fc.option(fc.record({ max: fc.integer({ min: 0, max: 2 }), backoff: fc.constantFrom<'exponential' | 'fixed'>('exponential', 'fixed') }), { nil: null }),
    onError: fc.constantFrom<'fail' | 'continue'>('fail', 'fail', 'continue'),
  });
}

const workflowArb: fc.Arbitrary<WorkflowSpec> = fc
  .integer({ min: 1, max: 4 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => stepSpecArb(i))));

/** A step reads every step it needs ($s0…), so a claim must hand it their committed outputs. */
function definitionOf(spec: WorkflowSpec): unknown {
  const steps: Record<string, unknown> = {};
  spec.forEach((s, i) => {
    const needs = s.needs.map(sid);
    steps[sid(i)] = {
      type: 'transform',
      expr: needs.length > 0 ? `[${needs.map((n) => `$${n}`).join(', ')}]` : '1',
      ...(needs.length > 0 ? { needs } : {}),
      ...(s.trigger !== 'all_success' ? { trigger: s.trigger } : {}),
      ...(s.retry ? { retry: { max: s.retry.max, backoff: s.retry.backoff, base_ms: 100, max_ms: 300, jitter: 0 } } : {}),
      ...(s.onError === 'continue' ? { on_error: 'continue' } : {}),
    };
  });
  return { name: 'queue-model', steps };
}

// ---------------------------------------------------------------------------------------
// The model

interface Backoff {
  kind: 'exponential' | 'fixed';
  baseMs: number;
  maxMs: number;
  jitter: number;
}

interface MStep {
  readonly id: string;
  readonly needs: readonly string[];
  readonly trigger: TriggerRule;
  readonly maxAttempts: number;
  readonly backoff: Backoff;
  readonly onError: 'fail' | 'continue';
  status: StepStatus;
  attempt: number;
  owner: string | null;
  expires: number | null;
  /** Compared while queued. */
  availableAt: number | null;
  /** What the succeeding attempt wrote (undefined until then). */
  output: unknown;
}

interface MRun {
  readonly id: string;
  readonly versionId: string;
  readonly order: readonly string[];
  readonly steps: Map<string, MStep>;
  status: RunStatus;
  /** The run's clock (runs.updated_at): an advance records its writes at the later of its time and this. */
  clock: number;
}

/** The time an accepted advance of `run` at `at` records its writes at (LockedRun.at); moves the run's clock. */
function runTime(run: MRun, at: number): number {
  run.clock = Math.max(run.clock, at);
  return run.clock;
}

interface Lease {
  runId: string;
  stepId: string;
  attempt: number;
}

interface MWorker {
  readonly name: string;
  /** A worker's id changes when it restarts after a crash (the real ids are random per process). */
  id: string;
  incarnation: number;
  /** The attempts it believes it holds; possibly stale. */
  leases: Lease[];
}

interface Model {
  now: number;
  runs: MRun[];
  workers: MWorker[];
  /** A sweeper that has scanned for expired leases but not applied them yet. */
  pendingSweep: { now: number; leases: Lease[] } | undefined;
}

function newModel(): Model {
  return {
    now: START,
    runs: [],
    workers: WORKER_NAMES.map((name) => ({ name, id: `${name}#1`, incarnation: 1, leases: [] })),
    pendingSweep: undefined,
  };
}

function mStep(run: MRun, stepId: string): MStep {
  const s = run.steps.get(stepId);
  if (!s) throw new Error(`model: no step ${stepId} in run ${run.id}`);
  return s;
}

function mRun(m: Model, runId: string): MRun {
  const r = m.runs.find((x) => x.id === runId);
  if (!r) throw new Error(`model: no run ${runId}`);
  return r;
}

/** computeBackoff, written out again with the same arithmetic (the jitter draw is RANDOM). */
function backoffMs(b: Backoff, failedAttempt: number): number {
  const n = Math.max(1, Math.floor(failedAttempt));
  const raw = b.kind === 'fixed' ? b.baseMs : b.baseMs * 2 ** (n - 1);
  const d = Math.min(raw, b.maxMs);
  if (b.jitter === 0 || d === 0) return d;
  return Math.min(d, Math.ceil(d * (1 - b.jitter) + RANDOM * d * b.jitter));
}

function release(s: MStep): void {
  s.owner = null;
  s.expires = null;
}

function verdict(run: MRun, s: MStep): 'wait' | 'queue' | 'skip' {
  if (s.needs.length === 0) return 'queue';
  let ok = 0;
  for (const n of s.needs) {
    const up = mStep(run, n);
    if (!TERMINAL_STEP.has(up.status)) return 'wait';
    if (up.status === 'succeeded') ok++;
  }
  if (s.trigger === 'all_done') return 'queue';
  if (s.trigger === 'one_success') return ok > 0 ? 'queue' : 'skip';
  return ok === s.needs.length ? 'queue' : 'skip';
}

/** Decides pending steps in topological order, then completion; returns the steps queued. */
function settle(run: MRun, at: number): string[] {
  const queued: string[] = [];
  for (const id of run.order) {
    const s = mStep(run, id);
    if (s.status !== 'pending') continue;
    const v = s.attempt > 0 ? 'queue' : verdict(run, s);
    if (v === 'wait') continue;
    if (v === 'skip') {
      s.status = 'skipped';
    } else if (run.status !== 'paused') {
      s.status = 'queued';
      s.availableAt = at;
      queued.push(id);
    }
  }
  if (!TERMINAL_RUN.has(run.status) && [...run.steps.values()].every((s) => TERMINAL_STEP.has(s.status))) {
    run.status = [...run.steps.values()].some((s) => s.status === 'failed' && s.onError === 'fail') ? 'failed' : 'succeeded';
  }
  return queued;
}

function cancelAll(run: MRun): void {
  for (const s of run.steps.values()) {
    if (TERMINAL_STEP.has(s.status)) continue;
    s.status = 'cancelled';
    release(s);
  }
}

function onFailure(run: MRun, s: MStep, at: number, retryable: boolean, leaseLost: boolean): string[] {
  release(s);
  const limit = s.maxAttempts + (leaseLost ? LEASE_LOSS_ALLOWANCE : 0);
  if (retryable && s.attempt < limit) {
    if (run.status === 'paused') {
      s.status = 'pending';
      s.availableAt = null;
    } else {
      s.status = 'queued';
      s.availableAt = at + backoffMs(s.backoff, s.attempt);
    }
    return [];
  }
  s.status = 'failed';
  if (s.onError === 'fail') {
    cancelAll(run);
    run.status = 'failed';
    return [];
  }
  return settle(run, at);
}

function claimStep(s: MStep, w: MWorker, leaseUntil: number): void {
  s.status = 'running';
  s.attempt++;
  s.owner = w.id;
  s.expires = leaseUntil;
}

/** The outputs a claim of `s` must carry: the committed outputs of the steps it reads. */
function expectedDeps(run: MRun, s: MStep): Record<string, unknown> {
  const deps: Record<string, unknown> = {};
  for (const n of s.needs) {
    const up = mStep(run, n);
    if (up.status === 'succeeded') deps[n] = up.output;
  }
  return deps;
}

// ---------------------------------------------------------------------------------------
// The system under test

/** A fence broken on purpose: `from` is replaced by `to` in the SQL of one store function. */
interface Mutation {
  target: 'complete' | 'release' | 'expire' | 'heartbeat' | 'claim';
  from: string;
  to: string;
  hits: number;
}

interface Sim {
  db: Db;
  engine: Engine;
  deps: AdvanceDeps;
  clock: { ms: number };
  mutation: Mutation | undefined;
  /** The database as the previous command left it. */
  last: Snapshot;
  /** Terminal runs: their rows, as first seen terminal. */
  frozen: Map<string, string>;
  /** What the sequences exercised, by command and outcome (reported, so a weak generator shows). */
  stats: Map<string, number>;
  /** Set while driving to quiescence, so that the stats show what the random commands did. */
  draining: boolean;
}

function count(sim: Sim, what: string, evenWhileDraining = false): void {
  if (sim.draining && !evenWhileDraining) return;
  sim.stats.set(what, (sim.stats.get(what) ?? 0) + 1);
}

/** The queryable a store function gets: the real one, or one that rewrites its SQL (sanity tests). */
function via(sim: Sim, target: Mutation['target'], q: Queryable): Queryable {
  const mutation = sim.mutation;
  if (!mutation || mutation.target !== target) return q;
  return {
    query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      if (!text.includes(mutation.from)) throw new Error(`mutation does not apply any more: "${mutation.from}" is not in the SQL`);
      mutation.hits++;
      return q.query<R>(text.replace(mutation.from, mutation.to), params);
    },
  };
}

interface Snapshot {
  runs: Record<string, unknown>[];
  steps: Record<string, unknown>[];
  artifacts: Record<string, unknown>[];
  events: Record<string, unknown>[];
}

function plain(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Date ? v.getTime() : v])));
}

async function snapshot(db: Db): Promise<Snapshot> {
  const runs = await db.query<Record<string, unknown>>(
    `SELECT id, status, outputs, error, finished_at, updated_at, tokens_in::float8 AS tokens_in, cost_usd::float8 AS cost_usd
     FROM runs ORDER BY id`);
  const steps = await db.query<Record<string, unknown>>(
    `SELECT run_id, step_id, status, attempt, lease_owner, lease_expires_at, available_at, error, skip_reason, started_at, finished_at
     FROM step_runs ORDER BY run_id, step_id`);
  const artifacts = await db.query<Record<string, unknown>>(
    `SELECT run_id, step_id, name, version, content, is_latest, produced_by, attempt FROM artifacts ORDER BY run_id, step_id, name, version`);
  const events = await db.query<Record<string, unknown>>(
    `SELECT id::float8 AS id, run_id, step_id, type, attempt, data, created_at FROM run_events ORDER BY id`);
  return { runs: plain(runs.rows), steps: plain(steps.rows), artifacts: plain(artifacts.rows), events: plain(events.rows) };
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Every check that follows a command. `refused`: the command must have changed nothing. */
async function verify(m: Model, sim: Sim, label: string, refused = false): Promise<void> {
  count(sim, `${label.split(/[(→ ]/)[0]!}${refused ? ' (refused)' : ''}`);
  const snap = await snapshot(sim.db);
  const prev = sim.last;
  sim.last = snap;
  if (refused) assert.deepEqual(snap, prev, `${label}: the write was refused, yet the database changed`);

  // The run event log is append-only.
  assert.ok(snap.events.length >= prev.events.length, `${label}: events disappeared`);
  prev.events.forEach((e, i) => assert.deepEqual(snap.events[i], e, `${label}: event ${String(e['id'])} was rewritten or removed`));

  // Runs and steps are what the model predicts.
  assert.deepEqual(
    snap.runs.map((r) => `${String(r['id'])}:${String(r['status'])}`).sort(),
    m.runs.map((r) => `${r.id}:${r.status}`).sort(),
    `${label}: run statuses`,
  );
  const rows = new Map(snap.steps.map((r) => [`${String(r['run_id'])}/${String(r['step_id'])}`, r]));
  assert.equal(rows.size, m.runs.reduce((n, r) => n + r.steps.size, 0), `${label}: step rows`);

  const perStep = new Map<string, { started: number[]; succeeded: number[]; attemptFailed: number; expired: number; retries: string[] }>();
  for (const e of snap.events) {
    if (e['step_id'] === null) continue;
    const key = `${String(e['run_id'])}/${String(e['step_id'])}`;
    let c = perStep.get(key);
    if (!c) perStep.set(key, (c = { started: [], succeeded: [], attemptFailed: 0, expired: 0, retries: [] }));
    const attempt = Number(e['attempt']);
    switch (e['type']) {
      case 'step_started': c.started.push(attempt); break;
      case 'step_succeeded': c.succeeded.push(attempt); break;
      case 'step_attempt_failed': c.attemptFailed++; break;
      case 'lease_expired': c.expired++; break;
      case 'step_retry_scheduled': c.retries.push(String((e['data'] as { error?: { code?: string } }).error?.code)); break;
      default: break;
    }
  }
  const artifacts = new Map<string, Record<string, unknown>[]>();
  for (const a of snap.artifacts) {
    const key = `${String(a['run_id'])}/${String(a['step_id'])}`;
    artifacts.set(key, [...(artifacts.get(key) ?? []), a]);
  }

  for (const run of m.runs) {
    for (const s of run.steps.values()) {
      const key = `${run.id}/${s.id}`;
      const where = `${label}: ${key} (model ${s.status} attempt ${s.attempt})`;
      const row = rows.get(key);
      assert.ok(row, `${where}: no row`);
      const actual = {
        status: row['status'], attempt: row['attempt'], owner: row['lease_owner'], expires: num(row['lease_expires_at']),
        ...(s.status === 'queued' ? { availableAt: num(row['available_at']) } : {}),
      };
      const expected = {
        status: s.status, attempt: s.attempt, owner: s.owner, expires: s.expires,
        ...(s.status === 'queued' ? { availableAt: s.availableAt } : {}),
      };
      // One lease per running step (one owner, one expiry), and only running steps hold one.
      if (row['status'] === 'running') assert.ok(row['lease_owner'] !== null && row['lease_expires_at'] !== null, `${where}: a running step without a lease`);
      else assert.ok(row['lease_owner'] === null && row['lease_expires_at'] === null, `${where}: a ${String(row['status'])} step still holds a lease`);
      assert.deepEqual(actual, expected, `${where}: step row differs from the model`);

      // Attempts: bounded by the policy plus the lease-loss allowance; beyond failures + 1 only
      // where a lease expired; one step_started per attempt, one retry per attempt after the first.
      const c = perStep.get(key) ?? { started: [], succeeded: [], attemptFailed: 0, expired: 0, retries: [] };
      const attempt = Number(row['attempt']);
      assert.ok(attempt <= s.maxAttempts + LEASE_LOSS_ALLOWANCE, `${where}: attempt ${attempt} > retry.max + 1 + ${LEASE_LOSS_ALLOWANCE}`);
      assert.ok(attempt <= 1 + c.attemptFailed + c.expired, `${where}: attempts exceed failures + lease expiries + 1`);
      assert.deepEqual([...c.started].sort((a, b) => a - b), Array.from({ length: attempt }, (_, i) => i + 1), `${where}: step_started events`);
      assert.ok(c.retries.length === attempt || c.retries.length === attempt - 1, `${where}: ${c.retries.length} retries scheduled`);
      assert.ok(c.retries.filter((code) => code !== 'WEFT_LEASE_LOST').length <= s.maxAttempts - 1, `${where}: more failure retries than retry.max`);

      // Exactly one committed output per succeeded step, from the attempt that succeeded; none
      // for any other step; each step_succeeded event matches one.
      const arts = artifacts.get(key) ?? [];
      if (s.status === 'succeeded') {
        assert.equal(arts.length, 1, `${where}: output artifacts`);
        const a = arts[0]!;
        assert.equal(a['name'], 'output');
        assert.equal(a['is_latest'], true);
        assert.equal(a['attempt'], s.attempt, `${where}: artifact from another attempt`);
        assert.deepEqual(a['content'], s.output, `${where}: artifact content is not what the holder wrote`);
      } else {
        assert.equal(arts.length, 0, `${where}: artifact for a step that did not succeed`);
      }
      assert.deepEqual(c.succeeded, arts.map((a) => a['attempt']), `${where}: step_succeeded events vs artifacts`);
    }
  }
  assert.equal(snap.artifacts.length, m.runs.reduce((n, r) => n + [...r.steps.values()].filter((s) => s.status === 'succeeded').length, 0), `${label}: stray artifacts`);

  // One run_created per run, and one terminal run event once it is terminal (of its status).
  for (const run of m.runs) {
    const types = snap.events.filter((e) => e['run_id'] === run.id && e['step_id'] === null).map((e) => String(e['type']));
    assert.deepEqual(types.filter((x) => x === 'run_created'), ['run_created'], `${label}: run_created of ${run.id}`);
    const ends = types.filter((x) => x === 'run_succeeded' || x === 'run_failed' || x === 'run_cancelled');
    assert.deepEqual(ends, TERMINAL_RUN.has(run.status) ? [`run_${run.status}`] : [], `${label}: terminal events of ${run.id}`);
  }

  // Terminal runs never change again (rows, steps, artifacts, events).
  for (const run of m.runs) {
    if (!TERMINAL_RUN.has(run.status)) continue;
    const mine = (r: Record<string, unknown>) => r['run_id'] === run.id;
    const frozen = JSON.stringify([snap.runs.filter((r) => r['id'] === run.id), snap.steps.filter(mine), snap.artifacts.filter(mine), snap.events.filter(mine)]);
    const before = sim.frozen.get(run.id);
    if (before === undefined) sim.frozen.set(run.id, frozen);
    else assert.equal(frozen, before, `${label}: run ${run.id} changed after it became ${run.status}`);
  }

  // Of all the workers that believe they hold an attempt of one step, at most one can complete it.
  const live = new Map<string, string[]>();
  for (const w of m.workers) {
    for (const l of w.leases) {
      const row = rows.get(`${l.runId}/${l.stepId}`);
      if (row && row['status'] === 'running' && row['attempt'] === l.attempt && row['lease_owner'] === w.id) {
        live.set(`${l.runId}/${l.stepId}`, [...(live.get(`${l.runId}/${l.stepId}`) ?? []), w.id]);
      }
    }
  }
  for (const [key, holders] of live) assert.equal(holders.length, 1, `${label}: ${key} can be completed by ${holders.join(', ')}`);
}

async function attemptAdvance(sim: Sim, req: AdvanceRequest): Promise<{ result?: AdvanceResult; error?: unknown }> {
  try {
    return { result: await transactionWithRetry(sim.db, (tx) => advance(tx, sim.deps, req)) };
  } catch (error) {
    return { error };
  }
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof WeftError && error.code === code;
}

type Outcome = 'succeed' | 'fail' | 'fail_final';

/** The request Worker.finish builds for an attempt's outcome. */
function finishRequest(sim: Sim, lease: Lease, workerId: string, outcome: Outcome, at: Date, claim: boolean): AdvanceRequest {
  const { runId, stepId, attempt } = lease;
  const fence = { runId, stepId, attempt, workerId };
  const durationMs = 1;
  const claimFor = claim ? { claimFor: { workerId, leaseUntil: new Date(at.getTime() + LEASE_MS) } } : {};
  if (outcome === 'succeed') {
    const output = outputOf(lease, workerId);
    return {
      runId, at,
      event: { type: 'step_succeeded', stepId, branch: null },
      fence: (tx) => completeAttempt(via(sim, 'complete', tx), { ...fence, output, branch: null, at, durationMs, usage: undefined }),
      events: [{ stepId, type: 'step_succeeded', attempt, data: { duration_ms: durationMs } }],
      ...claimFor,
    };
  }
  const error: ErrorRecord = { code: 'WEFT_STEP_FAILED', message: `boom (${workerId})`, retryable: outcome === 'fail' };
  return {
    runId, at,
    event: { type: 'step_failed', stepId, error },
    fence: (tx) => releaseAttempt(via(sim, 'release', tx), { ...fence, error, at, durationMs }),
    events: [{ stepId, type: 'step_attempt_failed', attempt, data: { duration_ms: durationMs, error } }],
    ...claimFor,
  };
}

function outputOf(lease: Lease, workerId: string): unknown {
  return { by: workerId, step: lease.stepId, attempt: lease.attempt };
}

/** The state a claim must report, checked against the model's step before it is claimed. */
function checkClaim(label: string, run: MRun, s: MStep, c: ClaimedStep): void {
  assert.equal(c.attempt, s.attempt + 1, `${label}: claimed attempt`);
  assert.equal(c.versionId, run.versionId);
  assert.deepEqual(c.inputs, {});
  assert.deepEqual(c.deps, expectedDeps(run, s), `${label}: a claim of ${s.id} carries the wrong upstream outputs`);
}

// ---------------------------------------------------------------------------------------
// Commands

type Cmd = fc.AsyncCommand<Model, Sim>;

class Enqueue implements Cmd {
  constructor(readonly spec: WorkflowSpec) {}
  check(m: Readonly<Model>): boolean {
    return m.runs.length < MAX_RUNS;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    sim.clock.ms = m.now;
    const v = await sim.engine.registerWorkflow(definitionOf(this.spec));
    sim.deps.versions.put(v.versionId, v.compiled);
    const runId = await sim.engine.startRun({ versionId: v.versionId });
    const steps = new Map<string, MStep>();
    this.spec.forEach((s, i) => {
      const id = sid(i);
      steps.set(id, {
        id, needs: s.needs.map(sid), trigger: s.trigger, onError: s.onError,
        maxAttempts: (s.retry?.max ?? 0) + 1,
        backoff: s.retry ? { kind: s.retry.backoff, baseMs: 100, maxMs: 300, jitter: 0 } : { kind: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 0.2 },
        status: 'pending', attempt: 0, owner: null, expires: null, availableAt: null, output: undefined,
      });
    });
    const run: MRun = { id: runId, versionId: v.versionId, order: v.compiled.order, steps, status: 'running', clock: m.now };
    m.runs.push(run);
    settle(run, m.now);
    await verify(m, sim, this.toString());
  }
  toString(): string {
    return `enqueue(${JSON.stringify(this.spec)})`;
  }
}

class Claim implements Cmd {
  /** `exact`: `w` is the worker's index; otherwise an index into a pool that favours busy workers. */
  constructor(readonly w: number, readonly limit: number, readonly exact = false) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    // Busy workers claim more: the pool lists the workers that hold something, then all three.
    const pool = [...m.workers.slice(0, DRAIN).filter((x) => x.leases.length > 0), ...m.workers.slice(0, DRAIN)];
    const worker = this.exact ? m.workers[this.w]! : pool[this.w % pool.length]!;
    const label = `${this.toString()} as ${worker.id}`;
    const now = m.now;
    const leaseUntil = now + LEASE_MS;
    const claimed = await claimQueued(via(sim, 'claim', sim.db), { workerId: worker.id, now: new Date(now), leaseUntil: new Date(leaseUntil), limit: this.limit });
    const eligible = m.runs.flatMap((run) => (run.status !== 'running' ? [] : [...run.steps.values()]
      .filter((s) => s.status === 'queued' && s.availableAt !== null && s.availableAt <= now)
      .map((s) => ({ run, s }))));
    assert.equal(claimed.length, Math.min(this.limit, eligible.length), `${label}: claimed ${claimed.length} of ${eligible.length} claimable`);
    const taken = new Set<string>();
    for (const c of claimed) {
      const e = eligible.find((x) => x.run.id === c.runId && x.s.id === c.stepId);
      assert.ok(e, `${label}: claimed ${c.runId}/${c.stepId}, which is not claimable`);
      assert.ok(!taken.has(`${c.runId}/${c.stepId}`), `${label}: claimed twice`);
      taken.add(`${c.runId}/${c.stepId}`);
    }
    // Oldest first: nothing left behind was available earlier than something taken.
    const latestTaken = Math.max(...eligible.filter((e) => taken.has(`${e.run.id}/${e.s.id}`)).map((e) => e.s.availableAt!));
    for (const e of eligible) {
      if (!taken.has(`${e.run.id}/${e.s.id}`)) assert.ok(e.s.availableAt! >= latestTaken, `${label}: skipped an older queued step`);
    }
    for (const c of claimed) {
      const run = mRun(m, c.runId);
      const s = mStep(run, c.stepId);
      checkClaim(label, run, s, c);
      claimStep(s, worker, leaseUntil);
      if (worker.leases.some((l) => l.runId === c.runId && l.stepId === c.stepId)) count(sim, 'a worker re-claimed a step it still believes it runs');
      worker.leases.push({ runId: c.runId, stepId: c.stepId, attempt: c.attempt });
    }
    await verify(m, sim, label);
  }
  toString(): string {
    return `claim(${this.exact ? WORKER_NAMES[this.w] : `worker ${this.w}`}, ${this.limit})`;
  }
}

/** The `w`-th of the workers that hold something (so that few generated commands are wasted). */
function holder(m: Readonly<Model>, w: number): MWorker | undefined {
  const holders = m.workers.slice(0, DRAIN).filter((x) => x.leases.length > 0);
  return holders[w % Math.max(1, holders.length)];
}

/** The heartbeat timers of some workers fire (`mask`: bit i for w(i+1)); each renews what it believes it holds. */
class Heartbeat implements Cmd {
  constructor(readonly mask: number, readonly dropLost: boolean) {}
  private beating(m: Readonly<Model>): MWorker[] {
    return m.workers.slice(0, DRAIN).filter((w, i) => (this.mask & (1 << i)) !== 0 && w.leases.length > 0);
  }
  check(m: Readonly<Model>): boolean {
    return this.beating(m).length > 0;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    for (const worker of this.beating(m)) {
      const label = `${this.toString()} as ${worker.id}`;
      const leaseUntil = m.now + LEASE_MS;
      const held = await heartbeat(via(sim, 'heartbeat', sim.db), { workerId: worker.id, leases: worker.leases, leaseUntil: new Date(leaseUntil) });
      const expected = worker.leases.filter((l) => {
        const s = mStep(mRun(m, l.runId), l.stepId);
        return s.status === 'running' && s.attempt === l.attempt && s.owner === worker.id;
      });
      const keyOf = (l: Lease) => `${l.runId}/${l.stepId}#${l.attempt}`;
      assert.deepEqual(held.map(keyOf).sort(), expected.map(keyOf).sort(), `${label}: leases still held`);
      for (const h of held) {
        const run = mRun(m, h.runId);
        assert.equal(h.runStatus, run.status, `${label}: run status`);
        mStep(run, h.stepId).expires = leaseUntil;
      }
      // The worker aborts the attempts it lost — or their results are already on their way (dropLost false).
      if (this.dropLost) worker.leases = worker.leases.filter((l) => held.some((h) => keyOf(h) === keyOf(l)));
      await verify(m, sim, label, held.length === 0);
    }
  }
  toString(): string {
    const names = WORKER_NAMES.slice(0, DRAIN).filter((_, i) => (this.mask & (1 << i)) !== 0);
    return `heartbeat(${names.join(' ')}${this.dropLost ? ', drop lost' : ''})`;
  }
}

/** An attempt ends: the worker records its outcome with the fenced advance, for a lease it believes it holds. */
class Finish implements Cmd {
  /** `exact`: `w` is the worker's index, not an index among the holders. */
  constructor(readonly w: number, readonly pick: number, readonly outcome: Outcome, readonly stopping = false, readonly exact = false) {}
  private worker(m: Readonly<Model>): MWorker | undefined {
    return this.exact ? m.workers[this.w] : holder(m, this.w);
  }
  check(m: Readonly<Model>): boolean {
    return (this.worker(m)?.leases.length ?? 0) > 0;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    const worker = this.worker(m)!;
    const index = this.pick % worker.leases.length;
    const lease = worker.leases[index]!;
    worker.leases.splice(index, 1); // the attempt is over for this worker, whatever the answer
    const label = `${this.toString()} → ${lease.runId.slice(0, 8)}/${lease.stepId}#${lease.attempt} by ${worker.id}`;
    const run = mRun(m, lease.runId);
    const s = mStep(run, lease.stepId);
    const accepted = s.status === 'running' && s.attempt === lease.attempt && s.owner === worker.id;
    const at = m.now;
    const { result, error } = await attemptAdvance(sim, finishRequest(sim, lease, worker.id, this.outcome, new Date(at), !this.stopping));
    if (!accepted && s.owner === worker.id) count(sim, 'a stale attempt reported by the current owner', true);
    if (!accepted) {
      assert.ok(isCode(error, 'WEFT_LEASE_LOST'), `${label}: a stale ${this.outcome} was not refused (${error === undefined ? 'accepted' : String(error)})`);
      await verify(m, sim, label, true);
      return;
    }
    if (error !== undefined) throw error;
    const wasTerminal = TERMINAL_RUN.has(run.status);
    const recorded = runTime(run, at);
    let queued: string[];
    if (this.outcome === 'succeed') {
      s.status = 'succeeded';
      s.output = outputOf(lease, worker.id);
      release(s);
      queued = settle(run, recorded);
    } else {
      queued = onFailure(run, s, recorded, this.outcome === 'fail', false);
    }
    const next = this.stopping ? undefined : queued[0];
    assert.equal(result?.claimed?.stepId, next, `${label}: successor claimed by the completing worker`);
    if (next !== undefined && result?.claimed) {
      const ns = mStep(run, next);
      checkClaim(label, run, ns, result.claimed);
      claimStep(ns, worker, at + LEASE_MS);
      ns.availableAt = recorded;
      worker.leases.push({ runId: run.id, stepId: next, attempt: result.claimed.attempt });
    }
    assert.equal(result?.status, run.status, `${label}: run status`);
    assert.equal(result?.finished, !wasTerminal && TERMINAL_RUN.has(run.status), `${label}: finished`);
    await verify(m, sim, label);
  }
  toString(): string {
    return `${this.outcome}(${this.exact ? WORKER_NAMES[this.w] : `holder ${this.w}`}, lease ${this.pick}${this.stopping ? ', stopping' : ''})`;
  }
}

/** A worker that knows a running step's current attempt but does not hold it: refused, always. */
class Impostor implements Cmd {
  constructor(readonly w: number, readonly pick: number, readonly action: 'complete' | 'fail' | 'heartbeat') {}
  private running(m: Readonly<Model>): { run: MRun; s: MStep }[] {
    return m.runs.flatMap((run) => [...run.steps.values()].filter((s) => s.status === 'running').map((s) => ({ run, s })));
  }
  check(m: Readonly<Model>): boolean {
    return this.running(m).length > 0;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    const all = this.running(m);
    const { run, s } = all[this.pick % all.length]!;
    let impostor = m.workers[this.w]!;
    if (impostor.id === s.owner) impostor = m.workers[(this.w + 1) % 3]!;
    const lease = { runId: run.id, stepId: s.id, attempt: s.attempt };
    const label = `${this.toString()} → ${run.id.slice(0, 8)}/${s.id}#${s.attempt} (held by ${String(s.owner)}) as ${impostor.id}`;
    if (this.action === 'heartbeat') {
      const held = await heartbeat(via(sim, 'heartbeat', sim.db), { workerId: impostor.id, leases: [lease], leaseUntil: new Date(m.now + LEASE_MS) });
      assert.deepEqual(held, [], `${label}: renewed a lease it does not hold`);
    } else {
      const { error } = await attemptAdvance(sim, finishRequest(sim, lease, impostor.id, this.action === 'complete' ? 'succeed' : 'fail', new Date(m.now), true));
      assert.ok(isCode(error, 'WEFT_LEASE_LOST'), `${label}: right attempt, wrong owner, not refused (${error === undefined ? 'accepted' : String(error)})`);
    }
    await verify(m, sim, label, true);
  }
  toString(): string {
    return `impostor-${this.action}(${WORKER_NAMES[this.w]}, step ${this.pick})`;
  }
}

class Crash implements Cmd {
  constructor(readonly w: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model): Promise<void> {
    const worker = m.workers[this.w]!;
    worker.incarnation++;
    worker.id = `${worker.name}#${worker.incarnation}`;
    worker.leases = [];
    return Promise.resolve();
  }
  toString(): string {
    return `crash(${WORKER_NAMES[this.w]})`;
  }
}

class Tick implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model): Promise<void> {
    m.now += this.ms;
    return Promise.resolve();
  }
  toString(): string {
    return `tick(${this.ms})`;
  }
}

/** Finds the expired leases as Worker.sweep does; `validate` compares them with the model. */
async function scanExpired(m: Model, sim: Sim, now: number, label: string): Promise<Lease[]> {
  const found = await findExpiredLeases(sim.db, new Date(now), 100);
  const expected = m.runs.flatMap((run) => [...run.steps.values()]
    .filter((s) => s.status === 'running' && s.expires !== null && s.expires < now)
    .map((s) => ({ runId: run.id, stepId: s.id, attempt: s.attempt, expires: s.expires! })));
  const keyOf = (l: Lease) => `${l.runId}/${l.stepId}#${l.attempt}`;
  assert.deepEqual(found.map(keyOf).sort(), expected.map(keyOf).sort(), `${label}: expired leases`);
  const expiries = found.map((l) => expected.find((e) => keyOf(e) === keyOf(l))!.expires);
  expiries.forEach((e, i) => assert.ok(i === 0 || expiries[i - 1]! <= e, `${label}: not in expiry order`));
  return found;
}

/** Applies a sweep's list as Worker.sweep does: one fenced lease_expired advance per lease. */
async function applySweep(m: Model, sim: Sim, now: number, leases: Lease[], label: string): Promise<void> {
  for (const lease of leases) {
    const run = mRun(m, lease.runId);
    const s = mStep(run, lease.stepId);
    const accepted = s.status === 'running' && s.attempt === lease.attempt && s.expires !== null && s.expires < now;
    if (s.status === 'running' && s.attempt === lease.attempt && !accepted) count(sim, 'a late heartbeat beat the sweeper');
    const at = new Date(now);
    const { result, error } = await attemptAdvance(sim, {
      runId: lease.runId, at,
      event: { type: 'lease_expired', stepId: lease.stepId },
      fence: (tx) => expireLease(via(sim, 'expire', tx), { ...lease, now: at }),
      events: [{ stepId: lease.stepId, type: 'lease_expired', attempt: lease.attempt, data: {} }],
    });
    const what = `${label} → ${lease.runId.slice(0, 8)}/${lease.stepId}#${lease.attempt}`;
    if (!accepted) {
      assert.ok(isCode(error, 'WEFT_LEASE_LOST'), `${what}: expiring a lease that is no longer expired (or no longer this attempt's) was not refused (${error === undefined ? 'accepted' : String(error)})`);
      await verify(m, sim, what, true);
      continue;
    }
    if (error !== undefined) throw error;
    const wasTerminal = TERMINAL_RUN.has(run.status);
    onFailure(run, s, runTime(run, now), true, true);
    assert.equal(result?.claimed, undefined, `${what}: the sweeper claimed`);
    assert.equal(result?.status, run.status, `${what}: run status`);
    assert.equal(result?.finished, !wasTerminal && TERMINAL_RUN.has(run.status), `${what}: finished`);
    await verify(m, sim, what);
  }
}

class Sweep implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    const now = m.now;
    await applySweep(m, sim, now, await scanExpired(m, sim, now, 'sweep'), 'sweep');
  }
  toString(): string {
    return 'sweep';
  }
}

/**
 * A worker stalls (a GC pause, a partition) past its leases: the others' sweeper expires them;
 * when it wakes, after the retry backoffs, its claim loop may run before it notices anything —
 * so it can end up holding a new attempt of a step whose old attempt it still believes it runs.
 */
class Stall implements Cmd {
  constructor(readonly w: number, readonly reclaim: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    m.now += LEASE_MS + 1;
    await applySweep(m, sim, m.now, await scanExpired(m, sim, m.now, 'stall'), 'stall');
    m.now += 2000; // past every backoff these workflows use after one or two failures
    if (this.reclaim) await step(m, sim, new Claim(this.w, 3, true));
  }
  toString(): string {
    return `stall(${WORKER_NAMES[this.w]}${this.reclaim ? ', then it claims' : ''})`;
  }
}

/** A slow sweeper scans now (`late`: once the current leases have expired) and applies later. */
class SweepScan implements Cmd {
  constructor(readonly late: boolean) {}
  check(m: Readonly<Model>): boolean {
    return m.pendingSweep === undefined;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    if (this.late) m.now += LEASE_MS + 1;
    m.pendingSweep = { now: m.now, leases: await scanExpired(m, sim, m.now, 'sweep-scan') };
  }
  toString(): string {
    return `sweep-scan${this.late ? ' (late)' : ''}`;
  }
}

/** The slow sweeper applies what it scanned; `heartbeats` (a worker mask) fired while it was slow. */
class SweepApply implements Cmd {
  constructor(readonly heartbeats = 0) {}
  check(m: Readonly<Model>): boolean {
    return m.pendingSweep !== undefined;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    const pending = m.pendingSweep!;
    m.pendingSweep = undefined;
    if (this.heartbeats !== 0) await step(m, sim, new Heartbeat(this.heartbeats, false));
    await applySweep(m, sim, pending.now, pending.leases, 'sweep-apply');
  }
  toString(): string {
    return `sweep-apply${this.heartbeats !== 0 ? ` after ${new Heartbeat(this.heartbeats, false).toString()}` : ''}`;
  }
}

/** Scan, some heartbeats, apply — back to back (the separate commands interleave anything else). */
class SlowSweep implements Cmd {
  constructor(readonly late: boolean, readonly heartbeats: number) {}
  check(m: Readonly<Model>): boolean {
    return m.pendingSweep === undefined;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    await step(m, sim, new SweepScan(this.late));
    await step(m, sim, new SweepApply(this.heartbeats));
  }
  toString(): string {
    return `slow-sweep(${new SweepScan(this.late).toString()}, ${new SweepApply(this.heartbeats).toString()})`;
  }
}

class Control implements Cmd {
  constructor(readonly pick: number, readonly action: 'pause' | 'resume' | 'cancel') {}
  check(m: Readonly<Model>): boolean {
    return m.runs.length > 0;
  }
  async run(m: Model, sim: Sim): Promise<void> {
    const run = m.runs[this.pick % m.runs.length]!;
    const label = `${this.toString()} → ${run.id.slice(0, 8)} (${run.status})`;
    sim.clock.ms = m.now;
    const allowed = this.action === 'resume' ? run.status === 'paused' : this.action === 'pause' ? ['running', 'queued', 'waiting'].includes(run.status) : !TERMINAL_RUN.has(run.status);
    let status: RunStatus | undefined;
    let error: unknown;
    try {
      status = await (this.action === 'pause' ? sim.engine.pauseRun(run.id) : this.action === 'resume' ? sim.engine.resumeRun(run.id) : sim.engine.cancelRun(run.id));
    } catch (e) {
      error = e;
    }
    if (!allowed) {
      assert.ok(isCode(error, 'WEFT_CONFLICT'), `${label}: not refused (${String(error ?? status)})`);
      await verify(m, sim, label, true);
      return;
    }
    if (error !== undefined) throw error;
    const recorded = runTime(run, m.now);
    if (this.action === 'pause') {
      run.status = 'paused';
    } else if (this.action === 'resume') {
      run.status = 'running';
      settle(run, recorded);
    } else {
      cancelAll(run);
      run.status = 'cancelled';
    }
    assert.equal(status, run.status, `${label}: status`);
    await verify(m, sim, label);
  }
  toString(): string {
    return `${this.action}(run ${this.pick})`;
  }
}

const workerArb = fc.integer({ min: 0, max: 2 });
const finishArb = fc.record({
  w: workerArb,
  pick: fc.nat({ max: 7 }),
  outcome: fc.constantFrom<Outcome>('succeed', 'succeed', 'succeed', 'fail', 'fail_final'),
  stopping: fc.nat({ max: 5 }).map((n) => n === 0),
}).map(({ w, pick, outcome, stopping }) => new Finish(w, pick, outcome, stopping));

/** Weighted so that leases often go stale: stalls, late sweeps and re-claims by the same worker. */
const commandArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: workflowArb.map((spec) => new Enqueue(spec)) },
  { weight: 4, arbitrary: fc.record({ w: fc.nat({ max: 5 }), limit: fc.integer({ min: 1, max: 3 }) }).map(({ w, limit }) => new Claim(w, limit)) },
  { weight: 4, arbitrary: finishArb },
  { weight: 3, arbitrary: fc.record({ mask: fc.integer({ min: 1, max: 7 }), dropLost: fc.boolean() }).map(({ mask, dropLost }) => new Heartbeat(mask, dropLost)) },
  {
    weight: 1,
    arbitrary: fc.record({ w: workerArb, pick: fc.nat({ max: 7 }), action: fc.constantFrom<'complete' | 'fail' | 'heartbeat'>('complete', 'fail', 'heartbeat') })
      .map(({ w, pick, action }) => new Impostor(w, pick, action)),
  },
  { weight: 1, arbitrary: workerArb.map((w) => new Crash(w)) },
  { weight: 4, arbitrary: fc.constantFrom(1, 300, LEASE_MS + 1, 2500).map((ms) => new Tick(ms)) },
  { weight: 2, arbitrary: fc.constant(null).map(() => new Sweep()) },
  { weight: 2, arbitrary: fc.record({ w: workerArb, reclaim: fc.boolean() }).map(({ w, reclaim }) => new Stall(w, reclaim)) },
  { weight: 2, arbitrary: fc.boolean().map((late) => new SweepScan(late)) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }).map((mask) => new SweepApply(mask)) },
  { weight: 1, arbitrary: fc.record({ late: fc.boolean(), mask: fc.integer({ min: 0, max: 7 }) }).map(({ late, mask }) => new SlowSweep(late, mask)) },
  {
    weight: 1,
    arbitrary: fc.record({ pick: fc.nat({ max: 3 }), action: fc.constantFrom<'pause' | 'resume' | 'cancel'>('pause', 'resume', 'cancel') })
      .map(({ pick, action }) => new Control(pick, action)),
  },
);

const commandsArb = fc.commands([commandArb], { maxCommands: 50, size: 'max' });

// ---------------------------------------------------------------------------------------
// The property

async function step(m: Model, sim: Sim, cmd: Cmd): Promise<void> {
  if (cmd.check(m)) await cmd.run(m, sim);
}

/** Tick past every lease and backoff, resume, sweep, claim with a fresh worker, complete everything; repeat. */
async function quiesce(m: Model, sim: Sim): Promise<void> {
  if (m.pendingSweep) await step(m, sim, new SweepApply());
  // The workers report every attempt they still believe they hold (stale ones must be refused).
  for (let w = 0; w < DRAIN; w++) {
    while (m.workers[w]!.leases.length > 0) await step(m, sim, new Finish(w, 0, 'succeed', false, true));
  }
  for (let round = 0; m.runs.some((r) => !TERMINAL_RUN.has(r.status)); round++) {
    assert.ok(round < 20, `not quiescent after 20 rounds (a lost step?): ${describeModel(m)}`);
    for (const [i, run] of m.runs.entries()) if (run.status === 'paused') await step(m, sim, new Control(i, 'resume'));
    await step(m, sim, new Tick(QUIESCE_TICK));
    await step(m, sim, new Sweep());
    await step(m, sim, new Crash(DRAIN)); // a fresh drain worker each round
    await step(m, sim, new Claim(DRAIN, 100, true));
    while (m.workers[DRAIN]!.leases.length > 0) await step(m, sim, new Finish(DRAIN, 0, 'succeed', false, true));
  }
  const { rows } = await sim.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM step_runs WHERE status NOT IN ('succeeded', 'failed', 'skipped', 'cancelled')`);
  assert.equal(rows[0]!.n, 0, 'every step ends terminal');
  const runs = await sim.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')`);
  assert.equal(runs.rows[0]!.n, 0, 'every run ends terminal');
}

function describeModel(m: Model): string {
  return JSON.stringify(m.runs.map((r) => ({ run: r.id.slice(0, 8), status: r.status, steps: [...r.steps.values()].map((s) => `${s.id}:${s.status}#${s.attempt}`) })));
}

async function openSim(t: Parameters<typeof openTestDb>[1]): Promise<Sim> {
  const db = await openTestDb('pglite', t);
  assert.ok(db, 'PGlite always opens');
  t.after(() => db.close());
  const clock = { ms: START };
  const engine = new Engine({ db, worker: false, clock: { now: () => clock.ms }, random: () => RANDOM });
  return {
    db, engine, clock, mutation: undefined, frozen: new Map(), stats: new Map(), draining: false,
    deps: { versions: new VersionCache(), random: () => RANDOM },
    last: { runs: [], steps: [], artifacts: [], events: [] },
  };
}

/** One property iteration: fresh runs on the same database (the tables are emptied first). */
function queueProperty(sim: Sim): fc.IAsyncPropertyWithHooks<[Iterable<Cmd>]> {
  return fc.asyncProperty(commandsArb, async (cmds) => {
    await sim.db.query('DELETE FROM artifacts');
    await sim.db.query('DELETE FROM run_events');
    await sim.db.query('DELETE FROM step_runs');
    await sim.db.query('DELETE FROM runs');
    sim.frozen.clear();
    sim.last = await snapshot(sim.db);
    const model = newModel();
    sim.clock.ms = model.now;
    await fc.asyncModelRun(() => ({ model, real: sim }), cmds);
    sim.draining = true;
    try {
      await quiesce(model, sim);
    } finally {
      sim.draining = false;
    }
    for (const run of model.runs) count(sim, `run ${run.status}`);
  });
}

const NUM_RUNS = Number(process.env['WEFT_QUEUE_MODEL_RUNS'] ?? 100);

void test('queue model: random claims, heartbeats, completions, crashes, sweeps and controls keep every invariant', async (t) => {
  const sim = await openSim(t);
  const started = Date.now();
  await fc.assert(queueProperty(sim), { numRuns: NUM_RUNS, includeErrorInReport: true });
  t.diagnostic(`${NUM_RUNS} sequences in ${Date.now() - started} ms`);
  t.diagnostic([...sim.stats].sort().map(([k, v]) => `${k}: ${v}`).join(', '));
});

// ---------------------------------------------------------------------------------------
// The test can fail: the same property against copies of the fences with one condition removed.

/** weft_claim_queued as migration 0012 creates it, renamed, without its check of the run's status. */
async function brokenClaimFunction(): Promise<string> {
  const sql = await readFile(new URL('../src/store/migrations/0012_claim_in_index_order.sql', import.meta.url), 'utf8');
  const check = `AND (SELECT r.status FROM runs r WHERE r.id = q.run_id) = 'running'`;
  assert.ok(sql.includes(check) && sql.includes('CREATE FUNCTION weft_claim_queued('), 'the mutant no longer applies to migration 0012');
  return sql.replace('CREATE FUNCTION weft_claim_queued(', 'CREATE FUNCTION weft_claim_queued_mutant(').replace(check, '');
}

const MUTANTS: (Omit<Mutation, 'hits'> & { name: string; setup?: () => Promise<string> })[] = [
  { name: 'completeAttempt ignores the lease owner', target: 'complete', from: 'AND lease_owner = $4', to: 'AND $4::text IS NOT NULL' },
  { name: 'completeAttempt ignores the attempt', target: 'complete', from: 'AND attempt = $3', to: 'AND $3::int IS NOT NULL' },
  { name: 'releaseAttempt ignores the lease owner', target: 'release', from: 'AND lease_owner = $4', to: 'AND $4::text IS NOT NULL' },
  { name: 'expireLease does not re-check the expiry (a late heartbeat loses)', target: 'expire', from: 'AND lease_expires_at < $4', to: 'AND $4::timestamptz IS NOT NULL' },
  { name: 'heartbeat ignores the lease owner', target: 'heartbeat', from: 'AND s.lease_owner = $1', to: 'AND $1::text IS NOT NULL' },
  // The claim's conditions live in weft_claim_queued (migration 0012): the mutant calls a broken copy of it.
  { name: 'claimQueued ignores the run status', target: 'claim', from: 'weft_claim_queued(', to: 'weft_claim_queued_mutant(', setup: brokenClaimFunction },
  { name: 'expireLease leaves the lease owner on the requeued step', target: 'expire', from: 'SET lease_owner = NULL, lease_expires_at = NULL,', to: 'SET lease_expires_at = NULL,' },
];

for (const mutant of MUTANTS) {
  void test(`sanity: the property catches a broken fence — ${mutant.name}`, async (t) => {
    const sim = await openSim(t);
    if (mutant.setup) await sim.db.query(await mutant.setup());
    sim.mutation = { ...mutant, hits: 0 };
    const details = await fc.check(queueProperty(sim), { numRuns: 200, endOnFailure: true });
    assert.ok(sim.mutation.hits > 0, 'the broken SQL was never executed');
    assert.ok(details.failed, `the property did not notice (${details.numRuns} sequences)`);
    // Caught by a check of the test, not by a crash of the broken SQL.
    assert.ok(details.errorInstance instanceof assert.AssertionError, `failed for another reason: ${String(details.errorInstance)}`);
    t.diagnostic(`caught after ${details.numRuns} sequence(s): ${details.errorInstance.message.split('\n')[0]}`);
  });
}

