-- A run starts in one statement (src/store/run-start.ts), where it took a transaction of six:
-- the run, its steps already in the status the start decision gives them (the roots queued,
-- waiting for a trigger, or one claimed for the starting process's worker), the decision's
-- events and, for a claimed root, what the worker needs to run it and complete it quickly.
--
-- An idempotency key already used by the owner starts nothing: the row says which run has it
-- (o_created false), also when the other start commits while this one waits on the key.
CREATE FUNCTION weft_start_run(
  p_run uuid, p_version uuid, p_owner text, p_status text, p_mode text, p_inputs jsonb, p_context jsonb,
  p_idempotency_key text, p_at timestamptz, p_budget numeric, p_provider text,
  p_steps text[], p_refs jsonb[],
  p_event_steps text[], p_event_types text[], p_event_attempts int[], p_event_data jsonb[],
  p_queue text[], p_waits text[], p_claim text, p_worker text, p_lease_until timestamptz, p_states boolean
) RETURNS TABLE (
  o_run_id uuid, o_created boolean, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_ready_at timestamptz,
  o_version_id uuid, o_inputs jsonb, o_context jsonb, o_spent_usd float8, o_budget_usd float8, o_run_provider text,
  o_deps jsonb, o_states text
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO runs (id, workflow_id, version_id, owner_id, status, mode, inputs, context, steps_total, idempotency_key,
    created_at, updated_at, budget_usd, provider)
  SELECT p_run, v.workflow_id, v.id, p_owner, p_status, p_mode, p_inputs, p_context, cardinality(p_steps), p_idempotency_key,
    p_at, p_at, p_budget, p_provider
  FROM workflow_versions v WHERE v.id = p_version
  ON CONFLICT (owner_id, idempotency_key) DO NOTHING
  RETURNING id INTO o_run_id;
  IF o_run_id IS NULL THEN
    o_created := false;
    o_run_id := (SELECT r.id FROM runs r WHERE r.owner_id = p_owner AND r.idempotency_key = p_idempotency_key);
    RETURN NEXT;
    RETURN;
  END IF;
  o_created := true;

  INSERT INTO step_runs (run_id, step_id, status, refs, attempt, available_at, lease_owner, lease_expires_at, started_at)
  SELECT p_run, s.step_id,
    CASE WHEN s.step_id = p_claim THEN 'running' WHEN s.step_id = ANY(p_queue) THEN 'queued'
         WHEN s.step_id = ANY(p_waits) THEN 'waiting' ELSE 'pending' END,
    ARRAY(SELECT jsonb_array_elements_text(s.refs)),
    CASE WHEN s.step_id = p_claim THEN 1 ELSE 0 END,
    CASE WHEN s.step_id = p_claim OR s.step_id = ANY(p_queue) THEN p_at END,
    CASE WHEN s.step_id = p_claim THEN p_worker END,
    CASE WHEN s.step_id = p_claim THEN p_lease_until END,
    CASE WHEN s.step_id = p_claim THEN p_at END
  FROM unnest(p_steps, p_refs) AS s(step_id, refs);

  INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
  SELECT p_run, e.step_id, e.type, e.attempt, e.data, p_at
  FROM unnest(p_event_steps, p_event_types, p_event_attempts, p_event_data) AS e(step_id, type, attempt, data);
  IF cardinality(p_queue) > 0 THEN
    PERFORM pg_notify('weft_steps', '');
  END IF;

  IF p_claim IS NOT NULL THEN
    SELECT s.step_id, s.attempt, s.attempt_base, s.overrides, s.available_at, r.version_id, r.inputs, r.context,
      r.cost_usd::float8, r.budget_usd::float8, r.provider, '{}'::jsonb -- a new run has no outputs yet
    INTO o_step_id, o_attempt, o_attempt_base, o_overrides, o_ready_at, o_version_id, o_inputs, o_context,
      o_spent_usd, o_budget_usd, o_run_provider, o_deps
    FROM step_runs s JOIN runs r ON r.id = s.run_id
    WHERE s.run_id = p_run AND s.step_id = p_claim;
    IF p_states THEN
      o_states := weft_step_states(p_run);
    END IF;
  END IF;
  RETURN NEXT;
END
$$;

-- Step rows are inserted only by weft_start_run, after their run in the same transaction, and
-- runs are never deleted: the key's check (one query per inserted step) guarded nothing more.
ALTER TABLE step_runs DROP CONSTRAINT step_runs_run_id_fkey;
