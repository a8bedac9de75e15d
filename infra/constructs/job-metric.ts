import type { Duration } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  METRIC_DIMENSIONS,
  type MetricName,
  SERVICE_NAME,
  type StateMachineMetricName,
} from '../../lambda/core/facts';

export interface JobMetricOptions {
  readonly statistic: string;
  readonly period: Duration;
  readonly label?: string;
  /** Dimensions beyond `service`, which every metric of the job carries. */
  readonly dimensions?: Record<string, string>;
}

/**
 * A metric the job (or its state machine) emits, as CloudWatch files it: in the job's namespace,
 * with the `service` dimension Powertools puts on every metric. The alarms and the dashboard read
 * metrics only through this, so they can only name what lambda/core/facts.ts lists.
 */
export function jobMetric(
  namespace: string,
  metricName: MetricName | StateMachineMetricName,
  options: JobMetricOptions,
): Metric {
  return new Metric({
    namespace,
    metricName,
    dimensionsMap: { [METRIC_DIMENSIONS.service]: SERVICE_NAME, ...options.dimensions },
    statistic: options.statistic,
    period: options.period,
    ...(options.label === undefined ? {} : { label: options.label }),
  });
}
