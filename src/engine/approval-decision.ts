/**
 * Deciding an approval (see budget-hold.ts for how a budget pause opens one): one `advance`
 * under the run lock. Approve → optionally set the run's budget_usd (never below what the run
 * has spent), mark the approval approved, and resume the run (`run_resumed`, which queues the
 * parked steps). Reject → mark it rejected and cancel the run (`run_cancelled`).
 */
import { WeftError } from '../core/errors.ts';
import { decideApprovalRow, getApproval, type ApprovalRecord } from '../store/approvals.ts';
import type { NewEvent } from '../store/events.ts';
import { setRunBudget } from '../store/runs.ts';
import { loadStepStates } from '../store/step-runs.ts';
import type { AdvanceRequest } from './advance.ts';

export interface ApprovalDecision {
  decision: 'approve' | 'reject';
  /** Approve only: the run's new budget_usd (≥ what it has spent). Absent: unchanged. */
  budgetUsd?: number;
  comment?: string;
  /** Who decided (a user id); recorded on the approval and in the event. */
  by: string;
}

const MAX_COMMENT = 2000;

/** Refuses what no state of the run could make valid, before any transaction. */
export function checkApprovalDecision(d: ApprovalDecision): void {
  if (d.decision !== 'approve' && d.decision !== 'reject') {
    throw new WeftError('WEFT_INVALID_INPUTS', `decision must be 'approve' or 'reject', not ${JSON.stringify(d.decision)}`);
  }
  if (d.budgetUsd !== undefined) {
    if (d.decision !== 'approve') throw new WeftError('WEFT_INVALID_INPUTS', 'budget_usd goes with approve only');
    if (!(Number.isFinite(d.budgetUsd) && d.budgetUsd >= 0)) throw new WeftError('WEFT_INVALID_INPUTS', `budget_usd must be a number ≥ 0, not ${JSON.stringify(d.budgetUsd)}`);
  }
  if (d.comment !== undefined && (typeof d.comment !== 'string' || d.comment.length > MAX_COMMENT)) {
    throw new WeftError('WEFT_INVALID_INPUTS', `comment must be a string of at most ${MAX_COMMENT} characters`);
  }
}

/**
 * The advance request for a decision; `decided` holds the approval as decided once the
 * transaction has run. WEFT_NOT_FOUND: no such approval on this run. WEFT_CONFLICT: it is
 * decided already (or was closed when its run finished). WEFT_INVALID_INPUTS: budget_usd below
 * what the run has spent.
 */
export function approvalDecisionRequest(
  runId: string,
  approvalId: string,
  d: ApprovalDecision,
  at: Date,
): { request: Omit<AdvanceRequest, 'claimFor'>; decided: { approval?: ApprovalRecord } } {
  const decided: { approval?: ApprovalRecord } = {};
  const events: NewEvent[] = [];
  const approve = d.decision === 'approve';
  const request: Omit<AdvanceRequest, 'claimFor'> = {
    runId, at,
    event: approve ? { type: 'run_resumed' } : { type: 'run_cancelled' },
    events,
    fence: async (tx, run) => {
      events.length = 0; // transactionWithRetry may run this again after a serialization failure
      const approval = await getApproval(tx, runId, approvalId, true);
      if (!approval) throw new WeftError('WEFT_NOT_FOUND', `run ${runId} has no approval ${approvalId}`);
      if (approval.status !== 'pending') {
        throw new WeftError('WEFT_CONFLICT', `approval ${approvalId} is ${approval.status} already`, { details: { status: approval.status, run_status: run.status } });
      }
      if (approve && d.budgetUsd !== undefined) {
        // Compared with the locked run's figure: no step can add spending while we hold the lock.
        if (d.budgetUsd < run.spentUsd) {
          throw new WeftError('WEFT_INVALID_INPUTS', `budget_usd ${d.budgetUsd} is below what run ${runId} has spent ($${run.spentUsd})`, {
            details: { spent_usd: run.spentUsd, budget_usd: d.budgetUsd },
          });
        }
        await setRunBudget(tx, runId, d.budgetUsd, run.at);
      }
      const row = await decideApprovalRow(tx, { runId, approvalId, status: approve ? 'approved' : 'rejected', by: d.by, comment: d.comment ?? null, at: run.at });
      if (!row) throw new WeftError('WEFT_INTERNAL', `approval ${approvalId} stopped being pending under its row lock`);
      decided.approval = row;
      events.push({
        stepId: row.step_id, type: 'approval_decided', attempt: null,
        data: {
          approval_id: row.id, kind: row.kind, decision: row.status, by: d.by,
          ...(d.budgetUsd === undefined ? {} : { budget_usd: d.budgetUsd }),
          ...(d.comment === undefined ? {} : { comment: d.comment }),
        },
      });
      return loadStepStates(tx, runId);
    },
  };
  return { request, decided };
}
