import { Duration } from 'aws-cdk-lib';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import {
  DefinitionBody,
  IntegrationPattern,
  type IStateMachine,
  JsonPath,
  LogLevel,
  Pass,
  StateMachine,
  StateMachineType,
  Succeed,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { SCHEDULED_PREFIX } from '../../lambda/core/facts';
import { acknowledgeStateMachineRole } from './export-state-machine';

/** State names the local runner and the tests refer to. */
export const LAUNCHER_STATE_NAMES = {
  executionName: 'ExecutionName',
  startRun: 'StartRun',
  alreadyStarted: 'AlreadyStarted',
} as const;

/**
 * How Step Functions names a refused StartExecution. The optimized integration prefixes the
 * service ("StepFunctions.") to the exception; AWS's guide spells the sibling limit error without
 * the "Exception" suffix ("StepFunctions.ExecutionLimitExceeded") and emulators with it, so both
 * spellings are matched.
 */
const ALREADY_EXISTS = [
  'StepFunctions.ExecutionAlreadyExistsException',
  'StepFunctions.ExecutionAlreadyExists',
];
const LIMIT_EXCEEDED = [
  'StepFunctions.ExecutionLimitExceededException',
  'StepFunctions.ExecutionLimitExceeded',
];

export interface ScheduledRunLauncherProps {
  /** The export state machine a scheduled slot starts. */
  readonly target: IStateMachine;
  /** Where the launcher logs its executions (the export's log group). */
  readonly logGroup: ILogGroup;
}

/**
 * Gives each scheduled slot ONE export execution, named after the slot: Scheduler starts this
 * launcher with the "Scheduled Event" (its `time` is `<aws.scheduler.scheduled-time>`, e.g.
 * `2026-11-27T02:00:00Z`), and the launcher starts the export as `scheduled-20261127T020000Z`.
 *
 * Why a launcher: execution names may not contain ':', and Scheduler's universal target
 * (`aws-sdk:sfn:startExecution`) can only paste the time in as it is. Intrinsic functions can
 * reshape it, with no code to deploy or patch: `States.StringSplit` on ':' and '-' and
 * `States.Format` give the compact form. A second delivery of the same slot asks for the same
 * name with the same input: Step Functions returns the running execution, or refuses with
 * ExecutionAlreadyExists once it has ended; both mean "this slot has its run", so the launcher
 * succeeds without starting another.
 */
export class ScheduledRunLauncher extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: ScheduledRunLauncherProps) {
    super(scope, id);
    // One separator per split: AWS splits on each character of a longer separator, some
    // interpreters on the whole string; single characters mean the same to both.
    const executionName = new Pass(this, LAUNCHER_STATE_NAMES.executionName, {
      stateName: LAUNCHER_STATE_NAMES.executionName,
      parameters: { 'time.$': "States.StringSplit($.time, ':')" },
      resultPath: '$.name',
    }).next(
      new Pass(this, 'SplitDate', {
        parameters: {
          'time.$': '$.name.time',
          'date.$': "States.StringSplit(States.ArrayGetItem($.name.time, 0), '-')",
        },
        resultPath: '$.name',
      }),
    );
    // "2026-11-27T02:00:00Z" -> time ["2026-11-27T02", "00", "00Z"], date ["2026", "11", "27T02"]
    const name = JsonPath.format(
      `${SCHEDULED_PREFIX}{}{}{}{}{}`,
      JsonPath.stringAt('$.name.date[0]'),
      JsonPath.stringAt('$.name.date[1]'),
      JsonPath.stringAt('$.name.date[2]'),
      JsonPath.stringAt('$.name.time[1]'),
      JsonPath.stringAt('$.name.time[2]'),
    );
    const startRun = new StepFunctionsStartExecution(this, LAUNCHER_STATE_NAMES.startRun, {
      stateName: LAUNCHER_STATE_NAMES.startRun,
      stateMachine: props.target,
      integrationPattern: IntegrationPattern.REQUEST_RESPONSE,
      name,
      // The scheduled event exactly as Scheduler sent it: the same input for every delivery.
      input: TaskInput.fromJsonPathAt('$$.Execution.Input'),
      associateWithParent: false,
    });
    startRun.addRetry({
      errors: LIMIT_EXCEEDED,
      interval: Duration.seconds(10),
      maxAttempts: 6,
      backoffRate: 2,
    });
    startRun.addCatch(new Succeed(this, LAUNCHER_STATE_NAMES.alreadyStarted), {
      errors: ALREADY_EXISTS,
      resultPath: '$.alreadyStarted',
    });

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      comment: 'Starts the export run of one scheduled slot, named after the slot',
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(executionName.next(startRun)),
      timeout: Duration.minutes(15),
      tracingEnabled: true,
      logs: { destination: props.logGroup, level: LogLevel.ALL, includeExecutionData: true },
    });
    acknowledgeStateMachineRole(this.stateMachine);
  }
}
