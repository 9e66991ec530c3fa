/** What agent, review and image steps need from a model provider. */

/** A JSON Schema document (plain JSON). */
export type JsonSchema = Record<string, unknown>;

/** A function the model may call; `parameters` is the JSON Schema of its arguments object. */
export interface ToolDefinition {
  name: string;
  description?: string;
  parameters: JsonSchema;
  /** OpenAI strict mode (the schema must then be strict-compatible); ignored elsewhere. */
  strict?: boolean;
}

/** 'auto' (default), 'none', 'required' (some tool), or exactly the named tool. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** One tool call the model asked for. `arguments` is the parsed JSON arguments object. */
export interface ToolCall {
  /** The provider's id; echo it back in the `tool` message that carries the result. */
  id: string;
  name: string;
  arguments: unknown;
}

/** Structured output: the reply must be JSON matching `schema`. */
export interface ResponseSchema {
  /** A short identifier (letters, digits, `_`, `-`); default 'response'. */
  name?: string;
  schema: JsonSchema;
  /** OpenAI strict mode (default true): every property required, additionalProperties false. */
  strict?: boolean;
}

/** One turn of a conversation. A `tool` message answers the assistant's tool call `toolCallId`. */
export type ChatMessage =
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string; isError?: boolean };

/** Why the model stopped, normalised across APIs; `other` covers anything new. */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'other';

export interface ChatRequest {
  model: string | undefined;
  system: string | undefined;
  /**
   * The user's turn. With `messages`, it is appended as the last user message when non-empty,
   * so an agent loop passes the history in `messages` and '' here.
   */
  prompt: string;
  temperature: number | undefined;
  /** Nucleus sampling; absent: the API's default. */
  topP?: number | undefined;
  maxTokens: number | undefined;
  /** Same across retries of one step of one run; sent where the API accepts one. */
  idempotencyKey: string;
  signal: AbortSignal;
  /** Earlier turns (including assistant tool calls and their results), oldest first. */
  messages?: ChatMessage[];
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  /** Ask for JSON matching this schema; the parsed value comes back in `ChatResponse.json`. */
  responseSchema?: ResponseSchema;
  /** Stream the reply (implied by `onToken`). */
  stream?: boolean;
  /**
   * Called with each text fragment as it arrives, in order; their concatenation is the final
   * `text`. A provider retries only before the answer starts streaming, so fragments are never
   * repeated within one call (an engine retry of the step starts a new stream). Must not throw.
   */
  onToken?: (text: string) => void;
}

export interface ChatResponse {
  text: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  /** Tool calls the model asked for, in order; empty when it answered in text. */
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  /** With `responseSchema`: the parsed JSON reply (`text` holds it serialised). */
  json?: unknown;
}

export interface ImageRequest {
  model: string | undefined;
  prompt: string;
  /** Dimensions, e.g. '1024x1024'. */
  size: string;
  idempotencyKey: string;
  signal: AbortSignal;
}

export interface ImageResponse {
  /**
   * Where the image can be fetched (a provider URL, which may expire), or a data: URL when the
   * API returned the bytes inline. Prefer storing `bytes`.
   */
  url: string;
  /** Sniffed from the bytes when they are present (image/png, image/jpeg, image/webp…). */
  contentType: string;
  model: string;
  /** The image itself, when the provider returned or fetched it. */
  bytes?: Uint8Array;
  /** Hex SHA-256 of the image bytes. */
  sha256: string;
  /** Length of the image in bytes (not its dimensions: those are the request's `size`). */
  size: number;
}

export interface Provider {
  readonly name: string;
  /** True only for the offline `simulated` provider; runs that used it are labelled. */
  readonly simulated: boolean;
  /** The chat model used when a request names none (for cost estimates). */
  readonly defaultModel?: string;
  chat(request: ChatRequest): Promise<ChatResponse>;
  image(request: ImageRequest): Promise<ImageResponse>;
}
