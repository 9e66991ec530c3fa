/**
 * Child `weft` processes for chaos tests: spawn `bin/weft.mjs` (usually `weft worker`), read
 * its JSON log lines from stderr, wait for a line, signal it (SIGKILL, SIGSTOP, SIGCONT,
 * SIGTERM), and make sure none outlives the test.
 *
 * Cleanup has two layers: `ProcessGroup.killAll()` (call it from `t.after`, before the
 * database the children use goes away) SIGKILLs every child still running and waits for it
 * to exit; and `atProcessEnd` finalizers SIGKILL anything still alive if the test process
 * ends without running its hooks: on `exit` (an uncaught error, `process.exit`) and on
 * SIGINT/SIGTERM/SIGHUP (Ctrl-C, a runner's timeout), after which the signal is re-raised.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const BIN = new URL('../../bin/weft.mjs', import.meta.url).pathname;

/** One stderr line: the worker's structured log (`{time, level, message, ...fields}`), or raw text. */
export interface LogLine {
  level?: string;
  message?: string;
  /** Set when the line was not JSON (e.g. a Node warning). */
  raw?: string;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const finalizers = new Set<() => void>();
let hooksInstalled = false;

function runFinalizers(): void {
  for (const f of [...finalizers]) {
    finalizers.delete(f);
    try {
      f();
    } catch {
      // best effort: the process is ending
    }
  }
}

/**
 * Runs `fn` (synchronous) if the test process ends before the caller's own cleanup: on exit,
 * or on SIGINT/SIGTERM/SIGHUP (then the signal is re-raised, so the process still dies of it).
 * Returns a function that unregisters `fn` once the caller has cleaned up itself.
 */
export function atProcessEnd(fn: () => void): () => void {
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on('exit', runFinalizers);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        runFinalizers();
        process.kill(process.pid, sig);
      });
    }
  }
  finalizers.add(fn);
  return () => finalizers.delete(fn);
}

export class WeftProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout = '';
  stderr = '';
  readonly lines: LogLine[] = [];
  /** undefined while the process runs. */
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  /** The worker id from its "worker started" line (set by `waitForStart`). */
  workerId: string | undefined;
  /** Set while the process is stopped by SIGSTOP (by us). */
  stopped = false;
  private partial = '';
  private readonly waiters = new Set<() => void>();

  constructor(readonly name: string, args: readonly string[], env: Record<string, string | undefined>) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (this.child.pid === undefined) throw new Error(`could not spawn ${name}`);
    const pid = (this.pid = this.child.pid);
    const forget = atProcessEnd(() => process.kill(pid, 'SIGKILL'));
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      this.notify();
    });
    this.child.stderr!.on('data', (d: Buffer) => this.onStderr(d.toString()));
    this.exited = new Promise<Exit>((resolve) => {
      // 'close', not 'exit': by then stderr is fully read (a crash's stack trace included).
      this.child.once('close', (code, signal) => {
        forget();
        this.exit = { code, signal };
        resolve(this.exit);
        this.notify();
      });
    });
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  private onStderr(text: string): void {
    this.stderr += text;
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const raw = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      if (raw.trim() === '') continue;
      try {
        const parsed = JSON.parse(raw) as unknown;
        this.lines.push(typeof parsed === 'object' && parsed !== null ? (parsed as LogLine) : { raw });
      } catch {
        this.lines.push({ raw });
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first log line matching `match` (already seen or to come); rejects on timeout or exit. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs: number, what = 'a log line'): Promise<LogLine> {
    return new Promise<LogLine>((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.find(match);
        if (found) {
          done();
          resolve(found);
          return true;
        }
        if (this.exit) {
          done();
          reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before ${what}; stderr:\n${this.stderr.slice(-4000)}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${this.name}; stderr:\n${this.stderr.slice(-4000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = () => void check();
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** Waits for "worker started" and returns the worker id it logs. */
  async waitForStart(timeoutMs = 30_000): Promise<string> {
    const line = await this.waitForLine((l) => l.message === 'worker started', timeoutMs, '"worker started"');
    this.workerId = String(line['worker']);
    return this.workerId;
  }

  /** Log lines whose message contains `text`. */
  linesWith(text: string): LogLine[] {
    return this.lines.filter((l) => (l.message ?? l.raw ?? '').includes(text));
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive) throw new Error(`${this.name} is not running (${JSON.stringify(this.exit)}); cannot send ${sig}`);
    process.kill(this.pid, sig);
    if (sig === 'SIGSTOP') this.stopped = true;
    if (sig === 'SIGCONT') this.stopped = false;
  }

  /** kill -9 and wait until it is gone. */
  async kill9(): Promise<Exit> {
    if (this.alive) process.kill(this.pid, 'SIGKILL');
    return this.exited;
  }

  /** SIGTERM, then the exit (SIGKILL after `timeoutMs`, and the promise rejects). */
  async terminate(timeoutMs = 30_000): Promise<Exit> {
    if (!this.alive) return this.exit!;
    if (this.stopped) this.signal('SIGCONT');
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void this.kill9();
        reject(new Error(`${this.name} did not exit within ${timeoutMs} ms of SIGTERM; stderr:\n${this.stderr.slice(-4000)}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface WorkerSpec {
  url: string;
  concurrency?: number;
  leaseMs?: number;
  drainMs?: number;
  healthPort?: number;
  env?: Record<string, string | undefined>;
}

/** The children of one test; `killAll` in its `t.after`. */
export class ProcessGroup {
  readonly all: WeftProcess[] = [];
  private count = 0;

  spawn(name: string, args: readonly string[], env: Record<string, string | undefined> = {}): WeftProcess {
    const p = new WeftProcess(name, args, env);
    this.all.push(p);
    return p;
  }

  /** `weft worker --db URL …` (not yet started: call `waitForStart`). */
  worker(spec: WorkerSpec, name = `worker-${++this.count}`): WeftProcess {
    const args = ['worker', '--db', spec.url, '--concurrency', String(spec.concurrency ?? 8)];
    if (spec.leaseMs !== undefined) args.push('--lease-ms', String(spec.leaseMs));
    if (spec.drainMs !== undefined) args.push('--drain-ms', String(spec.drainMs));
    if (spec.healthPort !== undefined) args.push('--health-port', String(spec.healthPort));
    return this.spawn(name, args, spec.env ?? {});
  }

  get alive(): WeftProcess[] {
    return this.all.filter((p) => p.alive);
  }

  /** SIGKILL every child still running (stopped ones included) and wait for each to exit. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.filter((p) => p.alive).map((p) => p.kill9()));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` returns a value other than undefined, or throws after `timeoutMs`. */
export async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
