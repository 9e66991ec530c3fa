-- A claim from the queue returns, for each step it claims that can complete quickly, the run's
-- step states in the same statement (store/step-runs.ts, claimQueued), where the worker read
-- them with a second statement. The claiming statement still sees the step as queued (its own
-- update is not in its snapshot), so this renders the states as weft_step_states (migration
-- 0006) will once the claim is in: that step running, its attempt one higher. States read in
-- that snapshot may be older than the run's by the time the completion runs: its comparison
-- under the run lock catches that, as for any snapshot.
CREATE FUNCTION weft_step_states_claimed(p_run uuid, p_step text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT json_agg(json_build_array(s.step_id,
      CASE WHEN s.step_id = p_step THEN 'running' ELSE s.status END,
      CASE WHEN s.step_id = p_step THEN s.attempt + 1 ELSE s.attempt END,
      s.branch, s.attempt_base,
      s.status = 'pending' AND s.error->>'code' = 'WEFT_BUDGET_EXCEEDED') ORDER BY s.step_id)::text
    FROM step_runs s WHERE s.run_id = p_run);
END
$$;
