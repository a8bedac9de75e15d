import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Config } from './config';
import { METRIC_DIMENSIONS, METRICS, SERVICE_NAME } from './facts';

/** The logging surface the job uses; Powertools' Logger satisfies it, tests can pass their own. */
export type JobLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return new Logger({ serviceName: SERVICE_NAME, logLevel: config.logLevel });
}

/** Counts published once per run, as CloudWatch embedded metric format; the stack's alarms read them. */
export interface RunMetrics {
  readonly usersProcessed: number;
  readonly usersFailed: number;
  /** Users MoonKey answered 404 user_not_found for (deleted since the scan): not failures. */
  readonly usersNotFound: number;
  readonly sessionsExported: number;
  readonly itemsRejected: number;
  readonly retries: number;
  readonly durationSeconds: number;
  readonly committed: boolean;
  /** What started the run (the manifest's `trigger`). */
  readonly trigger: 'scheduled' | 'audit';
}

export type MetricsSink = (metrics: RunMetrics) => void;

export const noMetrics: MetricsSink = () => {};

/**
 * EMF via Powertools: JSON lines on stdout that CloudWatch turns into metrics, no API calls.
 * `SnapshotCommitted` is 1 or 0 per run so "no commit in 26 hours" is a simple Sum alarm; it goes
 * in its own EMF line because it alone carries the `trigger` dimension (EMF dimensions apply to
 * every metric of a line).
 */
export function createMetricsSink(config: Pick<Config, 'metricsEnabled' | 'metricsNamespace'>): MetricsSink {
  if (!config.metricsEnabled) return noMetrics;
  const metrics = new Metrics({ namespace: config.metricsNamespace, serviceName: SERVICE_NAME });
  return (m) => {
    metrics.addMetric(METRICS.usersProcessed, MetricUnit.Count, m.usersProcessed);
    metrics.addMetric(METRICS.usersFailed, MetricUnit.Count, m.usersFailed);
    metrics.addMetric(METRICS.usersNotFound, MetricUnit.Count, m.usersNotFound);
    metrics.addMetric(METRICS.sessionsExported, MetricUnit.Count, m.sessionsExported);
    metrics.addMetric(METRICS.itemsRejected, MetricUnit.Count, m.itemsRejected);
    metrics.addMetric(METRICS.retries, MetricUnit.Count, m.retries);
    metrics.addMetric(METRICS.runDuration, MetricUnit.Seconds, m.durationSeconds);
    metrics.publishStoredMetrics();
    const committed = metrics.singleMetric();
    committed.addDimension(METRIC_DIMENSIONS.trigger, m.trigger);
    committed.addMetric(METRICS.snapshotCommitted, MetricUnit.Count, m.committed ? 1 : 0);
  };
}

/** What the end of a run reports: the parts of its manifest (snapshot/manifest.ts) that it reads. */
export interface RunEnd {
  readonly snapshot_id: string;
  readonly run_id: string;
  readonly trigger: RunMetrics['trigger'];
  readonly status: string;
  readonly error: unknown;
  readonly duration_ms: number;
  readonly counts: {
    readonly users_processed: number;
    readonly users_failed: number;
    readonly users_not_found: number;
    readonly sessions_exported: number;
    readonly items_rejected: number;
    readonly retries: number;
  };
  readonly files: { readonly sessions: readonly unknown[] };
}

/** One metrics record and one log line per run, when it ends either way. */
export function reportRunEnd(
  logger: JobLogger,
  metrics: MetricsSink,
  end: RunEnd,
  manifestKey: string | undefined,
): void {
  metrics({
    usersProcessed: end.counts.users_processed,
    usersFailed: end.counts.users_failed,
    usersNotFound: end.counts.users_not_found,
    sessionsExported: end.counts.sessions_exported,
    itemsRejected: end.counts.items_rejected,
    retries: end.counts.retries,
    durationSeconds: end.duration_ms / 1000,
    committed: end.status === 'committed',
    trigger: end.trigger,
  });
  const log = end.status === 'failed' ? logger.error : logger.info;
  log.call(logger, `snapshot ${end.status}`, {
    snapshotId: end.snapshot_id,
    runId: end.run_id,
    manifestKey,
    error: end.error,
    counts: end.counts,
    files: end.files.sessions.length,
    durationMs: end.duration_ms,
  });
}
