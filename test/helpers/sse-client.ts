/**
 * A minimal Server-Sent Events client over fetch, for tests and the API load benchmark: a
 * parser that follows the WHATWG event-stream rules (fields `id`, `event`, `data`, `retry`,
 * comments, multi-line data, CRLF/CR/LF line ends split anywhere across chunks), and a follower
 * that reconnects with `Last-Event-ID` the way EventSource does, stops on 204 No Content, and
 * can be aborted.
 *
 * Why not EventSource: Node 20 has none, and a test wants what EventSource hides — the status,
 * the comments, how often it reconnected, and whether anything came after the event it waited for.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The last event ID when it was dispatched (its own `id:`, or the one an earlier event set). */
  id: string;
  /** The `event:` field; `message` when there was none. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

export type SseItem =
  | { kind: 'event'; event: SseEvent }
  | { kind: 'comment'; text: string }
  | { kind: 'retry'; ms: number };

/**
 * Incremental event-stream parser. `push` takes decoded text in chunks of any size and returns
 * the items completed by it; an event is dispatched by the blank line that ends it, so one
 * cut off by the end of the stream is never returned (the spec discards it).
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private type = '';
  private lastEventId = '';
  /** The previous chunk ended in CR: an LF starting the next one belongs to that line end. */
  private skipLf = false;
  private first = true;

  push(chunk: string): SseItem[] {
    let text = chunk;
    if (text.length === 0) return [];
    if (this.first) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.skipLf && text.charCodeAt(0) === 10) text = text.slice(1);
    this.skipLf = false;
    const buf = this.buffer + text;
    const out: SseItem[] = [];
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(buf.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < buf.length) {
          if (buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.skipLf = true;
        }
      }
      start = i + 1;
    }
    this.buffer = buf.slice(start);
    return out;
  }

  /** The ID the next reconnect sends as `Last-Event-ID` ('' for none). */
  get lastId(): string {
    return this.lastEventId;
  }

  private line(line: string, out: SseItem[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push({ kind: 'event', event: { id: this.lastEventId, event: this.type || 'message', data: this.data.join('\n') } });
      this.data = [];
      this.type = '';
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      out.push({ kind: 'comment', text: stripOneSpace(line.slice(1)) });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : stripOneSpace(line.slice(colon + 1));
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) out.push({ kind: 'retry', ms: Number(value) });
        break;
      default:
        break; // unknown fields are ignored
    }
  }
}

function stripOneSpace(s: string): string {
  return s.charCodeAt(0) === 32 ? s.slice(1) : s;
}

export interface SseConnectOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as `Last-Event-ID` (omitted when empty). */
  lastEventId?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One response: its status, and its items as they arrive when it is an event stream. */
export interface SseConnection {
  status: number;
  response: Response;
  /** The items of the stream, until the server ends it; nothing when it is not an event stream. */
  items(): AsyncGenerator<SseItem>;
  /** Ends the response (and its connection) without reading the rest. */
  close(): Promise<void>;
}

/** Opens one event-stream request; network errors and aborts reject. */
export async function openSse(url: string, options: SseConnectOptions = {}): Promise<SseConnection> {
  const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache', ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  if (options.lastEventId) headers['last-event-id'] = options.lastEventId;
  const response = await fetch(url, { headers, ...(options.signal ? { signal: options.signal } : {}) });
  const isStream = response.status === 200 && (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
  return {
    status: response.status,
    response,
    async *items() {
      if (!isStream || !response.body) return;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          yield* parser.push(decoder.decode(value, { stream: true }));
        }
        yield* parser.push(decoder.decode());
      } finally {
        reader.releaseLock();
      }
    },
    async close() {
      await response.body?.cancel().catch(() => {});
    },
  };
}

export class SseHttpError extends Error {
  override readonly name = 'SseHttpError';
  constructor(readonly status: number, readonly body: string) {
    super(`event stream answered ${status}: ${body.slice(0, 300)}`);
  }
}

export interface FollowOptions extends SseConnectOptions {
  /**
   * The event the caller waits for (a run's terminal event). Once it has come, the stream is
   * still read to its end — events after it are collected too, so a caller can check that
   * nothing followed — but the follower does not reconnect any more.
   */
  until?: (event: SseEvent) => boolean;
  /** Reconnects allowed before giving up with an error (default 5). */
  maxReconnects?: number;
  /** Upper bound on the server's `retry:` delay before a reconnect (default 100 ms). */
  maxRetryMs?: number;
  /** Called for each event as it arrives. */
  onEvent?: (event: SseEvent) => void;
}

export interface FollowResult {
  events: SseEvent[];
  comments: string[];
  /** Requests made: 1 + reconnects. */
  connections: number;
  /** The last event ID seen (what a further reconnect would send). */
  lastEventId: string;
  /** How it ended: `until` matched and the stream ended, the server answered 204, or the signal aborted. */
  ended: 'until' | 'no-content' | 'aborted';
}

/**
 * Follows an event stream the way EventSource does: when the server ends the stream early it
 * reconnects after the advertised `retry` (capped) with `Last-Event-ID`; a 204 ends it. Any
 * other status, or a network error, rejects with the error; an abort resolves with what came.
 */
export async function followSse(url: string, options: FollowOptions = {}): Promise<FollowResult> {
  const { until, onEvent, signal } = options;
  const maxReconnects = options.maxReconnects ?? 5;
  const maxRetryMs = options.maxRetryMs ?? 100;
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let lastEventId = options.lastEventId ?? '';
  let retryMs = 0;
  let connections = 0;
  let matched = false;
  const result = (ended: FollowResult['ended']): FollowResult => ({ events, comments, connections, lastEventId, ended });
  try {
    for (;;) {
      if (connections > maxReconnects) throw new Error(`event stream ended ${connections} times without the awaited event (last id '${lastEventId}')`);
      connections++;
      const conn = await openSse(url, { ...options, lastEventId });
      if (conn.status === 204) {
        await conn.close();
        return result('no-content');
      }
      if (conn.status !== 200) throw new SseHttpError(conn.status, await conn.response.text());
      if (!(conn.response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        throw new Error(`event stream answered 200 with ${conn.response.headers.get('content-type')}`);
      }
      for await (const item of conn.items()) {
        // One chunk may hold several events: none is delivered after an abort.
        if (signal?.aborted) break;
        if (item.kind === 'comment') comments.push(item.text);
        else if (item.kind === 'retry') retryMs = item.ms;
        else {
          lastEventId = item.event.id;
          events.push(item.event);
          onEvent?.(item.event);
          if (until?.(item.event)) matched = true;
        }
      }
      if (signal?.aborted) {
        await conn.close();
        return result('aborted');
      }
      if (matched) return result('until');
      await delay(Math.min(retryMs, maxRetryMs), signal);
    }
  } catch (error) {
    if (signal?.aborted) return result('aborted');
    throw error;
  }
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted(): void {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
