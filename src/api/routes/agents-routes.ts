/**
 * /api/agents: named, versioned agent configurations. Everyone signed in reads them (workflow
 * authors pick agents); admins create, change (each change a new version) and delete them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { inputsSchemaProblems } from '../../core/inputs.ts';
import { createAgent, getAgent, listAgents, listAgentVersions, softDeleteAgent, updateAgent, type AgentConfig } from '../../store/agents.ts';
import { HttpProblem, notFound, type FieldError } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute } from '../http/route.ts';
import { Nullable, page, pageQuery, Timestamp, Uuid } from '../schemas.ts';
import { errors, paging } from './common.ts';

const tags = ['agents'];

/** Largest output schema, serialised. Its complexity is bounded separately (subschema count). */
export const MAX_OUTPUT_SCHEMA_BYTES = 64 * 1024;

const AgentName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', description: 'What steps write in `agent:` (lowercase letters, digits, `_`, `-`)' });
const NameParams = Type.Object({ name: AgentName });

const agentFields = {
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  system: Type.String({ minLength: 1, maxLength: 100_000, description: 'The system prompt' }),
  provider: Type.Optional(Nullable(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'Default provider (a step\'s own `provider:` wins)' }))),
  model: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
  temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }))),
  top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 }))),
  tools: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), { maxItems: 64, uniqueItems: true, description: 'Names of the tools the agent may call' })),
  output_schema: Type.Optional(Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema (type: object) the reply must match' }))),
};
const UpdateAgentBody = Type.Object(agentFields, { additionalProperties: false });
const CreateAgentBody = Type.Object({ name: AgentName, ...agentFields }, { additionalProperties: false });

const configSchemas = {
  description: Type.String(),
  system: Type.String(),
  provider: Nullable(Type.String()),
  model: Nullable(Type.String()),
  temperature: Nullable(Type.Number()),
  top_p: Nullable(Type.Number()),
  max_tokens: Nullable(Type.Integer()),
  tools: Type.Array(Type.String()),
  output_schema: Nullable(Type.Record(Type.String(), Type.Unknown())),
};
export const AgentSchema = Type.Object({
  name: Type.String(),
  version: Type.Integer({ description: 'The latest version, which steps use' }),
  builtin: Type.Boolean({ description: 'Seeded by the server (still editable)' }),
  ...configSchemas,
  created_at: Timestamp,
  updated_at: Timestamp,
});
export const AgentVersionSchema = Type.Object({ version: Type.Integer(), ...configSchemas, created_by: Nullable(Uuid), created_at: Timestamp });

export const agentsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/agents', policy: 'user', operationId: 'listAgents', tags,
    summary: 'List agents with their latest versions',
    query: pageQuery({}, ['name', 'created_at', 'updated_at']),
    responses: { 200: { description: 'A page of agents', schema: page(AgentSchema) }, ...errors(400, 401) },
    handler: async (ctx) => {
      const p = paging({ order: 'asc', ...ctx.query }, 'name' as 'name' | 'created_at' | 'updated_at');
      return { body: { ...(await listAgents(ctx.services.db, p)), limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/agents', policy: 'admin', operationId: 'createAgent', tags,
    summary: 'Create an agent (a deleted name comes back with this as its next version)',
    body: CreateAgentBody,
    responses: { 201: { description: 'Created', schema: AgentSchema }, ...errors(400, 401, 403, 409) },
    handler: async (ctx) => {
      const { name, ...fields } = ctx.body;
      const config = agentConfig(fields);
      const agent = await ctx.services.db.transaction((tx) => createAgent(tx, name, config, callerOf(ctx).userId));
      if (!agent) throw new HttpProblem(409, 'WEFT_CONFLICT', `an agent named '${name}' exists; PUT /api/agents/${name} stores a new version`);
      return { status: 201, body: agent, headers: { Location: `/api/agents/${name}` } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/agents/:name', policy: 'user', operationId: 'getAgent', tags,
    summary: 'An agent with its latest version',
    params: NameParams,
    responses: { 200: { description: 'The agent', schema: AgentSchema }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const agent = await getAgent(ctx.services.db, ctx.params.name);
      if (!agent) throw notFound('agent');
      return { body: agent };
    },
  }),
  defineRoute({
    method: 'PUT', path: '/api/agents/:name', policy: 'admin', operationId: 'updateAgent', tags,
    summary: 'Store the whole configuration as a new version (older versions stay; an unchanged one keeps its version)',
    params: NameParams,
    body: UpdateAgentBody,
    responses: { 200: { description: 'The agent', schema: AgentSchema }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const config = agentConfig(ctx.body);
      const agent = await ctx.services.db.transaction((tx) => updateAgent(tx, ctx.params.name, config, callerOf(ctx).userId));
      if (!agent) throw notFound('agent');
      return { body: agent };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/agents/:name/versions', policy: 'user', operationId: 'listAgentVersions', tags,
    summary: 'Versions of an agent, newest first',
    params: NameParams,
    query: pageQuery({}, ['version']),
    responses: { 200: { description: 'A page of versions', schema: page(AgentVersionSchema) }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const p = paging(ctx.query, 'version');
      const versions = await listAgentVersions(ctx.services.db, ctx.params.name, p.limit, p.offset);
      if (!versions) throw notFound('agent');
      return { body: { ...versions, limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'DELETE', path: '/api/agents/:name', policy: 'admin', operationId: 'deleteAgent', tags,
    summary: 'Delete an agent (soft: its versions stay; steps naming it then fail)',
    params: NameParams,
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      if (!(await softDeleteAgent(ctx.services.db, ctx.params.name))) throw notFound('agent');
      return { status: 204 };
    },
  }),
];

/** A request body as a full configuration (absent fields cleared), its output schema checked. */
function agentConfig(body: Static<typeof UpdateAgentBody>): AgentConfig {
  const outputSchema = body.output_schema ?? null;
  if (outputSchema !== null) checkOutputSchema(outputSchema);
  return {
    description: body.description ?? '',
    system: body.system,
    provider: body.provider ?? null,
    model: body.model ?? null,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    max_tokens: body.max_tokens ?? null,
    tools: body.tools ?? [],
    output_schema: outputSchema,
  };
}

/**
 * An output schema must describe a JSON object (what structured-output APIs accept at the
 * top) and pass the same vetting as a workflow's inputs schema: well-formed for the
 * interpreting validator, local non-recursive `$ref`s, no catastrophic regexes, a bounded
 * number of subschemas. It is never compiled to code.
 */
function checkOutputSchema(schema: Record<string, unknown>): void {
  const base = '/body/output_schema';
  const bytes = Buffer.byteLength(JSON.stringify(schema));
  if (bytes > MAX_OUTPUT_SCHEMA_BYTES) {
    throw schemaInvalid([{ path: base, message: `is ${bytes} bytes; the limit is ${MAX_OUTPUT_SCHEMA_BYTES}` }]);
  }
  if (schema['type'] !== 'object') {
    throw schemaInvalid([{ path: `${base}/type`, message: "an output schema must describe a JSON object: set type: 'object'" }]);
  }
  // The shared checker words its messages for inputs schemas.
  const problems = inputsSchemaProblems(schema, base)
    .filter((p) => p.severity !== 'warning')
    .map((p) => ({ path: p.path, code: p.code, message: p.message.replace(/inputs schema/g, 'output schema').replace(/for inputs\b/g, 'for output schemas') }));
  if (problems.length > 0) throw schemaInvalid(problems);
}

function schemaInvalid(problems: FieldError[]): HttpProblem {
  const first = problems[0]!;
  return new HttpProblem(400, 'WEFT_VALIDATION', `${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`, problems);
}
