-- Quick completions in batches: a worker whose completions arrive while one of its statements
-- is in flight sends them together (engine/completion-batcher.ts), so several runs' steps cost
-- one statement and one commit. Each item is a call of weft_complete_attempt (migration 0008)
-- with the same arguments, passed as a JSON object; it runs in its own subtransaction, so an
-- item whose run moved (WF409) or whose attempt lost its lease (WF410) is rolled back alone
-- and answered with that code and the error's detail, while the others commit. Items come
-- sorted by run id, so two batches lock their runs in the same order and never deadlock.
CREATE FUNCTION weft_complete_attempts(p_items jsonb)
RETURNS TABLE (
  o_item int, o_error text, o_detail text,
  o_run_id uuid, o_step_id text, o_attempt int, o_attempt_base int, o_overrides jsonb, o_ready_at timestamptz,
  o_version_id uuid, o_inputs jsonb, o_context jsonb, o_spent_usd float8, o_budget_usd float8, o_run_provider text,
  o_deps jsonb, o_states text
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_item jsonb;
BEGIN
  FOR o_item, v_item IN SELECT t.n::int, t.value FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(value, n) LOOP
    o_error := NULL;
    o_detail := NULL;
    BEGIN
      SELECT * INTO o_run_id, o_step_id, o_attempt, o_attempt_base, o_overrides, o_ready_at, o_version_id, o_inputs, o_context,
        o_spent_usd, o_budget_usd, o_run_provider, o_deps, o_states
      FROM weft_complete_attempt(
        (v_item->>'run')::uuid, v_item->>'expected', (v_item->>'at')::timestamptz,
        (v_item->>'usage_in')::bigint, (v_item->>'usage_out')::bigint, (v_item->>'usage_cost')::numeric, (v_item->>'usage_simulated')::boolean,
        v_item->>'step', (v_item->>'attempt')::int, v_item->>'worker', v_item->'output', v_item->>'branch', (v_item->>'duration_ms')::int,
        v_item->>'provider', v_item->>'model', (v_item->>'tokens_in')::int, (v_item->>'tokens_out')::int, (v_item->>'cost')::numeric,
        ARRAY(SELECT jsonb_array_elements_text(v_item->'event_steps')), ARRAY(SELECT jsonb_array_elements_text(v_item->'event_types')),
        ARRAY(SELECT e::int FROM jsonb_array_elements_text(v_item->'event_attempts') AS e), ARRAY(SELECT jsonb_array_elements(v_item->'event_data')),
        ARRAY(SELECT jsonb_array_elements_text(v_item->'queue')),
        ARRAY(SELECT jsonb_array_elements_text(v_item->'skip_steps')), ARRAY(SELECT jsonb_array_elements_text(v_item->'skip_reasons')),
        v_item->>'claim', (v_item->>'lease_until')::timestamptz,
        v_item->>'finish', v_item->'run_outputs', v_item->'run_error');
    EXCEPTION WHEN SQLSTATE 'WF409' OR SQLSTATE 'WF410' THEN
      GET STACKED DIAGNOSTICS o_detail = PG_EXCEPTION_DETAIL;
      o_error := SQLSTATE;
      o_run_id := NULL;
    END;
    RETURN NEXT;
  END LOOP;
END
$$;
