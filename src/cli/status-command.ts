import { WeftError } from '../core/errors.ts';
import { TERMINAL_RUN } from '../core/scheduler-types.ts';
import { Engine } from '../engine/engine.ts';
import { openDatabase } from '../store/open-db.ts';
import { parse, UsageError } from './args.ts';

const USAGE = 'Usage: weft status RUN_ID [--wait] [--timeout-ms MS] [--db URL | --data DIR]';

/** Prints a run as JSON (status, steps, outputs); with --wait, once it is terminal (exit 0 iff succeeded). */
export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    wait: { type: 'boolean' },
    'timeout-ms': { type: 'string' },
    db: { type: 'string' },
    data: { type: 'string' },
  }, USAGE);
  const runId = positionals[0];
  if (!runId || positionals.length > 1) throw new UsageError(USAGE);
  if (!/^[0-9a-f-]{36}$/i.test(runId)) throw new UsageError(`'${runId}' is not a run id\n\n${USAGE}`);
  const db = await openDatabase({ url: values.db ?? process.env['DATABASE_URL'], dataDir: values.data ?? '.weft' });
  const engine = new Engine({ db, worker: false });
  try {
    if (values.wait) await engine.waitForRun(runId, Number(values['timeout-ms'] ?? 24 * 3600_000), 250);
    const run = await engine.getRun(runId);
    if (!run) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} not found`);
    const view = {
      id: run.id,
      status: run.status,
      workflow_id: run.workflow_id,
      version_id: run.version_id,
      created_at: run.created_at,
      finished_at: run.finished_at,
      simulated: run.simulated,
      tokens: { in: run.tokens_in, out: run.tokens_out },
      steps: run.steps.map((s) => ({
        id: s.step_id, status: s.status, attempt: s.attempt, duration_ms: s.duration_ms,
        ...(s.branch ? { branch: s.branch } : {}), ...(s.skip_reason ? { skip_reason: s.skip_reason } : {}), ...(s.error ? { error: s.error } : {}),
      })),
      outputs: run.outputs,
      error: run.error,
    };
    process.stdout.write(JSON.stringify(view, null, 2) + '\n');
    if (!values.wait) return 0;
    return run.status === 'succeeded' ? 0 : TERMINAL_RUN.has(run.status) ? 1 : 2;
  } finally {
    await db.close();
  }
}
