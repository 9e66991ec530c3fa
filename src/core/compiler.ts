/**
 * Definition → CompiledWorkflow. `checkDefinition` finds every problem (shape, graph,
 * expressions, the inputs schema), warnings included; `compileDefinition` throws the errors
 * as one DefinitionError or returns the compiled form. Everything here is iterative and
 * linear-ish in the size of the definition, so the largest allowed definition (1,000 steps)
 * compiles in milliseconds.
 */
import { DEFAULT_RETRY } from './compiled.ts';
import type { CompiledRetry, CompiledStep, CompiledWorkflow, Need } from './compiled.ts';
import { LIMITS, NEED_PATTERN, STEP_ID_PATTERN } from './definition-schema.ts';
import type { RetryPolicy, StepDefinition, StepType, TriggerRule, WorkflowDefinition } from './definition-schema.ts';
import { DefinitionError, WeftError, pointer } from './errors.ts';
import type { ErrorCode, Problem } from './errors.ts';
import { JSONATA_BUILTINS, checkExpression, checkTemplate, freeVariables, templateVariables } from './expressions.ts';
import { inputsSchemaProblems } from './inputs.ts';
import { toPlainJson } from './parse-definition.ts';
import { didYouMean, isPlainObject, validateDefinitionShape } from './validate-definition.ts';

/** Variables every expression may read besides upstream steps. */
const GLOBALS = ['input', 'context'] as const;
const NEED_RE = new RegExp(NEED_PATTERN, 'u');
const STEP_ID_RE = new RegExp(STEP_ID_PATTERN, 'u');

/** Compiles a definition; throws DefinitionError listing every error (warnings are not errors). */
export function compileDefinition(value: unknown): CompiledWorkflow {
  const { problems, compiled } = analyze(value);
  const errors = problems.filter((p) => p.severity !== 'warning');
  if (errors.length > 0 || !compiled) throw new DefinitionError(errors.length > 0 ? errors : problems);
  return compiled;
}

/** Every problem in a definition, warnings (severity 'warning') included; [] when it is clean. */
export function checkDefinition(value: unknown): Problem[] {
  return analyze(value).problems;
}

// ---------------------------------------------------------------------------------------

interface StepInfo {
  id: string;
  index: number;
  /** The step object when it is one (shape problems are reported separately). */
  def: Record<string, unknown> | undefined;
  type: string | undefined;
  /** Needs as written and valid enough to use: known step, not itself. */
  needs: (Need & { at: number })[];
  /** Unique upstream step indices. */
  deps: number[];
  /** Unique downstream step indices. */
  dependents: number[];
  hasNeeds: boolean;
}

function analyze(value: unknown): { problems: Problem[]; compiled?: CompiledWorkflow } {
  // A detached plain-JSON copy: bounded depth, no getters, no prototypes, no shared references.
  let def: unknown;
  try {
    def = toPlainJson(value, { maxDepth: LIMITS.jsonDepth, code: 'WEFT_SCHEMA', maxStringBytes: LIMITS.definitionBytes });
  } catch (error) {
    if (error instanceof DefinitionError) return { problems: error.problems };
    throw error;
  }
  const problems = validateDefinitionShape(def);
  if (!isPlainObject(def) || !isPlainObject(def['steps'])) return { problems };
  if (problems.some((p) => p.code === 'WEFT_TOO_LARGE')) return { problems };
  const rawSteps = def['steps'];

  const add = (code: ErrorCode, path: string, message: string, severity?: 'warning'): void => {
    problems.push(severity ? { code, path, message, severity } : { code, path, message });
  };

  // ---- steps and needs ----
  const ids = Object.keys(rawSteps);
  const indexOf = new Map<string, number>(ids.map((id, i) => [id, i]));
  const steps: StepInfo[] = ids.map((id, index) => {
    const raw = rawSteps[id];
    const def = isPlainObject(raw) ? raw : undefined;
    const type = typeof def?.['type'] === 'string' ? def['type'] : undefined;
    return { id, index, def, type, needs: [], deps: [], dependents: [], hasNeeds: false };
  });
  const branchesOf = (step: StepInfo): string[] => {
    const cases = step.def?.['cases'];
    const names = isPlainObject(cases) ? Object.keys(cases) : [];
    const fallback = step.def?.['default'];
    if (typeof fallback === 'string' && !names.includes(fallback)) names.push(fallback);
    return names;
  };

  for (const step of steps) {
    const needs = step.def?.['needs'];
    if (!Array.isArray(needs)) continue;
    step.hasNeeds = needs.length > 0;
    const seen = new Map<string, { entry: string; at: number }>();
    const deps = new Set<number>();
    needs.forEach((entry: unknown, at) => {
      if (typeof entry !== 'string' || !NEED_RE.test(entry)) return; // reported by the schema
      const path = pointer('steps', step.id, 'needs', at);
      const dot = entry.indexOf('.');
      const target = dot === -1 ? entry : entry.slice(0, dot);
      const branch = dot === -1 ? undefined : entry.slice(dot + 1);
      const previous = seen.get(target);
      if (previous && previous.entry === entry) return; // exact repeat: reported by the schema
      if (target === step.id) {
        add('WEFT_CYCLE', path, `cycle: ${step.id} → ${step.id} (step '${step.id}' needs itself)`);
        return;
      }
      const upstream = indexOf.get(target);
      if (upstream === undefined) {
        add('WEFT_UNKNOWN_NEED', path, `step '${step.id}' needs '${target}', which is not a step of this workflow${didYouMean(target, ids)}`);
        return;
      }
      if (previous && (branch === undefined || !previous.entry.includes('.'))) {
        add('WEFT_DUPLICATE_ID', path, `'${entry}' repeats the need on '${target}' (already needed as '${previous.entry}')`);
        return;
      }
      if (branch !== undefined && steps[upstream]!.type !== undefined) {
        const up = steps[upstream]!;
        if (up.type !== 'condition') {
          const kind = `${/^[aeiou]/.test(up.type ?? '') ? 'an' : 'a'} ${up.type ?? ''} step`;
          add('WEFT_UNKNOWN_BRANCH', path, `'${target}' is ${kind}, not a condition: it has no branch '${branch}'`);
          return;
        }
        const branches = branchesOf(up);
        if (!branches.includes(branch)) {
          add('WEFT_UNKNOWN_BRANCH', path, `condition '${target}' has no branch '${branch}'${didYouMean(branch, branches)}; its branches are ${branches.map((b) => `'${b}'`).join(', ') || 'none'}`);
          return;
        }
      }
      if (!previous) seen.set(target, { entry, at });
      step.needs.push(branch === undefined ? { step: target, at } : { step: target, branch, at });
      deps.add(upstream);
    });
    step.deps = [...deps];
    for (const d of step.deps) steps[d]!.dependents.push(step.index);
  }

  // ---- condition steps ----
  for (const step of steps) {
    if (step.type !== 'condition' || !step.def) continue;
    const cases = step.def['cases'];
    if (isPlainObject(cases)) {
      for (const name of Object.keys(cases)) {
        if (!STEP_ID_RE.test(name)) {
          add('WEFT_SCHEMA', pointer('steps', step.id, 'cases', name), `'${name}' is not a valid branch name: use letters, digits and '_', not starting with a digit`);
        }
      }
      const fallback = step.def['default'];
      if (typeof fallback === 'string' && Object.hasOwn(cases, fallback)) {
        add('WEFT_DUPLICATE_ID', pointer('steps', step.id, 'default'), `branch '${fallback}' is both a case and the default of condition '${step.id}'`);
      }
    }
  }

  // ---- cycles ----
  for (const component of stronglyConnected(steps)) {
    if (component.length < 2) continue;
    const cycle = cycleThrough(steps, component);
    const start = steps[cycle[0]!]!;
    const last = steps[cycle[cycle.length - 1]!]!;
    const at = start.needs.find((n) => n.step === last.id)?.at ?? 0;
    const names = [...cycle, cycle[0]!].map((i) => steps[i]!.id);
    const others = component.length > cycle.length ? ` (${component.length} steps are caught in this loop)` : '';
    add('WEFT_CYCLE', pointer('steps', start.id, 'needs', at), `cycle: ${names.join(' → ')}${others}; each step needs the one before it`);
  }

  // ---- order, levels, ancestors (the acyclic part) ----
  const order = topologicalOrder(steps);
  const sorted = order.length === steps.length;
  const level = new Array<number>(steps.length).fill(0);
  const words = Math.ceil(steps.length / 32);
  const ancestors: (Uint32Array | undefined)[] = new Array<Uint32Array | undefined>(steps.length).fill(undefined);
  for (const i of order) {
    const bits = new Uint32Array(words);
    let lv = 0;
    for (const d of steps[i]!.deps) {
      const up = ancestors[d]!;
      for (let w = 0; w < words; w++) bits[w]! |= up[w]!;
      bits[d >>> 5]! |= 1 << (d & 31);
      lv = Math.max(lv, level[d]! + 1);
    }
    ancestors[i] = bits;
    level[i] = lv;
  }
  const isAncestor = (of: number, candidate: number): boolean | undefined => {
    const bits = ancestors[of];
    if (!bits) return undefined; // in or behind a cycle: already reported
    return (bits[candidate >>> 5]! & (1 << (candidate & 31))) !== 0;
  };

  // ---- expressions and templates ----
  const refs: Set<string>[] = steps.map(() => new Set<string>());
  for (const step of steps) {
    if (!step.def || step.type === undefined) continue;
    for (const field of expressionFields(step.type, step.def)) {
      const path = pointer('steps', step.id, ...field.at);
      const variables = readVariables(field.src, field.template, path, add);
      if (!variables) continue;
      for (const name of variables) {
        if ((GLOBALS as readonly string[]).includes(name) || field.locals?.includes(name)) continue;
        const target = indexOf.get(name);
        if (target === undefined) {
          if (JSONATA_BUILTINS.has(name)) continue; // a built-in function passed as a value
          const upstream = steps.filter((s) => isAncestor(step.index, s.index)).map((s) => s.id);
          const available = ['$input', '$context', ...upstream.slice(0, 12).map((u) => `$${u}`)].join(', ') + (upstream.length > 12 ? ', …' : '');
          add('WEFT_UNKNOWN_REFERENCE', path, `step '${step.id}' reads $${name}, which is not defined${didYouMean(name, [...GLOBALS, ...ids])}; it can read ${available}`);
          continue;
        }
        if (target === step.index) {
          add('WEFT_NOT_ANCESTOR', path, `step '${step.id}' reads $${name}, its own output: a step can only read steps upstream of it`);
          continue;
        }
        const upstream = isAncestor(step.index, target);
        if (upstream === false) {
          add('WEFT_NOT_ANCESTOR', path, `step '${step.id}' reads $${name}, but ${name} is not upstream of ${step.id} — add it to needs`);
          continue;
        }
        refs[step.index]!.add(name);
      }
    }
  }
  const outputRefs = new Set<string>();
  const outputs = def['outputs'];
  if (isPlainObject(outputs)) {
    for (const [key, src] of Object.entries(outputs)) {
      if (typeof src !== 'string' || src === '') continue;
      const path = pointer('outputs', key);
      const variables = readVariables(src, false, path, add);
      for (const name of variables ?? []) {
        if ((GLOBALS as readonly string[]).includes(name)) continue;
        if (indexOf.has(name)) outputRefs.add(name);
        else if (!JSONATA_BUILTINS.has(name)) {
          add('WEFT_UNKNOWN_REFERENCE', path, `output '${key}' reads $${name}, which is not defined${didYouMean(name, [...GLOBALS, ...ids])}; outputs can read $input, $context and any step`);
        }
      }
    }
  }

  // ---- unreachable steps ----
  const neverRuns = new Array<boolean>(steps.length).fill(false);
  for (const i of order) {
    const step = steps[i]!;
    const trigger = typeof step.def?.['trigger'] === 'string' ? step.def['trigger'] : 'all_success';
    const path = pointer('steps', step.id, 'needs');
    if (trigger === 'all_success') {
      const taken = new Map<string, string>();
      let conflict: string | undefined;
      for (const need of step.needs) {
        if (need.branch === undefined) continue;
        const other = taken.get(need.step);
        if (other !== undefined && other !== need.branch) conflict ??= `${need.step}.${other} and ${need.step}.${need.branch}`;
        taken.set(need.step, need.branch);
      }
      if (conflict) {
        neverRuns[i] = true;
        add('WEFT_UNREACHABLE_STEP', path, `step '${step.id}' can never run: it needs both ${conflict}, but a condition takes one branch (use trigger one_success or all_done)`);
        continue;
      }
      const blocked = step.needs.find((n) => neverRuns[indexOf.get(n.step)!]);
      if (blocked) {
        neverRuns[i] = true;
        add('WEFT_UNREACHABLE_STEP', pointer('steps', step.id, 'needs', blocked.at), `step '${step.id}' can never run: it needs '${blocked.step}', which can never run`);
      }
    } else if (trigger === 'one_success' && step.deps.length > 0 && step.deps.every((d) => neverRuns[d])) {
      neverRuns[i] = true;
      add('WEFT_UNREACHABLE_STEP', path, `step '${step.id}' can never run: none of the steps it needs can run`);
    }
  }

  // ---- isolated steps (warning) ----
  if (steps.length >= 2) {
    for (const step of steps) {
      if (!step.hasNeeds && step.dependents.length === 0 && !outputRefs.has(step.id)) {
        add('WEFT_ISOLATED_STEP', pointer('steps', step.id), `step '${step.id}' is isolated: it needs nothing, nothing needs it and no output reads it`, 'warning');
      }
    }
  }

  // ---- retry (warning) ----
  for (const step of steps) {
    const retry = step.def?.['retry'];
    if (isPlainObject(retry) && typeof retry['base_ms'] === 'number' && typeof retry['max_ms'] === 'number' && retry['base_ms'] > retry['max_ms']) {
      add('WEFT_SCHEMA', pointer('steps', step.id, 'retry', 'base_ms'), `base_ms (${retry['base_ms']}) is larger than max_ms (${retry['max_ms']}): every delay will be max_ms`, 'warning');
    }
  }

  // ---- agent steps: tool names and output schemas ----
  for (const step of steps) {
    if (step.type !== 'agent' || !step.def) continue;
    const tools = step.def['tools'];
    if (isPlainObject(tools)) {
      for (const name of Object.keys(tools)) {
        if (!TOOL_NAME.test(name)) add('WEFT_SCHEMA', pointer('steps', step.id, 'tools', name), `tool name '${name.slice(0, 64)}' must be letters, digits, '_' or '-' (at most 64, not starting with a digit or '-')`);
        const tool = tools[name];
        // A tool's arguments are an object, checked like an inputs schema.
        if (isPlainObject(tool) && tool['parameters'] !== undefined) {
          for (const p of inputsSchemaProblems(tool['parameters'], pointer('steps', step.id, 'tools', name, 'parameters'))) {
            problems.push({ ...p, message: p.message.replace(/the inputs schema/g, "a tool's parameters schema") });
          }
        }
      }
    }
    // Checked like an inputs schema (no risky regexes, resolvable refs), except that the reply may be of any type.
    const schema = step.def['output_schema'];
    if (isPlainObject(schema)) {
      const base = pointer('steps', step.id, 'output_schema');
      for (const p of inputsSchemaProblems(schema, base)) {
        if (p.path !== `${base}/type`) problems.push({ ...p, message: p.message.replace(/inputs schema/g, 'output schema') });
      }
    }
  }

  // ---- the inputs schema ----
  if (def['inputs'] !== undefined && isPlainObject(def['inputs'])) problems.push(...inputsSchemaProblems(def['inputs']));

  if (!sorted || problems.some((p) => p.severity !== 'warning')) return { problems };

  // ---- build ----
  const definition = def as unknown as WorkflowDefinition;
  const compiledSteps: Record<string, CompiledStep> = {};
  for (const step of steps) {
    const d = step.def as unknown as StepDefinition;
    compiledSteps[step.id] = {
      id: step.id,
      type: step.type as StepType,
      definition: d,
      needs: step.needs.map(({ step: s, branch }) => (branch === undefined ? { step: s } : { step: s, branch })),
      dependents: step.dependents.map((i) => steps[i]!.id).sort(compareIds),
      trigger: (d.trigger ?? 'all_success') as TriggerRule,
      retry: compileRetry(d.retry),
      timeoutMs: d.timeout_ms,
      onError: d.on_error ?? 'fail',
      refs: [...refs[step.index]!].sort(compareIds),
      level: level[step.index]!,
    };
  }
  const levels: string[][] = [];
  for (const i of order) (levels[level[i]!] ??= []).push(steps[i]!.id);
  for (const group of levels) group.sort(compareIds);
  return {
    problems,
    compiled: {
      definition,
      steps: compiledSteps,
      order: order.map((i) => steps[i]!.id),
      levels,
      roots: steps.filter((s) => s.deps.length === 0).map((s) => s.id).sort(compareIds),
      outputRefs: [...outputRefs].sort(compareIds),
    },
  };
}

function compileRetry(retry: RetryPolicy | undefined): CompiledRetry {
  if (!retry) return { ...DEFAULT_RETRY };
  const jitter = retry.jitter === undefined ? DEFAULT_RETRY.jitter : retry.jitter === true ? 1 : retry.jitter === false ? 0 : retry.jitter;
  return {
    maxAttempts: retry.max + 1,
    backoff: retry.backoff ?? DEFAULT_RETRY.backoff,
    baseMs: retry.base_ms ?? DEFAULT_RETRY.baseMs,
    maxMs: retry.max_ms ?? DEFAULT_RETRY.maxMs,
    jitter,
  };
}

/** Code-unit order: deterministic and locale-independent. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface ExpressionField {
  at: (string | number)[];
  src: string;
  template: boolean;
  /** Variables bound where the field is evaluated (an agent tool's `$args`). */
  locals?: readonly string[];
}

const TOOL_LOCALS = ['args'] as const;
const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/**
 * The strings of a step that are expressions (`when`, `transform.expr`, condition cases,
 * every string inside `with`) or templates (prompts, `review.criteria`, http url, headers,
 * query and every string inside `body`).
 */
function expressionFields(type: string, def: Record<string, unknown>): ExpressionField[] {
  const out: ExpressionField[] = [];
  const one = (key: string, template: boolean): void => {
    const v = def[key];
    if (typeof v === 'string') out.push({ at: [key], src: v, template });
  };
  const each = (key: string, template: boolean): void => {
    const v = def[key];
    if (isPlainObject(v)) for (const [k, s] of Object.entries(v)) if (typeof s === 'string') out.push({ at: [key, k], src: s, template });
  };
  const walk = (key: string, template: boolean): void => {
    // Iterative; depth is already bounded by LIMITS.jsonDepth.
    const stack: { value: unknown; at: (string | number)[] }[] = [{ value: def[key], at: [key] }];
    const found: ExpressionField[] = [];
    while (stack.length > 0) {
      const { value, at } = stack.pop()!;
      if (typeof value === 'string') found.push({ at, src: value, template });
      else if (Array.isArray(value)) for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], at: [...at, i] });
      else if (isPlainObject(value)) {
        const keys = Object.keys(value);
        for (let i = keys.length - 1; i >= 0; i--) stack.push({ value: value[keys[i]!], at: [...at, keys[i]!] });
      }
    }
    out.push(...found);
  };
  one('when', false);
  walk('with', false);
  switch (type) {
    case 'transform':
      one('expr', false);
      break;
    case 'condition':
      each('cases', false);
      break;
    case 'agent': {
      one('system', true);
      one('prompt', true);
      const tools = def['tools'];
      if (isPlainObject(tools)) {
        for (const [name, tool] of Object.entries(tools)) {
          if (!isPlainObject(tool)) continue;
          const inner = expressionFields(tool['type'] === 'http' ? 'http' : tool['type'] === 'transform' ? 'transform' : '', tool);
          // A tool has no `when` or `with` of its own; only its type's fields are expressions.
          for (const f of inner) if (f.at[0] !== 'when' && f.at[0] !== 'with') out.push({ ...f, at: ['tools', name, ...f.at], locals: TOOL_LOCALS });
        }
      }
      break;
    }
    case 'image':
      one('prompt', true);
      break;
    case 'review':
      one('criteria', true);
      break;
    case 'http':
      one('url', true);
      each('headers', true);
      each('query', true);
      walk('body', true);
      break;
    default:
      break;
  }
  return out;
}

/** Checks one expression or template; its free variables, or undefined after reporting a problem. */
function readVariables(
  src: string,
  template: boolean,
  path: string,
  add: (code: ErrorCode, path: string, message: string) => void,
): string[] | undefined {
  try {
    if (template) {
      checkTemplate(src);
      return templateVariables(src);
    }
    checkExpression(src);
    return freeVariables(src);
  } catch (error) {
    if (error instanceof WeftError) {
      const code: ErrorCode = error.code === 'WEFT_EXPRESSION_LIMIT' ? 'WEFT_EXPRESSION_LIMIT' : 'WEFT_EXPRESSION_SYNTAX';
      add(code, path, error.message);
      return undefined;
    }
    add('WEFT_EXPRESSION_SYNTAX', path, `could not be parsed: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

/** Tarjan's algorithm, iterative; components over the needs edges (upstream → downstream). */
function stronglyConnected(steps: StepInfo[]): number[][] {
  const n = steps.length;
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [];
  const components: number[][] = [];
  let counter = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    const work: { v: number; next: number }[] = [{ v: root, next: 0 }];
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = true;
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = steps[frame.v]!.dependents;
      if (frame.next < edges.length) {
        const w = edges[frame.next++]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = true;
          work.push({ v: w, next: 0 });
        } else if (onStack[w]) {
          low[frame.v] = Math.min(low[frame.v]!, index[w]!);
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low[parent.v] = Math.min(low[parent.v]!, low[frame.v]!);
      if (low[frame.v] === index[frame.v]) {
        const component: number[] = [];
        for (;;) {
          const w = stack.pop()!;
          onStack[w] = false;
          component.push(w);
          if (w === frame.v) break;
        }
        components.push(component);
      }
    }
  }
  return components;
}

/**
 * A shortest cycle through the first-declared step of a strongly connected component, in
 * run order (each step needs the previous one): breadth-first from it along dependents.
 */
function cycleThrough(steps: StepInfo[], component: number[]): number[] {
  const inComponent = new Set(component);
  const start = Math.min(...component);
  const parent = new Map<number, number>([[start, -1]]);
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head]!;
    for (const w of steps[v]!.dependents) {
      if (w === start) {
        const cycle: number[] = [];
        for (let x = v; x !== -1; x = parent.get(x)!) cycle.push(x);
        return cycle.reverse();
      }
      if (inComponent.has(w) && !parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return component; // unreachable for a real component
}

/** Kahn's algorithm with ties broken by id (a binary heap); steps in or behind cycles are left out. */
function topologicalOrder(steps: StepInfo[]): number[] {
  const indegree = steps.map((s) => s.deps.length);
  const heap: number[] = [];
  const less = (a: number, b: number): boolean => steps[a]!.id < steps[b]!.id;
  const push = (x: number): void => {
    heap.push(x);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const pop = (): number => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  steps.forEach((s, i) => {
    if (indegree[i] === 0) push(i);
  });
  const order: number[] = [];
  while (heap.length > 0) {
    const v = pop();
    order.push(v);
    for (const w of steps[v]!.dependents) {
      indegree[w]!--;
      if (indegree[w] === 0) push(w);
    }
  }
  return order;
}
