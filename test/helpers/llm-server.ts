/**
 * A local stand-in for paid LLM APIs, speaking their wire formats byte for byte as the official
 * SDKs expect (test/llm-server.test.ts checks it with them):
 * - OpenAI `POST /v1/chat/completions` (JSON and SSE `chat.completion.chunk` streams, tool calls,
 *   json_schema, usage), `POST /v1/images/generations` (b64_json or url, served from `/files/`),
 *   and the same under Azure's `/openai/deployments/{name}/…?api-version=` with an `api-key`.
 * - Anthropic `POST /v1/messages` (JSON and the `message_start` … `message_stop` event stream,
 *   tool_use, usage).
 * Each test scripts the replies (a queue, then `handler`, then an echo) and reads back every
 * request, headers included.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { deflateSync } from 'node:zlib';

export interface Usage {
  input?: number;
  output?: number;
}

/** What to answer one API request with. `json` answers in text, or as the forced tool's input (Anthropic). */
export type ReplyBody =
  | { type: 'text'; text: string; chunks?: string[]; finish?: string }
  | { type: 'tool_calls'; calls: { id?: string; name: string; arguments: unknown }[]; text?: string }
  | { type: 'json'; value: unknown }
  | { type: 'error'; status: number; message: string; errorType?: string; code?: string | null; param?: string | null }
  | { type: 'rate_limit'; retryAfter?: string }
  /** Text chunks, then an error event inside the 200 stream. */
  | { type: 'stream_error'; text: string; message: string }
  | { type: 'image'; bytes?: Buffer; contentType?: string }
  /** Closes the connection without an answer. */
  | { type: 'drop' }
  /** Never answers. */
  | { type: 'hang' };

export type Reply = ReplyBody & {
  usage?: Usage;
  model?: string;
  /** Before the status line. */
  delayMs?: number;
  /** Between stream events. */
  chunkDelayMs?: number;
  headers?: Record<string, string>;
};

export interface RecordedRequest {
  api: 'openai-chat' | 'openai-images' | 'anthropic-messages' | 'other';
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** performance.now() when the request arrived. */
  at: number;
}

export interface LlmServerOptions {
  /** Expected `Authorization: Bearer` (OpenAI) / `api-key` (Azure) / `x-api-key` (Anthropic); unset: any. */
  openaiKey?: string;
  azureKey?: string;
  anthropicKey?: string;
  /** Write each stream event in slices of this many bytes (exercises clients' chunk handling). */
  sliceBytes?: number;
  /** Line ending of stream events (default '\n'). */
  eol?: '\n' | '\r\n';
}

export interface LlmServer {
  /** `http://127.0.0.1:PORT` — Anthropic's base URL. */
  url: string;
  /** `url + '/v1'` — OpenAI's base URL. */
  openaiBaseUrl: string;
  requests: RecordedRequest[];
  /** Queues replies, answered in order by the next API requests. */
  script(...replies: Reply[]): void;
  /** Queues `times` 429s asking to wait `retryAfter` (seconds, or an HTTP date). */
  rateLimit(times: number, retryAfter: string): void;
  /** Consulted when the queue is empty; undefined → echo. */
  handler: ((request: RecordedRequest) => Reply | undefined) | undefined;
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------------------
// A real PNG: signature, IHDR, IDAT (zlib), IEND, each chunk with its CRC-32.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An 8-bit RGB PNG of `size`×`size` pixels filled with `rgb`. */
export function makePng(rgb: [number, number, number], size = 8): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, no filter, no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: size }, () => rgb).flat())]);
  const raw = Buffer.concat(Array.from({ length: size }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

// ------------------------------------------------------------------------------------------

const id = (prefix: string, bytes = 12): string => `${prefix}${randomBytes(bytes).toString('hex')}`;
const estimate = (value: unknown): number => Math.max(1, Math.ceil((typeof value === 'string' ? value : JSON.stringify(value ?? '')).length / 4));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Splits text into word-sized pieces (spaces kept) so that streams have many chunks. */
function pieces(text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? [];
}

/** Splits tool arguments JSON into small fragments, as the APIs stream them. */
function fragments(json: string, size = 7): string[] {
  const out: string[] = [];
  for (let i = 0; i < json.length; i += size) out.push(json.slice(i, i + size));
  return out;
}

const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error',
};

class ApiError {
  constructor(readonly status: number, readonly message: string, readonly errorType?: string, readonly param: string | null = null, readonly code: string | null = null) {}
}

type Ctx = { req: RecordedRequest; res: http.ServerResponse; reply: Reply; options: LlmServerOptions; closed: () => boolean };

/** Writes SSE events, sliced and spaced as asked; stops quietly when the client went away. */
async function writeEvents(ctx: Ctx, events: { event?: string; data: string }[]): Promise<void> {
  const eol = ctx.options.eol ?? '\n';
  ctx.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', ...ctx.reply.headers });
  for (const e of events) {
    if (ctx.closed()) return;
    const text = `${e.event === undefined ? '' : `event: ${e.event}${eol}`}data: ${e.data}${eol}${eol}`;
    const bytes = Buffer.from(text);
    const step = ctx.options.sliceBytes ?? bytes.length;
    for (let i = 0; i < bytes.length; i += step) {
      ctx.res.write(bytes.subarray(i, i + step));
      if (ctx.options.sliceBytes) await sleep(0);
    }
    if (ctx.reply.chunkDelayMs) await sleep(ctx.reply.chunkDelayMs);
  }
  ctx.res.end();
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

// ---- OpenAI ------------------------------------------------------------------------------------

function validateOpenAiChat(body: any): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (typeof body?.model !== 'string') throw new ApiError(400, 'you must provide a model parameter', 'invalid_request_error');
  if (!Array.isArray(body.messages)) throw new ApiError(400, "Missing required parameter: 'messages'.", 'invalid_request_error', 'messages', 'missing_required_parameter');
  if (body.max_tokens !== undefined && /^(o\d|gpt-5)/.test(body.model)) {
    throw new ApiError(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", 'invalid_request_error', 'max_tokens', 'unsupported_parameter');
  }
  const rf = body.response_format;
  if (rf?.type === 'json_schema' && (!/^[a-zA-Z0-9_-]{1,64}$/.test(rf.json_schema?.name ?? '') || typeof rf.json_schema?.schema !== 'object')) {
    throw new ApiError(400, "Invalid 'response_format.json_schema': a name and a schema are required.", 'invalid_request_error', 'response_format', 'invalid_value');
  }
  if (rf?.json_schema?.strict === true && rf.json_schema.schema.type === 'object' && rf.json_schema.schema.additionalProperties !== false) {
    throw new ApiError(400, `Invalid schema for response_format '${rf.json_schema.name}': In context=(), 'additionalProperties' is required to be supplied and to be false.`, 'invalid_request_error', 'response_format', null);
  }
  const callIds = new Set<string>();
  for (const [i, m] of (body.messages as any[]).entries()) { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const c of m?.tool_calls ?? []) callIds.add(c.id);
    if (m?.role === 'tool' && !callIds.has(m.tool_call_id)) {
      throw new ApiError(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", 'invalid_request_error', `messages.[${i}].role`, null);
    }
  }
}

function lastUserText(messages: any[]): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const last = [...messages].reverse().find((m) => m?.role === 'user');
  if (typeof last?.content === 'string') return last.content;
  if (Array.isArray(last?.content)) return last.content.map((b: { text?: string }) => b.text ?? '').join('');
  return '';
}

async function openAiChat(ctx: Ctx): Promise<void> {
  const body = ctx.req.body;
  validateOpenAiChat(body);
  const reply = ctx.reply;
  const model = reply.model ?? body.model;
  const created = Math.floor(Date.now() / 1000);
  const base = { id: id('chatcmpl-'), created, model, service_tier: 'default', system_fingerprint: 'fp_weft0001' };
  let content: string | null = null;
  let calls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] = [];
  let finish = 'stop';
  if (reply.type === 'text' || reply.type === 'stream_error') content = reply.text;
  else if (reply.type === 'json') content = JSON.stringify(reply.value);
  else if (reply.type === 'tool_calls') {
    content = reply.text ?? null;
    calls = reply.calls.map((c) => ({ id: c.id ?? id('call_', 12), type: 'function', function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) } }));
    finish = 'tool_calls';
  }
  if (reply.type === 'text' && reply.finish) finish = reply.finish;
  const promptTokens = reply.usage?.input ?? estimate(body.messages);
  const completionTokens = reply.usage?.output ?? estimate(`${content ?? ''}${calls.map((c) => c.function.arguments).join('')}`);
  const usage = {
    prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  if (body.stream !== true) {
    const message = { role: 'assistant', content, refusal: null, annotations: [], ...(calls.length > 0 ? { tool_calls: calls } : {}) };
    sendJson(ctx.res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage }, ctx.reply.headers);
    return;
  }
  const withUsage = body.stream_options?.include_usage === true;
  const chunk = (delta: unknown, finishReason: string | null = null): { data: string } => ({
    data: JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...(withUsage ? { usage: null } : {}) }),
  });
  const events = [chunk({ role: 'assistant', content: calls.length > 0 && content === null ? null : '', refusal: null })];
  const textPieces = reply.type === 'text' && reply.chunks ? reply.chunks : pieces(content ?? '');
  for (const piece of textPieces) events.push(chunk({ content: piece }));
  if (reply.type === 'stream_error') {
    events.push({ data: JSON.stringify({ error: { message: reply.message, type: 'server_error', param: null, code: null } }) });
    await writeEvents(ctx, events);
    return;
  }
  for (const [index, call] of calls.entries()) {
    events.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }));
    for (const f of fragments(call.function.arguments)) events.push(chunk({ tool_calls: [{ index, function: { arguments: f } }] }));
  }
  events.push(chunk({}, finish));
  if (withUsage) events.push({ data: JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage }) });
  events.push({ data: '[DONE]' });
  await writeEvents(ctx, events);
}

function openAiImages(ctx: Ctx, files: Map<string, { bytes: Buffer; contentType: string }>, baseUrl: string): void {
  const body = ctx.req.body;
  if (typeof body?.prompt !== 'string') throw new ApiError(400, "Missing required parameter: 'prompt'.", 'invalid_request_error', 'prompt', 'missing_required_parameter');
  const model: string = body.model ?? 'dall-e-2';
  if (model.startsWith('gpt-image') && body.response_format !== undefined) {
    throw new ApiError(400, "Unknown parameter: 'response_format'.", 'invalid_request_error', 'response_format', 'unknown_parameter');
  }
  const digest = createHash('sha256').update(body.prompt).digest();
  const bytes = ctx.reply.type === 'image' && ctx.reply.bytes ? ctx.reply.bytes : makePng([digest[0]!, digest[1]!, digest[2]!]);
  const contentType = ctx.reply.type === 'image' && ctx.reply.contentType ? ctx.reply.contentType : 'image/png';
  let item: Record<string, string>;
  if (body.response_format === 'url') {
    const name = `${id('img-', 8)}.png`;
    files.set(name, { bytes, contentType });
    item = { url: `${baseUrl}/files/${name}` };
  } else item = { b64_json: bytes.toString('base64') };
  if (model === 'dall-e-3') item['revised_prompt'] = body.prompt;
  const usage = model.startsWith('gpt-image') ? { usage: { input_tokens: estimate(body.prompt), output_tokens: 272, total_tokens: estimate(body.prompt) + 272, input_tokens_details: { text_tokens: estimate(body.prompt), image_tokens: 0 } } } : {};
  sendJson(ctx.res, 200, { created: Math.floor(Date.now() / 1000), data: [item], ...usage }, ctx.reply.headers);
}

// ---- Anthropic -------------------------------------------------------------------------------

async function anthropicMessages(ctx: Ctx): Promise<void> {
  const body = ctx.req.body;
  if (typeof body?.model !== 'string') throw new ApiError(400, 'model: Field required');
  if (typeof body.max_tokens !== 'number') throw new ApiError(400, 'max_tokens: Field required');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new ApiError(400, 'messages: at least one message is required');
  const useIds = new Set<string>();
  for (const [i, m] of (body.messages as any[]).entries()) { // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const b of Array.isArray(m.content) ? m.content : []) {
      if (b.type === 'tool_use') useIds.add(b.id);
      if (b.type === 'tool_result' && !useIds.has(b.tool_use_id)) {
        throw new ApiError(400, `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${b.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`);
      }
    }
  }
  const reply = ctx.reply;
  const model = reply.model ?? body.model;
  type Block = { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: unknown };
  const content: Block[] = [];
  let stop = 'end_turn';
  if (reply.type === 'text' || reply.type === 'stream_error') content.push({ type: 'text', text: reply.text });
  else if (reply.type === 'json') {
    if (body.tool_choice?.type === 'tool') {
      content.push({ type: 'tool_use', id: id('toolu_01', 11), name: body.tool_choice.name, input: reply.value });
      stop = 'tool_use';
    } else content.push({ type: 'text', text: JSON.stringify(reply.value) });
  } else if (reply.type === 'tool_calls') {
    if (reply.text) content.push({ type: 'text', text: reply.text });
    for (const c of reply.calls) content.push({ type: 'tool_use', id: c.id ?? id('toolu_01', 11), name: c.name, input: c.arguments });
    stop = 'tool_use';
  }
  if (reply.type === 'text' && reply.finish) stop = reply.finish;
  const input = reply.usage?.input ?? estimate([body.system, body.messages]);
  const output = reply.usage?.output ?? estimate(content);
  const usage = { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: output, service_tier: 'standard' };
  const message = { id: id('msg_01', 11), type: 'message', role: 'assistant', model, content, stop_reason: stop, stop_sequence: null, usage };
  if (body.stream !== true) {
    sendJson(ctx.res, 200, message, { 'request-id': id('req_01', 11), ...reply.headers });
    return;
  }
  const ev = (event: string, data: Record<string, unknown>): { event: string; data: string } => ({ event, data: JSON.stringify({ type: event, ...data }) });
  const events = [ev('message_start', { message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } })];
  for (const [index, block] of content.entries()) {
    if (block.type === 'text') {
      events.push(ev('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      if (index === 0) events.push({ event: 'ping', data: '{"type": "ping"}' });
      const textPieces = reply.type === 'text' && reply.chunks ? reply.chunks : pieces(block.text);
      for (const text of textPieces) events.push(ev('content_block_delta', { index, delta: { type: 'text_delta', text } }));
      if (reply.type === 'stream_error') {
        events.push(ev('error', { error: { type: 'overloaded_error', message: reply.message } }));
        await writeEvents(ctx, events);
        return;
      }
    } else {
      events.push(ev('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }));
      events.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }));
      for (const f of fragments(JSON.stringify(block.input))) events.push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: f } }));
    }
    events.push(ev('content_block_stop', { index }));
  }
  events.push(ev('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: output } }));
  events.push(ev('message_stop', {}));
  await writeEvents(ctx, events);
}

// ---- Dispatch --------------------------------------------------------------------------------

function errorBody(api: RecordedRequest['api'], e: ApiError): unknown {
  if (api === 'anthropic-messages') return { type: 'error', error: { type: e.errorType ?? ANTHROPIC_ERROR_TYPES[e.status] ?? 'api_error', message: e.message }, request_id: id('req_01', 11) };
  const type = e.errorType ?? (e.status === 429 ? 'rate_limit_exceeded' : e.status >= 500 ? 'server_error' : 'invalid_request_error');
  return { error: { message: e.message, type, param: e.param, code: e.code } };
}

function checkAuth(req: RecordedRequest, options: LlmServerOptions, azure: boolean): ApiError | undefined {
  const h = req.headers;
  if (req.api === 'anthropic-messages') {
    // The API takes the key as `x-api-key` or as a bearer token (the 1.x SDK sends the latter).
    const bearer = /^Bearer (.+)$/.exec(h['authorization'] ?? '')?.[1];
    if (options.anthropicKey !== undefined && h['x-api-key'] !== options.anthropicKey && bearer !== options.anthropicKey) return new ApiError(401, 'invalid x-api-key');
    if (typeof h['anthropic-version'] !== 'string') return new ApiError(400, 'anthropic-version: header is required');
    return undefined;
  }
  if (azure) {
    if (!req.query['api-version']) return new ApiError(404, 'Resource not found', undefined, null, '404');
    if (options.azureKey !== undefined && h['api-key'] !== options.azureKey) return new ApiError(401, 'Access denied due to invalid subscription key or wrong API endpoint.', undefined, null, '401');
    return undefined;
  }
  const presented = /^Bearer (.+)$/.exec(h['authorization'] ?? '')?.[1];
  if (options.openaiKey !== undefined && presented !== options.openaiKey) {
    const masked = presented === undefined ? '' : `${presented.slice(0, 3)}${'*'.repeat(Math.max(0, presented.length - 7))}${presented.slice(-4)}`;
    return presented === undefined
      ? new ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 'invalid_request_error')
      : new ApiError(401, `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', null, 'invalid_api_key');
  }
  return undefined;
}

/** Starts the server on 127.0.0.1 with an ephemeral port. */
export async function startLlmServer(options: LlmServerOptions = {}): Promise<LlmServer> {
  const queue: Reply[] = [];
  const files = new Map<string, { bytes: Buffer; contentType: string }>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let closed = false;
    res.on('close', () => (closed = true));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks).toString('utf8'), () => closed).catch((err: unknown) => {
        // A bug in this helper: answer 500 so the test fails loudly instead of hanging.
        if (!res.headersSent) sendJson(res, 500, { error: { message: String(err), type: 'server_error', param: null, code: null } });
        else res.destroy();
      });
    });
  });
  const state: LlmServer = {
    url: '',
    openaiBaseUrl: '',
    requests: [],
    handler: undefined,
    script: (...replies) => void queue.push(...replies),
    rateLimit: (times, retryAfter) => void queue.push(...Array.from({ length: times }, () => ({ type: 'rate_limit' as const, retryAfter }))),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string, closed: () => boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const azure = /^\/openai\/deployments\/([^/]+)\//.exec(url.pathname);
    const path = azure ? url.pathname.replace(azure[0], '/v1/') : url.pathname;
    const api: RecordedRequest['api'] = path === '/v1/chat/completions' ? 'openai-chat' : path === '/v1/images/generations' ? 'openai-images' : path === '/v1/messages' ? 'anthropic-messages' : 'other';
    let body: unknown;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      body = raw;
    }
    const recorded: RecordedRequest = { api, method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, at: performance.now() };
    if (api === 'other') {
      const file = req.method === 'GET' ? files.get(url.pathname.replace(/^\/files\//, '')) : undefined;
      if (file) {
        res.writeHead(200, { 'content-type': file.contentType, 'content-length': String(file.bytes.length) });
        res.end(file.bytes);
      } else sendJson(res, 404, { error: { message: `Invalid URL (${req.method} ${url.pathname})`, type: 'invalid_request_error', param: null, code: null } });
      return;
    }
    state.requests.push(recorded);
    const requestId = { [api === 'anthropic-messages' ? 'request-id' : 'x-request-id']: id('req_', 16) };
    const fail = (e: ApiError, headers: Record<string, string> = {}): void => sendJson(res, e.status, errorBody(api, e), { ...requestId, ...headers });
    if (typeof body !== 'object' && raw !== '') return fail(new ApiError(400, 'We could not parse the JSON body of your request.'));
    const authError = checkAuth(recorded, options, azure !== null);
    if (authError) return fail(authError);
    if (azure && typeof body === 'object' && body !== null) (body as Record<string, unknown>)['model'] ??= azure[1];

    const echo = (): Reply => ({ type: 'text', text: `Echo: ${lastUserText((body as { messages?: unknown[] })?.messages ?? [])}` });
    const reply = queue.shift() ?? state.handler?.(recorded) ?? (api === 'openai-images' ? { type: 'image' } : echo());
    if (reply.type === 'hang') return;
    if (reply.delayMs) await sleep(reply.delayMs);
    if (closed()) return;
    if (reply.type === 'drop') return void req.socket.destroy();
    if (reply.type === 'rate_limit') {
      const message = api === 'anthropic-messages' ? 'Number of request tokens has exceeded your per-minute rate limit' : 'Rate limit reached for requests. Please try again later.';
      return fail(new ApiError(429, message, undefined, null, api === 'anthropic-messages' ? null : 'rate_limit_exceeded'), { 'retry-after': reply.retryAfter ?? '1', ...reply.headers });
    }
    if (reply.type === 'error') return fail(new ApiError(reply.status, reply.message, reply.errorType, reply.param ?? null, reply.code ?? null), reply.headers);
    const ctx: Ctx = { req: recorded, res, reply: { ...reply, headers: { ...requestId, ...reply.headers } }, options, closed };
    try {
      if (api === 'openai-chat') await openAiChat(ctx);
      else if (api === 'openai-images') openAiImages(ctx, files, state.url);
      else await anthropicMessages(ctx);
    } catch (e) {
      if (e instanceof ApiError) fail(e);
      else throw e;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.url = `http://127.0.0.1:${port}`;
  state.openaiBaseUrl = `${state.url}/v1`;
  return state;
}
