/**
 * Shared TypeBox schemas of the API: pagination, problem documents and the resources. The
 * router validates requests with them and the OpenAPI document is built from them.
 */
import { Type, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';

export const Uuid = Type.String({ format: 'uuid', pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' });
export const Timestamp = Type.String({ format: 'date-time' });
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const IdParams = Type.Object({ id: Uuid });

/** `limit`/`offset` plus a route's own filters and sort keys. */
export function pageQuery<P extends TProperties>(props: P, sortKeys: readonly string[]) {
  return Type.Object(
    {
      ...props,
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
      offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })),
      sort: Type.Optional(Type.Union(sortKeys.map((k) => Type.Literal(k)))),
      order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
    },
    { additionalProperties: false },
  );
}

export function page<T extends TSchema>(item: T): TObject {
  return Type.Object({ items: Type.Array(item), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() });
}

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'Stable machine-readable error code, e.g. WEFT_VALIDATION.' }),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String({ description: 'JSON pointer: /body/…, /query/…, /params/…' }), message: Type.String(), code: Type.Optional(Type.String()) }))),
  },
  { additionalProperties: true },
);

const RunStatusSchema = Type.Union(['queued', 'running', 'paused', 'waiting', 'succeeded', 'failed', 'cancelled'].map((s) => Type.Literal(s)));
const StepStatusSchema = Type.Union(['pending', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled'].map((s) => Type.Literal(s)));
export const RunStatuses = RunStatusSchema;

export const WorkflowSchema = Type.Object({
  id: Uuid,
  owner_id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  visibility: Type.Union([Type.Literal('private'), Type.Literal('public')]),
  category: Nullable(Type.String()),
  tags: Type.Array(Type.String()),
  latest_version: Type.Integer(),
  latest_version_id: Nullable(Uuid),
  slug: Nullable(Type.String({ description: 'Stable id of a seeded template (e.g. website.create_basic_site); null for others' })),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const WorkflowWithDefinition = Type.Composite([WorkflowSchema, Type.Object({ definition: Type.Unknown() })]);

export const VersionSchema = Type.Object({ id: Uuid, version: Type.Integer(), hash: Type.String(), created_at: Timestamp });
export const VersionWithDefinition = Type.Composite([VersionSchema, Type.Object({ workflow_id: Uuid, definition: Type.Unknown() })]);

export const RunSummarySchema = Type.Object({
  id: Uuid,
  workflow_id: Uuid,
  workflow_name: Type.String(),
  version_id: Uuid,
  version: Type.Integer(),
  owner_id: Type.String(),
  status: RunStatusSchema,
  mode: Type.Union([Type.Literal('auto'), Type.Literal('step')]),
  progress: Type.Object({ total: Type.Integer(), done: Type.Integer(), percent: Type.Number() }),
  tokens: Type.Object({ input: Type.Integer(), output: Type.Integer() }),
  cost_usd: Type.Number(),
  budget_usd: Nullable(Type.Number({ description: 'Spending limit set at launch; null: none' })),
  provider: Nullable(Type.String({ description: 'Default provider chosen at launch; null: the server default' })),
  simulated: Type.Boolean({ description: 'True when a step used the offline simulated provider: its outputs are not real model outputs.' }),
  created_at: Timestamp,
  updated_at: Timestamp,
  finished_at: Nullable(Timestamp),
  duration_ms: Nullable(Type.Integer()),
});

export const StepRunSchema = Type.Object({
  step_id: Type.String(),
  type: Type.String(),
  status: StepStatusSchema,
  attempt: Type.Integer(),
  branch: Nullable(Type.String()),
  skip_reason: Nullable(Type.String()),
  error: Type.Unknown(),
  started_at: Nullable(Timestamp),
  finished_at: Nullable(Timestamp),
  duration_ms: Nullable(Type.Integer()),
  provider: Nullable(Type.String()),
  model: Nullable(Type.String()),
  tokens: Type.Object({ input: Nullable(Type.Integer()), output: Nullable(Type.Integer()) }),
  cost_usd: Nullable(Type.Number()),
});

export const ArtifactSummarySchema = Type.Object({
  step_id: Type.String(),
  name: Type.String(),
  version: Type.Integer(),
  is_latest: Type.Boolean(),
  produced_by: Type.Union([Type.Literal('attempt'), Type.Literal('user')]),
  attempt: Nullable(Type.Integer()),
  size_bytes: Type.Integer(),
  created_at: Timestamp,
});
export const ArtifactSchema = Type.Composite([ArtifactSummarySchema, Type.Object({ content: Type.Unknown() })]);

export const RunFileSchema = Type.Object({
  sha256: Type.String(),
  step_id: Type.String(),
  name: Type.String(),
  content_type: Type.String(),
  size: Type.Integer(),
  url: Type.String(),
  created_at: Timestamp,
});

export const ApprovalSchema = Type.Object({
  id: Uuid,
  run_id: Uuid,
  step_id: Nullable(Type.String({ description: 'The step that asked (budget: the first step the pause parked)' })),
  kind: Type.Literal('budget', { description: 'budget: a step\'s next model call would pass the run\'s budget_usd' }),
  status: Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')]),
  data: Type.Object({
    step_id: Type.Optional(Type.String()),
    estimate_usd: Type.Optional(Type.Number({ description: 'What the refused calls are estimated to cost, together' })),
    spent_usd: Type.Optional(Type.Number({ description: 'What the run had spent' })),
    budget_usd: Type.Optional(Type.Number({ description: 'The budget the calls did not fit in' })),
    steps: Type.Optional(Type.Record(Type.String(), Type.Number(), { description: 'Each parked step → its refused call\'s estimate' })),
  }, { additionalProperties: true }),
  decided_by: Nullable(Type.String()),
  decided_at: Nullable(Timestamp),
  comment: Nullable(Type.String()),
  created_at: Timestamp,
});

export const RunDetailSchema = Type.Composite([
  RunSummarySchema,
  Type.Object({
    inputs: Type.Unknown(),
    outputs: Type.Unknown(),
    error: Type.Unknown(),
    steps: Type.Array(StepRunSchema),
    artifacts: Type.Array(ArtifactSummarySchema),
    files: Type.Array(RunFileSchema, { description: 'Binary files the steps produced (images, bundles), served at their url' }),
    votes: Type.Array(Type.Unknown(), { description: 'Council votes on approval steps (none until the run has approval steps).' }),
    approvals: Type.Array(ApprovalSchema, { description: 'Decisions asked of people (budget pauses), oldest first' }),
  }),
]);

export const EventSchema = Type.Object({
  id: Type.String({ description: 'Commit-ordered cursor; pass it back as Last-Event-ID or ?after=.' }),
  run_id: Uuid,
  step_id: Nullable(Type.String()),
  type: Type.String(),
  attempt: Nullable(Type.Integer()),
  data: Type.Unknown(),
  created_at: Timestamp,
});
