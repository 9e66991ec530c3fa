-- One rendering of a run's step states. weft_step_states (migration 0006) takes the step a
-- claim is making, if any: a claiming statement still sees that step as queued (its own
-- update is not in its snapshot), so it is rendered as the claim leaves it — running, its
-- attempt one higher. This replaces migration 0010's near-copy, weft_step_states_claimed, and
-- store/step-runs.ts now selects this function instead of repeating the expression. A STABLE
-- function reads its calling statement's snapshot, so a fenced write that selects it still
-- sees the fenced step as it was.
DROP FUNCTION weft_step_states_claimed(uuid, text);
DROP FUNCTION weft_step_states(uuid);

CREATE FUNCTION weft_step_states(p_run uuid, p_claimed text DEFAULT NULL) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT json_agg(json_build_array(s.step_id,
      CASE WHEN s.step_id = p_claimed THEN 'running' ELSE s.status END,
      CASE WHEN s.step_id = p_claimed THEN s.attempt + 1 ELSE s.attempt END,
      s.branch, s.attempt_base,
      s.status = 'pending' AND s.error->>'code' = 'WEFT_BUDGET_EXCEEDED') ORDER BY s.step_id)::text
    FROM step_runs s WHERE s.run_id = p_run);
END
$$;
