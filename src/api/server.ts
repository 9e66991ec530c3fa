/**
 * The API server: one node:http server for the REST API, live events (SSE and one WebSocket
 * endpoint), the OpenAPI document and its docs page. The engine (and its workers) is passed in;
 * `weft serve` runs both in one process.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/engine.ts';
import { systemClock, type Clock } from '../engine/clock.ts';
import type { Logger } from '../engine/log.ts';
import type { Db } from '../store/db.ts';
import { seedBuiltinAgents } from '../store/agents.ts';
import { canViewRun } from '../store/run-queries.ts';
import { seedTemplates } from '../store/templates.ts';
import { AuthService } from './auth/auth-service.ts';
import type { ApiConfig } from './config.ts';
import { EventFeed } from './events/event-feed.ts';
import { attachEventSocket } from './events/websocket.ts';
import { problemDocument } from './http/problem.ts';
import type { AnyRoute } from './http/route.ts';
import { Router, writeProblem } from './http/router.ts';
import { buildOpenApi } from './openapi.ts';
import { RateLimiter } from './rate-limit.ts';
import { loadTemplates } from './template-files.ts';
import { agentsRoutes } from './routes/agents-routes.ts';
import { approvalsRoutes } from './routes/approvals-routes.ts';
import { artifactsRoutes } from './routes/artifacts-routes.ts';
import { authRoutes } from './routes/auth-routes.ts';
import { credentialsRoutes, startCredentialProviders } from './routes/credentials-routes.ts';
import { docsRoutes } from './routes/docs-routes.ts';
import { eventsRoutes } from './routes/events-routes.ts';
import { filesRoutes } from './routes/files-routes.ts';
import { pricesRoutes, startPriceSync } from './routes/prices-routes.ts';
import { providersRoutes } from './routes/providers-routes.ts';
import { runsRoutes } from './routes/runs-routes.ts';
import { setupPageRoutes } from './routes/setup-page-routes.ts';
import { systemRoutes } from './routes/system-routes.ts';
import { tokensRoutes } from './routes/tokens-routes.ts';
import { usersRoutes } from './routes/users-routes.ts';
import { workflowsRoutes } from './routes/workflows-routes.ts';
import type { ApiServices } from './services.ts';

export const API_VERSION = '0.1.0';

export interface ApiServerOptions {
  db: Db;
  engine: Engine;
  config: ApiConfig;
  log: Logger;
  clock?: Clock;
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Live event poll interval (ms). */
  feedPollMs?: number;
}

export interface ApiServer {
  url: string;
  port: number;
  server: Server;
  services: ApiServices;
  routes: readonly AnyRoute[];
  /** What first start did: the first admin it created, or the one-time setup link to print. */
  setup: { createdAdmin?: string; setupUrl?: string };
  close(): Promise<void>;
}

/** Every route the server serves, in one list (the route × role test walks it). */
export function apiRoutes(document: () => Record<string, unknown>): AnyRoute[] {
  return [
    ...authRoutes, ...usersRoutes, ...tokensRoutes, ...workflowsRoutes, ...runsRoutes, ...approvalsRoutes, ...eventsRoutes,
    ...artifactsRoutes, ...filesRoutes, ...agentsRoutes, ...credentialsRoutes, ...providersRoutes, ...pricesRoutes, ...systemRoutes,
    ...docsRoutes(document),
    ...setupPageRoutes,
  ];
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { db, engine, config, log } = options;
  const clock = options.clock ?? systemClock;
  const auth = await AuthService.create({ db, config, clock, log });
  const feed = new EventFeed({ db, log, ...(options.feedPollMs === undefined ? {} : { pollMs: options.feedPollMs }) });
  const minute = 60_000;
  const services: ApiServices = {
    db, engine, auth, feed, log, clock, config,
    limits: {
      loginPerIp: new RateLimiter({ limit: config.rateLimits.loginPerIp, windowMs: minute, clock: () => clock.now() }),
      loginPerAccount: new RateLimiter({ limit: config.rateLimits.loginPerAccount, windowMs: minute, clock: () => clock.now() }),
      launchesPerOwner: new RateLimiter({ limit: config.rateLimits.launchesPerOwner, windowMs: minute, clock: () => clock.now() }),
    },
  };
  let document: Record<string, unknown> | undefined;
  const routes = apiRoutes(() => (document ??= buildOpenApi(routes, { version: API_VERSION })));
  const router = new Router(routes);
  const setup = await auth.bootstrap();
  const seeded = await seedBuiltinAgents(db);
  if (seeded.length > 0) log.info('seeded built-in agents', { agents: seeded });
  if (config.seedTemplates) {
    const outcomes = await seedTemplates(db, await loadTemplates());
    const changed = Object.entries(outcomes).filter(([, o]) => o === 'seeded' || o === 'upgraded');
    if (changed.length > 0) log.info('seeded workflow templates', { templates: Object.fromEntries(changed) });
  }
  // Stored credentials join the provider registry before the first request.
  const providers = await startCredentialProviders(services);
  // And the stored prices join the price table (costs and budget estimates).
  const prices = await startPriceSync(services);

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/metrics' || path === '/api' || path.startsWith('/api/') || path === '/setup' || path.startsWith('/setup/')) {
      void router.handle(req, res, services, clientIp(req, config.trustProxy));
      return;
    }
    writeProblem(res, problemDocument(404, 'WEFT_ROUTE_NOT_FOUND', `no route for ${path}`, path));
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 10_000;
  const sockets = attachEventSocket(server, {
    feed, path: '/api/ws', log,
    authenticate: async (token) => {
      const principal = await auth.authenticate({ headers: { authorization: `Bearer ${token}` } } as IncomingMessage).catch(() => null);
      return principal ? { userId: principal.userId, role: principal.role } : null;
    },
    canReadRun: (principal, runId) => canViewRun(db, { userId: principal.userId, admin: principal.role === 'admin' }, runId),
  });
  feed.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Without a configured public URL the link is relative: complete it with where we listen.
  if (setup.setupUrl?.startsWith('/')) setup.setupUrl = url + setup.setupUrl;
  return {
    url, port, server, services, routes, setup,
    async close() {
      await sockets.close();
      await feed.stop();
      await providers.stop();
      await prices.stop();
      server.closeIdleConnections();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Streams (SSE) do not end by themselves: give them a moment, then cut them.
      const timer = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(timer);
    },
  };
}

/**
 * The socket's address. X-Forwarded-For is a client-supplied header: it is read only when the
 * operator says a trusted proxy sets it (WEFT_TRUST_PROXY=1), else rate limits could be dodged.
 */
function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? 'unknown';
}
