/** Queries for workflows and their immutable versions. */
import { createHash, randomUUID } from 'node:crypto';
import type { Queryable } from './db.ts';

export interface WorkflowRow {
  id: string;
  owner_id: string;
  name: string;
  latest_version: number;
}

export interface VersionRow {
  id: string;
  workflow_id: string;
  version: number;
  definition: unknown;
}

export async function insertWorkflow(
  q: Queryable,
  w: { ownerId: string; name: string; description: string },
): Promise<WorkflowRow> {
  const { rows } = await q.query<WorkflowRow>(
    `INSERT INTO workflows (id, owner_id, name, description) VALUES ($1, $2, $3, $4)
     RETURNING id, owner_id, name, latest_version`,
    [randomUUID(), w.ownerId, w.name, w.description],
  );
  return rows[0]!;
}

/** The owner's most recent live workflow with this name (the CLI keys file runs by name). */
export async function findWorkflowByName(q: Queryable, ownerId: string, name: string): Promise<WorkflowRow | undefined> {
  const { rows } = await q.query<WorkflowRow>(
    `SELECT id, owner_id, name, latest_version FROM workflows
     WHERE owner_id = $1 AND name = $2 AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1`,
    [ownerId, name],
  );
  return rows[0];
}

/**
 * Adds a version unless one with the same definition hash exists, in which case that one is
 * returned: re-running an unchanged file does not multiply versions. Callers hold a lock on
 * the workflow row (`lockWorkflow`) so two writers cannot pick the same number.
 */
export async function ensureVersion(
  q: Queryable,
  workflowId: string,
  definition: unknown,
  hash: string,
): Promise<VersionRow> {
  const existing = await q.query<VersionRow>(
    'SELECT id, workflow_id, version, definition FROM workflow_versions WHERE workflow_id = $1 AND hash = $2',
    [workflowId, hash],
  );
  if (existing.rows[0]) return existing.rows[0];
  const { rows } = await q.query<VersionRow>(
    `WITH w AS (UPDATE workflows SET latest_version = latest_version + 1, updated_at = now()
                WHERE id = $1 RETURNING latest_version)
     INSERT INTO workflow_versions (id, workflow_id, version, definition, hash)
     SELECT $2, $1, w.latest_version, $3::jsonb, $4 FROM w
     RETURNING id, workflow_id, version, definition`,
    [workflowId, randomUUID(), JSON.stringify(definition), hash],
  );
  return rows[0]!;
}

export async function lockWorkflow(q: Queryable, workflowId: string): Promise<void> {
  await q.query('SELECT 1 FROM workflows WHERE id = $1 FOR NO KEY UPDATE', [workflowId]);
}

export async function getVersion(q: Queryable, versionId: string): Promise<VersionRow | undefined> {
  const { rows } = await q.query<VersionRow>(
    'SELECT id, workflow_id, version, definition FROM workflow_versions WHERE id = $1',
    [versionId],
  );
  return rows[0];
}

// ---------------------------------------------------------------------------------------
// The API's view of workflows: catalogue rows with their metadata, filtered and paginated.

/** A definition's identity: SHA-256 of its JSON with sorted keys, so key order does not matter. */
export function definitionHash(definition: unknown): string {
  const canonical = JSON.stringify(definition, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
  return createHash('sha256').update(canonical).digest('hex');
}

export interface WorkflowRecord {
  id: string;
  owner_id: string;
  name: string;
  description: string;
  visibility: 'private' | 'public';
  category: string | null;
  tags: string[];
  latest_version: number;
  latest_version_id: string | null;
  /** Set on seeded templates (src/store/templates.ts). */
  slug: string | null;
  created_at: Date;
  updated_at: Date;
}

const RECORD_COLUMNS = `w.id, w.owner_id, w.name, w.description, w.visibility, w.category, w.tags, w.latest_version,
  (SELECT v.id FROM workflow_versions v WHERE v.workflow_id = w.id AND v.version = w.latest_version) AS latest_version_id,
  w.slug, w.created_at, w.updated_at`;

/** Who is asking: owners see their own and public workflows; admins see every one. */
export interface Viewer {
  userId: string;
  admin: boolean;
}

export interface WorkflowFilter {
  category?: string | undefined;
  tag?: string | undefined;
  owner?: string | undefined;
  visibility?: 'private' | 'public' | undefined;
  q?: string | undefined;
  sort: 'created_at' | 'updated_at' | 'name';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

const SORT_COLUMNS: Record<WorkflowFilter['sort'], string> = { created_at: 'w.created_at', updated_at: 'w.updated_at', name: 'w.name' };

export async function listWorkflowRecords(q: Queryable, viewer: Viewer, f: WorkflowFilter): Promise<{ items: WorkflowRecord[]; total: number }> {
  const { rows } = await q.query<WorkflowRecord & { total: number }>(
    `SELECT ${RECORD_COLUMNS}, count(*) OVER ()::int AS total FROM workflows w
     WHERE w.deleted_at IS NULL
       AND ($1::boolean OR w.owner_id = $2 OR w.visibility = 'public')
       AND ($3::text IS NULL OR w.category = $3)
       AND ($4::text IS NULL OR $4 = ANY(w.tags))
       AND ($5::text IS NULL OR w.owner_id = $5)
       AND ($6::text IS NULL OR w.visibility = $6)
       AND ($7::text IS NULL OR w.name ILIKE '%' || $7 || '%' OR w.description ILIKE '%' || $7 || '%')
     ORDER BY ${SORT_COLUMNS[f.sort]} ${f.order === 'asc' ? 'ASC' : 'DESC'}, w.id
     LIMIT $8 OFFSET $9`,
    [viewer.admin, viewer.userId, f.category ?? null, f.tag ?? null, f.owner ?? null, f.visibility ?? null, escapeLike(f.q), f.limit, f.offset],
  );
  const total = rows[0]?.total ?? (f.offset > 0 ? await countVisible(q, viewer, f) : 0);
  return { items: rows.map(({ total: _t, ...r }) => r), total };
}

async function countVisible(q: Queryable, viewer: Viewer, f: WorkflowFilter): Promise<number> {
  const page = await listWorkflowRecords(q, viewer, { ...f, offset: 0, limit: 1 });
  return page.total;
}

function escapeLike(text: string | undefined): string | null {
  return text === undefined || text === '' ? null : text.replace(/[\\%_]/g, (c) => '\\' + c);
}

/** A live workflow the viewer may see; undefined otherwise (the API answers 404 either way). */
export async function getWorkflowRecord(q: Queryable, viewer: Viewer, id: string): Promise<WorkflowRecord | undefined> {
  const { rows } = await q.query<WorkflowRecord>(
    `SELECT ${RECORD_COLUMNS} FROM workflows w
     WHERE w.id = $1 AND w.deleted_at IS NULL AND ($2::boolean OR w.owner_id = $3 OR w.visibility = 'public')`,
    [id, viewer.admin, viewer.userId],
  );
  return rows[0];
}

export async function insertWorkflowRecord(
  q: Queryable,
  w: { id: string; ownerId: string; name: string; description: string; visibility: 'private' | 'public'; category: string | null; tags: string[] },
): Promise<void> {
  await q.query(
    `INSERT INTO workflows (id, owner_id, name, description, visibility, category, tags) VALUES ($1, $2, $3, $4, $5, $6, $7::text[])`,
    [w.id, w.ownerId, w.name, w.description, w.visibility, w.category, w.tags],
  );
}

/** Updates the catalogue fields of a live workflow; returns false when there is none. */
export async function updateWorkflowMeta(
  q: Queryable,
  id: string,
  m: { name?: string | undefined; description?: string | undefined; visibility?: 'private' | 'public' | undefined; category?: string | null | undefined; tags?: string[] | undefined },
): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE workflows SET
       name = COALESCE($2, name), description = COALESCE($3, description), visibility = COALESCE($4, visibility),
       category = CASE WHEN $5::boolean THEN $6 ELSE category END, tags = COALESCE($7::text[], tags), updated_at = now()
     WHERE id = $1 AND deleted_at IS NULL`,
    [id, m.name ?? null, m.description ?? null, m.visibility ?? null, m.category !== undefined, m.category ?? null, m.tags ?? null],
  );
  return rowCount > 0;
}

export async function softDeleteWorkflow(q: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await q.query('UPDATE workflows SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL', [id]);
  return rowCount > 0;
}

export interface VersionSummary {
  id: string;
  version: number;
  hash: string;
  created_at: Date;
}

export async function listVersions(q: Queryable, workflowId: string, limit: number, offset: number): Promise<{ items: VersionSummary[]; total: number }> {
  const { rows } = await q.query<VersionSummary & { total: number }>(
    `SELECT id, version, hash, created_at, count(*) OVER ()::int AS total FROM workflow_versions
     WHERE workflow_id = $1 ORDER BY version DESC LIMIT $2 OFFSET $3`,
    [workflowId, limit, offset],
  );
  return { items: rows.map(({ total: _t, ...r }) => r), total: rows[0]?.total ?? 0 };
}

export async function getVersionOf(q: Queryable, workflowId: string, version: number): Promise<(VersionRow & { hash: string; created_at: Date }) | undefined> {
  const { rows } = await q.query<VersionRow & { hash: string; created_at: Date }>(
    'SELECT id, workflow_id, version, definition, hash, created_at FROM workflow_versions WHERE workflow_id = $1 AND version = $2',
    [workflowId, version],
  );
  return rows[0];
}

/** Categories of the workflows the viewer can see, with counts. */
export async function listCategories(q: Queryable, viewer: Viewer): Promise<{ category: string; count: number }[]> {
  const { rows } = await q.query<{ category: string; count: number }>(
    `SELECT category, count(*)::int AS count FROM workflows
     WHERE deleted_at IS NULL AND category IS NOT NULL AND ($1::boolean OR owner_id = $2 OR visibility = 'public')
     GROUP BY category ORDER BY category`,
    [viewer.admin, viewer.userId],
  );
  return rows;
}
