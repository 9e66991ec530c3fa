import type { TestContext } from 'node:test';
import { readFile } from 'node:fs/promises';
import { parseDefinitionText } from '../../src/core/parse-definition.ts';
import { Engine, type EngineOptions } from '../../src/engine/engine.ts';
import type { Db } from '../../src/store/db.ts';
import { openTestDb, type Backend } from './db.ts';

/** Fast timers so lease and sweep behaviour shows within a test's patience. */
export const FAST_WORKER = { pollMs: 50, heartbeatMs: 100, leaseMs: 1000, sweepMs: 100, drainMs: 2000, concurrency: 8 };

/** An engine (with a worker unless told otherwise) on an isolated database; stopped after the test. */
export async function testEngine(
  backend: Backend,
  t: TestContext,
  options: Omit<EngineOptions, 'db'> = {},
): Promise<{ engine: Engine; db: Db } | undefined> {
  const db = await openTestDb(backend, t);
  if (!db) return undefined;
  const engine = new Engine({
    db,
    settings: { allowPrivateNetwork: true, ...options.settings },
    ...options,
    worker: options.worker === false ? false : { ...FAST_WORKER, ...options.worker },
  });
  await engine.start();
  t.after(async () => {
    await engine.stop();
    await db.close();
  });
  return { engine, db };
}

/** Registers a definition and starts a run of it. */
/** A workflow of examples/ (YAML), parsed as the CLI reads it. */
export async function example(name: string): Promise<unknown> {
  return parseDefinitionText(await readFile(new URL(`../../examples/${name}`, import.meta.url), 'utf8'), 'yaml');
}

export async function launch(engine: Engine, definition: unknown, inputs: unknown = {}): Promise<string> {
  const v = await engine.registerWorkflow(definition);
  return engine.startRun({ versionId: v.versionId, inputs });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
