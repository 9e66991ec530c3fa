import type { StepDefinitionOf } from '../core/definition-schema.ts';
import type { StepExecutor } from './types.ts';

/**
 * `delay`: waits `ms`, holding the step's lease (heartbeats keep it). Cancel and timeouts abort
 * the wait through the signal. A worker crash restarts the wait on the next attempt.
 */
export const delayStep: StepExecutor = async (ctx) => {
  const def = ctx.step.definition as StepDefinitionOf<'delay'>;
  await new Promise<void>((resolve, reject) => {
    ctx.signal.throwIfAborted();
    const timer = setTimeout(() => {
      ctx.signal.removeEventListener('abort', onAbort);
      resolve();
    }, def.ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(ctx.signal.reason);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
  return { output: { waited_ms: def.ms } };
};
