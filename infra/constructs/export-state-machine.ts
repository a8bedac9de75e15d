import { Duration, RemovalPolicy, Token, Validations } from 'aws-cdk-lib';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  Choice,
  Condition,
  CustomState,
  DefinitionBody,
  Fail,
  JitterType,
  JsonPath,
  LogLevel,
  Map as MapState,
  Pass,
  StateMachine,
  StateMachineType,
  TaskInput,
  Timeout,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, type LambdaInvokeProps } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { MAX_SEGMENTS } from '../../lambda/core/facts';
import { iam5ResourceFinding } from '../nag-finding';
import { acknowledgeGuard } from '../policy-checks';
import { CompletionEvents, type CompletionEventsProps } from './completion-events';

/**
 * Names of the states the local runner (local/state-machine-runner.ts) overrides. They are the
 * contract between the definition and the runner, so both import them from here.
 */
export const STATE_NAMES = {
  listRunning: 'ListRunningExecutions',
  listMoreRunning: 'ListMoreRunningExecutions',
  waitForTurn: 'WaitForTurn',
  plan: 'Plan',
  segments: 'Segments',
  work: 'Work',
  commit: 'Commit',
  waitForStragglers: 'WaitForStragglers',
  abort: 'Abort',
  failed: 'Failed',
} as const;

/**
 * Errors Step Functions reports when Lambda itself failed (documented in "Handle Lambda service
 * exceptions"): the function may not have run at all, so invoking it again is the fix.
 */
const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
];
/** Lambda refused the invocation: the account or the reserved concurrency is exhausted. */
const LAMBDA_THROTTLED = ['Lambda.TooManyRequestsException'];
/**
 * The invocation ran out of time or died: `Sandbox.Timedout` is the error type current runtimes
 * report for a function timeout, `Lambda.Unknown` what the Step Functions guide names for timeouts
 * and out-of-memory deaths, `States.Timeout` the Task's own TimeoutSeconds (a lost response).
 */
const INVOCATION_TIMED_OUT = ['Sandbox.Timedout', 'Lambda.Unknown', 'States.Timeout'];

const JSON_NULL = JsonPath.stringToJson('null');

export interface ExportStateMachineProps {
  /** The export function; every phase is one invocation of it, dispatched on `phase`. */
  readonly function: IFunction;
  /** The function's timeout: Task timeouts and the wait for stragglers are derived from it. */
  readonly functionTimeout: Duration;
  /**
   * Segments the Map runs at once (inline Map: at most MAX_SEGMENTS).
   * @default 8
   */
  readonly maxSegmentConcurrency?: number;
  /**
   * Retention of the state machines' execution log group.
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;
  /**
   * Longest an execution may take, queueing behind an earlier run included.
   * @default Duration.hours(24)
   */
  readonly executionTimeout?: Duration;
  /**
   * How often an execution queued behind an earlier run checks whether it is its turn.
   * @default Duration.minutes(1)
   */
  readonly turnPollInterval?: Duration;
  /** The completion event published after the commit point (bus, views named in it). */
  readonly completionEvents: CompletionEventsProps;
}

/**
 * The export as a Standard state machine (the phases it invokes: lambda/run/plan-phase.ts, work-phase.ts, commit-phase.ts, abort-phase.ts):
 *
 *   ListRunningExecutions ─▶ oldest running? ──no──▶ WaitForTurn ─┐
 *        ▲  (every page)          │ yes                            │
 *        └────────────────────────┼────────────────────────────────┘
 *                                 ▼
 *   Plan ─▶ Segments (inline Map over $.segments; per segment: Work ⟲ until done) ─▶ Commit ─▶ event
 *     │          │                                                                     │
 *     └─ Catch ──┴──(Work: wait for in-flight invocations)──▶ Abort ─▶ event ─▶ Failed ◀┘ Catch
 *
 * The events ("Snapshot Committed", "Snapshot Failed": completion-events.ts) go out after the
 * commit point; a publish that fails is counted and never changes how the execution ends.
 *
 * Runs are serialized: an execution starts Plan only when it is the oldest RUNNING execution of
 * this state machine, so an audit started during the nightly run waits for it, and the API's
 * rate limit (EXPORT_MAX_RPS, shared by the segments of ONE run) holds across runs too.
 * Payloads stay small whatever the table size: Map iterations carry a slice (cursor + S3 key of
 * the last state object), and only each segment's final `slice.tail` reaches Commit.
 */
export class ExportStateMachine extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  readonly maxSegmentConcurrency: number;

  constructor(scope: Construct, id: string, props: ExportStateMachineProps) {
    super(scope, id);
    const maxSegmentConcurrency = props.maxSegmentConcurrency ?? 8;
    if (
      !Token.isUnresolved(maxSegmentConcurrency) &&
      (!Number.isInteger(maxSegmentConcurrency) ||
        maxSegmentConcurrency < 1 ||
        maxSegmentConcurrency > MAX_SEGMENTS)
    ) {
      throw new Error(
        `maxSegmentConcurrency must be a whole number from 1 to ${MAX_SEGMENTS} (got ${maxSegmentConcurrency})`,
      );
    }
    this.maxSegmentConcurrency = maxSegmentConcurrency;
    // A minute past the function's own timeout: Lambda reports its timeout first; this one only
    // fires when the invocation's response is lost.
    const taskTimeout = Timeout.duration(props.functionTimeout.plus(Duration.minutes(1)));

    const lambdaTask = (name: string, payload: TaskInput, shape: Partial<LambdaInvokeProps>) => {
      const task = new LambdaInvoke(this, name, {
        stateName: name,
        lambdaFunction: props.function,
        payload,
        retryOnServiceExceptions: false,
        taskTimeout,
        ...shape,
      });
      task.addRetry({
        errors: LAMBDA_SERVICE_ERRORS,
        interval: Duration.seconds(2),
        maxAttempts: 6,
        backoffRate: 2,
        maxDelay: Duration.minutes(1),
        jitterStrategy: JitterType.FULL,
      });
      task.addRetry({
        errors: LAMBDA_THROTTLED,
        interval: Duration.seconds(5),
        maxAttempts: 10,
        backoffRate: 2,
        maxDelay: Duration.minutes(2),
        jitterStrategy: JitterType.FULL,
      });
      task.addRetry({
        errors: INVOCATION_TIMED_OUT,
        interval: Duration.seconds(5),
        maxAttempts: 2,
        backoffRate: 2,
      });
      return task;
    };

    // ---- one run at a time ---------------------------------------------------------------------
    // ListExecutions sorts newest first, so the last RUNNING entry of the last page is the oldest
    // run. Every execution agrees on which one that is, so exactly one proceeds; the rest poll.
    // A page holds at most MaxResults (and may hold fewer, even none, before the last), so the
    // gate follows NextToken to the end, keeping the last entry of the latest page that had one:
    // reading one page only, the 100th newest of more than 100 running executions would take
    // itself for the oldest. Pages of 100 keep the state's payload far below its 256 KB limit.
    const listExecutions = (stateName: string, nextToken: boolean) =>
      new CustomState(this, stateName, {
        stateJson: {
          Type: 'Task',
          Resource: 'arn:aws:states:::aws-sdk:sfn:listExecutions',
          Parameters: {
            'StateMachineArn.$': '$$.StateMachine.Id',
            StatusFilter: 'RUNNING',
            MaxResults: 100,
            ...(nextToken ? { 'NextToken.$': '$.turn.page.NextToken' } : {}),
          },
          // The first page starts the look afresh ($.turn is replaced, so no entry of an earlier
          // poll is kept); the next ones replace the page and keep the oldest entry seen so far.
          // NextToken is absent on the last page, so the page is kept whole, not selected from.
          ...(nextToken
            ? { ResultPath: '$.turn.page' }
            : { ResultSelector: { 'page.$': '$' }, ResultPath: '$.turn' }),
          Retry: [
            {
              ErrorEquals: ['States.TaskFailed'],
              IntervalSeconds: 2,
              MaxAttempts: 5,
              BackoffRate: 2,
              JitterStrategy: 'FULL',
            },
          ],
        },
      });
    const listRunning = listExecutions(STATE_NAMES.listRunning, false);
    const listMoreRunning = listExecutions(STATE_NAMES.listMoreRunning, true);
    const waitForTurn = new Wait(this, STATE_NAMES.waitForTurn, {
      time: WaitTime.duration(props.turnPollInterval ?? Duration.minutes(1)),
    });
    const countRunningOnPage = new Pass(this, 'CountRunningOnPage', {
      parameters: { 'count.$': 'States.ArrayLength($.turn.page.Executions)' },
      resultPath: '$.turn.onPage',
    });
    const keepOldestOnPage = new Pass(this, 'KeepOldestOnPage', {
      parameters: {
        'execution.$': 'States.ArrayGetItem($.turn.page.Executions, States.MathAdd($.turn.onPage.count, -1))',
        'self.$': '$$.Execution.Name',
      },
      resultPath: '$.turn.oldest',
    });

    // ---- plan, work, commit --------------------------------------------------------------------
    const plan = lambdaTask(
      STATE_NAMES.plan,
      TaskInput.fromObject({
        phase: 'plan',
        trigger: JsonPath.objectAt('$$.Execution.Input'),
        execution: {
          name: JsonPath.stringAt('$$.Execution.Name'),
          startTime: JsonPath.stringAt('$$.Execution.StartTime'),
        },
      }),
      { resultSelector: { 'run.$': '$.Payload.run', 'segments.$': '$.Payload.segments' } },
    );
    const work = lambdaTask(
      STATE_NAMES.work,
      TaskInput.fromObject({
        phase: 'work',
        run: JsonPath.objectAt('$.run'),
        slice: JsonPath.objectAt('$.slice'),
      }),
      {
        resultSelector: {
          'run.$': '$.Payload.run',
          'slice.$': '$.Payload.slice',
          'done.$': '$.Payload.done',
        },
      },
    );
    // Only the S3 key of the segment's last state object leaves the iteration.
    const segmentTail = new Pass(this, 'SegmentTail', { outputPath: '$.slice.tail' });
    work.next(
      new Choice(this, 'SegmentDone')
        .when(Condition.booleanEquals('$.done', true), segmentTail)
        .otherwise(work),
    );
    const segments = new MapState(this, STATE_NAMES.segments, {
      stateName: STATE_NAMES.segments,
      itemsPath: '$.segments',
      maxConcurrency: maxSegmentConcurrency,
      itemSelector: {
        run: JsonPath.objectAt('$.run'),
        slice: {
          segment: JsonPath.numberAt('$$.Map.Item.Value.segment'),
          totalSegments: JsonPath.numberAt('$$.Map.Item.Value.totalSegments'),
          // CDK drops null literals from a payload template; this intrinsic is JSON null.
          cursor: JSON_NULL,
          step: 0,
          tail: JSON_NULL,
        },
      },
      resultPath: '$.tails',
    });
    segments.itemProcessor(work);
    const commit = lambdaTask(
      STATE_NAMES.commit,
      TaskInput.fromObject({
        phase: 'commit',
        run: JsonPath.objectAt('$.run'),
        tails: JsonPath.listAt('$.tails'),
      }),
      { outputPath: '$.Payload' },
    );

    // ---- failure path --------------------------------------------------------------------------
    const failed = new Fail(this, STATE_NAMES.failed, {
      comment: 'The run was aborted; the error is the one that failed it',
      errorPath: '$.error.Error',
      causePath: '$.error.Cause',
    });
    const abort = lambdaTask(STATE_NAMES.abort, TaskInput.fromJsonPathAt('$'), { resultPath: '$.abort' });
    abort.addCatch(failed, { errors: ['States.ALL'], resultPath: '$.abortError' });
    const events = new CompletionEvents(this, 'CompletionEvents', props.completionEvents);
    abort.next(events.afterAbort(failed));
    const abortPayload = (failedStep: 'Plan' | 'Work' | 'Commit') =>
      new Pass(this, `Record${failedStep}Failure`, {
        parameters: {
          phase: 'abort',
          failedStep,
          // A failed Plan has no run: Abort then only logs (the trigger is in the execution input).
          ...(failedStep === 'Plan' ? {} : { 'run.$': '$.run' }),
          // A failed Commit comes after every segment finished: Abort reads their last steps, so
          // the failed manifest counts what they did. A failed Map has no tails (its iterations'
          // results are lost); Abort then counts what the failed Works recorded themselves.
          ...(failedStep === 'Commit' ? { 'tails.$': '$.tails' } : {}),
          'error.$': '$.error',
        },
      });
    plan.addCatch(abortPayload('Plan').next(abort), { errors: ['States.ALL'], resultPath: '$.error' });
    // A failed iteration stops the Map, but Work invocations already running go on until they
    // return: wait them out (they end before the function timeout), so Abort sees every upload.
    const waitForStragglers = new Wait(this, STATE_NAMES.waitForStragglers, {
      time: WaitTime.duration(props.functionTimeout),
    });
    segments.addCatch(abortPayload('Work').next(waitForStragglers).next(abort), {
      errors: ['States.ALL'],
      resultPath: '$.error',
    });
    commit.addCatch(abortPayload('Commit').next(abort), {
      errors: ['States.ALL'],
      resultPath: '$.error',
    });

    const morePages = new Choice(this, 'MoreRunningPages')
      .when(Condition.isPresent('$.turn.page.NextToken'), listMoreRunning)
      .otherwise(
        new Choice(this, 'AnyRunningVisible')
          // ListExecutions is eventually consistent: not even this execution listed yet.
          .when(Condition.isNotPresent('$.turn.oldest'), waitForTurn)
          .otherwise(
            new Choice(this, 'IsOldestRunning')
              .when(
                Condition.stringEqualsJsonPath('$.turn.oldest.execution.Name', '$.turn.oldest.self'),
                plan,
              )
              .otherwise(waitForTurn),
          ),
      );
    const definition = listRunning.next(countRunningOnPage);
    listMoreRunning.next(countRunningOnPage);
    countRunningOnPage.next(
      new Choice(this, 'RunningOnPage')
        .when(Condition.numberGreaterThan('$.turn.onPage.count', 0), keepOldestOnPage)
        .otherwise(morePages),
    );
    keepOldestOnPage.next(morePages);
    waitForTurn.next(listRunning);
    plan.next(segments).next(commit);
    commit.next(events.afterCommit);

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeGuard(this.logGroup, {
      cloudwatch_log_group_encrypted_check:
        'Execution logs hold run ids, S3 keys, DynamoDB cursors (user ids) and audit requests, never session data or the API key; CloudWatch Logs encrypts them at rest with its own keys.',
      ...((props.logRetention ?? RetentionDays.THREE_MONTHS) < 365
        ? {
            cloudwatch_log_group_retention_period_check:
              "Retention is the deployer's choice (prop logRetention, 90 days by default, as for the function's logs): the durable record of every run is its manifest in S3.",
          }
        : {}),
    });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      comment: 'MoonKey session snapshot: plan, work every segment until done, commit; abort on failure',
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(definition),
      timeout: props.executionTimeout ?? Duration.hours(24),
      tracingEnabled: true,
      // Execution data holds run ids, S3 keys, DynamoDB cursors (a user id) and audit requests:
      // no secrets, and what an operator needs to see why a run failed or to re-drive it.
      logs: { destination: this.logGroup, level: LogLevel.ALL, includeExecutionData: true },
    });
    // A policy of its own: the state machine's default policy may not name the state machine
    // (CloudFormation would see a cycle), and a wildcard would let it list every state machine.
    new Policy(this, 'ListOwnExecutions', {
      roles: [this.stateMachine.role],
      statements: [
        new PolicyStatement({
          actions: ['states:ListExecutions'],
          resources: [this.stateMachine.stateMachineArn],
        }),
      ],
    });
    events.grant(this.stateMachine);
    acknowledgeStateMachineRole(this.stateMachine, props.function.functionArn);
  }
}

/**
 * The wildcards CDK puts in every state machine role: Lambda's qualified ARNs (`:*`) and the
 * logging and X-Ray actions that have no resource-level permissions at all.
 */
export function acknowledgeStateMachineRole(stateMachine: StateMachine, functionArn?: string): void {
  const role = stateMachine.role;
  if (functionArn) {
    Validations.of(role).acknowledge({
      id: iam5ResourceFinding(stateMachine, `${functionArn}:*`),
      reason:
        "CDK's LambdaInvoke grants the function's qualified ARNs (versions, aliases): the role can invoke only this one function.",
    });
  }
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'CloudWatch Logs delivery (logs:CreateLogDelivery, ...) and X-Ray (xray:PutTraceSegments, ...) actions support no resource-level permissions: "*" is the only resource they accept.',
  });
}
