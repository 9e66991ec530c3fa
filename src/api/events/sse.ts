/**
 * A run's events as a Server-Sent Events stream.
 *
 * Frames: `id: <cursor>`, `event: <type>`, `data: <wire event JSON>` (one line: JSON.stringify
 * escapes newlines). A `retry:` hint first, a comment line as heartbeat (proxies and load
 * balancers close connections that stay silent).
 *
 * By default the stream ends after a terminal event (run_succeeded, run_failed, run_cancelled).
 * EventSource reconnects whenever a stream ends, with `Last-Event-ID` set to that event's
 * cursor; while the terminal event is still the run's latest, that request is answered 204 No
 * Content, which tells EventSource to stop reconnecting. A failed run retried by hand has
 * events after its run_failed: a stream opened from that cursor then serves them (200).
 * `follow: true` (the route's `?follow=1`) keeps the stream open past terminal events, for a
 * client that wants to see such a retry without reconnecting; it ends when the client leaves.
 *
 * When the feed ends the subscription (this client fell too far behind, a backlog read failed,
 * server shutdown) the stream simply ends: the client reconnects with its last cursor and
 * misses nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventFeed, Unsubscribe } from './event-feed.ts';
import { isTerminalEvent, parseCursor as parseWireCursor, type Cursor, type WireEvent } from './event-wire.ts';

/**
 * Parses a cursor from `Last-Event-ID` or `?after=`; undefined when malformed (answer 400).
 * Re-exported here for the route that serves the stream.
 */
export function parseCursor(text: string): Cursor | undefined {
  return parseWireCursor(text);
}

export interface StreamRunEventsOptions {
  req: IncomingMessage;
  res: ServerResponse;
  feed: EventFeed;
  /** A run the caller has already found and may read. */
  runId: string;
  /** Resume after this cursor (validated with `parseCursor`); omitted: from the run's start. */
  cursor?: string;
  /** Stay open after terminal events (default false: end after the first one). */
  follow?: boolean;
  /** Comment line interval (default 15 s). */
  heartbeatMs?: number;
  /** Reconnect delay the client is told (default 2 s). */
  retryMs?: number;
}

const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_RETRY_MS = 2000;

/**
 * Streams the run's events after `cursor` until the run's terminal event has been sent, the
 * client goes away, or the feed ends the subscription. Resolves when the response is over.
 * Throws (before writing anything) only for a malformed cursor — route code should have
 * validated it with `parseCursor` and answered 400.
 */
export async function streamRunEvents(opts: StreamRunEventsOptions): Promise<void> {
  const { req, res, feed, runId } = opts;
  const cursor = opts.cursor === undefined ? undefined : parseCursor(opts.cursor);
  if (opts.cursor !== undefined && cursor === undefined) throw new Error(`malformed event cursor: ${opts.cursor}`);

  // A client that already has the run's end (EventSource reconnecting after it).
  if (cursor && !opts.follow && (await feed.isRunOverAt(runId, cursor))) {
    res.writeHead(204, { 'Cache-Control': 'no-store' }).end();
    return;
  }
  if (res.destroyed) return;

  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
    Connection: 'keep-alive',
  });
  // Each frame is one write; without this, Nagle would hold small frames back up to 40 ms.
  req.socket.setNoDelay(true);
  res.write(`retry: ${opts.retryMs ?? DEFAULT_RETRY_MS}\n\n`);

  await new Promise<void>((resolve) => {
    let finished = false;
    let unsubscribe: Unsubscribe = () => {};
    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(heartbeat);
      unsubscribe();
      res.off('close', finish);
      if (!res.writableEnded) res.end();
      resolve();
    };
    res.on('close', finish);
    const heartbeat = setInterval(() => {
      if (!res.writableEnded) res.write(': heartbeat\n\n');
    }, opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    unsubscribe = feed.subscribeRun(runId, cursor, {
      onEvent: (event) => {
        if (finished) return undefined;
        const flushed = res.write(formatEvent(event));
        if (!opts.follow && isTerminalEvent(event)) {
          finish();
          return undefined;
        }
        // Backpressure: the next event waits until the socket drains (or closes); meanwhile
        // the feed buffers for this client alone and closes the subscription if that overflows.
        return flushed ? undefined : drainOrClose(res);
      },
      onClose: finish,
    });
  });
}

/** One SSE frame. */
export function formatEvent(event: WireEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
