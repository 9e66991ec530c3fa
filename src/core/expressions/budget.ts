/**
 * The per-evaluation budget (time, depth, size, allocation) and how the shared node hooks find
 * it: through the evaluation's own JSONata execution frame (`environment.base`) in a WeakMap,
 * attached on the first hook call, which JSONata makes synchronously inside evaluate() before any
 * user code has run. Nothing is looked up by name, so an expression cannot reach its budget.
 * See "Security model" in ../expressions.ts.
 */

import { WeftError } from '../errors.ts';
import { DEFAULT_LIMITS } from './api.ts';
import type { ExpressionLimits } from './api.ts';
import type { AstNode } from './ast.ts';
import { LimitSignal } from './failures.ts';
import type { JFocus, JFrame } from './jsonata-internals.ts';

/** Cumulative allocation allowance of one evaluation, as a multiple of maxResultBytes. */
const ALLOCATION_FACTOR = 16;

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

export interface Budget {
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly maxDepth: number;
  readonly maxBytes: number;
  allocationLeft: number;
  attached: boolean;
  done: boolean;
  failure: Error | undefined;
  /** Evaluation frames JSONata has entered for parallel branches that are not running yet. */
  waiting: number;
  /** The sibling branches being started by the current synchronous Promise.all, if any. */
  burst: { tail: Deferred | undefined } | undefined;
  /** Parallel branches currently running, innermost last (they nest strictly once serialised). */
  running: { node: AstNode; gate: Deferred }[];
  /** Empty arrays an object constructor groups over (JSONata pushes `undefined`); restored after. */
  repairs: Set<unknown[]>;
  /**
   * The TRIVIAL_LEAF node whose entry was this evaluation's last hook call, else undefined. Its
   * exit only did O(1) work since that entry read the clock, so it may skip reading it again
   * (Date.now() costs as much as the rest of a hook call). Every other hook call clears it, so
   * at most one hook call in a row skips the clock.
   */
  freshLeaf: object | undefined;
}

/** Execution frame (environment.base) → the budget of the evaluation that frame belongs to. */
const budgets = new WeakMap<object, Budget>();
/** Handed to the first hook call of the evaluation being started (set/cleared synchronously). */
let attaching: Budget | undefined;
/**
 * The last entry of `budgets` looked up: consecutive hook calls nearly always belong to the same
 * evaluation, and this saves a WeakMap lookup per hook call. Always a copy of an entry of
 * `budgets`, so it never changes which budget a frame gets; cleared by closeBudget so that a
 * finished evaluation's frame is not kept alive.
 */
let lastBase: object | undefined;
let lastBudget: Budget | undefined;

export function resolveLimits(limits: Partial<ExpressionLimits> | undefined): ExpressionLimits {
  const out = { ...DEFAULT_LIMITS };
  if (limits) {
    for (const key of ['timeoutMs', 'maxDepth', 'maxResultBytes'] as const) {
      const v = limits[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
        throw new WeftError('WEFT_INTERNAL', `expression limit ${key} must be a positive number`);
      }
      out[key] = v;
    }
  }
  return out;
}

export function newBudget(limits: ExpressionLimits, deadline?: number): Budget {
  return {
    deadline: deadline ?? Date.now() + limits.timeoutMs,
    timeoutMs: limits.timeoutMs,
    maxDepth: limits.maxDepth,
    maxBytes: limits.maxResultBytes,
    allocationLeft: limits.maxResultBytes * ALLOCATION_FACTOR,
    attached: false,
    done: false,
    failure: undefined,
    waiting: 0,
    burst: undefined,
    running: [],
    repairs: new Set(),
    freshLeaf: undefined,
  };
}

export function fail(b: Budget, kind: string, message: string): never {
  const signal = new LimitSignal(kind, message);
  b.failure ??= signal;
  throw signal;
}

/** Throws if the evaluation has failed or finished; does not read the clock (see checkBudget). */
export function checkOpen(b: Budget): void {
  if (b.failure !== undefined) throw b.failure;
  if (b.done) throw new LimitSignal('cancelled', 'evaluation already finished');
}

export function checkBudget(b: Budget): void {
  checkOpen(b);
  if (Date.now() > b.deadline) fail(b, 'time', `expression evaluation exceeded ${b.timeoutMs} ms`);
}

export function charge(b: Budget, amount: number, what: string): void {
  b.allocationLeft -= amount;
  if (b.allocationLeft < 0) {
    fail(b, 'allocation', `expression allocated too much memory (${what}); limit ${b.maxBytes * ALLOCATION_FACTOR} bytes per evaluation`);
  }
}

/** The budget of the evaluation `frame` belongs to; attaches the pending budget on first use. */
export function budgetOf(frame: JFrame): Budget {
  const base = frame.base;
  if (base === lastBase && lastBudget !== undefined) return lastBudget;
  const found = budgets.get(base);
  if (found !== undefined) {
    lastBase = base;
    lastBudget = found;
    return found;
  }
  const pending = attaching;
  if (pending === undefined || frame !== base || pending.attached) {
    // Fail closed: a hook call we cannot attribute to an evaluation we started.
    throw new LimitSignal('internal', 'expression evaluated without a budget');
  }
  attaching = undefined;
  pending.attached = true;
  budgets.set(base, pending);
  lastBase = base;
  lastBudget = pending;
  // JSONata's own pre-allocation check for $append/array construction reads base.options.sequence.
  base.options = { sequence: Math.max(1, Math.floor(pending.maxBytes / 2)) };
  return pending;
}

/** Mark the evaluation finished: every later hook or built-in call of it fails (see checkOpen). */
export function closeBudget(b: Budget): void {
  b.done = true;
  if (lastBudget === b) {
    lastBase = undefined;
    lastBudget = undefined;
  }
}

export function budgetOfFocus(focus: JFocus): Budget {
  return budgetOf(focus.environment);
}

/**
 * Call `start` (which must call evaluate() on a compiled expression) with `budget` pending: the
 * first hook call JSONata makes synchronously inside evaluate() attaches it to the new frame.
 */
export function startWithBudget<T>(budget: Budget, start: () => T): T {
  attaching = budget;
  try {
    return start();
  } finally {
    attaching = undefined;
  }
}
