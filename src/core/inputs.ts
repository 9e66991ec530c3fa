/**
 * Launch inputs: checked against the workflow's `inputs` JSON Schema (written by users, so
 * run by @cfworker/json-schema, an interpreter), with defaults applied; and the CLI's
 * `--input key=value` pairs coerced by that schema. The schema itself is vetted when the
 * definition is compiled (inputsSchemaProblems), so a launch cannot trip over it.
 */
import { Validator, dereference } from '@cfworker/json-schema';
import type { Schema } from '@cfworker/json-schema';
import type { CompiledWorkflow } from './compiled.ts';
import { LIMITS } from './definition-schema.ts';
import { DefinitionError, pointer } from './errors.ts';
import type { Problem } from './errors.ts';
import { toPlainJson, utf8Length } from './parse-definition.ts';
import { isPlainObject, schemaProblems } from './validate-definition.ts';

/** Schema nodes in an inputs schema, counting each `$ref` target again at every use. */
export const MAX_INPUT_SCHEMA_NODES = 2000;

interface PreparedSchema {
  validator: Validator;
  schema: Schema;
}
const prepared = new WeakMap<object, PreparedSchema>();

/**
 * Checks launch inputs and returns a plain-JSON copy with schema defaults filled in.
 * `undefined` means {}. Throws DefinitionError: WEFT_INVALID_INPUTS (not an object, not JSON,
 * schema violations, with paths such as `/topic`) or WEFT_TOO_LARGE (depth, size).
 */
export function checkLaunchInputs(wf: CompiledWorkflow, inputs: unknown): Record<string, unknown> {
  const value = inputs === undefined ? {} : inputs;
  if (!isPlainObject(value)) {
    throw invalid('', `inputs must be a JSON object, not ${describe(value)}`);
  }
  const copy = toPlainJson(value, {
    maxDepth: LIMITS.jsonDepth,
    code: 'WEFT_INVALID_INPUTS',
    maxStringBytes: LIMITS.inputBytes,
  }) as Record<string, unknown>;
  const bytes = utf8Length(JSON.stringify(copy));
  if (bytes > LIMITS.inputBytes) {
    throw new DefinitionError([{ code: 'WEFT_TOO_LARGE', path: '', message: `inputs are ${bytes} bytes; the limit is ${LIMITS.inputBytes}` }]);
  }
  const schema = wf.definition.inputs;
  if (schema === undefined) return copy;

  applyDefaults(copy, schema);
  let entry: PreparedSchema;
  try {
    entry = prepare(schema);
  } catch (error) {
    throw new DefinitionError([{ code: 'WEFT_SCHEMA', path: '/inputs', message: `the inputs schema cannot be used: ${firstLine(error)}` }]);
  }
  const { validator, schema: schemaCopy } = entry;
  const problems = schemaProblems(validator, schemaCopy, copy, { code: 'WEFT_INVALID_INPUTS' });
  if (problems.length > 0) throw new DefinitionError(problems);
  return copy;
}

/**
 * Turns the CLI's repeated `--input key=value` into an object. Each value is coerced by the
 * schema's type for that property (integer, number, boolean, null, object and array through
 * JSON.parse; string as is; no schema or no type: string). `a.b=1` sets nested objects; a
 * later pair for the same key wins. Throws DefinitionError (WEFT_INVALID_INPUTS, with the
 * path) listing every value that does not fit.
 */
export function coerceInputPairs(schema: Record<string, unknown> | undefined, pairs: [string, string][]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const problems: Problem[] = [];
  for (const [key, raw] of pairs) {
    const segments = key.split('.');
    const path = pointer(...segments);
    if (segments.some((s) => s === '' || s === '__proto__')) {
      problems.push({ code: 'WEFT_INVALID_INPUTS', path, message: `'${key}' is not a valid input name` });
      continue;
    }
    // Walk (and create) the parents.
    let target = result;
    let sub: unknown = schema;
    let ok = true;
    for (let i = 0; i < segments.length - 1; i++) {
      const segment = segments[i]!;
      sub = propertySchema(sub, segment);
      const existing = Object.hasOwn(target, segment) ? target[segment] : undefined;
      if (existing === undefined) {
        const child: Record<string, unknown> = {};
        setOwn(target, segment, child);
        target = child;
      } else if (isPlainObject(existing)) {
        target = existing;
      } else {
        problems.push({ code: 'WEFT_INVALID_INPUTS', path, message: `cannot set '${key}': '${segments.slice(0, i + 1).join('.')}' is already set to a non-object value` });
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    const last = segments[segments.length - 1]!;
    const coerced = coerceValue(raw, propertySchema(sub, last));
    if ('error' in coerced) {
      problems.push({ code: 'WEFT_INVALID_INPUTS', path, message: `--input ${key}: ${coerced.error}` });
      continue;
    }
    setOwn(target, last, coerced.value);
  }
  if (problems.length > 0) throw new DefinitionError(problems);
  return result;
}

/**
 * Compile-time vetting of a definition's `inputs` schema (paths under `base`): it must
 * describe an object, be well-formed where cfworker relies on it (keyword types, regexes
 * that compile), use only local, non-recursive `$ref`s, stay under
 * MAX_INPUT_SCHEMA_NODES once references are expanded (so validation cost is bounded by the
 * input size), and survive a trial validation.
 */
export function inputsSchemaProblems(schema: unknown, base = '/inputs'): Problem[] {
  const problem = (path: string, message: string): Problem => ({ code: 'WEFT_SCHEMA', path: base + path, message });
  if (!isPlainObject(schema)) return [problem('', 'the inputs schema must be a JSON Schema object')];
  const problems: Problem[] = [];
  const type = schema['type'];
  if (type !== undefined && type !== 'object') {
    problems.push(problem('/type', `the inputs schema must describe an object (type: object), not ${JSON.stringify(type)}`));
  }
  let copy: Schema;
  try {
    copy = JSON.parse(JSON.stringify(schema)) as Schema;
  } catch {
    return [problem('', 'the inputs schema is not plain JSON')];
  }
  const nodes = collectSchemaNodes(copy, (path, message) => problems.push(problem(path, message)));
  if (problems.length > 0) return problems;

  let lookup: Record<string, unknown>;
  try {
    lookup = dereference(copy) as Record<string, unknown>;
  } catch (error) {
    return [problem('', `invalid schema: ${firstLine(error)}`)];
  }
  // $ref targets, and unresolved references.
  const refTarget = new Map<object, object | boolean>();
  for (const { node, path } of nodes) {
    if (typeof node['$ref'] !== 'string') continue;
    const absolute = (node as { __absolute_ref__?: string }).__absolute_ref__;
    const target = absolute === undefined ? undefined : lookup[absolute];
    if (typeof target !== 'boolean' && !isPlainObject(target)) problems.push(problem(`${path}/$ref`, `unresolved reference '${node['$ref']}'`));
    else refTarget.set(node, target);
  }
  if (problems.length > 0) return problems;

  const expanded = expandedSize(copy, refTarget);
  if (expanded === 'cycle') return [problem('', 'recursive schemas ($ref cycles) are not supported for inputs')];
  if (expanded > MAX_INPUT_SCHEMA_NODES) {
    return [problem('', `the inputs schema is too complex: ${expanded > MAX_INPUT_SCHEMA_NODES * 10 ? 'far ' : ''}more than ${MAX_INPUT_SCHEMA_NODES} subschemas once references are expanded`)];
  }
  try {
    new Validator(copy, '2020-12', false).validate({});
  } catch (error) {
    return [problem('', `the inputs schema cannot be evaluated: ${firstLine(error)}`)];
  }
  return [];
}

// ---------------------------------------------------------------------------------------

function prepare(schema: Record<string, unknown>): PreparedSchema {
  let entry = prepared.get(schema);
  if (!entry) {
    const copy = JSON.parse(JSON.stringify(schema)) as Schema;
    entry = { validator: new Validator(copy, '2020-12', false), schema: copy };
    prepared.set(schema, entry);
  }
  return entry;
}

/** Fills in `default`s of missing properties, at the top level and in nested objects. */
function applyDefaults(value: Record<string, unknown>, schema: unknown): void {
  if (!isPlainObject(schema) || !isPlainObject(schema['properties'])) return;
  const properties = schema['properties'];
  for (const key of Object.keys(properties)) {
    const sub = properties[key];
    if (!isPlainObject(sub)) continue;
    if (!Object.hasOwn(value, key) && Object.hasOwn(sub, 'default') && sub['default'] !== undefined) {
      setOwn(value, key, JSON.parse(JSON.stringify(sub['default'])) as unknown);
    }
    const child = Object.hasOwn(value, key) ? value[key] : undefined;
    if (isPlainObject(child)) applyDefaults(child, sub);
  }
}

function propertySchema(schema: unknown, key: string): unknown {
  if (!isPlainObject(schema) || !isPlainObject(schema['properties'])) return undefined;
  const properties = schema['properties'];
  return Object.hasOwn(properties, key) ? properties[key] : undefined;
}

type Coerced = { value: unknown } | { error: string };

function coerceValue(raw: string, schema: unknown): Coerced {
  const type = isPlainObject(schema) ? schema['type'] : undefined;
  const types = typeof type === 'string' ? [type] : Array.isArray(type) ? type.filter((t): t is string => typeof t === 'string') : [];
  if (types.length === 0 || (types.length === 1 && types[0] === 'string')) return { value: raw };
  let parsed: unknown;
  let parses = true;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parses = false;
  }
  for (const t of types) {
    if (!parses) break;
    if (t === 'integer' && typeof parsed === 'number' && Number.isInteger(parsed)) return { value: parsed };
    if (t === 'number' && typeof parsed === 'number') return { value: parsed };
    if (t === 'boolean' && typeof parsed === 'boolean') return { value: parsed };
    if (t === 'null' && parsed === null) return { value: null };
    if (t === 'object' && isPlainObject(parsed)) return { value: parsed };
    if (t === 'array' && Array.isArray(parsed)) return { value: parsed };
  }
  if (types.includes('string')) return { value: raw };
  const shown = raw.length > 60 ? `${raw.slice(0, 60)}…` : raw;
  const hint = types.includes('object') || types.includes('array') ? ' (give it as JSON)' : '';
  return { error: `expected ${types.map(article).join(' or ')}, got '${shown}'${hint}` };
}

function article(type: string): string {
  return type === 'null' ? 'null' : /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return article(typeof value);
}

function invalid(path: string, message: string): DefinitionError {
  return new DefinitionError([{ code: 'WEFT_INVALID_INPUTS', path, message }]);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

const SCHEMA_TYPES = new Set(['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']);
/** Keywords holding one subschema. */
const SINGLE = ['additionalProperties', 'unevaluatedProperties', 'propertyNames', 'not', 'if', 'then', 'else', 'contains', 'additionalItems', 'unevaluatedItems'];
/** Keywords holding a non-empty array of subschemas. */
const LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
/** Keywords holding a map of subschemas. */
const MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const NUMBERS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const COUNTS = ['minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'minContains', 'maxContains'];
const UNSUPPORTED = ['$dynamicRef', '$dynamicAnchor', '$recursiveRef', '$recursiveAnchor'];

interface SchemaNode {
  node: Record<string, unknown>;
  path: string;
}

/**
 * Walks the schema tree (iteratively; references are not followed), reporting keywords whose
 * values cfworker would choke on, and returns every object node with its path.
 */
function collectSchemaNodes(root: Schema, report: (path: string, message: string) => void): SchemaNode[] {
  const nodes: SchemaNode[] = [];
  const stack: { value: unknown; path: string }[] = [{ value: root, path: '' }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'boolean') continue;
    if (!isPlainObject(value)) {
      report(path, 'expected a schema (an object or a boolean)');
      continue;
    }
    nodes.push({ node: value, path });
    const at = (...keys: (string | number)[]): string => path + pointer(...keys);
    const type = value['type'];
    if (type !== undefined) {
      const names = Array.isArray(type) ? type : [type];
      if (names.length === 0 || names.some((t) => typeof t !== 'string' || !SCHEMA_TYPES.has(t))) {
        report(at('type'), `'type' must be one of ${[...SCHEMA_TYPES].join(', ')} (or a list of them)`);
      }
    }
    for (const keyword of UNSUPPORTED) {
      if (keyword in value) report(at(keyword), `${keyword} is not supported in inputs schemas`);
    }
    const ref = value['$ref'];
    if (ref !== undefined && (typeof ref !== 'string' || !ref.startsWith('#'))) {
      report(at('$ref'), "only local references ('#/…') are supported");
    }
    if ('$id' in value || 'id' in value) {
      if (path !== '' || typeof (value['$id'] ?? value['id']) !== 'string') report(at('$id' in value ? '$id' : 'id'), '$id is only allowed, as a string, at the top of the inputs schema');
    }
    for (const keyword of SINGLE) {
      if (keyword in value) stack.push({ value: value[keyword], path: at(keyword) });
    }
    if ('items' in value) {
      const items = value['items'];
      if (Array.isArray(items)) items.forEach((item, i) => stack.push({ value: item, path: at('items', i) }));
      else stack.push({ value: items, path: at('items') });
    }
    for (const keyword of LISTS) {
      if (!(keyword in value)) continue;
      const list = value[keyword];
      if (!Array.isArray(list) || (list.length === 0 && keyword !== 'prefixItems')) {
        report(at(keyword), `'${keyword}' must be a non-empty array of schemas`);
        continue;
      }
      list.forEach((item, i) => stack.push({ value: item, path: at(keyword, i) }));
    }
    for (const keyword of MAPS) {
      if (!(keyword in value)) continue;
      const map = value[keyword];
      if (!isPlainObject(map)) {
        report(at(keyword), `'${keyword}' must be an object of schemas`);
        continue;
      }
      for (const key of Object.keys(map)) {
        if (keyword === 'patternProperties') {
          const issue = regexIssue(key);
          if (issue) report(at(keyword, key), issue);
        }
        stack.push({ value: map[key], path: at(keyword, key) });
      }
    }
    if ('pattern' in value) {
      const issue = typeof value['pattern'] === 'string' ? regexIssue(value['pattern']) : "'pattern' must be a string";
      if (issue) report(at('pattern'), issue);
    }
    if ('required' in value && (!Array.isArray(value['required']) || value['required'].some((r) => typeof r !== 'string'))) {
      report(at('required'), "'required' must be an array of property names");
    }
    if ('enum' in value && !Array.isArray(value['enum'])) report(at('enum'), "'enum' must be an array");
    for (const keyword of NUMBERS) {
      if (keyword in value && typeof value[keyword] !== 'number') report(at(keyword), `'${keyword}' must be a number`);
    }
    if ('multipleOf' in value && !(typeof value['multipleOf'] === 'number' && value['multipleOf'] > 0)) {
      report(at('multipleOf'), "'multipleOf' must be a number greater than 0");
    }
    for (const keyword of COUNTS) {
      const n = value[keyword];
      if (keyword in value && !(typeof n === 'number' && Number.isInteger(n) && n >= 0)) report(at(keyword), `'${keyword}' must be a non-negative integer`);
    }
    if ('format' in value && typeof value['format'] !== 'string') report(at('format'), "'format' must be a string");
    if ('dependentRequired' in value) {
      const dr = value['dependentRequired'];
      if (!isPlainObject(dr) || Object.values(dr).some((v) => !Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
        report(at('dependentRequired'), "'dependentRequired' must map property names to arrays of property names");
      }
    }
    if ('dependencies' in value) report(at('dependencies'), "'dependencies' is not supported; use dependentRequired or dependentSchemas");
  }
  return nodes;
}

/**
 * Why a schema regex is refused: it does not compile (cfworker uses the `u` flag), or it
 * repeats a group that itself repeats — `(a+)+`, `(\w*,?)*` — the classic shape of
 * catastrophic backtracking, which would let a workflow author stall every launch. A
 * heuristic: overlapping alternations such as `(a|a)*` still pass.
 */
function regexIssue(pattern: string): string | undefined {
  try {
    new RegExp(pattern, 'u');
  } catch {
    return `invalid regular expression ${JSON.stringify(pattern.slice(0, 100))}`;
  }
  const groups: boolean[] = []; // per open group: does it contain a repetition?
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) if (pattern[i] === '\\') i++;
      continue;
    }
    if (c === '(') {
      groups.push(false);
      continue;
    }
    const next = pattern[i + 1];
    const repeats = next === '*' || next === '+' || next === '{';
    if (c === ')') {
      const inner = groups.pop() ?? false;
      if (inner && repeats) return `regular expression ${JSON.stringify(pattern.slice(0, 100))} repeats a repeated group (catastrophic backtracking); simplify it`;
      if ((inner || repeats) && groups.length > 0) groups[groups.length - 1] = true;
      continue;
    }
    if ((c === '*' || c === '+' || c === '{') && groups.length > 0) groups[groups.length - 1] = true;
  }
  return undefined;
}

/**
 * The schema's size with every `$ref` expanded (saturating a little past the limit), or
 * 'cycle' when references make it recursive. Iterative post-order DFS with memoisation.
 */
function expandedSize(root: Schema, refTarget: Map<object, object | boolean>): number | 'cycle' {
  const cap = MAX_INPUT_SCHEMA_NODES * 10 + 1;
  const size = new Map<object, number>();
  const onPath = new Set<object>();
  const children = (node: Record<string, unknown>): object[] => {
    const out: object[] = [];
    const add = (v: unknown): void => {
      if (isPlainObject(v)) out.push(v);
    };
    for (const k of SINGLE) add(node[k]);
    const items = node['items'];
    if (Array.isArray(items)) items.forEach(add);
    else add(items);
    for (const k of LISTS) if (Array.isArray(node[k])) (node[k] as unknown[]).forEach(add);
    // $defs are not evaluated where they stand, only through references.
    for (const k of ['properties', 'patternProperties', 'dependentSchemas']) {
      const map = node[k];
      if (isPlainObject(map)) Object.values(map).forEach(add);
    }
    const target = refTarget.get(node);
    if (target !== undefined) add(target);
    return out;
  };
  const stack: { node: Record<string, unknown>; kids: object[] | undefined }[] = [{ node: root as Record<string, unknown>, kids: undefined }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.kids === undefined) {
      if (size.has(frame.node)) {
        stack.pop();
        continue;
      }
      onPath.add(frame.node);
      frame.kids = children(frame.node);
      for (const kid of frame.kids) {
        if (onPath.has(kid)) return 'cycle';
        if (!size.has(kid)) stack.push({ node: kid as Record<string, unknown>, kids: undefined });
      }
      continue;
    }
    let total = 1;
    for (const kid of frame.kids) total = Math.min(cap, total + (size.get(kid) ?? 0));
    size.set(frame.node, total);
    onPath.delete(frame.node);
    stack.pop();
  }
  return size.get(root) ?? 0;
}
