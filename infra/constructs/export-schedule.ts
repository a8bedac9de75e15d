import { Duration, Stack, TimeZone, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  ContextAttribute,
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
} from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { iam5ResourceFinding } from '../nag-finding';

export interface ExportScheduleProps {
  readonly target: IFunction;
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
   * Retries when Scheduler cannot hand the event to Lambda.
   * @default 3
   */
  readonly retryAttempts?: number;
}

/**
 * EventBridge Scheduler invoking the function with a "Scheduled Event" whose `time` is the slot's
 * scheduled time (not the delivery time): the snapshot id derives from it, so a retried delivery
 * rewrites the same snapshot instead of making a second one. Undeliverable events go to the DLQ.
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
        'EventBridge Scheduler: invoke the session export function, dead-letter undeliverable events',
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
      target: new LambdaInvoke(props.target, {
        input,
        role,
        deadLetterQueue: props.deadLetterQueue,
        retryAttempts: props.retryAttempts ?? 3,
        maxEventAge: Duration.hours(2),
      }),
    });
    Validations.of(role).acknowledge({
      id: iam5ResourceFinding(this, `${props.target.functionArn}:*`),
      reason:
        "CDK's grantInvoke adds the function's qualified ARNs (versions, aliases): the role can invoke only this one function.",
    });
  }
}
