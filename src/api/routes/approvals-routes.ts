/**
 * Approvals: decisions a run waits on (a budget pause). Run-scoped routes answer 404 for a run
 * the caller may not see; GET /api/approvals lists the caller's runs' approvals (admins: all).
 */
import { Type } from '@sinclair/typebox';
import { WeftError } from '../../core/errors.ts';
import { listApprovals, listRunApprovals, type ApprovalStatus } from '../../store/approvals.ts';
import { HttpProblem } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { ApprovalSchema, IdParams, page, pageQuery, RunDetailSchema, Uuid } from '../schemas.ts';
import { errors, paging, requireVisibleRun, viewerOf } from './common.ts';
import { loadRunDetail } from './runs-routes.ts';

const tags = ['approvals'];

const Status = Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')]);

export const approvalsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/runs/:id/approvals', policy: 'user', operationId: 'listRunApprovals', tags,
    summary: 'A run\'s approvals, oldest first',
    params: IdParams,
    responses: { 200: { description: 'The approvals', schema: Type.Object({ items: Type.Array(ApprovalSchema) }) }, ...errors(400, 401, 404) },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      return { body: { items: await listRunApprovals(ctx.services.db, ctx.params.id) } };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/runs/:id/approvals/:approvalId', policy: 'user', operationId: 'decideApproval', tags,
    summary: 'Approve (optionally with a new budget_usd, at least what the run has spent: the run resumes) or reject (the run is cancelled)',
    params: Type.Object({ id: Uuid, approvalId: Uuid }),
    body: Type.Object({
      decision: Type.Union([Type.Literal('approve'), Type.Literal('reject')]),
      budget_usd: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000, description: 'With approve: the run\'s new spending limit' })),
      comment: Type.Optional(Type.String({ maxLength: 2000 })),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'The run, with the approval decided', schema: RunDetailSchema }, ...errors(400, 401, 404, 409) },
    handler: async (ctx) => {
      const viewer = viewerOf(ctx);
      await requireVisibleRun(ctx.services, viewer, ctx.params.id);
      const b = ctx.body;
      try {
        await ctx.services.engine.decideApproval(ctx.params.id, ctx.params.approvalId, {
          decision: b.decision, by: viewer.userId,
          ...(b.budget_usd === undefined ? {} : { budgetUsd: b.budget_usd }),
          ...(b.comment === undefined ? {} : { comment: b.comment }),
        });
      } catch (error) {
        // The engine's refusals of the body's values, with the field they are about.
        if (error instanceof WeftError && error.code === 'WEFT_INVALID_INPUTS') {
          const path = b.budget_usd !== undefined ? '/body/budget_usd' : '/body';
          throw new HttpProblem(400, 'WEFT_INVALID_INPUTS', error.message, [{ path, message: error.message }]);
        }
        throw error;
      }
      return { body: await loadRunDetail(ctx.services, viewer, ctx.params.id) };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/approvals', policy: 'user', operationId: 'listApprovals', tags,
    summary: 'Approvals of your runs (admins: of all runs), newest first unless order=asc; ?status=pending for what waits on someone',
    query: pageQuery({ status: Type.Optional(Status) }, ['created_at']),
    responses: { 200: { description: 'A page of approvals', schema: page(ApprovalSchema) }, ...errors(400, 401) },
    handler: async (ctx) => {
      const p = paging(ctx.query, 'created_at');
      const status = ctx.query.status as ApprovalStatus | undefined;
      const result = await listApprovals(ctx.services.db, viewerOf(ctx), { status, limit: p.limit, offset: p.offset, order: p.order });
      return { body: { items: result.items, total: result.total, limit: p.limit, offset: p.offset } };
    },
  }),
];
