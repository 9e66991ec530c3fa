/**
 * Property tests for the pure scheduler: random DAGs driven to completion by a simulated
 * engine + workers (claims, random outcomes, pauses, cancels, stale events), checking every
 * decision and the final state against an independent oracle.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { attemptLimit, decide, familyAttempts, initialState, LEASE_LOSS_ALLOWANCE, planRetry } from '../src/core/scheduler.ts';
import type { EngineCommand } from '../src/core/scheduler.ts';
import type { CompiledStep, CompiledWorkflow, Need } from '../src/core/compiled.ts';
import type { StepDefinition, TriggerRule } from '../src/core/definition-schema.ts';
import type { ErrorRecord } from '../src/core/errors.ts';
import type { Random, RunMode, RunState, SchedulerEvent, StepState, StepStatus } from '../src/core/scheduler-types.ts';

const TERMINAL: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
const BRANCHES = ['good', 'bad'] as const;

// ---------------------------------------------------------------------------------------
// Random workflows

interface GenStep {
  needs: { pick: number; branch: number }[];
  trigger: TriggerRule;
  failFast: boolean;
  maxAttempts: number;
  condition: boolean;
}

const genStep: fc.Arbitrary<GenStep> = fc.record({
  needs: fc.array(fc.record({ pick: fc.nat(), branch: fc.nat({ max: 2 }) }), { maxLength: 4 }),
  trigger: fc.constantFrom<TriggerRule>('all_success', 'all_done', 'one_success'),
  // Mostly on_error continue, so that runs go on past failures.
  failFast: fc.nat({ max: 9 }).map((n) => n === 0),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  condition: fc.nat({ max: 4 }).map((n) => n === 0),
});

interface GenWorkflow {
  steps: GenStep[];
  /** false: every step is on_error continue, so large runs go all the way. */
  failFast: boolean;
}

const genWorkflow: fc.Arbitrary<GenWorkflow> = fc.record({
  steps: fc.oneof(
    fc.array(genStep, { minLength: 1, maxLength: 12 }),
    fc.array(genStep, { minLength: 1, maxLength: 200, size: 'max' }),
  ),
  failFast: fc.boolean(),
});

/** Step i needs only earlier steps, so the graph is a DAG; ids are zero-padded so id order = index order. */
function build(gen: GenStep[], failFast = true): CompiledWorkflow {
  const id = (i: number): string => `s${String(i).padStart(3, '0')}`;
  const needs: Need[][] = gen.map((g, i) => {
    if (i === 0) return [];
    const seen = new Set<string>();
    const out: Need[] = [];
    for (const n of g.needs) {
      const up = n.pick % i;
      const branch = gen[up]?.condition ? BRANCHES[n.branch] : undefined;
      const key = `${up}.${branch ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(branch === undefined ? { step: id(up) } : { step: id(up), branch });
    }
    return out;
  });
  const level: number[] = [];
  const dependents: string[][] = gen.map(() => []);
  const steps: Record<string, CompiledStep> = {};
  const defs: Record<string, StepDefinition> = {};
  gen.forEach((g, i) => {
    const mine = needs[i] ?? [];
    level[i] = Math.max(-1, ...mine.map((n) => level[Number(n.step.slice(1))] ?? 0)) + 1;
    for (const n of mine) {
      const list = dependents[Number(n.step.slice(1))];
      if (list && !list.includes(id(i))) list.push(id(i));
    }
  });
  gen.forEach((g, i) => {
    const definition = (g.condition ? { type: 'condition', cases: { good: 'true' } } : { type: 'transform', expr: '1' }) as StepDefinition;
    defs[id(i)] = definition;
    steps[id(i)] = {
      id: id(i),
      type: g.condition ? 'condition' : 'transform',
      definition,
      needs: needs[i] ?? [],
      dependents: dependents[i] ?? [],
      trigger: g.trigger,
      retry: { maxAttempts: g.maxAttempts, backoff: 'exponential', baseMs: 100, maxMs: 10_000, jitter: 0.5 },
      timeoutMs: undefined,
      onError: failFast && g.failFast ? 'fail' : 'continue',
      refs: [],
      level: level[i] ?? 0,
    };
  });
  const levels: string[][] = [];
  gen.forEach((_, i) => (levels[level[i] ?? 0] ??= []).push(id(i)));
  return {
    definition: { name: 'property', steps: defs },
    steps,
    order: levels.flat(),
    levels,
    roots: gen.map((_, i) => id(i)).filter((s) => steps[s]?.needs.length === 0),
    outputRefs: [],
  };
}

// ---------------------------------------------------------------------------------------
// Helpers

function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

function stepOf(state: RunState, id: string): StepState {
  const s = Object.hasOwn(state.steps, id) ? state.steps[id] : undefined;
  assert.ok(s, `no state for ${id}`);
  return s;
}

/** The documented command → state mapping, written independently of the scheduler. */
function applyCommands(state: RunState, event: SchedulerEvent, commands: EngineCommand[]): RunState {
  const steps: Record<string, StepState> = structuredClone(state.steps);
  let status = state.status;
  const live = status !== 'succeeded' && status !== 'failed' && status !== 'cancelled';
  if (live && event.type === 'step_succeeded' && Object.hasOwn(steps, event.stepId)) {
    const s = steps[event.stepId];
    if (s && (s.status === 'running' || (s.status === 'waiting' && state.mode !== 'step'))) {
      s.status = 'succeeded';
      if (event.branch !== undefined) s.branch = event.branch;
    }
  }
  for (const c of commands) {
    if (c.type === 'finish_run' || c.type === 'set_run_status') {
      status = c.status;
      continue;
    }
    const s = steps[c.stepId];
    assert.ok(s);
    s.status = {
      queue_step: 'queued', retry_step: 'queued', hold_step: 'pending', skip_step: 'skipped', fail_step: 'failed', cancel_step: 'cancelled',
      wait_step: 'waiting', restart_step: 'queued', reset_step: 'pending',
    }[c.type] as StepStatus;
    if (c.type === 'restart_step' || c.type === 'reset_step') s.attemptBase = s.attempt;
  }
  return state.mode === undefined ? { status, steps } : { status, steps, mode: state.mode };
}

type Verdict = 'run' | 'upstream' | 'branch';

/** Independent oracle: what a step's trigger rule says given its upstreams' final states. */
function oracle(wf: CompiledWorkflow, state: RunState, id: string): Verdict {
  const step = wf.steps[id];
  assert.ok(step);
  if (step.needs.length === 0) return 'run';
  const edges = step.needs.map((n) => {
    const up = stepOf(state, n.step);
    assert.ok(TERMINAL.has(up.status), `${id} decided while ${n.step} is ${up.status}`);
    if (up.status !== 'succeeded') return 'dead';
    if (n.branch !== undefined && up.branch !== n.branch) return 'mismatch';
    return 'ok';
  });
  const anyOk = edges.includes('ok');
  const allOk = edges.every((e) => e === 'ok');
  const reason: Verdict = edges.includes('dead') ? 'upstream' : 'branch';
  if (step.trigger === 'all_done') return 'run';
  if (step.trigger === 'one_success') return anyOk ? 'run' : reason;
  return allOk ? 'run' : reason;
}

// ---------------------------------------------------------------------------------------
// The simulation

const RETRYABLE: ErrorRecord = { code: 'E_FLAKY', message: 'flaky', retryable: true };
const FATAL: ErrorRecord = { code: 'E_BROKEN', message: 'broken', retryable: false };

interface Outcome {
  events: number;
  cancelled: boolean;
  /** Command kinds seen (`skip_step:branch`, `finish_run:failed`…), to check the generator's coverage. */
  seen: Set<string>;
}

interface SimOptions {
  /** Step mode: ready steps wait; a simulated human triggers them. */
  mode: RunMode;
  /** How many human retries of failed steps the simulation may request. */
  retries: number;
}

function simulate(wf: CompiledWorkflow, seed: number, opts: SimOptions = { mode: 'auto', retries: 0 }): Outcome {
  deepFreeze(wf);
  const rng = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[Math.floor(rng() * xs.length)];
    assert.ok(x !== undefined);
    return x;
  };
  const ids = wf.order;
  const concurrency = 1 + Math.floor(rng() * 4);
  const skipReason = new Map<string, string>();
  const failError = new Map<string, ErrorRecord>();
  let cancelled = false;
  let events = 0;
  const seen = new Set<string>();
  let state = initialState(wf, opts.mode);
  let retriesLeft = opts.retries;

  const send = (event: SchedulerEvent): void => {
    events++;
    const input = deepFreeze(state);
    const decisionSeed = Math.floor(rng() * 2 ** 32);
    const d = decide(wf, input, event, mulberry32(decisionSeed));
    // Determinism: the same inputs and the same random give the same decision.
    assert.deepEqual(decide(wf, input, event, mulberry32(decisionSeed)), d);
    // The state is the input with the commands applied.
    assert.deepEqual(d.state, applyCommands(input, event, d.commands));
    const targeted = new Set<string>();
    const reopened = new Set<string>();
    d.commands.forEach((c, i) => {
      const kind = c.type === 'skip_step' ? `${c.type}:${c.reason}` : c.type === 'finish_run' || c.type === 'set_run_status' ? `${c.type}:${c.status}` : c.type;
      seen.add(input.status === 'paused' ? `paused ${kind}` : kind);
      if (c.type === 'restart_step' || c.type === 'reset_step') {
        // Only a human retry re-opens finished steps: the retried one (failed) and what it re-opens.
        assert.equal(event.type, 'step_retry_requested');
        const before = stepOf(input, c.stepId);
        assert.equal(before.status, c.type === 'restart_step' ? 'failed' : c.from);
        assert.equal(c.attempt, before.attempt);
        if (c.type === 'restart_step') assert.equal(c.stepId, 'stepId' in event ? event.stepId : undefined);
        else assert.ok(c.from === 'cancelled' || familyAttempts(before) === 0, `reset of ${c.stepId}, a guard skip`);
        assert.ok(!targeted.has(c.stepId), `two commands for ${c.stepId}`);
        targeted.add(c.stepId);
        reopened.add(c.stepId);
        skipReason.delete(c.stepId);
        failError.delete(c.stepId);
        return;
      }
      if (c.type === 'finish_run') {
        assert.equal(i, d.commands.length - 1, 'finish_run is last');
        return;
      }
      if (c.type === 'set_run_status') {
        assert.equal(i, 0, 'set_run_status is first');
        return;
      }
      assert.ok(Object.hasOwn(wf.steps, c.stepId), `command for unknown step ${c.stepId}`);
      // No other command re-opens (or touches) a terminal step; one command per step (after a reset: one more).
      const wasReset = reopened.has(c.stepId);
      assert.ok(wasReset || !TERMINAL.has(stepOf(input, c.stepId).status), `${c.type} on terminal ${c.stepId}`);
      assert.ok(!targeted.has(c.stepId) || (wasReset && c.type !== 'fail_step'), `two commands for ${c.stepId}`);
      reopened.delete(c.stepId);
      targeted.add(c.stepId);
      if (c.type === 'queue_step' || c.type === 'retry_step') {
        assert.notEqual(d.state.status, 'paused', `${c.type} while paused`);
        for (const n of wf.steps[c.stepId]?.needs ?? []) assert.ok(TERMINAL.has(stepOf(d.state, n.step).status), `${c.stepId} queued before ${n.step} is terminal`);
      }
      if (c.type === 'queue_step' && input.mode === 'step') {
        // Step mode: only a trigger, or a held retry (already admitted), queues a step.
        const before = stepOf(input, c.stepId);
        assert.ok(
          (event.type === 'step_triggered' && before.status === 'waiting') || (before.status === 'pending' && familyAttempts(before) > 0),
          `${c.stepId} queued without a trigger`,
        );
      }
      if (c.type === 'wait_step') assert.equal(input.mode, 'step');
      if (c.type === 'retry_step' || c.type === 'hold_step') {
        const before = stepOf(input, c.stepId);
        assert.equal(c.attempt, before.attempt);
        assert.ok(familyAttempts(before) < attemptLimit(wf.steps[c.stepId]!.retry, c.error), `${c.type} ${c.stepId} past its attempts`);
        assert.ok(c.error.retryable);
      }
      if (c.type === 'retry_step') assert.ok(c.delayMs >= 0 && c.delayMs <= 10_000);
      if (c.type === 'hold_step') assert.equal(input.status, 'paused');
      if (c.type === 'skip_step') skipReason.set(c.stepId, c.reason);
      if (c.type === 'fail_step') {
        failError.set(c.stepId, c.error);
        // A fail-fast failure ends the run in the same decision.
        if (wf.steps[c.stepId]?.onError === 'fail') assert.equal(d.state.status, 'failed', `${c.stepId} failed but the run goes on`);
      }
    });
    // Terminal steps never change, but for what a retry re-opens.
    const reopenedNow = new Set(d.commands.flatMap((c) => (c.type === 'restart_step' || c.type === 'reset_step' ? [c.stepId] : [])));
    for (const id of ids) {
      const before = stepOf(input, id);
      if (TERMINAL.has(before.status) && !reopenedNow.has(id)) assert.deepEqual(stepOf(d.state, id), before);
    }
    // The run status rule: a live, unpaused run is waiting iff nothing is queued or running and something waits.
    if (d.state.status === 'running' || d.state.status === 'waiting') {
      const all = ids.map((id) => stepOf(d.state, id).status);
      const busy = all.some((x) => x === 'queued' || x === 'running');
      assert.equal(d.state.status, !busy && all.includes('waiting') ? 'waiting' : 'running', 'run status rule');
    }
    // Nothing is claimable or running before its needs are terminal.
    for (const id of ids) {
      const s = stepOf(d.state, id);
      if (s.status === 'queued' || s.status === 'running') {
        for (const n of wf.steps[id]?.needs ?? []) assert.ok(TERMINAL.has(stepOf(d.state, n.step).status), `${id} is ${s.status} while ${n.step} is ${stepOf(d.state, n.step).status}`);
      }
    }
    if (d.state.status === 'succeeded' || d.state.status === 'failed' || d.state.status === 'cancelled') {
      for (const id of ids) assert.ok(TERMINAL.has(stepOf(d.state, id).status), `run finished with ${id} open`);
    }
    state = d.state;
  };

  const claim = (id: string): void => {
    const s = stepOf(state, id);
    assert.equal(s.status, 'queued');
    const step = wf.steps[id];
    assert.ok(step);
    for (const n of step.needs) assert.ok(TERMINAL.has(stepOf(state, n.step).status), `${id} claimed while ${n.step} is ${stepOf(state, n.step).status}`);
    const cap = step.retry.maxAttempts + LEASE_LOSS_ALLOWANCE;
    assert.ok(familyAttempts(s) + 1 <= cap, `${id} attempt ${familyAttempts(s) + 1} of its family > ${cap}`);
    state = { ...state, steps: { ...state.steps, [id]: { ...s, status: 'running', attempt: s.attempt + 1 } } };
  };

  const outcome = (id: string): SchedulerEvent => {
    const r = rng();
    if (r < 0.5) {
      if (wf.steps[id]?.type === 'condition') return { type: 'step_succeeded', stepId: id, branch: pick([...BRANCHES, null]) };
      return { type: 'step_succeeded', stepId: id };
    }
    if (r < 0.6) return { type: 'step_guard_false', stepId: id };
    if (r < 0.8) return { type: 'step_failed', stepId: id, error: RETRYABLE };
    if (r < 0.88) return { type: 'step_failed', stepId: id, error: FATAL };
    return { type: 'lease_expired', stepId: id };
  };

  const staleEvent = (): SchedulerEvent => {
    const id = rng() < 0.05 ? 'unknown' : pick(ids);
    return pick<SchedulerEvent>([
      { type: 'run_started' },
      { type: 'step_succeeded', stepId: id, branch: 'good' },
      { type: 'step_guard_false', stepId: id },
      { type: 'step_failed', stepId: id, error: RETRYABLE },
      { type: 'lease_expired', stepId: id },
    ]);
  };

  const finished = () => state.status === 'succeeded' || state.status === 'failed' || state.status === 'cancelled';
  /** A human retry of a random failed step, when the run and the budget allow it. */
  const maybeRetry = (chance: number): boolean => {
    if (retriesLeft <= 0 || state.status === 'succeeded' || state.status === 'cancelled' || rng() >= chance) return false;
    const failedSteps = ids.filter((id) => stepOf(state, id).status === 'failed');
    if (failedSteps.length === 0) return false;
    retriesLeft--;
    const before = state;
    const id = pick(failedSteps);
    const plan = planRetry(wf, state, id);
    send({ type: 'step_retry_requested', stepId: id });
    const s = stepOf(state, id);
    if (plan.blockedBy !== undefined) {
      // Refused, nothing changes: another fail-fast failure stands, a need is not finished, or
      // a step that needs a step the retry would re-open has started.
      assert.deepEqual(state, before);
      const { relation, stepId: blocker } = plan.blockedBy;
      const status = stepOf(state, blocker).status;
      if (relation === 'failure') assert.ok(status === 'failed' && wf.steps[blocker]?.onError === 'fail');
      else if (relation === 'need') assert.ok(!TERMINAL.has(status), `need ${blocker} is ${status}`);
      else assert.ok(['queued', 'running', 'waiting', 'pending'].includes(status), `dependent ${blocker} is ${status}`);
      seen.add(`retry blocked:${relation}`);
      return true;
    }
    assert.equal(s.status, 'queued');
    assert.equal(s.attemptBase, s.attempt);
    if (before.status === 'failed') assert.equal(state.status, 'running', 'a retry re-opens a failed run');
    return true;
  };

  send({ type: 'run_started' });
  const limit = (50 + ids.length * 40) * (1 + opts.retries);
  for (let i = 0; !finished() || maybeRetry(0.7); i++) {
    assert.ok(i < limit, `run did not finish within ${limit} iterations`);
    if (finished()) continue;
    const queued = ids.filter((id) => stepOf(state, id).status === 'queued');
    const running = ids.filter((id) => stepOf(state, id).status === 'running');
    const waiting = ids.filter((id) => stepOf(state, id).status === 'waiting');
    const r = rng();
    if (r < 0.003) {
      cancelled = true;
      send({ type: 'run_cancelled' });
    } else if (r < 0.04) {
      send({ type: state.status === 'paused' ? 'run_resumed' : 'run_paused' });
    } else if (r < 0.07) {
      // A stale or duplicate event: for a terminal step (or an unknown one) it must be a no-op.
      const event = staleEvent();
      const before = state;
      const target = 'stepId' in event && Object.hasOwn(wf.steps, event.stepId) ? stepOf(state, event.stepId) : undefined;
      const noop = 'stepId' in event && (target === undefined || TERMINAL.has(target.status));
      const eventsBefore = events;
      send(event);
      if (noop) assert.deepEqual(state, before, `${event.type} on a terminal step changed the state`);
      assert.equal(events, eventsBefore + 1);
    } else if (maybeRetry(0.02)) {
      // a human retried a failed step while the run goes on
    } else if (state.status === 'paused') {
      // Workers finish what they hold; nothing new is claimed.
      if (running.length > 0 && rng() < 0.9) send(outcome(pick(running)));
      else send({ type: 'run_resumed' });
    } else if (waiting.length > 0 && opts.mode === 'step' && (queued.length + running.length === 0 || rng() < 0.3)) {
      assert.equal(state.status, queued.length + running.length === 0 ? 'waiting' : 'running');
      send({ type: 'step_triggered', stepId: pick(waiting) });
    } else {
      assert.ok(queued.length + running.length > 0, 'live run with nothing queued, running or waiting');
      if (queued.length > 0 && (running.length < concurrency || running.length === 0)) {
        const id = pick(queued);
        claim(id);
        if (rng() < 0.5) send(outcome(id));
      } else {
        send(outcome(pick(running)));
      }
    }
  }

  // Final state against the oracle.
  const failedFast = ids.filter((id) => stepOf(state, id).status === 'failed' && wf.steps[id]?.onError === 'fail');
  if (cancelled && state.status === 'cancelled') {
    // cancelled by us
  } else if (failedFast.length > 0) {
    assert.equal(state.status, 'failed');
    // (A retry of another step can re-open steps the first failure cancelled, and one of them can fail fast too.)
    if (opts.retries === 0) assert.equal(failedFast.length, 1, 'a run fails at its first fail-fast failure');
  } else {
    assert.equal(state.status, 'succeeded');
  }
  if (state.status === 'cancelled') assert.ok(cancelled, 'run cancelled without run_cancelled');
  for (const id of ids) {
    const s = stepOf(state, id);
    const step = wf.steps[id];
    assert.ok(step);
    assert.ok(TERMINAL.has(s.status), `${id} left ${s.status}`);
    assert.ok(familyAttempts(s) <= step.retry.maxAttempts + LEASE_LOSS_ALLOWANCE);
    if (s.status === 'cancelled') {
      assert.notEqual(state.status, 'succeeded', `${id} cancelled in a succeeded run`);
      continue;
    }
    const verdict = oracle(wf, state, id);
    if (s.status === 'skipped' && skipReason.get(id) !== 'guard') {
      assert.equal(skipReason.get(id), verdict, `${id} skipped for ${skipReason.get(id) ?? '?'}, oracle says ${verdict}`);
      assert.equal(familyAttempts(s), 0);
    } else {
      assert.equal(verdict, 'run', `${id} ran (${s.status}) but the oracle says ${verdict}`);
      assert.ok(familyAttempts(s) >= 1, `${id} ${s.status} without an attempt`);
    }
    if (s.status === 'failed') {
      // A retryable failure only fails the step once its attempts are used up.
      const error = failError.get(id);
      if (error?.retryable) assert.ok(familyAttempts(s) >= attemptLimit(step.retry, error), `${id} failed retryably at attempt ${s.attempt}`);
    }
  }
  return { events, cancelled, seen };
}


void it('random DAGs always run to a terminal state that matches the oracle', () => {
  let totalEvents = 0;
  let finished = 0;
  const seen = new Set<string>();
  fc.assert(
    fc.property(genWorkflow, fc.nat(), (gen, seed) => {
      const result = simulate(build(gen.steps, gen.failFast), seed);
      totalEvents += result.events;
      finished++;
      for (const k of result.seen) seen.add(k);
    }),
    { numRuns: 200, includeErrorInReport: true },
  );
  assert.ok(finished >= 200 && totalEvents > finished);
  // The generator must reach every kind of decision (a guard against a silently weak simulation).
  const kinds = ['queue_step', 'retry_step', 'fail_step', 'cancel_step', 'skip_step:guard', 'skip_step:upstream', 'skip_step:branch',
    'finish_run:succeeded', 'finish_run:failed', 'finish_run:cancelled', 'set_run_status:paused', 'paused set_run_status:running',
    'paused hold_step', 'paused fail_step', 'paused skip_step:upstream', 'paused queue_step'];
  assert.deepEqual(kinds.filter((k) => !seen.has(k)), []);
});

void it('step mode and human retries: random DAGs still end terminal and match the oracle', () => {
  const seen = new Set<string>();
  let finished = 0;
  fc.assert(
    fc.property(genWorkflow, fc.nat(), fc.constantFrom<RunMode>('auto', 'step'), fc.integer({ min: 1, max: 4 }), (gen, seed, mode, retries) => {
      const result = simulate(build(gen.steps, gen.failFast), seed, { mode, retries });
      finished++;
      for (const k of result.seen) seen.add(`${mode} ${k}`);
    }),
    { numRuns: 200, includeErrorInReport: true },
  );
  assert.ok(finished >= 200);
  const kinds = ['step wait_step', 'step queue_step', 'step set_run_status:waiting', 'step set_run_status:running', 'step restart_step',
    'step reset_step', 'step skip_step:branch', 'step finish_run:succeeded', 'step paused set_run_status:waiting', 'auto restart_step',
    'auto reset_step', 'auto set_run_status:running', 'auto paused restart_step', 'auto retry blocked:failure', 'auto retry blocked:dependent', 'step retry blocked:failure'];
  assert.deepEqual(kinds.filter((k) => !seen.has(k)), []);
});

void it('decide never mutates frozen inputs and is deterministic on arbitrary states', () => {
  const statuses: StepStatus[] = ['pending', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled'];
  fc.assert(
    fc.property(
      fc.array(genStep, { minLength: 1, maxLength: 30 }),
      fc.array(fc.record({ status: fc.constantFrom(...statuses), attempt: fc.nat({ max: 4 }), base: fc.nat({ max: 2 }), branch: fc.constantFrom<string | null | undefined>(undefined, null, 'good', 'bad') }), { minLength: 30, maxLength: 30 }),
      fc.constantFrom('queued', 'running', 'paused', 'waiting', 'succeeded', 'failed', 'cancelled') as fc.Arbitrary<RunState['status']>,
      fc.nat({ max: 40 }),
      fc.nat({ max: 8 }),
      fc.nat(),
      fc.constantFrom<RunMode | undefined>(undefined, 'auto', 'step'),
      (gen, stepStates, runStatus, target, kind, seed, mode) => {
        const wf = deepFreeze(build(gen));
        const steps: Record<string, StepState> = {};
        wf.order.forEach((id, i) => {
          const g = stepStates[i];
          assert.ok(g);
          const s: StepState = { status: g.status, attempt: g.attempt };
          if (g.base > 0) s.attemptBase = Math.min(g.base, g.attempt);
          if (g.branch !== undefined) s.branch = g.branch;
          steps[id] = s;
        });
        const state: RunState = deepFreeze(mode === undefined ? { status: runStatus, steps } : { status: runStatus, steps, mode });
        const copy = structuredClone(state);
        const id = wf.order[target] ?? 'missing';
        const event: SchedulerEvent = [
          { type: 'run_started' } as const,
          { type: 'step_succeeded', stepId: id, branch: 'good' } as const,
          { type: 'step_guard_false', stepId: id } as const,
          { type: 'step_failed', stepId: id, error: target % 2 ? RETRYABLE : FATAL } as const,
          { type: 'lease_expired', stepId: id } as const,
          { type: 'run_paused' } as const,
          { type: target % 2 ? 'run_resumed' : 'run_cancelled' } as const,
          { type: 'step_triggered', stepId: id } as const,
          { type: 'step_retry_requested', stepId: id } as const,
        ][kind] ?? { type: 'run_started' };
        const a = decide(wf, state, event, mulberry32(seed));
        const b = decide(wf, state, event, mulberry32(seed));
        assert.deepEqual(a, b);
        assert.deepEqual(state, copy);
        assert.deepEqual(a.state, applyCommands(state, event, a.commands));
        const reopened = new Set(a.commands.flatMap((c) => (c.type === 'restart_step' || c.type === 'reset_step' ? [c.stepId] : [])));
        for (const c of a.commands) {
          if ('stepId' in c && !reopened.has(c.stepId)) assert.ok(!TERMINAL.has(stepOf(state, c.stepId).status));
        }
        if (reopened.size > 0) assert.equal(event.type, 'step_retry_requested');
        const reopens = event.type === 'step_retry_requested' && runStatus === 'failed';
        if ((runStatus === 'succeeded' || runStatus === 'failed' || runStatus === 'cancelled') && !reopens) assert.deepEqual(a.commands, []);
      },
    ),
    { numRuns: 300, includeErrorInReport: true },
  );
});
