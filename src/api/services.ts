/** What route handlers reach: the database, the engine, auth, the live event feed, config. */
import type { Db } from '../store/db.ts';
import type { Engine } from '../engine/engine.ts';
import type { Clock } from '../engine/clock.ts';
import type { Logger } from '../engine/log.ts';
import type { AuthService } from './auth/auth-service.ts';
import type { EventFeed } from './events/event-feed.ts';
import type { ApiConfig } from './config.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface ApiServices {
  db: Db;
  engine: Engine;
  auth: AuthService;
  feed: EventFeed;
  log: Logger;
  clock: Clock;
  config: ApiConfig;
  limits: {
    loginPerIp: RateLimiter;
    loginPerAccount: RateLimiter;
    launchesPerOwner: RateLimiter;
  };
}
