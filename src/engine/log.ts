/** Structured logs, one JSON object a line. Never pass secrets or step outputs as fields. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export function streamLogger(write: (line: string) => void, minLevel: 'info' | 'warn' = 'info'): Logger {
  const emit = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }) + '\n');
  return {
    info: minLevel === 'info' ? emit('info') : () => {},
    warn: emit('warn'),
    error: emit('error'),
  };
}

/** A logger that keeps lines in memory (tests assert on what was logged). */
export function memoryLogger(): Logger & { lines: { level: string; message: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const push = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(fields === undefined ? { level, message } : { level, message, fields });
  };
  return { lines, info: push('info'), warn: push('warn'), error: push('error') };
}
