/**
 * In-memory rate limiting: a token bucket per key (client IP, account, owner), `limit` tokens
 * refilled evenly over `windowMs`. A bucket allows a burst of `limit` and then one request per
 * `windowMs / limit`; unlike a fixed window, it cannot be doubled at a window edge.
 *
 * Memory is bounded: a bucket that has refilled completely is indistinguishable from a new
 * one, so it is dropped; past `maxKeys` live buckets the least recently used go first. (An
 * attacker with many keys can therefore reset others' buckets, but never grow the map.)
 * Limits are per process: several servers each allow `limit`.
 */

export interface RateLimiterOptions {
  /** Requests allowed per window (also the burst size). */
  limit: number;
  windowMs: number;
  /** Milliseconds now; tests inject one. */
  clock?: () => number;
  /** Most keys tracked at once (default 100 000). */
  maxKeys?: number;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole seconds until a request with this key would be allowed (0 when allowed). */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly limit: number;
  private readonly refillPerMs: number;
  private readonly clock: () => number;
  private readonly maxKeys: number;

  constructor(opts: RateLimiterOptions) {
    if (!(opts.limit >= 1) || !(opts.windowMs > 0)) throw new Error('a rate limit needs limit >= 1 and windowMs > 0');
    this.limit = opts.limit;
    this.refillPerMs = opts.limit / opts.windowMs;
    this.clock = opts.clock ?? Date.now;
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  /** Spends one request for `key` if its bucket allows it. */
  take(key: string): RateDecision {
    const now = this.clock();
    const bucket = this.current(key, now);
    // Re-insert so Map order is least recently used first (the eviction order).
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      this.evictIfFull(now);
      return { allowed: true, retryAfterSeconds: 0 };
    }
    const waitMs = (1 - bucket.tokens) / this.refillPerMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Number of keys tracked (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private current(key: string, now: number): Bucket {
    const bucket = this.buckets.get(key);
    if (!bucket) return { tokens: this.limit, updatedMs: now };
    // A clock that steps back must not mint tokens or wedge the bucket.
    const elapsed = Math.max(0, now - bucket.updatedMs);
    return { tokens: Math.min(this.limit, bucket.tokens + elapsed * this.refillPerMs), updatedMs: Math.max(now, bucket.updatedMs) };
  }

  /**
   * Over the bound, drops the buckets that are full again, then the least recently used down
   * to 90 % of the bound, so the O(n) sweep runs once per tenth of `maxKeys` new keys.
   */
  private evictIfFull(now: number): void {
    if (this.buckets.size <= this.maxKeys) return;
    for (const key of this.buckets.keys()) {
      if (this.current(key, now).tokens >= this.limit) this.buckets.delete(key);
    }
    const target = Math.floor(this.maxKeys * 0.9);
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(key);
    }
  }
}
