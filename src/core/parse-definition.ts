/**
 * Definition text (JSON or YAML) → plain JSON value. Hostile input is expected: the text
 * size is bounded before parsing, nesting is bounded *before* the YAML composer (which
 * recurses) ever sees the text, aliases are bounded, and the result is converted to plain
 * JSON by an iterative walk that bounds depth and size again and rejects anything JSON
 * cannot hold (binary, sets, timestamps, non-finite numbers, non-string keys).
 */
import { Composer, Lexer, LineCounter, Parser } from 'yaml';
import type { CST, Document, YAMLError } from 'yaml';
import { LIMITS } from './definition-schema.ts';
import { DefinitionError, pointer, type ErrorCode, type Problem } from './errors.ts';

export type DefinitionFormat = 'yaml' | 'json';

/** Problems beyond this many parse errors are summarised as one. */
const MAX_PARSE_PROBLEMS = 20;
/**
 * The YAML CST parser's stack holds the document, one entry per open collection and the
 * scalar being read: LIMITS.jsonDepth + 2 for the deepest valid definition; a little slack
 * keeps this a guard against recursion (the exact depth check runs on the result).
 */
const CST_STACK_SLACK = 4;
/** Values (containers and scalars) in one converted document; bounds alias expansion. */
const MAX_VALUES = 1_000_000;
const MAX_ALIAS_COUNT = 100;

/**
 * Parses a workflow definition. `format` is a hint (from a file extension or a content type);
 * without it the text is parsed as YAML, which accepts JSON too. Throws DefinitionError with
 * WEFT_TOO_LARGE (size, nesting, aliases) or WEFT_PARSE (syntax, duplicate keys, tags,
 * top level not an object) problems.
 */
export function parseDefinitionText(text: string, format?: DefinitionFormat): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bytes = utf8Length(text);
  if (bytes > LIMITS.definitionBytes) {
    throw tooLarge('', `the definition is ${formatBytes(bytes)}; the limit is ${formatBytes(LIMITS.definitionBytes)}`);
  }
  let value: unknown;
  if (format === 'json') {
    value = parseJson(text);
  } else if (format === undefined && looksLikeJson(text)) {
    // JSON-looking text is parsed as JSON; if it is not JSON it may still be a YAML flow mapping.
    try {
      value = parseJson(text);
    } catch (error) {
      if (!(error instanceof DefinitionError) || error.code !== 'WEFT_PARSE') throw error;
      value = parseYaml(text, error);
    }
  } else {
    value = parseYaml(text);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DefinitionError([{ code: 'WEFT_PARSE', path: '', message: `the definition must be an object (a mapping) at the top level, not ${describeType(value)}` }]);
  }
  return value;
}

/**
 * Strict JSON: a hand-written iterative syntax check (exact line:column errors, duplicate
 * keys, depth bounded with the path) and then JSON.parse, which V8 runs without recursion.
 */
function parseJson(text: string): unknown {
  checkJsonText(text, LIMITS.jsonDepth);
  return JSON.parse(text) as unknown;
}

function parseYaml(text: string, jsonError?: DefinitionError): unknown {
  const lineCounter = new LineCounter();
  const at = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return `line ${line}, column ${col}`;
  };
  let doc: Document.Parsed | undefined;
  let extraDocument: Document.Parsed | undefined;
  try {
    const composer = new Composer({ version: '1.2', schema: 'core', merge: false, uniqueKeys: true, strict: true });
    for (const composed of composer.compose(boundedCst(text, lineCounter, at), true, text.length)) {
      if (!doc) doc = composed;
      else {
        extraDocument = composed;
        break;
      }
    }
  } catch (error) {
    throw parserCrash(error);
  }
  if (!doc) throw new DefinitionError([{ code: 'WEFT_PARSE', path: '', message: 'the definition is empty' }]);

  const problems: Problem[] = [];
  for (const error of doc.errors) problems.push(yamlProblem(error, text, at));
  if (extraDocument) problems.push({ code: 'WEFT_PARSE', path: '', message: `YAML error at ${at(extraDocument.range[0])}: a definition holds exactly one document` });
  for (const warning of doc.warnings) {
    if (warning.code === 'TAG_RESOLVE_FAILED') {
      problems.push({ code: 'WEFT_PARSE', path: '', message: `YAML error at ${at(warning.pos[0])}: unsupported tag ${quoteSource(text, warning.pos[0])} (only plain JSON values are allowed)` });
    }
  }
  // Text that looked like JSON and is not valid YAML either: the JSON diagnosis is the useful one.
  if (problems.length > 0 && jsonError) throw jsonError;
  if (problems.length > 0) throw new DefinitionError(capProblems(problems));

  let raw: unknown;
  try {
    raw = doc.toJS({ mapAsMap: true, maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      throw tooLarge('', `too many aliases (${error.message}); a definition may use at most ${MAX_ALIAS_COUNT} alias expansions`);
    }
    throw parserCrash(error);
  }
  if (raw === null || raw === undefined) {
    throw new DefinitionError([{ code: 'WEFT_PARSE', path: '', message: 'the definition is empty' }]);
  }
  return toPlainJson(raw, { maxDepth: LIMITS.jsonDepth, allowMaps: true, code: 'WEFT_PARSE' });
}

/**
 * The YAML lexer is a flat state machine and the CST parser keeps an explicit stack, but the
 * composer (and parts of the CST parser) recurse once per nesting level. So the CST is built
 * lexeme by lexeme here, refusing the text as soon as the parser's stack (one entry per open
 * collection, plus the document and a scalar) goes past the depth limit: nothing downstream
 * ever sees more nesting than that, however the text is crafted.
 */
function* boundedCst(text: string, lineCounter: LineCounter, at: (offset: number) => string): Generator<CST.Token, void> {
  const parser = new Parser(lineCounter.addNewLine);
  lineCounter.addNewLine(0);
  const limit = LIMITS.jsonDepth + CST_STACK_SLACK;
  for (const lexeme of new Lexer().lex(text)) {
    yield* parser.next(lexeme);
    if (parser.stack.length > limit) {
      throw tooLarge('', `the definition is nested deeper than ${LIMITS.jsonDepth} levels (at ${at(parser.offset)})`);
    }
  }
  yield* parser.end();
}

/**
 * Validates JSON text without building values: iterative, so any nesting is safe to scan.
 * Throws DefinitionError: WEFT_PARSE (syntax, duplicate keys, invalid keys) or
 * WEFT_TOO_LARGE (nesting deeper than maxDepth, with the path).
 */
function checkJsonText(text: string, maxDepth: number): void {
  interface Container { kind: 'object' | 'array'; keys: Set<string> | undefined; index: number; key: string | number | undefined; parent: Container | undefined }
  let pos = 0;
  const n = text.length;
  const fail = (message: string, at = pos, code: ErrorCode = 'WEFT_PARSE', path = ''): never => {
    const { line, col } = lineColumn(text, at);
    throw new DefinitionError([{ code, path, message: `JSON error at line ${line}, column ${col}: ${message}` }]);
  };
  const pathOfContainer = (c: Container | undefined, extra?: string | number): string => {
    const segments: (string | number)[] = extra === undefined ? [] : [extra];
    for (let k = c; k && k.key !== undefined; k = k.parent) segments.push(k.key);
    return pointer(...segments.reverse());
  };
  const skipSpace = (): void => {
    while (pos < n) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };
  const describeHere = (): string => (pos >= n ? 'end of text' : `'${text[pos]}'`);
  const readString = (): string => {
    const start = pos;
    pos++; // opening quote
    let plain = true;
    while (pos < n) {
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        pos++;
        const raw = text.slice(start, pos);
        return plain ? raw.slice(1, -1) : (JSON.parse(raw) as string);
      }
      if (c === 0x5c) {
        plain = false;
        const e = text[pos + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail('invalid \\u escape in string', pos);
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) pos += 2;
        else fail(`invalid escape '\\${e ?? ''}' in string`, pos);
        continue;
      }
      if (c < 0x20) fail(c === 0x0a ? 'unterminated string (strings cannot span lines; use \\n)' : 'control character in string', pos);
      pos++;
    }
    return fail('unterminated string', start);
  };
  const numberPattern = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const readScalar = (): void => {
    const c = text[pos];
    if (c === '"') {
      readString();
      return;
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      numberPattern.lastIndex = pos;
      const m = numberPattern.exec(text);
      if (!m) return fail(`invalid number`);
      if (!Number.isFinite(Number(m[0]))) fail(`number ${m[0].slice(0, 40)} is out of range`);
      pos += m[0].length;
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, pos)) {
        pos += literal.length;
        return;
      }
    }
    fail(`unexpected ${describeHere()}; expected a value`);
  };

  let top: Container | undefined;
  let depth = 0;
  // After a value inside a container: expect ',' or the closing bracket.
  let afterValue = false;
  skipSpace();
  if (pos >= n) fail('the text is empty');
  for (;;) {
    skipSpace();
    if (afterValue) {
      if (!top) {
        if (pos < n) fail(`unexpected ${describeHere()} after the end of the document`);
        return;
      }
      const close = top.kind === 'object' ? '}' : ']';
      if (text[pos] === ',') {
        pos++;
        afterValue = false;
        skipSpace();
        if (text[pos] === close) fail(`trailing comma before '${close}'`);
      } else if (text[pos] === close) {
        pos++;
        top = top.parent;
        depth--;
        continue;
      } else {
        fail(`unexpected ${describeHere()}; expected ',' or '${close}'`);
      }
    }
    // Expecting a value (or a key first, in an object).
    let key: string | number | undefined;
    if (top?.kind === 'object') {
      if (text[pos] !== '"') fail(`unexpected ${describeHere()}; expected a property name in double quotes`);
      const keyStart = pos;
      const name = readString();
      if (/\p{Surrogate}/u.test(name)) fail('the key contains an unpaired surrogate (invalid Unicode)', keyStart, 'WEFT_PARSE', pathOfContainer(top, name));
      if (top.keys!.has(name)) fail(`duplicate key '${name}'`, keyStart, 'WEFT_PARSE', pathOfContainer(top, name));
      top.keys!.add(name);
      skipSpace();
      if (text[pos] !== ':') fail(`unexpected ${describeHere()}; expected ':' after the property name`);
      pos++;
      skipSpace();
      key = name;
    } else if (top) {
      key = top.index++;
    }
    const c = text[pos];
    if (c === '{' || c === '[') {
      depth++;
      if (depth > maxDepth) fail(`nested deeper than ${maxDepth} levels`, pos, 'WEFT_TOO_LARGE', pathOfContainer(top, key));
      pos++;
      top = { kind: c === '{' ? 'object' : 'array', keys: c === '{' ? new Set() : undefined, index: 0, key, parent: top };
      skipSpace();
      const close = c === '{' ? '}' : ']';
      if (text[pos] === close) {
        pos++;
        top = top.parent;
        depth--;
        afterValue = true;
      } else {
        afterValue = false;
      }
      continue;
    }
    readScalar();
    afterValue = true;
  }
}

function lineColumn(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

/**
 * Throws DefinitionError (WEFT_TOO_LARGE, with the path of the first container past the
 * limit) when `value` nests containers deeper than `maxDepth` (the top-level container is
 * depth 1). Iterative; terminates on cyclic values.
 */
export function checkJsonDepth(value: unknown, maxDepth: number, path = ''): void {
  const problem = jsonDepthProblem(value, maxDepth, path);
  if (problem) throw new DefinitionError([problem]);
}

/** The non-throwing form of checkJsonDepth. */
export function jsonDepthProblem(value: unknown, maxDepth: number, path = ''): Problem | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: { value: object; depth: number; at: PathNode | undefined }[] = [{ value, depth: 1, at: undefined }];
  let count = 0;
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    if (++count > MAX_VALUES) return { code: 'WEFT_TOO_LARGE', path: path + pathOf(frame.at), message: `more than ${MAX_VALUES} containers` };
    if (frame.depth > maxDepth) {
      return { code: 'WEFT_TOO_LARGE', path: path + pathOf(frame.at), message: `nested deeper than ${maxDepth} levels` };
    }
    const children = frame.value instanceof Map ? [...(frame.value as Map<unknown, unknown>).entries()] : Object.entries(frame.value);
    for (const [key, child] of children) {
      if (typeof child === 'object' && child !== null) {
        stack.push({ value: child, depth: frame.depth + 1, at: { parent: frame.at, key: Array.isArray(frame.value) ? Number(key) : String(key) } });
      }
    }
  }
  return undefined;
}

export interface PlainJsonOptions {
  maxDepth: number;
  /** Accept Map (as produced by the YAML parser) and convert it to an object. */
  allowMaps?: boolean;
  /** Code for values JSON cannot represent (depth and size problems are WEFT_TOO_LARGE). */
  code?: ErrorCode;
  /** Prefix for problem paths. */
  path?: string;
  maxValues?: number;
  /** Refuse (WEFT_TOO_LARGE) once the strings and keys alone exceed this many characters. */
  maxStringBytes?: number;
}

/**
 * An iterative deep copy into plain JSON: own enumerable properties only, `undefined`
 * properties dropped (as JSON.stringify does), `__proto__` kept as an ordinary key, shared
 * references copied. Throws DefinitionError on depth/size limits, non-JSON values
 * (functions, symbols, bigints, non-finite numbers, class instances, binary), keys with
 * unpaired surrogates and, for maps, non-string keys and keys that collide once stringified.
 */
export function toPlainJson(value: unknown, options: PlainJsonOptions): unknown {
  const code = options.code ?? 'WEFT_SCHEMA';
  const prefix = options.path ?? '';
  const maxValues = options.maxValues ?? MAX_VALUES;
  const fail = (c: ErrorCode, at: PathNode | undefined, message: string): never => {
    throw new DefinitionError([{ code: c, path: prefix + pathOf(at), message }]);
  };
  const root: Record<string, unknown> = {};
  // Work items: a source value, where its copy goes, its path and how many containers enclose it.
  interface Item { src: unknown; into: Record<string | number, unknown>; key: string | number; at: PathNode | undefined; depth: number }
  const work: Item[] = [{ src: value, into: root, key: 'value', at: undefined, depth: 0 }];
  let count = 0;
  let chars = 0;
  const maxChars = options.maxStringBytes ?? Infinity;
  for (let item = work.pop(); item; item = work.pop()) {
    const { src, into, key, at, depth } = item;
    if (++count > maxValues) fail('WEFT_TOO_LARGE', at, `more than ${maxValues} values`);
    if (typeof key === 'string') chars += key.length;
    if (typeof src === 'string') chars += src.length;
    if (chars > maxChars) fail('WEFT_TOO_LARGE', undefined, `larger than ${maxChars} bytes`);
    switch (typeof src) {
      case 'string':
      case 'boolean':
        setOwn(into, key, src);
        continue;
      case 'number':
        if (!Number.isFinite(src)) fail(code, at, `${String(src)} is not a JSON number`);
        setOwn(into, key, src);
        continue;
      case 'object':
        break;
      default:
        fail(code, at, `${src === undefined ? 'undefined' : `a ${typeof src}`} is not a JSON value`);
    }
    if (src === null) {
      setOwn(into, key, null);
      continue;
    }
    if (depth + 1 > options.maxDepth) fail('WEFT_TOO_LARGE', at, `nested deeper than ${options.maxDepth} levels`);
    if (Array.isArray(src)) {
      const copy = new Array<unknown>(src.length).fill(null);
      setOwn(into, key, copy);
      for (let i = src.length - 1; i >= 0; i--) {
        const child: unknown = src[i];
        const childAt = { parent: at, key: i };
        if (child === undefined) fail(code, childAt, 'undefined is not a JSON value');
        work.push({ src: child, into: copy as unknown as Record<number, unknown>, key: i, at: childAt, depth: depth + 1 });
      }
      continue;
    }
    let entries: [string, unknown][];
    const isMap = src instanceof Map;
    if (isMap) {
      if (!options.allowMaps) fail(code, at, 'a Map is not a JSON value');
      entries = [];
      for (const [k, v] of src as Map<unknown, unknown>) {
        if (typeof k === 'string') entries.push([k, v]);
        else if (typeof k === 'number' || typeof k === 'boolean') entries.push([String(k), v]);
        else fail(code, at, `mapping keys must be strings, not ${describeType(k)}`);
      }
    } else {
      const proto: unknown = Object.getPrototypeOf(src);
      if (proto !== Object.prototype && proto !== null) {
        const what = ArrayBuffer.isView(src) ? 'binary data' : src instanceof Set ? 'a set' : src instanceof Date ? 'a date object' : 'a class instance';
        fail(code, at, `${what} is not a JSON value`);
      }
      entries = Object.entries(src as Record<string, unknown>);
    }
    const copy: Record<string, unknown> = {};
    setOwn(into, key, copy);
    const pending: Item[] = [];
    for (const [k, v] of entries) {
      if (v === undefined && !isMap) continue;
      const childAt = { parent: at, key: k };
      if (/\p{Surrogate}/u.test(k)) fail(code, childAt, 'the key contains an unpaired surrogate (invalid Unicode)');
      if (Object.hasOwn(copy, k)) fail(code, childAt, `duplicate key '${k}'`);
      setOwn(copy, k, null);
      pending.push({ src: v === undefined ? null : v, into: copy, key: k, at: childAt, depth: depth + 1 });
    }
    for (let i = pending.length - 1; i >= 0; i--) work.push(pending[i]!);
  }
  return root['value'];
}

interface PathNode { parent: PathNode | undefined; key: string | number }

function pathOf(at: PathNode | undefined): string {
  const segments: (string | number)[] = [];
  for (let node = at; node; node = node.parent) segments.push(node.key);
  return pointer(...segments.reverse());
}

/** Bytes of `text` encoded as UTF-8 (unpaired surrogates count as 3, as TextEncoder would). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------

function setOwn(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

function looksLikeJson(text: string): boolean {
  const first = /\S/.exec(text)?.[0];
  return first === '{' || first === '[';
}

function tooLarge(path: string, message: string): DefinitionError {
  return new DefinitionError([{ code: 'WEFT_TOO_LARGE', path, message }]);
}

function parserCrash(error: unknown): DefinitionError {
  if (error instanceof RangeError) return tooLarge('', 'the definition is nested too deeply to parse');
  if (error instanceof DefinitionError) return error;
  return new DefinitionError([{ code: 'WEFT_PARSE', path: '', message: `could not parse the definition: ${error instanceof Error ? error.message : String(error)}` }]);
}

function yamlProblem(error: YAMLError, text: string, at: (offset: number) => string): Problem {
  const where = at(error.pos[0]);
  if (error.code === 'RESOURCE_EXHAUSTION') return { code: 'WEFT_TOO_LARGE', path: '', message: `the definition is nested too deeply to parse (at ${where})` };
  if (error.code === 'DUPLICATE_KEY') return { code: 'WEFT_PARSE', path: '', message: `YAML error at ${where}: duplicate key ${quoteSource(text, error.pos[0])}` };
  const message = error.message.replace(/\s+at line \d+, column \d+:?[\s\S]*$/, '');
  return { code: 'WEFT_PARSE', path: '', message: `YAML error at ${where}: ${message}` };
}

/** The key or tag that starts at `offset`, quoted for a message. */
function quoteSource(text: string, offset: number): string {
  const m = /^("(?:[^"\\\n]|\\.){0,80}"?|'(?:[^'\n]|''){0,80}'?|[^\s:,[\]{}]{1,80})/.exec(text.slice(offset, offset + 200));
  const raw = m?.[0] ?? '';
  return raw.startsWith('"') || raw.startsWith("'") ? raw : `'${raw}'`;
}

function capProblems(problems: Problem[]): Problem[] {
  if (problems.length <= MAX_PARSE_PROBLEMS) return problems;
  const kept = problems.slice(0, MAX_PARSE_PROBLEMS);
  kept.push({ code: 'WEFT_PARSE', path: '', message: `… and ${problems.length - MAX_PARSE_PROBLEMS} more errors` });
  return kept;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Map) return 'a mapping';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 === 0 ? 0 : 1)} KiB`;
  return `${n} bytes`;
}
