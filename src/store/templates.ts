/**
 * Seeded workflow templates: public workflows owned by the system, found again by their slug
 * (`workflows.slug`, unique; migration 0005).
 *
 * - First start: one transaction inserts the workflow (`ON CONFLICT (slug) DO NOTHING`: of two
 *   servers starting at once, the second waits on the unique index and then inserts nothing)
 *   and its first version, and records the hash it seeded in server_settings.
 * - Later starts: a template whose file changed gets a new version — but only while the
 *   workflow's latest version is still the one seeding wrote. A workflow an admin edited (a
 *   newer version of their own) or deleted (soft: the slug row stays) is left alone for good.
 */
import { randomUUID } from 'node:crypto';
import type { WorkflowDefinition } from '../core/definition-schema.ts';
import { transactionWithRetry, type Db, type Queryable } from './db.ts';
import { getSetting, putSetting } from './server-settings.ts';
import { definitionHash, ensureVersion, lockWorkflow, updateWorkflowMeta } from './workflows.ts';

/** The owner of seeded templates: not a user, so no one but admins can change them. */
export const SYSTEM_OWNER = 'system';

export interface TemplateSeed {
  /** Stable id across releases, e.g. `website.create_basic_site`. */
  slug: string;
  /** Compiled (checked, plain JSON) definition. */
  definition: WorkflowDefinition;
}

export type SeedOutcome = 'seeded' | 'upgraded' | 'unchanged' | 'kept_edited' | 'kept_deleted';

interface SeedRecord {
  /** Hash of the version seeding last wrote. */
  hash: string;
}

const settingKey = (slug: string): string => `template:${slug}`;

/** Seeds or upgrades each template; returns what happened to each slug. */
export async function seedTemplates(db: Db, templates: readonly TemplateSeed[]): Promise<Record<string, SeedOutcome>> {
  const outcomes: Record<string, SeedOutcome> = {};
  for (const t of templates) outcomes[t.slug] = await transactionWithRetry(db, (tx) => seedOne(tx, t));
  return outcomes;
}

async function seedOne(tx: Queryable, t: TemplateSeed): Promise<SeedOutcome> {
  const def = t.definition;
  const hash = definitionHash(def);
  const inserted = await tx.query<{ id: string }>(
    `INSERT INTO workflows (id, owner_id, name, description, visibility, category, tags, slug)
     VALUES ($1, $2, $3, $4, 'public', $5, $6::text[], $7)
     ON CONFLICT (slug) WHERE slug IS NOT NULL DO NOTHING RETURNING id`,
    [randomUUID(), SYSTEM_OWNER, def.name, def.description ?? '', def.category ?? null, def.tags ?? [], t.slug],
  );
  const id = inserted.rows[0]?.id;
  if (id !== undefined) {
    await ensureVersion(tx, id, def, hash);
    await putSetting(tx, settingKey(t.slug), { hash } satisfies SeedRecord);
    return 'seeded';
  }
  const found = await tx.query<{ id: string; deleted: boolean }>('SELECT id, deleted_at IS NOT NULL AS deleted FROM workflows WHERE slug = $1', [t.slug]);
  const row = found.rows[0];
  if (!row || row.deleted) return 'kept_deleted';
  // Locked before reading the latest version: a concurrent upgrade or edit is seen whole.
  await lockWorkflow(tx, row.id);
  const latest = await tx.query<{ hash: string }>(
    'SELECT v.hash FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version WHERE w.id = $1',
    [row.id],
  );
  const latestHash = latest.rows[0]?.hash;
  const record = await getSetting<SeedRecord>(tx, settingKey(t.slug));
  if (latestHash === hash) return 'unchanged';
  if (!record || record.hash !== latestHash) return 'kept_edited';
  await ensureVersion(tx, row.id, def, hash);
  await updateWorkflowMeta(tx, row.id, { name: def.name, description: def.description ?? '', category: def.category ?? null, tags: def.tags ?? [] });
  await putSetting(tx, settingKey(t.slug), { hash } satisfies SeedRecord);
  return 'upgraded';
}
