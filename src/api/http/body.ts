/**
 * Request bodies: the declared media types only (415 otherwise), a byte limit enforced while
 * reading (413, the connection is not left hanging), JSON parsed strictly and YAML parsed by
 * the bounded definition parser (aliases, depth and size limited).
 */
import type { IncomingMessage } from 'node:http';
import { parseDefinitionText } from '../../core/parse-definition.ts';
import { DefinitionError } from '../../core/errors.ts';
import { HttpProblem } from './problem.ts';
import type { BodyType } from './route.ts';

const MEDIA_TYPES: Record<BodyType, readonly string[]> = {
  json: ['application/json'],
  yaml: ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'],
};

export function mediaTypesOf(types: readonly BodyType[]): string[] {
  return types.flatMap((t) => MEDIA_TYPES[t]);
}

/** Reads and parses the body; `undefined` when the request has none. */
export async function readBody(req: IncomingMessage, accepted: readonly BodyType[], limit: number): Promise<unknown> {
  const declared = req.headers['content-length'];
  const hasBody = (declared !== undefined && declared !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) return undefined;
  if (declared !== undefined && Number(declared) > limit) {
    throw new HttpProblem(413, 'WEFT_BODY_TOO_LARGE', `the request body is ${declared} bytes; the limit is ${limit}`);
  }
  const type = bodyTypeOf(req.headers['content-type'], accepted);
  const text = await readText(req, limit);
  if (text.length === 0) return undefined;
  if (type === 'json') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // The parser's message quotes part of the body, which may hold a secret: say only that.
      throw new HttpProblem(400, 'WEFT_BAD_REQUEST', 'the body is not valid JSON', [
        { path: '/body', message: 'not valid JSON' },
      ]);
    }
  }
  try {
    return parseDefinitionText(text, 'yaml');
  } catch (error) {
    if (error instanceof DefinitionError) {
      throw new HttpProblem(error.code === 'WEFT_TOO_LARGE' ? 413 : 400, error.code === 'WEFT_TOO_LARGE' ? 'WEFT_BODY_TOO_LARGE' : 'WEFT_PARSE', error.message,
        error.problems.map((p) => ({ path: '/body' + p.path, message: p.message, code: p.code })));
    }
    throw error;
  }
}

function bodyTypeOf(header: string | undefined, accepted: readonly BodyType[]): BodyType {
  const mediaType = (header ?? '').split(';')[0]!.trim().toLowerCase();
  for (const type of accepted) if (MEDIA_TYPES[type].includes(mediaType)) return type;
  throw new HttpProblem(415, 'WEFT_UNSUPPORTED_MEDIA_TYPE',
    `Content-Type '${mediaType || '(none)'}' is not accepted here; use ${mediaTypesOf(accepted).join(' or ')}`);
}

/** Collects the body as UTF-8, stopping (and draining the rest) as soon as it passes `limit`. */
function readText(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        // Keep reading (and discarding) so the client gets the 413 instead of a reset.
        reject(new HttpProblem(413, 'WEFT_BODY_TOO_LARGE', `the request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (error) => {
      if (!failed) reject(error);
    });
  });
}
