/**
 * Request validation against the routes' TypeBox schemas, with the same interpreting
 * validator and the same readable messages as workflow definitions. Query strings arrive as
 * text, so they are coerced by their schema (numbers, integers, booleans, arrays) first.
 */
import { Validator, type Schema } from '@cfworker/json-schema';
import type { TSchema } from '@sinclair/typebox';
import { schemaProblems } from '../../core/validate-definition.ts';
import { HttpProblem, type FieldError } from './problem.ts';

interface Prepared {
  validator: Validator;
  schema: Schema;
}
const cache = new WeakMap<TSchema, Prepared>();

function prepare(schema: TSchema): Prepared {
  let p = cache.get(schema);
  if (!p) {
    const copy = JSON.parse(JSON.stringify(schema)) as Schema;
    p = { validator: new Validator(copy, '2020-12', false), schema: copy };
    cache.set(schema, p);
  }
  return p;
}

/** Field errors for `value` under `path` (`/body`, `/query`, `/params`); empty when valid. */
export function fieldErrors(schema: TSchema, value: unknown, path: string): FieldError[] {
  const { validator, schema: copy } = prepare(schema);
  return schemaProblems(validator, copy, value, { code: 'WEFT_SCHEMA', path }).map((p) => ({ path: p.path, message: p.message }));
}

/** Throws a 400 listing every invalid field. */
export function assertValid(schema: TSchema, value: unknown, path: string): void {
  const errors = fieldErrors(schema, value, path);
  if (errors.length > 0) {
    const first = errors[0]!;
    throw new HttpProblem(400, 'WEFT_VALIDATION', `${first.path}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, errors);
  }
}

type JsonSchemaNode = { type?: string | string[]; items?: JsonSchemaNode; anyOf?: JsonSchemaNode[]; properties?: Record<string, JsonSchemaNode> };

/**
 * Turns URLSearchParams into an object typed by `schema`: repeated keys become arrays where
 * the schema wants one; numbers and booleans are converted when they parse cleanly (when they
 * do not, the text is kept so validation reports it).
 */
export function coerceQuery(schema: TSchema | undefined, params: URLSearchParams): Record<string, unknown> {
  const props = (schema as JsonSchemaNode | undefined)?.properties ?? {};
  const out: Record<string, unknown> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    const node = props[key];
    if (node && typesOf(node).includes('array')) {
      out[key] = values.flatMap((v) => v.split(',')).filter((v) => v !== '').map((v) => coerceScalar(node.items, v));
    } else {
      out[key] = coerceScalar(node, values[values.length - 1]!);
    }
  }
  return out;
}

function typesOf(node: JsonSchemaNode): string[] {
  if (node.anyOf) return node.anyOf.flatMap(typesOf);
  return node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
}

function coerceScalar(node: JsonSchemaNode | undefined, text: string): unknown {
  const types = node ? typesOf(node) : [];
  if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (types.includes('boolean') && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}
