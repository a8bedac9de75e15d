import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Effect, PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
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

export interface ExportAlarmsProps {
  /** The export state machine: one execution per run. */
  readonly stateMachine: IStateMachine;
  /** The scheduled-run launcher: a failed launch means the slot has no run. */
  readonly launcher: IStateMachine;
  readonly failureQueue: IQueue;
  /** CloudWatch namespace of the job's EMF metrics (`METRICS_NAMESPACE`). */
  readonly metricsNamespace: string;
  /**
   * @default - no e-mail subscription
   */
  readonly email?: string;
  /**
   * Hours without a committed snapshot before the staleness alarm fires.
   * @default 26 (a daily schedule plus two hours of slack)
   */
  readonly staleAfterHours?: number;
}

/**
 * What someone should hear about, on one SNS topic: a run that failed, timed out or was stopped
 * (state machine executions; a failed run has already been aborted and left a failed manifest),
 * a scheduled slot whose run could not be launched, users that could not be exported, a
 * dead-lettered event, and (the catch-all) no committed scheduled snapshot for 26 hours, where no
 * data at all counts as breaching, so a schedule that silently stopped firing is caught too.
 * Lambda's own Errors and Duration are not alarmed: the state machine retries transient
 * invocation errors, and Work invocations run close to the timeout by design.
 */
export class ExportAlarms extends Construct {
  readonly topic: Topic;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: ExportAlarmsProps) {
    super(scope, id);
    this.topic = new Topic(this, 'Topic', { displayName: 'MoonKey session export alarms', enforceSSL: true });
    Validations.of(this.topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry alarm names and states only, no session or user data; CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, and a customer key for alarm texts is not worth its cost.',
    });
    // `enforceSSL` gives the topic a policy of its own, which replaces SNS's default policy: without
    // this Allow, CloudWatch's publish is refused ("not authorized to perform: SNS:Publish") and no
    // alarm reaches anyone. Scoped to this account's alarms so no other account's alarm can post here.
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisAccountPublish',
        effect: Effect.ALLOW,
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': stack.formatArn({
              service: 'cloudwatch',
              resource: 'alarm',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
    if (props.email) this.topic.addSubscription(new EmailSubscription(props.email));

    const sum = (
      metricName: MetricName | StateMachineMetricName,
      period: Duration,
      dimensions: Record<string, string> = {},
    ) => jobMetric(props.metricsNamespace, metricName, { statistic: 'Sum', period, dimensions });
    const staleAfterHours = props.staleAfterHours ?? 26;

    this.alarms = [
      new Alarm(this, 'ExecutionsFailed', {
        alarmDescription:
          'An export run failed and was aborted (see its failed manifest and the execution history).',
        metric: props.stateMachine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'ExecutionsTimedOut', {
        alarmDescription:
          'An export run exceeded the execution timeout (stuck, or queued too long behind an earlier run): its uploads are left for the bucket lifecycle rule.',
        metric: props.stateMachine.metricTimedOut({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'ExecutionsAborted', {
        alarmDescription:
          'An export run was stopped by hand (StopExecution): no Abort phase ran, so re-drive or abort its uploads.',
        metric: props.stateMachine.metricAborted({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'LaunchFailed', {
        alarmDescription: 'A scheduled slot could not start its export run (see the launcher execution).',
        metric: props.launcher.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'FailedUsers', {
        alarmDescription:
          'Users whose sessions could not be exported (listed in the manifest and failed-users/).',
        metric: sum(METRICS.usersFailed, Duration.minutes(5)),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'CompletionEventUnpublished', {
        alarmDescription:
          'A completion event (Snapshot Committed / Snapshot Failed) could not be put on EventBridge after retries: the snapshot is as its manifest says, but downstream jobs were not told (see $.eventError in the execution output).',
        metric: sum(STATE_MACHINE_METRICS.completionEventUnpublished, Duration.minutes(5)),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      new Alarm(this, 'DeadLetters', {
        alarmDescription: 'A scheduled event could not be delivered to the launcher: see the failure queue.',
        metric: props.failureQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: 0,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
      // Hourly sums: an hour without a run has no data (breaching), an hour whose run failed sums to 0
      // (breaching); one committed scheduled snapshot in the last N hours keeps the alarm OK. Audits
      // are a separate metric (trigger=audit) and cannot keep it green while the schedule is dead.
      new Alarm(this, 'NoRecentSnapshot', {
        alarmDescription: `No scheduled snapshot committed in the last ${staleAfterHours} hours (failed runs, or the schedule stopped firing).`,
        metric: sum(METRICS.snapshotCommitted, Duration.hours(1), {
          [METRIC_DIMENSIONS.trigger]: 'scheduled',
        }),
        threshold: 1,
        comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: staleAfterHours,
        datapointsToAlarm: staleAfterHours,
        treatMissingData: TreatMissingData.BREACHING,
      }),
    ];
    const action = new SnsAction(this.topic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      if (alarm.node.id === 'NoRecentSnapshot' || alarm.node.id === 'DeadLetters') alarm.addOkAction(action);
    }
  }
}
