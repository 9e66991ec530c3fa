/**
 * Anthropic's Messages API (`POST /v1/messages`, `anthropic-version: 2023-06-01`): text,
 * streaming, tool use and usage. Anthropic has no response_format; structured output is asked
 * for the way Anthropic documents it — one forced tool whose input schema is the reply's schema
 * — and that tool's input is the JSON reply.
 */
import { WeftError } from '../core/errors.ts';
import { joinUrl, postJson, withRedaction, type ProviderHttpOptions } from './provider-http.ts';
import { describeJsonError, parseJsonReply, parseModelJson, redact } from './reply-parsing.ts';
import type { SseEvent } from './sse-parser.ts';
import type { ChatRequest, ChatResponse, FinishReason, ImageResponse, JsonSchema, Provider, ToolCall } from './types.ts';

export const ANTHROPIC_VERSION = '2023-06-01';
/** Anthropic requires max_tokens; used when the step sets none. */
export const DEFAULT_ANTHROPIC_MAX_TOKENS = 4096;

/** How to reach the Messages API. */
export interface AnthropicConfig {
  name: string;
  /** Without `/v1`, as the official SDK: `https://api.anthropic.com`. */
  baseUrl: string;
  apiKey: string;
  defaultModel?: string | undefined;
  defaultMaxTokens?: number;
  headers?: Record<string, string>;
  http: ProviderHttpOptions;
}

type Block =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: string; [key: string]: unknown };

interface WireMessage {
  model?: string;
  content?: Block[];
  stop_reason?: string | null;
  usage?: WireUsage;
}

interface WireUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** Cache writes and reads are input the model read, so they count as tokens in. */
function inputTokens(usage: WireUsage | undefined): number | undefined {
  if (!usage || typeof usage.input_tokens !== 'number') return undefined;
  return usage.input_tokens + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

function finishReasonOf(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'other';
  }
}

/** The structured-output tool: its name, and whether a non-object schema was wrapped in `{value}`. */
interface StructuredTool {
  name: string;
  wrapped: boolean;
  definition: { name: string; description: string; input_schema: JsonSchema };
}

function structuredTool(request: ChatRequest): StructuredTool | undefined {
  if (!request.responseSchema) return undefined;
  const { name = 'response', schema } = request.responseSchema;
  // Tool inputs must be objects; any other schema travels as the `value` property.
  const wrapped = schema['type'] !== 'object';
  const input_schema = wrapped ? { type: 'object', properties: { value: schema }, required: ['value'] } : schema;
  return { name, wrapped, definition: { name, description: 'Give your reply as this structured result.', input_schema } };
}

function wireMessages(request: ChatRequest): unknown[] {
  const out: { role: 'user' | 'assistant'; content: unknown }[] = [];
  for (const m of request.messages ?? []) {
    if (m.role === 'user') out.push({ role: 'user', content: m.content });
    else if (m.role === 'assistant') {
      const blocks: unknown[] = m.content === '' ? [] : [{ type: 'text', text: m.content }];
      for (const c of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: c.id, name: c.name, input: c.arguments ?? {} });
      out.push({ role: 'assistant', content: blocks });
    } else {
      const result = { type: 'tool_result', tool_use_id: m.toolCallId, content: m.content, ...(m.isError ? { is_error: true } : {}) };
      // Results of one assistant turn's parallel calls belong in one user turn.
      const last = out[out.length - 1];
      if (last?.role === 'user' && Array.isArray(last.content)) (last.content as unknown[]).push(result);
      else out.push({ role: 'user', content: [result] });
    }
  }
  if (request.prompt !== '' || out.length === 0) out.push({ role: 'user', content: request.prompt });
  return out;
}

function requestBody(config: AnthropicConfig, request: ChatRequest, model: string, stream: boolean, structured: StructuredTool | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    max_tokens: request.maxTokens ?? config.defaultMaxTokens ?? DEFAULT_ANTHROPIC_MAX_TOKENS,
    messages: wireMessages(request),
  };
  if (request.system !== undefined && request.system !== '') body['system'] = request.system;
  if (request.temperature !== undefined) body['temperature'] = request.temperature;
  if (request.topP !== undefined) body['top_p'] = request.topP;
  const tools: unknown[] = (request.tools ?? []).map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), input_schema: t.parameters }));
  if (structured) {
    tools.push(structured.definition);
    body['tool_choice'] = { type: 'tool', name: structured.name };
  } else if (request.toolChoice !== undefined && tools.length > 0) {
    const c = request.toolChoice;
    body['tool_choice'] = c === 'auto' ? { type: 'auto' } : c === 'none' ? { type: 'none' } : c === 'required' ? { type: 'any' } : { type: 'tool', name: c.name };
  }
  if (tools.length > 0) body['tools'] = tools;
  if (stream) body['stream'] = true;
  return body;
}

/** Rebuilds the message from a stream: blocks by index, text and tool input JSON by fragments. */
class MessageAccumulator {
  model: string | undefined;
  stopReason: string | null | undefined;
  tokensIn = 0;
  tokensOut = 0;
  done = false;
  readonly blocks = new Map<number, { type: string; text: string; id: string; name: string; json: string }>();

  constructor(
    private readonly provider: string,
    private readonly onToken: ((text: string) => void) | undefined,
    private readonly secrets: readonly string[],
  ) {}

  onEvent(event: SseEvent): void {
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(event.data) as Record<string, unknown>;
    } catch {
      throw new WeftError('WEFT_HTTP_ERROR', `${this.provider}: a stream event is not JSON`, { retryable: true });
    }
    const type = (data['type'] as string | undefined) ?? event.event;
    const index = typeof data['index'] === 'number' ? data['index'] : 0;
    switch (type) {
      case 'message_start': {
        const message = (data['message'] ?? {}) as WireMessage;
        this.model = message.model;
        this.tokensIn = inputTokens(message.usage) ?? 0;
        this.tokensOut = message.usage?.output_tokens ?? 0;
        return;
      }
      case 'content_block_start': {
        const block = (data['content_block'] ?? {}) as Record<string, unknown>;
        const str = (k: string): string => (typeof block[k] === 'string' ? (block[k] as string) : '');
        this.blocks.set(index, { type: str('type'), text: str('text'), id: str('id'), name: str('name'), json: '' });
        return;
      }
      case 'content_block_delta': {
        const delta = (data['delta'] ?? {}) as Record<string, unknown>;
        const block = this.blocks.get(index);
        if (!block) return;
        if (delta['type'] === 'text_delta' && typeof delta['text'] === 'string') {
          block.text += delta['text'];
          if (delta['text'] !== '') this.onToken?.(delta['text']);
        } else if (delta['type'] === 'input_json_delta' && typeof delta['partial_json'] === 'string') {
          block.json += delta['partial_json'];
        }
        return; // thinking and signature deltas are not part of the reply
      }
      case 'message_delta': {
        const delta = (data['delta'] ?? {}) as Record<string, unknown>;
        if (delta['stop_reason'] !== undefined) this.stopReason = delta['stop_reason'] as string | null;
        const usage = data['usage'] as WireUsage | undefined;
        // message_delta usage is cumulative.
        if (typeof usage?.output_tokens === 'number') this.tokensOut = usage.output_tokens;
        this.tokensIn = inputTokens(usage) ?? this.tokensIn;
        return;
      }
      case 'message_stop':
        this.done = true;
        return;
      case 'error': {
        const info = describeJsonError(500, redact(event.data, this.secrets));
        const retryable = info.type === 'overloaded_error' || info.type === 'api_error' || info.type === 'rate_limit_error';
        throw new WeftError('WEFT_HTTP_ERROR', `${this.provider}: stream failed: ${info.type ?? 'error'}: ${info.message}`, { retryable, details: { provider: this.provider, type: info.type } });
      }
      default:
        return; // ping, content_block_stop and event types added later
    }
  }

  content(): Block[] {
    return [...this.blocks.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, b]) => (b.type === 'tool_use' ? { type: 'tool_use', id: b.id, name: b.name, input: parseModelJson(this.provider, `arguments for tool '${b.name}'`, b.json) } : { type: b.type, text: b.text }));
  }
}

function toResponse(provider: string, message: Required<Pick<WireMessage, 'content'>> & WireMessage, model: string, tokensIn: number, tokensOut: number, structured: StructuredTool | undefined): ChatResponse {
  let text = '';
  const toolCalls: ToolCall[] = [];
  let json: unknown;
  let hasJson = false;
  for (const block of message.content) {
    if (block.type === 'text' && typeof block['text'] === 'string') text += block['text'];
    else if (block.type === 'tool_use') {
      const call = { id: String(block['id'] ?? ''), name: String(block['name'] ?? ''), arguments: block['input'] ?? {} };
      if (structured && call.name === structured.name && !hasJson) {
        hasJson = true;
        json = structured.wrapped ? (call.arguments as Record<string, unknown>)['value'] : call.arguments;
      } else toolCalls.push(call);
    }
  }
  let finishReason = finishReasonOf(message.stop_reason);
  if (structured) {
    if (!hasJson) throw new WeftError('WEFT_STEP_FAILED', `${provider}: the model gave no structured reply (stop reason ${message.stop_reason ?? 'none'})`, { retryable: true });
    // The forced tool call is how the reply arrived, not a call to act on.
    if (finishReason === 'tool_calls' && toolCalls.length === 0) finishReason = 'stop';
    text = JSON.stringify(json);
  }
  return { text, model: message.model ?? model, tokensIn, tokensOut, toolCalls, finishReason, ...(structured ? { json } : {}) };
}

/** Builds a provider for the Anthropic Messages API. The key stays in this closure. */
export function createAnthropicProvider(config: AnthropicConfig): Provider {
  const secrets = [config.apiKey];

  async function chat(request: ChatRequest): Promise<ChatResponse> {
    const model = request.model ?? config.defaultModel;
    if (model === undefined || model === '') {
      throw new WeftError('WEFT_PROVIDER_MISSING', `provider '${config.name}' needs a model: set \`model\` on the step, or a default model for the provider`);
    }
    const stream = request.stream ?? request.onToken !== undefined;
    const structured = structuredTool(request);
    const call = {
      provider: config.name,
      url: joinUrl(config.baseUrl, '/v1/messages'),
      headers: {
        'content-type': 'application/json',
        accept: stream ? 'text/event-stream' : 'application/json',
        'user-agent': 'weft/0.1',
        ...config.headers,
        'x-api-key': config.apiKey,
        'anthropic-version': ANTHROPIC_VERSION,
      },
      body: requestBody(config, request, model, stream, structured),
      signal: request.signal,
      describeError: describeJsonError,
      secrets,
    };
    if (stream) {
      const acc = new MessageAccumulator(config.name, request.onToken, secrets);
      await postJson({ ...call, onEvent: (e) => acc.onEvent(e) }, config.http);
      if (!acc.done) throw new WeftError('WEFT_HTTP_ERROR', `${config.name}: the stream ended before message_stop`, { retryable: true });
      const message = { model: acc.model, content: acc.content(), stop_reason: acc.stopReason };
      return toResponse(config.name, message, model, acc.tokensIn, acc.tokensOut, structured);
    }
    const reply = await postJson(call, config.http);
    const message = parseJsonReply(config.name, reply.body, secrets) as WireMessage;
    if (!Array.isArray(message.content)) throw new WeftError('WEFT_HTTP_ERROR', `${config.name}: the reply has no content`, { retryable: true });
    return toResponse(config.name, { ...message, content: message.content }, model, inputTokens(message.usage) ?? 0, message.usage?.output_tokens ?? 0, structured);
  }

  return {
    name: config.name,
    simulated: false,
    ...(config.defaultModel ? { defaultModel: config.defaultModel } : {}),
    chat: (request) => withRedaction(config.name, secrets, () => chat(request)),
    async image(): Promise<ImageResponse> {
      throw new WeftError('WEFT_PROVIDER_MISSING', `provider '${config.name}' (Anthropic) does not generate images: use an OpenAI-compatible provider for image steps`);
    },
  };
}
