/**
 * JSONata expressions and `{{ … }}` templates, evaluated inside a bounded sandbox.
 *
 * Workflows bind `$input`, `$context` and `$<stepId>` (a prior step's output); the JSONata input
 * document `$` is that same scope object. Everything an expression can see is plain JSON, and
 * everything it returns is converted back to plain JSON.
 *
 * ## Security model (read this before changing anything below)
 *
 * No `eval`, `vm` or `Function`: JSONata is an interpreter written in JS, and we only ever hand it
 * data. JSONata 2.2 already refuses to read inherited properties (`lookup` checks own properties)
 * and builds objects with a null prototype, so `$x.constructor`, `__proto__` and friends evaluate
 * to nothing. On top of that this module adds:
 *
 * - **A budget per evaluation.** JSONata calls the hooks bound under
 *   `Symbol.for('jsonata.__evaluate_entry' | 'jsonata.__evaluate_exit')` around every AST node
 *   and awaits them. JSONata variables are strings, so an expression can never rebind a symbol
 *   key. The hooks are shared by every evaluation of a compiled expression; they find *their*
 *   evaluation's budget through `environment.base` — the execution frame JSONata creates afresh
 *   for each `evaluate()` call — in a WeakMap. The budget is attached to that frame on the very
 *   first hook call, which JSONata makes synchronously inside `evaluate()` before any user code
 *   has run (handed over through a module variable set and cleared around that synchronous
 *   call). Nothing is looked up by name afterwards, so `$budget := …` and the like cannot touch
 *   it; a hook call without an attached budget fails closed.
 *   The budget bounds: wall-clock time (checked on every node entry and exit and inside the
 *   shadowed built-ins' loops); evaluation depth (JSONata's own per-frame `depth` counter); the
 *   approximate JSON size and nesting of every value a node produces (so string/array doubling
 *   and object "DAG bombs" stop at `maxResultBytes`; sizes are memoised per object, so this is
 *   linear); and a cumulative allocation allowance (16 × maxResultBytes) for the operations
 *   that allocate from nothing (ranges, `$pad`, `$join`, `$string`, `$clone`). When an
 *   evaluation ends or fails its budget is closed, so no orphaned branch keeps running.
 * - **Serialised parallel branches.** JSONata evaluates array-constructor items and group-by
 *   values concurrently (Promise.all); that makes its depth counter count nesting × fan-out (a
 *   500-group group-by would look 1500 deep) and lets N branches allocate at once. We hold each
 *   branch at its entry hook until the previous sibling has finished, so evaluation is depth
 *   first, the depth counter is exact and results are unchanged.
 * - **Shadowed built-ins** (bound in the compiled expression's own frame, so they shadow the
 *   static ones; a workflow variable of the same name shadows both, never revealing the original):
 *   `$eval` throws. `$pad`, `$join`, `$string`, `$clone` check the size of what they would build
 *   first. `$match`, `$replace`, `$split`, `$contains` check the budget at every match, and
 *   `$match` stops at MAX_MATCHES. `$split` with a string separator checks the piece count
 *   first. `$distinct` is reimplemented in linear time (JSONata's is quadratic) and `$sort`
 *   without a comparator uses the native sort (JSONata's merge sort slices, quadratic); with a
 *   comparator, every comparison checks the budget.
 * - **Ranges** `[a..b]` are rewritten at compile time into a call of a function bound under a
 *   private symbol, which checks the size against the budget *before* allocating.
 * - **Mutation.** Transforms `~> | pattern | update |` mutate what the pattern selects: only
 *   objects created by our `$clone` (which the transform uses for its copy) are allowed, so
 *   `| $input |` or a user-defined `$clone` cannot mutate caller data. Calling a non-function
 *   object fails before JSONata tags it (`proc.token = …`). Group-by over an empty array makes
 *   JSONata push `undefined` into it: group inputs get a pass-through `[true]` filter (a fresh
 *   sequence), and object constructors over an empty array are restored after the fact.
 * - **Regular expressions** that risk catastrophic backtracking (a repeated group containing a
 *   quantifier or overlapping alternatives) are rejected at compile time: a backtracking run is
 *   one native call that no time check can interrupt. Regexes can only be literals in JSONata,
 *   so this check sees all of them — but it is a heuristic (see regexRisk).
 * - **Source limits.** LIMITS.expressionLength characters, MAX_SOURCE_NESTING brackets deep,
 *   MAX_AST_DEPTH after parsing; a RangeError from the parser becomes WEFT_EXPRESSION_LIMIT.
 * - **Scope values** are caller data. Callers must pass plain JSON (what JSON.parse returns) and
 *   not mutate it afterwards. We verify that once per object (WeakSet cache, so it is O(1) for
 *   values seen before); anything else — accessor properties (getters are never invoked),
 *   non-enumerable properties, non-plain prototypes, functions, symbols, non-finite numbers,
 *   array holes — is replaced by a plain copy of its own enumerable data properties. Proxies
 *   cannot be detected without `node:util`: do not pass them.
 * - **Results** are converted to plain JSON: sequences become arrays, null-prototype objects
 *   become ordinary objects (a `"__proto__"` key becomes an own property, never a prototype),
 *   and a function or lambda anywhere in a result is an error (WEFT_EXPRESSION_ERROR).
 *   `undefined` means "no value".
 *
 * Known gaps (bounded, not eliminated): the time budget is wall-clock, so evaluations running
 * concurrently share it with each other's CPU use; a built-in higher-order function (`$map`,
 * `$filter`, `$reduce`, `$each`, `$sift`, `$single`) applied with another *built-in* rather than a
 * lambda runs without a time check until it finishes (one pass over an array that is itself
 * bounded by maxResultBytes); single native operations on a maximal string (`$length`,
 * `$substring` copy it into an array, `$encodeUrl` may grow it 9×) run to completion before the
 * next check; polynomial regexes (`.*a.*a.*a`) are not detected; `$now()`/`$millis()`/`$random()`
 * are not deterministic (JSONata also shares the `$now()` timestamp between concurrent
 * evaluations of one compiled expression).
 */

import jsonata from 'jsonata';
import { WeftError } from './errors.ts';
import { LIMITS } from './definition-schema.ts';

// ---------------------------------------------------------------------------------------------
// Public API types

export interface ExpressionLimits {
  /** Wall-clock budget of one evaluation (one expression, or one whole template). */
  timeoutMs: number;
  /** Maximum evaluation depth (JSONata's nested evaluation frames) and value nesting depth. */
  maxDepth: number;
  /** Maximum approximate JSON size of the result and of every intermediate value. */
  maxResultBytes: number;
}

export const DEFAULT_LIMITS: ExpressionLimits = Object.freeze({
  timeoutMs: 250,
  maxDepth: 300,
  maxResultBytes: 8 * 1024 * 1024,
});

export type TemplatePart = { kind: 'text'; text: string } | { kind: 'expr'; src: string; offset: number };

/** An expression that compiled; opaque apart from its source and free variables. */
export interface CompiledExpression {
  readonly source: string;
  /** Same as freeVariables(source). */
  readonly variables: readonly string[];
}

/**
 * Names of JSONata's built-in functions (plus `$now`/`$millis`). Calling one of these is not a
 * variable reference; passing one as a value (`$map(xs, $string)`) is reported as a free variable
 * by freeVariables — callers may use this set to tell the two apart.
 */
export const JSONATA_BUILTINS: ReadonlySet<string> = new Set([
  'sum', 'count', 'max', 'min', 'average', 'string', 'substring', 'substringBefore', 'substringAfter',
  'lowercase', 'uppercase', 'length', 'trim', 'pad', 'match', 'contains', 'replace', 'split', 'join',
  'formatNumber', 'formatBase', 'formatInteger', 'parseInteger', 'number', 'floor', 'ceil', 'round',
  'abs', 'sqrt', 'power', 'random', 'boolean', 'not', 'map', 'zip', 'filter', 'single', 'reduce',
  'sift', 'keys', 'lookup', 'append', 'exists', 'spread', 'merge', 'reverse', 'each', 'error',
  'assert', 'type', 'sort', 'shuffle', 'distinct', 'base64encode', 'base64decode',
  'encodeUrlComponent', 'encodeUrl', 'decodeUrlComponent', 'decodeUrl', 'eval', 'toMillis',
  'fromMillis', 'clone', 'now', 'millis',
]);

// ---------------------------------------------------------------------------------------------
// Internal constants

/** Compiled expressions kept (least recently used evicted first). */
const CACHE_SIZE = 2000;
/** Parsed templates kept. */
const TEMPLATE_CACHE_SIZE = 1000;
/** Bracket nesting accepted in source, and AST depth accepted after parsing. */
const MAX_SOURCE_NESTING = 128;
const MAX_AST_DEPTH = 200;
/** `$match` returns at most this many matches (more is a WEFT_EXPRESSION_LIMIT error). */
const MAX_MATCHES = 100_000;
/** Cumulative allocation allowance of one evaluation, as a multiple of maxResultBytes. */
const ALLOCATION_FACTOR = 16;
/** Nesting accepted in values walked by resolveBindings/renderTemplates (definition values). */
const MAX_WALK_DEPTH = 256;

const ENTRY_HOOK = Symbol.for('jsonata.__evaluate_entry');
const EXIT_HOOK = Symbol.for('jsonata.__evaluate_exit');
/** Bound to our range function; unreachable from JSONata source (variables are strings). */
const RANGE_FN = Symbol('weft.range');

// ---------------------------------------------------------------------------------------------
// Minimal typings of JSONata internals we touch

interface AstNode {
  type?: string;
  value?: unknown;
  position?: number;
  [key: string]: unknown;
}

interface JFrame {
  base: JBase;
  lookup(name: string | symbol): unknown;
}

interface JBase extends JFrame {
  depth: number;
  options?: unknown;
}

interface JFocus {
  environment: JFrame;
  input: unknown;
  createSequence(...items: unknown[]): unknown[];
}

type JImpl = (this: JFocus, ...args: unknown[]) => unknown;

interface JFunctionDef {
  _jsonata_function: true;
  implementation: JImpl;
}

/** A JSONata-style error (plain object with a code). */
interface JError {
  code: string;
  position?: number;
  token?: unknown;
  value?: unknown;
  message?: string;
  index?: number;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Thrown inside an evaluation for a limit breach; converted to WEFT_EXPRESSION_LIMIT. */
class LimitSignal extends Error {
  readonly kind: string;
  constructor(kind: string, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Thrown inside an evaluation for a policy violation; converted to WEFT_EXPRESSION_ERROR. */
class RuntimeSignal extends Error {}

const LIMIT_CODES = new Set(['D1011', 'D1012', 'D2014', 'D2015']);

function isJsonataError(e: unknown): e is JError {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    && /^[A-Z]\d{4}$/.test((e as { code: string }).code);
}

function limitError(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_EXPRESSION_LIMIT', message, { retryable: false, details });
}

function syntaxError(message: string, details?: Record<string, unknown>): WeftError {
  return new WeftError('WEFT_EXPRESSION_SYNTAX', message, { retryable: false, details });
}

function describeJsonataError(e: JError): string {
  const where = typeof e.position === 'number' ? ` at position ${e.position}` : '';
  return `JSONata ${e.code}${where}: ${e.message ?? 'error'}`;
}

/** Convert anything thrown by an evaluation into a WeftError. */
function toRuntimeError(err: unknown): WeftError {
  if (err instanceof WeftError) return err;
  if (err instanceof LimitSignal) {
    return new WeftError('WEFT_EXPRESSION_LIMIT', err.message, { retryable: false, details: { limit: err.kind } });
  }
  if (err instanceof RuntimeSignal) {
    return new WeftError('WEFT_EXPRESSION_ERROR', err.message, { retryable: false });
  }
  if (err instanceof RangeError) {
    // Stack overflow, or a string/array longer than V8 allows.
    return new WeftError('WEFT_EXPRESSION_LIMIT', `expression exceeded an engine limit: ${err.message}`, {
      retryable: false, details: { limit: 'engine' },
    });
  }
  if (isJsonataError(err)) {
    const details = { jsonataCode: err.code, position: err.position, token: typeof err.token === 'string' ? err.token : undefined };
    const code = LIMIT_CODES.has(err.code) ? 'WEFT_EXPRESSION_LIMIT' : 'WEFT_EXPRESSION_ERROR';
    return new WeftError(code, `expression failed: ${describeJsonataError(err)}`, { retryable: false, details });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new WeftError('WEFT_EXPRESSION_ERROR', `expression failed: ${message}`, { retryable: false });
}

// ---------------------------------------------------------------------------------------------
// Per-evaluation budget

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

interface Budget {
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
}

/** Execution frame (environment.base) → the budget of the evaluation that frame belongs to. */
const budgets = new WeakMap<object, Budget>();
/** Handed to the first hook call of the evaluation being started (set/cleared synchronously). */
let attaching: Budget | undefined;

function resolveLimits(limits: Partial<ExpressionLimits> | undefined): ExpressionLimits {
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

function newBudget(limits: ExpressionLimits, deadline?: number): Budget {
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
  };
}

function fail(b: Budget, kind: string, message: string): never {
  const signal = new LimitSignal(kind, message);
  b.failure ??= signal;
  throw signal;
}

function checkBudget(b: Budget): void {
  if (b.failure !== undefined) throw b.failure;
  if (b.done) throw new LimitSignal('cancelled', 'evaluation already finished');
  if (Date.now() > b.deadline) fail(b, 'time', `expression evaluation exceeded ${b.timeoutMs} ms`);
}

function charge(b: Budget, amount: number, what: string): void {
  b.allocationLeft -= amount;
  if (b.allocationLeft < 0) {
    fail(b, 'allocation', `expression allocated too much memory (${what}); limit ${b.maxBytes * ALLOCATION_FACTOR} bytes per evaluation`);
  }
}

/** The budget of the evaluation `frame` belongs to; attaches the pending budget on first use. */
function budgetOf(frame: JFrame): Budget {
  const base = frame.base;
  const found = budgets.get(base);
  if (found !== undefined) return found;
  const pending = attaching;
  if (pending === undefined || frame !== base || pending.attached) {
    // Fail closed: a hook call we cannot attribute to an evaluation we started.
    throw new LimitSignal('internal', 'expression evaluated without a budget');
  }
  attaching = undefined;
  pending.attached = true;
  budgets.set(base, pending);
  // JSONata's own pre-allocation check for $append/array construction reads base.options.sequence.
  base.options = { sequence: Math.max(1, Math.floor(pending.maxBytes / 2)) };
  return pending;
}

function budgetOfFocus(focus: JFocus): Budget {
  return budgetOf(focus.environment);
}

// ---------------------------------------------------------------------------------------------
// Value measurement (approximate JSON size and nesting), memoised per object

interface Measured {
  size: number;
  height: number;
}

/** Objects whose size/height are known and cannot change (JSONata results, verified scope values). */
const sizeMemo = new WeakMap<object, Measured>();
/** Objects created by our $clone: the transform operator mutates them, so never memoise them. */
const volatile = new WeakSet<object>();
/** Scope objects verified to be plain JSON (they and everything below them). */
const verifiedPlain = new WeakSet<object>();

function isFunctionLike(v: unknown): boolean {
  if (typeof v === 'function') return true;
  if (typeof v !== 'object' || v === null) return false;
  const o = v as { _jsonata_function?: unknown; _jsonata_lambda?: unknown };
  return o._jsonata_function === true || o._jsonata_lambda === true;
}

interface MeasureContext {
  maxBytes: number;
  maxDepth: number;
  reachedLevel: number;
  unstable: boolean;
  /** Breaches fail this evaluation's budget. */
  budget: Budget;
}

function exceeded(ctx: MeasureContext, kind: 'size' | 'depth', message: string): never {
  fail(ctx.budget, kind, `expression produced a ${message}`);
}

function primitiveSize(v: unknown): number {
  switch (typeof v) {
    case 'string':
      return v.length + 2;
    case 'number':
      return 8;
    case 'boolean':
      return 5;
    default:
      return v === null ? 4 : 0;
  }
}

/** Approximate JSON size of `v` at nesting `level`; throws via ctx.onExceed past the limits. */
function measureAt(v: unknown, level: number, ctx: MeasureContext): number {
  if (typeof v !== 'object' || v === null) return primitiveSize(v);
  if (isFunctionLike(v)) return 0;
  const memo = sizeMemo.get(v);
  if (memo !== undefined) {
    const reached = level + memo.height;
    if (reached > ctx.maxDepth) exceeded(ctx, 'depth', `value nested deeper than ${ctx.maxDepth} levels`);
    if (memo.size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    if (reached > ctx.reachedLevel) ctx.reachedLevel = reached;
    return memo.size;
  }
  if (level + 1 > ctx.maxDepth) exceeded(ctx, 'depth', `value nested deeper than ${ctx.maxDepth} levels`);
  const outerReached = ctx.reachedLevel;
  const outerUnstable = ctx.unstable;
  ctx.reachedLevel = level + 1;
  ctx.unstable = volatile.has(v);
  let size = 2;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      size += measureAt(v[i], level + 1, ctx) + 1;
      if (size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    }
  } else {
    const record = v as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      size += key.length + 4 + measureAt(record[key], level + 1, ctx);
      if (size > ctx.maxBytes) exceeded(ctx, 'size', `value larger than ${ctx.maxBytes} bytes`);
    }
  }
  const height = ctx.reachedLevel - level;
  if (!ctx.unstable) sizeMemo.set(v, { size, height });
  ctx.reachedLevel = Math.max(outerReached, ctx.reachedLevel);
  ctx.unstable = outerUnstable || ctx.unstable;
  return size;
}

function measureInBudget(b: Budget, v: unknown): Measured {
  const ctx: MeasureContext = { maxBytes: b.maxBytes, maxDepth: b.maxDepth, reachedLevel: 0, unstable: false, budget: b };
  const size = measureAt(v, 0, ctx);
  return { size, height: ctx.reachedLevel };
}

/** Bound a value some AST node produced. Scope values read as they are were verified up front. */
function boundValue(b: Budget, v: unknown): void {
  if (typeof v === 'string') {
    if (v.length + 2 > b.maxBytes) fail(b, 'size', `expression produced a string longer than ${b.maxBytes} characters`);
    return;
  }
  if (typeof v !== 'object' || v === null || verifiedPlain.has(v)) return;
  measureInBudget(b, v);
}

function markVolatile(v: unknown, level = 0): void {
  if (typeof v !== 'object' || v === null || level > 10_000) return;
  volatile.add(v);
  if (Array.isArray(v)) for (const e of v) markVolatile(e, level + 1);
  else for (const key of Object.keys(v)) markVolatile((v as Record<string, unknown>)[key], level + 1);
}

// ---------------------------------------------------------------------------------------------
// Hooks

/** AST nodes in call position (their value gets tagged by JSONata if it is an object). */
const procedureNodes = new WeakSet<object>();
/** AST nodes that are the pattern of a transform (their values get mutated). */
const patternNodes = new WeakSet<object>();
/** Object constructors `{…}`: JSONata pushes `undefined` into an empty input array. */
const objectConstructors = new WeakSet<object>();
/**
 * Items of array constructors and values of group-by / object constructors: JSONata evaluates
 * them concurrently (Promise.all). We run them one after the other (see enterBranch) so that
 * JSONata's per-evaluation `depth` counter measures real nesting rather than nesting × fan-out.
 * Leaves (literals, plain variables) cannot nest, so they are only counted out of the depth.
 */
const parallelRoots = new WeakSet<object>();
const parallelLeaves = new WeakSet<object>();

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

function repairGroupInput(input: unknown): void {
  if (Array.isArray(input) && input.length === 1 && input[0] === undefined) input.length = 0;
}

function onEntry(expr: AstNode, input: unknown, frame: JFrame): void | Promise<void> {
  const b = budgetOf(frame);
  checkBudget(b);
  if (objectConstructors.has(expr) && Array.isArray(input) && input.length === 0) b.repairs.add(input);
  if (parallelLeaves.has(expr)) {
    b.waiting++;
    return;
  }
  checkDepth(b, frame);
  if (parallelRoots.has(expr)) return enterBranch(b, frame, expr);
}

function onExit(expr: AstNode, input: unknown, frame: JFrame, result: unknown): void {
  const b = budgetOf(frame);
  if (parallelLeaves.has(expr)) b.waiting--;
  else if (parallelRoots.has(expr)) exitBranch(b, expr);
  if (objectConstructors.has(expr) && Array.isArray(input) && b.repairs.has(input)) repairGroupInput(input);
  checkBudget(b);
  if (procedureNodes.has(expr) && typeof result === 'object' && !isFunctionLike(result)) {
    // JSONata would tag the object (proc.token = …) before failing with T1006; fail first.
    const err: JError = { code: 'T1006', position: expr.position, message: 'Attempted to invoke a non-function' };
    throw err;
  }
  if (patternNodes.has(expr) && result !== undefined) {
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

// ---------------------------------------------------------------------------------------------
// Built-ins: originals, and the shadows we bind instead

const SHADOWED = ['eval', 'pad', 'join', 'string', 'clone', 'match', 'replace', 'split', 'contains', 'distinct', 'sort'] as const;
type ShadowedName = (typeof SHADOWED)[number];

/**
 * Capture JSONata's own built-in definitions: the entry hook of a probe expression runs
 * synchronously inside evaluate(), where the static frame is reachable through lookup().
 */
function captureBuiltins(names: readonly string[], setup?: (e: jsonata.Expression) => void): Map<string, JFunctionDef> {
  const found = new Map<string, JFunctionDef>();
  const probe = jsonata('0');
  setup?.(probe);
  probe.assign(ENTRY_HOOK as unknown as string, (_e: unknown, _i: unknown, frame: JFrame) => {
    for (const name of names) found.set(name, frame.lookup(name) as JFunctionDef);
  });
  probe.evaluate({}).catch(() => undefined);
  for (const name of names) {
    const def = found.get(name);
    if (def === undefined || def._jsonata_function !== true) {
      throw new Error(`weft expressions: cannot capture JSONata built-in $${name} (unsupported jsonata version?)`);
    }
  }
  return found;
}

const originals = captureBuiltins(SHADOWED);

function original(name: ShadowedName): JImpl {
  const def = originals.get(name);
  if (def === undefined) throw new Error(`missing built-in ${name}`);
  return def.implementation;
}

const origPad = original('pad');
const origJoin = original('join');
const origString = original('string');
const origClone = original('clone');
const origMatch = original('match');
const origReplace = original('replace');
const origSplit = original('split');
const origContains = original('contains');
const origSort = original('sort');

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

type MatcherFn = (this: unknown, ...args: unknown[]) => unknown;

/** Wrap a matcher (regex closure or lambda closure) so every match, including `next()`, checks the budget. */
function guardMatcher(b: Budget, fn: MatcherFn): MatcherFn {
  const wrapResult = (r: unknown): unknown => {
    if (typeof r === 'object' && r !== null && typeof (r as { next?: unknown }).next === 'function') {
      const next = (r as { next: MatcherFn }).next;
      return { ...(r as object), next: guardMatcher(b, next) };
    }
    return r;
  };
  const guarded = function (this: unknown, ...args: unknown[]): unknown {
    checkBudget(b);
    const r = fn.apply(this, args);
    return isPromiseLike(r) ? Promise.resolve(r).then(wrapResult) : wrapResult(r);
  };
  (guarded as unknown as { arity?: unknown }).arity = (fn as unknown as { arity?: unknown }).arity;
  return guarded;
}

function guardFunctionArg(b: Budget, v: unknown): unknown {
  return typeof v === 'function' ? guardMatcher(b, v as MatcherFn) : v;
}

function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

function jsonataThrow(code: string, extra: Partial<JError> = {}): never {
  const err: JError = { code, ...extra };
  throw err;
}

const shadows: Record<ShadowedName, { impl: JImpl; signature?: string }> = {
  eval: {
    impl() {
      throw new RuntimeSignal('$eval is disabled in weft expressions');
    },
  },
  pad: {
    signature: '<s-ns?:s>',
    impl(str, width, char) {
      const b = budgetOfFocus(this);
      if (typeof str === 'string' && typeof width === 'number') {
        const w = Math.abs(Math.trunc(width));
        const charLen = typeof char === 'string' && char.length > 0 ? char.length : 1;
        const cost = Math.max(w - codePointLength(str), 0) * charLen + str.length;
        if (!(cost + 2 <= b.maxBytes)) fail(b, 'size', `$pad would build a string of ${cost} characters (limit ${b.maxBytes})`);
        charge(b, cost, '$pad');
      }
      return origPad.call(this, str, width, char);
    },
  },
  join: {
    signature: '<a<s>s?:s>',
    impl(strs, separator) {
      const b = budgetOfFocus(this);
      if (Array.isArray(strs)) {
        const sep = typeof separator === 'string' ? separator.length : 0;
        let total = Math.max(strs.length - 1, 0) * sep;
        for (const s of strs) total += typeof s === 'string' ? s.length : 0;
        if (total + 2 > b.maxBytes) fail(b, 'size', `$join would build a string of ${total} characters (limit ${b.maxBytes})`);
        charge(b, total, '$join');
      }
      return origJoin.call(this, strs, separator);
    },
  },
  string: {
    signature: '<x-b?:s>',
    impl(arg, prettify) {
      const b = budgetOfFocus(this);
      if (typeof arg === 'object' && arg !== null && !isFunctionLike(arg)) {
        const m = measureInBudget(b, arg);
        let cost = m.size;
        if (prettify === true) cost = prettySize(b, arg, 0);
        if (cost + 2 > b.maxBytes) fail(b, 'size', `$string would build a string of about ${cost} characters (limit ${b.maxBytes})`);
        charge(b, cost, '$string');
      }
      return origString.call(this, arg, prettify);
    },
  },
  clone: {
    signature: '<(oa)-:o>',
    impl(arg) {
      const b = budgetOfFocus(this);
      if (typeof arg === 'object' && arg !== null) charge(b, measureInBudget(b, arg).size * 2, '$clone');
      const copy = origClone.call(this, arg);
      markVolatile(copy);
      return copy;
    },
  },
  match: {
    signature: '<s-f<s:o>n?:a<o>>',
    async impl(str, regex, limit) {
      const b = budgetOfFocus(this);
      const capped = typeof limit === 'number' && limit >= 0 && limit <= MAX_MATCHES;
      const effective = typeof limit === 'number' && limit < 0 ? limit : capped ? limit : MAX_MATCHES + 1;
      const result = await origMatch.call(this, str, guardFunctionArg(b, regex), effective);
      if (!capped && Array.isArray(result) && result.length > MAX_MATCHES) {
        fail(b, 'size', `$match found more than ${MAX_MATCHES} matches; pass a limit`);
      }
      return result;
    },
  },
  replace: {
    signature: '<s-(sf)(sf)n?:s>',
    impl(str, pattern, replacement, limit) {
      const b = budgetOfFocus(this);
      return origReplace.call(this, str, guardFunctionArg(b, pattern), guardFunctionArg(b, replacement), limit);
    },
  },
  split: {
    signature: '<s-(sf)n?:a<s>>',
    impl(str, separator, limit) {
      const b = budgetOfFocus(this);
      if (typeof str === 'string' && typeof separator === 'string') {
        const max = typeof limit === 'number' && limit >= 0 ? limit : Infinity;
        let pieces = 1;
        if (separator === '') {
          pieces = str.length;
        } else {
          for (let i = str.indexOf(separator); i !== -1 && pieces <= max; i = str.indexOf(separator, i + separator.length)) {
            pieces++;
            if (pieces % 4096 === 0) checkBudget(b);
          }
        }
        pieces = Math.min(pieces, max);
        const estimate = str.length + pieces * 3 + 2;
        if (estimate > b.maxBytes) fail(b, 'size', `$split would produce ${pieces} pieces (about ${estimate} bytes, limit ${b.maxBytes})`);
      }
      return origSplit.call(this, str, guardFunctionArg(b, separator), limit);
    },
  },
  contains: {
    signature: '<s-(sf):b>',
    impl(str, token) {
      const b = budgetOfFocus(this);
      return origContains.call(this, str, guardFunctionArg(b, token));
    },
  },
  distinct: {
    signature: '<x:x>',
    impl(arr) {
      const b = budgetOfFocus(this);
      if (!Array.isArray(arr) || arr.length <= 1) return arr;
      // JSONata compares every pair (quadratic). Same semantics — keep the first of each set of
      // deep-equal values — in linear time, keyed by a canonical (sorted-key) encoding.
      measureInBudget(b, arr);
      const seen = new Set<string>();
      const identities = new Map<object, string>();
      const results = (arr as { sequence?: unknown }).sequence === true ? this.createSequence() : [];
      for (const value of arr) {
        const key = canonicalKey(value, identities);
        if (!seen.has(key)) {
          seen.add(key);
          results.push(value);
        }
      }
      return results;
    },
  },
  sort: {
    signature: '<af?:a>',
    impl(arr, comparator) {
      const b = budgetOfFocus(this);
      if (arr === undefined) return undefined;
      if (!Array.isArray(arr) || arr.length <= 1) return arr;
      if (comparator === undefined) {
        // JSONata's merge sort slices arrays at every step (quadratic). The default comparator
        // (a > b, stable) is exactly a stable ascending native sort.
        const allNumbers = arr.every((v) => typeof v === 'number');
        const allStrings = !allNumbers && arr.every((v) => typeof v === 'string');
        if (!allNumbers && !allStrings) jsonataThrow('D3070', { index: 1 });
        return [...(arr as (number | string)[])].sort((x, y) => (x > y ? 1 : x < y ? -1 : 0));
      }
      return origSort.call(this, arr, guardFunctionArg(b, comparator));
    },
  },
};

/** Canonical encoding for $distinct: deep-equal values (JSONata's isDeepEqual) map to one key. */
function canonicalKey(v: unknown, identities: Map<object, string>): string {
  if (v === undefined) return 'u';
  if (typeof v === 'string') return 's' + JSON.stringify(v);
  if (typeof v === 'number') return 'n' + (Object.is(v, -0) ? '0' : String(v));
  if (typeof v === 'boolean' || v === null) return 'p' + String(v);
  if (typeof v === 'object' && !isFunctionLike(v)) {
    if (Array.isArray(v)) return '[' + v.map((e) => canonicalKey(e, identities)).join(',') + ']';
    const record = v as Record<string, unknown>;
    const keys = Object.getOwnPropertyNames(record).sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalKey(record[k], identities)).join(',') + '}';
  }
  // Functions, lambdas: equal only to themselves.
  const obj = v as object;
  let id = identities.get(obj);
  if (id === undefined) {
    id = 'f' + identities.size;
    identities.set(obj, id);
  }
  return id;
}

/** Size of JSON.stringify(v, null, 2): each value on its own line, indented two spaces per level. */
function prettySize(b: Budget, v: unknown, level: number): number {
  if (typeof v !== 'object' || v === null || isFunctionLike(v)) return primitiveSize(v);
  let size = 2 + 2 * level + 1;
  const step = (child: unknown, extra: number): void => {
    size += extra + 2 * (level + 1) + 2 + prettySize(b, child, level + 1);
    if (size > b.maxBytes) fail(b, 'size', `$string would build a string larger than ${b.maxBytes} characters`);
  };
  if (Array.isArray(v)) for (const e of v) step(e, 0);
  else for (const key of Object.keys(v)) step((v as Record<string, unknown>)[key], key.length + 4);
  return size;
}

/** Our range operator: same semantics as JSONata's `..`, but sized against the budget first. */
function rangeImpl(this: JFocus, lhs: unknown, rhs: unknown): unknown {
  const b = budgetOfFocus(this);
  if (lhs !== undefined && !Number.isInteger(lhs)) jsonataThrow('T2003', { value: lhs, token: '..' });
  if (rhs !== undefined && !Number.isInteger(rhs)) jsonataThrow('T2004', { value: rhs, token: '..' });
  if (typeof lhs !== 'number' || typeof rhs !== 'number' || lhs > rhs) return undefined;
  const size = rhs - lhs + 1;
  const bytes = size * 9 + 2;
  if (bytes > b.maxBytes) fail(b, 'size', `range [${lhs}..${rhs}] has ${size} elements (about ${bytes} bytes, limit ${b.maxBytes})`);
  charge(b, bytes, 'range');
  const result = new Array<number>(size);
  for (let i = 0; i < size; i++) result[i] = lhs + i;
  (result as unknown as { sequence: boolean }).sequence = true;
  return result;
}

/** The shadow definitions, built once by JSONata itself (so they carry parsed signatures). */
const shadowDefs = captureBuiltins([...SHADOWED], (factory) => {
  for (const name of SHADOWED) {
    const { impl, signature } = shadows[name];
    factory.registerFunction(name, impl as unknown as (this: jsonata.Focus, ...args: unknown[]) => unknown, signature);
  }
});
const rangeDef = (() => {
  const key = 'weftRange';
  return captureBuiltins([key], (factory) => {
    factory.registerFunction(key, rangeImpl as unknown as (this: jsonata.Focus, ...args: unknown[]) => unknown);
  }).get(key);
})();

// ---------------------------------------------------------------------------------------------
// Compilation

interface Internal {
  expr: jsonata.Expression;
}

const internals = new WeakMap<CompiledExpression, Internal>();
const cache = new Map<string, CompiledExpression>();

function cacheGet<V>(map: Map<string, V>, key: string): V | undefined {
  const hit = map.get(key);
  if (hit !== undefined) {
    map.delete(key);
    map.set(key, hit);
  }
  return hit;
}

function cacheSet<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
  map.set(key, value);
}

/** Deepest bracket nesting, ignoring string literals, quoted names and comments. */
function sourceNesting(src: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      i = end === -1 ? src.length : end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end === -1 ? src.length : end + 1;
    } else if (c === '(' || c === '[' || c === '{') {
      depth++;
      if (depth > max) max = depth;
    } else if (c === ')' || c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    }
  }
  return max;
}

/** Child AST nodes of a processed JSONata AST node. */
function childNodes(n: AstNode): AstNode[] {
  const out: AstNode[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) out.push(v as AstNode);
  };
  const addAll = (v: unknown): void => {
    if (Array.isArray(v)) for (const e of v) add(e);
  };
  const addPairs = (v: unknown): void => {
    if (Array.isArray(v)) for (const pair of v) if (Array.isArray(pair)) for (const e of pair) add(e);
  };
  switch (n.type) {
    case 'path':
      addAll(n.steps);
      break;
    case 'binary':
    case 'apply':
    case 'bind':
      add(n.lhs);
      add(n.rhs);
      break;
    case 'unary':
      if (n.value === '[') addAll(n.expressions);
      else if (n.value === '{') addPairs(n.lhs);
      else add(n.expression);
      break;
    case 'function':
    case 'partial':
      add(n.procedure);
      addAll(n.arguments);
      break;
    case 'lambda':
      add(n.body);
      break;
    case 'condition':
      add(n.condition);
      add(n.then);
      add(n.else);
      break;
    case 'transform':
      add(n.pattern);
      add(n.update);
      add(n.delete);
      break;
    case 'block':
      addAll(n.expressions);
      break;
    case 'sort':
      if (Array.isArray(n.terms)) for (const t of n.terms) add((t as { expression?: unknown }).expression);
      break;
    default:
      break;
  }
  for (const list of [n.predicate, n.stages]) {
    if (Array.isArray(list)) for (const s of list) if ((s as AstNode).type === 'filter') add((s as AstNode).expr);
  }
  const group = n.group as { lhs?: unknown } | undefined;
  if (group) addPairs(group.lhs);
  return out;
}

/**
 * Why a regular expression literal risks catastrophic backtracking, or undefined. Heuristic:
 * a group repeated by `*`, `+` or `{n,m}` (m > 1) may not contain a quantifier itself (`(a+)+`,
 * `(a?){20}`), nor alternatives that are not distinct plain literals (`(a|a)*`, `(a|ab)+`,
 * `(\s|,)+` — write `[\s,]+`). Polynomial patterns such as `.*a.*a.*a` are not detected.
 */
function regexRisk(source: string, ignoreCase: boolean): string | undefined {
  interface Group {
    bodyStart: number;
    quantified: boolean;
  }
  const stack: Group[] = [];
  let closed: { quantified: boolean; alternation: 'none' | 'safe' | 'unsafe' } | undefined;
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') {
      i += 2;
      closed = undefined;
    } else if (c === '[') {
      i++;
      if (source[i] === '^') i++;
      if (source[i] === ']') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      i++;
      closed = undefined;
    } else if (c === '(') {
      let bodyStart = i + 1;
      if (source[i + 1] === '?') {
        const next = source[i + 2];
        if (next === ':' || next === '=' || next === '!') bodyStart = i + 3;
        else if (next === '<' && (source[i + 3] === '=' || source[i + 3] === '!')) bodyStart = i + 4;
        else if (next === '<') bodyStart = Math.max(source.indexOf('>', i) + 1, i + 3);
      }
      stack.push({ bodyStart, quantified: false });
      i = bodyStart;
      closed = undefined;
    } else if (c === ')') {
      const group = stack.pop();
      if (group !== undefined) {
        closed = { quantified: group.quantified, alternation: alternationRisk(source.slice(group.bodyStart, i), ignoreCase) };
        const parent = stack[stack.length - 1];
        if (parent !== undefined && group.quantified) parent.quantified = true;
      } else {
        closed = undefined;
      }
      i++;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      let repeats = c !== '?';
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i, i + 40));
        if (m === null) {
          i++;
          closed = undefined;
          continue;
        }
        const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        repeats = max > 1;
        i += m[0].length;
      } else {
        i++;
      }
      if (repeats && closed !== undefined) {
        if (closed.quantified) return 'a repeated group contains another quantifier';
        if (closed.alternation === 'unsafe') return 'a repeated group has alternatives that can match the same text';
      }
      const top = stack[stack.length - 1];
      if (top !== undefined) top.quantified = true;
      if (source[i] === '?') i++; // lazy modifier
      closed = undefined;
    } else {
      i++;
      closed = undefined;
    }
  }
  return undefined;
}

function alternationRisk(body: string, ignoreCase: boolean): 'none' | 'safe' | 'unsafe' {
  if (!body.includes('|')) return 'none';
  if (/[\\^$.?*+()[\]{}]/.test(body)) return 'unsafe';
  const alternatives = body.split('|').map((a) => (ignoreCase ? a.toLowerCase() : a));
  if (new Set(alternatives).size !== alternatives.length) return 'unsafe';
  for (const a of alternatives) {
    if (a === '') return 'unsafe';
    for (const other of alternatives) if (other !== a && other.startsWith(a)) return 'unsafe';
  }
  return 'safe';
}

interface Analysis {
  /** `a..b` nodes, rewritten after free-variable analysis. */
  ranges: AstNode[];
  /** Nodes carrying a group-by, whose input gets copied first (see protectGroupInput). */
  groupHolders: AstNode[];
}

const LEAF_TYPES = new Set(['string', 'number', 'value', 'regex', 'variable']);

function isLeaf(n: AstNode): boolean {
  return typeof n.type === 'string' && LEAF_TYPES.has(n.type) && n.predicate === undefined && n.group === undefined
    && n.stages === undefined;
}

function markParallel(v: unknown): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return;
  const n = v as AstNode;
  if (isLeaf(n)) parallelLeaves.add(n);
  else parallelRoots.add(n);
}

function markGroupValues(pairs: unknown): void {
  if (Array.isArray(pairs)) for (const pair of pairs) if (Array.isArray(pair)) markParallel(pair[1]);
}

function analyse(root: AstNode): Analysis {
  const ranges: AstNode[] = [];
  const groupHolders: AstNode[] = [];
  const visit = (n: AstNode, level: number): void => {
    if (level > MAX_AST_DEPTH) {
      throw limitError(`expression is nested deeper than ${MAX_AST_DEPTH} levels`);
    }
    if (n.type === 'binary' && n.value === '..') ranges.push(n);
    if (n.type === 'function' || n.type === 'partial') {
      if (typeof n.procedure === 'object' && n.procedure !== null) procedureNodes.add(n.procedure);
    }
    if (n.type === 'transform' && typeof n.pattern === 'object' && n.pattern !== null) patternNodes.add(n.pattern);
    if (n.type === 'unary' && n.value === '[' && Array.isArray(n.expressions)) for (const e of n.expressions) markParallel(e);
    if (n.type === 'unary' && n.value === '{') {
      objectConstructors.add(n);
      markGroupValues(n.lhs);
    }
    if (n.group !== undefined) {
      groupHolders.push(n);
      markGroupValues((n.group as { lhs?: unknown } | undefined)?.lhs);
    }
    if (n.type === 'regex' && n.value instanceof RegExp) {
      const risk = regexRisk(n.value.source, n.value.flags.includes('i'));
      if (risk !== undefined) {
        throw limitError(
          `regular expression /${n.value.source}/ at position ${n.position ?? '?'} risks catastrophic backtracking: ${risk}`,
          { position: n.position },
        );
      }
    }
    for (const child of childNodes(n)) visit(child, level + 1);
  };
  visit(root, 1);
  return { ranges, groupHolders };
}

/**
 * JSONata's group-by pushes `undefined` into its input when that is an empty array — which may
 * be the caller's array. A pass-through filter `[true]` before the grouping hands it a fresh
 * sequence with the same items instead (same result, caller data untouched). Object
 * constructors `{…}` group their context directly; those are repaired in the hooks instead.
 * (A path ending in `[]` still sets a non-index `keepSingleton` property on a caller array it
 * returns as is; that tag is invisible to JSON and harmless, and copying would change results.)
 */
function protectGroupInput(n: AstNode): void {
  const passThrough = (): AstNode => ({
    type: 'filter',
    expr: { type: 'value', value: true, position: n.position },
    position: n.position,
  });
  if (n.type === 'path') {
    const steps = Array.isArray(n.steps) ? (n.steps as AstNode[]) : [];
    if (steps.some((step) => step.tuple === true)) return; // grouped input is a fresh tuple stream
    const last = steps[steps.length - 1];
    if (last === undefined) return;
    last.stages = [...(Array.isArray(last.stages) ? last.stages : []), passThrough()];
  } else {
    n.predicate = [...(Array.isArray(n.predicate) ? n.predicate : []), passThrough()];
  }
}

/** Turn `a..b` into a call of our range function (see rangeImpl). Mutates the node in place. */
function rewriteRange(n: AstNode): void {
  const procedure: AstNode = { type: 'variable', value: RANGE_FN, position: n.position };
  procedureNodes.add(procedure);
  n.arguments = [n.lhs, n.rhs];
  n.procedure = procedure;
  n.type = 'function';
  n.value = '(';
  delete n.lhs;
  delete n.rhs;
}

function compileInternal(src: string): CompiledExpression {
  if (typeof src !== 'string') throw syntaxError('expression must be a string');
  const hit = cacheGet(cache, src);
  if (hit !== undefined) return hit;
  if (src.length > LIMITS.expressionLength) {
    throw limitError(`expression is ${src.length} characters long; the limit is ${LIMITS.expressionLength}`);
  }
  const nesting = sourceNesting(src);
  if (nesting > MAX_SOURCE_NESTING) {
    throw limitError(`expression nests brackets ${nesting} deep; the limit is ${MAX_SOURCE_NESTING}`);
  }
  let expr: jsonata.Expression;
  try {
    expr = jsonata(src);
  } catch (err) {
    if (err instanceof RangeError) throw limitError(`expression is too deeply nested to parse: ${err.message}`);
    if (isJsonataError(err)) {
      throw syntaxError(`syntax error at position ${err.position ?? '?'}: ${err.message ?? err.code} (JSONata ${err.code})`, {
        jsonataCode: err.code,
        position: err.position,
        token: typeof err.token === 'string' ? err.token : undefined,
      });
    }
    throw syntaxError(`syntax error: ${err instanceof Error ? err.message : String(err)}`);
  }
  let variables: string[];
  try {
    const ast = expr.ast() as unknown as AstNode;
    const { ranges, groupHolders } = analyse(ast);
    variables = collectFreeVariables(ast);
    for (const r of ranges) rewriteRange(r);
    for (const g of groupHolders) protectGroupInput(g);
  } catch (err) {
    if (err instanceof WeftError) throw err;
    if (err instanceof RangeError) throw limitError(`expression is too deeply nested: ${err.message}`);
    throw err;
  }
  expr.assign(ENTRY_HOOK as unknown as string, onEntry);
  expr.assign(EXIT_HOOK as unknown as string, onExit);
  for (const name of SHADOWED) expr.assign(name, shadowDefs.get(name));
  expr.assign(RANGE_FN as unknown as string, rangeDef);
  const compiled: CompiledExpression = Object.freeze({ source: src, variables: Object.freeze(variables) });
  internals.set(compiled, { expr });
  cacheSet(cache, src, compiled, CACHE_SIZE);
  return compiled;
}

/**
 * Compile (cached in a bounded Map keyed by source). Throws WeftError WEFT_EXPRESSION_SYNTAX
 * (message includes the position and JSONata's message) or WEFT_EXPRESSION_LIMIT (too long,
 * too deeply nested, or a regular expression with nested quantifiers).
 */
export function compileExpression(src: string): CompiledExpression {
  return compileInternal(src);
}

/** Throws like compileExpression; returns nothing. */
export function checkExpression(src: string): void {
  compileInternal(src);
}

// ---------------------------------------------------------------------------------------------
// Free variables

function collectFreeVariables(root: AstNode): string[] {
  const out = new Set<string>();
  const isNode = (v: unknown): v is AstNode => typeof v === 'object' && v !== null && !Array.isArray(v);

  const isBuiltinCall = (proc: unknown, scope: ReadonlySet<string>): boolean =>
    isNode(proc) && proc.type === 'variable' && typeof proc.value === 'string'
    && JSONATA_BUILTINS.has(proc.value) && !scope.has(proc.value);

  /** Predicates, stages and group-by of any node: evaluated against that node's items. */
  const walkDecorations = (n: AstNode, scope: Set<string>, includeStages: boolean): void => {
    if (Array.isArray(n.predicate)) {
      for (const p of n.predicate) if (isNode(p) && p.type === 'filter') walk(p.expr, scope, false);
    }
    if (includeStages && Array.isArray(n.stages)) {
      for (const s of n.stages) {
        if (!isNode(s)) continue;
        if (s.type === 'filter') walk(s.expr, scope, false);
        else if (s.type === 'index' && typeof s.value === 'string') scope.add(s.value);
      }
    }
    const group = n.group as { lhs?: unknown } | undefined;
    if (group && Array.isArray(group.lhs)) {
      for (const pair of group.lhs) if (Array.isArray(pair)) for (const e of pair) walk(e, scope, false);
    }
  };

  const walk = (node: unknown, scope: ReadonlySet<string>, rootContext: boolean): void => {
    if (!isNode(node)) return;
    const n = node;
    switch (n.type) {
      case 'variable': {
        const name = n.value;
        if (typeof name === 'string' && name !== '' && name !== '$' && !scope.has(name)) out.add(name);
        walkDecorations(n, new Set(scope), true);
        return;
      }
      case 'path': {
        const steps = Array.isArray(n.steps) ? (n.steps as unknown[]) : [];
        const pathScope = new Set(scope);
        const first = steps[0];
        steps.forEach((step, i) => {
          if (!isNode(step)) return;
          if (i === 0 && step.type === 'name' && rootContext && typeof step.value === 'string') out.add(step.value);
          if (i === 1 && step.type === 'name' && typeof step.value === 'string' && isNode(first) && first.type === 'variable'
            && (first.value === '$' || (first.value === '' && rootContext))) {
            out.add(step.value);
          }
          // The step's own expression, then its tuple bindings, then its stages.
          walkStep(step, pathScope, i === 0 ? rootContext : false);
          if (typeof step.focus === 'string') pathScope.add(step.focus);
          if (typeof step.index === 'string') pathScope.add(step.index);
          walkDecorations(step, pathScope, true);
        });
        walkDecorations(n, pathScope, false);
        return;
      }
      default:
        walkStep(n, scope, rootContext);
        walkDecorations(n, new Set(scope), true);
    }
  };

  /** The node itself, without its predicates/stages/group. */
  const walkStep = (n: AstNode, scope: ReadonlySet<string>, rootContext: boolean): void => {
    switch (n.type) {
      case 'variable': {
        const name = n.value;
        if (typeof name === 'string' && name !== '' && name !== '$' && !scope.has(name)) out.add(name);
        return;
      }
      case 'path':
        walk({ ...n, predicate: undefined, group: undefined }, scope, rootContext);
        return;
      case 'bind': {
        const lhs = n.lhs as AstNode | undefined;
        const name = lhs && typeof lhs.value === 'string' ? lhs.value : undefined;
        const rhs = n.rhs;
        if (isNode(rhs) && rhs.type === 'lambda' && name !== undefined) {
          // `$f := function(…){ … $f(…) … }`: the body runs after the binding exists.
          walk(rhs, new Set([...scope, name]), rootContext);
        } else {
          walk(rhs, scope, rootContext);
        }
        return;
      }
      case 'block': {
        const blockScope = new Set(scope);
        for (const e of Array.isArray(n.expressions) ? n.expressions : []) {
          walk(e, blockScope, rootContext);
          if (isNode(e) && e.type === 'bind' && isNode(e.lhs) && typeof e.lhs.value === 'string') blockScope.add(e.lhs.value);
        }
        return;
      }
      case 'lambda': {
        const lambdaScope = new Set(scope);
        for (const a of Array.isArray(n.arguments) ? n.arguments : []) {
          if (isNode(a) && typeof a.value === 'string') lambdaScope.add(a.value);
        }
        walk(n.body, lambdaScope, rootContext);
        return;
      }
      case 'function':
      case 'partial':
        if (!isBuiltinCall(n.procedure, scope)) walk(n.procedure, scope, rootContext);
        for (const a of Array.isArray(n.arguments) ? n.arguments : []) walk(a, scope, rootContext);
        return;
      case 'apply':
        walk(n.lhs, scope, rootContext);
        if (!isBuiltinCall(n.rhs, scope)) walk(n.rhs, scope, rootContext);
        return;
      case 'transform':
        walk(n.pattern, scope, false);
        walk(n.update, scope, false);
        walk(n.delete, scope, false);
        return;
      case 'sort':
        if (Array.isArray(n.terms)) for (const t of n.terms) walk((t as { expression?: unknown }).expression, scope, false);
        return;
      case 'unary':
      case 'binary':
      case 'condition':
        for (const child of childNodes({ ...n, predicate: undefined, stages: undefined, group: undefined })) {
          walk(child, scope, rootContext);
        }
        return;
      default:
        // Literals, names, wildcards, descendants, parent, regex, operator: nothing bound or read by name.
        return;
    }
  };

  walk(root, new Set(), true);
  return [...out].sort();
}

/**
 * Free root variable names an expression reads, without `$`, sorted and unique:
 * `$article.text & $input.x` → ['article','input'].
 *
 * Excludes variables bound inside the expression (`:=` in a block, for the expressions after it;
 * lambda parameters; `@$v`/`#$i` for the rest of their path), built-in functions in call position,
 * and `$`/`$$` themselves. Because the JSONata input document is the scope object, a bare field
 * read at the root context (`review.score`, `$$.review`, `$.review` at the root) is reported too.
 * When unsure (e.g. a lambda calling a function bound later in the same block) a name is reported.
 * Reads of the whole scope (`$`, `$$`, `*`, `**` at the root) are not reported.
 */
export function freeVariables(src: string): string[] {
  return [...compileInternal(src).variables];
}

// ---------------------------------------------------------------------------------------------
// Templates

const templateCache = new Map<string, TemplatePart[]>();

/** Index of the `}}` closing an interpolation whose body starts at `start`, or -1. */
function findClose(src: string, start: number): number {
  let depth = 0;
  for (let i = start; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      if (end === -1) return -1;
      i = end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) return -1;
      i = end + 1;
    } else if (c === '{') {
      depth++;
    } else if (c === '}') {
      if (depth === 0 && src[i + 1] === '}') return i;
      if (depth > 0) depth--;
    }
  }
  return -1;
}

function parseTemplateInternal(src: string): TemplatePart[] {
  if (typeof src !== 'string') throw syntaxError('template must be a string');
  const hit = cacheGet(templateCache, src);
  if (hit !== undefined) return hit;
  if (src.length > LIMITS.expressionLength) {
    throw limitError(`template is ${src.length} characters long; the limit is ${LIMITS.expressionLength}`);
  }
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  for (;;) {
    const open = src.indexOf('{{', i);
    if (open === -1) {
      text += src.slice(i);
      break;
    }
    text += src.slice(i, open);
    const close = findClose(src, open + 2);
    if (close === -1) throw syntaxError(`unclosed "{{" at offset ${open} in template`, { offset: open });
    const inner = src.slice(open + 2, close);
    const lead = inner.length - inner.trimStart().length;
    const body = inner.trim();
    if (body === '') throw syntaxError(`empty interpolation "{{ }}" at offset ${open} in template`, { offset: open });
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
    parts.push({ kind: 'expr', src: body, offset: open + 2 + lead });
    i = close + 2;
  }
  if (text !== '') parts.push({ kind: 'text', text });
  for (const p of parts) Object.freeze(p);
  Object.freeze(parts);
  cacheSet(templateCache, src, parts, TEMPLATE_CACHE_SIZE);
  return parts;
}

/** Split `{{ … }}` interpolations; unclosed `{{` or empty `{{ }}` → WEFT_EXPRESSION_SYNTAX. */
export function parseTemplate(src: string): TemplatePart[] {
  return parseTemplateInternal(src).map((p) => ({ ...p }));
}

function compileTemplatePart(part: { src: string; offset: number }): CompiledExpression {
  try {
    return compileInternal(part.src);
  } catch (err) {
    if (err instanceof WeftError) {
      const position = typeof err.details?.position === 'number' ? err.details.position : undefined;
      const at = position === undefined ? '' : ` (template position ${part.offset + position})`;
      throw new WeftError(err.code, `in template interpolation at offset ${part.offset}${at}: ${err.message}`, {
        retryable: false,
        details: { ...err.details, offset: part.offset },
      });
    }
    throw err;
  }
}

/** Throws on a syntax error in any interpolation (message names the offset). */
export function checkTemplate(src: string): void {
  for (const part of parseTemplateInternal(src)) if (part.kind === 'expr') compileTemplatePart(part);
}

/** Union of freeVariables over a template's interpolations. */
export function templateVariables(src: string): string[] {
  const out = new Set<string>();
  for (const part of parseTemplateInternal(src)) {
    if (part.kind === 'expr') for (const v of compileTemplatePart(part).variables) out.add(v);
  }
  return [...out].sort();
}

// ---------------------------------------------------------------------------------------------
// Scope preparation (plain JSON in)

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/**
 * `v` itself when it is plain JSON (cached), otherwise a plain copy made of own enumerable data
 * properties only: getters are never invoked, prototypes never consulted for values.
 */
function plainScopeValue(v: unknown, level: number): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'object':
      break;
    default:
      return undefined; // functions, symbols, bigints: not JSON
  }
  if (v === null || verifiedPlain.has(v)) return v;
  if (level > MAX_WALK_DEPTH) throw limitError(`scope value nested deeper than ${MAX_WALK_DEPTH} levels`);
  let plain = true;
  let result: unknown;
  if (Array.isArray(v)) {
    plain = Object.getPrototypeOf(v) === Array.prototype && Object.keys(v).length === v.length;
    const items: unknown[] = [];
    for (let i = 0; i < v.length; i++) {
      const d = Object.getOwnPropertyDescriptor(v, i);
      if (d === undefined || !('value' in d)) {
        plain = false;
        items.push(null);
        continue;
      }
      const e = plainScopeValue(d.value, level + 1);
      if (e !== d.value || e === undefined) plain = false;
      items.push(e === undefined ? null : e);
    }
    result = plain ? v : items;
  } else {
    const proto = Object.getPrototypeOf(v) as unknown;
    plain = proto === Object.prototype || proto === null;
    const copy: Record<string, unknown> = {};
    for (const key of Object.getOwnPropertyNames(v)) {
      const d = Object.getOwnPropertyDescriptor(v, key);
      if (d === undefined || !('value' in d) || d.enumerable !== true) {
        plain = false;
        continue;
      }
      const e = plainScopeValue(d.value, level + 1);
      if (e !== d.value) plain = false;
      if (e !== undefined) setOwn(copy, key, e);
    }
    if (Object.getOwnPropertySymbols(v).length > 0) plain = false;
    result = plain ? v : copy;
  }
  verifiedPlain.add(result as object);
  return result;
}

interface PreparedScope {
  doc: Record<string, unknown>;
}

function prepareScope(scope: Record<string, unknown>): PreparedScope {
  if (typeof scope !== 'object' || scope === null || Array.isArray(scope)) {
    throw new WeftError('WEFT_INTERNAL', 'expression scope must be an object');
  }
  const doc = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(scope)) {
    const d = Object.getOwnPropertyDescriptor(scope, key);
    if (d === undefined || !('value' in d)) continue; // never invoke a getter
    setOwn(doc, key, plainScopeValue(d.value, 1));
  }
  verifiedPlain.add(doc); // `$` read as is is caller data, not something the expression built
  return { doc };
}

// ---------------------------------------------------------------------------------------------
// Results (plain JSON out)

function toPlainResult(v: unknown, limits: ExpressionLimits): unknown {
  let total = 0;
  const add = (n: number): void => {
    total += n;
    if (total > limits.maxResultBytes) {
      throw limitError(`expression result is larger than ${limits.maxResultBytes} bytes`, { limit: 'size' });
    }
  };
  const convert = (x: unknown, level: number): unknown => {
    switch (typeof x) {
      case 'string':
        add(x.length + 2);
        return x;
      case 'boolean':
        add(5);
        return x;
      case 'undefined':
        return undefined;
      case 'number':
        if (!Number.isFinite(x)) {
          throw new WeftError('WEFT_EXPRESSION_ERROR', 'expression produced a non-finite number', { retryable: false });
        }
        add(8);
        return Object.is(x, -0) ? 0 : x;
      case 'object':
        break;
      default:
        throw new WeftError('WEFT_EXPRESSION_ERROR', `expression produced a ${typeof x}, which is not JSON`, { retryable: false });
    }
    if (x === null) {
      add(4);
      return null;
    }
    if (isFunctionLike(x)) {
      throw new WeftError('WEFT_EXPRESSION_ERROR', 'expression result contains a function; functions cannot leave the evaluator', {
        retryable: false,
      });
    }
    if (level > limits.maxDepth) {
      throw limitError(`expression result is nested deeper than ${limits.maxDepth} levels`, { limit: 'depth' });
    }
    add(2);
    if (Array.isArray(x)) {
      const out: unknown[] = [];
      for (let i = 0; i < x.length; i++) {
        const e = convert(x[i], level + 1);
        add(1);
        out.push(e === undefined ? null : e);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    const record = x as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const e = convert(record[key], level + 1);
      if (e === undefined) continue;
      add(key.length + 4);
      setOwn(out, key, e);
    }
    return out;
  };
  return convert(v, 1);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

async function runCompiled(
  compiled: CompiledExpression,
  prepared: PreparedScope,
  limits: ExpressionLimits,
  deadline?: number,
): Promise<unknown> {
  const internal = internals.get(compiled);
  if (internal === undefined) throw new WeftError('WEFT_INTERNAL', 'not a compiled expression');
  const budget = newBudget(limits, deadline);
  if (Date.now() > budget.deadline) {
    throw new WeftError('WEFT_EXPRESSION_LIMIT', `expression evaluation exceeded ${limits.timeoutMs} ms`, {
      retryable: false, details: { limit: 'time' },
    });
  }
  let pending: Promise<unknown>;
  attaching = budget;
  try {
    pending = internal.expr.evaluate(prepared.doc, prepared.doc);
  } finally {
    attaching = undefined;
  }
  let raw: unknown;
  try {
    if (!budget.attached) {
      pending.catch(() => undefined);
      throw new WeftError('WEFT_INTERNAL', 'expression budget could not be attached (unsupported jsonata version?)');
    }
    raw = await pending;
  } catch (err) {
    throw toRuntimeError(err);
  } finally {
    budget.done = true;
    for (const arr of budget.repairs) repairGroupInput(arr);
  }
  return toPlainResult(raw, limits);
}

/** Evaluate with each scope key bound as `$key`; the JSONata input document `$` is the scope object too. */
export async function evaluateExpression(
  src: string,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  const compiled = compileInternal(src);
  const resolved = resolveLimits(limits);
  return runCompiled(compiled, prepareScope(scope), resolved);
}

function isWhitespaceText(part: TemplatePart): boolean {
  return part.kind === 'text' && part.text.trim() === '';
}

function interpolate(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

async function renderPrepared(src: string, prepared: PreparedScope, limits: ExpressionLimits): Promise<unknown> {
  const parts = parseTemplateInternal(src);
  const exprs = parts.filter((p): p is Extract<TemplatePart, { kind: 'expr' }> => p.kind === 'expr');
  const compiled = exprs.map((p) => compileTemplatePart(p));
  const deadline = Date.now() + limits.timeoutMs; // one budget of time for the whole template
  const run = async (i: number): Promise<unknown> => {
    const part = exprs[i];
    const c = compiled[i];
    if (part === undefined || c === undefined) return undefined;
    try {
      return await runCompiled(c, prepared, limits, deadline);
    } catch (err) {
      if (err instanceof WeftError && err.code !== 'WEFT_INTERNAL') {
        throw new WeftError(err.code, `in template interpolation at offset ${part.offset}: ${err.message}`, {
          retryable: false, details: { ...err.details, offset: part.offset },
        });
      }
      throw err;
    }
  };
  if (exprs.length === 1 && parts.every((p) => p.kind === 'expr' || isWhitespaceText(p))) return run(0);
  let out = '';
  let index = 0;
  for (const part of parts) {
    out += part.kind === 'text' ? part.text : interpolate(await run(index++));
    if (out.length > limits.maxResultBytes) {
      throw limitError(`rendered template is longer than ${limits.maxResultBytes} characters`, { limit: 'size' });
    }
  }
  return out;
}

/**
 * Render a template to a string; but a template that is exactly one interpolation (whitespace
 * around allowed) returns the raw value (object, number…). Interpolated values: strings as is,
 * undefined → '', others JSON.stringify.
 */
export async function renderTemplate(
  src: string,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  parseTemplateInternal(src);
  const resolved = resolveLimits(limits);
  return renderPrepared(src, prepareScope(scope), resolved);
}

// ---------------------------------------------------------------------------------------------
// Walking definition values

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

async function walkValue(
  value: unknown,
  level: number,
  onString: (s: string) => Promise<unknown>,
): Promise<unknown> {
  if (typeof value === 'string') return onString(value);
  if (level > MAX_WALK_DEPTH) throw limitError(`value nested deeper than ${MAX_WALK_DEPTH} levels`);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const e of value) out.push(await walkValue(e, level + 1, onString));
    return out;
  }
  if (isPlainRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) setOwn(out, key, await walkValue(value[key], level + 1, onString));
    return out;
  }
  return value;
}

function collectStrings(value: unknown, level: number, onString: (s: string) => void): void {
  if (typeof value === 'string') {
    onString(value);
    return;
  }
  if (level > MAX_WALK_DEPTH) throw limitError(`value nested deeper than ${MAX_WALK_DEPTH} levels`);
  if (Array.isArray(value)) for (const e of value) collectStrings(e, level + 1, onString);
  else if (isPlainRecord(value)) for (const key of Object.keys(value)) collectStrings(value[key], level + 1, onString);
}

/**
 * Walk a JSON value: every string is an expression, evaluated (each with its own budget); arrays
 * and objects are recursed (keys kept, an undefined result stays undefined); other values as is.
 */
export async function resolveBindings(
  value: unknown,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  collectStrings(value, 0, (s) => void compileInternal(s)); // syntax errors before any evaluation
  const resolved = resolveLimits(limits);
  const prepared = prepareScope(scope);
  return walkValue(value, 0, (s) => runCompiled(compileInternal(s), prepared, resolved));
}

/** Walk a JSON value: every string is a template, rendered (each with its own budget). */
export async function renderTemplates(
  value: unknown,
  scope: Record<string, unknown>,
  limits?: Partial<ExpressionLimits>,
): Promise<unknown> {
  collectStrings(value, 0, (s) => checkTemplate(s));
  const resolved = resolveLimits(limits);
  const prepared = prepareScope(scope);
  return walkValue(value, 0, (s) => renderPrepared(s, prepared, resolved));
}

/** The free variables used anywhere in a value walked as by resolveBindings. */
export function bindingVariables(value: unknown): string[] {
  const out = new Set<string>();
  collectStrings(value, 0, (s) => {
    for (const v of compileInternal(s).variables) out.add(v);
  });
  return [...out].sort();
}

/** The free variables used anywhere in a value walked as by renderTemplates. */
export function templatesVariables(value: unknown): string[] {
  const out = new Set<string>();
  collectStrings(value, 0, (s) => {
    for (const v of templateVariables(s)) out.add(v);
  });
  return [...out].sort();
}
