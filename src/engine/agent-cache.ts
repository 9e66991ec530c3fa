import type { Db } from '../store/db.ts';
import { getAgentProfile } from '../store/agents.ts';
import type { AgentProfile } from '../steps/types.ts';

/**
 * Agent profiles for executors, cached for `ttlMs`: a step reads its agent once per attempt,
 * and an admin's edit reaches every worker within the TTL without a notification channel.
 */
export class AgentCache {
  private readonly entries = new Map<string, { at: number; profile: Promise<AgentProfile | undefined> }>();

  constructor(private readonly db: Db, private readonly now: () => number, private readonly ttlMs = 5_000) {}

  readonly get = (name: string): Promise<AgentProfile | undefined> => {
    const hit = this.entries.get(name);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.profile;
    const profile = getAgentProfile(this.db, name);
    this.entries.set(name, { at: this.now(), profile });
    // A failed lookup is not cached.
    profile.catch(() => this.entries.delete(name));
    if (this.entries.size > 1000) this.entries.delete(this.entries.keys().next().value!);
    return profile;
  };
}
