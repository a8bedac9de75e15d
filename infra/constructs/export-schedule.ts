import { Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import {
  ContextAttribute,
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
} from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface ExportScheduleProps {
  /** The scheduled-run launcher (it names the export execution after the slot). */
  readonly target: IStateMachine;
  readonly deadLetterQueue: IQueue;
  /**
   * @default 'cron(0 2 * * ? *)'
   */
  readonly expression?: string;
  /**
   * @default 'Etc/UTC'
   */
  readonly timeZone?: string;
  /**
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Retries when Scheduler cannot start the launcher (throttling, service errors).
   * @default 3
   */
  readonly retryAttempts?: number;
}

/**
 * EventBridge Scheduler starting the scheduled-run launcher with a "Scheduled Event" whose `time`
 * is the slot's scheduled time (not the delivery time). The launcher names the export execution
 * after it, and the snapshot id derives from it, so a duplicate or retried delivery finds the
 * slot's run instead of starting a second one. Undeliverable events go to the DLQ.
 */
export class ExportSchedule extends Construct {
  readonly schedule: Schedule;

  constructor(scope: Construct, id: string, props: ExportScheduleProps) {
    super(scope, id);
    const input = ScheduleTargetInput.fromObject({
      'detail-type': 'Scheduled Event',
      source: 'aws.scheduler',
      time: ContextAttribute.scheduledTime,
      resources: [ContextAttribute.scheduleArn],
      detail: {},
    });
    const role = new Role(this, 'Role', {
      description:
        'EventBridge Scheduler: start the scheduled-run launcher, dead-letter undeliverable events',
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    });
    this.schedule = new Schedule(this, 'Schedule', {
      description: 'MoonKey session snapshot',
      schedule: ScheduleExpression.expression(
        props.expression ?? 'cron(0 2 * * ? *)',
        TimeZone.of(props.timeZone ?? 'Etc/UTC'),
      ),
      enabled: props.enabled ?? true,
      target: new StepFunctionsStartExecution(props.target, {
        input,
        role,
        deadLetterQueue: props.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 3,
        maxEventAge: Duration.hours(2),
      }),
    });
  }
}
