-- Agents (named, versioned model configurations a step refers to with `agent: name`) and
-- credentials (provider endpoints with their API keys, encrypted at rest).

-- An agent is addressed by its name, as steps write it. Deleting is soft: runs that used an
-- agent keep a meaning, and creating the name again continues its version history.
CREATE TABLE agents (
  name           text PRIMARY KEY,
  latest_version int NOT NULL DEFAULT 0,
  -- Seeded by the server on first start (still editable); a deleted built-in is not re-seeded.
  builtin        boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz
);

-- Immutable: every change is a new version; the highest is what steps use.
CREATE TABLE agent_versions (
  agent_name    text NOT NULL REFERENCES agents (name),
  version       int NOT NULL,
  description   text NOT NULL DEFAULT '',
  system_prompt text NOT NULL,
  provider      text,
  model         text,
  -- double precision, not real: a temperature of 0.7 must read back as 0.7.
  temperature   double precision,
  top_p         double precision,
  max_tokens    int,
  tools         text[] NOT NULL DEFAULT '{}',
  output_schema jsonb,
  -- NULL for the seeded first version of a built-in.
  created_by    uuid REFERENCES users (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_name, version)
);

-- A credential configures the provider steps name in `provider:`. Deleting one deletes its
-- key: nothing of it stays behind.
CREATE TABLE credentials (
  id             uuid PRIMARY KEY,
  name           text NOT NULL UNIQUE,
  kind           text NOT NULL CHECK (kind IN ('openai-compatible', 'anthropic')),
  base_url       text,
  default_model  text,
  -- The provider may reach loopback/private addresses (a local Ollama) whatever the server's
  -- WEFT_ALLOW_PRIVATE_NETWORK says; metadata endpoints stay closed.
  allow_private  boolean NOT NULL DEFAULT false,
  -- AES-256-GCM under the server's secret key, bound to `id` (src/api/secrets.ts):
  -- "v1.<key id>.<iv>.<tag>.<ciphertext>". NULL: the endpoint takes no key.
  api_key_sealed text,
  created_by     uuid REFERENCES users (id),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
