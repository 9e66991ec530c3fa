/**
 * One subscriber of the event feed: a bounded queue between the feed's poller and the
 * listener, so that a slow listener holds back nobody but itself.
 *
 * States:
 * - `backlog` — a run subscription reading its backlog from the database. Live events the
 *   poller fans out meanwhile are held, not delivered.
 * - `live` — events are queued as the poller fans them out and delivered in order.
 * - `closed` — unsubscribed, or ended by the feed (overflow, error, stop); nothing more is
 *   delivered and every waiter is released.
 *
 * Invariant: `last` is the cursor of the last event queued; an event at or before it is
 * dropped. That is what makes backlog + held live events exactly the events after the
 * subscription's cursor, with none twice.
 */
import type { Logger } from '../../engine/log.ts';
import { compareCursors, type Cursor, type WireEvent } from './event-wire.ts';

/** Why the feed ended a subscription. */
export type FeedCloseReason =
  /** The listener fell more than the buffer limit behind; resume from its last cursor. */
  | 'overflow'
  /** Reading the backlog, or the listener itself, failed. */
  | 'error'
  /** The feed was stopped (server shutdown). */
  | 'stopped';

/** Receives one subscription's events. */
export interface FeedListener {
  /**
   * Each event after the subscription's cursor, in cursor order, once. The object is shared
   * with other subscribers: do not mutate it. Returning a promise holds back the next event
   * until it settles (backpressure); events queue meanwhile, up to the feed's buffer limit.
   * Throwing (or rejecting) ends the subscription with `error`.
   */
  onEvent(event: WireEvent): void | Promise<void>;
  /**
   * The subscription is live: a run subscription has queued its whole backlog; an owner
   * subscription is attached to a positioned poller, so every event committed from now on
   * will be delivered (events committed between subscribing and this call may or may not be).
   */
  onLive?(): void;
  /** The feed ended the subscription. Not called after the subscriber's own unsubscribe. */
  onClose?(reason: FeedCloseReason): void;
}

type Mode = 'backlog' | 'live' | 'closed';

interface Pending {
  event: WireEvent;
  cursor: Cursor;
}

export class FeedSubscription {
  private mode: Mode;
  private last: Cursor;
  private readonly queue: Pending[] = [];
  /** Live events that arrived while the backlog was being read. */
  private held: Pending[] = [];
  private delivering = false;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly listener: FeedListener,
    private readonly maxBuffered: number,
    private readonly log: Logger,
    /** Called once when the subscription closes for any reason (the feed forgets it). */
    private readonly onEnd: (sub: FeedSubscription) => void,
    options: { from: Cursor; backlog: boolean },
  ) {
    this.last = options.from;
    this.mode = options.backlog ? 'backlog' : 'live';
  }

  get closed(): boolean {
    return this.mode === 'closed';
  }

  /** A live event from the poller (which fans out in cursor order). */
  offer(event: WireEvent, cursor: Cursor): void {
    if (this.mode === 'closed') return;
    if (this.mode === 'backlog') {
      this.held.push({ event, cursor });
      if (this.held.length > this.maxBuffered) this.end('overflow');
      return;
    }
    this.enqueue(event, cursor);
  }

  /** A backlog event (read from the database, in cursor order). */
  offerBacklog(event: WireEvent, cursor: Cursor): void {
    if (this.mode === 'backlog') this.enqueue(event, cursor);
  }

  /** The backlog is read: deliver the held live events that come after it, then go live. */
  goLive(): void {
    if (this.mode !== 'backlog') return;
    this.mode = 'live';
    const held = this.held;
    this.held = [];
    for (const p of held) this.enqueue(p.event, p.cursor);
    this.announceLive();
  }

  /** Tells the listener it is live (see `FeedListener.onLive`). */
  announceLive(): void {
    if (this.mode !== 'live') return;
    try {
      this.listener.onLive?.();
    } catch (error) {
      this.log.warn('event feed listener failed on live', { error: String(error) });
    }
  }

  /** Resolves when every queued event has been delivered (or the subscription closed). */
  drained(): Promise<void> {
    if (this.queue.length === 0 || this.mode === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** The subscriber unsubscribed: stop without telling it. */
  cancel(): void {
    this.shut();
  }

  /** The feed ends the subscription and tells the listener why. */
  end(reason: FeedCloseReason): void {
    if (this.mode === 'closed') return;
    this.shut();
    try {
      this.listener.onClose?.(reason);
    } catch (error) {
      this.log.warn('event feed listener failed on close', { error: String(error) });
    }
  }

  private shut(): void {
    if (this.mode === 'closed') return;
    this.mode = 'closed';
    this.queue.length = 0;
    this.held = [];
    this.releaseDrainWaiters();
    this.onEnd(this);
  }

  private enqueue(event: WireEvent, cursor: Cursor): void {
    if (compareCursors(cursor, this.last) <= 0) return;
    this.last = cursor;
    this.queue.push({ event, cursor });
    if (this.queue.length > this.maxBuffered) {
      this.end('overflow');
      return;
    }
    if (!this.delivering) void this.deliver();
  }

  /**
   * Delivers queued events one at a time. A listener that returns nothing is called
   * synchronously for the whole queue (no await, so no added latency); one that returns a
   * promise is awaited before the next event.
   */
  private async deliver(): Promise<void> {
    this.delivering = true;
    try {
      while (this.queue.length > 0 && this.mode !== 'closed') {
        const next = this.queue.shift()!;
        const pending = this.listener.onEvent(next.event);
        if (pending !== undefined) await pending;
      }
    } catch (error) {
      this.log.warn('event feed listener failed', { error: String(error) });
      this.end('error');
    } finally {
      this.delivering = false;
    }
    this.releaseDrainWaiters();
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
