/**
 * The live event feed of one API process: ONE poller reads the commit-ordered event log
 * (migration 0002) from its cursor and fans each event out in memory to the subscribers of its
 * run and of its run's owner. Subscribers never query per event, so the database sees one cheap
 * index probe per poll interval however many streams are open.
 *
 * Poller states:
 * - `idle` — no subscribers (or not started): no timer, no queries, no cursor.
 * - `starting` — the first subscriber arrived: reading the feed head, which becomes the cursor.
 *   Run subscriptions wait for this before reading their backlog (see `subscribeRun`).
 * - `polling` — every `pollMs`, or at once after a full page, read the events after the cursor
 *   and fan them out. When the last subscriber leaves it drops its cursor and goes idle; the
 *   next one starts from the head again.
 * - `stopped` — `stop()` was called: every subscription ended with `stopped`.
 *
 * A failed poll (database restarting) is retried with capped backoff; subscriptions stay open
 * and miss nothing, because the cursor only moves past events that were fanned out.
 *
 * Why polling and not LISTEN/NOTIFY: the poll is an index probe costing ~10 µs when there is
 * nothing new, it needs no connection of its own, it works the same on PGlite, and a NOTIFY
 * payload could not carry the commit-safe position anyway. Delivery latency is the poll
 * interval plus one query, and is held back while any transaction that assigned an xid stays
 * open in the cluster (the commit-safe read waits for it) — long write transactions delay
 * every stream.
 */
import type { Logger } from '../../engine/log.ts';
import type { Db } from '../../store/db.ts';
import { FEED_START, findLastRunEvent, listFeedEventsAfter, listRunEventsAfter, readFeedHead, type FeedEvent } from '../../store/events.ts';
import { compareCursors, cursorOf, isTerminalEvent, toWireEvent, type Cursor } from './event-wire.ts';
import { FeedSubscription, type FeedListener } from './feed-subscription.ts';

export type { FeedCloseReason, FeedListener } from './feed-subscription.ts';

export interface EventFeedOptions {
  db: Db;
  log: Logger;
  /** Pause between polls when the last one found no full page (default 30 ms). */
  pollMs?: number;
  /** Events a subscriber may fall behind before it is closed with `overflow` (default 10 000). */
  maxBuffered?: number;
  /** Events per query, for the poller and for backlogs (default 500). */
  pageSize?: number;
}

/** Ends a subscription; idempotent. */
export type Unsubscribe = () => void;

const DEFAULT_POLL_MS = 30;
const DEFAULT_MAX_BUFFERED = 10_000;
const DEFAULT_PAGE_SIZE = 500;
const MAX_BACKOFF_MS = 5000;

export class EventFeed {
  private readonly db: Db;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly maxBuffered: number;
  private readonly pageSize: number;

  private readonly byRun = new Map<string, Set<FeedSubscription>>();
  private readonly byOwner = new Map<string, Set<FeedSubscription>>();
  private subscribers = 0;
  private started = false;
  private stopped = false;
  /** The poller's position; undefined while idle or starting. */
  private cursor: Cursor | undefined;
  private loop: Promise<void> | undefined;
  private ready = deferred();
  private wakePause: (() => void) | undefined;

  constructor(opts: EventFeedOptions) {
    this.db = opts.db;
    this.log = opts.log;
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    this.maxBuffered = opts.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    this.pageSize = Math.max(1, Math.min(opts.pageSize ?? DEFAULT_PAGE_SIZE, this.maxBuffered));
  }

  /** Allows polling (it begins with the first subscriber). */
  start(): void {
    if (this.stopped) throw new Error('EventFeed was stopped');
    this.started = true;
    this.ensurePolling();
  }

  /** Ends every subscription with `stopped` and waits for an in-flight poll to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const subs of [...this.byRun.values(), ...this.byOwner.values()]) {
      for (const sub of [...subs]) sub.end('stopped');
    }
    this.wakePause?.();
    this.ready.resolve();
    await this.loop;
  }

  /**
   * Subscribes to one run's events after `from` (undefined: from the run's first event), then
   * live, exactly once each and in cursor order. The caller checks that the run exists and the
   * caller may read it; the feed does not.
   *
   * Why nothing is lost or repeated: the subscription is registered first, holding live
   * events; the backlog is read only once the poller has its cursor, so every event the poller
   * fanned out before registration was committed below the backlog's snapshot horizon and is in
   * the backlog; every later one is held. Held events at or before the backlog's last are
   * dropped.
   */
  subscribeRun(runId: string, from: Cursor | undefined, listener: FeedListener): Unsubscribe {
    const sub = this.register(this.byRun, runId, listener, { from: from ?? FEED_START, backlog: true });
    if (sub) {
      this.readBacklog(sub, runId, from ?? FEED_START).catch((error: unknown) => {
        this.log.warn('event backlog read failed', { run_id: runId, error: String(error) });
        sub.end('error');
      });
    }
    return () => sub?.cancel();
  }

  /**
   * Subscribes to the events of every run `ownerId` owns, live (no backlog): every event
   * committed after `listener.onLive` is called is delivered.
   */
  subscribeOwner(ownerId: string, listener: FeedListener): Unsubscribe {
    const sub = this.register(this.byOwner, ownerId, listener, { from: FEED_START, backlog: false });
    // Live once the poller has a position: anything committed after its head read follows it.
    if (sub) void this.ready.promise.then(() => sub.announceLive());
    return () => sub?.cancel();
  }

  /**
   * True when the run's latest event is a terminal one (run_succeeded/failed/cancelled) at or
   * before `cursor`: a stream from there has nothing to send unless the run is retried.
   */
  async isRunOverAt(runId: string, cursor: Cursor): Promise<boolean> {
    const last = await findLastRunEvent(this.db, runId);
    return last !== undefined && isTerminalEvent(last) && compareCursors(cursor, last.position) >= 0;
  }

  /** Open subscriptions (for metrics and tests). */
  get subscriberCount(): number {
    return this.subscribers;
  }

  private register(
    index: Map<string, Set<FeedSubscription>>,
    key: string,
    listener: FeedListener,
    options: { from: Cursor; backlog: boolean },
  ): FeedSubscription | undefined {
    if (!this.started) throw new Error('EventFeed.start() must be called before subscribing');
    if (this.stopped) {
      queueMicrotask(() => listener.onClose?.('stopped'));
      return undefined;
    }
    const sub = new FeedSubscription(listener, this.maxBuffered, this.log, (s) => this.forget(index, key, s), options);
    let set = index.get(key);
    if (!set) index.set(key, (set = new Set()));
    set.add(sub);
    this.subscribers++;
    this.ensurePolling();
    return sub;
  }

  private forget(index: Map<string, Set<FeedSubscription>>, key: string, sub: FeedSubscription): void {
    const set = index.get(key);
    if (!set?.delete(sub)) return;
    if (set.size === 0) index.delete(key);
    this.subscribers--;
  }

  private async readBacklog(sub: FeedSubscription, runId: string, from: Cursor): Promise<void> {
    await this.ready.promise;
    let after = from;
    while (!sub.closed) {
      const events = await listRunEventsAfter(this.db, runId, after, this.pageSize);
      for (const e of events) sub.offerBacklog(toWireEvent(e), cursorOf(e));
      const last = events.at(-1);
      if (events.length < this.pageSize || !last) break;
      after = cursorOf(last);
      // Flow control: the next page only once this one is delivered, so a slow reader of a
      // long backlog holds at most one page in memory.
      await sub.drained();
    }
    sub.goLive();
  }

  private ensurePolling(): void {
    if (!this.started || this.stopped || this.loop || this.subscribers === 0) return;
    this.loop = this.poll().finally(() => {
      this.loop = undefined;
      // A subscriber may have arrived between the loop's last check and now.
      this.ensurePolling();
    });
  }

  private async poll(): Promise<void> {
    let failures = 0;
    while (!this.stopped && this.subscribers > 0) {
      let pauseMs = this.pollMs;
      try {
        if (this.cursor === undefined) {
          this.cursor = await readFeedHead(this.db);
          this.ready.resolve();
        }
        const events = await listFeedEventsAfter(this.db, this.cursor, this.pageSize);
        if (this.stopped) break;
        this.fanOut(events);
        if (failures > 0) this.log.info('event feed recovered', { failures });
        failures = 0;
        if (events.length === this.pageSize) pauseMs = 0;
      } catch (error) {
        failures++;
        if (failures === 1) this.log.warn('event feed poll failed; retrying', { error: String(error) });
        pauseMs = Math.min(MAX_BACKOFF_MS, this.pollMs * 2 ** failures);
      }
      if (pauseMs > 0 && !this.stopped) await this.pause(pauseMs);
    }
    // Going idle (synchronously with the check above): the next subscriber starts at the head.
    // Backlog readers still waiting belong to subscriptions already closed: release them.
    this.cursor = undefined;
    this.ready.resolve();
    if (!this.stopped) this.ready = deferred();
  }

  private fanOut(events: readonly FeedEvent[]): void {
    for (const e of events) {
      const cursor = cursorOf(e);
      // Advance first: a listener that throws must not make the poller read the event again.
      this.cursor = cursor;
      const runSubs = this.byRun.get(e.runId);
      const ownerSubs = this.byOwner.get(e.ownerId);
      if (!runSubs && !ownerSubs) continue;
      const wire = toWireEvent(e);
      if (runSubs) for (const sub of runSubs) sub.offer(wire, cursor);
      if (ownerSubs) for (const sub of ownerSubs) sub.offer(wire, cursor);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakePause = done;
    });
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
