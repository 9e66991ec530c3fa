-- The claim from the queue reads the claimable index in order, whatever the statistics say.
-- A queue table's statistics are wrong by nature: taken when the queue was empty, they make a
-- burst of queued steps look like three rows, and the planner then sorted every queued row
-- (a bitmap scan) and joined each to every running run (a nested loop over a materialised
-- scan of runs) before taking the first few: 29 ms per claim with 750 steps queued, measured
-- during `npm run bench:scale`, where the index read in order takes 0.16 ms.
--
-- weft_claim_queued is the claiming statement store/step-runs.ts sent (claim, step_started
-- events, the claim's result with its run's states), with two changes: the run's status is a
-- scalar subquery per candidate (one primary-key probe, never a join), and the function turns
-- off sorting for its own plans (SET enable_sort, restored on return), so the one plan left
-- that yields rows in available_at order is the claimable index scan, which stops after
-- `p_limit` rows it could lock. It stays ONE statement: everything it returns is read with the
-- snapshot that found the steps claimable (a caller reading the runs or the outputs with an
-- older one would miss a run started meanwhile, and lose the step it just claimed).
CREATE FUNCTION weft_claim_queued(p_worker text, p_now timestamptz, p_lease_until timestamptz, p_limit int)
RETURNS TABLE (
  o_run_id uuid, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_ready_at timestamptz,
  o_version_id uuid, o_inputs jsonb, o_context jsonb, o_spent_usd float8, o_budget_usd float8, o_run_provider text,
  o_deps jsonb, o_states text
) LANGUAGE plpgsql VOLATILE SET enable_sort = off AS $$
BEGIN
  RETURN QUERY
  WITH c AS (
    UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_worker,
      lease_expires_at = p_lease_until, started_at = p_now, finished_at = NULL, duration_ms = NULL
    FROM (SELECT q.run_id, q.step_id FROM step_runs q
          WHERE q.status = 'queued' AND q.available_at <= p_now
            AND (SELECT r.status FROM runs r WHERE r.id = q.run_id) = 'running'
          ORDER BY q.available_at LIMIT p_limit FOR UPDATE OF q SKIP LOCKED) pick
    WHERE s.run_id = pick.run_id AND s.step_id = pick.step_id
    RETURNING s.run_id, s.step_id, s.attempt, s.attempt_base, s.overrides, s.refs, s.available_at
  ), e AS (
    INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
    SELECT c.run_id, c.step_id, 'step_started', c.attempt, jsonb_build_object('worker', p_worker), p_now FROM c
  )
  SELECT c.run_id, c.step_id, c.attempt, c.attempt_base, c.overrides, c.available_at, r.version_id, r.inputs, r.context,
    r.cost_usd::float8, r.budget_usd::float8, r.provider,
    (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
     WHERE a.run_id = c.run_id AND a.step_id = ANY(c.refs) AND a.name = 'output' AND a.is_latest),
    -- The run's states when the step can complete quickly (see claimQueued in step-runs.ts).
    CASE WHEN r.mode = 'auto'
      AND NOT EXISTS (SELECT 1 FROM step_runs o WHERE o.run_id = c.run_id AND o.step_id <> c.step_id AND o.status IN ('queued', 'running'))
      AND (r.budget_usd IS NULL
        OR EXISTS (SELECT 1 FROM step_runs o WHERE o.run_id = c.run_id AND o.step_id <> c.step_id AND o.status IN ('pending', 'waiting')))
    THEN weft_step_states(c.run_id, c.step_id) END
  FROM c JOIN runs r ON r.id = c.run_id;
END
$$;
