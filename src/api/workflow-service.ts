/**
 * Workflow writes for the API: a definition is compiled (every problem reported with its
 * path) before anything is stored; an update is a new immutable version unless the
 * definition is unchanged.
 */
import { randomUUID } from 'node:crypto';
import { compileDefinition } from '../core/compiler.ts';
import type { WorkflowDefinition } from '../core/definition-schema.ts';
import { transactionWithRetry, type Db } from '../store/db.ts';
import {
  definitionHash, ensureVersion, getWorkflowRecord, insertWorkflowRecord, lockWorkflow, updateWorkflowMeta,
  type Viewer, type WorkflowRecord,
} from '../store/workflows.ts';
import { HttpProblem, notFound } from './http/problem.ts';

/** Compiles or answers 400 with each problem's path under /body. */
export function compileForApi(definition: unknown): WorkflowDefinition {
  return compileDefinition(definition).definition;
}

export async function createWorkflow(db: Db, viewer: Viewer, definition: unknown, visibility: 'private' | 'public'): Promise<WorkflowRecord> {
  if (visibility === 'public' && !viewer.admin) throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'only admins publish public workflows');
  const def = compileForApi(definition);
  const id = randomUUID();
  await transactionWithRetry(db, async (tx) => {
    await insertWorkflowRecord(tx, {
      id, ownerId: viewer.userId, name: def.name, description: def.description ?? '', visibility,
      category: def.category ?? null, tags: def.tags ?? [],
    });
    await ensureVersion(tx, id, def, definitionHash(def));
  });
  return (await getWorkflowRecord(db, viewer, id))!;
}

/** A new version (or the same one when unchanged); name, description, category, tags follow the definition. */
export async function updateDefinition(db: Db, viewer: Viewer, workflowId: string, definition: unknown): Promise<WorkflowRecord> {
  await requireEditable(db, viewer, workflowId);
  const def = compileForApi(definition);
  await transactionWithRetry(db, async (tx) => {
    await lockWorkflow(tx, workflowId);
    await ensureVersion(tx, workflowId, def, definitionHash(def));
    await updateWorkflowMeta(tx, workflowId, { name: def.name, description: def.description ?? '', category: def.category ?? null, tags: def.tags ?? [] });
  });
  return (await getWorkflowRecord(db, viewer, workflowId))!;
}

/**
 * The workflow if the viewer may change it: its owner or an admin. A public workflow someone
 * else owns is visible but not editable (403); an invisible one is 404.
 */
export async function requireEditable(db: Db, viewer: Viewer, workflowId: string): Promise<WorkflowRecord> {
  const wf = await getWorkflowRecord(db, viewer, workflowId);
  if (!wf) throw notFound('workflow');
  if (!viewer.admin && wf.owner_id !== viewer.userId) throw new HttpProblem(403, 'WEFT_FORBIDDEN', 'only the owner or an admin can change this workflow');
  return wf;
}
