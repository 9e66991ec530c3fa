/**
 * The offline `simulated` provider: deterministic output derived from the prompt, with
 * plausible token counts, so workflows can be tried without a key. Everything it produces is
 * labelled simulated (in the text, the step's usage and the run record); it never pretends to
 * be a model.
 */
import { createHash } from 'node:crypto';
import type { ChatRequest, ChatResponse, ImageResponse, JsonSchema, Provider } from './types.ts';

const MODEL = 'simulated-1';

/** Roughly how tokenizers count English: ~4 characters a token. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

const FILLER = [
  'why it matters', 'the core idea', 'a worked example', 'common pitfalls', 'trade-offs',
  'how to measure it', 'what to do next', 'a short history', 'the failure modes', 'a checklist',
];

/** Picks the prompt's salient words: the longest distinct ones, in order of appearance. */
function keywords(prompt: string, count: number): string[] {
  const words = prompt.toLowerCase().match(/[a-z][a-z0-9-]{3,}/g) ?? [];
  const unique = [...new Set(words)];
  const chosen = new Set([...unique].sort((a, b) => b.length - a.length).slice(0, count));
  return unique.filter((w) => chosen.has(w));
}

function simulateText(request: ChatRequest): string {
  const seed = digest(`${request.system ?? ''}\n${request.prompt}`);
  const topic = keywords(request.prompt, 4).join(' ') || 'the request';
  const lines = [`[simulated] Response to: ${request.prompt.slice(0, 120).replace(/\s+/g, ' ')}`];
  const sections = 3 + (seed[0]! % 3);
  for (let i = 0; i < sections; i++) {
    lines.push(`${i + 1}. ${topic}: ${FILLER[(seed[i + 1]! + i) % FILLER.length]}.`);
  }
  return lines.join('\n');
}

/**
 * A deterministic instance of a JSON Schema for structured-output requests: enough to drive a
 * workflow offline (every string is labelled simulated), not a faithful schema sampler.
 */
function simulateJson(schema: JsonSchema, seed: Buffer, depth = 0): unknown {
  if (Array.isArray(schema['enum']) && schema['enum'].length > 0) return schema['enum'][seed[depth]! % schema['enum'].length];
  if ('const' in schema) return schema['const'];
  const type = Array.isArray(schema['type']) ? schema['type'][0] : schema['type'];
  const byte = seed[depth % seed.length]!;
  switch (type) {
    case 'string':
      return '[simulated]';
    case 'integer':
    case 'number': {
      const min = typeof schema['minimum'] === 'number' ? schema['minimum'] : 0;
      const max = typeof schema['maximum'] === 'number' ? schema['maximum'] : min + 10;
      return Math.round(min + ((max - min) * byte) / 255);
    }
    case 'boolean':
      return byte % 2 === 0;
    case 'array': {
      const items = (schema['items'] ?? {}) as JsonSchema;
      return depth > 4 ? [] : [simulateJson(items, seed, depth + 1)];
    }
    case 'null':
      return null;
    default: {
      const out: Record<string, unknown> = {};
      const properties = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
      if (depth > 4) return out;
      for (const [key, sub] of Object.entries(properties)) out[key] = simulateJson(sub, seed, depth + 1);
      return out;
    }
  }
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const simulatedProvider: Provider = {
  name: 'simulated',
  simulated: true,
  async chat(request) {
    request.signal.throwIfAborted();
    const json = request.responseSchema ? simulateJson(request.responseSchema.schema, digest(request.prompt)) : undefined;
    const text = json === undefined ? simulateText(request) : JSON.stringify(json);
    // Streams word by word so that live output can be tried offline too.
    if (request.onToken) for (const piece of text.match(/\S*\s*/g) ?? []) if (piece !== '') request.onToken(piece);
    const history = (request.messages ?? []).map((m) => m.content).join('');
    const response: ChatResponse = {
      text,
      model: MODEL,
      tokensIn: estimateTokens((request.system ?? '') + history + request.prompt),
      tokensOut: estimateTokens(text),
      toolCalls: [],
      finishReason: 'stop',
      ...(json === undefined ? {} : { json }),
    };
    return response;
  },
  async image(request) {
    request.signal.throwIfAborted();
    const [w, h] = request.size.split('x').map(Number) as [number, number];
    const seed = digest(request.prompt);
    const hue = (seed[0]! * 360) / 256;
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
      `<rect width="100%" height="100%" fill="hsl(${hue.toFixed(0)},60%,45%)"/>` +
      `<text x="50%" y="50%" fill="#fff" font-family="sans-serif" font-size="${Math.round(h / 16)}" text-anchor="middle">` +
      `simulated: ${escapeXml(request.prompt.slice(0, 60))}</text></svg>`;
    const bytes = Buffer.from(svg);
    const response: ImageResponse = {
      url: `data:image/svg+xml;base64,${bytes.toString('base64')}`,
      contentType: 'image/svg+xml',
      model: MODEL,
      bytes: new Uint8Array(bytes),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
    };
    return response;
  },
};

/** A deterministic judgement for review steps: a score in 4–9 derived from the text. */
export function simulateReviewScore(text: string): number {
  return 4 + (digest(text)[0]! % 6);
}
