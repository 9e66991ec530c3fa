/** /api/runs/:id/artifacts: every output of a run, by step and name, with all its versions. */
import { Type } from '@sinclair/typebox';
import { getArtifact, listArtifacts, listArtifactVersions } from '../../store/artifacts.ts';
import { notFound } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { ArtifactSchema, ArtifactSummarySchema, IdParams, Uuid } from '../schemas.ts';
import { errors, requireVisibleRun, viewerOf } from './common.ts';

const tags = ['artifacts'];
const StepId = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' });
const Name = Type.String({ minLength: 1, maxLength: 200 });
const ArtifactParams = Type.Object({ id: Uuid, stepId: StepId, name: Name });

export const artifactsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/runs/:id/artifacts', policy: 'user', operationId: 'listArtifacts', tags,
    summary: "A run's artifacts: the latest version of each, or every version",
    params: IdParams,
    query: Type.Object({ step_id: Type.Optional(StepId), all_versions: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    responses: { 200: { description: 'Artifacts', schema: Type.Object({ items: Type.Array(ArtifactSummarySchema) }) }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      return { body: { items: await listArtifacts(ctx.services.db, ctx.params.id, { stepId: ctx.query.step_id, allVersions: ctx.query.all_versions ?? false }) } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/runs/:id/artifacts/:stepId/:name', policy: 'user', operationId: 'getArtifact', tags,
    summary: 'The latest version of an artifact, with its content',
    params: ArtifactParams,
    responses: { 200: { description: 'The artifact', schema: ArtifactSchema }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      const artifact = await getArtifact(ctx.services.db, ctx.params.id, ctx.params.stepId, ctx.params.name);
      if (!artifact) throw notFound('artifact');
      return { body: artifact };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/runs/:id/artifacts/:stepId/:name/versions', policy: 'user', operationId: 'listArtifactVersions', tags,
    summary: 'Every version of an artifact, newest first',
    params: ArtifactParams,
    responses: { 200: { description: 'Versions', schema: Type.Object({ items: Type.Array(ArtifactSummarySchema) }) }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      const items = await listArtifactVersions(ctx.services.db, ctx.params.id, ctx.params.stepId, ctx.params.name);
      if (items.length === 0) throw notFound('artifact');
      return { body: { items } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/runs/:id/artifacts/:stepId/:name/versions/:version', policy: 'user', operationId: 'getArtifactVersion', tags,
    summary: 'One version of an artifact, with its content',
    params: Type.Object({ id: Uuid, stepId: StepId, name: Name, version: Type.String({ pattern: '^[1-9][0-9]{0,8}$' }) }),
    responses: { 200: { description: 'The artifact version', schema: ArtifactSchema }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      const artifact = await getArtifact(ctx.services.db, ctx.params.id, ctx.params.stepId, ctx.params.name, Number(ctx.params.version));
      if (!artifact) throw notFound('artifact version');
      return { body: artifact };
    },
  }),
];
