import { compileDefinition } from '../core/compiler.ts';
import type { CompiledWorkflow } from '../core/compiled.ts';
import { WeftError } from '../core/errors.ts';
import type { Queryable } from '../store/db.ts';
import { getVersion } from '../store/workflows.ts';

/**
 * Compiled definitions by version id. Versions are immutable, so an entry never goes stale;
 * the map is bounded by dropping the oldest entry.
 */
export class VersionCache {
  private readonly entries = new Map<string, CompiledWorkflow>();
  constructor(private readonly capacity = 500) {}

  put(versionId: string, wf: CompiledWorkflow): void {
    this.entries.set(versionId, wf);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  async get(q: Queryable, versionId: string): Promise<CompiledWorkflow> {
    const hit = this.entries.get(versionId);
    if (hit) return hit;
    const row = await getVersion(q, versionId);
    if (!row) throw new WeftError('WEFT_NOT_FOUND', `workflow version ${versionId} not found`);
    const wf = compileDefinition(row.definition);
    this.put(versionId, wf);
    return wf;
  }
}
