-- Quick completions may finish their run (src/engine/quick-advance.ts): the last step's
-- success in a run without a budget (no approvals to close) whose outputs the worker could
-- evaluate from what it holds. weft_complete_attempt gains the run's final status, outputs and
-- error (p_finish NULL: the run goes on), written in the statement of the decision's writes;
-- otherwise it is migration 0006's function.
DROP FUNCTION weft_complete_attempt(uuid, text, timestamptz, bigint, bigint, numeric, boolean, text, int, text, jsonb, text, int,
  text, text, int, int, numeric, text[], text[], int[], jsonb[], text[], text[], text[], text, timestamptz);

CREATE FUNCTION weft_complete_attempt(
  p_run uuid, p_expected text, p_at timestamptz,
  p_usage_in bigint, p_usage_out bigint, p_usage_cost numeric, p_usage_simulated boolean,
  p_step text, p_attempt int, p_worker text, p_output jsonb, p_branch text, p_duration_ms int,
  p_provider text, p_model text, p_tokens_in int, p_tokens_out int, p_cost numeric,
  p_event_steps text[], p_event_types text[], p_event_attempts int[], p_event_data jsonb[],
  p_queue text[], p_skip_steps text[], p_skip_reasons text[],
  p_claim text, p_lease_until timestamptz,
  p_finish text, p_run_outputs jsonb, p_run_error jsonb
) RETURNS TABLE (
  o_run_id uuid, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_ready_at timestamptz,
  o_version_id uuid, o_inputs jsonb, o_context jsonb, o_spent_usd float8, o_budget_usd float8, o_run_provider text,
  o_deps jsonb, o_states text
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_status text;
  v_mode text;
  v_states text;
  v_changed int;
BEGIN
  UPDATE runs r SET updated_at = p_at, tokens_in = r.tokens_in + p_usage_in, tokens_out = r.tokens_out + p_usage_out,
    cost_usd = r.cost_usd + p_usage_cost, simulated = r.simulated OR p_usage_simulated
  WHERE r.id = p_run
  RETURNING r.status, r.mode INTO v_status, v_mode;
  v_states := weft_step_states(p_run);
  IF v_status IS DISTINCT FROM 'running' OR v_mode IS DISTINCT FROM 'auto' OR v_states IS DISTINCT FROM p_expected THEN
    RAISE EXCEPTION 'run % changed since its step states were read', p_run
      USING ERRCODE = 'WF409', DETAIL = json_build_object('status', v_status, 'mode', v_mode, 'states', v_states)::text;
  END IF;

  WITH done AS (
    UPDATE step_runs s SET status = 'succeeded', branch = p_branch, finished_at = p_at, duration_ms = p_duration_ms,
      lease_owner = NULL, lease_expires_at = NULL, error = NULL,
      provider = p_provider, model = p_model, tokens_in = p_tokens_in, tokens_out = p_tokens_out, cost_usd = p_cost
    WHERE s.run_id = p_run AND s.step_id = p_step AND s.attempt = p_attempt AND s.lease_owner = p_worker AND s.status = 'running'
    RETURNING s.attempt
  )
  INSERT INTO artifacts (run_id, step_id, name, version, content, is_latest, produced_by, attempt, created_at)
  SELECT p_run, p_step, 'output',
    1 + coalesce((SELECT max(a.version) FROM artifacts a WHERE a.run_id = p_run AND a.step_id = p_step AND a.name = 'output'), 0),
    p_output, true, 'attempt', done.attempt, p_at
  FROM done;
  GET DIAGNOSTICS v_changed = ROW_COUNT;
  IF v_changed <> 1 THEN
    RAISE EXCEPTION 'step % of run % attempt % no longer holds its lease', p_step, p_run, p_attempt USING ERRCODE = 'WF410';
  END IF;

  -- The decision's writes touch different rows of step_runs (the claimed step is not queued),
  -- so one statement carries them all; it reads the output stored above (an earlier statement).
  WITH ev AS (
    INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
    SELECT p_run, e.step_id, e.type, e.attempt, e.data, p_at
    FROM unnest(p_event_steps, p_event_types, p_event_attempts, p_event_data) AS e(step_id, type, attempt, data)
  ), q AS (
    UPDATE step_runs s SET status = 'queued', available_at = p_at
    WHERE s.run_id = p_run AND s.step_id = ANY(p_queue) AND s.status IN ('pending', 'waiting')
  ), sk AS (
    UPDATE step_runs s SET status = 'skipped', skip_reason = k.reason, finished_at = p_at
    FROM unnest(p_skip_steps, p_skip_reasons) AS k(step_id, reason)
    WHERE s.run_id = p_run AND s.step_id = k.step_id
  ), f AS (
    UPDATE runs r SET status = p_finish, outputs = p_run_outputs, error = p_run_error, finished_at = p_at
    WHERE r.id = p_run AND p_finish IS NOT NULL
  ), c AS (
    UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_worker, lease_expires_at = p_lease_until,
      started_at = p_at, available_at = p_at, finished_at = NULL, duration_ms = NULL
    WHERE s.run_id = p_run AND s.step_id = p_claim AND s.status IN ('pending', 'queued', 'waiting')
    RETURNING s.run_id, s.step_id, s.attempt, s.attempt_base, s.overrides, s.available_at, s.refs
  )
  SELECT c.run_id, c.step_id, c.attempt, c.attempt_base, c.overrides, c.available_at, r.version_id, r.inputs, r.context,
    r.cost_usd::float8, r.budget_usd::float8, r.provider,
    (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
     WHERE a.run_id = c.run_id AND a.step_id = ANY(c.refs) AND a.name = 'output' AND a.is_latest)
  INTO o_run_id, o_step_id, o_attempt, o_attempt_base, o_overrides, o_ready_at, o_version_id, o_inputs, o_context,
    o_spent_usd, o_budget_usd, o_run_provider, o_deps
  FROM c JOIN runs r ON r.id = c.run_id;
  IF cardinality(p_queue) > 0 THEN
    PERFORM pg_notify('weft_steps', '');
  END IF;
  IF o_run_id IS NULL THEN
    RETURN;
  END IF;
  o_states := weft_step_states(p_run);
  RETURN NEXT;
END
$$;
