/** Helpers shared by route modules. */
import { canViewRun } from '../../store/run-queries.ts';
import type { Viewer } from '../../store/workflows.ts';
import { notFound } from '../http/problem.ts';
import type { ApiServices } from '../services.ts';
import { callerOf, type Principal, type ResponseSpec } from '../http/route.ts';
import { ProblemSchema } from '../schemas.ts';

/** The scope every query of a route runs under. */
export function viewerOf(ctx: { principal: Principal | null }): Viewer {
  const p = callerOf(ctx);
  return { userId: p.userId, admin: p.role === 'admin' };
}

/** Error responses documented on a route, by status. */
export function errors(...statuses: number[]): Record<number, ResponseSpec> {
  const descriptions: Record<number, string> = {
    400: 'Invalid request: `errors` lists the path of each invalid field',
    401: 'Missing or invalid credentials',
    403: 'Authenticated, but not allowed',
    404: 'Not found (or not visible to the caller)',
    409: 'The resource is not in a state that allows this',
    413: 'Request body too large',
    415: 'Unsupported Content-Type',
    429: 'Rate limited: retry after the Retry-After header',
  };
  return Object.fromEntries(statuses.map((s) => [s, { description: descriptions[s] ?? 'Error', schema: ProblemSchema, contentType: 'application/problem+json' }]));
}

/** Limit/offset/sort/order with their defaults applied. */
export function paging<S extends string>(q: { limit?: number; offset?: number; sort?: string; order?: 'asc' | 'desc' }, defaultSort: S): { limit: number; offset: number; sort: S; order: 'asc' | 'desc' } {
  return { limit: q.limit ?? 50, offset: q.offset ?? 0, sort: (q.sort ?? defaultSort) as S, order: q.order ?? 'desc' };
}

/** 404 unless the run exists and the viewer may see it (owner or admin): never its existence. */
export async function requireVisibleRun(services: ApiServices, viewer: Viewer, runId: string): Promise<void> {
  if (!(await canViewRun(services.db, viewer, runId))) throw notFound('run');
}
