/**
 * The router: matches a request to its route, enforces the route's policy before reading
 * anything else of the request, validates parameters, query and body against the route's
 * schemas, runs the handler and writes the answer — JSON, or an RFC 9457 problem document.
 *
 * Deny by default: building a router from a route without a valid policy throws, so the
 * server does not start.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiServices } from '../services.ts';
import { readBody } from './body.ts';
import { HttpProblem, toProblem, type ProblemDocument } from './problem.ts';
import type { AnyRoute, HttpMethod, Principal } from './route.ts';
import { assertValid, coerceQuery } from './validate.ts';

const POLICIES = new Set(['public', 'user', 'admin']);

interface CompiledRoute {
  route: AnyRoute;
  segments: { literal?: string; param?: string }[];
}

export class Router {
  private readonly compiled: CompiledRoute[];

  constructor(readonly routes: readonly AnyRoute[]) {
    const seen = new Set<string>();
    const operationIds = new Set<string>();
    this.compiled = routes.map((route) => {
      const key = `${route.method} ${route.path}`;
      if (!POLICIES.has((route as { policy?: unknown }).policy as string)) {
        throw new Error(`route ${key} declares no valid policy (public, user or admin): refusing to start`);
      }
      if (seen.has(key)) throw new Error(`route ${key} is declared twice`);
      if (operationIds.has(route.operationId)) throw new Error(`operationId ${route.operationId} is used twice`);
      seen.add(key);
      operationIds.add(route.operationId);
      const segments = route.path.split('/').filter(Boolean).map((s) => (s.startsWith(':') ? { param: s.slice(1) } : { literal: s }));
      const declared = Object.keys(route.params?.properties ?? {}).sort().join(',');
      const inPath = segments.flatMap((s) => (s.param ? [s.param] : [])).sort().join(',');
      if (declared !== inPath) throw new Error(`route ${key}: path parameters (${inPath}) and params schema (${declared}) differ`);
      return { route, segments };
    });
    // A literal segment beats a parameter: /api/workflows/categories before /api/workflows/:id.
    this.compiled.sort((a, b) => paramCount(a) - paramCount(b));
  }

  /** Finds the route for a method and path; `allowed` lists the methods of a path that matched only by path. */
  match(method: string, pathname: string): { route: AnyRoute; params: Record<string, string> } | { allowed: string[] } {
    const parts = pathname.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const { route, segments } of this.compiled) {
      const params = matchSegments(segments, parts);
      if (!params) continue;
      if (route.method === method) return { route, params };
      allowed.push(route.method);
    }
    return { allowed };
  }

  /** Handles one request under /api. Never throws; never answers a 500 with internals. */
  async handle(req: IncomingMessage, res: ServerResponse, services: ApiServices, ip: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      const found = this.match((req.method ?? 'GET').toUpperCase(), url.pathname);
      if ('allowed' in found) {
        if (found.allowed.length === 0) throw new HttpProblem(404, 'WEFT_ROUTE_NOT_FOUND', `no route for ${url.pathname}`);
        throw new HttpProblem(405, 'WEFT_METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed here; use ${found.allowed.join(', ')}`, undefined, { Allow: found.allowed.join(', ') });
      }
      const { route, params } = found;
      const principal = await authorise(route, req, services);
      if (route.params) assertValid(route.params, params, '/params');
      const query = coerceQuery(route.query, url.searchParams);
      if (route.query) assertValid(route.query, query, '/query');
      else if (url.searchParams.size > 0) throw new HttpProblem(400, 'WEFT_VALIDATION', 'this route takes no query parameters', [{ path: '/query', message: 'unexpected query parameters' }]);
      let body: unknown;
      if (route.body) {
        body = await readBody(req, route.bodyTypes ?? ['json'], route.bodyLimit ?? services.config.bodyLimit);
        assertValid(route.body, body ?? {}, '/body');
        body ??= {};
      } else {
        req.resume();
      }
      const result = await route.handler({ params, query, body, principal, ip, req, res, services });
      if ('stream' in result) return;
      writeJson(res, result.status ?? 200, result.body, result.headers);
    } catch (error) {
      const { problem, headers, internal } = toProblem(error, url.pathname);
      if (internal) services.log.error('request failed', { method: req.method, path: url.pathname, error: describeError(error) });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      writeProblem(res, problem, headers);
    }
  }
}

/**
 * The caller, checked against the route's policy. On public routes a token is optional and
 * an invalid one is ignored (login must work with a stale header); elsewhere it must be valid.
 */
async function authorise(route: AnyRoute, req: IncomingMessage, services: ApiServices): Promise<Principal | null> {
  if (route.policy === 'public') {
    if (req.headers.authorization === undefined) return null;
    return services.auth.authenticate(req).catch(() => null);
  }
  const principal = await services.auth.authenticate(req);
  if (!principal) {
    throw new HttpProblem(401, 'WEFT_UNAUTHENTICATED', 'authentication required: send Authorization: Bearer <token>', undefined, { 'WWW-Authenticate': 'Bearer' });
  }
  if (route.policy === 'admin' && principal.role !== 'admin') throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'this needs the admin role');
  return principal;
}

function paramCount(r: CompiledRoute): number {
  return r.segments.filter((s) => s.param !== undefined).length;
}

function matchSegments(segments: CompiledRoute['segments'], parts: string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const part = parts[i]!;
    if (s.literal !== undefined) {
      if (s.literal !== part) return undefined;
      continue;
    }
    try {
      params[s.param!] = decodeURIComponent(part);
    } catch {
      return undefined;
    }
  }
  return params;
}

const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };

export function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (status === 204 || body === undefined) {
    res.writeHead(status === 200 && body === undefined ? 204 : status, { ...COMMON_HEADERS, ...headers });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function writeProblem(res: ServerResponse, problem: ProblemDocument, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(problem);
  // A body not read to the end would otherwise keep the socket busy (413, 401 on a POST).
  const close = problem.status === 413 ? { Connection: 'close' } : {};
  res.writeHead(problem.status, { ...COMMON_HEADERS, 'Content-Type': 'application/problem+json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...close, ...headers });
  res.end(text);
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export type { HttpMethod };
