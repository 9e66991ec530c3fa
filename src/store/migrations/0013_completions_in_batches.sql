-- Quick completions in batches (src/store/quick-completion.ts, src/engine/completion-batcher.ts):
-- the completions a worker has ready at once — steps of several runs — are written by one call,
-- set-wise: each statement below handles every item of the batch, so a batch of k costs one
-- round trip, one commit and four statements (six when it queues or skips steps), where k calls
-- of weft_complete_attempt (migration 0008) cost k of each and five statements apiece (both
-- beside their calls of weft_step_states, one per item). A first try (reverted, see
-- docs/BENCHMARKS.md) called weft_complete_attempt once per item, each in a subtransaction:
-- it saved no statement, and a worker alone got slower. A completion alone still goes through
-- weft_complete_attempt, which costs less for one item than this function does.
--
-- Item n (1-based) is the n-th element of every per-item array; events, queued steps and skips
-- are flattened, each with the item it belongs to. Every item gets one answer row:
-- * o_error 'WF409': its run is not running in auto mode with exactly the step states it
--   decided from (p_expected, weft_step_states' text); o_detail carries the current ones
--   ({status, mode, states}), read under the lock. Nothing of it is written.
-- * o_error 'WF410': its attempt no longer holds its lease. Nothing of it is written.
-- * otherwise its writes are done: its run's usage (and end, when p_finish is set), output,
--   events, queued and skipped steps, and the successor it claims for p_worker, returned with
--   what a claim returns and the run's states after the batch (o_run_id NULL: none claimed).
-- The items of one batch belong to different runs (it raises WF400 otherwise: an item decided
-- from states another item changes could not be checked). Runs are locked in id order, so
-- batches and advance() transactions, which lock one run, never deadlock on runs. (A batch and
-- its own worker's heartbeat both lock that worker's running steps, in their plans' orders; if
-- they ever deadlock, PostgreSQL aborts one: a heartbeat is sent again, a batch's items go
-- through advance().)
--
-- A run's clock never goes back (as in lockRun): an item's writes are recorded at the later of
-- its own time and the time its run last recorded, which weft_complete_attempt did not do.
CREATE FUNCTION weft_complete_attempts(
  p_worker text,
  p_runs uuid[], p_expected text[], p_at timestamptz[],
  p_usage_in bigint[], p_usage_out bigint[], p_usage_cost numeric[], p_usage_simulated boolean[],
  p_steps text[], p_attempts int[], p_outputs jsonb[], p_branches text[], p_durations int[],
  p_providers text[], p_models text[], p_tokens_in int[], p_tokens_out int[], p_costs numeric[],
  p_event_items int[], p_event_steps text[], p_event_types text[], p_event_attempts int[], p_event_data jsonb[],
  p_queue_items int[], p_queue_steps text[],
  p_skip_items int[], p_skip_steps text[], p_skip_reasons text[],
  p_claims text[], p_lease_until timestamptz[],
  p_finish text[], p_run_outputs jsonb[], p_run_errors jsonb[]
) RETURNS TABLE (
  o_item int, o_error text, o_detail text,
  o_run_id uuid, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_ready_at timestamptz,
  o_version_id uuid, o_inputs jsonb, o_context jsonb, o_spent_usd float8, o_budget_usd float8, o_run_provider text,
  o_deps jsonb, o_states text
) LANGUAGE plpgsql VOLATILE
  -- One plan per statement, made once per connection: re-planned per call (what the plan
  -- cache chose for these array parameters) it cost twice the statements' run. A plan kept
  -- for the connection's life must suit any table size, and the planner, which guesses 10 rows
  -- for an unnest of a parameter, chose hash joins over sequential scans on small tables, or a
  -- scan of a whole partial index. With those off, what is left is a nested loop from the
  -- items to primary-key probes (checked with auto_explain on empty and on large tables).
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
  SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
  v_status text[];
  v_mode text[];
  v_states text[];
  v_at timestamptz[];
  v_checked int[] := '{}';
  v_done int[];
BEGIN
  PERFORM 1 FROM runs r WHERE r.id = ANY(p_runs) ORDER BY r.id FOR NO KEY UPDATE;

  -- A new statement: its snapshot sees every write committed before we held the locks. The
  -- arrays are in item order, like the parameters.
  SELECT array_agg(r.status ORDER BY i.n), array_agg(r.mode ORDER BY i.n),
    array_agg(CASE WHEN r.id IS NULL THEN NULL ELSE weft_step_states(i.run) END ORDER BY i.n),
    array_agg(GREATEST(r.updated_at, i.at) ORDER BY i.n)
  INTO v_status, v_mode, v_states, v_at
  FROM unnest(p_runs, p_at) WITH ORDINALITY AS i(run, at, n) LEFT JOIN runs r ON r.id = i.run;

  FOR k IN 1 .. cardinality(p_runs) LOOP
    IF p_runs[k] = ANY(p_runs[1:k - 1]) THEN
      RAISE EXCEPTION 'a batch of completions names run % twice', p_runs[k] USING ERRCODE = 'WF400';
    END IF;
    IF v_status[k] = 'running' AND v_mode[k] = 'auto' AND v_states[k] = p_expected[k] THEN
      v_checked := v_checked || k;
    ELSE
      o_item := k;
      o_error := 'WF409';
      o_detail := json_build_object('status', v_status[k], 'mode', v_mode[k], 'states', v_states[k])::text;
      RETURN NEXT;
    END IF;
  END LOOP;
  o_error := NULL;
  o_detail := NULL;
  IF cardinality(v_checked) = 0 THEN
    RETURN;
  END IF;

  -- The fence, the outputs, and the runs' usage and ends, for the items whose attempt holds its lease.
  WITH done AS (
    UPDATE step_runs s SET status = 'succeeded', branch = p_branches[i.n], finished_at = v_at[i.n], duration_ms = p_durations[i.n],
      lease_owner = NULL, lease_expires_at = NULL, error = NULL,
      provider = p_providers[i.n], model = p_models[i.n], tokens_in = p_tokens_in[i.n], tokens_out = p_tokens_out[i.n], cost_usd = p_costs[i.n]
    FROM unnest(v_checked) AS i(n)
    WHERE s.run_id = p_runs[i.n] AND s.step_id = p_steps[i.n] AND s.attempt = p_attempts[i.n]
      -- status = 'running', written so that it does not imply the predicate of step_runs_leases
      -- (a scan of that whole index would be a candidate plan).
      AND s.lease_owner = p_worker AND s.status BETWEEN 'running' AND 'running'
    RETURNING i.n, s.attempt
  ), stored AS (
    INSERT INTO artifacts (run_id, step_id, name, version, content, is_latest, produced_by, attempt, created_at)
    SELECT p_runs[d.n], p_steps[d.n], 'output',
      1 + coalesce((SELECT max(a.version) FROM artifacts a WHERE a.run_id = p_runs[d.n] AND a.step_id = p_steps[d.n] AND a.name = 'output'), 0),
      p_outputs[d.n], true, 'attempt', d.attempt, v_at[d.n]
    FROM done d
  ), used AS (
    UPDATE runs r SET updated_at = v_at[d.n], tokens_in = r.tokens_in + p_usage_in[d.n], tokens_out = r.tokens_out + p_usage_out[d.n],
      cost_usd = r.cost_usd + p_usage_cost[d.n], simulated = r.simulated OR p_usage_simulated[d.n],
      status = coalesce(p_finish[d.n], r.status),
      outputs = CASE WHEN p_finish[d.n] IS NULL THEN r.outputs ELSE p_run_outputs[d.n] END,
      error = CASE WHEN p_finish[d.n] IS NULL THEN r.error ELSE p_run_errors[d.n] END,
      finished_at = CASE WHEN p_finish[d.n] IS NULL THEN r.finished_at ELSE v_at[d.n] END
    FROM done d
    WHERE r.id = p_runs[d.n]
  )
  SELECT coalesce(array_agg(d.n), '{}') INTO v_done FROM done d;

  IF cardinality(v_done) < cardinality(v_checked) THEN
    RETURN QUERY SELECT k, 'WF410'::text, NULL::text, NULL::uuid, NULL::text, NULL::int, NULL::int, NULL::jsonb, NULL::timestamptz,
      NULL::uuid, NULL::jsonb, NULL::jsonb, NULL::float8, NULL::float8, NULL::text, NULL::jsonb, NULL::text
    FROM unnest(v_checked) AS k WHERE k <> ALL(v_done);
    IF cardinality(v_done) = 0 THEN
      RETURN;
    END IF;
  END IF;

  -- The decisions' writes. Queued and skipped steps are rarer (a chain has none), so their
  -- statements run only when needed, and before the claims, whose states must show them.
  IF cardinality(p_queue_items) > 0 THEN
    UPDATE step_runs s SET status = 'queued', available_at = v_at[k.item]
    FROM unnest(p_queue_items, p_queue_steps) AS k(item, step_id)
    WHERE k.item = ANY(v_done) AND s.run_id = p_runs[k.item] AND s.step_id = k.step_id AND s.status IN ('pending', 'waiting');
    IF FOUND THEN
      PERFORM pg_notify('weft_steps', '');
    END IF;
  END IF;
  IF cardinality(p_skip_items) > 0 THEN
    UPDATE step_runs s SET status = 'skipped', skip_reason = k.reason, finished_at = v_at[k.item]
    FROM unnest(p_skip_items, p_skip_steps, p_skip_reasons) AS k(item, step_id, reason)
    WHERE k.item = ANY(v_done) AND s.run_id = p_runs[k.item] AND s.step_id = k.step_id;
  END IF;

  -- The events, the claims, and an answer for every item written. The claimed steps' states
  -- come from this statement's snapshot, which holds every write above but not the claim
  -- itself: weft_step_states renders the claimed step as the claim leaves it (migration 0011).
  RETURN QUERY
  WITH ev AS (
    INSERT INTO run_events (run_id, step_id, type, attempt, data, created_at)
    SELECT p_runs[e.item], e.step_id, e.type, e.attempt, e.data, v_at[e.item]
    FROM unnest(p_event_items, p_event_steps, p_event_types, p_event_attempts, p_event_data) AS e(item, step_id, type, attempt, data)
    WHERE e.item = ANY(v_done)
  ), c AS (
    UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1, lease_owner = p_worker, lease_expires_at = p_lease_until[i.n],
      started_at = v_at[i.n], available_at = v_at[i.n], finished_at = NULL, duration_ms = NULL
    FROM unnest(v_done) AS i(n)
    WHERE p_claims[i.n] IS NOT NULL AND s.run_id = p_runs[i.n] AND s.step_id = p_claims[i.n] AND s.status IN ('pending', 'queued', 'waiting')
    RETURNING i.n, s.run_id, s.step_id, s.attempt, s.attempt_base, s.overrides, s.available_at, s.refs
  )
  SELECT i.n, NULL::text, NULL::text, c.run_id, c.step_id, c.attempt, c.attempt_base, c.overrides, c.available_at,
    r.version_id, r.inputs, r.context, r.cost_usd::float8, r.budget_usd::float8, r.provider,
    CASE WHEN c.run_id IS NULL THEN NULL ELSE
      (SELECT coalesce(jsonb_object_agg(a.step_id, a.content), '{}'::jsonb) FROM artifacts a
       WHERE a.run_id = c.run_id AND a.step_id = ANY(c.refs) AND a.name = 'output' AND a.is_latest) END,
    CASE WHEN c.run_id IS NULL THEN NULL ELSE weft_step_states(c.run_id, c.step_id) END
  FROM unnest(v_done) AS i(n)
  LEFT JOIN c ON c.n = i.n
  LEFT JOIN runs r ON r.id = c.run_id;
END
$$;

-- weft_step_states renders the step a claim is making as the claim leaves it (migration 0011)
-- in every field, `parked` included: a running step renders false there, where a claimed
-- step still pending in the claiming statement's snapshot rendered NULL (its error is null).
-- Claims from the queue took only queued steps (false either way); a completion above claims
-- pending successors, and its states must equal what a later read renders.
CREATE OR REPLACE FUNCTION weft_step_states(p_run uuid, p_claimed text DEFAULT NULL) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT json_agg(json_build_array(s.step_id,
      CASE WHEN s.step_id = p_claimed THEN 'running' ELSE s.status END,
      CASE WHEN s.step_id = p_claimed THEN s.attempt + 1 ELSE s.attempt END,
      s.branch, s.attempt_base,
      CASE WHEN s.step_id = p_claimed THEN false ELSE s.status = 'pending' AND s.error->>'code' = 'WEFT_BUDGET_EXCEEDED' END)
      ORDER BY s.step_id)::text
    FROM step_runs s WHERE s.run_id = p_run);
END
$$;
