/**
 * A route is data: method, path, who may call it, the TypeBox schemas of its parameters, query
 * and body, its responses, and a handler. The same declarations validate requests, build the
 * OpenAPI document and drive the route × role test, so none of the three can drift.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Static, TObject, TSchema } from '@sinclair/typebox';
import type { ApiServices } from '../services.ts';

/** Who may call a route. There is no default: a route without a policy fails server start. */
export type Policy = 'public' | 'user' | 'admin';

export type Role = 'admin' | 'user';

/** The authenticated caller. */
export interface Principal {
  userId: string;
  email: string;
  role: Role;
  /** How the caller proved who they are. */
  via: 'jwt' | 'api_token' | 'external';
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Body media types a route accepts; JSON by default. */
export type BodyType = 'json' | 'yaml';

export interface ResponseSpec {
  description: string;
  schema?: TSchema;
  /** Media type when not JSON (e.g. `text/event-stream`). */
  contentType?: string;
  /** Further media types the same status may answer with (content negotiation). */
  alternatives?: { contentType: string; schema: TSchema }[];
}

/** A request header a route reads, for the OpenAPI document (the handler parses it). */
export interface HeaderParam {
  name: string;
  description: string;
  schema: TSchema;
}

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** Set for `user` and `admin` routes (the router guarantees it); may be set on public ones. */
  principal: Principal | null;
  /** The client address of the socket — never from X-Forwarded-For unless configured. */
  ip: string;
  req: IncomingMessage;
  res: ServerResponse;
  services: ApiServices;
}

/**
 * What a handler returns. `stream` means the handler wrote the response itself (SSE, files).
 */
export type RouteResult =
  | { status?: number; body?: unknown; headers?: Record<string, string> }
  | { stream: true };

export interface RouteDef<
  P extends TObject = TObject,
  Q extends TObject = TObject,
  B extends TSchema = TSchema,
> {
  method: HttpMethod;
  /** Express-style path: `/api/runs/:id`. */
  path: string;
  policy: Policy;
  operationId: string;
  summary: string;
  tags: string[];
  params?: P;
  query?: Q;
  body?: B;
  /** Accepted body media types (default `['json']`). */
  bodyTypes?: BodyType[];
  /** Request headers the handler reads (documented; parsed by the handler). */
  headerParams?: HeaderParam[];
  /** Maximum body size in bytes (default from the server config). */
  bodyLimit?: number;
  responses: Record<number, ResponseSpec>;
  handler: (ctx: RouteContext<Static<P>, Static<Q>, Static<B>>) => Promise<RouteResult>;
}

/** Identity function that keeps the schema types flowing into the handler's context. */
export function defineRoute<P extends TObject, Q extends TObject, B extends TSchema>(
  route: RouteDef<P, Q, B>,
): RouteDef<P, Q, B> {
  return route;
}

/** A route list of mixed schema types, as the router takes it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteDef<any, any, any>;

/** The principal of a non-public route (the router has already refused anonymous callers). */
export function callerOf(ctx: { principal: Principal | null }): Principal {
  if (!ctx.principal) throw new Error('callerOf used on a route without an authenticated caller');
  return ctx.principal;
}
