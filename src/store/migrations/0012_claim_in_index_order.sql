-- The claim from the queue reads the claimable index in order, whatever the statistics say.
-- A queue table's statistics are wrong by nature: taken when the queue was empty, they make a
-- burst of queued steps look like three rows, and the planner then sorted every queued row
-- (a bitmap scan) and joined each to every running run (a nested loop over a materialised
-- scan of runs) before taking the first few: 29 ms per claim with 750 steps queued, measured
-- during `npm run bench:scale`, where the index read in order takes 0.16 ms.
--
-- weft_claim_queued is the claim's UPDATE as store/step-runs.ts ran it, with two changes: the
-- run's status is a scalar subquery per candidate (one primary-key probe, never a join), and
-- the function turns off sorting for its own plan (SET enable_sort, restored on return), so
-- the one plan left that yields rows in available_at order is the claimable index scan, which
-- stops after `p_limit` rows it could lock. ROWS 8: the calling statement joins what it
-- returns to runs by primary key, as it did the subquery's few rows.
CREATE FUNCTION weft_claim_queued(p_worker text, p_now timestamptz, p_lease_until timestamptz, p_limit int)
RETURNS TABLE (
  o_run_id uuid, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_refs text[], o_available_at timestamptz
) LANGUAGE plpgsql VOLATILE ROWS 8 SET enable_sort = off AS $$
BEGIN
  RETURN QUERY
  UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_worker,
    lease_expires_at = p_lease_until, started_at = p_now, finished_at = NULL, duration_ms = NULL
  FROM (SELECT q.run_id, q.step_id FROM step_runs q
        WHERE q.status = 'queued' AND q.available_at <= p_now
          AND (SELECT r.status FROM runs r WHERE r.id = q.run_id) = 'running'
        ORDER BY q.available_at LIMIT p_limit FOR UPDATE OF q SKIP LOCKED) pick
  WHERE s.run_id = pick.run_id AND s.step_id = pick.step_id
  RETURNING s.run_id, s.step_id, s.attempt, s.attempt_base, s.overrides, s.refs, s.available_at;
END
$$;
