import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkJsonDepth, jsonDepthProblem, parseDefinitionText, toPlainJson } from '../src/core/parse-definition.ts';
import { LIMITS } from '../src/core/definition-schema.ts';
import { DefinitionError, WeftError } from '../src/core/errors.ts';
import type { ErrorCode } from '../src/core/errors.ts';

/** Asserts that `fn` throws a DefinitionError whose first problem has `code` (and matches). */
function rejects(fn: () => unknown, code: ErrorCode, message?: RegExp, path?: string): DefinitionError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof DefinitionError, `expected a DefinitionError, got ${String(caught)}`);
  assert.ok(caught instanceof WeftError);
  assert.equal(caught.code, code, JSON.stringify(caught.problems));
  const problem = caught.problems[0]!;
  assert.equal(problem.code, code);
  if (message) assert.match(problem.message, message);
  if (path !== undefined) assert.equal(problem.path, path);
  return caught;
}

const YAML_TEXT = `
# a comment
name: Blog article
inputs:
  type: object
  properties:
    topic: { type: string }
steps:
  outline:
    type: agent
    prompt: |
      Outline a post on {{ $input.topic }}
  article: { type: agent, needs: [outline], prompt: "Write: {{ $outline.text }}", retry: { max: 3 } }
context:
  published: 2024-01-01
  version: 1.10
  flag: yes
  octal: 0o17
  nothing: ~
`;

void describe('parseDefinitionText: YAML and JSON', () => {
  void it('parses YAML into plain JSON (core schema: dates and yes stay strings)', () => {
    const value = parseDefinitionText(YAML_TEXT, 'yaml') as Record<string, Record<string, unknown>>;
    assert.equal(value['name'], 'Blog article');
    assert.equal((value['steps']!['outline'] as { prompt: string }).prompt, 'Outline a post on {{ $input.topic }}\n');
    assert.deepEqual(value['context'], { published: '2024-01-01', version: 1.1, flag: 'yes', octal: 15, nothing: null });
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual(JSON.parse(JSON.stringify(value)), value);
  });

  void it('parses JSON with or without the hint, and detects it', () => {
    const text = JSON.stringify({ name: 'x', steps: { a: { type: 'delay', ms: 5 } }, context: { n: -0.5e-3, t: true, z: null, s: 'é\n' } });
    const expected = JSON.parse(text) as unknown;
    assert.deepEqual(parseDefinitionText(text, 'json'), expected);
    assert.deepEqual(parseDefinitionText(text), expected);
    assert.deepEqual(parseDefinitionText(text, 'yaml'), expected); // JSON is YAML too
    assert.deepEqual(parseDefinitionText('\uFEFF' + text, 'json'), expected);
  });

  void it('accepts a YAML flow mapping that merely looks like JSON', () => {
    assert.deepEqual(parseDefinitionText('{name: x, steps: {a: {type: delay, ms: 1}}}'), { name: 'x', steps: { a: { type: 'delay', ms: 1 } } });
  });

  void it('keeps __proto__ as an ordinary key (no prototype pollution)', () => {
    for (const text of ['__proto__: { polluted: 1 }\nname: x', '{"__proto__": {"polluted": 1}, "name": "x"}']) {
      const value = parseDefinitionText(text) as Record<string, unknown>;
      assert.equal(Object.getPrototypeOf(value), Object.prototype);
      assert.ok(Object.hasOwn(value, '__proto__'));
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    }
  });

  void it('allows a few aliases (copied, not shared)', () => {
    const value = parseDefinitionText('base: &b { x: 1 }\none: *b\ntwo: *b\n') as Record<string, { x: number }>;
    assert.deepEqual(value, { base: { x: 1 }, one: { x: 1 }, two: { x: 1 } });
    assert.notEqual(value['one'], value['two']);
  });
});

void describe('parseDefinitionText: malformed text', () => {
  void it('reports malformed YAML with line and column', () => {
    rejects(() => parseDefinitionText('name: x\nsteps:\n  a: [1, 2\n  b: 3\n'), 'WEFT_PARSE', /^YAML error at line 4, column 3: Flow sequence .* end with a \]$/);
    rejects(() => parseDefinitionText('name: x\ndescription: y: z\n'), 'WEFT_PARSE', /^YAML error at line 2, column 14: Nested mappings/);
    rejects(() => parseDefinitionText('name: x\nsteps:\n\tfoo: 1\n'), 'WEFT_PARSE', /^YAML error at line 3, column 1: Tabs are not allowed/);
    rejects(() => parseDefinitionText('name: x\nsteps:\n  a: {type: delay\n', 'yaml'), 'WEFT_PARSE', /^YAML error at line 4, column 1: Flow map/);
  });

  void it('reports malformed JSON with line and column', () => {
    rejects(() => parseDefinitionText('{\n  "name": "x",\n  "steps": }', 'json'), 'WEFT_PARSE', /^JSON error at line 3, column 12: unexpected '}'; expected a value$/);
    rejects(() => parseDefinitionText('{"a": 1,}', 'json'), 'WEFT_PARSE', /line 1, column 9: trailing comma/);
    rejects(() => parseDefinitionText('{"a": 1', 'json'), 'WEFT_PARSE', /line 1, column 8: unexpected end of text/);
    rejects(() => parseDefinitionText('{"a": 1e999}', 'json'), 'WEFT_PARSE', /out of range/);
    rejects(() => parseDefinitionText('{"a": "x\ny"}', 'json'), 'WEFT_PARSE', /unterminated string/);
    rejects(() => parseDefinitionText('{"a": 1} trailing', 'json'), 'WEFT_PARSE', /after the end of the document/);
  });

  void it('reports duplicate keys (YAML and JSON) with their position', () => {
    rejects(() => parseDefinitionText('name: x\nsteps:\n  a: { type: delay, ms: 1 }\n  a: { type: delay, ms: 2 }\n'), 'WEFT_PARSE', /line 4, column 3: duplicate key 'a'/);
    rejects(() => parseDefinitionText('{"name": "x", "steps": {"a": {}, "a": {}}}'), 'WEFT_PARSE', /line 1, column 34: duplicate key 'a'/, '/steps/a');
    rejects(() => parseDefinitionText('1: a\n"1": b\n'), 'WEFT_PARSE', /duplicate key '1'/, '/1'); // equal once keys are strings
  });

  void it('refuses a non-object top level', () => {
    rejects(() => parseDefinitionText('- a\n- b\n'), 'WEFT_PARSE', /must be an object .* not an array/);
    rejects(() => parseDefinitionText('[1, 2]', 'json'), 'WEFT_PARSE', /not an array/);
    rejects(() => parseDefinitionText('just a string'), 'WEFT_PARSE', /not a string/);
    rejects(() => parseDefinitionText('42', 'json'), 'WEFT_PARSE', /not a number/);
    rejects(() => parseDefinitionText(''), 'WEFT_PARSE', /empty/);
    rejects(() => parseDefinitionText('# only a comment\n'), 'WEFT_PARSE', /empty/);
    rejects(() => parseDefinitionText('   ', 'json'), 'WEFT_PARSE', /empty/);
  });

  void it('refuses YAML that JSON cannot represent', () => {
    rejects(() => parseDefinitionText('a: !!binary aGk='), 'WEFT_PARSE', /binary data is not a JSON value/, '/a');
    rejects(() => parseDefinitionText('a: !!set { x, y }'), 'WEFT_PARSE', /a set/, '/a');
    rejects(() => parseDefinitionText('a: !!timestamp 2020-01-01'), 'WEFT_PARSE', /a date/, '/a');
    rejects(() => parseDefinitionText('a: .inf'), 'WEFT_PARSE', /Infinity is not a JSON number/, '/a');
    rejects(() => parseDefinitionText('a: !custom x'), 'WEFT_PARSE', /unsupported tag '!custom'/);
    rejects(() => parseDefinitionText('? [a, b]\n: 1\n'), 'WEFT_PARSE', /keys must be strings/);
    rejects(() => parseDefinitionText('a: 1\n---\nb: 2\n'), 'WEFT_PARSE', /exactly one document/);
    rejects(() => parseDefinitionText('{"\\ud800": 1}', 'json'), 'WEFT_PARSE', /unpaired surrogate/);
  });
});

void describe('parseDefinitionText: hostile input', () => {
  void it('refuses a 5 MB definition before parsing', () => {
    const text = 'name: x\ndescription: "' + 'x'.repeat(5 * 1024 * 1024) + '"\n';
    const started = performance.now();
    rejects(() => parseDefinitionText(text), 'WEFT_TOO_LARGE', /5\.0 MiB; the limit is 1 MiB/);
    assert.ok(performance.now() - started < 500);
    // Counted in UTF-8 bytes, not characters: 600k three-byte characters are 1.8 MB.
    rejects(() => parseDefinitionText('name: ' + '€'.repeat(600_000)), 'WEFT_TOO_LARGE', /limit is 1 MiB/);
    assert.ok('name: x'.length < LIMITS.definitionBytes);
  });

  const deep = 100_000;
  const cases: [string, string, 'yaml' | 'json' | undefined][] = [
    ['JSON arrays', '{"a": ' + '['.repeat(deep) + ']'.repeat(deep) + '}', 'json'],
    ['JSON objects', '{"a":'.repeat(deep) + '1' + '}'.repeat(deep), 'json'],
    ['unterminated JSON arrays', '{"a": ' + '['.repeat(deep), undefined],
    ['YAML flow sequences', 'a: ' + '['.repeat(deep) + ']'.repeat(deep), 'yaml'],
    ['YAML flow mappings', 'a: ' + '{a: '.repeat(deep) + '1' + '}'.repeat(deep), 'yaml'],
    ['YAML compact block sequences', '- '.repeat(deep) + 'x\ny: 1\n', 'yaml'],
    ['YAML explicit keys', '? '.repeat(deep) + 'x\ny: 1\n', 'yaml'],
    ['unterminated YAML flow', 'a: ' + '['.repeat(deep), 'yaml'],
  ];
  for (const [label, text, format] of cases) {
    void it(`refuses ${deep.toLocaleString('en')}-deep ${label} with a WeftError, not a stack overflow`, () => {
      const started = performance.now();
      rejects(() => parseDefinitionText(text, format), 'WEFT_TOO_LARGE', /nested deeper than 64 levels/);
      assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    });
  }

  void it('refuses deep block nesting by indentation', () => {
    let text = '';
    for (let i = 0; i < 1000; i++) text += ' '.repeat(i) + 'k:\n';
    rejects(() => parseDefinitionText(text + ' '.repeat(1000) + 'v\n'), 'WEFT_TOO_LARGE', /nested deeper than 64 levels \(at line \d+, column \d+\)/);
  });

  void it('accepts exactly LIMITS.jsonDepth levels and refuses one more, with the path', () => {
    const nest = (n: number): string => '{"a": '.repeat(n - 1) + '[]' + '}'.repeat(n - 1);
    parseDefinitionText(nest(LIMITS.jsonDepth), 'json');
    const error = rejects(() => parseDefinitionText(nest(LIMITS.jsonDepth + 1), 'json'), 'WEFT_TOO_LARGE', /nested deeper than 64 levels/);
    assert.equal(error.problems[0]!.path, '/a'.repeat(LIMITS.jsonDepth));
    const yaml = (n: number): string => 'a: ' + '['.repeat(n - 1) + ']'.repeat(n - 1);
    parseDefinitionText(yaml(LIMITS.jsonDepth));
    rejects(() => parseDefinitionText(yaml(LIMITS.jsonDepth + 1)), 'WEFT_TOO_LARGE', /nested deeper than 64 levels/, '/a' + '/0'.repeat(LIMITS.jsonDepth - 1));
  });

  void it('refuses a YAML alias bomb', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    const started = performance.now();
    rejects(() => parseDefinitionText(lines.join('\n')), 'WEFT_TOO_LARGE', /alias/);
    assert.ok(performance.now() - started < 500);
  });

  void it('refuses a self-referencing alias', () => {
    rejects(() => parseDefinitionText('a: &a [1, *a]'), 'WEFT_TOO_LARGE', /nested deeper/);
  });
});

void describe('checkJsonDepth and toPlainJson', () => {
  void it('checks depth iteratively, with the path of the first container past the limit', () => {
    let value: unknown = 1;
    for (let i = 0; i < 100_000; i++) value = { k: [value] };
    const error = rejects(() => checkJsonDepth(value, 4, '/inputs'), 'WEFT_TOO_LARGE', /nested deeper than 4 levels/);
    assert.equal(error.problems[0]!.path, '/inputs/k/0/k/0');
    checkJsonDepth({ a: [{ b: [] }] }, 4);
    assert.equal(jsonDepthProblem('scalar', 1), undefined);
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    assert.equal(jsonDepthProblem(cyclic, 10)?.code, 'WEFT_TOO_LARGE');
  });

  void it('copies plain JSON and rejects what is not JSON', () => {
    const source = { a: [1, 'x', null, true, { b: undefined, c: 2 }] };
    const copy = toPlainJson(source, { maxDepth: 10 });
    assert.deepEqual(copy, { a: [1, 'x', null, true, { c: 2 }] });
    assert.notEqual((copy as { a: unknown }).a, source.a);
    rejects(() => toPlainJson({ f: () => 1 }, { maxDepth: 10 }), 'WEFT_SCHEMA', /function/, '/f');
    rejects(() => toPlainJson({ d: new Date(0) }, { maxDepth: 10 }), 'WEFT_SCHEMA', /date/, '/d');
    rejects(() => toPlainJson({ n: [NaN] }, { maxDepth: 10 }), 'WEFT_SCHEMA', /NaN/, '/n/0');
    rejects(() => toPlainJson({ m: new Map() }, { maxDepth: 10 }), 'WEFT_SCHEMA', /Map/, '/m');
    rejects(() => toPlainJson({ s: 'x'.repeat(100) }, { maxDepth: 10, maxStringBytes: 50 }), 'WEFT_TOO_LARGE', /larger than 50 bytes/);
  });
});
