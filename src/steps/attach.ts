/**
 * `attach`: links image outputs to a document output — ad copy and its creative, a post and
 * its picture — marking one image primary. Bindings: `with: { document: "$body", images:
 * ["$creative"] }`; the step's `primary` names the primary image by index or by the id of the
 * step that made it (default: the first). Pure bookkeeping: no provider, no files of its own
 * (the images are already run files; their urls are kept).
 *
 * Wrong inputs (a missing document, something that is not an image output) fail at once and
 * are not retried: the same bindings would give the same values.
 */
import { WeftError } from '../core/errors.ts';
import type { StepDefinitionOf } from '../core/definition-schema.ts';
import type { StepContext, StepExecutor } from './types.ts';

interface Attachment {
  url: string;
  sha256: string | null;
  content_type: string;
  name: string | null;
  size: number | null;
  primary: boolean;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(ctx: StepContext, message: string): never {
  throw new WeftError('WEFT_STEP_FAILED', `attach step '${ctx.stepId}': ${message}`);
}

/** The document's content: text and/or JSON, whatever the producing step gave. */
function readDocument(ctx: StepContext, value: unknown): { text?: string; json?: unknown } {
  if (typeof value === 'string' && value !== '') return { text: value };
  if (isObject(value)) {
    const doc: { text?: string; json?: unknown } = {};
    if (typeof value['text'] === 'string') doc.text = value['text'];
    if (value['json'] !== undefined) doc.json = value['json'];
    // A transform's object (`{headline, body}`) is the document itself.
    return doc.text === undefined && doc.json === undefined ? { json: value } : doc;
  }
  return fail(ctx, 'with.document must be a document: text, or an output with `text` or `json` (e.g. "$copy")');
}

function readImage(ctx: StepContext, value: unknown, at: number): Omit<Attachment, 'primary'> {
  const what = `with.images[${at}]`;
  if (!isObject(value)) return fail(ctx, `${what} is not an image output (an object with url and content_type image/*), it is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}`);
  const url = value['url'];
  const type = value['content_type'];
  if (typeof url !== 'string' || url === '') return fail(ctx, `${what} is not an image output: it has no url`);
  if (typeof type !== 'string' || !/^image\/[A-Za-z0-9.+-]+$/.test(type)) {
    return fail(ctx, `${what} is not an image output: its content_type is ${typeof type === 'string' ? `'${type}'` : 'missing'}, not image/*`);
  }
  return {
    url, content_type: type,
    sha256: typeof value['sha256'] === 'string' ? value['sha256'] : null,
    name: typeof value['name'] === 'string' ? value['name'] : null,
    size: typeof value['size'] === 'number' ? value['size'] : null,
  };
}

/** The primary image's index: `primary` as an index, or the step whose output it is. */
function primaryIndex(ctx: StepContext, primary: number | string | undefined, images: readonly unknown[]): number {
  if (primary === undefined) return 0;
  if (typeof primary === 'number') {
    if (primary >= images.length) fail(ctx, `primary is ${primary}, but there are only ${images.length} images (indices from 0)`);
    return primary;
  }
  const output = ctx.scope[primary];
  const url = isObject(output) ? output['url'] : undefined;
  const index = images.findIndex((img) => img === output || (isObject(img) && url !== undefined && img['url'] === url));
  if (index === -1) fail(ctx, `primary names step '${primary}', whose output is not among with.images`);
  return index;
}

export const attachStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'attach'>;
  const document = readDocument(ctx, ctx.params['document']);
  const raw = ctx.params['images'];
  const images: unknown[] = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  if (images.length === 0) fail(ctx, 'with.images must give at least one image output (e.g. ["$creative"])');
  const primary = primaryIndex(ctx, def.primary, images);
  const attachments: Attachment[] = images.map((img, i) => ({ ...readImage(ctx, img, i), primary: i === primary }));
  return { output: { document, attachments, primary: attachments[primary]! } };
};
