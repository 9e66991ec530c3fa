/** Read queries for artifacts: every version of every step output of a run. */
import type { Queryable } from './db.ts';

export interface ArtifactSummary {
  step_id: string;
  name: string;
  version: number;
  is_latest: boolean;
  produced_by: 'attempt' | 'user';
  attempt: number | null;
  size_bytes: number;
  created_at: Date;
}

export interface ArtifactRow extends ArtifactSummary {
  content: unknown;
}

const SUMMARY = `step_id, name, version, is_latest, produced_by, attempt,
  octet_length(COALESCE(content::text, ''))::int AS size_bytes, created_at`;

/** The run's artifacts (latest versions only unless `allVersions`), optionally of one step. */
export async function listArtifacts(q: Queryable, runId: string, opts: { stepId?: string | undefined; allVersions: boolean }): Promise<ArtifactSummary[]> {
  const { rows } = await q.query<ArtifactSummary>(
    `SELECT ${SUMMARY} FROM artifacts
     WHERE run_id = $1 AND ($2::text IS NULL OR step_id = $2) AND ($3::boolean OR is_latest)
     ORDER BY step_id, name, version`,
    [runId, opts.stepId ?? null, opts.allVersions],
  );
  return rows;
}

export async function listArtifactVersions(q: Queryable, runId: string, stepId: string, name: string): Promise<ArtifactSummary[]> {
  const { rows } = await q.query<ArtifactSummary>(
    `SELECT ${SUMMARY} FROM artifacts WHERE run_id = $1 AND step_id = $2 AND name = $3 ORDER BY version DESC`,
    [runId, stepId, name],
  );
  return rows;
}

/** One version, or the latest when `version` is undefined. */
export async function getArtifact(q: Queryable, runId: string, stepId: string, name: string, version?: number): Promise<ArtifactRow | undefined> {
  const { rows } = await q.query<ArtifactRow>(
    `SELECT ${SUMMARY}, content FROM artifacts
     WHERE run_id = $1 AND step_id = $2 AND name = $3 AND (CASE WHEN $4::int IS NULL THEN is_latest ELSE version = $4 END)`,
    [runId, stepId, name, version ?? null],
  );
  return rows[0];
}
