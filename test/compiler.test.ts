import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkDefinition, compileDefinition } from '../src/core/compiler.ts';
import { DEFAULT_RETRY } from '../src/core/compiled.ts';
import { LIMITS } from '../src/core/definition-schema.ts';
import { DefinitionError } from '../src/core/errors.ts';
import type { ErrorCode, Problem } from '../src/core/errors.ts';
import { parseDefinitionText } from '../src/core/parse-definition.ts';

const SAMPLE = `
name: Blog article
inputs: { type: object, required: [topic], properties: { topic: { type: string }, audience: { type: string, default: developers } } }
steps:
  outline:  { type: agent, prompt: "Outline a post on {{ $input.topic }}" }
  article:  { type: agent, needs: [outline], prompt: "Write it from this outline: {{ $outline.text }}", retry: { max: 3 } }
  image:    { type: image, needs: [outline], prompt: "Hero image for {{ $input.topic }}" }
  review:   { type: review, needs: [article], with: { text: "$article.text" } }
  route:    { type: condition, needs: [review], cases: { rewrite: "$review.score < 7" }, default: keep }
  rewrite:  { type: agent, needs: [route.rewrite], prompt: "Improve: {{ $article.text }}" }
  publish:  { type: transform, needs: [rewrite, image], trigger: all_done, expr: "{ 'text': $rewrite.text ? $rewrite.text : $article.text }" }
outputs: { article: "$publish.text", image: "$image.url" }
`;

type Steps = Record<string, Record<string, unknown>>;

function wf(steps: Steps, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'test', ...extra, steps };
}

function errorsOf(def: unknown): Problem[] {
  return checkDefinition(def).filter((p) => p.severity !== 'warning');
}

/** The single problem with `code`, asserting there is exactly one. */
function only(problems: Problem[], code: ErrorCode): Problem {
  const found = problems.filter((p) => p.code === code);
  assert.equal(found.length, 1, `expected one ${code}, got ${JSON.stringify(problems, null, 2)}`);
  return found[0]!;
}

function expectProblem(def: unknown, code: ErrorCode, path: string, ...fragments: (string | RegExp)[]): Problem {
  const problem = only(checkDefinition(def), code);
  assert.equal(problem.path, path, JSON.stringify(problem));
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(problem.message.includes(f), `message ${JSON.stringify(problem.message)} lacks ${JSON.stringify(f)}`);
    else assert.match(problem.message, f);
  }
  assert.throws(() => compileDefinition(def), (e: unknown) => e instanceof DefinitionError && e.problems.some((p) => p.code === code && p.path === path));
  return problem;
}

const agent = (needs: string[] = [], prompt = 'hello'): Record<string, unknown> => ({ type: 'agent', needs, prompt });
const transform = (expr: string, needs: string[] = []): Record<string, unknown> => ({ type: 'transform', needs, expr });

void describe('compileDefinition: the sample', () => {
  const compiled = compileDefinition(parseDefinitionText(SAMPLE));

  void it('orders steps topologically, ties by id', () => {
    assert.deepEqual(compiled.order, ['outline', 'article', 'image', 'review', 'route', 'rewrite', 'publish']);
    assert.deepEqual(compiled.levels, [['outline'], ['article', 'image'], ['review'], ['route'], ['rewrite'], ['publish']]);
    assert.deepEqual(compiled.roots, ['outline']);
    assert.deepEqual(compiled.outputRefs, ['image', 'publish']);
  });

  void it('builds needs, dependents, refs and levels per step', () => {
    const s = compiled.steps;
    assert.deepEqual(s['rewrite']!.needs, [{ step: 'route', branch: 'rewrite' }]);
    assert.deepEqual(s['publish']!.needs, [{ step: 'rewrite' }, { step: 'image' }]);
    assert.deepEqual(s['outline']!.dependents, ['article', 'image']);
    assert.deepEqual(s['article']!.dependents, ['review']);
    assert.deepEqual(s['publish']!.dependents, []);
    assert.deepEqual(s['outline']!.refs, []);
    assert.deepEqual(s['article']!.refs, ['outline']);
    assert.deepEqual(s['rewrite']!.refs, ['article']);
    assert.deepEqual(s['publish']!.refs, ['article', 'rewrite']);
    assert.deepEqual(s['route']!.refs, ['review']);
    assert.deepEqual(Object.fromEntries(Object.values(s).map((x) => [x.id, x.level])), {
      outline: 0, article: 1, image: 1, review: 2, route: 3, rewrite: 4, publish: 5,
    });
    assert.equal(s['route']!.type, 'condition');
  });

  void it('applies defaults: trigger, retry, timeout, on_error', () => {
    const s = compiled.steps;
    assert.equal(s['outline']!.trigger, 'all_success');
    assert.equal(s['publish']!.trigger, 'all_done');
    assert.deepEqual(s['outline']!.retry, DEFAULT_RETRY);
    assert.deepEqual(s['article']!.retry, { ...DEFAULT_RETRY, maxAttempts: 4 });
    assert.equal(s['outline']!.timeoutMs, undefined);
    assert.equal(s['outline']!.onError, 'fail');
  });

  void it('keeps the definition as plain JSON, detached from the caller', () => {
    const source = parseDefinitionText(SAMPLE) as { name: string };
    const result = compileDefinition(source);
    source.name = 'changed';
    assert.equal(result.definition.name, 'Blog article');
    assert.deepEqual(result.definition, parseDefinitionText(SAMPLE));
    assert.equal(checkDefinition(parseDefinitionText(SAMPLE)).length, 0);
  });
});

void describe('compileDefinition: retry policies', () => {
  void it('merges over DEFAULT_RETRY: maxAttempts = max + 1, jitter true → 1, false → 0, number as is', () => {
    const compiled = compileDefinition(wf({
      a: { type: 'delay', ms: 1, retry: { max: 2, backoff: 'fixed', base_ms: 10, max_ms: 100, jitter: true } },
      b: { type: 'delay', ms: 1, needs: ['a'], retry: { max: 0, jitter: false }, timeout_ms: 5000, on_error: 'continue' },
      c: { type: 'delay', ms: 1, needs: ['b'], retry: { max: 5, jitter: 0.5 } },
    }));
    assert.deepEqual(compiled.steps['a']!.retry, { maxAttempts: 3, backoff: 'fixed', baseMs: 10, maxMs: 100, jitter: 1 });
    assert.deepEqual(compiled.steps['b']!.retry, { ...DEFAULT_RETRY, maxAttempts: 1, jitter: 0 });
    assert.deepEqual(compiled.steps['c']!.retry, { ...DEFAULT_RETRY, maxAttempts: 6, jitter: 0.5 });
    assert.equal(compiled.steps['b']!.timeoutMs, 5000);
    assert.equal(compiled.steps['b']!.onError, 'continue');
  });

  void it('warns when base_ms exceeds max_ms', () => {
    const def = wf({ a: { type: 'delay', ms: 1, retry: { max: 1, base_ms: 5000, max_ms: 10 } } });
    const problem = only(checkDefinition(def), 'WEFT_SCHEMA');
    assert.equal(problem.severity, 'warning');
    assert.equal(problem.path, '/steps/a/retry/base_ms');
    compileDefinition(def);
  });
});

void describe('compileDefinition: every step type', () => {
  void it('compiles a definition using all seven step types', () => {
    const compiled = compileDefinition(wf({
      fetch: {
        type: 'http', method: 'POST', url: 'https://api.example.com/{{ $input.path }}',
        headers: { Authorization: 'Bearer {{ $context.token }}' }, query: { q: '{{ $input.q }}' },
        body: { items: ['{{ $input.q }}', 1, true, null], nested: { text: 'static' } }, response: 'json', ok_status: [200, 201],
        timeout_ms: 10_000,
      },
      shape: { type: 'transform', needs: ['fetch'], expr: '$fetch.body.items', when: '$fetch.status = 200' },
      wait: { type: 'delay', needs: ['shape'], ms: 1000 },
      check: { type: 'condition', needs: ['wait'], cases: { big: '$count($shape) > 3', small: '$count($shape) <= 3' } },
      write: { type: 'agent', needs: ['check.big'], system: 'You are terse.', prompt: 'Summarise {{ $shape }}', model: 'm', temperature: 0.2, max_tokens: 100 },
      draw: { type: 'image', needs: ['check.small'], prompt: 'A picture of {{ $shape[0] }}', size: '512x512' },
      judge: { type: 'review', needs: ['write', 'draw'], trigger: 'one_success', criteria: 'Is {{ $write.text }} good?', threshold: 7, with: { text: '$write.text', extra: ['$draw.url', { deep: '$shape' }] } },
    }, { context: { token: 't' }, outputs: { verdict: '$judge.score' } }));
    assert.deepEqual(compiled.order, ['fetch', 'shape', 'wait', 'check', 'draw', 'write', 'judge']);
    assert.deepEqual(compiled.steps['judge']!.refs, ['draw', 'shape', 'write']);
    assert.deepEqual(compiled.steps['fetch']!.refs, []);
    assert.deepEqual(compiled.steps['check']!.refs, ['shape']);
    assert.deepEqual(compiled.steps['shape']!.refs, ['fetch']);
    assert.deepEqual(compiled.steps['draw']!.needs, [{ step: 'check', branch: 'small' }]);
  });

  void it('lets a step read any ancestor, not just direct needs; outputs read any step', () => {
    const compiled = compileDefinition(wf({
      a: agent(),
      b: agent(['a']),
      c: transform('$a.text & b.text', ['b']), // a bare field name reads the scope too
    }, { outputs: { all: '[$a, $b, $c, $input, $context]' } }));
    assert.deepEqual(compiled.steps['c']!.refs, ['a', 'b']);
    assert.deepEqual(compiled.outputRefs, ['a', 'b', 'c']);
  });

  void it('accepts a built-in function passed as a value and needs on the default branch', () => {
    const compiled = compileDefinition(wf({
      a: transform('$map([1,2], $string)'),
      route: { type: 'condition', needs: ['a'], cases: { yes: '$a[0] = "1"' }, default: 'no' },
      b: transform('$a', ['route.no']),
      c: { ...transform('$a', ['route.yes', 'route.no']), trigger: 'one_success' },
    }, { outputs: { b: '$b', c: '$c' } }));
    assert.deepEqual(compiled.steps['c']!.needs, [{ step: 'route', branch: 'yes' }, { step: 'route', branch: 'no' }]);
    assert.deepEqual(compiled.steps['route']!.dependents, ['b', 'c']);
    assert.deepEqual(compiled.steps['a']!.refs, []);
  });

  void it('warns about a step id that hides a JSONata function', () => {
    const problem = only(checkDefinition(wf({ merge: agent(), b: agent(['merge']) })), 'WEFT_SCHEMA');
    assert.equal(problem.severity, 'warning');
    assert.equal(problem.path, '/steps/merge');
    assert.match(problem.message, /hides the JSONata function \$merge\(\)/);
  });
});

void describe('compileDefinition: one test per problem class', () => {
  void it('WEFT_SCHEMA: unknown property, with a suggestion', () => {
    expectProblem(wf({ a: { type: 'agent', promt: 'hi' } }), 'WEFT_SCHEMA', '/steps/a/promt', "unknown property 'promt'", "did you mean 'prompt'");
  });

  void it('WEFT_SCHEMA: missing and mistyped fields', () => {
    const problems = errorsOf({ steps: { a: { type: 'delay', ms: 'soon' } } });
    assert.deepEqual(problems.map((p) => [p.code, p.path]), [['WEFT_SCHEMA', '/name'], ['WEFT_SCHEMA', '/steps/a/ms']]);
    assert.match(problems[0]!.message, /missing required property 'name'/);
    assert.match(problems[1]!.message, /expected an integer, got a string/);
  });

  void it('WEFT_SCHEMA: literal unions list the allowed values', () => {
    expectProblem(wf({ a: { type: 'delay', ms: 1, trigger: 'all' } }), 'WEFT_SCHEMA', '/steps/a/trigger', "'all_success', 'all_done' or 'one_success'");
  });

  void it('WEFT_SCHEMA: invalid and reserved step ids', () => {
    expectProblem(wf({ 'bad-id': { type: 'delay', ms: 1 } }), 'WEFT_SCHEMA', '/steps/bad-id', "invalid step id 'bad-id'");
    expectProblem(wf({ input: { type: 'delay', ms: 1 } }), 'WEFT_SCHEMA', '/steps/input', "step id 'input' cannot be used", '$input');
    expectProblem(wf({ __proto__x: { type: 'delay', ms: 1 }, constructor: { type: 'delay', ms: 1, needs: ['__proto__x'] } }), 'WEFT_SCHEMA', '/steps/constructor', 'reserved');
  });

  void it('WEFT_UNKNOWN_STEP_TYPE lists the known types', () => {
    expectProblem(wf({ a: { type: 'agnet', prompt: 'x' } }), 'WEFT_UNKNOWN_STEP_TYPE', '/steps/a/type', "unknown step type 'agnet'", "did you mean 'agent'", 'transform, condition, delay, http, agent, image, review');
  });

  void it('WEFT_DUPLICATE_ID: a need listed twice, a step needed both whole and by branch, a default that is also a case', () => {
    expectProblem(wf({ a: agent(), b: agent(['a', 'a']) }), 'WEFT_DUPLICATE_ID', '/steps/b/needs/1', "'a' is listed more than once");
    const route = { type: 'condition', cases: { yes: 'true' }, default: 'no' };
    expectProblem(wf({ route, b: agent(['route', 'route.yes']) }), 'WEFT_DUPLICATE_ID', '/steps/b/needs/1', "'route.yes' repeats the need on 'route'");
    expectProblem(wf({ route: { type: 'condition', cases: { yes: 'true' }, default: 'yes' }, b: agent(['route.yes']) }), 'WEFT_DUPLICATE_ID', '/steps/route/default', "branch 'yes' is both a case and the default");
  });

  void it('WEFT_UNKNOWN_NEED names the missing step and suggests a close one', () => {
    expectProblem(wf({ outline: agent(), article: agent(['outlne']) }), 'WEFT_UNKNOWN_NEED', '/steps/article/needs/0', "needs 'outlne'", "did you mean 'outline'");
  });

  void it('WEFT_UNKNOWN_BRANCH: branch of a non-condition, unknown branch name', () => {
    expectProblem(wf({ a: agent(), b: agent(['a.yes']) }), 'WEFT_UNKNOWN_BRANCH', '/steps/b/needs/0', "'a' is an agent step, not a condition");
    const route = { type: 'condition', cases: { rewrite: 'true' }, default: 'keep' };
    expectProblem(wf({ route, b: agent(['route.rewrit']) }), 'WEFT_UNKNOWN_BRANCH', '/steps/b/needs/0', "no branch 'rewrit'", "did you mean 'rewrite'", "'rewrite', 'keep'");
  });

  void it('WEFT_CYCLE: a step needing itself', () => {
    expectProblem(wf({ a: agent(['a']) }), 'WEFT_CYCLE', '/steps/a/needs/0', 'cycle: a → a');
  });

  void it('WEFT_CYCLE: a 2-cycle', () => {
    expectProblem(wf({ a: agent(['b']), b: agent(['a']) }), 'WEFT_CYCLE', '/steps/a/needs/0', 'cycle: a → b → a');
  });

  void it('WEFT_CYCLE: a long cycle inside a bigger graph is named in order, once', () => {
    const steps: Steps = { start: agent() };
    // start → s0 → s1 → … → s9, and s0 also needs s9: the loop s0 → … → s9 → s0.
    for (let i = 0; i < 10; i++) steps[`s${i}`] = agent(i === 0 ? ['start', 's9'] : [`s${i - 1}`]);
    steps['tail'] = agent(['s5']);
    steps['other'] = agent(['start']);
    const names = Array.from({ length: 10 }, (_, i) => `s${i}`);
    expectProblem(wf(steps), 'WEFT_CYCLE', '/steps/s0/needs/1', `cycle: ${[...names, 's0'].join(' → ')}`);
  });

  void it('WEFT_CYCLE: one problem per strongly connected component, with the shortest cycle', () => {
    const problems = errorsOf(wf({
      a: agent(['c']), b: agent(['a']), c: agent(['b', 'x']), x: agent(['c']),
      p: agent(['q']), q: agent(['p']),
    }));
    assert.deepEqual(problems.map((p) => [p.code, p.path]), [['WEFT_CYCLE', '/steps/a/needs/0'], ['WEFT_CYCLE', '/steps/p/needs/0']]);
    assert.match(problems[0]!.message, /^cycle: a → b → c → a \(4 steps are caught in this loop\)/);
    assert.match(problems[1]!.message, /^cycle: p → q → p;/);
  });

  void it('WEFT_UNREACHABLE_STEP: two branches of one condition under all_success, and what follows', () => {
    const route = { type: 'condition', cases: { yes: 'true' }, default: 'no' };
    const def = wf({ route, both: agent(['route.yes', 'route.no']), after: agent(['both']), any: { ...agent(['after']), trigger: 'all_done' } });
    const problems = errorsOf(def).filter((p) => p.code === 'WEFT_UNREACHABLE_STEP');
    assert.deepEqual(problems.map((p) => p.path), ['/steps/both/needs', '/steps/after/needs/0']);
    assert.match(problems[0]!.message, /step 'both' can never run: it needs both route\.yes and route\.no/);
    assert.match(problems[1]!.message, /step 'after' can never run: it needs 'both', which can never run/);
    // Under one_success the same needs are fine.
    compileDefinition(wf({ route, either: { ...agent(['route.yes', 'route.no']), trigger: 'one_success' } }));
  });

  void it('WEFT_ISOLATED_STEP is a warning: reported by checkDefinition, compileDefinition still succeeds', () => {
    const def = wf({ a: agent(), b: agent(['a']), lonely: agent(), read: agent() }, { outputs: { r: '$read.text' } });
    const problem = only(checkDefinition(def), 'WEFT_ISOLATED_STEP');
    assert.equal(problem.severity, 'warning');
    assert.equal(problem.path, '/steps/lonely');
    assert.match(problem.message, /step 'lonely' is isolated/);
    assert.ok(compileDefinition(def).steps['lonely']);
    assert.deepEqual(checkDefinition(wf({ only: agent() })), []); // one step alone is fine
  });

  void it('WEFT_EXPRESSION_SYNTAX at the field: expressions, templates, nested bindings and bodies, outputs', () => {
    expectProblem(wf({ a: transform('1 +') }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/expr', 'syntax error');
    expectProblem(wf({ a: agent([], 'Hi {{ $input.x + }}') }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/prompt', 'in template interpolation');
    expectProblem(wf({ a: agent([], 'Hi {{ $input.x') }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/prompt', 'unclosed');
    expectProblem(wf({ a: { type: 'delay', ms: 1, with: { x: ['$input', { y: '$input.(' }] } } }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/with/x/1/y');
    expectProblem(wf({ a: { type: 'http', url: 'https://x', body: { list: ['ok', '{{ ) }}'] } } }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/body/list/1');
    expectProblem(wf({ a: { type: 'delay', ms: 1, when: '$input.a =' } }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/when');
    expectProblem(wf({ a: { type: 'condition', cases: { x: '(' } } }), 'WEFT_EXPRESSION_SYNTAX', '/steps/a/cases/x');
    expectProblem(wf({ a: agent() }, { outputs: { o: '$a.' } }), 'WEFT_EXPRESSION_SYNTAX', '/outputs/o');
  });

  void it('WEFT_NOT_ANCESTOR: reading a step that is not upstream, or oneself', () => {
    expectProblem(wf({ outline: agent(), image: agent(['outline']), article: agent(['outline'], 'Use {{ $image.url }}') }),
      'WEFT_NOT_ANCESTOR', '/steps/article/prompt', "step 'article' reads $image, but image is not upstream of article — add it to needs");
    expectProblem(wf({ a: agent(), b: transform('$c', ['a']), c: agent(['b']) }), 'WEFT_NOT_ANCESTOR', '/steps/b/expr', 'c is not upstream of b');
    expectProblem(wf({ a: transform('$a.x') }), 'WEFT_NOT_ANCESTOR', '/steps/a/expr', 'its own output');
  });

  void it('WEFT_UNKNOWN_REFERENCE lists what is available', () => {
    const p = expectProblem(wf({ outline: agent(), article: agent(['outline'], '{{ $outlin.text }}') }), 'WEFT_UNKNOWN_REFERENCE', '/steps/article/prompt',
      "reads $outlin, which is not defined", "did you mean 'outline'", '$input, $context, $outline');
    assert.ok(!p.message.includes('$article'));
    expectProblem(wf({ a: agent() }, { outputs: { o: '$a.text & $inputs.x' } }), 'WEFT_UNKNOWN_REFERENCE', '/outputs/o', "output 'o' reads $inputs", "did you mean 'input'");
  });

  void it('WEFT_SCHEMA at /inputs: the inputs schema must be an object schema cfworker can run', () => {
    expectProblem(wf({ a: agent() }, { inputs: { type: 'array' } }), 'WEFT_SCHEMA', '/inputs/type', 'must describe an object');
    expectProblem(wf({ a: agent() }, { inputs: { type: 'object', properties: { x: { type: 'string', pattern: '([a-z' } } } }), 'WEFT_SCHEMA', '/inputs/properties/x/pattern', 'invalid regular expression');
    expectProblem(wf({ a: agent() }, { inputs: { type: 'object', properties: { x: { anyOf: [] } } } }), 'WEFT_SCHEMA', '/inputs/properties/x/anyOf', 'non-empty array');
    expectProblem(wf({ a: agent() }, { inputs: { $ref: '#' } }), 'WEFT_SCHEMA', '/inputs', 'recursive');
    expectProblem(wf({ a: agent() }, { inputs: { type: 'object', properties: { x: { $ref: '#/$defs/missing' } } } }), 'WEFT_SCHEMA', '/inputs/properties/x/$ref', 'unresolved');
    expectProblem(wf({ a: agent() }, { inputs: { type: 'object', properties: { x: { $ref: 'https://evil.example/schema.json' } } } }), 'WEFT_SCHEMA', '/inputs/properties/x/$ref', 'only local references');
    // Exponential expansion through references: each level refers to the next twice.
    const defs: Record<string, unknown> = { d0: { type: 'string' } };
    for (let i = 1; i <= 20; i++) defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i - 1}` }, { $ref: `#/$defs/d${i - 1}` }] };
    expectProblem(wf({ a: agent() }, { inputs: { type: 'object', $defs: defs, properties: { x: { $ref: '#/$defs/d20' } } } }), 'WEFT_SCHEMA', '/inputs', 'too complex');
  });

  void it('WEFT_TOO_LARGE: more steps than LIMITS.steps is refused early with a clear message', () => {
    const steps: Steps = {};
    for (let i = 0; i < 10_000; i++) steps[`s${i}`] = { type: 'delay', ms: 1, needs: i ? [`s${i - 1}`] : [] };
    const started = performance.now();
    const problems = checkDefinition(wf(steps));
    const elapsed = performance.now() - started;
    assert.equal(problems.length, 1, JSON.stringify(problems.slice(0, 3)));
    assert.equal(problems[0]!.code, 'WEFT_TOO_LARGE');
    assert.equal(problems[0]!.path, '/steps');
    assert.equal(problems[0]!.message, `too many steps: 10000 (the limit is ${LIMITS.steps}); split the workflow`);
    assert.ok(elapsed < 1000, `refusing 10,000 steps took ${elapsed.toFixed(0)} ms`);
  });

  void it('WEFT_TOO_LARGE: values nested deeper than LIMITS.jsonDepth, even when not parsed from text', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const problem = only(checkDefinition(wf({ a: agent() }, { context: { deep } })), 'WEFT_TOO_LARGE');
    assert.match(problem.path, /^\/context\/deep(\/0)+$/);
    assert.match(problem.message, /nested deeper than 64 levels/);
  });

  void it('rejects values that are not JSON', () => {
    expectProblem(wf({ a: agent() }, { context: { f: () => 1 } }), 'WEFT_SCHEMA', '/context/f', 'not a JSON value');
  });
});

void describe('compileDefinition: several problems at once', () => {
  void it('reports every problem, each with its own code and path, and throws them all', () => {
    const def = {
      name: 'many problems',
      steps: {
        a: { type: 'agent', prompt: 'x', promt: 'y' },
        b: { type: 'transform', expr: '1 +', needs: ['zz'] },
        c: { type: 'transform', expr: '$d', needs: ['a'] },
        d: { type: 'transform', expr: '$c', needs: ['e'] },
        e: { type: 'delay', ms: 1, needs: ['d'] },
        f: { type: 'bogus' },
      },
      outputs: { o: '$nothing' },
    };
    const expected: [ErrorCode, string][] = [
      ['WEFT_SCHEMA', '/steps/a/promt'],
      ['WEFT_UNKNOWN_STEP_TYPE', '/steps/f/type'],
      ['WEFT_UNKNOWN_NEED', '/steps/b/needs/0'],
      ['WEFT_CYCLE', '/steps/d/needs/0'],
      ['WEFT_EXPRESSION_SYNTAX', '/steps/b/expr'],
      ['WEFT_NOT_ANCESTOR', '/steps/c/expr'],
      ['WEFT_UNKNOWN_REFERENCE', '/outputs/o'],
    ];
    const problems = errorsOf(def);
    assert.deepEqual(problems.map((p) => [p.code, p.path]), expected);
    assert.throws(() => compileDefinition(def), (e: unknown) => {
      assert.ok(e instanceof DefinitionError);
      assert.deepEqual(e.problems.map((p) => [p.code, p.path]), expected);
      assert.match(e.message, /\/steps\/a\/promt: unknown property 'promt'.* \(and 6 more\)/);
      return true;
    });
  });

  void it('a non-object definition is one problem', () => {
    assert.deepEqual(checkDefinition([1, 2]), [{ code: 'WEFT_SCHEMA', path: '', message: 'a workflow definition must be an object, not an array' }]);
  });
});

void describe('compileDefinition: performance', () => {
  const time = (label: string, fn: () => void): number => {
    fn(); // warm up (JSONata, validators)
    const started = performance.now();
    fn();
    const ms = performance.now() - started;
    console.log(`# ${label}: ${ms.toFixed(1)} ms`);
    return ms;
  };

  void it('compiles a 1,000-step chain well under a second', () => {
    const steps: Steps = {};
    for (let i = 0; i < LIMITS.steps; i++) steps[`s${i}`] = i === 0 ? agent([], 'Start {{ $input.topic }}') : agent([`s${i - 1}`], `Continue {{ $s${i - 1}.text }} about {{ $input.topic }}`);
    let compiled = compileDefinition(wf(steps));
    const ms = time('1,000-step chain', () => {
      compiled = compileDefinition(wf(steps));
    });
    assert.ok(ms < 1000, `${ms} ms`);
    assert.equal(compiled.order.length, 1000);
    assert.equal(compiled.levels.length, 1000);
    assert.equal(compiled.steps['s999']!.level, 999);
    assert.deepEqual(compiled.steps['s999']!.refs, ['s998']);
    assert.deepEqual(compiled.roots, ['s0']);
  });

  void it('compiles a 1,000-step fan-out (and fan-in) well under a second', () => {
    const steps: Steps = { root: agent([], 'Topic {{ $input.topic }}') };
    const leaves: string[] = [];
    for (let i = 0; i < LIMITS.steps - 2; i++) {
      steps[`leaf${i}`] = agent(['root'], `Part ${i} of {{ $root.text }}`);
      leaves.push(`leaf${i}`);
    }
    steps['join'] = transform(`[${leaves.slice(0, 50).map((l) => `$${l}.text`).join(', ')}]`, leaves);
    let compiled = compileDefinition(wf(steps));
    const ms = time('1,000-step fan-out', () => {
      compiled = compileDefinition(wf(steps));
    });
    assert.ok(ms < 1000, `${ms} ms`);
    assert.equal(compiled.levels.length, 3);
    assert.equal(compiled.levels[1]!.length, 998);
    assert.deepEqual(compiled.levels[1]!.slice(0, 3), ['leaf0', 'leaf1', 'leaf10']);
    assert.equal(compiled.steps['root']!.dependents.length, 998);
    assert.equal(compiled.order[compiled.order.length - 1], 'join');
  });

  void it('finds a cycle through 1,000 steps without recursion', () => {
    const steps: Steps = {};
    for (let i = 0; i < LIMITS.steps; i++) steps[`s${i}`] = agent([`s${(i + LIMITS.steps - 1) % LIMITS.steps}`]);
    const problem = only(checkDefinition(wf(steps)), 'WEFT_CYCLE');
    assert.ok(problem.message.startsWith('cycle: s0 → s1 → s2 → '));
    assert.ok(problem.message.includes('s998 → s999 → s0;'));
  });
});
