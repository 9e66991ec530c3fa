/**
 * Queries for agents: named, versioned model configurations (system prompt, provider, model,
 * sampling, tools, output schema) that steps refer to by name. Every change is a new
 * immutable version; deleting is soft. The built-ins (BUILTIN_AGENT_SEEDS) are seeded by the
 * server on first start and are then the admins' to edit.
 */
import { BUILTIN_AGENTS } from '../steps/agents.ts';
import type { AgentProfile } from '../steps/types.ts';
import type { Queryable } from './db.ts';
import { definitionHash } from './workflows.ts';

/** What an agent version configures; API field names (they match the agent step's fields). */
export interface AgentConfig {
  description: string;
  system: string;
  provider: string | null;
  model: string | null;
  temperature: number | null;
  top_p: number | null;
  max_tokens: number | null;
  tools: string[];
  output_schema: Record<string, unknown> | null;
}

/** An agent with its latest version, as the API shows it. */
export interface AgentRecord extends AgentConfig {
  name: string;
  version: number;
  builtin: boolean;
  created_at: Date;
  updated_at: Date;
}

/** One stored version. */
export interface AgentVersionRecord extends AgentConfig {
  version: number;
  created_by: string | null;
  created_at: Date;
}

/** What the agent step executor needs: the steps' AgentProfile contract (src/steps/types.ts). */
export type StoredAgentProfile = AgentProfile;

const CONFIG_COLUMNS = `v.description, v.system_prompt AS system, v.provider, v.model, v.temperature, v.top_p, v.max_tokens,
  v.tools, v.output_schema`;
const RECORD_COLUMNS = `a.name, a.latest_version AS version, a.builtin, ${CONFIG_COLUMNS}, a.created_at, a.updated_at`;
const LATEST_JOIN = 'agents a JOIN agent_versions v ON v.agent_name = a.name AND v.version = a.latest_version';

export interface AgentPage {
  sort: 'name' | 'created_at' | 'updated_at';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

/** Live agents with their latest versions. */
export async function listAgents(q: Queryable, p: AgentPage): Promise<{ items: AgentRecord[]; total: number }> {
  const { rows } = await q.query<AgentRecord & { total: number }>(
    `SELECT ${RECORD_COLUMNS}, count(*) OVER ()::int AS total FROM ${LATEST_JOIN}
     WHERE a.deleted_at IS NULL
     ORDER BY ${p.sort === 'name' ? 'a.name' : p.sort === 'created_at' ? 'a.created_at' : 'a.updated_at'} ${p.order === 'asc' ? 'ASC' : 'DESC'}, a.name
     LIMIT $1 OFFSET $2`,
    [p.limit, p.offset],
  );
  const total = rows[0]?.total ?? (p.offset > 0 ? await countAgents(q) : 0);
  return { items: rows.map(({ total: _t, ...r }) => r), total };
}

async function countAgents(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM agents WHERE deleted_at IS NULL');
  return rows[0]?.n ?? 0;
}

/** A live agent with its latest version; undefined when there is none (or it was deleted). */
export async function getAgent(q: Queryable, name: string): Promise<AgentRecord | undefined> {
  const { rows } = await q.query<AgentRecord>(`SELECT ${RECORD_COLUMNS} FROM ${LATEST_JOIN} WHERE a.name = $1 AND a.deleted_at IS NULL`, [name]);
  return rows[0];
}

/**
 * Creates an agent, or brings a deleted one back with `config` as its next version (its
 * history continues). Undefined when a live agent has the name. Run in a transaction.
 */
export async function createAgent(q: Queryable, name: string, config: AgentConfig, createdBy: string | null): Promise<AgentRecord | undefined> {
  const { rows } = await q.query<{ name: string }>(
    `INSERT INTO agents (name) VALUES ($1)
     ON CONFLICT (name) DO UPDATE SET deleted_at = NULL, updated_at = now() WHERE agents.deleted_at IS NOT NULL
     RETURNING name`,
    [name],
  );
  if (rows.length === 0) return undefined;
  await insertVersion(q, name, config, createdBy);
  return getAgent(q, name);
}

/**
 * Stores `config` as the next version of a live agent; an unchanged config keeps the latest
 * version (PUT is idempotent). Undefined when there is no live agent. Run in a transaction:
 * the agent row is locked, so two writers cannot pick the same version number.
 */
export async function updateAgent(q: Queryable, name: string, config: AgentConfig, createdBy: string | null): Promise<AgentRecord | undefined> {
  // rows, not rowCount: PGlite counts a locking SELECT's rows as 0 affected.
  const locked = await q.query('SELECT 1 FROM agents WHERE name = $1 AND deleted_at IS NULL FOR NO KEY UPDATE', [name]);
  if (locked.rows.length === 0) return undefined;
  const current = await getAgent(q, name);
  if (current && definitionHash(configOf(current)) === definitionHash(configOf(config))) return current;
  await insertVersion(q, name, config, createdBy);
  return getAgent(q, name);
}

async function insertVersion(q: Queryable, name: string, c: AgentConfig, createdBy: string | null): Promise<void> {
  await q.query(
    `WITH a AS (UPDATE agents SET latest_version = latest_version + 1, updated_at = now() WHERE name = $1 RETURNING latest_version)
     INSERT INTO agent_versions (agent_name, version, description, system_prompt, provider, model, temperature, top_p, max_tokens, tools, output_schema, created_by)
     SELECT $1, a.latest_version, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::float8, $8::int, $9::text[], $10::jsonb, $11::uuid FROM a`,
    [name, c.description, c.system, c.provider, c.model, c.temperature, c.top_p, c.max_tokens, c.tools, c.output_schema === null ? null : JSON.stringify(c.output_schema), createdBy],
  );
}

/** Soft-deletes a live agent; false when there is none. */
export async function softDeleteAgent(q: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await q.query('UPDATE agents SET deleted_at = now(), updated_at = now() WHERE name = $1 AND deleted_at IS NULL', [name]);
  return rowCount > 0;
}

/** Versions of a live agent, newest first; undefined when there is no live agent. */
export async function listAgentVersions(q: Queryable, name: string, limit: number, offset: number): Promise<{ items: AgentVersionRecord[]; total: number } | undefined> {
  if (!(await getAgent(q, name))) return undefined;
  const { rows } = await q.query<AgentVersionRecord & { total: number }>(
    `SELECT v.version, ${CONFIG_COLUMNS}, v.created_by, v.created_at, count(*) OVER ()::int AS total
     FROM agent_versions v WHERE v.agent_name = $1 ORDER BY v.version DESC LIMIT $2 OFFSET $3`,
    [name, limit, offset],
  );
  return { items: rows.map(({ total: _t, ...r }) => r), total: rows[0]?.total ?? 0 };
}

/**
 * The latest version of a live agent, for the step executor. A built-in that was never
 * stored (a database no server has started on, e.g. `weft run`) comes from
 * BUILTIN_AGENT_SEEDS; one an admin deleted does not come back. Undefined: no such agent.
 */
export async function getAgentProfile(q: Queryable, name: string): Promise<StoredAgentProfile | undefined> {
  const { rows } = await q.query<AgentRecord & { deleted: boolean }>(
    `SELECT ${RECORD_COLUMNS}, a.deleted_at IS NOT NULL AS deleted FROM ${LATEST_JOIN} WHERE a.name = $1`,
    [name],
  );
  const row = rows[0];
  if (row) return row.deleted ? undefined : toProfile(row.name, row.version, row);
  const seed = Object.hasOwn(BUILTIN_AGENT_SEEDS, name) ? BUILTIN_AGENT_SEEDS[name] : undefined;
  return seed === undefined ? undefined : toProfile(name, 0, seed);
}

function toProfile(name: string, version: number, c: AgentConfig): StoredAgentProfile {
  return {
    name,
    version,
    system: c.system,
    ...(c.provider === null ? {} : { provider: c.provider }),
    ...(c.model === null ? {} : { model: c.model }),
    ...(c.temperature === null ? {} : { temperature: c.temperature }),
    ...(c.top_p === null ? {} : { topP: c.top_p }),
    ...(c.max_tokens === null ? {} : { maxTokens: c.max_tokens }),
    tools: [...c.tools],
    ...(c.output_schema === null ? {} : { outputSchema: c.output_schema }),
  };
}

function configOf(c: AgentConfig): AgentConfig {
  return {
    description: c.description, system: c.system, provider: c.provider, model: c.model, temperature: c.temperature,
    top_p: c.top_p, max_tokens: c.max_tokens, tools: c.tools, output_schema: c.output_schema,
  };
}

/**
 * Stores the built-ins that are not there yet (one statement each, ON CONFLICT DO NOTHING:
 * servers starting together seed once, and a built-in an admin deleted or edited is left as
 * it is). Returns the names seeded.
 */
export async function seedBuiltinAgents(q: Queryable): Promise<string[]> {
  const seeded: string[] = [];
  for (const [name, c] of Object.entries(BUILTIN_AGENT_SEEDS)) {
    const { rowCount } = await q.query(
      `WITH a AS (INSERT INTO agents (name, latest_version, builtin) VALUES ($1, 1, true) ON CONFLICT (name) DO NOTHING RETURNING name)
       INSERT INTO agent_versions (agent_name, version, description, system_prompt, provider, model, temperature, top_p, max_tokens, tools, output_schema)
       SELECT a.name, 1, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::float8, $8::int, $9::text[], $10::jsonb FROM a`,
      [name, c.description, c.system, c.provider, c.model, c.temperature, c.top_p, c.max_tokens, c.tools, c.output_schema === null ? null : JSON.stringify(c.output_schema)],
    );
    if (rowCount > 0) seeded.push(name);
  }
  return seeded;
}

// ---------------------------------------------------------------------------------------
// The built-ins. Each prompt opens with its profile's line in src/steps/agents.ts (the
// fixed set steps used before agents were stored) and adds a working method and an output
// contract. No provider or model: the step or the server default decides.

function seed(name: string, description: string, method: string): AgentConfig {
  const profile = BUILTIN_AGENTS[name]!;
  return {
    description,
    system: `${profile.system}\n\n${method.trim()}`,
    provider: null,
    model: null,
    temperature: profile.temperature,
    top_p: null,
    max_tokens: null,
    tools: [],
    output_schema: null,
  };
}

export const BUILTIN_AGENT_SEEDS: Readonly<Record<string, AgentConfig>> = {
  research: seed('research', 'Gathers and structures facts with their sources, separating evidence from opinion.', `
How you work:
- Restate the question in one sentence and list what a complete answer must cover.
- Work from the material you are given first. Mark anything from general knowledge as such, and never invent sources, quotes, figures or dates.
- For each finding, say what it rests on (a source in the input, a widely documented fact, or your inference) and how confident you are: high, medium or low.
- Keep facts, interpretations and open questions apart. Where sources disagree, show both sides instead of picking one silently.

Answer in Markdown:
1. **Summary**: three to five sentences a busy reader can act on.
2. **Findings**: a nested outline; one claim per bullet, followed by its basis and confidence in brackets.
3. **Gaps and open questions**: what is unknown and how it could be checked.
4. **Sources**: the sources you relied on, as given in the input.`),

  creative: seed('creative', 'Writes finished copy from a brief or an outline, in the brief\'s voice and length.', `
How you work:
- Before writing, settle the audience, purpose, tone, format and length the brief asks for; when the brief is silent, choose sensibly and stay consistent.
- Open with a hook that earns attention, give each section one clear job, and close with the takeaway or call to action the brief implies.
- Use concrete detail and active verbs; avoid clichés, filler and stacked adjectives. Vary sentence length.
- Every fact, name, number and claim must come from the brief or its sources. If something the piece needs is missing, write around it or leave a clearly marked [TODO: …] placeholder instead of making it up.
- Respect the requested word count within ten percent.

Return only the finished piece in Markdown, with a title and headings where the format calls for them, and no commentary about how you wrote it.`),

  qa: seed('qa', 'Reviews a draft for factual, logical, structural and language problems, with concrete fixes.', `
How you work:
- Read the draft against its brief, if one is given: does it answer what was asked, for the stated audience and length?
- Check facts and figures against the provided sources; flag every claim that no source supports. Check arithmetic, dates, names and internal consistency.
- Look for gaps in the argument, unclear or ambiguous passages, weak structure, repetition, and grammar, spelling and style problems.
- Quote the exact passage for each issue and propose replacement wording, not just a complaint.

Answer in Markdown:
1. **Verdict**: "ready", "minor fixes" or "needs rework", and a score from 0 to 10, each with one sentence of justification.
2. **Issues**: a table with columns Severity (critical, major, minor), Location, Problem and Suggested fix, most severe first.
3. **What works**: two or three strengths to keep in the next revision.`),

  imaging: seed('imaging', 'Turns a brief into precise, production-ready image generation prompts.', `
How you work:
- Work out what the image must communicate and where it will appear (hero banner, social post, thumbnail, product shot); pick the aspect ratio to match.
- Describe, in this order: the subject and action; the setting; composition and camera (shot type, angle, lens, depth of field); lighting; colour palette; style or medium (photograph, watercolour, 3D render, flat illustration); mood.
- Be literal and visual: name concrete, depictable things instead of abstractions like "innovation" or "success".
- No text, letters, logos or watermarks in the image unless the brief explicitly asks for them. No real people's likenesses and no trademarked characters.

Return the image prompt as a single paragraph of at most 120 words. When alternatives would help, add up to two variants, each on its own line starting with "Variant:".`),

  publishing: seed('publishing', 'Packages finished content for publication: titles, summaries, SEO metadata and per-channel formats.', `
How you work:
- Keep the substance of the content unchanged: you package it, you do not rewrite its claims.
- Write a title (at most 60 characters) and a meta description (at most 155 characters) that are accurate rather than clickbait.
- Choose a URL slug (lowercase words joined by hyphens), one primary keyword and three to five secondary keywords that the content actually covers.
- Adapt the piece for each requested channel: a blog post keeps headings and links; a newsletter gets a subject line, a preheader and a short intro; LinkedIn gets a post of at most 1,300 characters with a strong first line; X/Twitter gets posts of at most 280 characters each.
- Suggest alt text for every image referenced.

Answer with one Markdown section per deliverable (Title, Meta description, Slug, Keywords, Alt text, then one section per channel), each ready to paste.`),

  financial: seed('financial', 'Quantifies costs, revenues, savings and risks with the arithmetic and assumptions shown.', `
How you work:
- List every input figure with its source (the input, or an explicit assumption). Label assumptions A1, A2, … and keep them conservative.
- Show each calculation step by step with units and currency. Round only final results, and say how.
- Where the decision calls for them, give totals, margins, payback period, ROI or NPV (state the discount rate), and a break-even point.
- Run a sensitivity check: how the result changes when the two or three most uncertain assumptions move by ±20 %.
- Name the risks that numbers do not capture. This is analysis, not personalised investment, tax or legal advice; say so when the question asks for advice.

Answer in Markdown: **Bottom line** (two sentences), **Assumptions** (table), **Calculations**, **Sensitivity** (table), **Risks and caveats**.`),

  market_insight: seed('market_insight', 'Analyses audiences, competitors, positioning and trends, and turns them into concrete recommendations.', `
How you work:
- Define the market and segment under discussion. Describe the target audiences by their needs, pains and buying triggers, not only by demographics.
- Compare the main competitors on positioning, pricing model, strengths and weaknesses. Only name competitors and figures that come from the input or that you are confident are real, and mark estimates as estimates.
- Identify the trends that matter, with their likely direction and timing, and what drives each of them.
- Derive a positioning: the gap to occupy, a differentiating value proposition, and the messages that would resonate with each audience.

Answer in Markdown: **Key insights** (three to five bullets), **Audiences**, **Competitive landscape** (table), **Trends**, **Opportunities and recommended positioning**, **Risks and unknowns**.`),

  compliance: seed('compliance', 'Flags legal, regulatory, privacy and brand-safety risks in content and proposes compliant wording.', `
How you work:
- Check the content for: unsubstantiated or absolute claims ("best", "guaranteed", "cures"); missing disclosures (advertising, affiliate links, financial or health disclaimers); personal data and privacy issues (GDPR, CCPA); intellectual property (unlicensed images, trademarks, quotations); defamation or comparative-advertising risk; discriminatory, exclusionary or otherwise unsafe language; and sector rules when the sector is evident (finance, health, alcohol, children).
- For each issue, quote the exact passage, name the risk and the rule or principle behind it, rate it high, medium or low, and propose compliant replacement wording.
- Do not flag what is fine just to be safe: every finding needs a concrete reason.
- You give a risk review, not legal advice; recommend review by counsel for anything rated high.

Answer in Markdown: **Verdict** ("approve", "approve with changes" or "reject", with one sentence why), then a table with columns Risk, Passage, Issue, Rule, Suggested wording, highest risk first.`),
};
