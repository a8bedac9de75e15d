import { Duration, Validations } from 'aws-cdk-lib';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  Choice,
  Condition,
  CustomState,
  type IChainable,
  JitterType,
  JsonPath,
  type StateMachine,
  Succeed,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import { EventBridgePutEvents } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import {
  METRIC_DIMENSIONS,
  SERVICE_NAME,
  SNAPSHOT_COMMITTED_EVENT,
  SNAPSHOT_EVENT_SOURCE,
  SNAPSHOT_FAILED_EVENT,
  STATE_MACHINE_METRICS,
} from '../../lambda/core/facts';

/** The Glue relations a consumer of the event queries, named in its `detail.views`. */
export interface SnapshotEventViews {
  readonly database: string;
  /** Sessions of committed runs (the reader view). */
  readonly sessions: string;
  /** Sessions started and ended between consecutive committed scheduled snapshots. */
  readonly changes: string;
  /** One row per run, committed or failed. */
  readonly manifests: string;
}

export interface CompletionEventsProps {
  /** Where the events go: the account's default bus unless the deployer names one. */
  readonly eventBus: IEventBus;
  readonly views: SnapshotEventViews;
  /** Namespace of the job's metrics: the unpublished-event count goes there too. */
  readonly metricsNamespace: string;
}

/** The states' names; the local runner finds them by their Resource, tests by these names. */
export const COMPLETION_STATE_NAMES = {
  publishCommitted: 'PublishCommitted',
  publishCommittedFoundByAbort: 'PublishCommittedFoundByAbort',
  publishFailed: 'PublishFailed',
  done: 'Done',
} as const;

/** The Resource of the states that count an event that could not be published. */
export const PUT_METRIC_DATA_RESOURCE = 'arn:aws:states:::aws-sdk:cloudwatch:putMetricData';

/**
 * The completion event, published by Step Functions' own EventBridge integration after the
 * commit point: after Commit returned (the manifest written IS the commit), and after Abort
 * wrote the failed manifest. The detail is built from the RunSummary the phase returned
 * (lambda/handlers/handler.ts), so nothing in the function knows about EventBridge.
 *
 * Publishing is retried; when it still fails the event is lost but the run is not: the Catch
 * records the error in the state (`$.eventError`, visible in the execution's output and history)
 * and puts 1 on STATE_MACHINE_METRICS.completionEventUnpublished, which an alarm watches, then the execution
 * ends as it would have (SUCCEEDED for a committed run). A metric from the state machine itself,
 * not a call back into the function: the function may be what is failing, and a dead-letter
 * message would need a consumer nobody has.
 */
export class CompletionEvents extends Construct {
  /** What follows Commit: the committed event (not for a dry run, which commits nothing). */
  readonly afterCommit: IChainable;
  private readonly props: CompletionEventsProps;

  constructor(scope: Construct, id: string, props: CompletionEventsProps) {
    super(scope, id);
    this.props = props;
    const done = new Succeed(this, COMPLETION_STATE_NAMES.done);
    this.afterCommit = new Choice(this, 'CommitOutcome')
      .when(
        Condition.stringEquals('$.status', 'committed'),
        this.publish(COMPLETION_STATE_NAMES.publishCommitted, SNAPSHOT_COMMITTED_EVENT, '$', done),
      )
      .otherwise(done);
  }

  /**
   * What follows Abort (its RunSummary at `$.abort.Payload`), before `failed`: the failed event, or the
   * committed one when Abort found the run already committed (Commit's response was lost).
   */
  afterAbort(failed: IChainable): IChainable {
    return new Choice(this, 'AbortOutcome')
      .when(
        Condition.stringEquals('$.abort.Payload.status', 'failed'),
        this.publish(COMPLETION_STATE_NAMES.publishFailed, SNAPSHOT_FAILED_EVENT, '$.abort.Payload', failed),
      )
      .when(
        Condition.stringEquals('$.abort.Payload.status', 'committed'),
        this.publish(
          COMPLETION_STATE_NAMES.publishCommittedFoundByAbort,
          SNAPSHOT_COMMITTED_EVENT,
          '$.abort.Payload',
          failed,
        ),
      )
      .otherwise(failed);
  }

  /** Lets the state machine put events on this bus only, and count unpublished ones. */
  grant(stateMachine: StateMachine): void {
    const policy = new Policy(this, 'CountUnpublishedEvents', {
      roles: [stateMachine.role],
      statements: [
        new PolicyStatement({
          actions: ['cloudwatch:PutMetricData'],
          resources: ['*'],
          conditions: { StringEquals: { 'cloudwatch:namespace': this.props.metricsNamespace } },
        }),
      ],
    });
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the job's namespace by the cloudwatch:namespace condition.",
    });
  }

  private publish(
    name: string,
    detailType: string,
    at: '$' | '$.abort.Payload',
    next: IChainable,
  ): IChainable {
    const field = (key: string) => `${at}.${key}`;
    const failed = detailType === SNAPSHOT_FAILED_EVENT;
    const task = new EventBridgePutEvents(this, name, {
      stateName: name,
      entries: [
        {
          eventBus: this.props.eventBus,
          source: SNAPSHOT_EVENT_SOURCE,
          detailType,
          detail: TaskInput.fromObject({
            schema_version: 1,
            snapshot_id: JsonPath.stringAt(field('snapshotId')),
            run_id: JsonPath.stringAt(field('runId')),
            dt: JsonPath.stringAt(field('dt')),
            trigger: JsonPath.stringAt(field('trigger')),
            status: JsonPath.stringAt(field('status')),
            manifest_uri: JsonPath.stringAt(field('manifestUri')),
            counts: JsonPath.objectAt(field('counts')),
            files: JsonPath.numberAt(field('files')),
            views: { ...this.props.views },
            execution_arn: JsonPath.stringAt('$$.Execution.Id'),
            ...(failed
              ? {
                  failure: {
                    step: JsonPath.stringAt(field('failedStep')),
                    error_type: JsonPath.stringAt(field('errorType')),
                  },
                }
              : {}),
          }),
        },
      ],
      resultPath: JsonPath.DISCARD,
    });
    // EventBridge.FailedEntry (a non-zero FailedEntryCount), throttling and service errors alike.
    task.addRetry({
      errors: ['States.ALL'],
      interval: Duration.seconds(2),
      maxAttempts: 4,
      backoffRate: 2,
      maxDelay: Duration.seconds(30),
      jitterStrategy: JitterType.FULL,
    });
    const count = new CustomState(this, `${name}Unpublished`, {
      stateJson: {
        Type: 'Task',
        Resource: PUT_METRIC_DATA_RESOURCE,
        Parameters: {
          Namespace: this.props.metricsNamespace,
          MetricData: [
            {
              MetricName: STATE_MACHINE_METRICS.completionEventUnpublished,
              Dimensions: [{ Name: METRIC_DIMENSIONS.service, Value: SERVICE_NAME }],
              Value: 1,
              Unit: 'Count',
            },
          ],
        },
        ResultPath: null,
        Retry: [
          {
            ErrorEquals: ['States.ALL'],
            IntervalSeconds: 2,
            MaxAttempts: 3,
            BackoffRate: 2,
            JitterStrategy: 'FULL',
          },
        ],
      },
    });
    // Even the count failing must not fail a committed run: the error stays in the state.
    count.addCatch(next, { errors: ['States.ALL'], resultPath: '$.metricError' });
    count.next(next);
    task.addCatch(count, { errors: ['States.ALL'], resultPath: '$.eventError' });
    task.next(next);
    return task;
  }
}
