import { WeftError } from '../core/errors.ts';
import { simulatedProvider } from './simulated.ts';
import type { Provider } from './types.ts';

const providers = new Map<string, Provider>([[simulatedProvider.name, simulatedProvider]]);

/**
 * Finds the provider a step asked for (or the server's default). A step with none, or one
 * that is not configured, fails with a clear, non-retryable error — never a fake success.
 */
export function resolveProvider(stepId: string, requested: string | undefined, fallback: string | undefined): Provider {
  const name = requested ?? fallback;
  if (name === undefined) {
    throw new WeftError(
      'WEFT_PROVIDER_MISSING',
      `step '${stepId}' names no provider and none is configured: set \`provider: simulated\` on the step to try it offline (its output is labelled simulated), or configure a real provider`,
    );
  }
  const provider = providers.get(name);
  if (!provider) {
    throw new WeftError(
      'WEFT_PROVIDER_MISSING',
      `step '${stepId}' asks for provider '${name}', which is not configured on this server (available: ${[...providers.keys()].join(', ')})`,
    );
  }
  return provider;
}
