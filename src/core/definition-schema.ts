/**
 * The workflow definition format (canonical JSON; YAML accepted), as TypeBox schemas.
 * The same schemas validate definitions (through @cfworker/json-schema, an interpreter with no code generation; see validate-definition.ts) and give
 * the static types, so the two cannot drift. Step types are a string-literal union; adding
 * one means adding its schema to `stepSchemas`, and the compiler will not build until every
 * type has one.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Step ids are identifiers so that `$<stepId>` is a valid JSONata variable. */
export const STEP_ID_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,63}$';
/** A `needs` entry: a step id, or `stepId.branch` for a condition step's named branch. */
export const NEED_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63})?$';

export const LIMITS = {
  /** Bytes of definition text accepted by the parser. */
  definitionBytes: 1024 * 1024,
  /** Steps in one definition. */
  steps: 1000,
  /** Nesting depth of any JSON value inside a definition or launch inputs. */
  jsonDepth: 64,
  /** Characters in one expression or template. */
  expressionLength: 4096,
  /** Bytes of launch inputs. */
  inputBytes: 1024 * 1024,
} as const;

const Expr = Type.String({ minLength: 1, maxLength: LIMITS.expressionLength, description: 'A JSONata expression' });
const Template = Type.String({ maxLength: LIMITS.expressionLength, description: 'Text with {{ JSONata }} interpolations' });

export const TriggerRule = Type.Union([Type.Literal('all_success'), Type.Literal('all_done'), Type.Literal('one_success')]);
export type TriggerRule = Static<typeof TriggerRule>;

export const RetryPolicy = Type.Object(
  {
    max: Type.Integer({ minimum: 0, maximum: 100, description: 'Retries after the first attempt' }),
    backoff: Type.Optional(Type.Union([Type.Literal('exponential'), Type.Literal('fixed')])),
    base_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
    max_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
    jitter: Type.Optional(Type.Union([Type.Boolean(), Type.Number({ minimum: 0, maximum: 1 })])),
  },
  { additionalProperties: false },
);
export type RetryPolicy = Static<typeof RetryPolicy>;

/** Fields every step type accepts. */
const common = {
  name: Type.Optional(Type.String({ maxLength: 200 })),
  description: Type.Optional(Type.String({ maxLength: 4000 })),
  needs: Type.Optional(Type.Array(Type.String({ pattern: NEED_PATTERN }), { maxItems: 1000, uniqueItems: true })),
  when: Type.Optional(Expr),
  trigger: Type.Optional(TriggerRule),
  retry: Type.Optional(RetryPolicy),
  timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000 })),
  on_error: Type.Optional(Type.Union([Type.Literal('fail'), Type.Literal('continue')])),
  /** Named bindings: every string inside is a JSONata expression; other values are literal. */
  with: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Editor data (node position…); the engine ignores it. */
  ui: Type.Optional(Type.Unknown()),
};

function stepSchema<T extends Record<string, TSchema>>(type: string, fields: T) {
  return Type.Object({ type: Type.Literal(type), ...common, ...fields }, { additionalProperties: false });
}

/** What an http request is made of: the `http` step's fields, and an http tool's. */
const httpRequestFields = {
  method: Type.Optional(Type.Union(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'].map((m) => Type.Literal(m)))),
  url: Template,
  headers: Type.Optional(Type.Record(Type.String(), Template)),
  query: Type.Optional(Type.Record(Type.String(), Template)),
  /** A template string, or any JSON value whose strings are templates. */
  body: Type.Optional(Type.Unknown()),
  response: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('text')])),
};

const ToolParameters = Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the arguments object' }));

/** A tool an agent may call: an http request or a transform, evaluated with `$args` in scope. */
const AgentTool = Type.Union([
  Type.Object({
    type: Type.Literal('http'),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    parameters: ToolParameters,
    ...httpRequestFields,
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('transform'),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    parameters: ToolParameters,
    expr: Expr,
  }, { additionalProperties: false }),
]);
export type AgentToolDefinition = Static<typeof AgentTool>;

export const stepSchemas = {
  transform: stepSchema('transform', { expr: Expr }),
  condition: stepSchema('condition', {
    /** Branch name → guard; the first guard that is true (in written order) picks the branch. */
    cases: Type.Record(Type.String({ pattern: STEP_ID_PATTERN }), Expr, { minProperties: 1 }),
    default: Type.Optional(Type.String({ pattern: STEP_ID_PATTERN })),
  }),
  delay: stepSchema('delay', { ms: Type.Integer({ minimum: 0, maximum: 86_400_000 }) }),
  http: stepSchema('http', {
    ...httpRequestFields,
    /** Status codes treated as success; default 200–299. */
    ok_status: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }))),
  }),
  agent: stepSchema('agent', {
    agent: Type.Optional(Type.String({ maxLength: 100 })),
    provider: Type.Optional(Type.String({ maxLength: 100 })),
    model: Type.Optional(Type.String({ maxLength: 200 })),
    system: Type.Optional(Template),
    prompt: Template,
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** JSON Schema the reply must match (structured output); overrides the agent's. */
    output_schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Tools the model may call, by name; their templates and expressions also see `$args`. */
    tools: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_-]{0,63}$' }), AgentTool, { maxProperties: 32 })),
    /** Model turns with tool calls before the step gives up (default 5). */
    max_tool_rounds: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
    /** Stream the reply into the run's live events (default true). */
    stream: Type.Optional(Type.Boolean()),
  }),
  image: stepSchema('image', {
    provider: Type.Optional(Type.String({ maxLength: 100 })),
    model: Type.Optional(Type.String({ maxLength: 200 })),
    prompt: Template,
    size: Type.Optional(Type.String({ pattern: '^[0-9]{2,4}x[0-9]{2,4}$' })),
  }),
  review: stepSchema('review', {
    agent: Type.Optional(Type.String({ maxLength: 100 })),
    provider: Type.Optional(Type.String({ maxLength: 100 })),
    model: Type.Optional(Type.String({ maxLength: 200 })),
    /** What to judge; defaults to `with.text`. */
    criteria: Type.Optional(Template),
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
  }),
  /** Links image outputs (`with.images`) to a document output (`with.document`); one is primary. */
  attach: stepSchema('attach', {
    /** The primary image: an index into `with.images`, or the id of the step that made it (default 0). */
    primary: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 999 }), Type.String({ pattern: STEP_ID_PATTERN })])),
  }),
  /**
   * A static site bundle (site.zip) from `with`: site_name, description, brand_colors,
   * typography, pages, contact_email, base_url, language, savings (see src/steps/website.ts).
   */
  website: stepSchema('website', {}),
} as const;

export type StepType = keyof typeof stepSchemas;
export const STEP_TYPES = Object.keys(stepSchemas) as StepType[];

export type StepDefinitionOf<T extends StepType> = Static<(typeof stepSchemas)[T]>;
export type StepDefinition = { [T in StepType]: StepDefinitionOf<T> }[StepType];

/** The top level; `steps` entries are checked against their type's schema separately. */
export const WorkflowDefinitionSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 10_000 })),
    /** Catalogue metadata: one category and a few tags (filters in the API and UI). */
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 20, uniqueItems: true })),
    /** JSON Schema for launch inputs (drives the launch form). */
    inputs: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Static values visible to expressions as `$context`. */
    context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    steps: Type.Record(Type.String(), Type.Object({ type: Type.String() }, { additionalProperties: true }), {
      minProperties: 1,
      maxProperties: LIMITS.steps,
    }),
    outputs: Type.Optional(Type.Record(Type.String(), Expr)),
    ui: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);

export interface WorkflowDefinition {
  name: string;
  description?: string;
  category?: string;
  tags?: string[];
  inputs?: Record<string, unknown>;
  context?: Record<string, unknown>;
  steps: Record<string, StepDefinition>;
  outputs?: Record<string, string>;
  ui?: unknown;
}
