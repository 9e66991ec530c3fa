-- Step controls: step mode (a human triggers each step, optionally with another prompt) and
-- retrying a failed step by hand.
--
-- attempt_base: `attempt` when the step's current attempt family began. A human retry (and a
-- reset of a step the retry re-opens) starts a new family: the retry policy counts
-- `attempt - attempt_base`, while `attempt` itself keeps growing, so it still fences workers
-- of older attempts. The idempotency key of a family > 0 carries it (see engine/worker.ts).
ALTER TABLE step_runs ADD COLUMN attempt_base int NOT NULL DEFAULT 0;

-- What the human who triggered the step chose instead of the definition ({"prompt": "..."});
-- NULL = nothing overridden. Written with the trigger, read by the claim.
ALTER TABLE step_runs ADD COLUMN overrides jsonb;
