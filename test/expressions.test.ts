import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_LIMITS,
  JSONATA_BUILTINS,
  bindingVariables,
  checkExpression,
  checkTemplate,
  compileExpression,
  evaluateExpression,
  freeVariables,
  parseTemplate,
  renderTemplate,
  renderTemplates,
  resolveBindings,
  templateVariables,
  templatesVariables,
} from '../src/core/expressions.ts';
import { WeftError } from '../src/core/errors.ts';
import { LIMITS } from '../src/core/definition-schema.ts';

const scope = {
  input: { topic: 'durable execution', count: 3, tags: ['a', 'b'], items: [{ p: 3, k: 'a' }, { p: 12, k: 'b' }, { p: 5, k: 'a' }] },
  context: { runId: 'r1' },
  article: { text: 'Hello world', words: 2 },
  outline: { sections: ['intro', 'body', 'end'], text: 'An outline' },
  review: { score: 5, notes: null },
};

/** Assert that `promise` rejects with a WeftError of `code` (and optionally a message matching `re`). */
async function rejectsWith(promise: Promise<unknown>, code: string, re?: RegExp): Promise<WeftError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof WeftError, `expected WeftError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.retryable, false);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected ${code}`);
}

function throwsWith(fn: () => unknown, code: string, re?: RegExp): WeftError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof WeftError, `expected WeftError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected ${code}`);
}

void describe('evaluateExpression: bindings and guards', () => {
  void it('reads prior step outputs and inputs through $variables', async () => {
    assert.equal(await evaluateExpression('$article.text', scope), 'Hello world');
    assert.equal(await evaluateExpression('$input.topic', scope), 'durable execution');
    assert.equal(await evaluateExpression('$outline.sections[0] & " / " & $input.topic', scope), 'intro / durable execution');
    assert.equal(await evaluateExpression('$context.runId', scope), 'r1');
  });

  void it('uses the scope as the input document too ($, $$ and bare names)', async () => {
    assert.equal(await evaluateExpression('$.input.topic', scope), 'durable execution');
    assert.equal(await evaluateExpression('$$.article.words', scope), 2);
    assert.equal(await evaluateExpression('review.score', scope), 5);
    assert.deepEqual(await evaluateExpression('$keys($)', scope), ['input', 'context', 'article', 'outline', 'review']);
  });

  void it('evaluates guards', async () => {
    assert.equal(await evaluateExpression('$review.score < 7', scope), true);
    assert.equal(await evaluateExpression('$review.score >= 7', scope), false);
    assert.equal(await evaluateExpression('$review.score < 7 and $exists($article.text)', scope), true);
    assert.equal(await evaluateExpression('$count($input.tags) = 2 ? "two" : "other"', scope), 'two');
  });

  void it('returns undefined for missing values and null for JSON null', async () => {
    assert.equal(await evaluateExpression('$nope', scope), undefined);
    assert.equal(await evaluateExpression('$article.missing.deeper', scope), undefined);
    assert.equal(await evaluateExpression('$review.notes', scope), null);
  });

  void it('returns plain JSON: sequences become arrays, objects get Object.prototype', async () => {
    const seq = await evaluateExpression('$input.items.p', scope);
    assert.deepEqual(seq, [3, 12, 5]);
    assert.ok(Array.isArray(seq));
    assert.equal(Object.getPrototypeOf(seq), Array.prototype);
    assert.deepEqual(Object.keys(seq as object), ['0', '1', '2']); // no `sequence` flag left on it
    const obj = await evaluateExpression('{"a": $input.count, "b": [1, 2], "c": {"d": true}}', scope);
    assert.deepEqual(obj, { a: 3, b: [1, 2], c: { d: true } });
    assert.equal(Object.getPrototypeOf(obj), Object.prototype);
    assert.equal(Object.getPrototypeOf((obj as { c: object }).c), Object.prototype);
  });

  void it('returns a copy, not the caller objects', async () => {
    const result = (await evaluateExpression('$article', scope)) as Record<string, unknown>;
    assert.deepEqual(result, scope.article);
    assert.notEqual(result, scope.article);
  });

  void it('supports the usual JSONata toolkit', async () => {
    const cases: [string, unknown][] = [
      ['$sum($input.items.p)', 20],
      ['$input.items[p > 4].k', ['b', 'a']],
      ['$input.items^(>p).p', [12, 5, 3]],
      ['$input.items{k: $sum(p)}', { a: 8, b: 12 }],
      ['$input.items#$i[$i > 0].p', [12, 5]],
      ['$input.items@$it.($it.p * 2)', [6, 24, 10]],
      ['$map([1, 2, 3], function($v, $i) { $v * $i })', [0, 2, 6]],
      ['$reduce([1, 2, 3], function($a, $b) { $a + $b })', 6],
      ['$filter([1, 2, 3], function($v) { $v > 1 })', [2, 3]],
      ['($f := function($n) { $n <= 1 ? 1 : $n * $f($n - 1) }; $f(5))', 120],
      ['$input.tags ~> $join("+")', 'a+b'],
      ['[1..5]', [1, 2, 3, 4, 5]],
      ['[3..1]', []],
      ['$count([1..1000])', 1000],
      ['[0..2].($ * 10)', [0, 10, 20]],
      ['$pad("ab", 5, "-") & $pad("ab", -5, "#")', 'ab---###ab'],
      ['$string({"a": [1, 2]})', '{"a":[1,2]}'],
      ['$string({"a": 1}, true)', '{\n  "a": 1\n}'],
      ['$distinct([1, 2, 1, "1", {"a": 1, "b": 2}, {"b": 2, "a": 1}, [1], [1]])', [1, 2, '1', { a: 1, b: 2 }, [1]]],
      ['$sort(["b", "c", "a"])', ['a', 'b', 'c']],
      ['$sort([3, 1, 2], function($a, $b) { $a < $b })', [3, 2, 1]],
      ['$match("abcabc", /b/).index', [1, 4]],
      ['$count($match("abcabc", /b/, 1))', 1],
      ['$replace("abc", /b/, "[$0]")', 'a[b]c'],
      ['$split("a1b2c", /[0-9]/)', ['a', 'b', 'c']],
      ['$split("a,b,c", ",", 2)', ['a', 'b']],
      ['$contains("abc", /B/i)', true],
      ['$input ~> | items | {"q": p * 2} | ~> $lookup("items")', [
        { p: 3, k: 'a', q: 6 }, { p: 12, k: 'b', q: 24 }, { p: 5, k: 'a', q: 10 },
      ]],
      ['$clone({"a": [1]})', { a: [1] }],
      ['"a" & 1 & true & null & [1] & {"x": 1}', 'a1truenull[1]{"x":1}'],
      ['$formatInteger(12, "w")', 'twelve'],
    ];
    for (const [src, expected] of cases) {
      assert.deepEqual(await evaluateExpression(src, scope), expected, src);
    }
  });

  void it('preserves order in array and object constructors', async () => {
    const src = '[' + Array.from({ length: 50 }, (_, i) => `$input.count + ${i}`).join(', ') + ']';
    assert.deepEqual(await evaluateExpression(src, scope), Array.from({ length: 50 }, (_, i) => 3 + i));
    const items = Array.from({ length: 500 }, (_, i) => ({ k: `k${i}`, v: i }));
    const grouped = (await evaluateExpression('$input.items{ k: $sum(v) }', { input: { items } })) as Record<string, number>;
    assert.equal(Object.keys(grouped).length, 500);
    assert.equal(grouped.k499, 499);
  });

  void it('reports runtime errors as WEFT_EXPRESSION_ERROR with the JSONata code and position', async () => {
    await rejectsWith(evaluateExpression('$error("boom")', scope), 'WEFT_EXPRESSION_ERROR', /D3137 at position \d+: boom/);
    await rejectsWith(evaluateExpression('1 + "a"', scope), 'WEFT_EXPRESSION_ERROR', /T2002 at position 3/);
    await rejectsWith(evaluateExpression('[1.5..3]', scope), 'WEFT_EXPRESSION_ERROR', /T2003/);
    await rejectsWith(evaluateExpression('$sort([1, "a"])', scope), 'WEFT_EXPRESSION_ERROR', /D3070/);
  });

  void it('refuses to return functions', async () => {
    await rejectsWith(evaluateExpression('function($x) { $x }', scope), 'WEFT_EXPRESSION_ERROR', /function/);
    await rejectsWith(evaluateExpression('{"f": $uppercase}', scope), 'WEFT_EXPRESSION_ERROR', /function/);
    await rejectsWith(evaluateExpression('/abc/', scope), 'WEFT_EXPRESSION_ERROR', /function/);
  });

  void it('honours per-call limits and rejects invalid ones', async () => {
    await rejectsWith(evaluateExpression('$string([1..100])', scope, { maxResultBytes: 100 }), 'WEFT_EXPRESSION_LIMIT');
    assert.equal(await evaluateExpression('$count([1..100])', scope, { maxResultBytes: 2000 }), 100);
    await rejectsWith(evaluateExpression('[[[[1]]]]', scope, { maxDepth: 3 }), 'WEFT_EXPRESSION_LIMIT', /nested/);
    await rejectsWith(evaluateExpression('1', scope, { timeoutMs: -1 }), 'WEFT_INTERNAL');
    assert.deepEqual(DEFAULT_LIMITS, { timeoutMs: 250, maxDepth: 300, maxResultBytes: 8 * 1024 * 1024 });
  });
});

void describe('compileExpression / checkExpression', () => {
  void it('caches compiled expressions by source', () => {
    const a = compileExpression('$input.topic & "!"');
    const b = compileExpression('$input.topic & "!"');
    assert.equal(a, b);
    assert.notEqual(a, compileExpression('$input.topic & "?"'));
    assert.equal(a.source, '$input.topic & "!"');
    assert.deepEqual(a.variables, ['input']);
  });

  void it('reports syntax errors with the position and JSONata message', () => {
    const err = throwsWith(() => compileExpression('$a +'), 'WEFT_EXPRESSION_SYNTAX', /position 4/);
    assert.match(err.message, /Unexpected end of expression/);
    assert.equal(err.details?.position, 4);
    throwsWith(() => checkExpression('$f('), 'WEFT_EXPRESSION_SYNTAX', /position 3.*Expected "\)"/);
    throwsWith(() => checkExpression('"abc'), 'WEFT_EXPRESSION_SYNTAX', /String literal must be terminated/);
    throwsWith(() => checkExpression(''), 'WEFT_EXPRESSION_SYNTAX');
    throwsWith(() => checkExpression('{ {} }'), 'WEFT_EXPRESSION_SYNTAX', /position 6/);
  });

  void it('rejects expressions longer than LIMITS.expressionLength', () => {
    const long = '"' + 'x'.repeat(LIMITS.expressionLength) + '"';
    throwsWith(() => checkExpression(long), 'WEFT_EXPRESSION_LIMIT', /characters long/);
    checkExpression('"' + 'x'.repeat(LIMITS.expressionLength - 2) + '"');
  });

  void it('evaluates a syntax error as the same syntax error', async () => {
    await rejectsWith(evaluateExpression('$a +', scope), 'WEFT_EXPRESSION_SYNTAX');
  });
});

void describe('freeVariables', () => {
  const cases: [string, string[]][] = [
    ['$article.text & $input.x', ['article', 'input']],
    ['$input.x & $input.y', ['input']],
    ['$review.score < 7', ['review']],
    ['$sum($xs) + $count($ys)', ['xs', 'ys']],
    ['$foo($x)', ['foo', 'x']],
    ['$a[$b > 1]', ['a', 'b']],
    ['$a[p > 1].q', ['a']],
    ['($x := 1; $x + $y)', ['y']],
    ['($v := $v + 1; $v)', ['v']],
    ['($x := 1; ($y := $x; $y + $z); $y)', ['y', 'z']],
    ['function($v, $i) { $v + $i + $z }', ['z']],
    ['$map($arr, function($v) { $v * $k })', ['arr', 'k']],
    ['($f := function($n) { $n = 0 ? 1 : $n * $f($n - 1) }; $f($input.n))', ['input']],
    ['($f := function() { $g() }; $g := function() { 1 }; $f())', ['g']],
    ['items@$i.x{$i.k: $j}', ['items', 'j']],
    ['$input.items#$i[$i > $m].name', ['input', 'm']],
    ['$$', []],
    ['$', []],
    ['$$.a.b', ['a']],
    ['$.a', ['a']],
    ['a.b.c', ['a']],
    ['$x ~> $uppercase', ['x']],
    ['$x ~> $substring(0, $n)', ['n', 'x']],
    ['$substring(?, 0, $n)', ['n']],
    ['$map(xs, $string)', ['string', 'xs']],
    ['$sum.x', ['sum']],
    ['$input ~> | a[$z] | {"b": $c} |', ['c', 'input', 'z']],
    ['$input.items^($d)', ['d', 'input']],
    ['{"k": $v, $w: 1}', ['v', 'w']],
    ['cond ? $t : $e', ['cond', 'e', 't']],
    ['[1..$n]', ['n']],
    ['$eval("1")', []],
    ['$now() & $millis()', []],
  ];
  for (const [src, expected] of cases) {
    void it(src, () => {
      assert.deepEqual(freeVariables(src), expected);
    });
  }

  void it('throws like compileExpression', () => {
    throwsWith(() => freeVariables('$a +'), 'WEFT_EXPRESSION_SYNTAX');
  });

  void it('knows the built-in function names', () => {
    for (const name of ['sum', 'map', 'string', 'eval', 'now']) assert.ok(JSONATA_BUILTINS.has(name), name);
    assert.ok(!JSONATA_BUILTINS.has('input'));
  });
});

void describe('templates', () => {
  void it('parses text and interpolations with offsets', () => {
    assert.deepEqual(parseTemplate('Write about {{ $input.topic }} from {{$outline.text}}'), [
      { kind: 'text', text: 'Write about ' },
      { kind: 'expr', src: '$input.topic', offset: 15 },
      { kind: 'text', text: ' from ' },
      { kind: 'expr', src: '$outline.text', offset: 38 },
    ]);
    assert.deepEqual(parseTemplate('plain'), [{ kind: 'text', text: 'plain' }]);
    assert.deepEqual(parseTemplate(''), []);
    // Braces of object constructors and strings do not close the interpolation.
    assert.deepEqual(parseTemplate('{{ {"a": {"b": "}}"}} }}!'), [
      { kind: 'expr', src: '{"a": {"b": "}}"}}', offset: 3 },
      { kind: 'text', text: '!' },
    ]);
    assert.deepEqual(parseTemplate('a }} b'), [{ kind: 'text', text: 'a }} b' }]);
  });

  void it('rejects unclosed and empty interpolations', () => {
    throwsWith(() => parseTemplate('Hello {{ $input.name'), 'WEFT_EXPRESSION_SYNTAX', /unclosed.*offset 6/);
    throwsWith(() => parseTemplate('Hello {{ }}'), 'WEFT_EXPRESSION_SYNTAX', /empty.*offset 6/);
    throwsWith(() => parseTemplate('{{}}'), 'WEFT_EXPRESSION_SYNTAX', /empty/);
  });

  void it('checkTemplate names the offset of a bad interpolation', () => {
    checkTemplate('ok {{ $a }} and {{ $b.c }}');
    const err = throwsWith(() => checkTemplate('ok {{ $a }} and {{ $b + }}'), 'WEFT_EXPRESSION_SYNTAX', /offset 19/);
    assert.match(err.message, /template position \d+/);
    assert.equal(err.details?.offset, 19);
  });

  void it('renders mixed text, with missing values as empty strings', async () => {
    assert.equal(
      await renderTemplate('Write about {{ $input.topic }} from {{ $outline.text }}', scope),
      'Write about durable execution from An outline',
    );
    assert.equal(await renderTemplate('[{{ $nope }}]', scope), '[]');
    assert.equal(await renderTemplate('n={{ $input.count }} t={{ $input.tags }} o={{ $review }} z={{ $review.notes }}', scope),
      'n=3 t=["a","b"] o={"score":5,"notes":null} z=null');
    assert.equal(await renderTemplate('no interpolation', scope), 'no interpolation');
  });

  void it('returns the raw value for a template that is exactly one interpolation', async () => {
    assert.deepEqual(await renderTemplate('{{ $input.tags }}', scope), ['a', 'b']);
    assert.equal(await renderTemplate('  {{ $input.count }}\n', scope), 3);
    assert.deepEqual(await renderTemplate('{{ $review }}', scope), { score: 5, notes: null });
    assert.equal(await renderTemplate('{{ $nope }}', scope), undefined);
    assert.equal(await renderTemplate('x{{ $input.count }}', scope), 'x3');
  });

  void it('templateVariables is the union over interpolations', () => {
    assert.deepEqual(templateVariables('{{ $b.x }} and {{ $a }} and {{ $b.y }}'), ['a', 'b']);
    assert.deepEqual(templateVariables('no vars'), []);
  });

  void it('reports runtime errors with the interpolation offset', async () => {
    await rejectsWith(renderTemplate('x {{ $error("bad") }}', scope), 'WEFT_EXPRESSION_ERROR', /offset 5.*bad/);
  });
});

void describe('resolveBindings / renderTemplates', () => {
  void it('resolveBindings evaluates every string and keeps the structure', async () => {
    // As parsed from a definition: JSON.parse makes "__proto__" an own key.
    const value: unknown = JSON.parse(`{
      "topic": "$input.topic",
      "nested": { "first": "$outline.sections[0]", "list": ["$input.count * 2", 42, true, null, { "deep": "$article.words" }] },
      "missing": "$nope",
      "keep": 7,
      "__proto__": "$input.count"
    }`);
    const out = (await resolveBindings(value, scope)) as Record<string, unknown>;
    assert.deepEqual(out, {
      topic: 'durable execution',
      nested: { first: 'intro', list: [6, 42, true, null, { deep: 2 }] },
      missing: undefined,
      keep: 7,
      ['__proto__']: 3,
    });
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.ok(Object.prototype.hasOwnProperty.call(out, '__proto__'));
    assert.equal(await resolveBindings('$input.count', scope), 3);
    assert.equal(await resolveBindings(12, scope), 12);
  });

  void it('resolveBindings reports a syntax error before evaluating anything', async () => {
    await rejectsWith(resolveBindings({ a: '$input.count', b: '$a +' }, scope), 'WEFT_EXPRESSION_SYNTAX');
  });

  void it('renderTemplates renders every string and keeps the structure', async () => {
    const out = await renderTemplates({
      prompt: 'About {{ $input.topic }}',
      raw: '{{ $input.tags }}',
      list: ['plain', 'n={{ $input.count }}', 5],
    }, scope);
    assert.deepEqual(out, { prompt: 'About durable execution', raw: ['a', 'b'], list: ['plain', 'n=3', 5] });
  });

  void it('bindingVariables and templatesVariables collect the free variables of a whole value', () => {
    assert.deepEqual(bindingVariables({ a: '$x.y', b: ['$z', 1, { c: '$x & $w' }] }), ['w', 'x', 'z']);
    assert.deepEqual(templatesVariables({ a: 'Hi {{ $x.y }}', b: ['{{ $z }}', 'plain', 2] }), ['x', 'z']);
    assert.deepEqual(bindingVariables(42), []);
  });
});

void describe('scope handling', () => {
  void it('does not mutate the scope (group-by on empty arrays, transforms on copies)', async () => {
    const data = { input: { xs: [] as unknown[], nested: [[]] as unknown[][], obj: { a: 1 } } };
    const snapshot = structuredClone(data);
    assert.deepEqual(await evaluateExpression('$input.xs{"a": 1}', data), { a: 1 });
    assert.deepEqual(await evaluateExpression('$input.nested.{"a": 1}', data), { a: 1 });
    assert.deepEqual(await evaluateExpression('$input.xs{k: v}', data), {});
    assert.deepEqual(await evaluateExpression('$input.obj ~> | $ | {"b": 2} |', data), { a: 1, b: 2 });
    assert.deepEqual(data, snapshot);
  });
});
