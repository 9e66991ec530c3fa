/**
 * `weft <command>`: serve | run | worker | status | validate | migrate. Exit codes: 0 success, 1 the run (or the
 * definition) failed, 2 bad usage or input.
 */
import { readFile } from 'node:fs/promises';
import { DefinitionError, WeftError, type Problem } from '../core/errors.ts';
import { checkDefinition } from '../core/compiler.ts';
import { parseDefinitionText } from '../core/parse-definition.ts';
import { migrate } from '../store/migrate.ts';
import { openDatabase } from '../store/open-db.ts';
import { parse, UsageError } from './args.ts';
import { runCommand } from './run-command.ts';
import { serveCommand } from './serve-command.ts';
import { statusCommand } from './status-command.ts';
import { workerCommand } from './worker-command.ts';

const USAGE = `weft — durable workflows for AI agents

Usage:
  weft serve [--port N] [--host H] [--data DIR | --db URL] [--concurrency N] [--workers 0]
  weft run FILE [--input key=value]... [--inputs FILE.json] [--db URL | --data DIR] [--workers N] [--detach] [--budget USD] [--provider NAME]
  weft worker [--db URL] [--concurrency N] [--health-port P] [--data DIR]
  weft status RUN_ID [--wait] [--db URL | --data DIR]
  weft validate FILE
  weft migrate [--db URL | --data DIR]

The embedded database lives in --data (default ./.weft); --db or DATABASE_URL selects PostgreSQL.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serveCommand(rest);
      case 'run':
        return await runCommand(rest);
      case 'validate':
        return await validateCommand(rest);
      case 'worker':
        return await workerCommand(rest);
      case 'status':
        return await statusCommand(rest);
      case 'migrate':
        return await migrateCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'\n\n${USAGE}`);
    }
  } catch (error) {
    return reportError(error);
  }
}

export function reportError(error: unknown): number {
  if (error instanceof UsageError) {
    process.stderr.write(`weft: ${error.message}\n`);
    return 2;
  }
  if (error instanceof DefinitionError) {
    printProblems(error.problems);
    return 2;
  }
  if (error instanceof WeftError) {
    process.stderr.write(`weft: ${error.code}: ${error.message}\n`);
    return 2;
  }
  process.stderr.write(`weft: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  return 1;
}

export function printProblems(problems: readonly Problem[], file?: string): void {
  for (const p of problems) {
    const where = `${file ? file + ':' : ''}${p.path || '/'}`;
    process.stderr.write(`${p.severity === 'warning' ? 'warning' : 'error'} ${where}: ${p.message} [${p.code}]\n`);
  }
}

async function validateCommand(args: string[]): Promise<number> {
  const usage = 'Usage: weft validate FILE';
  const { positionals } = parse(args, {}, usage);
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError(usage);
  let problems: Problem[];
  try {
    problems = checkDefinition(parseDefinitionText(await readFile(file, 'utf8'), formatOf(file)));
  } catch (error) {
    if (error instanceof WeftError) problems = error.problems.length > 0 ? error.problems : [{ code: error.code, path: '', message: error.message }];
    else throw error;
  }
  printProblems(problems, file);
  return problems.some((p) => p.severity !== 'warning') ? 1 : 0;
}

async function migrateCommand(args: string[]): Promise<number> {
  const usage = 'Usage: weft migrate [--db URL | --data DIR]';
  const { values } = parse(args, { db: { type: 'string' }, data: { type: 'string' } }, usage);
  const db = await openDatabase({ url: values.db ?? process.env['DATABASE_URL'], dataDir: values.data ?? '.weft' });
  try {
    const applied = await migrate(db);
    process.stderr.write(applied.length ? `applied migrations ${applied.join(', ')} to ${db.description}\n` : `${db.description} is up to date\n`);
    return 0;
  } finally {
    await db.close();
  }
}

export function formatOf(file: string): 'json' | 'yaml' {
  return file.endsWith('.json') ? 'json' : 'yaml';
}
