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
