import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { computeBackoff, decide, initialState, planRetry } from '../src/core/scheduler.ts';
import type { EngineCommand, RetryPlan } from '../src/core/scheduler.ts';
import type { CompiledRetry, CompiledStep, CompiledWorkflow, Need } from '../src/core/compiled.ts';
import type { StepDefinition, StepType, TriggerRule, WorkflowDefinition } from '../src/core/definition-schema.ts';
import type { ErrorRecord } from '../src/core/errors.ts';
import type { Random, RunMode, RunState, RunStatus, SchedulerEvent, StepState, StepStatus } from '../src/core/scheduler-types.ts';

// ---------------------------------------------------------------------------------------
// Helpers: a tiny stand-in for the compiler, a state DSL, and a command formatter.

interface StepSpec {
  needs?: string[];
  trigger?: TriggerRule;
  retry?: Partial<CompiledRetry>;
  onError?: 'fail' | 'continue';
  type?: StepType;
}

const NO_JITTER: CompiledRetry = { maxAttempts: 1, backoff: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 0 };

/** Build a CompiledWorkflow from `{id: {needs: ['a', 'route.good'], …}}`: dependents, order (ties by id), levels, roots. */
function wfOf(spec: Record<string, StepSpec>): CompiledWorkflow {
  const ids = Object.keys(spec).sort();
  const needsOf = (id: string): Need[] =>
    (spec[id]?.needs ?? []).map((n) => {
      const [step = '', branch] = n.split('.');
      return branch === undefined ? { step } : { step, branch };
    });
  const branched = new Set(ids.flatMap((id) => needsOf(id).filter((n) => n.branch !== undefined).map((n) => n.step)));
  const level = new Map<string, number>();
  const levelOf = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    const l = Math.max(-1, ...needsOf(id).map((n) => levelOf(n.step))) + 1;
    level.set(id, l);
    return l;
  };
  const levels: string[][] = [];
  for (const id of ids) (levels[levelOf(id)] ??= []).push(id);
  const order = levels.flat();
  const steps: Record<string, CompiledStep> = {};
  const defs: Record<string, StepDefinition> = {};
  for (const id of ids) {
    const s = spec[id] ?? {};
    const type: StepType = s.type ?? (branched.has(id) ? 'condition' : 'transform');
    const definition = (type === 'condition' ? { type, cases: { good: 'true' } } : { type: 'transform', expr: '1' }) as StepDefinition;
    defs[id] = definition;
    steps[id] = {
      id,
      type,
      definition,
      needs: needsOf(id),
      dependents: ids.filter((o) => needsOf(o).some((n) => n.step === id)),
      trigger: s.trigger ?? 'all_success',
      retry: { ...NO_JITTER, ...s.retry },
      timeoutMs: undefined,
      onError: s.onError ?? 'fail',
      refs: [],
      level: levelOf(id),
    };
  }
  const definition: WorkflowDefinition = { name: 'test', steps: defs };
  return { definition, steps, order, levels, roots: ids.filter((id) => needsOf(id).length === 0), outputRefs: [] };
}

/**
 * `st(wf, {a: 'succeeded', b: 'running/2', c: 'failed/4~3', route: 'succeeded@good'}, 'paused', 'step')`;
 * unlisted steps are pending/0; `~n` is the attempt base; `^parked` marks a step a budget pause
 * handed back (pending). In step mode a 'waiting' step never ran (attempt 0).
 */
function st(wf: CompiledWorkflow, steps: Record<string, string>, run: RunStatus = 'running', mode?: RunMode): RunState {
  const out: Record<string, StepState> = {};
  for (const id of wf.order) {
    const text = steps[id] ?? 'pending';
    const m = /^(\w+)(?:\/(\d+))?(?:~(\d+))?(?:@(\w*))?(\^parked)?$/.exec(text);
    assert.ok(m, `bad step state ${text}`);
    const status = m[1] as StepStatus;
    const ran = status === 'running' || status === 'succeeded' || status === 'failed' || (status === 'waiting' && mode !== 'step');
    const s: StepState = { status, attempt: m[2] !== undefined ? Number(m[2]) : ran ? 1 : 0 };
    if (m[3] !== undefined) s.attemptBase = Number(m[3]);
    if (m[4] !== undefined) s.branch = m[4] === '' ? null : m[4];
    if (m[5] !== undefined) s.parked = true;
    out[id] = s;
  }
  return mode === undefined ? { status: run, steps: out } : { status: run, steps: out, mode };
}

function fmt(c: EngineCommand): string {
  switch (c.type) {
    case 'queue_step':
      return `queue ${c.stepId}`;
    case 'retry_step':
      return `retry ${c.stepId} #${c.attempt} ${c.delayMs}ms ${c.error.code}`;
    case 'hold_step':
      return `hold ${c.stepId} #${c.attempt} ${c.error.code}`;
    case 'skip_step':
      return `skip ${c.stepId} ${c.reason}`;
    case 'fail_step':
      return `fail ${c.stepId} ${c.error.code}`;
    case 'cancel_step':
      return `cancel ${c.stepId}`;
    case 'finish_run':
      return `finish ${c.status}`;
    case 'set_run_status':
      return `status ${c.status}`;
    case 'wait_step':
      return `wait ${c.stepId}`;
    case 'restart_step':
      return `restart ${c.stepId} #${c.attempt}`;
    case 'reset_step':
      return `reset ${c.stepId} ${c.from}`;
  }
}

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

/** Independent reading of the documented command → state mapping. */
function applyCommands(state: RunState, event: SchedulerEvent, commands: EngineCommand[]): RunState {
  const steps: Record<string, StepState> = structuredClone(state.steps);
  let status = state.status;
  const s = event.type === 'step_succeeded' && Object.hasOwn(steps, event.stepId) ? steps[event.stepId] : undefined;
  const live = status !== 'succeeded' && status !== 'failed' && status !== 'cancelled';
  const inFlight = (x: StepState) => x.status === 'running' || (x.status === 'waiting' && state.mode !== 'step');
  if (event.type === 'step_succeeded' && s && live && inFlight(s)) {
    s.status = 'succeeded';
    if (event.branch !== undefined) s.branch = event.branch;
  }
  const set = (id: string, to: StepStatus): void => {
    const s = steps[id];
    assert.ok(s, `command for unknown step ${id}`);
    s.status = to;
    delete s.parked;
  };
  for (const c of commands) {
    if (c.type === 'queue_step' || c.type === 'retry_step') set(c.stepId, 'queued');
    else if (c.type === 'hold_step') set(c.stepId, 'pending');
    else if (c.type === 'skip_step') set(c.stepId, 'skipped');
    else if (c.type === 'fail_step') set(c.stepId, 'failed');
    else if (c.type === 'cancel_step') set(c.stepId, 'cancelled');
    else if (c.type === 'wait_step') set(c.stepId, 'waiting');
    else if (c.type === 'restart_step' || c.type === 'reset_step') {
      set(c.stepId, c.type === 'restart_step' ? 'queued' : 'pending');
      steps[c.stepId]!.attemptBase = steps[c.stepId]!.attempt;
    } else status = c.status;
  }
  return state.mode === undefined ? { status, steps } : { status, steps, mode: state.mode };
}

const half: Random = () => 0.5;
const ERR_R: ErrorRecord = { code: 'E_FLAKY', message: 'flaky', retryable: true };
const ERR_N: ErrorRecord = { code: 'E_BROKEN', message: 'broken', retryable: false };

/** Run one decision on frozen inputs, check the state matches the commands, return formatted commands. */
function run(wf: CompiledWorkflow, state: RunState, event: SchedulerEvent, random: Random = half) {
  deepFreeze(wf);
  deepFreeze(state);
  const before = structuredClone(state);
  const d = decide(wf, state, event, random);
  assert.deepEqual(state, before, 'input state mutated');
  const lines = d.commands.map(fmt);
  assert.deepEqual(d.state, applyCommands(state, event, d.commands), 'Decision.state disagrees with the commands');
  return { lines, decision: d };
}

interface Case {
  name: string;
  wf: CompiledWorkflow;
  state: RunState;
  event: SchedulerEvent;
  expect: string[];
}

function table(title: string, cases: Case[]): void {
  void describe(title, () => {
    for (const c of cases) {
      void it(c.name, () => {
        assert.deepEqual(run(c.wf, c.state, c.event).lines, c.expect);
      });
    }
  });
}

const ok = (stepId: string, branch?: string | null): SchedulerEvent =>
  branch === undefined ? { type: 'step_succeeded', stepId } : { type: 'step_succeeded', stepId, branch };
const failed = (stepId: string, error: ErrorRecord = ERR_N): SchedulerEvent => ({ type: 'step_failed', stepId, error });
const guardFalse = (stepId: string): SchedulerEvent => ({ type: 'step_guard_false', stepId });
const lease = (stepId: string): SchedulerEvent => ({ type: 'lease_expired', stepId });

// ---------------------------------------------------------------------------------------
// Workflows

const chain = wfOf({ a: {}, b: { needs: ['a'] }, c: { needs: ['b'] } });
const diamond = wfOf({ a: {}, b: { needs: ['a'] }, c: { needs: ['a'] }, d: { needs: ['b', 'c'] } });
const joinWith = (trigger: TriggerRule, onError: 'fail' | 'continue' = 'continue') =>
  wfOf({ x: { onError }, y: { onError }, j: { needs: ['x', 'y'], trigger } });
const routing = wfOf({
  route: {},
  good: { needs: ['route.good'] },
  bad: { needs: ['route.bad'] },
  after: { needs: ['good', 'bad'], trigger: 'one_success' },
  both: { needs: ['good', 'bad'] },
  plain: { needs: ['route'] },
});
const longChain = wfOf({
  a: { onError: 'continue' },
  b: { needs: ['a'] },
  c: { needs: ['b'] },
  d: { needs: ['c'] },
  e: { needs: ['d'] },
  f: { needs: ['d'], trigger: 'all_done' },
  g: { needs: ['f'] },
});
const retrying = wfOf({ a: { retry: { maxAttempts: 3 } }, b: { needs: ['a'] } });

// ---------------------------------------------------------------------------------------

void describe('initialState', () => {
  void it('is running with every step pending, attempt 0', () => {
    assert.deepEqual(initialState(diamond), {
      status: 'running',
      steps: {
        a: { status: 'pending', attempt: 0 },
        b: { status: 'pending', attempt: 0 },
        c: { status: 'pending', attempt: 0 },
        d: { status: 'pending', attempt: 0 },
      },
    });
  });
  void it('keeps even odd step ids as own properties', () => {
    const wf = wfOf({ __proto__x: {}, constructor: {} });
    const s = initialState(wf);
    assert.deepEqual(Object.keys(s.steps).sort(), ['__proto__x', 'constructor']);
    assert.deepEqual(run(wf, s, { type: 'run_started' }).lines, ['queue __proto__x', 'queue constructor']);
  });
});

table('run_started', [
  { name: 'queues the roots of a chain', wf: chain, state: initialState(chain), event: { type: 'run_started' }, expect: ['queue a'] },
  {
    name: 'queues every root, in topological order',
    wf: wfOf({ b: {}, a: {}, c: { needs: ['a', 'b'] } }),
    state: initialState(wfOf({ b: {}, a: {}, c: { needs: ['a', 'b'] } })),
    event: { type: 'run_started' },
    expect: ['queue a', 'queue b'],
  },
  {
    name: 'a root is queued whatever its trigger rule',
    wf: wfOf({ a: { trigger: 'one_success' } }),
    state: initialState(wfOf({ a: { trigger: 'one_success' } })),
    event: { type: 'run_started' },
    expect: ['queue a'],
  },
  {
    name: "a 'queued' run is set running first",
    wf: chain,
    state: st(chain, {}, 'queued'),
    event: { type: 'run_started' },
    expect: ['status running', 'queue a'],
  },
  { name: 'is idempotent', wf: chain, state: st(chain, { a: 'queued' }), event: { type: 'run_started' }, expect: [] },
  { name: 'an empty workflow finishes at once', wf: wfOf({}), state: initialState(wfOf({})), event: { type: 'run_started' }, expect: ['finish succeeded'] },
]);

table('step_succeeded: chain and diamond', [
  { name: 'chain: a → queue b', wf: chain, state: st(chain, { a: 'running' }), event: ok('a'), expect: ['queue b'] },
  { name: 'chain: last step → finish succeeded', wf: chain, state: st(chain, { a: 'succeeded', b: 'succeeded', c: 'running' }), event: ok('c'), expect: ['finish succeeded'] },
  { name: 'diamond: a → queue b and c', wf: diamond, state: st(diamond, { a: 'running' }), event: ok('a'), expect: ['queue b', 'queue c'] },
  { name: 'diamond: b done, c running → d waits', wf: diamond, state: st(diamond, { a: 'succeeded', b: 'running', c: 'running' }), event: ok('b'), expect: [] },
  { name: 'diamond: c done, b done → queue d', wf: diamond, state: st(diamond, { a: 'succeeded', b: 'succeeded', c: 'running' }), event: ok('c'), expect: ['queue d'] },
  { name: "a 'waiting' step can complete", wf: chain, state: st(chain, { a: 'waiting' }), event: ok('a'), expect: ['queue b'] },
]);

table('trigger rules × upstream outcomes (j needs x, y; y completes last)', [
  { name: 'all_success, x succeeded, y succeeds → queue', wf: joinWith('all_success'), state: st(joinWith('all_success'), { x: 'succeeded', y: 'running' }), event: ok('y'), expect: ['queue j'] },
  { name: 'all_success, x failed, y succeeds → skip upstream', wf: joinWith('all_success'), state: st(joinWith('all_success'), { x: 'failed', y: 'running' }), event: ok('y'), expect: ['skip j upstream', 'finish succeeded'] },
  { name: 'all_success, x skipped, y succeeds → skip upstream', wf: joinWith('all_success'), state: st(joinWith('all_success'), { x: 'skipped', y: 'running' }), event: ok('y'), expect: ['skip j upstream', 'finish succeeded'] },
  { name: 'all_success, x succeeded, y fails (continue) → skip upstream', wf: joinWith('all_success'), state: st(joinWith('all_success'), { x: 'succeeded', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN', 'skip j upstream', 'finish succeeded'] },
  { name: 'all_success, x succeeded, y guard false → skip upstream', wf: joinWith('all_success'), state: st(joinWith('all_success'), { x: 'succeeded', y: 'running' }), event: guardFalse('y'), expect: ['skip y guard', 'skip j upstream', 'finish succeeded'] },
  { name: 'all_done, x failed, y succeeds → queue', wf: joinWith('all_done'), state: st(joinWith('all_done'), { x: 'failed', y: 'running' }), event: ok('y'), expect: ['queue j'] },
  { name: 'all_done, x skipped, y fails (continue) → queue', wf: joinWith('all_done'), state: st(joinWith('all_done'), { x: 'skipped', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN', 'queue j'] },
  { name: 'all_done, x cancelled, y guard false → queue', wf: joinWith('all_done'), state: st(joinWith('all_done'), { x: 'cancelled', y: 'running' }), event: guardFalse('y'), expect: ['skip y guard', 'queue j'] },
  { name: 'all_done waits for every need', wf: joinWith('all_done'), state: st(joinWith('all_done'), { x: 'running', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN'] },
  { name: 'one_success, x failed, y succeeds → queue', wf: joinWith('one_success'), state: st(joinWith('one_success'), { x: 'failed', y: 'running' }), event: ok('y'), expect: ['queue j'] },
  { name: 'one_success, x succeeded, y fails (continue) → queue', wf: joinWith('one_success'), state: st(joinWith('one_success'), { x: 'succeeded', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN', 'queue j'] },
  { name: 'one_success, x failed, y fails → skip upstream', wf: joinWith('one_success'), state: st(joinWith('one_success'), { x: 'failed', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN', 'skip j upstream', 'finish succeeded'] },
  { name: 'one_success, x skipped, y guard false → skip upstream', wf: joinWith('one_success'), state: st(joinWith('one_success'), { x: 'skipped', y: 'running' }), event: guardFalse('y'), expect: ['skip y guard', 'skip j upstream', 'finish succeeded'] },
  { name: 'one_success does not start before every need is terminal', wf: joinWith('one_success'), state: st(joinWith('one_success'), { x: 'running', y: 'running' }), event: ok('x'), expect: [] },
]);

table('branch routing', [
  {
    name: 'route picks good: good and plain queued, bad skipped (branch), cascade to both',
    wf: routing,
    state: st(routing, { route: 'running' }),
    event: ok('route', 'good'),
    expect: ['skip bad branch', 'queue good', 'queue plain'],
  },
  {
    name: 'route picks bad: mirror image',
    wf: routing,
    state: st(routing, { route: 'running' }),
    event: ok('route', 'bad'),
    expect: ['queue bad', 'skip good branch', 'queue plain'],
  },
  {
    name: 'route picks no branch: both branch steps skipped, then their joins (upstream)',
    wf: routing,
    state: st(routing, { route: 'running' }),
    event: ok('route', null),
    expect: ['skip bad branch', 'skip good branch', 'queue plain', 'skip after upstream', 'skip both upstream'],
  },
  {
    name: 'good succeeds: one_success join queued, all_success join skipped (upstream: bad was skipped)',
    wf: routing,
    state: st(routing, { route: 'succeeded@good', bad: 'skipped', good: 'running', plain: 'succeeded' }),
    event: ok('good'),
    expect: ['queue after', 'skip both upstream'],
  },
  {
    name: "a condition step's own status is succeeded whatever it picked",
    wf: routing,
    state: st(routing, { route: 'running' }),
    event: ok('route', 'bad'),
    expect: ['queue bad', 'skip good branch', 'queue plain'],
  },
  {
    name: 'mixed edges: branch mismatch + satisfied plain edge → skip branch',
    wf: wfOf({ route: {}, x: {}, s: { needs: ['route.good', 'x'] } }),
    state: st(wfOf({ route: {}, x: {}, s: { needs: ['route.good', 'x'] } }), { route: 'running', x: 'succeeded' }),
    event: ok('route', 'bad'),
    expect: ['skip s branch', 'finish succeeded'],
  },
  {
    name: 'mixed edges: branch mismatch + failed plain edge → skip upstream',
    wf: wfOf({ route: {}, x: { onError: 'continue' }, s: { needs: ['route.good', 'x'] } }),
    state: st(wfOf({ route: {}, x: { onError: 'continue' }, s: { needs: ['route.good', 'x'] } }), { route: 'running', x: 'failed' }),
    event: ok('route', 'bad'),
    expect: ['skip s upstream', 'finish succeeded'],
  },
  {
    name: 'one_success whose every edge is a branch mismatch → skip branch',
    wf: wfOf({ route: {}, s: { needs: ['route.good', 'route.fine'], trigger: 'one_success' } }),
    state: st(wfOf({ route: {}, s: { needs: ['route.good', 'route.fine'], trigger: 'one_success' } }), { route: 'running' }),
    event: ok('route', 'bad'),
    expect: ['skip s branch', 'finish succeeded'],
  },
  {
    name: 'one_success with one matching branch → queue',
    wf: wfOf({ route: {}, s: { needs: ['route.good', 'route.fine'], trigger: 'one_success' } }),
    state: st(wfOf({ route: {}, s: { needs: ['route.good', 'route.fine'], trigger: 'one_success' } }), { route: 'running' }),
    event: ok('route', 'fine'),
    expect: ['queue s'],
  },
  {
    name: 'all_done after a branch mismatch → queue',
    wf: wfOf({ route: {}, s: { needs: ['route.good'], trigger: 'all_done' } }),
    state: st(wfOf({ route: {}, s: { needs: ['route.good'], trigger: 'all_done' } }), { route: 'running' }),
    event: ok('route', 'bad'),
    expect: ['queue s'],
  },
]);

const branchCascade = wfOf({
  route: {},
  g1: { needs: ['route.good'] },
  g2: { needs: ['g1'] },
  g3: { needs: ['g2'] },
  g4: { needs: ['g3'], trigger: 'all_done' },
  g5: { needs: ['g4'] },
});

table('skip cascades', [
  {
    name: 'failure (continue) skips every all_success level below, all_done stops the cascade',
    wf: longChain,
    state: st(longChain, { a: 'running' }),
    event: failed('a'),
    expect: ['fail a E_BROKEN', 'skip b upstream', 'skip c upstream', 'skip d upstream', 'skip e upstream', 'queue f'],
  },
  {
    name: 'guard false cascades the same way',
    wf: longChain,
    state: st(longChain, { a: 'running' }),
    event: guardFalse('a'),
    expect: ['skip a guard', 'skip b upstream', 'skip c upstream', 'skip d upstream', 'skip e upstream', 'queue f'],
  },
  {
    name: 'a branch skip cascades as upstream skips, then all_done resumes',
    wf: branchCascade,
    state: st(branchCascade, { route: 'running' }),
    event: ok('route', 'bad'),
    expect: ['skip g1 branch', 'skip g2 upstream', 'skip g3 upstream', 'queue g4'],
  },
  {
    name: 'a cascade down to the last step finishes the run',
    wf: wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, c: { needs: ['b'] } }),
    state: st(wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, c: { needs: ['b'] } }), { a: 'running' }),
    event: failed('a'),
    expect: ['fail a E_BROKEN', 'skip b upstream', 'skip c upstream', 'finish succeeded'],
  },
]);

table('failures and retries', [
  { name: 'retryable, attempt 1 of 3 → retry after base', wf: retrying, state: st(retrying, { a: 'running/1' }), event: failed('a', ERR_R), expect: ['retry a #1 1000ms E_FLAKY'] },
  { name: 'retryable, attempt 2 of 3 → retry after 2×base', wf: retrying, state: st(retrying, { a: 'running/2' }), event: failed('a', ERR_R), expect: ['retry a #2 2000ms E_FLAKY'] },
  {
    name: 'retryable, attempt 3 of 3 → exhausted: fail, cancel the rest, fail the run',
    wf: retrying,
    state: st(retrying, { a: 'running/3' }),
    event: failed('a', ERR_R),
    expect: ['fail a E_FLAKY', 'cancel b', 'finish failed'],
  },
  { name: 'non-retryable with attempts left → fail at once', wf: retrying, state: st(retrying, { a: 'running/1' }), event: failed('a', ERR_N), expect: ['fail a E_BROKEN', 'cancel b', 'finish failed'] },
  { name: 'retryable without retry policy (maxAttempts 1) → fail', wf: chain, state: st(chain, { a: 'running' }), event: failed('a', ERR_R), expect: ['fail a E_FLAKY', 'cancel b', 'cancel c', 'finish failed'] },
  {
    name: 'on_error fail cancels running, queued and pending steps (terminal ones untouched)',
    wf: wfOf({ a: {}, r: {}, q: {}, s: {}, p: { needs: ['a'] }, w: {} }),
    state: st(wfOf({ a: {}, r: {}, q: {}, s: {}, p: { needs: ['a'] }, w: {} }), { a: 'running', r: 'running', q: 'queued', s: 'succeeded', w: 'waiting' }),
    event: failed('a'),
    expect: ['fail a E_BROKEN', 'cancel q', 'cancel r', 'cancel w', 'cancel p', 'finish failed'],
  },
  { name: 'on_error continue + all_done dependent → queued', wf: joinWith('all_done'), state: st(joinWith('all_done'), { x: 'succeeded', y: 'running' }), event: failed('y'), expect: ['fail y E_BROKEN', 'queue j'] },
  {
    name: 'on_error continue + all_success dependent → skipped, run still succeeds',
    wf: joinWith('all_success'),
    state: st(joinWith('all_success'), { x: 'succeeded', y: 'running' }),
    event: failed('y'),
    expect: ['fail y E_BROKEN', 'skip j upstream', 'finish succeeded'],
  },
  { name: 'a failed last step under on_error continue → run succeeds', wf: wfOf({ a: { onError: 'continue' } }), state: st(wfOf({ a: { onError: 'continue' } }), { a: 'running' }), event: failed('a'), expect: ['fail a E_BROKEN', 'finish succeeded'] },
  { name: 'lease lost with attempts left → retry WEFT_LEASE_LOST', wf: retrying, state: st(retrying, { a: 'running/1' }), event: lease('a'), expect: ['retry a #1 1000ms WEFT_LEASE_LOST'] },
  { name: 'lease lost on the last policy attempt → still retried (crash allowance)', wf: retrying, state: st(retrying, { a: 'running/3' }), event: lease('a'), expect: ['retry a #3 4000ms WEFT_LEASE_LOST'] },
  { name: 'lease lost with no retry policy → retried once anyway', wf: chain, state: st(chain, { a: 'running/1' }), event: lease('a'), expect: ['retry a #1 1000ms WEFT_LEASE_LOST'] },
  { name: 'lease lost past the crash allowance → fail WEFT_LEASE_LOST', wf: retrying, state: st(retrying, { a: 'running/5' }), event: lease('a'), expect: ['fail a WEFT_LEASE_LOST', 'cancel b', 'finish failed'] },
  { name: 'a failing waiting step is retried too', wf: retrying, state: st(retrying, { a: 'waiting/1' }), event: failed('a', ERR_R), expect: ['retry a #1 1000ms E_FLAKY'] },
]);

void describe('failure details', () => {
  void it('retry_step carries the failed attempt, the delay and the error', () => {
    const { decision } = run(retrying, st(retrying, { a: 'running/2' }), failed('a', ERR_R));
    assert.deepEqual(decision.commands, [{ type: 'retry_step', stepId: 'a', attempt: 2, delayMs: 2000, error: ERR_R }]);
    assert.deepEqual(decision.state.steps.a, { status: 'queued', attempt: 2 });
  });
  void it('finish_run failed names the failing step', () => {
    const { decision } = run(retrying, st(retrying, { a: 'running/1' }), failed('a', ERR_N));
    assert.deepEqual(decision.commands.at(-1), {
      type: 'finish_run',
      status: 'failed',
      error: { code: 'E_BROKEN', message: 'step "a" failed: broken', retryable: false },
    });
    assert.deepEqual(decision.commands[0], { type: 'fail_step', stepId: 'a', error: ERR_N });
  });
  void it('the lease error is retryable and says which step', () => {
    const { decision } = run(retrying, st(retrying, { a: 'running/1' }), lease('a'));
    const c = decision.commands[0];
    assert.ok(c?.type === 'retry_step');
    assert.equal(c.error.code, 'WEFT_LEASE_LOST');
    assert.equal(c.error.retryable, true);
    assert.match(c.error.message, /"a"/);
  });
  void it('retry then success: a full sequence', () => {
    let state = initialState(retrying);
    const step = (event: SchedulerEvent): string[] => {
      const r = run(retrying, state, event);
      state = r.decision.state;
      return r.lines;
    };
    const claim = (id: string): void => {
      const s = state.steps[id];
      assert.ok(s && s.status === 'queued');
      state = { ...state, steps: { ...state.steps, [id]: { status: 'running', attempt: s.attempt + 1 } } };
    };
    assert.deepEqual(step({ type: 'run_started' }), ['queue a']);
    claim('a');
    assert.deepEqual(step(failed('a', ERR_R)), ['retry a #1 1000ms E_FLAKY']);
    claim('a');
    assert.deepEqual(step(lease('a')), ['retry a #2 2000ms WEFT_LEASE_LOST']);
    claim('a');
    assert.equal(state.steps.a?.attempt, 3);
    assert.deepEqual(step(ok('a')), ['queue b']);
    claim('b');
    assert.deepEqual(step(ok('b')), ['finish succeeded']);
    assert.equal(state.status, 'succeeded');
  });
});

const cancelWf = wfOf({ a: {}, b: { needs: ['a'] }, c: { needs: ['a'] }, d: { needs: ['b', 'c'] }, e: {} });

table('run_cancelled', [
  {
    name: 'cancels running, queued and pending steps in order, then finishes',
    wf: cancelWf,
    state: st(cancelWf, { a: 'succeeded', b: 'running', c: 'queued', e: 'failed' }),
    event: { type: 'run_cancelled' },
    expect: ['cancel b', 'cancel c', 'cancel d', 'finish cancelled'],
  },
  { name: 'a paused run can be cancelled', wf: chain, state: st(chain, { a: 'succeeded', b: 'pending/1' }, 'paused'), event: { type: 'run_cancelled' }, expect: ['cancel b', 'cancel c', 'finish cancelled'] },
  { name: 'a queued run can be cancelled', wf: chain, state: st(chain, {}, 'queued'), event: { type: 'run_cancelled' }, expect: ['cancel a', 'cancel b', 'cancel c', 'finish cancelled'] },
]);

const pauseWf = wfOf({ a: { retry: { maxAttempts: 2 } }, b: { needs: ['a'] }, c: {}, d: { needs: ['c'] }, z: { onError: 'continue' }, y: { needs: ['z'] } });

table('pause and resume', [
  { name: 'pause a running run', wf: chain, state: st(chain, { a: 'running', b: 'pending' }), event: { type: 'run_paused' }, expect: ['status paused'] },
  { name: 'pause is idempotent', wf: chain, state: st(chain, { a: 'running' }, 'paused'), event: { type: 'run_paused' }, expect: [] },
  { name: 'resume a running run → nothing', wf: chain, state: st(chain, { a: 'running' }), event: { type: 'run_resumed' }, expect: [] },
  {
    name: 'paused: a step completing records the outcome but queues nothing',
    wf: pauseWf,
    state: st(pauseWf, { a: 'running', c: 'running', z: 'running' }, 'paused'),
    event: ok('a'),
    expect: [],
  },
  {
    name: 'paused: a retryable failure is held (pending) instead of retried',
    wf: pauseWf,
    state: st(pauseWf, { a: 'running/1', c: 'running', z: 'running' }, 'paused'),
    event: failed('a', ERR_R),
    expect: ['hold a #1 E_FLAKY'],
  },
  {
    name: 'paused: an exhausted failure still fails the run',
    wf: pauseWf,
    state: st(pauseWf, { a: 'running/2', c: 'running', z: 'running' }, 'paused'),
    event: failed('a', ERR_R),
    expect: ['fail a E_FLAKY', 'cancel c', 'cancel z', 'cancel b', 'cancel d', 'cancel y', 'finish failed'],
  },
  {
    name: 'paused: skips still cascade',
    wf: pauseWf,
    state: st(pauseWf, { a: 'running', c: 'running', z: 'running' }, 'paused'),
    event: failed('z'),
    expect: ['fail z E_BROKEN', 'skip y upstream'],
  },
  {
    name: 'paused: the last step completing finishes the run',
    wf: chain,
    state: st(chain, { a: 'succeeded', b: 'succeeded', c: 'running' }, 'paused'),
    event: ok('c'),
    expect: ['finish succeeded'],
  },
  {
    name: 'resume: set running, queue the held retry and every decidable pending step',
    wf: pauseWf,
    state: st(pauseWf, { a: 'pending/1', c: 'succeeded', z: 'running' }, 'paused'),
    event: { type: 'run_resumed' },
    expect: ['status running', 'queue a', 'queue d'],
  },
  {
    name: 'resume: queued steps stay queued, undecidable pending steps stay pending',
    wf: pauseWf,
    state: st(pauseWf, { a: 'queued', c: 'running', z: 'running' }, 'paused'),
    event: { type: 'run_resumed' },
    expect: ['status running'],
  },
]);

void describe('pause and resume: a sequence', () => {
  void it('a step completes and another fails while paused; resume picks both up', () => {
    let state = st(pauseWf, { a: 'running/1', c: 'running', z: 'succeeded', y: 'queued' });
    const step = (event: SchedulerEvent): string[] => {
      const r = run(pauseWf, state, event);
      state = r.decision.state;
      return r.lines;
    };
    assert.deepEqual(step({ type: 'run_paused' }), ['status paused']);
    assert.deepEqual(step(ok('c')), []);
    assert.equal(state.steps.c?.status, 'succeeded');
    assert.equal(state.steps.d?.status, 'pending');
    assert.deepEqual(step(failed('a', ERR_R)), ['hold a #1 E_FLAKY']);
    assert.deepEqual(state.steps.a, { status: 'pending', attempt: 1 });
    assert.deepEqual(step({ type: 'run_resumed' }), ['status running', 'queue a', 'queue d']);
    assert.deepEqual(state.steps.a, { status: 'queued', attempt: 1 });
    assert.equal(state.status, 'running');
  });
});

const staleState = st(retrying, { a: 'succeeded', b: 'running' });
const allEvents = (id: string): SchedulerEvent[] => [
  { type: 'run_started' },
  ok(id),
  guardFalse(id),
  failed(id, ERR_R),
  lease(id),
  { type: 'run_cancelled' },
  { type: 'run_paused' },
  { type: 'run_resumed' },
];

void describe('stale events yield nothing', () => {
  const terminal: StepStatus[] = ['succeeded', 'failed', 'skipped', 'cancelled'];
  for (const status of terminal) {
    for (const event of [ok('a'), guardFalse('a'), failed('a', ERR_R), failed('a', ERR_N), lease('a')]) {
      void it(`${event.type} on a ${status} step`, () => {
        assert.deepEqual(run(retrying, st(retrying, { a: status, b: 'running' }), event).lines, []);
      });
    }
  }
  for (const status of ['pending', 'queued'] as const) {
    for (const event of [ok('a'), failed('a', ERR_R), lease('a')]) {
      void it(`${event.type} on a ${status} step`, () => {
        assert.deepEqual(run(retrying, st(retrying, { a: status }), event).lines, []);
      });
    }
  }
  for (const status of ['pending', 'queued', 'waiting'] as const) {
    void it(`guard false on a ${status} step (guards are evaluated after the claim)`, () => {
      assert.deepEqual(run(retrying, st(retrying, { a: status }), guardFalse('a')).lines, []);
    });
  }
  void it('lease_expired on a waiting step (no lease)', () => {
    assert.deepEqual(run(retrying, st(retrying, { a: 'waiting' }), lease('a')).lines, []);
  });
  void it('lease_expired on a succeeded step', () => {
    assert.deepEqual(run(retrying, staleState, lease('a')).lines, []);
  });
  void it('events for unknown steps', () => {
    for (const event of [ok('nope'), guardFalse('nope'), failed('nope'), lease('nope'), ok('constructor'), ok('__proto__')]) {
      assert.deepEqual(run(retrying, staleState, event).lines, []);
    }
  });
  void it('an unknown event type (untyped input)', () => {
    assert.deepEqual(run(retrying, staleState, { type: 'step_exploded', stepId: 'b' } as unknown as SchedulerEvent).lines, []);
  });
  for (const runStatus of ['succeeded', 'failed', 'cancelled'] as const) {
    void it(`anything after finish_run ${runStatus}`, () => {
      const state = st(retrying, { a: 'running', b: 'queued' }, runStatus);
      for (const event of [...allEvents('a'), ...allEvents('b')]) {
        const r = run(retrying, state, event);
        assert.deepEqual(r.lines, [], `${event.type} after ${runStatus}`);
        assert.deepEqual(r.decision.state, state);
      }
    });
  }
  void it('replaying the same event twice: the second is a no-op', () => {
    const first = run(chain, st(chain, { a: 'running' }), ok('a'));
    assert.deepEqual(first.lines, ['queue b']);
    assert.deepEqual(run(chain, first.decision.state, ok('a')).lines, []);
  });
});

void describe('command order', () => {
  void it('set_run_status first, step commands topologically, finish_run last', () => {
    const wf = wfOf({ z: {}, a: { needs: ['z'] }, m: {} });
    const r = run(wf, st(wf, { z: 'queued', a: 'pending', m: 'running' }), { type: 'run_cancelled' });
    assert.deepEqual(r.lines, ['cancel m', 'cancel z', 'cancel a', 'finish cancelled']);
    const r2 = run(wf, st(wf, { z: 'succeeded', m: 'succeeded' }, 'paused'), { type: 'run_resumed' });
    assert.deepEqual(r2.lines, ['status running', 'queue a']);
  });
});

void describe('computeBackoff', () => {
  const never: Random = () => assert.fail('random must not be called without jitter');
  void it('exponential: base × 2^(attempt-1)', () => {
    const r: CompiledRetry = { maxAttempts: 10, backoff: 'exponential', baseMs: 1000, maxMs: 1_000_000, jitter: 0 };
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => computeBackoff(r, n, never)), [1000, 2000, 4000, 8000, 16000]);
  });
  void it('fixed: always base', () => {
    const r: CompiledRetry = { maxAttempts: 10, backoff: 'fixed', baseMs: 750, maxMs: 1_000_000, jitter: 0 };
    assert.deepEqual([1, 2, 3, 7].map((n) => computeBackoff(r, n, never)), [750, 750, 750, 750]);
  });
  void it('capped at maxMs (also for huge attempts and for fixed)', () => {
    const r: CompiledRetry = { maxAttempts: 100, backoff: 'exponential', baseMs: 1000, maxMs: 5000, jitter: 0 };
    assert.deepEqual([1, 2, 3, 4, 100, 5000].map((n) => computeBackoff(r, n, never)), [1000, 2000, 4000, 5000, 5000, 5000]);
    assert.equal(computeBackoff({ ...r, backoff: 'fixed', baseMs: 9000 }, 1, never), 5000);
  });
  void it('zero base → zero delay', () => {
    assert.equal(computeBackoff({ ...NO_JITTER, baseMs: 0, jitter: 0.5 }, 3, never), 0);
  });
  void it('jitter: delay uniformly in [d*(1-j), d], driven by random', () => {
    const r: CompiledRetry = { maxAttempts: 10, backoff: 'exponential', baseMs: 1000, maxMs: 60_000, jitter: 0.2 };
    assert.equal(computeBackoff(r, 3, () => 0), 3200);
    assert.equal(computeBackoff(r, 3, () => 0.5), 3600);
    assert.equal(computeBackoff(r, 3, () => 0.999999), 4000);
    for (let i = 0; i <= 100; i++) {
      const d = computeBackoff(r, 2, () => i / 100);
      assert.ok(d >= 1600 && d <= 2000, `${d}`);
      assert.ok(Number.isInteger(d));
    }
  });
  void it('full jitter: [0, d]; out-of-range random is clamped', () => {
    const r: CompiledRetry = { maxAttempts: 10, backoff: 'fixed', baseMs: 1000, maxMs: 60_000, jitter: 1 };
    assert.equal(computeBackoff(r, 1, () => 0), 0);
    assert.equal(computeBackoff(r, 1, () => 0.25), 250);
    assert.equal(computeBackoff(r, 1, () => 7), 1000);
    assert.equal(computeBackoff(r, 1, () => -1), 0);
    assert.equal(computeBackoff(r, 1, () => Number.NaN), 0);
  });
  void it('decide uses the injected random for retry delays', () => {
    const wf = wfOf({ a: { retry: { maxAttempts: 2, jitter: 0.5, baseMs: 1000 } } });
    const state = st(wf, { a: 'running/1' });
    assert.deepEqual(run(wf, state, failed('a', ERR_R), () => 0).lines, ['retry a #1 500ms E_FLAKY']);
    assert.deepEqual(run(wf, state, failed('a', ERR_R), () => 0.5).lines, ['retry a #1 750ms E_FLAKY']);
  });
});

// ---------------------------------------------------------------------------------------
// Step mode: a ready step waits for a human trigger; the run is 'waiting' while nothing is
// queued or running and something waits.

const trigger = (stepId: string): SchedulerEvent => ({ type: 'step_triggered', stepId });
const retryReq = (stepId: string): SchedulerEvent => ({ type: 'step_retry_requested', stepId });
const stepSt = (wf: CompiledWorkflow, steps: Record<string, string>, run: RunStatus = 'running') => st(wf, steps, run, 'step');

table('step mode', [
  { name: 'run_started: roots wait, the run waits', wf: chain, state: initialState(chain, 'step'), event: { type: 'run_started' }, expect: ['status waiting', 'wait a'] },
  { name: 'a trigger queues the step and the run runs', wf: chain, state: stepSt(chain, { a: 'waiting' }, 'waiting'), event: trigger('a'), expect: ['status running', 'queue a'] },
  { name: 'a step succeeding readies the next one, which waits', wf: chain, state: stepSt(chain, { a: 'running' }), event: ok('a'), expect: ['status waiting', 'wait b'] },
  { name: 'the last step finishes the run', wf: chain, state: stepSt(chain, { a: 'succeeded', b: 'succeeded', c: 'running' }), event: ok('c'), expect: ['finish succeeded'] },
  { name: 'diamond: both branches wait', wf: diamond, state: stepSt(diamond, { a: 'running' }), event: ok('a'), expect: ['status waiting', 'wait b', 'wait c'] },
  { name: 'diamond: triggering one branch leaves the other waiting', wf: diamond, state: stepSt(diamond, { a: 'succeeded', b: 'waiting', c: 'waiting' }, 'waiting'), event: trigger('b'), expect: ['status running', 'queue b'] },
  { name: 'diamond: the join is not ready while a branch waits; the run waits', wf: diamond, state: stepSt(diamond, { a: 'succeeded', b: 'running', c: 'waiting' }), event: ok('b'), expect: ['status waiting'] },
  { name: 'diamond: a running branch keeps the run running', wf: diamond, state: stepSt(diamond, { a: 'succeeded', b: 'running', c: 'running' }), event: ok('b'), expect: [] },
  { name: 'routing as in auto mode: the other branch is skipped, the picked ones wait', wf: routing, state: stepSt(routing, { route: 'running' }), event: ok('route', 'good'), expect: ['status waiting', 'skip bad branch', 'wait good', 'wait plain'] },
  { name: 'a guard false skips and cascades as in auto mode; all_done waits', wf: longChain, state: stepSt(longChain, { a: 'running' }), event: guardFalse('a'), expect: ['status waiting', 'skip a guard', 'skip b upstream', 'skip c upstream', 'skip d upstream', 'skip e upstream', 'wait f'] },
  { name: 'a policy retry is queued at once (the trigger admitted the step)', wf: retrying, state: stepSt(retrying, { a: 'running/1' }), event: failed('a', ERR_R), expect: ['retry a #1 1000ms E_FLAKY'] },
  { name: 'on_error fail cancels waiting steps too', wf: diamond, state: stepSt(diamond, { a: 'succeeded', b: 'running', c: 'waiting' }), event: failed('b'), expect: ['fail b E_BROKEN', 'cancel c', 'cancel d', 'finish failed'] },
  { name: 'pause a waiting run', wf: chain, state: stepSt(chain, { a: 'waiting' }, 'waiting'), event: { type: 'run_paused' }, expect: ['status paused'] },
  { name: 'paused: a completion readies nothing', wf: chain, state: stepSt(chain, { a: 'running' }, 'paused'), event: ok('a'), expect: [] },
  { name: 'resume: ready steps wait, the run waits', wf: chain, state: stepSt(chain, { a: 'succeeded' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status waiting', 'wait b'] },
  { name: 'resume: a held retry is queued, not made to wait', wf: pauseWf, state: stepSt(pauseWf, { a: 'pending/1', c: 'succeeded', z: 'succeeded', y: 'succeeded' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status running', 'queue a', 'wait d'] },
  { name: 'cancel cancels waiting steps', wf: chain, state: stepSt(chain, { a: 'waiting' }, 'waiting'), event: { type: 'run_cancelled' }, expect: ['cancel a', 'cancel b', 'cancel c', 'finish cancelled'] },
]);

// ---------------------------------------------------------------------------------------
// Budget pause: the worker hands the attempt back (pending, parked, its family's count kept by
// attempt_base + 1) and the run pauses; resume queues the parked step without deciding it again.

table('budget pause (parked steps)', [
  { name: 'the pause itself: only the run status changes', wf: chain, state: st(chain, { a: 'pending/1~1^parked' }), event: { type: 'run_paused' }, expect: ['status paused'] },
  { name: 'auto mode: resume queues the parked step', wf: chain, state: st(chain, { a: 'pending/1~1^parked' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status running', 'queue a'] },
  { name: 'step mode: resume queues the parked step (it was triggered already), the run runs', wf: chain, state: stepSt(chain, { a: 'pending/1~1^parked' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status running', 'queue a'] },
  { name: 'step mode, for contrast: a pending step that was never admitted waits for a trigger', wf: chain, state: stepSt(chain, { a: 'pending/1~1' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status waiting', 'wait a'] },
  { name: 'a parked retry attempt keeps its family count and is queued', wf: pauseWf, state: st(pauseWf, { a: 'pending/2~1^parked', c: 'succeeded', d: 'succeeded', z: 'succeeded', y: 'succeeded' }, 'paused'), event: { type: 'run_resumed' }, expect: ['status running', 'queue a'] },
  { name: 'paused: another step finishing leaves the parked one pending', wf: diamond, state: st(diamond, { a: 'succeeded', b: 'pending/1~1^parked', c: 'running' }, 'paused'), event: ok('c'), expect: [] },
  { name: 'cancel (a rejected approval) cancels the parked step', wf: chain, state: st(chain, { a: 'pending/1~1^parked' }, 'paused'), event: { type: 'run_cancelled' }, expect: ['cancel a', 'cancel b', 'cancel c', 'finish cancelled'] },
]);

void describe('budget pause: a parked step counts as admitted', () => {
  void it('a retry of a failed need is blocked while a dependent is parked', () => {
    const wf = wfOf({ x: { onError: 'continue' }, j: { needs: ['x'], trigger: 'all_done' } });
    const state = st(wf, { x: 'failed', j: 'pending/1~1^parked' }, 'paused');
    assert.deepEqual(planRetry(wf, state, 'x').blockedBy, { stepId: 'j', status: 'pending', relation: 'dependent', of: 'x' });
    assert.deepEqual(run(wf, state, retryReq('x')).lines, []);
  });
});

void describe('step mode: what a trigger does not do', () => {
  const cases: [string, RunState, SchedulerEvent][] = [
    ['trigger a pending step', stepSt(chain, { a: 'running' }), trigger('b')],
    ['trigger a queued step', stepSt(chain, { a: 'queued' }), trigger('a')],
    ['trigger a running step', stepSt(chain, { a: 'running' }), trigger('a')],
    ['trigger a succeeded step', stepSt(chain, { a: 'succeeded', b: 'waiting' }, 'waiting'), trigger('a')],
    ['trigger while paused', stepSt(chain, { a: 'waiting' }, 'paused'), trigger('a')],
    ['trigger in a finished run', stepSt(chain, { a: 'cancelled', b: 'cancelled', c: 'cancelled' }, 'cancelled'), trigger('a')],
    ['trigger an unknown step', stepSt(chain, { a: 'waiting' }, 'waiting'), trigger('nope')],
    ['trigger in auto mode (a waiting step there is in flight, not awaiting a trigger)', st(chain, { a: 'waiting' }), trigger('a')],
    ['a waiting step has not started: its success is stale', stepSt(chain, { a: 'waiting' }, 'waiting'), ok('a')],
    ['nor its failure', stepSt(chain, { a: 'waiting' }, 'waiting'), failed('a', ERR_R)],
    ['nor its guard', stepSt(chain, { a: 'waiting' }, 'waiting'), guardFalse('a')],
  ];
  for (const [name, state, event] of cases) {
    void it(name, () => {
      const r = run(chain, state, event);
      assert.deepEqual(r.lines, []);
      assert.deepEqual(r.decision.state, state);
    });
  }
});

void describe('step mode: a 3-step chain, trigger by trigger', () => {
  void it('goes waiting → running → waiting … → succeeded', () => {
    let state = initialState(chain, 'step');
    const statuses: RunStatus[] = [];
    const step = (event: SchedulerEvent): string[] => {
      const r = run(chain, state, event);
      state = r.decision.state;
      statuses.push(state.status);
      return r.lines;
    };
    const claim = (id: string): void => {
      const s = state.steps[id]!;
      assert.equal(s.status, 'queued');
      state = { ...state, steps: { ...state.steps, [id]: { ...s, status: 'running', attempt: s.attempt + 1 } } };
    };
    assert.deepEqual(step({ type: 'run_started' }), ['status waiting', 'wait a']);
    assert.deepEqual(step(trigger('a')), ['status running', 'queue a']);
    claim('a');
    assert.deepEqual(step(ok('a')), ['status waiting', 'wait b']);
    assert.deepEqual(step(trigger('b')), ['status running', 'queue b']);
    claim('b');
    assert.deepEqual(step(ok('b')), ['status waiting', 'wait c']);
    assert.deepEqual(step(trigger('c')), ['status running', 'queue c']);
    claim('c');
    assert.deepEqual(step(ok('c')), ['finish succeeded']);
    assert.deepEqual(statuses, ['waiting', 'running', 'waiting', 'running', 'waiting', 'running', 'succeeded']);
    assert.equal(state.mode, 'step');
  });
});

// ---------------------------------------------------------------------------------------
// Retry of a failed step (step_retry_requested)

const continueChain = wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, c: { needs: ['b'] }, d: { needs: ['a'], trigger: 'all_done' }, x: {} });
const sibling = wfOf({ a: {}, p: {}, b: { needs: ['a'] } });
const guarded = wfOf({ a: { onError: 'continue' }, g: { needs: ['a'], trigger: 'all_done' }, h: { needs: ['g'] }, k: { needs: ['a'] }, x: {} });
const routeFails = wfOf({ route: { onError: 'continue', type: 'condition' }, good: { needs: ['route.good'] }, bad: { needs: ['route.bad'] }, x: {} });

table('step_retry_requested', [
  {
    name: 'fail-fast failure: the run re-opens, the step restarts, what its failure cancelled is reset',
    wf: chain,
    state: st(chain, { a: 'failed', b: 'cancelled', c: 'cancelled' }, 'failed'),
    event: retryReq('a'),
    expect: ['status running', 'restart a #1', 'reset b cancelled', 'reset c cancelled'],
  },
  {
    name: 'a sibling cancelled mid-run is reset and, its needs being met, queued again',
    wf: sibling,
    state: st(sibling, { a: 'failed/2', p: 'cancelled/1', b: 'cancelled' }, 'failed'),
    event: retryReq('a'),
    expect: ['status running', 'restart a #2', 'reset p cancelled', 'queue p', 'reset b cancelled'],
  },
  {
    name: 'step mode: the retried step is queued at once, a reset sibling waits for its trigger',
    wf: sibling,
    state: stepSt(sibling, { a: 'failed/2', p: 'cancelled/1', b: 'cancelled' }, 'failed'),
    event: retryReq('a'),
    expect: ['status running', 'restart a #2', 'reset p cancelled', 'wait p', 'reset b cancelled'],
  },
  {
    name: 'on_error continue: upstream skips below are reset; all_done steps that ran stay',
    wf: continueChain,
    state: st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'succeeded', x: 'running' }),
    event: retryReq('a'),
    expect: ['restart a #1', 'reset b skipped', 'reset c skipped'],
  },
  {
    name: 'a guard skip (the step ran) is not reset, nor what it skipped',
    wf: guarded,
    state: st(guarded, { a: 'failed', g: 'skipped/1', h: 'skipped', k: 'skipped', x: 'running' }),
    event: retryReq('a'),
    expect: ['restart a #1', 'reset k skipped'],
  },
  {
    name: 'a failed condition step: its branches are reset (they were skipped upstream)',
    wf: routeFails,
    state: st(routeFails, { route: 'failed', good: 'skipped', bad: 'skipped', x: 'running' }),
    event: retryReq('route'),
    expect: ['restart route #1', 'reset bad skipped', 'reset good skipped'],
  },
  {
    name: 'a waiting run (step mode) runs again',
    wf: continueChain,
    state: stepSt(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'waiting', x: 'waiting' }, 'waiting'),
    event: retryReq('a'),
    expect: ['status running', 'restart a #1', 'reset b skipped', 'reset d waiting', 'reset c skipped'],
  },
  {
    name: 'paused: the step is queued (not claimable until resume), the run stays paused',
    wf: continueChain,
    state: st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'succeeded', x: 'running' }, 'paused'),
    event: retryReq('a'),
    expect: ['restart a #1', 'reset b skipped', 'reset c skipped'],
  },
  {
    name: 'a run failed by outputs (no fail-fast failure): any failed step re-opens it',
    wf: wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, f: {} }),
    state: st(wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, f: {} }), { a: 'failed', b: 'skipped', f: 'succeeded' }, 'failed'),
    event: retryReq('a'),
    expect: ['status running', 'restart a #1', 'reset b skipped'],
  },
]);

void describe('step_retry_requested: blocked (planRetry says why; the scheduler does nothing)', () => {
  const cases: [string, CompiledWorkflow, RunState, string, RetryPlan['blockedBy']][] = [
    [
      'another step failed fast: retry that one first',
      wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, f: {} }),
      st(wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, f: {} }), { a: 'failed', b: 'skipped', f: 'failed' }, 'failed'),
      'a',
      { stepId: 'f', status: 'failed', relation: 'failure', of: 'a' },
    ],
    [
      'an all_done dependent that ran on the failure is still running',
      continueChain,
      st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'running', x: 'running' }),
      'a',
      { stepId: 'd', status: 'running', relation: 'dependent', of: 'a' },
    ],
    [
      'an all_done dependent is queued',
      continueChain,
      st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'queued', x: 'running' }),
      'a',
      { stepId: 'd', status: 'queued', relation: 'dependent', of: 'a' },
    ],
    [
      'an all_done dependent is a held retry (paused)',
      continueChain,
      st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'pending/1', x: 'running' }, 'paused'),
      'a',
      { stepId: 'd', status: 'pending', relation: 'dependent', of: 'a' },
    ],
    [
      'a need was re-opened by an earlier retry and is not finished',
      wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, c: { needs: ['b'], trigger: 'all_done', onError: 'continue' }, x: {} }),
      st(wfOf({ a: { onError: 'continue' }, b: { needs: ['a'] }, c: { needs: ['b'], trigger: 'all_done', onError: 'continue' }, x: {} }), { a: 'running/2~1', b: 'pending', c: 'failed', x: 'running' }),
      'c',
      { stepId: 'b', status: 'pending', relation: 'need', of: 'c' },
    ],
  ];
  for (const [name, wf, state, stepId, blockedBy] of cases) {
    void it(name, () => {
      assert.deepEqual(planRetry(wf, state, stepId).blockedBy, blockedBy);
      const r = run(wf, state, retryReq(stepId));
      assert.deepEqual(r.lines, []);
      assert.deepEqual(r.decision.state, state);
    });
  }
  void it('step mode: a waiting dependent does not block; it is reset and decided again later', () => {
    const state = stepSt(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'waiting', x: 'running' });
    assert.equal(planRetry(continueChain, state, 'a').blockedBy, undefined);
    assert.deepEqual(run(continueChain, state, retryReq('a')).lines, ['restart a #1', 'reset b skipped', 'reset d waiting', 'reset c skipped']);
  });
});

void describe('step_retry_requested: refused (no commands, state unchanged)', () => {
  const cases: [string, CompiledWorkflow, RunState, SchedulerEvent][] = [
    ['a succeeded step', chain, st(chain, { a: 'succeeded', b: 'running' }), retryReq('a')],
    ['a running step', chain, st(chain, { a: 'running' }), retryReq('a')],
    ['a skipped step', continueChain, st(continueChain, { a: 'failed', b: 'skipped', x: 'running' }), retryReq('b')],
    ['a cancelled step', chain, st(chain, { a: 'failed', b: 'cancelled', c: 'cancelled' }, 'failed'), retryReq('b')],
    ['in a cancelled run', chain, st(chain, { a: 'failed', b: 'cancelled', c: 'cancelled' }, 'cancelled'), retryReq('a')],
    ['in a succeeded run', continueChain, st(continueChain, { a: 'failed', b: 'skipped', c: 'skipped', d: 'succeeded', x: 'succeeded' }, 'succeeded'), retryReq('a')],
    ['an unknown step', chain, st(chain, { a: 'failed', b: 'cancelled', c: 'cancelled' }, 'failed'), retryReq('constructor')],
  ];
  for (const [name, wf, state, event] of cases) {
    void it(name, () => {
      const r = run(wf, state, event);
      assert.deepEqual(r.lines, []);
      assert.deepEqual(r.decision.state, state);
    });
  }
});

void describe('step_retry_requested: sequences', () => {
  void it('a new attempt family: the whole retry budget again, backoff from the start, attempt monotonic', () => {
    const wf = wfOf({ a: { retry: { maxAttempts: 2 } }, b: { needs: ['a'] } });
    let state = st(wf, { a: 'running/2' });
    const step = (event: SchedulerEvent): string[] => {
      const r = run(wf, state, event);
      state = r.decision.state;
      return r.lines;
    };
    const claim = (id: string): void => {
      const s = state.steps[id]!;
      assert.equal(s.status, 'queued');
      state = { ...state, steps: { ...state.steps, [id]: { ...s, status: 'running', attempt: s.attempt + 1 } } };
    };
    assert.deepEqual(step(failed('a', ERR_R)), ['fail a E_FLAKY', 'cancel b', 'finish failed']);
    assert.deepEqual(step(retryReq('a')), ['status running', 'restart a #2', 'reset b cancelled']);
    assert.deepEqual(state.steps.a, { status: 'queued', attempt: 2, attemptBase: 2 });
    claim('a');
    assert.deepEqual(step(failed('a', ERR_R)), ['retry a #3 1000ms E_FLAKY'], 'family attempt 1 of 2: retried with the first backoff');
    claim('a');
    assert.deepEqual(step(lease('a')), ['retry a #4 2000ms WEFT_LEASE_LOST'], 'the crash allowance counts from the family too');
    claim('a');
    assert.deepEqual(step(ok('a')), ['queue b']);
    claim('b');
    assert.deepEqual(step(ok('b')), ['finish succeeded']);
    assert.equal(state.steps.a?.attempt, 5);
  });

  void it('a retried condition step routes afresh: the other branch is skipped (branch), the picked one runs', () => {
    let state = st(routeFails, { route: 'failed', good: 'skipped', bad: 'skipped', x: 'succeeded' }, 'succeeded');
    assert.deepEqual(run(routeFails, state, retryReq('route')).lines, [], 'a succeeded run (on_error continue) stays finished');
    state = st(routeFails, { route: 'failed', good: 'skipped', bad: 'skipped', x: 'running' });
    const r1 = run(routeFails, state, retryReq('route'));
    state = { ...r1.decision.state, steps: { ...r1.decision.state.steps, route: { status: 'running', attempt: 2, attemptBase: 1 } } };
    assert.deepEqual(run(routeFails, state, ok('route', 'good')).lines, ['skip bad branch', 'queue good']);
  });

  void it('a second retry request for the same step is stale', () => {
    const first = run(chain, st(chain, { a: 'failed', b: 'cancelled', c: 'cancelled' }, 'failed'), retryReq('a'));
    assert.deepEqual(run(chain, first.decision.state, retryReq('a')).lines, []);
  });

  void it('a reset step is decided afresh even if it had run before (its family starts over)', () => {
    // Step mode: d was triggered and running when f's fail-fast failure cancelled it. Retrying f
    // resets d, which must wait for a new trigger — not be queued as if it were a held retry.
    const wf = wfOf({ a: {}, d: { needs: ['a'] }, f: {} });
    const state = stepSt(wf, { a: 'succeeded', d: 'cancelled/1', f: 'failed' }, 'failed');
    const r = run(wf, state, retryReq('f'));
    assert.deepEqual(r.lines, ['status running', 'restart f #1', 'reset d cancelled', 'wait d']);
    assert.deepEqual(r.decision.state.steps.d, { status: 'waiting', attempt: 1, attemptBase: 1 });
  });
});
