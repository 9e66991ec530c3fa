/** Queries for workflows and their immutable versions. */
import { randomUUID } from 'node:crypto';
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
