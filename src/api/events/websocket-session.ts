/**
 * One event WebSocket: its authentication, its subscriptions, its messages (protocol in
 * websocket.ts).
 *
 * States: `unauthenticated` (only `auth` is accepted; anything else, or nothing within the
 * deadline, closes with 4401) → `authenticated` (subscribe/unsubscribe) → `disposed` (socket
 * closed: every subscription ended). Messages are handled one at a time, in order, so an
 * `unsubscribe` can never overtake the `subscribe` it cancels while that one awaits its
 * permission check.
 */
import { WebSocket, type RawData } from 'ws';
import type { Logger } from '../../engine/log.ts';
import type { EventFeed, FeedListener, Unsubscribe } from './event-feed.ts';
import { parseCursor, type WireEvent } from './event-wire.ts';

/** Who is on the other end of a socket. */
export interface SocketPrincipal {
  userId: string;
  role: 'admin' | 'user';
}

export interface SessionOptions {
  feed: EventFeed;
  authenticate: (token: string) => Promise<SocketPrincipal | null>;
  canReadRun: (principal: SocketPrincipal, runId: string) => Promise<boolean>;
  log: Logger;
  authTimeoutMs: number;
  maxSubscriptions: number;
}

export type SocketErrorCode =
  | 'WEFT_BAD_REQUEST'
  | 'WEFT_NOT_FOUND'
  | 'WEFT_CONFLICT'
  | 'WEFT_TOO_MANY_SUBSCRIPTIONS'
  | 'WEFT_SUBSCRIPTION_ENDED'
  | 'WEFT_INTERNAL';

/** A client's name for one of its subscriptions, echoed back as `sub`. */
type SubId = string | number;

/** Application close code: not (or no longer) authenticated, after HTTP 401. */
export const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_INTERNAL = 1011;
/** Above this many bytes queued on the socket, each event waits for its own write. */
const HIGH_WATER_BYTES = 1 << 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class ProtocolError extends Error {
  constructor(readonly code: SocketErrorCode, message: string) {
    super(message);
  }
}

export class EventSocketSession {
  private principal: SocketPrincipal | undefined;
  private readonly authTimer: NodeJS.Timeout;
  private readonly subs = new Map<string, Unsubscribe>();
  private queue: Promise<void> = Promise.resolve();
  private disposed = false;

  constructor(private readonly ws: WebSocket, private readonly opts: SessionOptions) {
    this.authTimer = setTimeout(() => this.closeWith(CLOSE_UNAUTHENTICATED, 'authentication timeout'), opts.authTimeoutMs);
  }

  receive(data: RawData, isBinary: boolean): void {
    this.queue = this.queue.then(() => this.handle(data, isBinary));
  }

  /** The socket closed: end every subscription. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.authTimer);
    for (const unsubscribe of this.subs.values()) unsubscribe();
    this.subs.clear();
  }

  private async handle(data: RawData, isBinary: boolean): Promise<void> {
    if (this.disposed) return;
    let sub: SubId | undefined;
    try {
      const message = parseMessage(data, isBinary);
      sub = isSubId(message['id']) ? message['id'] : undefined;
      if (!this.principal) {
        if (message['type'] !== 'auth') return this.closeWith(CLOSE_UNAUTHENTICATED, 'authentication required');
        return await this.authenticate(message['token']);
      }
      switch (message['type']) {
        case 'subscribe':
          return await this.subscribe(message);
        case 'unsubscribe':
          return this.unsubscribe(message['id']);
        case 'auth':
          throw new ProtocolError('WEFT_BAD_REQUEST', 'already authenticated');
        default:
          throw new ProtocolError('WEFT_BAD_REQUEST', 'unknown message type');
      }
    } catch (error) {
      if (error instanceof ProtocolError) return this.sendError(sub, error.code, error.message);
      this.opts.log.error('event socket message failed', { error: String(error) });
      this.sendError(sub, 'WEFT_INTERNAL', 'internal error');
    }
  }

  private async authenticate(token: unknown): Promise<void> {
    if (typeof token !== 'string' || token === '') return this.closeWith(CLOSE_UNAUTHENTICATED, 'authentication required');
    let principal: SocketPrincipal | null;
    try {
      principal = await this.opts.authenticate(token);
    } catch (error) {
      this.opts.log.error('event socket authentication failed', { error: String(error) });
      return this.closeWith(CLOSE_INTERNAL, 'internal error');
    }
    if (this.disposed) return;
    if (!principal) return this.closeWith(CLOSE_UNAUTHENTICATED, 'invalid token');
    clearTimeout(this.authTimer);
    this.principal = principal;
    this.send({ type: 'authenticated', user_id: principal.userId });
  }

  private async subscribe(message: Record<string, unknown>): Promise<void> {
    const principal = this.principal!;
    const id = message['id'];
    if (!isSubId(id)) throw new ProtocolError('WEFT_BAD_REQUEST', 'subscribe needs an id (a string of 1–128 characters or an integer)');
    const key = keyOf(id);
    if (this.subs.has(key)) throw new ProtocolError('WEFT_CONFLICT', `subscription ${JSON.stringify(id)} is already open`);
    if (this.subs.size >= this.opts.maxSubscriptions) {
      throw new ProtocolError('WEFT_TOO_MANY_SUBSCRIPTIONS', `at most ${this.opts.maxSubscriptions} subscriptions per socket`);
    }
    const listener: FeedListener = {
      // A run subscription stays open past the run's terminal event: a failed run can be
      // retried, and its events then go on. The client unsubscribes when it is done.
      onEvent: (event) => this.sendEvent(id, event),
      onClose: () => {
        this.subs.delete(key);
        this.sendError(id, 'WEFT_SUBSCRIPTION_ENDED', 'subscription ended by the server; resubscribe with after = the last event id');
      },
    };

    if (message['scope'] === 'my_runs' && message['run_id'] === undefined) {
      // Acknowledged once live: every event committed after `subscribed` is delivered.
      listener.onLive = () => this.send({ type: 'subscribed', sub: id });
      this.subs.set(key, this.opts.feed.subscribeOwner(principal.userId, listener));
      return;
    }
    const runId = message['run_id'];
    if (typeof runId !== 'string' || message['scope'] !== undefined) {
      throw new ProtocolError('WEFT_BAD_REQUEST', "subscribe needs either run_id or scope: 'my_runs'");
    }
    const after = message['after'];
    if (after !== undefined && typeof after !== 'string') throw new ProtocolError('WEFT_BAD_REQUEST', 'after must be an event id');
    const cursor = after === undefined ? undefined : parseCursor(after);
    if (after !== undefined && !cursor) throw new ProtocolError('WEFT_BAD_REQUEST', 'after is not a valid event id');
    // A malformed id, a missing run and another user's run all answer the same.
    if (!UUID.test(runId) || !(await this.opts.canReadRun(principal, runId))) {
      throw new ProtocolError('WEFT_NOT_FOUND', 'run not found');
    }
    if (this.disposed) return;
    this.subs.set(key, this.opts.feed.subscribeRun(runId, cursor, listener));
    this.send({ type: 'subscribed', sub: id });
  }

  private unsubscribe(id: unknown): void {
    if (!isSubId(id)) throw new ProtocolError('WEFT_BAD_REQUEST', 'unsubscribe needs the subscription id');
    const key = keyOf(id);
    this.subs.get(key)?.();
    this.subs.delete(key);
  }

  /**
   * Sends one event. While the socket's send buffer is below the high-water mark this returns
   * at once; above it, the subscription waits for this frame to be written, so its backlog
   * stays in the feed's bounded per-subscriber queue instead of growing the socket buffer.
   */
  private sendEvent(sub: SubId, event: WireEvent): Promise<void> | undefined {
    if (this.ws.readyState !== WebSocket.OPEN) return undefined;
    const frame = JSON.stringify({ type: 'event', sub, event });
    if (this.ws.bufferedAmount < HIGH_WATER_BYTES) {
      this.ws.send(frame);
      return undefined;
    }
    return new Promise((resolve) => this.ws.send(frame, () => resolve()));
  }

  private sendError(sub: SubId | undefined, code: SocketErrorCode, message: string): void {
    this.send(sub === undefined ? { type: 'error', code, message } : { type: 'error', sub, code, message });
  }

  private send(message: Record<string, unknown>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private closeWith(code: number, reason: string): void {
    this.dispose();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }
}

function parseMessage(data: RawData, isBinary: boolean): Record<string, unknown> {
  if (isBinary) throw new ProtocolError('WEFT_BAD_REQUEST', 'messages are JSON text');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString('utf8'));
  } catch {
    throw new ProtocolError('WEFT_BAD_REQUEST', 'messages are JSON text');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError('WEFT_BAD_REQUEST', 'a message is a JSON object');
  return value as Record<string, unknown>;
}

function isSubId(id: unknown): id is SubId {
  return (typeof id === 'string' && id.length >= 1 && id.length <= 128) || (typeof id === 'number' && Number.isSafeInteger(id));
}

function keyOf(id: SubId): string {
  return `${typeof id}:${id}`;
}
