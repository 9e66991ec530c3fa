/** /api/workflows: create (JSON or YAML), list, get, update (new version), delete, versions, clone. */
import { Type } from '@sinclair/typebox';
import { WorkflowDefinitionSchema } from '../../core/definition-schema.ts';
import {
  getVersionOf, getWorkflowRecord, listCategories, listVersions, listWorkflowRecords, softDeleteWorkflow, updateWorkflowMeta,
} from '../../store/workflows.ts';
import { HttpProblem, notFound } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { IdParams, Nullable, page, pageQuery, Uuid, VersionSchema, VersionWithDefinition, WorkflowSchema, WorkflowWithDefinition } from '../schemas.ts';
import { createWorkflow, requireEditable, updateDefinition } from '../workflow-service.ts';
import { errors, paging, viewerOf } from './common.ts';

const tags = ['workflows'];
const Visibility = Type.Union([Type.Literal('private'), Type.Literal('public')]);
const DEFINITION_BODY = { body: WorkflowDefinitionSchema, bodyTypes: ['json', 'yaml'] as ('json' | 'yaml')[] };

export const workflowsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/workflows', policy: 'user', operationId: 'listWorkflows', tags,
    summary: 'List the workflows you can see: your own and public ones (admins: all)',
    query: pageQuery({
      category: Type.Optional(Type.String({ maxLength: 100 })),
      tag: Type.Optional(Type.String({ maxLength: 50 })),
      owner: Type.Optional(Type.String({ maxLength: 100 })),
      visibility: Type.Optional(Visibility),
      q: Type.Optional(Type.String({ maxLength: 200, description: 'Text in the name or description' })),
    }, ['created_at', 'updated_at', 'name']),
    responses: { 200: { description: 'A page of workflows', schema: page(WorkflowSchema) }, ...errors(400, 401) },
    handler: async (ctx) => {
      const p = paging(ctx.query, 'created_at' as 'created_at' | 'updated_at' | 'name');
      const result = await listWorkflowRecords(ctx.services.db, viewerOf(ctx), { ...ctx.query, ...p });
      return { body: { ...result, limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/workflows', policy: 'user', operationId: 'createWorkflow', tags,
    summary: 'Create a workflow from its definition (application/json or application/yaml)',
    query: Type.Object({ visibility: Type.Optional(Visibility) }, { additionalProperties: false }),
    ...DEFINITION_BODY,
    responses: { 201: { description: 'Created', schema: WorkflowSchema }, ...errors(400, 401, 403, 413, 415) },
    handler: async (ctx) => {
      const wf = await createWorkflow(ctx.services.db, viewerOf(ctx), ctx.body, ctx.query.visibility ?? 'private');
      return { status: 201, body: wf, headers: { Location: `/api/workflows/${wf.id}` } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/workflows/categories', policy: 'user', operationId: 'listWorkflowCategories', tags,
    summary: 'Categories of the workflows you can see, with counts',
    responses: { 200: { description: 'Categories', schema: Type.Object({ items: Type.Array(Type.Object({ category: Type.String(), count: Type.Integer() })) }) }, ...errors(401) },
    handler: async (ctx) => ({ body: { items: await listCategories(ctx.services.db, viewerOf(ctx)) } }),
  }),
  defineRoute({
    method: 'GET', path: '/api/workflows/:id', policy: 'user', operationId: 'getWorkflow', tags,
    summary: 'A workflow with its latest definition',
    params: IdParams,
    responses: { 200: { description: 'The workflow', schema: WorkflowWithDefinition }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const wf = await getWorkflowRecord(ctx.services.db, viewerOf(ctx), ctx.params.id);
      if (!wf) throw notFound('workflow');
      const version = await getVersionOf(ctx.services.db, wf.id, wf.latest_version);
      return { body: { ...wf, definition: version?.definition ?? null } };
    },
  }),
  defineRoute({
    method: 'PUT', path: '/api/workflows/:id', policy: 'user', operationId: 'updateWorkflow', tags,
    summary: 'Store a new definition as a new immutable version (unchanged definitions keep their version)',
    params: IdParams,
    ...DEFINITION_BODY,
    responses: { 200: { description: 'The workflow', schema: WorkflowSchema }, ...errors(400, 401, 403, 404, 413, 415) },
    handler: async (ctx) => ({ body: await updateDefinition(ctx.services.db, viewerOf(ctx), ctx.params.id, ctx.body) }),
  }),
  defineRoute({
    method: 'PATCH', path: '/api/workflows/:id', policy: 'user', operationId: 'updateWorkflowSettings', tags,
    summary: 'Change catalogue settings: visibility (admins only for public), category, tags',
    params: IdParams,
    body: Type.Object({
      visibility: Type.Optional(Visibility),
      category: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 100 }))),
      tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 20, uniqueItems: true })),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'The workflow', schema: WorkflowSchema }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      await requireEditable(ctx.services.db, viewer, ctx.params.id);
      if (ctx.body.visibility === 'public' && !viewer.admin) throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'only admins publish public workflows');
      await updateWorkflowMeta(ctx.services.db, ctx.params.id, ctx.body);
      return { body: (await getWorkflowRecord(ctx.services.db, viewer, ctx.params.id))! };
    },
  }),
  defineRoute({
    method: 'DELETE', path: '/api/workflows/:id', policy: 'user', operationId: 'deleteWorkflow', tags,
    summary: 'Delete a workflow (soft: its versions and runs stay)',
    params: IdParams,
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      await requireEditable(ctx.services.db, viewerOf(ctx), ctx.params.id);
      await softDeleteWorkflow(ctx.services.db, ctx.params.id);
      return { status: 204 };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/workflows/:id/versions', policy: 'user', operationId: 'listWorkflowVersions', tags,
    summary: 'Versions of a workflow, newest first',
    params: IdParams,
    query: pageQuery({}, ['version']),
    responses: { 200: { description: 'A page of versions', schema: page(VersionSchema) }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const wf = await getWorkflowRecord(ctx.services.db, viewerOf(ctx), ctx.params.id);
      if (!wf) throw notFound('workflow');
      const p = paging(ctx.query, 'version');
      return { body: { ...(await listVersions(ctx.services.db, wf.id, p.limit, p.offset)), limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/workflows/:id/versions/:version', policy: 'user', operationId: 'getWorkflowVersion', tags,
    summary: 'One version with its definition',
    params: Type.Object({ id: Uuid, version: Type.String({ pattern: '^[1-9][0-9]{0,8}$' }) }),
    responses: { 200: { description: 'The version', schema: VersionWithDefinition }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const wf = await getWorkflowRecord(ctx.services.db, viewerOf(ctx), ctx.params.id);
      const version = wf ? await getVersionOf(ctx.services.db, wf.id, Number(ctx.params.version)) : undefined;
      if (!version) throw notFound('version');
      return { body: version };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/workflows/:id/clone', policy: 'user', operationId: 'cloneWorkflow', tags,
    summary: 'Copy a workflow you can see (e.g. a public template) into a new private workflow of yours',
    params: IdParams,
    responses: { 201: { description: 'The copy', schema: WorkflowSchema }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      const wf = await getWorkflowRecord(ctx.services.db, viewer, ctx.params.id);
      const version = wf ? await getVersionOf(ctx.services.db, wf.id, wf.latest_version) : undefined;
      if (!version) throw notFound('workflow');
      const copy = await createWorkflow(ctx.services.db, viewer, version.definition, 'private');
      return { status: 201, body: copy, headers: { Location: `/api/workflows/${copy.id}` } };
    },
  }),
];
