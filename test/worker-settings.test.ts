/**
 * `weft worker` processes use what servers store in the database: credentials (opened with the
 * shared WEFT_SECRET_KEY) and the price table, at start and after a change announced by NOTIFY.
 * PostgreSQL only (workers need it); the model is the local LLM server.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { generateSecretKeyText, parseSecretKey, SecretBox } from '../src/api/secrets.ts';
import { Engine } from '../src/engine/engine.ts';
import { insertCredential, notifyCredentialsChanged, updateCredential } from '../src/store/credentials.ts';
import type { Db } from '../src/store/db.ts';
import { notifyPricesChanged, putPriceOverride } from '../src/store/price-overrides.ts';
import { closeTemplates, openTestDb, PG_URL } from './helpers/db.ts';
import { startLlmServer, type LlmServer } from './helpers/llm-server.ts';
import { ProcessGroup } from './helpers/processes.ts';

after(closeTemplates);

const WORKFLOW = {
  name: 'via a stored credential',
  steps: { ask: { type: 'agent', provider: 'local-llm', model: 'gpt-4.1-mini', prompt: 'Hello worker', max_tokens: 50, stream: false } },
  outputs: { text: '$ask.text' },
};

function withSearchPath(url: string, schema: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

async function setup(t: TestContext): Promise<{ db: Db; url: string; engine: Engine; procs: ProcessGroup; llm: LlmServer } | undefined> {
  const db = await openTestDb('postgres', t, 4);
  if (!db) return undefined;
  const llm = await startLlmServer();
  const procs = new ProcessGroup();
  t.after(async () => {
    await procs.killAll();
    await db.close();
    await llm.close();
  });
  const { rows } = await db.query<{ schema: string }>('SELECT current_schema() AS schema');
  return { db, url: withSearchPath(PG_URL, rows[0]!.schema), engine: new Engine({ db, worker: false }), procs, llm };
}

void test('weft worker runs steps with a stored credential and stored prices, and follows changes to both', async (t) => {
  const h = await setup(t);
  if (!h) return;
  const { db, engine, procs, llm } = h;
  const keyText = generateSecretKeyText();
  const box = new SecretBox(parseSecretKey(keyText, 'test'));
  const id = randomUUID();
  // allow_private: only this provider may reach the loopback server (the worker's own policy stays closed).
  await insertCredential(db, {
    id, name: 'local-llm', kind: 'openai-compatible', baseUrl: llm.openaiBaseUrl, defaultModel: null, allowPrivate: true,
    apiKeySealed: box.seal('sk-first-key', id), createdBy: null,
  });
  // $1 per input token: the run's cost shows which price the worker applied.
  await putPriceOverride(db, 'local-llm', 'gpt-4.1-mini', { input_per_1m: 1_000_000, output_per_1m: 0 });

  const worker = procs.worker({ url: h.url, env: { WEFT_SECRET_KEY: keyText, WEFT_ALLOW_PRIVATE_NETWORK: '0', WEFT_DATA: '/nonexistent-weft-data' } });
  await worker.waitForStart();
  const version = await engine.registerWorkflow(WORKFLOW);

  const runOnce = async () => {
    const runId = await engine.startRun({ versionId: version.versionId });
    assert.equal(await engine.waitForRun(runId, 20_000), 'succeeded', worker.stderr.slice(-2000));
    return (await engine.getRun(runId))!;
  };
  const first = await runOnce();
  assert.deepEqual(first.outputs, { text: 'Echo: Hello worker' });
  assert.equal(llm.requests.at(-1)?.headers['authorization'], 'Bearer sk-first-key');
  assert.ok(first.tokens_in > 0);
  assert.equal(first.cost_usd, first.tokens_in * 1, 'the stored price, loaded at start');

  // Another process changes the key and the price, and announces both.
  await db.transaction(async (tx) => {
    await updateCredential(tx, id, { apiKeySealed: box.seal('sk-second-key', id) });
    await notifyCredentialsChanged(tx);
    await putPriceOverride(tx, 'local-llm', 'gpt-4.1-mini', { input_per_1m: 2_000_000, output_per_1m: 0 });
    await notifyPricesChanged(tx);
  });
  await worker.waitForLine((l) => l.message === 'prices loaded' && JSON.stringify(l['overrides']).includes('local-llm') && worker.linesWith('prices loaded').length >= 2, 10_000, 'the price reload');
  await worker.waitForLine(() => worker.linesWith('providers loaded from credentials').length >= 2, 10_000, 'the credential reload');
  const second = await runOnce();
  assert.equal(llm.requests.at(-1)?.headers['authorization'], 'Bearer sk-second-key');
  assert.equal(second.cost_usd, second.tokens_in * 2, 'the new price, after NOTIFY');
  for (const key of ['sk-first-key', 'sk-second-key', keyText]) assert.ok(!worker.stderr.includes(key), 'no key in the worker\'s log');
  await worker.terminate();
});

void test('a worker without the secret key says the credential is unusable, and the step fails saying so', async (t) => {
  const h = await setup(t);
  if (!h) return;
  const { db, engine, procs, llm } = h;
  const box = new SecretBox(parseSecretKey(generateSecretKeyText(), 'test'));
  const id = randomUUID();
  await insertCredential(db, {
    id, name: 'local-llm', kind: 'openai-compatible', baseUrl: llm.openaiBaseUrl, defaultModel: null, allowPrivate: true,
    apiKeySealed: box.seal('sk-unreachable', id), createdBy: null,
  });
  const worker = procs.worker({ url: h.url, env: { WEFT_SECRET_KEY: '', WEFT_DATA: '/nonexistent-weft-data' } });
  await worker.waitForStart();
  const line = await worker.waitForLine((l) => l.message === 'providers loaded from credentials', 5000, 'the credential load');
  assert.deepEqual(line['unusable'], ['local-llm']);
  const version = await engine.registerWorkflow(WORKFLOW);
  const runId = await engine.startRun({ versionId: version.versionId });
  assert.equal(await engine.waitForRun(runId, 20_000), 'failed');
  const run = (await engine.getRun(runId))!;
  assert.equal(run.error?.code, 'WEFT_PROVIDER_MISSING');
  assert.equal(llm.requests.length, 0, 'nothing was sent without a key');
  await worker.terminate();
});
