/**
 * Shape validation of a definition against the TypeBox schemas in definition-schema.ts, with
 * @cfworker/json-schema (an interpreting validator: no code generation, so the same machinery
 * can run user-supplied input schemas). Its raw output (wrapper entries, `#/a/b` locations,
 * terse messages) is turned into one readable Problem per actual fault.
 */
import { Validator } from '@cfworker/json-schema';
import type { OutputUnit, Schema } from '@cfworker/json-schema';
import { LIMITS, NEED_PATTERN, STEP_ID_PATTERN, STEP_TYPES, WorkflowDefinitionSchema, stepSchemas } from './definition-schema.ts';
import type { StepType } from './definition-schema.ts';
import { pointer } from './errors.ts';
import { JSONATA_BUILTINS } from './expressions.ts';
import type { ErrorCode, Problem } from './errors.ts';

/**
 * Step ids that cannot be used: `input` and `context` are the expression variables for the
 * launch inputs and the static context; the others are Object.prototype members, which make
 * `steps[id]` lookups ambiguous in JavaScript (and `__proto__` is not even an own property).
 */
export const RESERVED_STEP_IDS: ReadonlySet<string> = new Set([
  'input',
  'context',
  ...Object.getOwnPropertyNames(Object.prototype),
]);

const STEP_ID_RE = new RegExp(STEP_ID_PATTERN, 'u');
const STEP_ID_RULE = "letters, digits and '_', not starting with a digit, at most 64 characters";

interface Compiled {
  top: { validator: Validator; schema: Schema };
  steps: Record<StepType, { validator: Validator; schema: Schema }>;
}
let compiled: Compiled | undefined;

/** The validators are built on first use, from JSON copies (cfworker annotates the schemas it is given). */
function validators(): Compiled {
  if (compiled) return compiled;
  const make = (schema: unknown): { validator: Validator; schema: Schema } => {
    const copy = JSON.parse(JSON.stringify(schema)) as Schema;
    return { validator: new Validator(copy, '2020-12', false), schema: copy };
  };
  const steps = {} as Record<StepType, { validator: Validator; schema: Schema }>;
  for (const type of STEP_TYPES) steps[type] = make(stepSchemas[type]);
  compiled = { top: make(WorkflowDefinitionSchema), steps };
  return compiled;
}

/**
 * Every shape problem in `value`: the top level against WorkflowDefinitionSchema, step ids,
 * then each step against its type's schema. Paths are JSON pointers into the definition.
 */
export function validateDefinitionShape(value: unknown): Problem[] {
  if (!isPlainObject(value)) {
    return [{ code: 'WEFT_SCHEMA', path: '', message: `a workflow definition must be an object, not ${describeValue(value)}` }];
  }
  const { top, steps: stepValidators } = validators();
  const problems = schemaProblems(top.validator, top.schema, value, { code: 'WEFT_SCHEMA' }).map((p) => {
    if (p.path === '/steps' && p.message.startsWith('too many steps')) return { ...p, code: 'WEFT_TOO_LARGE' as const };
    return p;
  });
  const steps = value['steps'];
  if (!isPlainObject(steps)) return problems;
  const ids = Object.keys(steps);
  // Far too many steps: the count is the problem; do not bury it under per-step noise.
  if (ids.length > LIMITS.steps) return problems;

  for (const id of ids) {
    const path = pointer('steps', id);
    if (!STEP_ID_RE.test(id)) {
      problems.push({ code: 'WEFT_SCHEMA', path, message: `invalid step id '${clip(id)}': use ${STEP_ID_RULE}` });
    } else if (RESERVED_STEP_IDS.has(id)) {
      const why = id === 'input' || id === 'context' ? `$${id} is the workflow's ${id === 'input' ? 'launch inputs' : 'static context'}` : 'the name is reserved';
      problems.push({ code: 'WEFT_SCHEMA', path, message: `step id '${id}' cannot be used: ${why}` });
    } else if (JSONATA_BUILTINS.has(id)) {
      problems.push({
        code: 'WEFT_SCHEMA',
        path,
        message: `step id '${id}' hides the JSONata function $${id}(): expressions in this workflow cannot call it (consider renaming the step)`,
        severity: 'warning',
      });
    }
    const step = steps[id];
    if (!isPlainObject(step) || typeof step['type'] !== 'string') continue; // reported by the top-level schema
    const type = step['type'];
    if (!Object.hasOwn(stepValidators, type)) {
      const hint = didYouMean(type, STEP_TYPES);
      problems.push({
        code: 'WEFT_UNKNOWN_STEP_TYPE',
        path: `${path}/type`,
        message: `unknown step type '${clip(type)}'${hint}; the step types are ${STEP_TYPES.join(', ')}`,
      });
      continue;
    }
    const { validator, schema } = stepValidators[type as StepType];
    problems.push(...schemaProblems(validator, schema, step, { code: 'WEFT_SCHEMA', path, uniqueItemsCode: 'WEFT_DUPLICATE_ID' }));
  }
  return problems;
}

export interface SchemaProblemOptions {
  /** Code for the problems found. */
  code: ErrorCode;
  /** JSON pointer prefixed to every problem path. */
  path?: string;
  /** Code for duplicate array items (the definition reports duplicate needs as WEFT_DUPLICATE_ID). */
  uniqueItemsCode?: ErrorCode;
}

/**
 * Validates `instance` and converts cfworker's output into readable problems: only the
 * faults themselves (the "Property x does not match schema" wrappers are dropped), JSON
 * pointer paths, messages that name the unknown property, the allowed values, the limit…
 * A validator that throws (a hostile schema) is reported as one problem at the root.
 */
export function schemaProblems(validator: Validator, schema: Schema, instance: unknown, options: SchemaProblemOptions): Problem[] {
  let units: OutputUnit[];
  try {
    units = validator.validate(instance).errors;
  } catch (error) {
    return [{ code: options.code, path: options.path ?? '', message: `could not be validated: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` }];
  }
  const converter = new Converter(schema, instance, options);
  converter.convert(units, 0, units.length);
  // "unknown property 'promt' (did you mean 'prompt'?)" already says that 'prompt' is missing.
  return converter.problems.filter((p) => !converter.suggested.has(p.path) || !p.message.startsWith('missing required property'));
}

// ---------------------------------------------------------------------------------------

const WRAPPERS = new Set([
  'properties', 'patternProperties', 'items', 'prefixItems', 'additionalItems', 'unevaluatedItems',
  '$ref', '$recursiveRef', 'allOf', 'if', 'dependentSchemas',
]);

class Converter {
  readonly problems: Problem[] = [];
  /** Paths of properties suggested by "did you mean" for an unknown property. */
  readonly suggested = new Set<string>();
  private readonly seen = new Set<string>();

  constructor(
    private readonly schema: Schema,
    private readonly instance: unknown,
    private readonly options: SchemaProblemOptions,
  ) {}

  /** Converts units[from, to). */
  convert(units: OutputUnit[], from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const unit = units[i]!;
      const path = decodeLocation(unit.instanceLocation);
      switch (unit.keyword) {
        case 'additionalProperties':
        case 'unevaluatedProperties': {
          const next = units[i + 1];
          if (next && next.keyword === 'false') {
            this.unknownProperty(unit, next);
            i++;
          }
          continue; // otherwise a wrapper: the sub-schema's own errors follow
        }
        case 'anyOf':
        case 'oneOf': {
          const end = groupEnd(units, i);
          this.alternatives(unit, units, i + 1, end);
          i = end - 1;
          continue;
        }
        case 'contains': {
          const end = groupEnd(units, i);
          this.add(path, 'must contain at least one matching item');
          i = end - 1;
          continue;
        }
        case 'propertyNames': {
          const end = groupEnd(units, i);
          const name = /Property name "(.*)" does not match/s.exec(unit.error)?.[1] ?? '';
          this.add(path, `property name '${clip(name)}' is not allowed`);
          i = end - 1;
          continue;
        }
        default:
          if (WRAPPERS.has(unit.keyword)) continue;
          this.leaf(unit, path);
      }
    }
  }

  private add(path: string, message: string, code: ErrorCode = this.options.code): void {
    const full = (this.options.path ?? '') + path;
    const key = `${code}\u0000${full}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.problems.push({ code, path: full, message });
  }

  private unknownProperty(wrapper: OutputUnit, unit: OutputUnit): void {
    const path = decodeLocation(unit.instanceLocation);
    const name = lastSegment(path);
    const parent = resolveSchema(this.schema, parentLocation(wrapper.keywordLocation));
    const known = isPlainObject(parent) && isPlainObject(parent['properties']) ? Object.keys(parent['properties']) : [];
    const suggestion = closest(name, known);
    if (suggestion !== undefined) this.suggested.add((this.options.path ?? '') + decodeLocation(wrapper.instanceLocation) + pointer(suggestion));
    this.add(path, `unknown property '${clip(name)}'${suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`}`);
  }

  /** anyOf / oneOf: one message for literal unions, the matching branch's faults otherwise. */
  private alternatives(unit: OutputUnit, units: OutputUnit[], from: number, to: number): void {
    const path = decodeLocation(unit.instanceLocation);
    const value = resolveInstance(this.instance, path);
    const matches = /\((\d+) matches\)/.exec(unit.error);
    if (unit.keyword === 'oneOf' && matches && Number(matches[1]) > 1) {
      this.add(path, 'matches more than one of the allowed forms');
      return;
    }
    const branches = resolveSchema(this.schema, unit.keywordLocation);
    if (!Array.isArray(branches)) {
      this.add(path, 'does not match any of the allowed forms');
      return;
    }
    const literals = branches.map(literalsOf);
    if (literals.every((l) => l !== undefined)) {
      const allowed = literals.flat();
      const hint = typeof value === 'string' ? didYouMean(value, allowed.filter((a): a is string => typeof a === 'string')) : '';
      this.add(path, `must be ${allowed.length === 1 ? '' : 'one of '}${listOf(allowed.map((a) => quote(a)), 'or')}${hint}`);
      return;
    }
    const kind = jsonType(value);
    let fitting = branches
      .map((b, index) => ({ b, index }))
      .filter(({ b }) => isPlainObject(b) && typeAccepts(b['type'], value));
    if (fitting.length > 1 && isPlainObject(value)) {
      // Tagged unions (agent tools: `type: http | transform`): the branch the value's `type` names.
      const tagged = fitting.filter(({ b }) => {
        const properties = (b as Record<string, unknown>)['properties'];
        const tag = isPlainObject(properties) ? properties['type'] : undefined;
        return isPlainObject(tag) && Object.hasOwn(tag, 'const') && tag['const'] === value['type'];
      });
      if (tagged.length === 1) fitting = tagged;
    }
    if (fitting.length === 1) {
      const prefix = `${unit.keywordLocation}/${fitting[0]!.index}`;
      const slice: OutputUnit[] = [];
      for (let j = from; j < to; j++) {
        const u = units[j]!;
        const previous = slice[slice.length - 1];
        // cfworker gives a `false` schema's unit the instance location as its keyword location.
        const followsWrapper = u.keyword === 'false' && previous === units[j - 1] && (previous?.keyword === 'additionalProperties' || previous?.keyword === 'unevaluatedProperties');
        if (u.keywordLocation === prefix || u.keywordLocation.startsWith(prefix + '/') || followsWrapper) slice.push(u);
      }
      if (slice.length > 0) {
        this.convert(slice, 0, slice.length);
        return;
      }
    }
    const types = [...new Set(branches.flatMap((b) => (isPlainObject(b) ? typeNames(b['type']) : [])))];
    if (types.length > 0) this.add(path, `expected ${listOf(types.map(withArticle), 'or')}, got ${withArticle(kind)}`);
    else this.add(path, 'does not match any of the allowed forms');
  }

  private leaf(unit: OutputUnit, path: string): void {
    const schema = unit.keyword === 'false' ? undefined : resolveSchema(this.schema, parentLocation(unit.keywordLocation));
    const s = isPlainObject(schema) ? schema : {};
    const value = resolveInstance(this.instance, path);
    const fallback = unit.error.replace(/\.$/, '');
    switch (unit.keyword) {
      case 'type': {
        const expected = typeNames(s['type']);
        const got = jsonType(value);
        const detail = got === 'number' && expected.includes('integer') ? ` (${String(value)})` : '';
        this.add(path, expected.length ? `expected ${listOf(expected.map(withArticle), 'or')}, got ${withArticle(got)}${detail}` : fallback);
        return;
      }
      case 'const':
        this.add(path, `must be ${quote(s['const'])}`);
        return;
      case 'enum': {
        const allowed = Array.isArray(s['enum']) ? (s['enum'] as unknown[]) : [];
        const hint = typeof value === 'string' ? didYouMean(value, allowed.filter((a): a is string => typeof a === 'string')) : '';
        this.add(path, `must be one of ${listOf(allowed.map((a) => quote(a)), 'or')}${hint}`);
        return;
      }
      case 'required': {
        const name = /required property "(.*)"\.$/s.exec(unit.error)?.[1] ?? '';
        this.add(path + pointer(name), `missing required property '${clip(name)}'`);
        return;
      }
      case 'minLength': {
        const min = Number(s['minLength']);
        this.add(path, min === 1 ? 'must not be empty' : `must be at least ${min} characters long`);
        return;
      }
      case 'maxLength': {
        const length = typeof value === 'string' ? [...value].length : 0;
        this.add(path, `is too long: ${length} characters (the limit is ${String(s['maxLength'])})`);
        return;
      }
      case 'pattern':
        this.add(path, patternMessage(String(s['pattern']), value, path));
        return;
      case 'format':
        this.add(path, `is not a valid ${String(s['format'])}`);
        return;
      case 'minimum':
        this.add(path, `must be at least ${String(s['minimum'])} (got ${String(value)})`);
        return;
      case 'maximum':
        this.add(path, `must be at most ${String(s['maximum'])} (got ${String(value)})`);
        return;
      case 'exclusiveMinimum':
        this.add(path, `must be greater than ${String(s['exclusiveMinimum'])} (got ${String(value)})`);
        return;
      case 'exclusiveMaximum':
        this.add(path, `must be less than ${String(s['exclusiveMaximum'])} (got ${String(value)})`);
        return;
      case 'multipleOf':
        this.add(path, `must be a multiple of ${String(s['multipleOf'])}`);
        return;
      case 'minItems':
        this.add(path, `must have at least ${String(s['minItems'])} item${s['minItems'] === 1 ? '' : 's'}`);
        return;
      case 'maxItems':
        this.add(path, `has ${Array.isArray(value) ? value.length : '?'} items; at most ${String(s['maxItems'])} are allowed`);
        return;
      case 'uniqueItems':
        this.duplicates(path, value);
        return;
      case 'minProperties':
        if (this.atDefinitionRoot() && path === '/steps') this.add(path, 'a workflow needs at least one step');
        else if (/\/cases$/.test(path) && this.options.path?.startsWith('/steps/')) this.add(path, 'a condition needs at least one case');
        else this.add(path, `must have at least ${String(s['minProperties'])} propert${s['minProperties'] === 1 ? 'y' : 'ies'}`);
        return;
      case 'maxProperties': {
        const count = isPlainObject(value) ? Object.keys(value).length : 0;
        if (this.atDefinitionRoot() && path === '/steps') {
          this.add(path, `too many steps: ${count} (the limit is ${String(s['maxProperties'])}); split the workflow`);
        } else {
          this.add(path, `has ${count} properties; at most ${String(s['maxProperties'])} are allowed`);
        }
        return;
      }
      case 'false':
        this.add(path, 'is not allowed here');
        return;
      case 'dependentRequired':
      case 'dependencies': {
        const m = /has "(.*)" but does not have "(.*)"\.$/s.exec(unit.error);
        this.add(path, m ? `'${clip(m[2]!)}' is required when '${clip(m[1]!)}' is present` : fallback);
        return;
      }
      case 'not':
        this.add(path, 'is not allowed (matches a forbidden form)');
        return;
      default:
        this.add(path, lowerFirst(fallback));
    }
  }

  private atDefinitionRoot(): boolean {
    return (this.options.path ?? '') === '' && this.options.code === 'WEFT_SCHEMA';
  }

  /** One problem per repeated item, at the repeat's index. */
  private duplicates(path: string, value: unknown): void {
    if (!Array.isArray(value)) return;
    const code = this.options.uniqueItemsCode ?? this.options.code;
    const first = new Map<string, number>();
    value.forEach((item, index) => {
      const key = typeof item === 'object' && item !== null ? JSON.stringify(item) : `${typeof item}:${String(item)}`;
      const earlier = first.get(key);
      if (earlier === undefined) first.set(key, index);
      else this.add(`${path}/${index}`, `${quote(item)} is listed more than once (first at index ${earlier})`, code);
    });
  }
}

/** The end (exclusive) of the sub-errors that follow a wrapper unit at `index`. */
function groupEnd(units: OutputUnit[], index: number): number {
  const head = units[index]!;
  let end = index + 1;
  while (end < units.length) {
    const u = units[end]!;
    const inSchema = u.keywordLocation.startsWith(head.keywordLocation + '/') || (u.keyword === 'false' && u.instanceLocation.startsWith(head.instanceLocation + '/'));
    const inInstance = u.instanceLocation === head.instanceLocation || u.instanceLocation.startsWith(head.instanceLocation + '/');
    if (!inSchema || !inInstance) break;
    end++;
  }
  return end;
}

function patternMessage(pattern: string, value: unknown, path: string): string {
  const shown = typeof value === 'string' ? `'${clip(value)}'` : 'the value';
  if (pattern === STEP_ID_PATTERN) {
    const what = /\/(default|cases\/[^/]*)$/.test(path) ? 'branch name' : 'step id';
    return `${shown} is not a valid ${what}: use ${STEP_ID_RULE}`;
  }
  if (pattern === NEED_PATTERN) return `${shown} is not a valid need: use 'step' or 'step.branch' (${STEP_ID_RULE})`;
  if (pattern === '^[0-9]{2,4}x[0-9]{2,4}$') return `${shown} is not a valid size: use WIDTHxHEIGHT, e.g. 1024x1024`;
  return `${shown} does not match the pattern ${pattern}`;
}

/** The string/number/boolean values a union branch allows, when it is just a literal. */
function literalsOf(branch: unknown): unknown[] | undefined {
  if (!isPlainObject(branch)) return undefined;
  if ('const' in branch) return [branch['const']];
  if (Array.isArray(branch['enum'])) return branch['enum'] as unknown[];
  return undefined;
}

function typeNames(type: unknown): string[] {
  if (typeof type === 'string') return [type];
  if (Array.isArray(type)) return type.filter((t): t is string => typeof t === 'string');
  return [];
}

function typeAccepts(type: unknown, value: unknown): boolean {
  const names = typeNames(type);
  if (names.length === 0) return false;
  const kind = jsonType(value);
  return names.some((t) => t === kind || (t === 'number' && kind === 'integer') || (t === 'integer' && kind === 'number' && Number.isInteger(value)));
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function withArticle(type: string): string {
  if (type === 'null') return 'null';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeValue(value: unknown): string {
  return withArticle(jsonType(value));
}

function quote(value: unknown): string {
  return typeof value === 'string' ? `'${clip(value)}'` : JSON.stringify(value) ?? String(value);
}

function listOf(items: string[], conjunction: 'and' | 'or'): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${conjunction} ${items[items.length - 1]!}`;
}

function lowerFirst(s: string): string {
  return s.length > 0 && !/^[A-Z]{2}/.test(s) ? s[0]!.toLowerCase() + s.slice(1) : s;
}

function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** cfworker locations are `#` + URI-encoded pointer segments; ours are plain JSON pointers. */
function decodeLocation(location: string): string {
  const raw = location.startsWith('#') ? location.slice(1) : location;
  if (raw === '') return '';
  return raw
    .split('/')
    .slice(1)
    .map((segment) => '/' + safeDecode(segment))
    .join('');
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function pointerSegments(path: string): string[] {
  if (path === '') return [];
  return path
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function lastSegment(path: string): string {
  const segments = pointerSegments(path);
  return segments[segments.length - 1] ?? '';
}

function parentLocation(location: string): string {
  const i = location.lastIndexOf('/');
  return i === -1 ? location : location.slice(0, i);
}

function resolveInstance(root: unknown, path: string): unknown {
  let node = root;
  for (const segment of pointerSegments(path)) {
    if (Array.isArray(node)) node = node[Number(segment)];
    else if (isPlainObject(node) && Object.hasOwn(node, segment)) node = node[segment];
    else return undefined;
  }
  return node;
}

/**
 * The schema node at a cfworker keyword location. Locations run through `$ref` (the path then
 * continues inside the target), so local references are followed; anything else gives up.
 */
function resolveSchema(root: Schema, location: string, hops = 0): unknown {
  let node: unknown = root;
  for (const segment of pointerSegments(decodeLocation(location))) {
    if (segment === '$ref' && isPlainObject(node) && typeof node['$ref'] === 'string') {
      const ref = node['$ref'];
      if (!ref.startsWith('#') || hops > 16) return undefined;
      node = resolveSchema(root, ref, hops + 1);
      continue;
    }
    if (segment === '$recursiveRef') {
      node = root;
      continue;
    }
    if (Array.isArray(node)) node = node[Number(segment)];
    else if (isPlainObject(node) && Object.hasOwn(node, segment)) node = node[segment];
    else return undefined;
  }
  return node;
}

/** " (did you mean 'x'?)" for a close candidate, or ''. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const best = closest(name, candidates);
  return best === undefined ? '' : ` (did you mean '${best}'?)`;
}

/** The candidate closest to `name` within a small edit distance, if any. */
function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const limit = name.length <= 2 ? 0 : name.length <= 4 ? 1 : name.length <= 8 ? 2 : 3;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase(), limit);
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** Damerau–Levenshtein (optimal string alignment) distance, giving up past `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  if (a.length > 100 || b.length > 100) return limit + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    rows.push(row);
  }
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
