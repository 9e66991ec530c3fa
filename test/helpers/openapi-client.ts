/**
 * A client generated at run time from an OpenAPI 3.1 document: one function per operationId
 * that fills in path parameters, checks the required ones, sends the body with the operation's
 * media type, and validates every JSON answer against the response schema the document
 * declares for that status. A route whose document is wrong therefore fails the scenario.
 */
import { Validator, type Schema } from '@cfworker/json-schema';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string | number | boolean>;
  body?: unknown;
  token?: string;
}

export interface CallResult {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  response: Response;
}

export type GeneratedClient = Record<string, (options?: CallOptions) => Promise<CallResult>>;

export function generateClient(doc: Json, baseUrl: string): GeneratedClient {
  const client: GeneratedClient = {};
  for (const [path, methods] of Object.entries(doc['paths'] as Record<string, Json>)) {
    for (const [method, op] of Object.entries(methods)) {
      const operationId = op['operationId'] as string;
      if (client[operationId]) throw new Error(`duplicate operationId ${operationId}`);
      client[operationId] = (options = {}) => call(doc, baseUrl, path, method, op, options);
    }
  }
  return client;
}

async function call(doc: Json, baseUrl: string, path: string, method: string, op: Json, options: CallOptions): Promise<CallResult> {
  const parameters = (op['parameters'] ?? []) as { name: string; in: string; required: boolean }[];
  let url = path;
  for (const p of parameters.filter((x) => x.in === 'path')) {
    const value = options.params?.[p.name];
    if (value === undefined) throw new Error(`${op['operationId']}: missing path parameter ${p.name}`);
    url = url.replace(`{${p.name}}`, encodeURIComponent(value));
  }
  const query = new URLSearchParams();
  const known = new Set(parameters.filter((x) => x.in === 'query').map((x) => x.name));
  for (const [k, v] of Object.entries(options.query ?? {})) {
    if (!known.has(k)) throw new Error(`${op['operationId']}: the document declares no query parameter ${k}`);
    query.set(k, String(v));
  }
  const headers: Record<string, string> = {};
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    const content = op['requestBody']?.content as Json | undefined;
    if (!content) throw new Error(`${op['operationId']}: the document declares no request body`);
    headers['content-type'] = content['application/json'] ? 'application/json' : Object.keys(content)[0]!;
    body = JSON.stringify(options.body);
  }
  const qs = query.size > 0 ? `?${query}` : '';
  const response = await fetch(baseUrl + url + qs, { method: method.toUpperCase(), headers, ...(body === undefined ? {} : { body }) });
  const spec = op['responses']?.[String(response.status)] as Json | undefined;
  if (!spec) throw new Error(`${op['operationId']}: status ${response.status} is not documented (${await response.text()})`);
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!;
  if (!type.includes('json')) return { status: response.status, body: undefined, response };
  const parsed = JSON.parse(await response.text()) as unknown;
  const schema = spec['content']?.[type]?.schema as Json | undefined;
  if (!schema) throw new Error(`${op['operationId']}: no schema documented for ${response.status} ${type}`);
  const result = new Validator(resolveRefs(doc, schema) as Schema, '2020-12', false).validate(parsed);
  if (!result.valid) {
    throw new Error(`${op['operationId']}: the ${response.status} answer does not match its documented schema: ${JSON.stringify(result.errors.slice(0, 5))}`);
  }
  return { status: response.status, body: parsed, response };
}

/** Inlines `#/components/...` references (the document uses them only for shared schemas). */
function resolveRefs(doc: Json, node: unknown): unknown {
  if (Array.isArray(node)) return node.map((n) => resolveRefs(doc, n));
  if (!node || typeof node !== 'object') return node;
  const ref = (node as Json)['$ref'];
  if (typeof ref === 'string' && ref.startsWith('#/')) {
    const target = ref.slice(2).split('/').reduce<unknown>((o, k) => (o as Json)[k], doc);
    return resolveRefs(doc, target);
  }
  return Object.fromEntries(Object.entries(node as Json).map(([k, v]) => [k, resolveRefs(doc, v)]));
}
