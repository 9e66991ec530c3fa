/**
 * GET /api/runs/:id/events: the run's event log. With `Accept: text/event-stream` it is a
 * Server-Sent Events stream that resumes after `Last-Event-ID` (or `?after=`); otherwise a JSON
 * page read with the same commit-safe cursor. GET /api/ws documents the WebSocket endpoint.
 */
import { Type } from '@sinclair/typebox';
import { FEED_START, listRunEventsAfter } from '../../store/events.ts';
import { parseCursor, toWireEvent } from '../events/event-wire.ts';
import { streamRunEvents } from '../events/sse.ts';
import { HttpProblem } from '../http/problem.ts';
import { defineRoute, type AnyRoute } from '../http/route.ts';
import { EventSchema, IdParams, Nullable } from '../schemas.ts';
import { errors, requireVisibleRun, viewerOf } from './common.ts';

const CURSOR_HINT = 'An event id from an earlier answer: `<tx>-<id>`';

function cursorFrom(text: string | undefined, path: string) {
  if (text === undefined || text === '') return undefined;
  const cursor = parseCursor(text);
  if (!cursor) throw new HttpProblem(400, 'WEFT_VALIDATION', `malformed event cursor '${text.slice(0, 60)}'`, [{ path, message: CURSOR_HINT }]);
  return { text, cursor };
}

export const eventsRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/runs/:id/events', policy: 'user', operationId: 'listRunEvents', tags: ['events'],
    summary: "The run's events: JSON pages, or a live SSE stream (Accept: text/event-stream) resumable with Last-Event-ID",
    params: IdParams,
    query: Type.Object({
      after: Type.Optional(Type.String({ maxLength: 45, description: CURSOR_HINT })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 500 })),
      follow: Type.Optional(Type.Boolean({ description: 'SSE: stay open after the run ends (a retried step can revive it)' })),
    }, { additionalProperties: false }),
    headerParams: [
      { name: 'Accept', description: '`text/event-stream` for the live SSE stream', schema: Type.String() },
      { name: 'Last-Event-ID', description: `SSE: resume after this event. ${CURSOR_HINT}`, schema: Type.String({ maxLength: 45 }) },
    ],
    responses: {
      200: {
        description: 'Events after the cursor, in commit order: a JSON page, or the SSE stream (each event: `id` = cursor, `event` = type, `data` = the event as JSON)',
        schema: Type.Object({ items: Type.Array(EventSchema), next_cursor: Nullable(Type.String()) }),
        alternatives: [{ contentType: 'text/event-stream', schema: Type.String() }],
      },
      204: { description: 'SSE: the client already has the run\'s final event (EventSource stops reconnecting)' },
      ...errors(400, 401, 404),
    },
    handler: async (ctx) => {
      await requireVisibleRun(ctx.services, viewerOf(ctx), ctx.params.id);
      const wantsStream = (ctx.req.headers.accept ?? '').includes('text/event-stream');
      if (wantsStream) {
        const header = ctx.req.headers['last-event-id'];
        const resume = cursorFrom(typeof header === 'string' ? header : undefined, '/headers/last-event-id') ?? cursorFrom(ctx.query.after, '/query/after');
        await streamRunEvents({ req: ctx.req, res: ctx.res, feed: ctx.services.feed, runId: ctx.params.id, follow: ctx.query.follow ?? false, ...(resume ? { cursor: resume.text } : {}) });
        return { stream: true };
      }
      const after = cursorFrom(ctx.query.after, '/query/after')?.cursor ?? FEED_START;
      const events = await listRunEventsAfter(ctx.services.db, ctx.params.id, after, ctx.query.limit ?? 500);
      const items = events.map(toWireEvent);
      return { body: { items, next_cursor: items.length > 0 ? items[items.length - 1]!.id : (ctx.query.after ?? null) } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/ws', policy: 'public', operationId: 'eventSocket', tags: ['events'],
    summary: 'WebSocket endpoint (upgrade only): send {type:"auth", token} first, then {type:"subscribe", id, run_id | scope:"my_runs", after?}',
    responses: { 426: { description: 'A plain GET: upgrade to a WebSocket', schema: Type.Object({}, { additionalProperties: true }), contentType: 'application/problem+json' } },
    handler: () => Promise.reject(new HttpProblem(426, 'WEFT_BAD_REQUEST', 'this endpoint speaks WebSocket: send an Upgrade request', undefined, { Upgrade: 'websocket' })),
  }),
];
