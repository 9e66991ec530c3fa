/**
 * Live run events over one WebSocket endpoint (`/api/ws`), many subscriptions per socket.
 *
 * Protocol (JSON text messages):
 * - client → `{type:'auth', token}` first, within `authTimeoutMs` (5 s). The token is never in
 *   the URL: URLs end up in access logs. No cookie is involved either, so a page on another
 *   origin cannot ride on a browser session (no cross-site WebSocket hijacking), and Origin
 *   need not be checked. → `{type:'authenticated', user_id}`; a missing, late or invalid
 *   token closes the socket with 4401.
 * - client → `{type:'subscribe', id, run_id, after?}`: the run's events after the cursor
 *   `after` (an event's `id`), or from its first event. It stays open past the run's terminal
 *   event (a failed run can be retried by hand, and its log goes on): unsubscribe when done.
 * - client → `{type:'subscribe', id, scope:'my_runs'}`: events of every run the caller owns,
 *   live from now (an admin's "my runs" are their own too).
 * - client → `{type:'unsubscribe', id}` (idempotent).
 * - server → `{type:'subscribed', sub}` (for my_runs: once every event committed from then on
 *   will be delivered), `{type:'event', sub, event}`, `{type:'error', sub?, code, message}`.
 *
 * Error codes: WEFT_BAD_REQUEST (malformed message or cursor), WEFT_NOT_FOUND (no such run OR
 * not readable by the caller — the two answer identically so that run ids cannot be probed),
 * WEFT_CONFLICT (subscription id in use), WEFT_TOO_MANY_SUBSCRIPTIONS, WEFT_SUBSCRIPTION_ENDED
 * (the feed ended it: this client fell too far behind, or the server is stopping — resubscribe
 * with `after` = the last event id received), WEFT_INTERNAL.
 *
 * Authorisation is decided when subscribing; an open subscription outlives its access token.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../../engine/log.ts';
import type { EventFeed } from './event-feed.ts';
import { EventSocketSession, type SocketPrincipal } from './websocket-session.ts';

export type { SocketPrincipal } from './websocket-session.ts';

export interface EventSocketOptions {
  feed: EventFeed;
  /** The one path upgraded here, e.g. `/api/ws`; other upgrade requests are refused with 404. */
  path: string;
  /** The principal a token stands for, or null. */
  authenticate: (token: string) => Promise<SocketPrincipal | null>;
  /** Whether the principal may read the run; false for a run that does not exist. */
  canReadRun: (principal: SocketPrincipal, runId: string) => Promise<boolean>;
  log: Logger;
  /** Time allowed for the auth message (default 5000 ms). */
  authTimeoutMs?: number;
  /** Open subscriptions per socket (default 100). */
  maxSubscriptions?: number;
  /** Largest message accepted, in bytes (default 16 KiB); a larger one closes with 1009. */
  maxPayload?: number;
  /** Ping interval; a socket that did not answer the previous ping is dropped (default 30 s). */
  pingMs?: number;
}

const CLOSE_GOING_AWAY = 1001;
const CLOSE_GRACE_MS = 2000;

/** Serves the event WebSocket on `server`'s upgrade requests for `opts.path`. */
export function attachEventSocket(server: Server, opts: EventSocketOptions): { close(): Promise<void> } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload ?? 16 * 1024, clientTracking: true });
  const sessions = new Map<WebSocket, EventSocketSession>();
  const alive = new WeakSet<WebSocket>();
  let closing = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    if (closing || pathOf(req) !== opts.path) {
      refuse(socket, closing ? '503 Service Unavailable' : '404 Not Found');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws));
  };

  const accept = (ws: WebSocket) => {
    const session = new EventSocketSession(ws, {
      feed: opts.feed, authenticate: opts.authenticate, canReadRun: opts.canReadRun, log: opts.log,
      authTimeoutMs: opts.authTimeoutMs ?? 5000, maxSubscriptions: opts.maxSubscriptions ?? 100,
    });
    sessions.set(ws, session);
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    ws.on('message', (data: RawData, isBinary: boolean) => session.receive(data, isBinary));
    ws.on('error', (error) => opts.log.warn('event socket error', { error: String(error) }));
    ws.on('close', () => {
      session.dispose();
      sessions.delete(ws);
    });
  };

  // Keep-alive: idle proxies drop silent connections, and a peer that vanished without a FIN
  // is only noticed by a missed pong.
  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, opts.pingMs ?? 30_000);
  pinger.unref();

  server.on('upgrade', onUpgrade);

  const shutDown = async (): Promise<void> => {
    closing = true;
    server.off('upgrade', onUpgrade);
    clearInterval(pinger);
    await Promise.all([...wss.clients].map((ws) => new Promise<void>((resolve) => {
      if (ws.readyState === ws.CLOSED) return resolve();
      ws.once('close', () => resolve());
      sessions.get(ws)?.dispose();
      ws.close(CLOSE_GOING_AWAY, 'server shutting down');
      // A peer that never answers the close handshake is cut.
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    })));
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
  let closed: Promise<void> | undefined;
  return { close: () => (closed ??= shutDown()) };
}

function pathOf(req: IncomingMessage): string {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return '';
  }
}

/** Answers a refused upgrade and closes the socket once the answer is written. */
function refuse(socket: Duplex, status: string): void {
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
