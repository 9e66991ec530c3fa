/**
 * The worker's completion batcher (engine/completion-batcher.ts), with the statements replaced
 * by senders the test answers by hand: what goes alone, what goes together, in which order,
 * and what a failed statement takes with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompletionBatcher } from '../src/engine/completion-batcher.ts';
import type { QuickAnswer, QuickCompletion } from '../src/store/quick-completion.ts';

/** A completion of `runId`, told apart by `stepId`. */
function completion(runId: string, stepId: string): QuickCompletion {
  return {
    runId, stepId, attempt: 1, workerId: 'w', expected: { status: 'running', mode: 'auto', statesText: '', steps: {} }, at: new Date(0),
    output: null, branch: null, durationMs: 0, usage: undefined, runUsage: undefined, events: [], queue: [], skips: [], claim: undefined, finish: undefined,
  };
}

/** Senders whose statements stay out until the test settles them. */
function manualSenders() {
  const sent: { items: string[]; settle: (error?: Error) => void }[] = [];
  const out = (items: readonly QuickCompletion[]) => new Promise<QuickAnswer[]>((resolve, reject) => {
    sent.push({
      items: items.map((c) => `${c.runId}/${c.stepId}`),
      settle: (error) => (error ? reject(error) : resolve(items.map(() => ({ kind: 'done', claimed: undefined })))),
    });
  });
  return {
    sent,
    senders: { one: async (c: QuickCompletion) => (await out([c]))[0]!, many: (cs: readonly QuickCompletion[]) => out(cs) },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

void test('a completion alone goes at once; those that arrive while it is out go together when it returns, oldest first', async () => {
  const { sent, senders } = manualSenders();
  const batcher = new CompletionBatcher(senders);
  const first = batcher.complete(completion('r1', 'a'));
  await tick();
  assert.deepEqual(sent.map((s) => s.items), [['r1/a']], 'sent at once, alone');
  const later = [batcher.complete(completion('r2', 'a')), batcher.complete(completion('r3', 'a')), batcher.complete(completion('r4', 'a'))];
  await tick();
  assert.equal(sent.length, 1, 'nothing more goes while a statement is out');
  sent[0]!.settle();
  assert.deepEqual(await first, { kind: 'done', claimed: undefined });
  await tick();
  assert.deepEqual(sent.map((s) => s.items), [['r1/a'], ['r2/a', 'r3/a', 'r4/a']]);
  sent[1]!.settle();
  assert.equal((await Promise.all(later)).length, 3);
  // Idle again: the next one goes at once.
  void batcher.complete(completion('r5', 'a'));
  await tick();
  assert.deepEqual(sent[2]!.items, ['r5/a']);
});

void test('one completion per run in a batch: a second of the same run waits for the next', async () => {
  const { sent, senders } = manualSenders();
  const batcher = new CompletionBatcher(senders);
  void batcher.complete(completion('r0', 'a'));
  for (const [run, step] of [['r1', 'a'], ['r1', 'b'], ['r2', 'a'], ['r1', 'c']] as const) void batcher.complete(completion(run, step));
  await tick();
  sent[0]!.settle();
  await tick();
  assert.deepEqual(sent[1]!.items, ['r1/a', 'r2/a']);
  sent[1]!.settle();
  await tick();
  assert.deepEqual(sent[2]!.items, ['r1/b']);
  sent[2]!.settle();
  await tick();
  assert.deepEqual(sent[3]!.items, ['r1/c']);
});

void test('a statement that fails rejects its own completions only; the next batch still goes', async () => {
  const { sent, senders } = manualSenders();
  const batcher = new CompletionBatcher(senders);
  const first = batcher.complete(completion('r1', 'a'));
  const second = [batcher.complete(completion('r2', 'a')), batcher.complete(completion('r3', 'a'))];
  const third = batcher.complete(completion('r2', 'b'));
  await tick();
  sent[0]!.settle();
  await first;
  await tick();
  sent[1]!.settle(new Error('connection lost'));
  for (const p of second) await assert.rejects(p, /connection lost/);
  await tick();
  assert.deepEqual(sent[2]!.items, ['r2/b']);
  sent[2]!.settle();
  assert.equal((await third).kind, 'done');
});
