/**
 * The offline `simulated` provider: deterministic output derived from the prompt, with
 * plausible token counts, so workflows can be tried without a key. Everything it produces is
 * labelled simulated (in the text, the step's usage and the run record); it never pretends to
 * be a model.
 */
import { createHash } from 'node:crypto';
import type { ChatRequest, ChatResponse, ImageResponse, Provider } from './types.ts';

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

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export const simulatedProvider: Provider = {
  name: 'simulated',
  simulated: true,
  async chat(request) {
    request.signal.throwIfAborted();
    const text = simulateText(request);
    const response: ChatResponse = {
      text,
      model: MODEL,
      tokensIn: estimateTokens((request.system ?? '') + request.prompt),
      tokensOut: estimateTokens(text),
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
    const response: ImageResponse = {
      url: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`,
      contentType: 'image/svg+xml',
      model: MODEL,
    };
    return response;
  },
};

/** A deterministic judgement for review steps: a score in 4–9 derived from the text. */
export function simulateReviewScore(text: string): number {
  return 4 + (digest(text)[0]! % 6);
}
