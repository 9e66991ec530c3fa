-- The server: users, their sessions and API tokens, server settings, and a commit-ordered
-- cursor for the run event log.

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  email         text NOT NULL,
  name          text NOT NULL DEFAULT '',
  role          text NOT NULL CHECK (role IN ('admin', 'user')),
  -- scrypt, self-describing: "scrypt$N$r$p$salt$hash" (base64url); NULL = cannot log in.
  password_hash text,
  disabled_at   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- Personal API tokens: only a SHA-256 of the token is kept; `prefix` identifies it in lists.
CREATE TABLE api_tokens (
  id           uuid PRIMARY KEY,
  user_id      uuid NOT NULL REFERENCES users (id),
  name         text NOT NULL,
  prefix       text NOT NULL,
  token_hash   text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at DESC);

-- Refresh tokens rotate on every use; a family is revoked whole when a used one comes back
-- (a stolen refresh token replayed after its owner refreshed).
CREATE TABLE refresh_tokens (
  id          uuid PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id),
  family_id   uuid NOT NULL,
  token_hash  text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Server-wide settings (the one-time setup token's hash, …).
CREATE TABLE server_settings (
  key        text PRIMARY KEY,
  value      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Event ids come from a sequence, so a transaction can commit an event with a lower id after
-- a reader has seen a higher one. The writing transaction's id gives a commit-safe cursor:
-- readers take only events whose `tx` is below the oldest transaction still in progress
-- (`pg_snapshot_xmin`), ordered by (tx, id); anything committed later has a larger `tx`.
ALTER TABLE run_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX run_events_feed ON run_events (tx, id);
CREATE INDEX run_events_run_tx ON run_events (run_id, tx, id);
DROP INDEX run_events_run;

CREATE INDEX runs_status ON runs (status, created_at DESC);
CREATE INDEX workflows_public ON workflows (created_at DESC) WHERE visibility = 'public' AND deleted_at IS NULL;
