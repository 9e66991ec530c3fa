-- AI steps: run budgets and a per-run default provider, binary files produced by steps,
-- approvals (a budget pause waits on one), and stable slugs for seeded templates.

-- budget_usd: the run pauses into an approval when the next AI step's estimated cost would
-- pass it (NULL: no limit). provider: the default provider chosen at launch for steps and
-- agents that name none (NULL: the server's default, if any).
ALTER TABLE runs ADD COLUMN budget_usd numeric(14, 6) CHECK (budget_usd IS NULL OR budget_usd >= 0);
ALTER TABLE runs ADD COLUMN provider text;

-- Binary outputs (images, site bundles), content-addressed within a run: the JSON artifact
-- refers to a file by its hash, and the API serves it to whoever may see the run. Written in
-- the transaction that completes the step, so a lost lease leaves nothing behind.
CREATE TABLE run_files (
  run_id       uuid NOT NULL REFERENCES runs (id),
  sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  step_id      text NOT NULL,
  name         text NOT NULL,
  content_type text NOT NULL,
  size_bytes   int NOT NULL,
  content      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, sha256)
);

-- A decision a person must take before the run goes on. kind 'budget': the run paused because
-- the next step would pass its budget; approving (optionally with a higher budget) resumes it,
-- rejecting cancels it. Councils and approval steps add kinds later.
CREATE TABLE approvals (
  id          uuid PRIMARY KEY,
  run_id      uuid NOT NULL REFERENCES runs (id),
  step_id     text,
  kind        text NOT NULL CHECK (kind IN ('budget')),
  status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
  data        jsonb NOT NULL DEFAULT '{}',
  decided_by  text,
  decided_at  timestamptz,
  comment     text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approvals_run ON approvals (run_id, created_at);
-- At most one open budget approval per run: a second pause while one is pending reuses it.
CREATE UNIQUE INDEX approvals_pending_budget ON approvals (run_id) WHERE status = 'pending' AND kind = 'budget';

-- Seeded templates are found again by slug (e.g. 'website.create_basic_site'), so seeding is
-- idempotent and an admin's edits (new versions) are kept.
ALTER TABLE workflows ADD COLUMN slug text;
CREATE UNIQUE INDEX workflows_slug ON workflows (slug) WHERE slug IS NOT NULL;
