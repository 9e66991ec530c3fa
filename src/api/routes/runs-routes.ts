/** /api/runs: launch, list, get, and control (cancel, pause, resume, trigger and retry a step). */
import { Type } from '@sinclair/typebox';
import type { RunStatus } from '../../core/scheduler-types.ts';
import { getRunDetail, listRunSummaries, listStepDetails, type RunFilter, type RunSummary } from '../../store/run-queries.ts';
import { listArtifacts } from '../../store/artifacts.ts';
import { listRunApprovals } from '../../store/approvals.ts';
import { listRunFiles } from '../../store/run-files.ts';
import { fileUrl } from '../../steps/types.ts';
import { getVersion, getVersionOf, getWorkflowRecord, type Viewer } from '../../store/workflows.ts';
import type { ApiServices } from '../services.ts';
import { HttpProblem, notFound } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { IdParams, page, pageQuery, RunDetailSchema, RunStatuses, RunSummarySchema, Timestamp, Uuid } from '../schemas.ts';
import { errors, paging, requireVisibleRun, viewerOf } from './common.ts';

const tags = ['runs'];

const LaunchBody = Type.Object({
  workflow_id: Type.Optional(Uuid),
  version_id: Type.Optional(Type.Union([Uuid], { description: 'Pin an exact version (else the latest of workflow_id)' })),
  version: Type.Optional(Type.Integer({ minimum: 1, description: 'Version number of workflow_id' })),
  inputs: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  mode: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('step')], { description: 'step: every step waits for a trigger' })),
  idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  budget_usd: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000, description: 'Spending limit: the run pauses into an approval when the next AI step would pass it' })),
  provider: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'Default provider for steps and agents that name none (e.g. simulated)' })),
}, { additionalProperties: false });

const StepParams = Type.Object({ id: Uuid, stepId: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' }) });

export const runsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'POST', path: '/api/runs', policy: 'user', operationId: 'launchRun', tags,
    summary: 'Launch a run of a workflow you can see (yours or public), pinned to a version',
    body: LaunchBody,
    responses: { 201: { description: 'The run', schema: RunDetailSchema }, ...errors(400, 401, 404, 409, 429) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      const limit = ctx.services.limits.launchesPerOwner.take(viewer.userId);
      if (!limit.allowed) {
        throw new HttpProblem(429, 'WEFT_RATE_LIMITED', 'too many run launches; slow down', undefined, { 'Retry-After': String(limit.retryAfterSeconds) });
      }
      const versionId = await resolveVersion(ctx.services, viewer, ctx.body);
      const headerKey = ctx.req.headers['idempotency-key'];
      const idempotencyKey = ctx.body.idempotency_key ?? (typeof headerKey === 'string' && headerKey.length > 0 && headerKey.length <= 200 ? headerKey : undefined);
      const runId = await ctx.services.engine.startRun({
        versionId, inputs: ctx.body.inputs ?? {}, ownerId: viewer.userId, mode: ctx.body.mode ?? 'auto',
        ...(ctx.body.budget_usd === undefined ? {} : { budgetUsd: ctx.body.budget_usd }),
        ...(ctx.body.provider === undefined ? {} : { provider: ctx.body.provider }),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      });
      const run = await loadRunDetail(ctx.services, viewer, runId);
      return { status: 201, body: run, headers: { Location: `/api/runs/${runId}` } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/runs', policy: 'user', operationId: 'listRuns', tags,
    summary: 'List your runs (admins: all runs), filtered and paginated',
    query: pageQuery({
      status: Type.Optional(Type.Array(RunStatuses, { maxItems: 7, description: 'One or more statuses (repeat or comma-separate)' })),
      workflow_id: Type.Optional(Uuid),
      agent: Type.Optional(Type.String({ maxLength: 100 })),
      council: Type.Optional(Type.String({ maxLength: 100 })),
      creator: Type.Optional(Type.String({ maxLength: 100 })),
      from: Type.Optional(Timestamp),
      to: Type.Optional(Timestamp),
    }, ['created_at', 'finished_at', 'duration_ms', 'cost_usd']),
    responses: { 200: { description: 'A page of runs', schema: page(RunSummarySchema) }, ...errors(400, 401) },
    handler: async (ctx) => {
      const p = paging(ctx.query, 'created_at' as RunFilter['sort']);
      const q = ctx.query;
      const result = await listRunSummaries(ctx.services.db, viewerOf(ctx), {
        ...p, status: q.status, workflowId: q.workflow_id, agent: q.agent, council: q.council, creator: q.creator, from: q.from, to: q.to,
      });
      return { body: { items: result.items.map(presentSummary), total: result.total, limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/runs/:id', policy: 'user', operationId: 'getRun', tags,
    summary: 'A run with its steps, latest artifacts, cost, tokens, progress and durations',
    params: IdParams,
    responses: { 200: { description: 'The run', schema: RunDetailSchema }, ...errors(400, 401, 404) },
    handler: async (ctx) => ({ body: await loadRunDetail(ctx.services, viewerOf(ctx), ctx.params.id) }),
  }),
  control('cancel', 'cancelRun', 'Cancel a run: running steps are aborted, nothing new starts', (s, id) => s.engine.cancelRun(id)),
  control('pause', 'pauseRun', 'Pause a run: running steps finish, nothing new is scheduled', (s, id) => s.engine.pauseRun(id)),
  control('resume', 'resumeRun', 'Resume a paused run', (s, id) => s.engine.resumeRun(id)),
  defineRoute({
    method: 'POST', path: '/api/runs/:id/steps/:stepId/trigger', policy: 'user', operationId: 'triggerStep', tags,
    summary: 'In step mode: start a step that is waiting for its trigger, optionally with another prompt',
    params: StepParams,
    body: Type.Object({ prompt: Type.Optional(Type.String({ minLength: 1, maxLength: 100_000 })) }, { additionalProperties: false }),
    responses: { 200: { description: 'The run', schema: RunDetailSchema }, ...errors(400, 401, 404, 409) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      await requireVisibleRun(ctx.services, viewer, ctx.params.id);
      await ctx.services.engine.triggerStep(ctx.params.id, ctx.params.stepId, ctx.body.prompt === undefined ? {} : { prompt: ctx.body.prompt });
      return { body: await loadRunDetail(ctx.services, viewer, ctx.params.id) };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/runs/:id/steps/:stepId/retry', policy: 'user', operationId: 'retryStep', tags,
    summary: 'Run a failed step again; the steps after it that did not run are scheduled again',
    params: StepParams,
    responses: { 200: { description: 'The run', schema: RunDetailSchema }, ...errors(400, 401, 404, 409) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      await requireVisibleRun(ctx.services, viewer, ctx.params.id);
      await ctx.services.engine.retryStep(ctx.params.id, ctx.params.stepId);
      return { body: await loadRunDetail(ctx.services, viewer, ctx.params.id) };
    },
  }),
];

function control(action: string, operationId: string, summary: string, act: (s: ApiServices, runId: string) => Promise<RunStatus>): AnyRoute {
  return defineRoute({
    method: 'POST', path: `/api/runs/:id/${action}`, policy: 'user', operationId, tags, summary,
    params: IdParams,
    responses: { 200: { description: 'The run', schema: RunDetailSchema }, ...errors(400, 401, 404, 409) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      await requireVisibleRun(ctx.services, viewer, ctx.params.id);
      await act(ctx.services, ctx.params.id);
      return { body: await loadRunDetail(ctx.services, viewer, ctx.params.id) };
    },
  });
}

/** The version a launch pins: version_id, or workflow_id with a version number or its latest. */
async function resolveVersion(services: ApiServices, viewer: Viewer, body: { workflow_id?: string; version_id?: string; version?: number }): Promise<string> {
  if (body.version_id !== undefined) {
    if (body.workflow_id !== undefined || body.version !== undefined) {
      throw new HttpProblem(400, 'WEFT_VALIDATION', 'give version_id, or workflow_id with an optional version — not both', [{ path: '/body/version_id', message: 'conflicts with workflow_id/version' }]);
    }
    const version = await getVersion(services.db, body.version_id);
    const wf = version ? await getWorkflowRecord(services.db, viewer, version.workflow_id) : undefined;
    if (!version || !wf) throw notFound('workflow version');
    return version.id;
  }
  if (body.workflow_id === undefined) {
    throw new HttpProblem(400, 'WEFT_VALIDATION', 'workflow_id or version_id is required', [{ path: '/body/workflow_id', message: 'missing required property' }]);
  }
  const wf = await getWorkflowRecord(services.db, viewer, body.workflow_id);
  if (!wf) throw notFound('workflow');
  const version = await getVersionOf(services.db, wf.id, body.version ?? wf.latest_version);
  if (!version) throw notFound('workflow version');
  return version.id;
}

export async function loadRunDetail(services: ApiServices, viewer: Viewer, runId: string): Promise<Record<string, unknown>> {
  const run = await getRunDetail(services.db, viewer, runId);
  if (!run) throw notFound('run');
  const [steps, artifacts, version, files, approvals] = await Promise.all([
    listStepDetails(services.db, runId),
    listArtifacts(services.db, runId, { allVersions: false }),
    getVersion(services.db, run.version_id),
    listRunFiles(services.db, runId),
    listRunApprovals(services.db, runId),
  ]);
  const definition = version?.definition as { steps?: Record<string, { type?: string }> } | undefined;
  const order = Object.keys(definition?.steps ?? {});
  steps.sort((a, b) => order.indexOf(a.step_id) - order.indexOf(b.step_id));
  const { inputs, outputs, error, idempotency_key: _key, ...summary } = run;
  return {
    ...presentSummary(summary),
    inputs, outputs, error,
    steps: steps.map((s) => ({
      step_id: s.step_id, type: definition?.steps?.[s.step_id]?.type ?? 'unknown', status: s.status, attempt: s.attempt,
      branch: s.branch, skip_reason: s.skip_reason, error: s.error, started_at: s.started_at, finished_at: s.finished_at,
      duration_ms: s.duration_ms, provider: s.provider, model: s.model, tokens: { input: s.tokens_in, output: s.tokens_out }, cost_usd: s.cost_usd,
    })),
    artifacts,
    files: files.map((f) => ({
      sha256: f.sha256, step_id: f.stepId, name: f.name, content_type: f.contentType, size: f.size, url: fileUrl(runId, f.sha256), created_at: f.createdAt,
    })),
    // Council votes belong to approval steps, which this version of weft does not have yet.
    votes: [],
    approvals,
  };
}

function presentSummary(r: RunSummary): Record<string, unknown> {
  const { steps_total, steps_done, tokens_in, tokens_out, ...rest } = r;
  return {
    ...rest,
    progress: { total: steps_total, done: steps_done, percent: steps_total === 0 ? 100 : Math.round((1000 * steps_done) / steps_total) / 10 },
    tokens: { input: tokens_in, output: tokens_out },
  };
}
