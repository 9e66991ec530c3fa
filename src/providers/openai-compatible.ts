/**
 * Chat completions and image generation over the OpenAI HTTP API, by base URL. The same wire
 * format is spoken by OpenAI, Azure OpenAI (`api-key` header and `api-version` query), Ollama
 * (`http://localhost:11434/v1`), vLLM, LM Studio and the llama.cpp server.
 */
import { WeftError } from '../core/errors.ts';
import { imageFromBase64, imageFromUrl } from './image-result.ts';
import { joinUrl, postJson, withRedaction, type ProviderHttpOptions } from './provider-http.ts';
import { describeJsonError, parseJsonReply, parseModelJson, redact } from './reply-parsing.ts';
import type { SseEvent } from './sse-parser.ts';
import type { ChatRequest, ChatResponse, FinishReason, ImageRequest, ImageResponse, Provider, ToolCall } from './types.ts';

/** How to reach one OpenAI-compatible endpoint. */
export interface OpenAICompatibleConfig {
  name: string;
  /** Up to and including the version segment: `https://api.openai.com/v1`, `http://localhost:11434/v1`. */
  baseUrl: string;
  /** Absent for local servers that take none. */
  apiKey?: string | undefined;
  /** `bearer` (default): `Authorization: Bearer`; `api-key`: Azure's `api-key` header. */
  auth?: 'bearer' | 'api-key';
  /** Sent as `?api-version=` (Azure). */
  apiVersion?: string | undefined;
  /** Used when a step names no model. */
  defaultModel?: string | undefined;
  defaultImageModel?: string | undefined;
  /** OpenAI's current name is `max_completion_tokens` (reasoning models refuse `max_tokens`); most local servers read `max_tokens`. */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  /** Send `Idempotency-Key` (default true; OpenAI accepts it, other servers ignore it). */
  idempotencyKeys?: boolean;
  /** Ask for a usage chunk at the end of streams (default true). */
  streamUsage?: boolean;
  /** `b64_json` (default) or `url`; never sent for gpt-image models, which refuse the parameter and always answer inline. */
  imageResponseFormat?: 'b64_json' | 'url';
  /** Extra headers (e.g. `OpenAI-Organization`). */
  headers?: Record<string, string>;
  http: ProviderHttpOptions;
}

interface WireToolCall {
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

interface WireChoice {
  message?: { content?: string | null; refusal?: string | null; tool_calls?: WireToolCall[] };
  delta?: { content?: string | null; refusal?: string | null; tool_calls?: (WireToolCall & { index?: number })[] };
  finish_reason?: string | null;
}

interface WireCompletion {
  model?: string;
  choices?: WireChoice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

function finishReasonOf(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'other';
  }
}

function wireMessages(request: ChatRequest): unknown[] {
  const out: unknown[] = [];
  if (request.system !== undefined && request.system !== '') out.push({ role: 'system', content: request.system });
  for (const m of request.messages ?? []) {
    if (m.role === 'user') out.push({ role: 'user', content: m.content });
    else if (m.role === 'tool') out.push({ role: 'tool', tool_call_id: m.toolCallId, content: m.content });
    else {
      const calls = (m.toolCalls ?? []).map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments ?? {}) } }));
      out.push({ role: 'assistant', content: m.content === '' && calls.length > 0 ? null : m.content, ...(calls.length > 0 ? { tool_calls: calls } : {}) });
    }
  }
  if (request.prompt !== '' || out.length === 0 || request.messages === undefined) out.push({ role: 'user', content: request.prompt });
  return out;
}

function modelOf(config: OpenAICompatibleConfig, requested: string | undefined, fallback: string | undefined, what: string): string {
  const model = requested ?? fallback;
  if (model === undefined || model === '') {
    throw new WeftError('WEFT_PROVIDER_MISSING', `provider '${config.name}' needs a model: set \`model\` on the step, or a default ${what} model for the provider`);
  }
  return model;
}

function chatBody(config: OpenAICompatibleConfig, request: ChatRequest, model: string, stream: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = { model, messages: wireMessages(request) };
  if (request.temperature !== undefined) body['temperature'] = request.temperature;
  if (request.topP !== undefined) body['top_p'] = request.topP;
  if (request.maxTokens !== undefined) body[config.maxTokensField ?? 'max_tokens'] = request.maxTokens;
  if (request.tools && request.tools.length > 0) {
    body['tools'] = request.tools.map((t) => ({
      type: 'function',
      function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters, ...(t.strict === undefined ? {} : { strict: t.strict }) },
    }));
    const choice = request.toolChoice;
    if (choice !== undefined) body['tool_choice'] = typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
  }
  if (request.responseSchema) {
    const { name = 'response', schema, strict = true } = request.responseSchema;
    body['response_format'] = { type: 'json_schema', json_schema: { name, schema, strict } };
  }
  if (stream) {
    body['stream'] = true;
    if (config.streamUsage ?? true) body['stream_options'] = { include_usage: true };
  }
  return body;
}

/** Accumulates a streamed completion: text in order, tool-call argument fragments by index. */
class CompletionAccumulator {
  text = '';
  refusal = '';
  model: string | undefined;
  finish: string | null | undefined;
  tokensIn = 0;
  tokensOut = 0;
  done = false;
  private readonly calls = new Map<number, { id: string; name: string; args: string }>();

  constructor(
    private readonly provider: string,
    private readonly onToken: ((text: string) => void) | undefined,
    private readonly secrets: readonly string[],
  ) {}

  onEvent(event: SseEvent): void {
    if (event.data === '[DONE]') {
      this.done = true;
      return;
    }
    let chunk: WireCompletion;
    try {
      chunk = JSON.parse(event.data) as WireCompletion;
    } catch {
      throw new WeftError('WEFT_HTTP_ERROR', `${this.provider}: a stream event is not JSON`, { retryable: true });
    }
    if (chunk.error !== undefined && chunk.error !== null) {
      // OpenAI reports failures after the 200 as a data event carrying `error`.
      const info = describeJsonError(500, redact(event.data, this.secrets));
      throw new WeftError('WEFT_HTTP_ERROR', `${this.provider}: stream failed: ${info.message}`, { retryable: true, details: { provider: this.provider, type: info.type } });
    }
    if (chunk.model) this.model = chunk.model;
    if (chunk.usage) {
      this.tokensIn = chunk.usage.prompt_tokens ?? 0;
      this.tokensOut = chunk.usage.completion_tokens ?? 0;
    }
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const delta = choice.delta ?? {};
    if (typeof delta.content === 'string' && delta.content !== '') {
      this.text += delta.content;
      this.onToken?.(delta.content);
    }
    if (typeof delta.refusal === 'string') this.refusal += delta.refusal;
    for (const [position, part] of (delta.tool_calls ?? []).entries()) {
      const index = part.index ?? position;
      const call = this.calls.get(index) ?? { id: '', name: '', args: '' };
      if (part.id) call.id = part.id;
      if (part.function?.name) call.name += part.function.name;
      if (part.function?.arguments) call.args += part.function.arguments;
      this.calls.set(index, call);
    }
    if (choice.finish_reason) this.finish = choice.finish_reason;
  }

  toolCalls(): ToolCall[] {
    return [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, c]) => ({ id: c.id, name: c.name, arguments: parseModelJson(this.provider, `arguments for tool '${c.name}'`, c.args) }));
  }
}

function finishChat(provider: string, request: ChatRequest, fields: { text: string; refusal: string; model: string; tokensIn: number; tokensOut: number; finish: string | null | undefined; toolCalls: ToolCall[] }): ChatResponse {
  const finishReason = fields.refusal !== '' ? 'content_filter' : finishReasonOf(fields.finish);
  const response: ChatResponse = {
    text: fields.text !== '' ? fields.text : fields.refusal,
    model: fields.model,
    tokensIn: fields.tokensIn,
    tokensOut: fields.tokensOut,
    toolCalls: fields.toolCalls,
    finishReason,
  };
  if (request.responseSchema && fields.toolCalls.length === 0) {
    if (fields.refusal !== '') throw new WeftError('WEFT_STEP_FAILED', `${provider}: the model refused: ${fields.refusal.slice(0, 300)}`, { retryable: false });
    // A reply that is not JSON is left in `text` without `json`: the caller decides (the
    // agent step's structured output gets one repair turn rather than a failure).
    try {
      response.json = parseModelJson(provider, 'structured reply', fields.text);
    } catch {
      delete response.json;
    }
  }
  return response;
}

/** Builds a provider speaking the OpenAI API at `config.baseUrl`. The key stays in this closure. */
export function createOpenAICompatibleProvider(config: OpenAICompatibleConfig): Provider {
  const secrets = config.apiKey ? [config.apiKey] : [];
  const query: Record<string, string> = config.apiVersion ? { 'api-version': config.apiVersion } : {};

  function headers(idempotencyKey: string, stream: boolean): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json', 'user-agent': 'weft/0.1', ...config.headers };
    if (config.apiKey) {
      if (config.auth === 'api-key') h['api-key'] = config.apiKey;
      else h['authorization'] = `Bearer ${config.apiKey}`;
    }
    if (config.idempotencyKeys ?? true) h['idempotency-key'] = idempotencyKey;
    return h;
  }

  return {
    name: config.name,
    simulated: false,
    ...(config.defaultModel ? { defaultModel: config.defaultModel } : {}),

    chat: (request) => withRedaction(config.name, secrets, () => chat(request)),
    image: (request) => withRedaction(config.name, secrets, () => image(request)),
  };

  async function chat(request: ChatRequest): Promise<ChatResponse> {
    const model = modelOf(config, request.model, config.defaultModel, 'chat');
    const stream = request.stream ?? request.onToken !== undefined;
    const call = {
      provider: config.name,
      url: joinUrl(config.baseUrl, '/chat/completions', query),
      headers: headers(request.idempotencyKey, stream),
      body: chatBody(config, request, model, stream),
      signal: request.signal,
      describeError: describeJsonError,
      secrets,
    };
    if (stream) {
      const acc = new CompletionAccumulator(config.name, request.onToken, secrets);
      await postJson({ ...call, onEvent: (e) => acc.onEvent(e) }, config.http);
      if (!acc.done && acc.finish === undefined) {
        throw new WeftError('WEFT_HTTP_ERROR', `${config.name}: the stream ended before the reply was complete`, { retryable: true });
      }
      return finishChat(config.name, request, {
        text: acc.text,
        refusal: acc.refusal,
        model: acc.model ?? model,
        tokensIn: acc.tokensIn,
        tokensOut: acc.tokensOut,
        finish: acc.finish,
        toolCalls: acc.toolCalls(),
      });
    }
    const reply = await postJson(call, config.http);
    const body = parseJsonReply(config.name, reply.body, secrets) as WireCompletion;
    const choice = body.choices?.[0];
    if (!choice?.message) throw new WeftError('WEFT_HTTP_ERROR', `${config.name}: the reply has no message`, { retryable: true });
    const toolCalls = (choice.message.tool_calls ?? []).map((c) => ({
      id: c.id ?? '',
      name: c.function?.name ?? '',
      arguments: parseModelJson(config.name, `arguments for tool '${c.function?.name ?? ''}'`, c.function?.arguments ?? ''),
    }));
    return finishChat(config.name, request, {
      text: choice.message.content ?? '',
      refusal: choice.message.refusal ?? '',
      model: body.model ?? model,
      tokensIn: body.usage?.prompt_tokens ?? 0,
      tokensOut: body.usage?.completion_tokens ?? 0,
      finish: choice.finish_reason,
      toolCalls,
    });
  }

  async function image(request: ImageRequest): Promise<ImageResponse> {
    const model = modelOf(config, request.model, config.defaultImageModel, 'image');
    const format = model.startsWith('gpt-image') ? undefined : (config.imageResponseFormat ?? 'b64_json');
    const reply = await postJson(
      {
        provider: config.name,
        url: joinUrl(config.baseUrl, '/images/generations', query),
        headers: headers(request.idempotencyKey, false),
        body: { model, prompt: request.prompt, n: 1, size: request.size, ...(format ? { response_format: format } : {}) },
        signal: request.signal,
        describeError: describeJsonError,
        secrets,
      },
      config.http,
    );
    const body = parseJsonReply(config.name, reply.body, secrets) as { data?: { b64_json?: string; url?: string }[] };
    const first = body.data?.[0];
    if (first?.b64_json) return imageFromBase64(first.b64_json, model, config.name);
    if (first?.url) return imageFromUrl(first.url, model, config.name, request.signal, config.http);
    throw new WeftError('WEFT_HTTP_ERROR', `${config.name}: the image reply has neither b64_json nor url`, { retryable: false });
  }
}
