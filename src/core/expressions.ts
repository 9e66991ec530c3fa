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
 *   shadowed built-ins' loops; the one exception is the exit of a literal or plain variable
 *   right after its own entry, which did O(1) work since that entry read the clock); evaluation
 *   depth (JSONata's own per-frame `depth` counter); the approximate JSON size and nesting of
 *   every value a node produces (so string/array doubling and object "DAG bombs" stop at
 *   `maxResultBytes`; sizes are memoised per object, so this is linear); and a cumulative
 *   allocation allowance (16 × maxResultBytes) for the operations that allocate from nothing
 *   (ranges, `$pad`, `$join`, `$string`, `$clone`). When an evaluation ends or fails its budget
 *   is closed, so no orphaned branch keeps running.
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
 *   so this check sees all of them — but it is a heuristic (see regexRisk in expressions/regex-guard.ts).
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
 *
 * ## Layout
 *
 * This file is the public entry point; the implementation lives in ./expressions/:
 *
 * - api.ts — public types and constants (ExpressionLimits, DEFAULT_LIMITS, JSONATA_BUILTINS…).
 * - compile.ts — source limits, parsing, rewrites, hook/built-in binding, the compile cache;
 *   with analysis.ts (AST depth, node marks, rewrites to do), regex-guard.ts, range.ts,
 *   free-variables.ts, ast.ts (AST shape and child walk) and lru-cache.ts.
 * - evaluate.ts — one evaluation: budget attached, errors mapped (failures.ts), result converted.
 * - budget.ts — the per-evaluation budget and how hooks find it; hooks.ts — the per-node hooks
 *   and serialised parallel branches, acting on node-marks.ts; measure.ts — value sizes.
 * - guarded-builtins.ts — the shadowed built-ins; jsonata-internals.ts — JSONata internals.
 * - plain-json.ts — scope values in, results out; templates.ts — `{{ }}` parsing and rendering;
 *   definition-values.ts — resolveBindings/renderTemplates over whole definition values.
 */

export type { CompiledExpression, ExpressionLimits, TemplatePart } from './expressions/api.ts';
export { DEFAULT_LIMITS, JSONATA_BUILTINS } from './expressions/api.ts';
export { checkExpression, compileExpression, freeVariables } from './expressions/compile.ts';
export { evaluateExpression } from './expressions/evaluate.ts';
export { checkTemplate, parseTemplate, renderTemplate, templateVariables } from './expressions/templates.ts';
export {
  bindingVariables,
  renderTemplates,
  resolveBindings,
  templatesVariables,
} from './expressions/definition-values.ts';
