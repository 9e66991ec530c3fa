import { createHash } from 'node:crypto';
import { fileUrl, type FileRef, type StepFile } from './types.ts';

/** A file a step returns in `StepResult.files`, with its hash computed. */
export function makeFile(name: string, contentType: string, bytes: Uint8Array): StepFile {
  return { name, contentType, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** How a step's JSON output points at one of its files. */
export function describeFile(runId: string, file: StepFile): FileRef {
  return { url: fileUrl(runId, file.sha256), sha256: file.sha256, content_type: file.contentType, size: file.bytes.length, name: file.name };
}
