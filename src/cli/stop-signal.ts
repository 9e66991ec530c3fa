/**
 * The signal that asks a long-running command (serve, worker) to stop. Listen before the
 * command announces it is up: whoever reads that announcement may signal at once, and a
 * SIGTERM that arrives before any listener kills the process instead of stopping it.
 */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}
