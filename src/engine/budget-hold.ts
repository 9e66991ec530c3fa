/**
 * A budget pause: an AI executor refused its next model call (WEFT_BUDGET_EXCEEDED, see
 * src/steps/budget.ts) because the run's budget_usd does not cover its estimate. That is no
 * failure of the step: the worker hands the attempt back and the run waits for a person.
 *
 * One `advance` transaction: fence on the attempt (attempt, lease owner, status running) and
 * park the step (pending, lease cleared, retry count kept: see parkAttempt); open the run's
 * budget approval (or add to the one pending); the scheduler's `run_paused` pauses a running
 * or waiting run (a paused run stays paused, the step is only parked). Approving resumes the
 * run and resume queues the parked step; rejecting cancels the run (Engine.decideApproval).
 */
import { randomUUID } from 'node:crypto';
import { toErrorRecord, type WeftError } from '../core/errors.ts';
import { openBudgetApproval } from '../store/approvals.ts';
import type { NewEvent } from '../store/events.ts';
import { parkAttempt, type AttemptFence, type ClaimedStep } from '../store/step-runs.ts';
import type { AdvanceRequest } from './advance.ts';

/** What the refusal said (its details), with the claim's figures where it said nothing. */
export interface BudgetRefusal {
  estimateUsd: number;
  spentUsd: number;
  budgetUsd: number;
}

export function readRefusal(error: WeftError, c: ClaimedStep): BudgetRefusal {
  const num = (key: string, fallback: number): number => {
    const value = error.details?.[key];
    return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return { estimateUsd: num('estimate_usd', 0), spentUsd: num('spent_usd', c.spentUsd), budgetUsd: num('budget_usd', c.budgetUsd ?? 0) };
}

/** The advance request that parks the attempt and pauses the run into an approval. */
export function budgetHoldRequest(
  c: ClaimedStep,
  fence: AttemptFence,
  error: WeftError,
  at: Date,
  durationMs: number,
): AdvanceRequest {
  const refusal = readRefusal(error, c);
  // Calls the step made before the refused one (tool rounds) were paid for: their cost joins
  // the run's (the refusal's spent minus the run's at the claim), so the budget still counts
  // them after the step re-runs. Their tokens are not known here; only the cost is kept.
  const spentInStep = Math.max(0, Math.round((refusal.spentUsd - c.spentUsd) * 1e8) / 1e8);
  const events: NewEvent[] = [];
  return {
    runId: c.runId, at,
    event: { type: 'run_paused' },
    ...(spentInStep > 0 ? { usage: { tokensIn: 0, tokensOut: 0, costUsd: spentInStep, simulated: false } } : {}),
    events,
    fence: async (tx, run) => {
      events.length = 0; // transactionWithRetry may run this again after a serialization failure
      const steps = await parkAttempt(tx, { ...fence, error: toErrorRecord(error), at: run.at, durationMs });
      if (!steps) return undefined;
      const budgetUsd = run.budgetUsd ?? refusal.budgetUsd;
      const { approval, reused } = await openBudgetApproval(tx, {
        id: randomUUID(), runId: c.runId, stepId: c.stepId, estimateUsd: refusal.estimateUsd, spentUsd: run.spentUsd, budgetUsd, at: run.at,
      });
      events.push({
        stepId: c.stepId, type: 'approval_requested', attempt: c.attempt,
        data: { approval_id: approval.id, kind: 'budget', estimate_usd: refusal.estimateUsd, spent_usd: run.spentUsd, budget_usd: budgetUsd, reused },
      });
      return steps;
    },
  };
}
