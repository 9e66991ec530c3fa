/**
 * The templates shipped in `templates/` at the repository root: one YAML definition per file,
 * named after its slug (`website.create_basic_site.yaml`). Each goes through the same bounded
 * parser and compiler as a definition posted to the API; a template that does not compile
 * stops the server from starting, naming the file (it is shipped code, and the tests run it).
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { compileDefinition } from '../core/compiler.ts';
import { DefinitionError } from '../core/errors.ts';
import { parseDefinitionText } from '../core/parse-definition.ts';
import type { TemplateSeed } from '../store/templates.ts';

export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

/** `area.name` in lowercase letters, digits and underscores. */
const SLUG = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/** Every template in `dir`, in file-name order. */
export async function loadTemplates(dir = TEMPLATES_DIR): Promise<TemplateSeed[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  const seeds: TemplateSeed[] = [];
  for (const file of names) {
    const slug = file.slice(0, -'.yaml'.length);
    if (!SLUG.test(slug)) throw new Error(`template ${file}: the file name must be a slug like website.create_basic_site.yaml`);
    try {
      const definition = compileDefinition(parseDefinitionText(await readFile(`${dir}/${file}`, 'utf8'), 'yaml')).definition;
      seeds.push({ slug, definition });
    } catch (error) {
      const detail = error instanceof DefinitionError ? error.problems.map((p) => `${p.path || '/'}: ${p.message}`).join('; ') : String(error);
      throw new Error(`template ${file} does not compile: ${detail}`, { cause: error });
    }
  }
  return seeds;
}
