/**
 * The entry/exit hooks JSONata calls (and awaits) around every AST node of a compiled
 * expression. They check the evaluation's budget, bound every value a node produces, serialise
 * parallel branches so JSONata's depth counter is exact, and enforce the call, transform and
 * group-by policies described in ../expressions.ts.
 */

import type { AstNode } from './ast.ts';
import type { Budget, Deferred } from './budget.ts';
import { budgetOf, checkBudget, checkOpen, fail } from './budget.ts';
import { LimitSignal, RuntimeSignal } from './failures.ts';
import type { JError, JFrame } from './jsonata-internals.ts';
import { isFunctionLike } from './jsonata-internals.ts';
import { boundValue, volatile } from './measure.ts';
import { OBJECT_CONSTRUCTOR, PARALLEL_LEAF, PARALLEL_ROOT, PATTERN, PROCEDURE, TRIVIAL_LEAF, marksOf } from './node-marks.ts';

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function checkDepth(b: Budget, frame: JFrame): void {
  if (frame.base.depth - b.waiting > b.maxDepth) {
    fail(b, 'depth', `expression evaluation nested deeper than ${b.maxDepth} levels`);
  }
}

/**
 * Entry of a parallel branch: wait until the previous sibling of the same Promise.all has
 * finished. All siblings enter synchronously one after the other (JSONata's map() runs each
 * branch up to its first await, which is this hook), so "the burst" is simply what entered
 * since the last microtask. If a branch throws, later siblings never start — the evaluation is
 * failing anyway and their promises are garbage.
 */
function enterBranch(b: Budget, frame: JFrame, node: AstNode): Promise<void> {
  let burst = b.burst;
  if (burst === undefined) {
    burst = { tail: undefined };
    b.burst = burst;
    queueMicrotask(() => {
      if (b.burst === burst) b.burst = undefined;
    });
  }
  const previous = burst.tail;
  const gate = deferred();
  burst.tail = gate;
  b.waiting++;
  const start = (): void => {
    b.waiting--;
    b.freshLeaf = undefined;
    checkBudget(b);
    checkDepth(b, frame);
    b.running.push({ node, gate });
  };
  return previous === undefined ? Promise.resolve().then(start) : previous.promise.then(start);
}

function exitBranch(b: Budget, node: AstNode): void {
  const top = b.running.pop();
  if (top === undefined || top.node !== node) {
    throw new LimitSignal('internal', 'expression branches finished out of order');
  }
  top.gate.resolve();
}

export function repairGroupInput(input: unknown): void {
  if (Array.isArray(input) && input.length === 1 && input[0] === undefined) input.length = 0;
}

export function onEntry(expr: AstNode, input: unknown, frame: JFrame): void | Promise<void> {
  const b = budgetOf(frame);
  checkBudget(b);
  const marks = marksOf(expr);
  b.freshLeaf = (marks & TRIVIAL_LEAF) !== 0 ? expr : undefined;
  if ((marks & OBJECT_CONSTRUCTOR) !== 0 && Array.isArray(input) && input.length === 0) b.repairs.add(input);
  if ((marks & PARALLEL_LEAF) !== 0) {
    b.waiting++;
    return;
  }
  checkDepth(b, frame);
  if ((marks & PARALLEL_ROOT) !== 0) return enterBranch(b, frame, expr);
}

export function onExit(expr: AstNode, input: unknown, frame: JFrame, result: unknown): void {
  const b = budgetOf(frame);
  const marks = marksOf(expr);
  const fresh = b.freshLeaf === expr;
  b.freshLeaf = undefined;
  if ((marks & PARALLEL_LEAF) !== 0) b.waiting--;
  else if ((marks & PARALLEL_ROOT) !== 0) exitBranch(b, expr);
  if ((marks & OBJECT_CONSTRUCTOR) !== 0 && Array.isArray(input) && b.repairs.has(input)) repairGroupInput(input);
  if (fresh) checkOpen(b); // a trivial leaf right after its own entry: see Budget.freshLeaf
  else checkBudget(b);
  if ((marks & PROCEDURE) !== 0 && typeof result === 'object' && !isFunctionLike(result)) {
    // JSONata would tag the object (proc.token = …) before failing with T1006; fail first.
    const err: JError = { code: 'T1006', position: expr.position, message: 'Attempted to invoke a non-function' };
    throw err;
  }
  if ((marks & PATTERN) !== 0 && result !== undefined) {
    // JSONata iterates an array result and mutates each element.
    const matches = Array.isArray(result) ? result : [result];
    for (const m of matches) {
      if (typeof m === 'function' || (typeof m === 'object' && m !== null && (isFunctionLike(m) || !volatile.has(m)))) {
        throw new RuntimeSignal('the pattern of a transform (| pattern | update |) may only select values inside the copy being transformed');
      }
    }
  }
  boundValue(b, result);
}
