/**
 * Which providers this server can use. `simulated` is always there; `openai` and `anthropic`
 * are built in and read their key (and optional base URL) from the environment; admins add
 * named OpenAI-compatible endpoints (Ollama, vLLM, Azure…) through `configureProviders`.
 *
 * A provider that is known but not usable (no key, bad base URL) stays listed with the reason,
 * so a step asking for it fails with an error that says what to set — never a fake success.
 * Keys are held only in the provider closures; no message here or below quotes one.
 */
import { WeftError } from '../core/errors.ts';
import { createAnthropicProvider } from './anthropic.ts';
import { createOpenAICompatibleProvider, type OpenAICompatibleConfig } from './openai-compatible.ts';
import type { ProviderHttpOptions } from './provider-http.ts';
import { simulatedProvider } from './simulated.ts';
import type { Provider } from './types.ts';

interface BaseProviderConfig {
  /** What steps write in `provider:`; letters, digits, `-`, `_`, `.`. */
  name: string;
  /** Default base URL; `baseUrlEnv`, when set in the environment, wins. */
  baseUrl?: string;
  baseUrlEnv?: string;
  /** A stored credential; wins over `apiKeyEnv`. */
  apiKey?: string;
  /** Environment variable holding the key. */
  apiKeyEnv?: string;
  /** Refuse to register without a key (default: true when `apiKeyEnv` is set, always for Anthropic). */
  requiresKey?: boolean;
  defaultModel?: string;
  headers?: Record<string, string>;
  /** Timeouts and retries; the network policy is `allowPrivateNetwork` below and `configureProviders`'. */
  http?: Omit<ProviderHttpOptions, 'allowPrivateNetwork'>;
  /**
   * This endpoint may be on loopback or a private network (a stored credential's
   * `allow_private`: a local Ollama) even when the server-wide policy says no. Only opens:
   * false or absent leaves the server-wide policy.
   */
  allowPrivateNetwork?: boolean;
}

/** An endpoint speaking the OpenAI chat-completions and images API. */
export interface OpenAICompatibleProviderConfig extends BaseProviderConfig {
  kind: 'openai-compatible';
  auth?: OpenAICompatibleConfig['auth'];
  apiVersion?: string;
  defaultImageModel?: string;
  maxTokensField?: OpenAICompatibleConfig['maxTokensField'];
  idempotencyKeys?: boolean;
  streamUsage?: boolean;
  imageResponseFormat?: OpenAICompatibleConfig['imageResponseFormat'];
}

/** An endpoint speaking Anthropic's Messages API. */
export interface AnthropicProviderConfig extends BaseProviderConfig {
  kind: 'anthropic';
  defaultMaxTokens?: number;
}

export type ProviderConfig = OpenAICompatibleProviderConfig | AnthropicProviderConfig;

/** What `configureProviders` needs. */
export interface ProvidersSetup {
  /** Added to (or, by name, replacing) the built-in `openai` and `anthropic`. */
  providers: ProviderConfig[];
  /** WEFT_ALLOW_PRIVATE_NETWORK: every base URL may be loopback/private (Ollama on localhost); a provider's own setting can open it for that provider alone. */
  allowPrivateNetwork: boolean;
  /** Where keys and base URLs are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** One provider's state, for status pages: never includes the key. */
export interface ProviderStatus {
  name: string;
  kind: 'simulated' | 'custom' | ProviderConfig['kind'];
  available: boolean;
  /** Why it is not available. */
  reason?: string;
}

/**
 * The built-ins. Default models are non-reasoning ones on purpose: agent profiles set a
 * temperature, which OpenAI's reasoning models refuse.
 */
export const BUILTIN_PROVIDERS: readonly ProviderConfig[] = [
  {
    kind: 'openai-compatible',
    name: 'openai',
    baseUrl: 'https://api.openai.com/v1',
    baseUrlEnv: 'OPENAI_BASE_URL',
    apiKeyEnv: 'OPENAI_API_KEY',
    defaultModel: 'gpt-4.1-mini',
    defaultImageModel: 'gpt-image-1',
    maxTokensField: 'max_completion_tokens',
  },
  {
    kind: 'anthropic',
    name: 'anthropic',
    baseUrl: 'https://api.anthropic.com',
    baseUrlEnv: 'ANTHROPIC_BASE_URL',
    apiKeyEnv: 'ANTHROPIC_API_KEY',
    defaultModel: 'claude-sonnet-4-5',
  },
];

type Entry = { status: ProviderStatus; provider?: Provider };

let entries: Map<string, Entry> | undefined;

function keyHint(config: ProviderConfig): string {
  return config.apiKeyEnv ? `set ${config.apiKeyEnv}` : 'store an API key for it';
}

function build(config: ProviderConfig, allowPrivateNetwork: boolean, env: NodeJS.ProcessEnv): Entry {
  const status = { name: config.name, kind: config.kind };
  const unavailable = (reason: string): Entry => ({ status: { ...status, available: false, reason } });
  const apiKey = config.apiKey || (config.apiKeyEnv ? env[config.apiKeyEnv] : undefined) || undefined;
  const requiresKey = config.requiresKey ?? (config.kind === 'anthropic' || config.apiKeyEnv !== undefined);
  if (requiresKey && apiKey === undefined) return unavailable(`it needs an API key: ${keyHint(config)}`);
  const baseUrl = (config.baseUrlEnv ? env[config.baseUrlEnv] : undefined) || config.baseUrl;
  const where = config.baseUrlEnv ? ` (${config.baseUrlEnv})` : '';
  if (!baseUrl) return unavailable(`it has no base URL${where}`);
  let parsed: URL | undefined;
  try {
    parsed = new URL(baseUrl);
  } catch {
    parsed = undefined;
  }
  // The URL is not echoed: it may carry credentials.
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    return unavailable(`its base URL${where} is not a valid http(s) URL`);
  }
  const http: ProviderHttpOptions = { ...config.http, allowPrivateNetwork: allowPrivateNetwork || config.allowPrivateNetwork === true };
  const common = { name: config.name, baseUrl, defaultModel: config.defaultModel, ...(config.headers ? { headers: config.headers } : {}), http };
  const provider =
    config.kind === 'anthropic'
      ? createAnthropicProvider({ ...common, apiKey: apiKey ?? '', ...(config.defaultMaxTokens ? { defaultMaxTokens: config.defaultMaxTokens } : {}) })
      : createOpenAICompatibleProvider({
          ...common,
          apiKey,
          apiVersion: config.apiVersion,
          defaultImageModel: config.defaultImageModel,
          ...(config.auth ? { auth: config.auth } : {}),
          ...(config.maxTokensField ? { maxTokensField: config.maxTokensField } : {}),
          ...(config.idempotencyKeys === undefined ? {} : { idempotencyKeys: config.idempotencyKeys }),
          ...(config.streamUsage === undefined ? {} : { streamUsage: config.streamUsage }),
          ...(config.imageResponseFormat ? { imageResponseFormat: config.imageResponseFormat } : {}),
        });
  return { status: { ...status, available: true }, provider };
}

/**
 * Replaces the provider set: `simulated`, the built-ins, then `setup.providers` (a later
 * entry with the same name replaces an earlier one). Returns each provider's status. Throws
 * WEFT_SCHEMA for a config that cannot be right (a bad name, or one naming `simulated`).
 */
export function configureProviders(setup: ProvidersSetup): ProviderStatus[] {
  const env = setup.env ?? process.env;
  const configs = new Map<string, ProviderConfig>();
  for (const config of [...BUILTIN_PROVIDERS, ...setup.providers]) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(config.name) || config.name === simulatedProvider.name) {
      throw new WeftError('WEFT_SCHEMA', `provider name '${config.name.slice(0, 64)}' is not allowed`);
    }
    configs.set(config.name, config);
  }
  const next = new Map<string, Entry>([[simulatedProvider.name, { status: { name: simulatedProvider.name, kind: 'simulated', available: true }, provider: simulatedProvider }]]);
  for (const config of configs.values()) next.set(config.name, build(config, setup.allowPrivateNetwork, env));
  entries = next;
  return listProviders();
}

/** Used until `configureProviders` is called: the built-ins from process.env. */
function current(): Map<string, Entry> {
  if (entries === undefined) {
    configureProviders({ providers: [], allowPrivateNetwork: process.env['WEFT_ALLOW_PRIVATE_NETWORK'] === '1' });
  }
  return entries!;
}

/** Every known provider and whether it can be used. */
export function listProviders(): ProviderStatus[] {
  return [...current().values()].map((e) => ({ ...e.status }));
}

/** Test seam and extension point: registers a ready-made provider under its name, until the next `configureProviders`. */
export function registerProvider(provider: Provider): void {
  current().set(provider.name, { status: { name: provider.name, kind: provider.simulated ? 'simulated' : 'custom', available: true }, provider });
}

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
  const all = current();
  const entry = all.get(name);
  if (entry?.provider) return entry.provider;
  if (entry) {
    throw new WeftError('WEFT_PROVIDER_MISSING', `step '${stepId}' asks for provider '${name}', which is not usable on this server: ${entry.status.reason ?? 'not configured'}`);
  }
  const available = [...all.values()].filter((e) => e.provider).map((e) => e.status.name);
  throw new WeftError(
    'WEFT_PROVIDER_MISSING',
    `step '${stepId}' asks for provider '${name}', which is not configured on this server (available: ${available.join(', ')})`,
  );
}
