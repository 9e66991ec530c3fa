import { readFile } from 'node:fs/promises';
import { parseDefinitionText } from '../core/parse-definition.ts';
import { coerceInputPairs } from '../core/inputs.ts';
import { WeftError } from '../core/errors.ts';
import { Engine } from '../engine/engine.ts';
import { streamLogger } from '../engine/log.ts';
import { migrate } from '../store/migrate.ts';
import { openDatabase } from '../store/open-db.ts';
import { parse, UsageError } from './args.ts';
import { formatOf } from './main.ts';
import { Progress } from './progress.ts';

const USAGE = `Usage: weft run FILE [--input key=value]... [--inputs FILE.json] [--db URL | --data DIR] [--workers N] [--detach] [--quiet]

  --workers N   steps this process runs at once (default 8); 0 leaves execution to \`weft worker\` processes
  --detach      enqueue the run, print its id and exit (a worker or server runs it)`;

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
  }, USAGE);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError(USAGE);
  const workersFlag = values.workers ?? values.concurrency;
  const concurrency = workersFlag === undefined ? 8 : Number(workersFlag);
  if (!Number.isInteger(concurrency) || concurrency < 0) throw new UsageError(`--workers must be a whole number\n\n${USAGE}`);
  const inProcess = concurrency > 0 && !values.detach;

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

  const db = await openDatabase({ url: values.db ?? process.env['DATABASE_URL'], dataDir: values.data ?? '.weft' });
  const engine = new Engine({ db, log: streamLogger((l) => process.stderr.write(l), 'warn'), worker: inProcess ? { concurrency } : false });
  try {
    await migrate(db);
    const version = await engine.registerWorkflow(definition);
    await engine.start();
    const runId = await engine.startRun({ versionId: version.versionId, inputs });
    if (values.detach) {
      process.stdout.write(runId + '\n');
      if (db.kind === 'pglite' && !values.quiet) {
        process.stderr.write('note: the run waits in the embedded database until a `weft run` or server opens this data folder\n');
      }
      return 0;
    }
    const progress = new Progress(process.stderr, version.compiled.order, process.stderr.isTTY === true && !values.quiet);
    if (!values.quiet) process.stderr.write(`run ${runId} of ${version.compiled.definition.name} (version ${version.version}) on ${db.description}\n`);
    const status = await follow(engine, runId, values.quiet ? undefined : progress);
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
    await db.close();
  }
}

/** Polls the event log (so it also shows work done by other processes) until the run ends. */
async function follow(engine: Engine, runId: string, progress: Progress | undefined) {
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
