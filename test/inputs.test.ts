import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileDefinition } from '../src/core/compiler.ts';
import type { CompiledWorkflow } from '../src/core/compiled.ts';
import { LIMITS } from '../src/core/definition-schema.ts';
import { DefinitionError } from '../src/core/errors.ts';
import type { ErrorCode, Problem } from '../src/core/errors.ts';
import { checkLaunchInputs, coerceInputPairs, inputsSchemaProblems } from '../src/core/inputs.ts';

const SCHEMA = {
  type: 'object',
  required: ['topic'],
  additionalProperties: false,
  properties: {
    topic: { type: 'string', minLength: 3 },
    audience: { type: 'string', default: 'developers' },
    count: { type: 'integer', minimum: 1, maximum: 10, default: 3 },
    ratio: { type: 'number' },
    draft: { type: 'boolean', default: false },
    tone: { enum: ['formal', 'casual'] },
    tags: { type: 'array', items: { type: 'string' }, default: [] },
    settings: {
      type: 'object',
      default: {},
      properties: {
        level: { type: 'integer', default: 1 },
        style: { type: 'object', properties: { font: { type: 'string', default: 'serif' } } },
      },
    },
    maybe: { type: ['integer', 'null'] },
    either: { type: ['integer', 'string'] },
    free: {},
  },
};

function workflow(inputs?: Record<string, unknown>): CompiledWorkflow {
  return compileDefinition({ name: 'inputs test', ...(inputs ? { inputs } : {}), steps: { a: { type: 'delay', ms: 1 } } });
}

function problemsOf(fn: () => unknown): Problem[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DefinitionError, String(error));
    return error.problems;
  }
  assert.fail('expected a DefinitionError');
}

function expectProblems(fn: () => unknown, expected: [ErrorCode, string, RegExp][]): void {
  const problems = problemsOf(fn);
  assert.deepEqual(problems.map((p) => [p.code, p.path]), expected.map(([c, p]) => [c, p]), JSON.stringify(problems, null, 2));
  problems.forEach((p, i) => assert.match(p.message, expected[i]![2]));
}

void describe('checkLaunchInputs', () => {
  const wf = workflow(SCHEMA);

  void it('applies defaults, at the top level and in nested objects, on a copy', () => {
    const given = { topic: 'durable execution', settings: { style: {} } };
    const result = checkLaunchInputs(wf, given);
    assert.deepEqual(result, {
      topic: 'durable execution',
      settings: { style: { font: 'serif' }, level: 1 },
      audience: 'developers',
      count: 3,
      draft: false,
      tags: [],
    });
    assert.deepEqual(given, { topic: 'durable execution', settings: { style: {} } }); // not mutated
    const again = checkLaunchInputs(wf, { topic: 'abc' });
    assert.deepEqual(again['settings'], { level: 1 }); // the default object is applied, then filled in
    assert.notEqual(again['tags'], result['tags']); // defaults are copied per launch
  });

  void it('keeps given values over defaults, including null and false', () => {
    const result = checkLaunchInputs(wf, { topic: 'abc', count: 7, draft: true, maybe: null });
    assert.equal(result['count'], 7);
    assert.equal(result['draft'], true);
    assert.equal(result['maybe'], null);
  });

  void it('reports a missing required property at its path', () => {
    expectProblems(() => checkLaunchInputs(wf, {}), [['WEFT_INVALID_INPUTS', '/topic', /missing required property 'topic'/]]);
    expectProblems(() => checkLaunchInputs(wf, undefined), [['WEFT_INVALID_INPUTS', '/topic', /missing required property 'topic'/]]);
  });

  void it('reports every wrong type and constraint, with paths', () => {
    expectProblems(() => checkLaunchInputs(wf, {
      topic: 'ab', count: 1.5, ratio: 'high', draft: 'yes', tone: 'formla', tags: ['a', 2],
      settings: { level: 'x', style: { font: 3 } }, maybe: 'x', extra: 1,
    }), [
      ['WEFT_INVALID_INPUTS', '/topic', /must be at least 3 characters long/],
      ['WEFT_INVALID_INPUTS', '/count', /expected an integer, got a number \(1\.5\)/],
      ['WEFT_INVALID_INPUTS', '/ratio', /expected a number, got a string/],
      ['WEFT_INVALID_INPUTS', '/draft', /expected a boolean, got a string/],
      ['WEFT_INVALID_INPUTS', '/tone', /must be one of 'formal' or 'casual' \(did you mean 'formal'\?\)/],
      ['WEFT_INVALID_INPUTS', '/tags/1', /expected a string, got an integer/],
      ['WEFT_INVALID_INPUTS', '/settings/level', /expected an integer, got a string/],
      ['WEFT_INVALID_INPUTS', '/settings/style/font', /expected a string, got an integer/],
      ['WEFT_INVALID_INPUTS', '/maybe', /expected an integer or null, got a string/],
      ['WEFT_INVALID_INPUTS', '/extra', /unknown property 'extra'/],
    ]);
    expectProblems(() => checkLaunchInputs(wf, { topic: 'abc', count: 11 }), [['WEFT_INVALID_INPUTS', '/count', /must be at most 10 \(got 11\)/]]);
  });

  void it('requires a JSON object', () => {
    for (const value of [null, [], 'topic', 5]) {
      expectProblems(() => checkLaunchInputs(wf, value), [['WEFT_INVALID_INPUTS', '', /inputs must be a JSON object/]]);
    }
    expectProblems(() => checkLaunchInputs(wf, { topic: 'abc', when: new Date(0) }), [['WEFT_INVALID_INPUTS', '/when', /not a JSON value/]]);
    expectProblems(() => checkLaunchInputs(wf, { topic: 'abc', n: NaN }), [['WEFT_INVALID_INPUTS', '/n', /not a JSON number/]]);
    expectProblems(() => checkLaunchInputs(wf, { topic: 'abc', f: () => 1 }), [['WEFT_INVALID_INPUTS', '/f', /function/]]);
  });

  void it('accepts any object when the workflow has no inputs schema', () => {
    const open = workflow();
    assert.deepEqual(checkLaunchInputs(open, undefined), {});
    assert.deepEqual(checkLaunchInputs(open, { anything: [1, { b: 'c' }] }), { anything: [1, { b: 'c' }] });
  });

  void it('reports an invalid default at launch, at its path', () => {
    const bad = workflow({ type: 'object', properties: { n: { type: 'integer', default: 'three' } } });
    expectProblems(() => checkLaunchInputs(bad, {}), [['WEFT_INVALID_INPUTS', '/n', /expected an integer, got a string/]]);
  });

  void it('follows local $refs', () => {
    const withRefs = workflow({ type: 'object', $defs: { name: { type: 'string', maxLength: 3 } }, properties: { a: { $ref: '#/$defs/name' } } });
    assert.deepEqual(checkLaunchInputs(withRefs, { a: 'abc' }), { a: 'abc' });
    expectProblems(() => checkLaunchInputs(withRefs, { a: 'abcd' }), [['WEFT_INVALID_INPUTS', '/a', /is too long: 4 characters \(the limit is 3\)/]]);
  });
});

void describe('checkLaunchInputs: hostile inputs', () => {
  const wf = workflow({ type: 'object', properties: { topic: { type: 'string' } } });

  void it('refuses 100,000-deep nesting with the path, without recursion', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    const problems = problemsOf(() => checkLaunchInputs(wf, { deep }));
    assert.equal(problems[0]!.code, 'WEFT_TOO_LARGE');
    assert.equal(problems[0]!.path, '/deep' + '/d'.repeat(LIMITS.jsonDepth - 1));
    assert.match(problems[0]!.message, /nested deeper than 64 levels/);
  });

  void it('refuses more than LIMITS.inputBytes, before serialising', () => {
    const huge = 'x'.repeat(LIMITS.inputBytes + 1);
    const started = performance.now();
    const problems = problemsOf(() => checkLaunchInputs(wf, { topic: huge }));
    assert.equal(problems[0]!.code, 'WEFT_TOO_LARGE');
    assert.ok(performance.now() - started < 200);
    // Many small values adding up.
    const many: Record<string, string> = {};
    for (let i = 0; i < 20_000; i++) many[`k${i}`] = 'v'.repeat(60);
    assert.equal(problemsOf(() => checkLaunchInputs(wf, many))[0]!.code, 'WEFT_TOO_LARGE');
    // Multi-byte characters count as their UTF-8 size.
    assert.equal(problemsOf(() => checkLaunchInputs(wf, { topic: '€'.repeat(400_000) }))[0]!.code, 'WEFT_TOO_LARGE');
  });

  void it('keeps __proto__ as data, never as a prototype', () => {
    const given = JSON.parse('{"topic": "x", "__proto__": {"polluted": true}}') as Record<string, unknown>;
    const result = checkLaunchInputs(wf, given);
    assert.equal(Object.getPrototypeOf(result), Object.prototype);
    assert.ok(Object.hasOwn(result, '__proto__'));
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});

void describe('coerceInputPairs', () => {
  const table: [string, string, unknown][] = [
    ['topic', 'durable execution', 'durable execution'],
    ['count', '5', 5],
    ['count', '-2', -2],
    ['ratio', '0.25', 0.25],
    ['ratio', '3', 3],
    ['draft', 'true', true],
    ['draft', 'false', false],
    ['tags', '["a","b"]', ['a', 'b']],
    ['settings', '{"level": 2}', { level: 2 }],
    ['maybe', 'null', null],
    ['maybe', '7', 7],
    ['either', '12', 12],
    ['either', 'twelve', 'twelve'],
    ['tone', 'formal', 'formal'], // enum without a type: as is
    ['free', '{"not": "parsed"}', '{"not": "parsed"}'], // no type: string
    ['unknown', '42', '42'], // not in the schema: string
    ['topic', '', ''],
    ['topic', '123', '123'], // a string property stays a string
  ];
  for (const [key, raw, expected] of table) {
    void it(`${key}=${raw} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(coerceInputPairs(SCHEMA, [[key, raw]]), { [key]: expected });
    });
  }

  void it('treats everything as a string without a schema', () => {
    assert.deepEqual(coerceInputPairs(undefined, [['a', '1'], ['b', 'true']]), { a: '1', b: 'true' });
  });

  void it('sets nested objects for dotted keys, coerced by the nested schema', () => {
    assert.deepEqual(coerceInputPairs(SCHEMA, [['settings.level', '4'], ['settings.style.font', 'mono'], ['x.y', '1']]), {
      settings: { level: 4, style: { font: 'mono' } },
      x: { y: '1' },
    });
    assert.deepEqual(coerceInputPairs(SCHEMA, [['settings', '{"level": 2}'], ['settings.extra', 'e']]), { settings: { level: 2, extra: 'e' } });
  });

  void it('lets a later pair win', () => {
    assert.deepEqual(coerceInputPairs(SCHEMA, [['count', '1'], ['count', '2']]), { count: 2 });
  });

  void it('reports every bad value with its path', () => {
    expectProblems(() => coerceInputPairs(SCHEMA, [
      ['count', 'five'], ['count', '1.5'], ['draft', 'yes'], ['tags', 'a,b'], ['settings.level', 'x'], ['maybe', 'x'], ['ratio', 'NaN'],
    ]), [
      ['WEFT_INVALID_INPUTS', '/count', /--input count: expected an integer, got 'five'/],
      ['WEFT_INVALID_INPUTS', '/count', /expected an integer, got '1\.5'/],
      ['WEFT_INVALID_INPUTS', '/draft', /expected a boolean, got 'yes'/],
      ['WEFT_INVALID_INPUTS', '/tags', /expected an array, got 'a,b' \(give it as JSON\)/],
      ['WEFT_INVALID_INPUTS', '/settings/level', /expected an integer, got 'x'/],
      ['WEFT_INVALID_INPUTS', '/maybe', /expected an integer or null, got 'x'/],
      ['WEFT_INVALID_INPUTS', '/ratio', /expected a number, got 'NaN'/],
    ]);
  });

  void it('refuses impossible keys', () => {
    expectProblems(() => coerceInputPairs(SCHEMA, [['topic', 'x'], ['topic.sub', 'y']]), [['WEFT_INVALID_INPUTS', '/topic/sub', /'topic' is already set to a non-object value/]]);
    expectProblems(() => coerceInputPairs(SCHEMA, [['a..b', '1'], ['.a', '1'], ['__proto__.polluted', '1']]), [
      ['WEFT_INVALID_INPUTS', '/a//b', /not a valid input name/],
      ['WEFT_INVALID_INPUTS', '//a', /not a valid input name/],
      ['WEFT_INVALID_INPUTS', '/__proto__/polluted', /not a valid input name/],
    ]);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  void it('does not trust the schema: garbage or prototype names are ignored', () => {
    assert.deepEqual(coerceInputPairs({ properties: 5 } as unknown as Record<string, unknown>, [['a', '1']]), { a: '1' });
    assert.deepEqual(coerceInputPairs({ properties: {} }, [['constructor', '1'], ['toString.x', '2']]), { constructor: '1', toString: { x: '2' } });
  });

  void it('feeds checkLaunchInputs', () => {
    const wf = workflow(SCHEMA);
    const inputs = checkLaunchInputs(wf, coerceInputPairs(SCHEMA, [['topic', 'durable'], ['count', '4'], ['settings.level', '2']]));
    assert.equal(inputs['count'], 4);
    assert.deepEqual(inputs['settings'], { level: 2 });
  });
});

void describe('inputsSchemaProblems', () => {
  void it('accepts ordinary launch-form schemas', () => {
    assert.deepEqual(inputsSchemaProblems(SCHEMA), []);
    assert.deepEqual(inputsSchemaProblems({ properties: { a: { type: 'string', format: 'email', pattern: '^\\S+$' } } }), []);
    for (const pattern of ['^(ab)+$', '^([a-z]+\\.)?[a-z]+$', '^[(+]*x{2}$', '^\\(a+\\)+$']) {
      assert.deepEqual(inputsSchemaProblems({ properties: { a: { type: 'string', pattern } } }), [], pattern);
    }
    assert.match(inputsSchemaProblems({ properties: { a: { type: 'string', pattern: '^(a|b+)+$' } } })[0]!.message, /catastrophic backtracking/);
  });

  void it('reports malformed keywords at their path', () => {
    const problems = inputsSchemaProblems({
      type: 'object',
      required: 'topic',
      properties: { a: { type: 'text' }, b: { minLength: -1 }, c: { items: 5 }, d: { $dynamicRef: '#x' }, e: { type: 'string', pattern: '^(\\w+\\s?)*$' } },
      patternProperties: { '(': {} },
    });
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      '/inputs/patternProperties/(',
      '/inputs/properties/a/type',
      '/inputs/properties/b/minLength',
      '/inputs/properties/c/items',
      '/inputs/properties/d/$dynamicRef',
      '/inputs/properties/e/pattern',
      '/inputs/required',
    ]);
    assert.ok(problems.every((p) => p.code === 'WEFT_SCHEMA'));
  });

  void it('refuses recursion and exponential expansion through $ref', () => {
    assert.match(inputsSchemaProblems({ type: 'object', properties: { a: { $ref: '#/properties/b' }, b: { allOf: [{ $ref: '#/properties/a' }] } } })[0]!.message, /recursive/);
    assert.match(inputsSchemaProblems({ type: 'object', properties: { child: { $ref: '#' } } })[0]!.message, /recursive/);
  });
});
