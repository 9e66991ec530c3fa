/**
 * Binary files steps produce (images, site bundles), content-addressed within a run. Written
 * by the completing transaction (inside the attempt's fence), read by the API for whoever may
 * see the run.
 */
import type { Queryable } from './db.ts';

export interface NewRunFile {
  sha256: string;
  name: string;
  contentType: string;
  bytes: Uint8Array;
}

export interface RunFile {
  sha256: string;
  stepId: string;
  name: string;
  contentType: string;
  size: number;
  createdAt: Date;
}

/** Stores files of one step; a file already stored for the run (same hash) is kept as it is. */
export async function insertRunFiles(q: Queryable, runId: string, stepId: string, files: readonly NewRunFile[], at: Date): Promise<void> {
  for (const f of files) {
    await q.query(
      `INSERT INTO run_files (run_id, sha256, step_id, name, content_type, size_bytes, content, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, sha256) DO NOTHING`,
      [runId, f.sha256, stepId, f.name, f.contentType, f.bytes.length, Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength), at],
    );
  }
}

interface FileRow {
  sha256: string;
  step_id: string;
  name: string;
  content_type: string;
  size_bytes: number;
  created_at: Date;
}

function toFile(r: FileRow): RunFile {
  return { sha256: r.sha256, stepId: r.step_id, name: r.name, contentType: r.content_type, size: r.size_bytes, createdAt: r.created_at };
}

/** The run's files, without their bytes. */
export async function listRunFiles(q: Queryable, runId: string): Promise<RunFile[]> {
  const { rows } = await q.query<FileRow>(
    `SELECT sha256, step_id, name, content_type, size_bytes, created_at FROM run_files WHERE run_id = $1 ORDER BY created_at, sha256`,
    [runId],
  );
  return rows.map(toFile);
}

/** One file with its bytes; undefined when the run has no such file. */
export async function getRunFile(q: Queryable, runId: string, sha256: string): Promise<(RunFile & { bytes: Uint8Array }) | undefined> {
  const { rows } = await q.query<FileRow & { content: Uint8Array }>(
    `SELECT sha256, step_id, name, content_type, size_bytes, created_at, content FROM run_files WHERE run_id = $1 AND sha256 = $2`,
    [runId, sha256],
  );
  const row = rows[0];
  return row && { ...toFile(row), bytes: new Uint8Array(row.content) };
}
