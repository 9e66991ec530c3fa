/**
 * Hostile expressions: each payload has an exact expected outcome — a value that proves nothing
 * escaped, or a specific error code — and must complete promptly.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkExpression,
  compileExpression,
  evaluateExpression,
  renderTemplate,
  resolveBindings,
} from '../src/core/expressions.ts';
import { WeftError } from '../src/core/errors.ts';

/** Generous: the default budget is 250 ms; this only proves every payload terminates. */
const PROMPT_MS = 5000;

const protoNamesBefore = Object.getOwnPropertyNames(Object.prototype).sort();
const arrayProtoNamesBefore = Object.getOwnPropertyNames(Array.prototype).sort();

function makeScope(): Record<string, unknown> {
  return {
    input: { topic: 'durable', x: 1, list: [1, 2, 3], empty: [] as unknown[], emptyInside: [[]] as unknown[][], nested: { deep: { v: 'ok' } } },
    context: { tenant: 't1' },
    article: { text: 'Hello' },
  };
}

type Expected = { value: unknown } | { code: string; match?: RegExp };

interface Case {
  name: string;
  src: string;
  expect: Expected;
  template?: boolean;
}

const chain = (n: number): string => Array.from({ length: n }, () => '1').join('+');

const cases: Case[] = [
  // --- prototype and host object access ---------------------------------------------------
  { name: 'constructor via path', src: '$input.constructor', expect: { value: undefined } },
  { name: '__proto__ via path', src: '$input.__proto__', expect: { value: undefined } },
  { name: 'constructor via $lookup', src: '$lookup($input, "constructor")', expect: { value: undefined } },
  { name: '__proto__ via $lookup', src: '$lookup($input, "__proto__")', expect: { value: undefined } },
  { name: 'Function constructor chain', src: '$input.constructor.constructor("return process")()', expect: { value: undefined } },
  { name: 'constructor of a string', src: '"abc".constructor', expect: { value: undefined } },
  { name: 'hasOwnProperty', src: '$input.hasOwnProperty', expect: { value: undefined } },
  { name: 'toString call', src: '$input.toString()', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /T1006/ } },
  { name: 'this', src: 'this', expect: { value: undefined } },
  { name: 'process', src: 'process', expect: { value: undefined } },
  { name: 'process.env', src: 'process.env', expect: { value: undefined } },
  { name: 'globalThis', src: 'globalThis', expect: { value: undefined } },
  { name: '$process', src: '$process', expect: { value: undefined } },
  { name: '$globalThis', src: '$globalThis', expect: { value: undefined } },
  { name: 'require', src: 'require', expect: { value: undefined } },
  { name: 'require("child_process")', src: 'require("child_process")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /T1006/ } },
  { name: '$require("fs")', src: '$require("fs")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /T1006/ } },
  { name: 'calling a data object', src: '$input()', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /T1006/ } },
  { name: 'calling null', src: '($n := null; $n())', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /T1006/ } },
  { name: '$keys of a function', src: '$keys($string)', expect: { value: undefined } },
  { name: '$type of the root', src: '$type($)', expect: { value: 'object' } },

  // --- template-literal and unicode-escape tricks -------------------------------------------
  { name: '${} in a string literal', src: '"${process}"', expect: { value: '${process}' } },
  { name: '${} in a backtick name', src: '`${process}`', expect: { value: undefined } },
  { name: 'backtick constructor', src: '$input.`constructor`', expect: { value: undefined } },
  { name: 'unicode-escaped constructor literal', src: '"\\u0063onstructor"', expect: { value: 'constructor' } },
  { name: 'unicode-escaped constructor step', src: '$input."\\u0063onstructor"', expect: { value: undefined } },
  { name: 'unicode-escaped __proto__ lookup', src: '$lookup($, "__pro\\u0074o__")', expect: { value: undefined } },
  { name: 'template: ${} outside and inside', src: '`${process}` {{ "${process}" }}', template: true, expect: { value: '`${process}` ${process}' } },
  { name: 'template: {{ {{ }} }} nesting', src: '{{ {{ }} }}', template: true, expect: { code: 'WEFT_EXPRESSION_SYNTAX' } },
  { name: 'template: {{ }} inside a string', src: '{{ "{{ $process }}" }}', template: true, expect: { value: '{{ $process }}' } },
  { name: 'template: unclosed', src: 'x {{ $input', template: true, expect: { code: 'WEFT_EXPRESSION_SYNTAX', match: /offset 2/ } },

  // --- $eval ----------------------------------------------------------------------------------
  { name: '$eval', src: '$eval("1 + 1")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval reaching for process', src: '$eval("$process")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval through a variable', src: '($e := $eval; $e("1"))', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval through a partial', src: '$eval(?)("1")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval through ~>', src: '"1" ~> $eval', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval through $map', src: '$map(["1"], $eval)', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /\$eval is disabled/ } },
  { name: '$eval as a value', src: '$eval', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /function/ } },

  // --- time and depth ---------------------------------------------------------------------------
  { name: 'deep recursion', src: '($f := function($n){ 1 + $f($n + 1) }; $f(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nested deeper/ } },
  { name: 'tail-call trampoline (no depth growth)', src: '($f := function($n){ $f($n + 1) }; $f(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /250 ms/ } },
  { name: 'mutual trampoline', src: '($a := function($n){ $b($n) }; $b := function($n){ $a($n + 1) }; $a(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'recursion through $map', src: '($f := function($n){ $map([1], function($v){ $f($n + $v) }) }; $f(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'recursion inside array constructors', src: '($f := function($n){ [$f($n), $f($n)] }; $f(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nested deeper/ } },
  { name: 'shadowing plausible budget names', src: '($budget := {}; $deadline := 1e15; $depth := 0; $timeout := 0; $f := function($n){ $f($n) }; $f(0))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /250 ms/ } },
  { name: 'busy nested loops', src: '$sum($map([1..100000], function($v){ $sum($map([1..100], function($w){ $w * $v })) }))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'slow regex loop', src: '$count($match($pad("", 1000000), / /))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'comparator recursion in $sort', src: '($f := function($n){ 1 + $f($n) }; $sort([2, 1], function($a, $b){ $f(0) }))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },

  // --- allocation -------------------------------------------------------------------------------
  { name: '$map over [1..10000000]', src: '$map([1..10000000], function($v){ $v })', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /range/ } },
  { name: 'range of 1e7', src: '[1..10000000]', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /range/ } },
  { name: 'range of 1e12', src: '$count([1..1000000000000])', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /range/ } },
  { name: 'many ranges in parallel branches', src: '[' + Array.from({ length: 200 }, () => '[1..100000]').join(',') + ']', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'string doubling', src: '$reduce([1..64], function($a, $i){ $a & $a }, "xy")', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /string longer/ } },
  { name: 'string doubling by recursion', src: '($f := function($s){ $f($s & $s) }; $f("x"))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /string longer/ } },
  { name: 'array doubling', src: '$reduce([1..64], function($a, $i){ $append($a, $a) }, [1])', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'object DAG bomb', src: '$reduce([1..64], function($a, $i){ {"l": $a, "r": $a} }, 1)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /larger than/ } },
  { name: 'array DAG bomb', src: '$reduce([1..64], function($a, $i){ [[$a], [$a]] }, [1])', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: '$string of a DAG bomb', src: '($b := $reduce([1..30], function($a, $i){ {"l": $a, "r": $a} }, 1); $string($b))', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: 'deeply nested value', src: '$reduce([1..1000], function($a, $i){ {"x": $a} }, 1)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nested deeper/ } },
  { name: 'huge $pad', src: '$pad("", 1000000000)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /\$pad/ } },
  { name: 'huge negative $pad with a long pad string', src: '$pad("", -500000000, "abcdef")', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /\$pad/ } },
  { name: 'infinite $pad (literal)', src: '$pad("", 1e400)', expect: { code: 'WEFT_EXPRESSION_SYNTAX', match: /S0102/ } },
  { name: 'infinite $pad (computed)', src: '$pad("", $power(10, 400))', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /D3061/ } },
  { name: '$pad in a loop', src: '$map([1..1000], function($v){ $pad("", 1000000) })', expect: { code: 'WEFT_EXPRESSION_LIMIT' } },
  { name: '$join of a huge separator', src: '$join($map([1..1000], function($v){ "" }), $pad("", 1000000))', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /\$join/ } },
  { name: '$split into characters', src: '$split($pad("", 5000000), "")', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /\$split/ } },
  { name: '$formatBase stays small', src: '$length($formatBase(1e300, 2))', expect: { value: 997 } },
  { name: 'pretty $string of a wide deep value', src: '$string($reduce([1..250], function($a, $i){ {"a": $a, "b": [1..200]} }, 1), true)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /\$string/ } },
  // 50,000² comparisons would take seconds; linear/n·log n versions take a few milliseconds.
  { name: '$distinct is not quadratic', src: '$count($distinct([1..50000]))', expect: { value: 50000 } },
  { name: '$sort is not quadratic', src: '$sort($reverse([1..50000]))[0]', expect: { value: 1 } },

  // --- regular expressions ----------------------------------------------------------------------
  { name: 'ReDoS: nested quantifier', src: '$match("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /(a+)+$/)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /backtracking/ } },
  { name: 'ReDoS: overlapping alternation', src: '$match("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /(a|a)*$/)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /backtracking/ } },
  { name: 'ReDoS: optional in a counted group', src: '$contains("aaaaaaaaaaaaaaaaaaaaaaaaa", /^(a?){25}a{25}$/)', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /backtracking/ } },
  { name: 'ReDoS: case-insensitive overlap', src: '$replace("x", /(a|A)+b/i, "")', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /backtracking/ } },
  { name: 'safe alternation is allowed', src: '$replace("foobarfoo!", /(foo|bar)+/, "-")', expect: { value: '-!' } },

  // --- source size and nesting ------------------------------------------------------------------
  { name: '10,000 parentheses', src: '('.repeat(10000) + '1' + ')'.repeat(10000), expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /characters long/ } },
  { name: '1,000 parentheses', src: '('.repeat(1000) + '1' + ')'.repeat(1000), expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nests brackets/ } },
  { name: '1,500 nested arrays', src: '['.repeat(1500) + ']'.repeat(1500), expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nests brackets/ } },
  { name: '2,001 unary minus on a literal (folded by the parser)', src: '-'.repeat(2001) + '1', expect: { value: -1 } },
  { name: '2,000 unary minus on a variable', src: '-'.repeat(2000) + '$input.x', expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nested deeper/ } },
  { name: '1,500-term sum', src: chain(1500), expect: { code: 'WEFT_EXPRESSION_LIMIT', match: /nested deeper/ } },
  { name: 'unclosed nesting', src: '('.repeat(100), expect: { code: 'WEFT_EXPRESSION_SYNTAX' } },
  { name: 'brackets inside strings do not count', src: '"' + '('.repeat(1000) + '"', expect: { value: '('.repeat(1000) } },

  // --- pollution and mutation ---------------------------------------------------------------------
  { name: '__proto__ key in an object constructor', src: '{"__proto__": {"polluted": 1}}', expect: { value: JSON.parse('{"__proto__": {"polluted": 1}}') } },
  { name: '__proto__ key via $merge', src: '$merge([{"__proto__": {"polluted": 1}}, {"a": 1}])', expect: { value: JSON.parse('{"__proto__": {"polluted": 1}, "a": 1}') } },
  { name: '__proto__ key via $spread/$sift', src: '$sift({"__proto__": {"polluted": 1}}, function($v){ true })', expect: { value: JSON.parse('{"__proto__": {"polluted": 1}}') } },
  { name: '__proto__ via group-by key', src: '$input.list{"__proto__": $}', expect: { value: JSON.parse('{"__proto__": [1, 2, 3]}') } },
  { name: 'constructor.prototype key', src: '{"constructor": {"prototype": {"polluted": 1}}}', expect: { value: { constructor: { prototype: { polluted: 1 } } } } },
  { name: 'transform setting __proto__ on the copy', src: '$input ~> | $ | {"__proto__": {"polluted": 2}} |', expect: { value: { topic: 'durable', x: 1, list: [1, 2, 3], empty: [], emptyInside: [[]], nested: { deep: { v: 'ok' } } } } },
  { name: 'transform selecting caller data', src: '$input ~> | $context | {"hacked": 1} |', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /transform/ } },
  { name: 'transform with a fake $clone', src: '($clone := function($x){ $x }; $input ~> | $ | {"hacked": 1} |)', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /transform/ } },
  { name: 'transform deleting from caller data', src: '$input ~> | $input.nested | {}, ["deep"] |', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /transform/ } },
  { name: 'group-by over a caller empty array', src: '$input.empty{"a": 1}', expect: { value: { a: 1 } } },
  { name: 'object constructor over a caller empty array', src: '$input.emptyInside.{"a": 1}', expect: { value: { a: 1 } } },

  // --- results ------------------------------------------------------------------------------------
  { name: 'lambda result', src: 'function($x){ $x }', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /function/ } },
  { name: 'lambda nested in a result', src: '{"a": [1, function($x){ $x }]}', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /function/ } },
  { name: 'regex result', src: '/abc/', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /function/ } },
  { name: 'regex match object with next()', src: '/a/("aa")', expect: { code: 'WEFT_EXPRESSION_ERROR', match: /function/ } },
];

void describe('hostile payloads', () => {
  for (const c of cases) {
    void it(c.name, async () => {
      const scope = makeScope();
      const snapshot = structuredClone(scope);
      const started = Date.now();
      let outcome: { value: unknown } | { error: unknown };
      try {
        outcome = { value: c.template ? await renderTemplate(c.src, scope) : await evaluateExpression(c.src, scope) };
      } catch (error) {
        outcome = { error };
      }
      const elapsed = Date.now() - started;
      assert.ok(elapsed < PROMPT_MS, `took ${elapsed} ms`);
      if ('value' in c.expect) {
        assert.ok('value' in outcome, `expected a value, got ${'error' in outcome ? String(outcome.error) : ''}`);
        assert.deepEqual(outcome.value, c.expect.value);
      } else {
        assert.ok('error' in outcome, `expected ${c.expect.code}, got value ${'value' in outcome ? JSON.stringify(outcome.value)?.slice(0, 200) : ''}`);
        const err = outcome.error;
        assert.ok(err instanceof WeftError, `expected a WeftError, got ${String(err)}`);
        assert.equal(err.code, c.expect.code, err.message);
        assert.equal(err.retryable, false);
        if (c.expect.match) assert.match(err.message, c.expect.match);
      }
      assert.deepEqual(scope, snapshot, 'the scope was mutated');
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
  }
});

void describe('static checks reject the same payloads before any run', () => {
  void it('ReDoS, nesting and length are compile-time errors', () => {
    for (const src of ['$match("a", /(a+)+$/)', '('.repeat(1000) + '1' + ')'.repeat(1000), chain(1500)]) {
      assert.throws(() => checkExpression(src), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_EXPRESSION_LIMIT');
    }
  });
});

void describe('scope values that are not plain JSON', () => {
  void it('never invokes getters', async () => {
    let calls = 0;
    const obj: Record<string, unknown> = { visible: 1 };
    Object.defineProperty(obj, 'secret', { enumerable: true, get: () => { calls++; return 'leaked'; } });
    const scope = { input: obj, direct: undefined as unknown };
    Object.defineProperty(scope, 'direct', { enumerable: true, get: () => { calls++; return 'leaked'; } });
    assert.equal(await evaluateExpression('$input.secret', scope), undefined);
    assert.deepEqual(await evaluateExpression('$input', scope), { visible: 1 });
    assert.deepEqual(await evaluateExpression('$keys($input)', scope), 'visible');
    assert.equal(await evaluateExpression('$direct', scope), undefined);
    assert.equal(await evaluateExpression('$string($)', scope), '{"input":{"visible":1}}');
    assert.equal(calls, 0);
  });

  void it('ignores inherited properties, prototype-polluted objects and class internals', async () => {
    const inherited = Object.create({ inherited: 'from-proto', constructor: 'fake' }) as Record<string, unknown>;
    inherited.own = 1;
    class Secretive {
      own = 2;
      #hidden = 'private';
      method(): string {
        return this.#hidden;
      }
    }
    const scope = { a: inherited, b: new Secretive(), c: Object.assign(Object.create(null) as object, { ok: true }) };
    assert.equal(await evaluateExpression('$a.inherited', scope), undefined);
    assert.equal(await evaluateExpression('$a.constructor', scope), undefined);
    assert.equal(await evaluateExpression('$a.own', scope), 1);
    assert.deepEqual(await evaluateExpression('$b', scope), { own: 2 });
    assert.equal(await evaluateExpression('$b.method', scope), undefined);
    assert.equal(await evaluateExpression('$c.ok', scope), true);
  });

  void it('never calls functions handed in the scope', async () => {
    let calls = 0;
    const scope = { fn: () => { calls++; return 'pwned'; }, obj: { m: () => { calls++; } } };
    await assert.rejects(evaluateExpression('$fn()', scope), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_EXPRESSION_ERROR');
    await assert.rejects(evaluateExpression('$obj.m()', scope), (e: unknown) => e instanceof WeftError);
    assert.equal(await evaluateExpression('$fn', scope), undefined);
    assert.equal(calls, 0);
  });

  void it('is unaffected by a polluted Object.prototype', async () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.pollutedForTest = 'yes';
    try {
      assert.equal(await evaluateExpression('$input.pollutedForTest', { input: { a: 1 } }), undefined);
      assert.equal(await evaluateExpression('pollutedForTest', { input: { a: 1 } }), undefined);
      assert.equal(await evaluateExpression('$pollutedForTest', { input: { a: 1 } }), undefined);
      assert.equal(await evaluateExpression('{"a": 1}.pollutedForTest', {}), undefined);
    } finally {
      delete proto.pollutedForTest;
    }
  });

  void it('normalises non-JSON numbers, holes, symbols and cycles', async () => {
    const sym = Symbol('s');
    // eslint-disable-next-line no-sparse-arrays
    const holes = [1, , 3];
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const scope = { n: { inf: Infinity, nan: NaN }, holes, s: { [sym]: 1, k: 2 } };
    assert.deepEqual(await evaluateExpression('$n', scope), { inf: null, nan: null });
    assert.deepEqual(await evaluateExpression('$holes', scope), [1, null, 3]);
    assert.deepEqual(await evaluateExpression('$s', scope), { k: 2 });
    await assert.rejects(evaluateExpression('$c.a', { c: cyclic }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_EXPRESSION_LIMIT');
  });

  void it('resolveBindings applies the same rules', async () => {
    let calls = 0;
    const obj = {};
    Object.defineProperty(obj, 'x', { enumerable: true, get: () => { calls++; return 1; } });
    assert.deepEqual(await resolveBindings({ a: '$o.x', b: '$o' }, { o: obj }), { a: undefined, b: {} });
    assert.equal(calls, 0);
  });
});

void describe('budgets are per evaluation', () => {
  void it('one hostile evaluation among many benign ones fails alone', async () => {
    // Budgets are wall-clock and the benign evaluations share the CPU with the hostile one, so
    // they get a roomier budget than the hostile one (the point is that they do not share it).
    const hostile = evaluateExpression('($f := function($n){ $f($n + 1) }; $f(0))', {}, { timeoutMs: 100 });
    const benign = Array.from({ length: 50 }, (_, i) =>
      evaluateExpression('$sum([1..50]) + $input.i', { input: { i } }, { timeoutMs: 5000 }));
    const [h, ...rest] = await Promise.allSettled([hostile, ...benign]);
    assert.equal(h?.status, 'rejected');
    assert.equal(((h as PromiseRejectedResult).reason as WeftError).code, 'WEFT_EXPRESSION_LIMIT');
    rest.forEach((r, i) => assert.deepEqual(r, { status: 'fulfilled', value: 1275 + i }));
  });

  void it('one compiled expression: a deep evaluation fails, concurrent shallow ones succeed', async () => {
    const src = '($f := function($n){ $n <= 0 ? 0 : 1 + $f($n - 1) }; $f($input.n))';
    const compiled = compileExpression(src);
    const deep = evaluateExpression(src, { input: { n: 100000 } }, { timeoutMs: 5000 });
    const shallow = Array.from({ length: 40 }, (_, i) => evaluateExpression(src, { input: { n: i % 20 } }, { timeoutMs: 5000 }));
    const [d, ...rest] = await Promise.allSettled([deep, ...shallow]);
    assert.equal(d?.status, 'rejected');
    assert.match(((d as PromiseRejectedResult).reason as WeftError).message, /nested deeper/);
    rest.forEach((r, i) => assert.deepEqual(r, { status: 'fulfilled', value: i % 20 }));
    assert.equal(compileExpression(src), compiled);
    // And the same expression still works afterwards.
    assert.equal(await evaluateExpression(src, { input: { n: 10 } }), 10);
  });

  void it('one compiled expression: a slow evaluation times out, a fast one started later does not', async () => {
    const src = '$input.spin ? ($f := function($n){ $f($n + 1) }; $f(0)) : "fast"';
    const slow = evaluateExpression(src, { input: { spin: true } }, { timeoutMs: 80 });
    const fast = evaluateExpression(src, { input: { spin: false } }, { timeoutMs: 5000 });
    await assert.rejects(slow, (e: unknown) => e instanceof WeftError && e.code === 'WEFT_EXPRESSION_LIMIT');
    assert.equal(await fast, 'fast');
    const fastAfter = await evaluateExpression(src, { input: { spin: false } }, { timeoutMs: 80 });
    assert.equal(fastAfter, 'fast');
  });

  void it('allocation allowance is per evaluation', async () => {
    const src = '$count([1..100000])';
    const results = await Promise.all(Array.from({ length: 30 }, () => evaluateExpression(src, {}, { timeoutMs: 5000 })));
    assert.deepEqual(results, Array.from({ length: 30 }, () => 100000));
  });
});

after(() => {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoNamesBefore);
  assert.deepEqual(Object.getOwnPropertyNames(Array.prototype).sort(), arrayProtoNamesBefore);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined);
});
