/**
 * Structured output: the reply must be JSON matching a schema. The schema is checked by
 * @cfworker/json-schema, an interpreter (a user's schema is never compiled to code). An
 * invalid reply gets exactly one repair turn — the model sees its answer and the errors —
 * and a reply still invalid after it fails the step (WEFT_OUTPUT_INVALID, not retried: the
 * same prompt would most likely fail the same way).
 */
import { Validator, type Schema } from '@cfworker/json-schema';
import { WeftError } from '../core/errors.ts';
import type { ChatMessage, ChatRequest, ChatResponse } from '../providers/types.ts';
import { meteredChat, type Meter } from './model-call.ts';
import type { StepContext } from './types.ts';

const MAX_ERRORS_SHOWN = 8;
const SUMMARY_KEYWORDS = new Set(['properties', 'items', 'prefixItems', 'allOf', '$ref', 'additionalItems', 'patternProperties']);

/** The problems of `value` against `schema` ('' when it matches). */
export function schemaErrors(schema: Record<string, unknown>, value: unknown): string[] {
  let validator: Validator;
  try {
    validator = new Validator(structuredClone(schema) as Schema, '2020-12', false);
  } catch (error) {
    throw new WeftError('WEFT_SCHEMA', `output_schema is not a usable JSON Schema: ${error instanceof Error ? error.message : String(error)}`);
  }
  const result = validator.validate(value);
  if (result.valid) return [];
  // Errors of these keywords only say that something below them is wrong; the others say what.
  const leaves = result.errors.filter((e) => !SUMMARY_KEYWORDS.has(e.keyword));
  return (leaves.length > 0 ? leaves : result.errors).slice(0, MAX_ERRORS_SHOWN).map((e) => `${e.instanceLocation || '#'}: ${e.error}`);
}

/** The reply's JSON: the provider's parse when it made one, else the text (fenced ```json blocks allowed). */
function parseReply(response: ChatResponse): { value?: unknown; error?: string } {
  if (response.json !== undefined) return { value: response.json };
  const text = response.text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, '$1');
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `the reply is not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
}

/**
 * Whether OpenAI's strict mode can take the schema: every object closes its properties
 * (`additionalProperties: false`) and requires all of them. Strict mode is asked for only
 * then; otherwise the API would refuse the request, and our own check still applies.
 */
export function strictCompatible(schema: unknown, depth = 0): boolean {
  if (depth > 32) return false;
  if (typeof schema !== 'object' || schema === null) return true;
  if (Array.isArray(schema)) return schema.every((s) => strictCompatible(s, depth + 1));
  const s = schema as Record<string, unknown>;
  const props = s['properties'];
  if (s['type'] === 'object' || props !== undefined) {
    if (s['additionalProperties'] !== false) return false;
    const keys = typeof props === 'object' && props !== null ? Object.keys(props) : [];
    const required = Array.isArray(s['required']) ? s['required'] : [];
    if (!keys.every((k) => required.includes(k))) return false;
  }
  for (const key of ['properties', '$defs', 'definitions']) {
    const group = s[key];
    if (typeof group === 'object' && group !== null && !Object.values(group).every((v) => strictCompatible(v, depth + 1))) return false;
  }
  for (const key of ['items', 'anyOf', 'allOf', 'oneOf']) if (s[key] !== undefined && !strictCompatible(s[key], depth + 1)) return false;
  return true;
}

export interface JsonReply {
  value: unknown;
  response: ChatResponse;
  repaired: boolean;
}

/** Asks for JSON matching `schema`; one repair turn on an invalid reply. */
export async function chatJson(ctx: StepContext, meter: Meter, request: ChatRequest, schema: Record<string, unknown>, name = 'response'): Promise<JsonReply> {
  const responseSchema = { name, schema, strict: strictCompatible(schema) };
  const first = await meteredChat(ctx, meter, { ...request, responseSchema });
  const problems = check(first, schema);
  if (problems.errors.length === 0) return { value: problems.value, response: first, repaired: false };

  const messages: ChatMessage[] = [
    ...(request.messages ?? []),
    ...(request.prompt ? [{ role: 'user' as const, content: request.prompt }] : []),
    { role: 'assistant', content: first.text },
  ];
  const repairPrompt =
    `Your reply did not match the required JSON Schema:\n- ${problems.errors.join('\n- ')}\n\n` +
    `Answer again with only the corrected JSON value, matching this schema:\n${JSON.stringify(schema)}`;
  const second = await meteredChat(ctx, meter, { ...request, messages, prompt: repairPrompt, responseSchema, onToken: undefined, stream: false });
  const again = check(second, schema);
  if (again.errors.length === 0) return { value: again.value, response: second, repaired: true };
  throw new WeftError('WEFT_OUTPUT_INVALID', `step '${ctx.stepId}': the model's structured output is invalid after one repair attempt: ${again.errors.join('; ')}`, {
    details: { errors: again.errors },
  });
}

function check(response: ChatResponse, schema: Record<string, unknown>): { value?: unknown; errors: string[] } {
  const parsed = parseReply(response);
  if (parsed.error !== undefined) return { errors: [parsed.error] };
  return { value: parsed.value, errors: schemaErrors(schema, parsed.value) };
}
