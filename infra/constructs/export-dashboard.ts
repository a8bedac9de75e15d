import { Duration } from 'aws-cdk-lib';
import {
  AlarmStatusWidget,
  Dashboard,
  GraphWidget,
  type IAlarm,
  type IWidget,
  MathExpression,
  type Metric,
  SingleValueWidget,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  METRIC_DIMENSIONS,
  METRICS,
  type MetricName,
  STATE_MACHINE_METRICS,
  type StateMachineMetricName,
} from '../../lambda/core/facts';
import { jobMetric } from './job-metric';

export interface ExportDashboardProps {
  readonly stateMachine: IStateMachine;
  /** CloudWatch namespace of the job's EMF metrics (`METRICS_NAMESPACE`). */
  readonly metricsNamespace: string;
  /** Shown in one alarm status widget. */
  readonly alarms: readonly IAlarm[];
  /**
   * `EXPORT_MAX_RPS`: drawn as a line on the users-per-second graph.
   * @default - no line (no cap is configured)
   */
  readonly maxRequestsPerSecond?: number;
  /**
   * @default Duration.hours(1)
   */
  readonly period?: Duration;
}

/**
 * One CloudWatch dashboard for an operator: how long runs take and how much they did, users per
 * second against the configured API limit, what went wrong (failed and not-found users, rejected
 * items, retries), executions by status, hours since the last committed scheduled snapshot, and
 * the alarms. Every metric name comes from lambda/core/facts.ts (what the job and the state
 * machine emit), with the dimensions the emitter puts on them (job-metric.ts); the run metrics arrive once per run, so
 * each graph shows one point per run at the hour it ended.
 */
export class ExportDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: ExportDashboardProps) {
    super(scope, id);
    const period = props.period ?? Duration.hours(1);
    const job = (
      metricName: MetricName | StateMachineMetricName,
      statistic: string,
      label: string,
      dimensions: Record<string, string> = {},
    ) => jobMetric(props.metricsNamespace, metricName, { statistic, period, label, dimensions });
    const graph = (title: string, left: Metric[]) => new GraphWidget({ title, left, width: 12, height: 6 });

    const usersPerSecond = new MathExpression({
      expression: 'users / seconds',
      usingMetrics: {
        users: job(METRICS.usersProcessed, 'Sum', 'users'),
        seconds: job(METRICS.runDuration, 'Sum', 'seconds'),
      },
      label: 'users processed per second of run',
      period,
    });

    // Hours since the last hour in which a scheduled run committed: the commit hours' epochs,
    // carried forward, subtracted from each hour's own. Blank while the graph's range holds no
    // commit at all; the NoRecentSnapshot alarm watches the same metric without that limit.
    const committed = job(METRICS.snapshotCommitted, 'Sum', 'committed', {
      [METRIC_DIMENSIONS.trigger]: 'scheduled',
    });
    const snapshotAge = new MathExpression({
      expression: '(EPOCH(hours) - FILL(IF(hours > 0, EPOCH(hours)), REPEAT)) / 3600',
      usingMetrics: {
        hours: new MathExpression({ expression: 'FILL(committed, 0)', usingMetrics: { committed } }),
      },
      label: 'hours since the last committed scheduled snapshot',
      period,
    });

    const widgets: IWidget[][] = [
      [
        graph('Run duration (s)', [job(METRICS.runDuration, 'Maximum', 'run duration')]),
        new GraphWidget({
          title: 'Users per second',
          left: [usersPerSecond],
          leftAnnotations:
            props.maxRequestsPerSecond === undefined
              ? []
              : [
                  {
                    value: props.maxRequestsPerSecond,
                    label: 'EXPORT_MAX_RPS (requests/s; a user is 1 request or more)',
                  },
                ],
          width: 12,
          height: 6,
        }),
      ],
      [
        graph('Users processed and sessions exported', [
          job(METRICS.usersProcessed, 'Sum', 'users processed'),
          job(METRICS.sessionsExported, 'Sum', 'sessions exported'),
        ]),
        graph('Failed and not-found users, rejected items', [
          job(METRICS.usersFailed, 'Sum', 'failed users'),
          job(METRICS.usersNotFound, 'Sum', 'not-found users (deleted at MoonKey)'),
          job(METRICS.itemsRejected, 'Sum', 'rejected items'),
        ]),
      ],
      [
        graph('Retried API calls (429s and transient errors)', [job(METRICS.retries, 'Sum', 'retries')]),
        graph('Executions by status', [
          props.stateMachine.metricStarted({ period, statistic: 'Sum', label: 'started' }),
          props.stateMachine.metricSucceeded({ period, statistic: 'Sum', label: 'succeeded' }),
          props.stateMachine.metricFailed({ period, statistic: 'Sum', label: 'failed' }),
          props.stateMachine.metricTimedOut({ period, statistic: 'Sum', label: 'timed out' }),
          props.stateMachine.metricAborted({ period, statistic: 'Sum', label: 'aborted' }),
        ]),
      ],
      [
        new SingleValueWidget({
          title: 'Age of the last committed scheduled snapshot (h)',
          metrics: [snapshotAge],
          width: 6,
          height: 6,
        }),
        graph('Completion events not published', [
          job(STATE_MACHINE_METRICS.completionEventUnpublished, 'Sum', 'events lost after retries'),
        ]),
        new AlarmStatusWidget({ title: 'Alarms', alarms: [...props.alarms], width: 6, height: 6 }),
      ],
    ];
    this.dashboard = new Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(14),
      widgets,
    });
  }
}
