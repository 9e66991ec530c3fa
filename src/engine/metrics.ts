/**
 * Worker metrics in Prometheus' text format. Counters and histograms are plain numbers bumped
 * in memory — nothing here touches the database or the hot path's latency; the queue depth is
 * read only when someone scrapes.
 */

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) this.counts[i]!++;
  }

  render(name: string, help: string, labels = ''): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    const sep = labels ? `${labels},` : '';
    this.buckets.forEach((b, i) => lines.push(`${name}_bucket{${sep}le="${b}"} ${this.counts[i]}`));
    lines.push(`${name}_bucket{${sep}le="+Inf"} ${this.count}`, `${name}_sum${labels ? `{${labels}}` : ''} ${this.sum}`, `${name}_count${labels ? `{${labels}}` : ''} ${this.count}`);
    return lines;
  }
}

export class WorkerMetrics {
  claimed = 0;
  completed = 0;
  failed = 0;
  retried = 0;
  leaseLost = 0;
  /** Attempts handed back because the run's budget did not cover their next model call. */
  budgetHolds = 0;
  /** Quick completions sent, and the statements that carried them (batched: completion-batcher.ts); their ratio is the mean batch size. */
  quickCompletions = 0;
  quickStatements = 0;
  readonly claimLatency = new Histogram(LATENCY_BUCKETS);
  readonly stepDuration = new Histogram(DURATION_BUCKETS);

  render(gauges: { queueDepth: number | undefined; inFlight: number; concurrency: number }): string {
    const counter = (name: string, help: string, value: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`];
    const gauge = (name: string, help: string, value: number) => [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`];
    return [
      ...counter('weft_steps_claimed_total', 'Step attempts this worker claimed.', this.claimed),
      ...counter('weft_steps_completed_total', 'Step attempts that succeeded.', this.completed),
      ...counter('weft_steps_failed_total', 'Step attempts that failed (retried or not).', this.failed),
      ...counter('weft_steps_retried_total', 'Failed attempts scheduled for a retry.', this.retried),
      ...counter('weft_leases_lost_total', 'Attempts abandoned because their lease was lost.', this.leaseLost),
      ...counter('weft_budget_holds_total', 'Attempts handed back because the run budget did not cover their next model call.', this.budgetHolds),
      ...counter('weft_quick_completions_total', 'Quick completions sent (one sent again after a stale answer counts twice).', this.quickCompletions),
      ...counter('weft_quick_completion_statements_total', 'Statements that carried the quick completions (several go together under load).', this.quickStatements),
      ...this.claimLatency.render('weft_claim_latency_seconds', 'From a step becoming ready to its claim.'),
      ...this.stepDuration.render('weft_step_duration_seconds', 'Duration of step attempts.'),
      ...gauge('weft_steps_in_flight', 'Attempts running in this worker.', gauges.inFlight),
      ...gauge('weft_worker_concurrency', 'Slots of this worker.', gauges.concurrency),
      ...(gauges.queueDepth === undefined ? [] : gauge('weft_queue_depth', 'Steps queued and due, all workers.', gauges.queueDepth)),
    ].join('\n') + '\n';
  }
}
