import { readFile } from 'node:fs/promises';
import { parseDefinitionText } from '../core/parse-definition.ts';
import { coerceInputPairs } from '../core/inputs.ts';
import { WeftError } from '../core/errors.ts';
import { Engine } from '../engine/engine.ts';
import { streamLogger } from '../engine/log.ts';
import { migrate } from '../store/migrate.ts';
import { openDatabase } from '../store/open-db.ts';
import { parse, UsageError } from './args.ts';
import { followStoredSettings, type StoredSettings } from './stored-settings.ts';
import { formatOf } from './main.ts';
import { Progress } from './progress.ts';

const USAGE = `Usage: weft run FILE [--input key=value]... [--inputs FILE.json] [--db URL | --data DIR] [--workers N] [--detach] [--quiet]
              [--budget USD] [--provider NAME]

  --workers N      steps this process runs at once (default 8); 0 leaves execution to \`weft worker\` processes
  --detach         enqueue the run, print its id and exit (a worker or server runs it)
  --budget USD     spending limit: an AI step whose next call would pass it pauses the run into an approval
  --provider NAME  default provider for steps and agents that name none (e.g. simulated)`;

/** Validates, runs on this process's engine, shows progress, prints outputs; exit 0 iff succeeded. */
export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    input: { type: 'string', multiple: true },
    inputs: { type: 'string' },
    db: { type: 'string' },
    data: { type: 'string' },
    workers: { type: 'string' },
    concurrency: { type: 'string' },
    detach: { type: 'boolean' },
    quiet: { type: 'boolean' },
    budget: { type: 'string' },
    provider: { type: 'string' },
  }, USAGE);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError(USAGE);
  const workersFlag = values.workers ?? values.concurrency;
  const concurrency = workersFlag === undefined ? 8 : Number(workersFlag);
  if (!Number.isInteger(concurrency) || concurrency < 0) throw new UsageError(`--workers must be a whole number\n\n${USAGE}`);
  const inProcess = concurrency > 0 && !values.detach;
  const budgetUsd = values.budget === undefined ? undefined : Number(values.budget);
  if (budgetUsd !== undefined && (values.budget!.trim() === '' || !Number.isFinite(budgetUsd) || budgetUsd < 0)) {
    throw new UsageError(`--budget must be an amount in USD, ≥ 0\n\n${USAGE}`);
  }

  const definition = parseDefinitionText(await readFile(file, 'utf8'), formatOf(file));
  let inputs: Record<string, unknown> = {};
  if (values.inputs) {
    const parsed = parseDefinitionText(await readFile(values.inputs, 'utf8'), 'json');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--inputs ${values.inputs} must hold a JSON object`);
    inputs = parsed as Record<string, unknown>;
  }
  const pairs = (values.input ?? []).map((pair): [string, string] => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input expects key=value, got '${pair}'`);
    return [pair.slice(0, eq), pair.slice(eq + 1)];
  });
  const schema = (definition as { inputs?: Record<string, unknown> }).inputs;
  inputs = { ...inputs, ...coerceInputPairs(schema, pairs) };

  const dataDir = values.data ?? '.weft';
  const db = await openDatabase({ url: values.db ?? process.env['DATABASE_URL'], dataDir });
  const log = streamLogger((l) => process.stderr.write(l), 'warn');
  const engine = new Engine({ db, log, worker: inProcess ? { concurrency } : false });
  let settings: StoredSettings | undefined;
  try {
    await migrate(db);
    // Stored credentials and prices, as the server has them (only needed to run steps here).
    if (inProcess) settings = await followStoredSettings(db, log, dataDir);
    const version = await engine.registerWorkflow(definition);
    await engine.start();
    const runId = await engine.startRun({
      versionId: version.versionId, inputs,
      ...(budgetUsd === undefined ? {} : { budgetUsd }),
      ...(values.provider === undefined ? {} : { provider: values.provider }),
    });
    if (values.detach) {
      process.stdout.write(runId + '\n');
      if (db.kind === 'pglite' && !values.quiet) {
        process.stderr.write('note: the run waits in the embedded database until a `weft run` or server opens this data folder\n');
      }
      return 0;
    }
    const progress = new Progress(process.stderr, version.compiled.order, process.stderr.isTTY === true && !values.quiet);
    if (!values.quiet) process.stderr.write(`run ${runId} of ${version.compiled.definition.name} (version ${version.version}) on ${db.description}\n`);
    const status = await follow(engine, runId, values.quiet ? undefined : progress, values.quiet ? undefined : (text) => process.stderr.write(text));
    const run = await engine.getRun(runId);
    if (!run) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} vanished`);
    if (run.simulated && !values.quiet) process.stderr.write('note: this run used the offline `simulated` provider; its AI outputs are not real model output\n');
    if (status === 'succeeded') {
      process.stdout.write(JSON.stringify(inDefinitionOrder(run.outputs ?? {}, version.compiled.definition.outputs), null, 2) + '\n');
      return 0;
    }
    process.stderr.write(`run ${status}${run.error ? `: ${run.error.code}: ${run.error.message}` : ''}\n`);
    return 1;
  } finally {
    await engine.stop();
    await settings?.stop();
    await db.close();
  }
}

/**
 * Polls the event log (so it also shows work done by other processes) until the run ends. A
 * budget pause is said once per approval: the run waits for someone to decide it (API).
 */
async function follow(engine: Engine, runId: string, progress: Progress | undefined, say: ((text: string) => void) | undefined) {
  let last = '0';
  let draining: Promise<void> = Promise.resolve();
  // Drains run one after another, so no event is printed twice.
  const drain = () => (draining = draining.then(drainOnce));
  const drainOnce = async () => {
    for (;;) {
      const events = await engine.listEvents(runId, last);
      if (events.length === 0) return;
      last = events[events.length - 1]!.id;
      progress?.apply(events);
      for (const e of events) {
        if (e.type !== 'approval_requested' || e.data['reused'] === true) continue;
        say?.(`run ${runId} paused: step ${e.stepId}'s next model call (about $${Number(e.data['estimate_usd']).toFixed(6)}) would pass its budget of $${String(e.data['budget_usd'])}; `
          + `decide with POST /api/runs/${runId}/approvals/${String(e.data['approval_id'])} {"decision": "approve", "budget_usd": …} (or "reject")\n`);
      }
    }
  };
  const ticker = setInterval(() => void drain(), 100);
  try {
    const status = await engine.waitForRun(runId, 24 * 3600_000);
    return status;
  } finally {
    clearInterval(ticker);
    await drain();
  }
}

/** jsonb stores keys in its own order; print outputs in the order the definition gives them. */
function inDefinitionOrder(outputs: Record<string, unknown>, declared: Record<string, string> | undefined): Record<string, unknown> {
  if (!declared) return outputs;
  return Object.fromEntries(Object.keys(declared).map((k) => [k, outputs[k]]));
}
