-- Cheaper integrity checks on the rows every step writes (measured in docs/BENCHMARKS.md).
--
-- A table's CHECK constraints are parsed, planned and compiled again by every INSERT or UPDATE
-- statement that touches the table, whichever columns it sets: the per-step UPDATE of a run's
-- usage paid for three of them. A domain's constraint is planned once per connection (the
-- type cache) and checked only where a value is assigned to the column. Same rules, new home.
CREATE DOMAIN weft_run_status AS text CHECK (VALUE IN ('queued', 'running', 'paused', 'waiting', 'succeeded', 'failed', 'cancelled'));
CREATE DOMAIN weft_run_mode AS text CHECK (VALUE IN ('auto', 'step'));
CREATE DOMAIN weft_usd_budget AS numeric(14, 6) CHECK (VALUE >= 0);
CREATE DOMAIN weft_step_status AS text CHECK (VALUE IN ('pending', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled'));
CREATE DOMAIN weft_artifact_source AS text CHECK (VALUE IN ('attempt', 'user'));

ALTER TABLE runs DROP CONSTRAINT runs_status_check, DROP CONSTRAINT runs_mode_check, DROP CONSTRAINT runs_budget_usd_check,
  ALTER COLUMN status TYPE weft_run_status, ALTER COLUMN mode TYPE weft_run_mode, ALTER COLUMN budget_usd TYPE weft_usd_budget;
ALTER TABLE step_runs DROP CONSTRAINT step_runs_status_check, ALTER COLUMN status TYPE weft_step_status;
ALTER TABLE artifacts DROP CONSTRAINT artifacts_produced_by_check, ALTER COLUMN produced_by TYPE weft_artifact_source;

-- Events and artifacts are written many times per run, always by a statement that has just
-- locked or inserted their run, and runs are never deleted: the foreign key's check (one query
-- per inserted row) guarded nothing those statements do not already guarantee.
ALTER TABLE run_events DROP CONSTRAINT run_events_run_id_fkey;
ALTER TABLE artifacts DROP CONSTRAINT artifacts_run_id_fkey;
