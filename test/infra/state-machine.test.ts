/**
 * Template assertions on the two state machines: what runs, what is retried and caught,
 * what is logged and traced, and what their roles may do.
 */
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { SessionExportStack } from '../../infra/session-export-stack';
import { resolveTokens } from '../../local/state-machine-definitions';

// biome-ignore lint/suspicious/noExplicitAny: ASL documents are checked field by field.
type Json = Record<string, any>;

let template: Template;
let definitions: Record<string, Json>;

const LAMBDA_RETRY = [
  {
    ErrorEquals: [
      'Lambda.ClientExecutionTimeoutException',
      'Lambda.ServiceException',
      'Lambda.AWSLambdaException',
      'Lambda.SdkClientException',
    ],
    IntervalSeconds: 2,
    MaxAttempts: 6,
    BackoffRate: 2,
    MaxDelaySeconds: 60,
    JitterStrategy: 'FULL',
  },
  {
    ErrorEquals: ['Lambda.TooManyRequestsException'],
    IntervalSeconds: 5,
    MaxAttempts: 10,
    BackoffRate: 2,
    MaxDelaySeconds: 120,
    JitterStrategy: 'FULL',
  },
  {
    ErrorEquals: ['Sandbox.Timedout', 'Lambda.Unknown', 'States.Timeout'],
    IntervalSeconds: 5,
    MaxAttempts: 2,
    BackoffRate: 2,
  },
];

beforeAll(() => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new SessionExportStack(app, 'MoonKeySessionExport', {
    env: { account: '123456789012', region: 'eu-west-1' },
    createDemoUsersTable: true,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  template = Template.fromStack(stack);
  definitions = Object.fromEntries(
    Object.entries(template.findResources('AWS::StepFunctions::StateMachine')).map(([id, r]) => [
      id.startsWith('Run') ? 'export' : 'launcher',
      JSON.parse(resolveTokens(r.Properties.DefinitionString, (ref) => `<${ref}>`)),
    ]),
  );
});

const policyStatementsOf = (rolePrefix: string): Json[] =>
  Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);

describe('the export state machine', () => {
  it('is a Standard state machine with X-Ray tracing and ALL-level logs, execution data included', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [
          {
            CloudWatchLogsLogGroup: {
              LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RunLogs'), 'Arn'] },
            },
          },
        ],
      },
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(definitions.export?.TimeoutSeconds).toBe(24 * 3600);
  });

  it('waits for its turn, then plans, works every segment in an inline Map as wide as the most segments Plan may choose (16), and commits', () => {
    const states = definitions.export?.States as Json;
    expect(definitions.export?.StartAt).toBe('ListRunningExecutions');
    const listRetry = [
      {
        ErrorEquals: ['States.TaskFailed'],
        IntervalSeconds: 2,
        MaxAttempts: 5,
        BackoffRate: 2,
        JitterStrategy: 'FULL',
      },
    ];
    expect(states.ListRunningExecutions).toMatchObject({
      Resource: 'arn:aws:states:::aws-sdk:sfn:listExecutions',
      Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', StatusFilter: 'RUNNING', MaxResults: 100 },
      ResultSelector: { 'page.$': '$' },
      ResultPath: '$.turn',
      Retry: listRetry,
    });
    // Every page, not only the first: the oldest running execution is the last entry of the last.
    expect(states.ListMoreRunningExecutions).toMatchObject({
      Resource: 'arn:aws:states:::aws-sdk:sfn:listExecutions',
      Parameters: {
        'StateMachineArn.$': '$$.StateMachine.Id',
        StatusFilter: 'RUNNING',
        MaxResults: 100,
        'NextToken.$': '$.turn.page.NextToken',
      },
      ResultPath: '$.turn.page',
      Retry: listRetry,
      Next: 'CountRunningOnPage',
    });
    expect(states.MoreRunningPages.Choices[0]).toEqual({
      Variable: '$.turn.page.NextToken',
      IsPresent: true,
      Next: 'ListMoreRunningExecutions',
    });
    expect(states.IsOldestRunning.Choices[0]).toEqual({
      Variable: '$.turn.oldest.execution.Name',
      StringEqualsPath: '$.turn.oldest.self',
      Next: 'Plan',
    });
    expect(states.Plan).toMatchObject({
      Parameters: {
        Payload: {
          phase: 'plan',
          'trigger.$': '$$.Execution.Input',
          execution: { 'name.$': '$$.Execution.Name', 'startTime.$': '$$.Execution.StartTime' },
        },
      },
      ResultSelector: { 'run.$': '$.Payload.run', 'segments.$': '$.Payload.segments' },
      Next: 'Segments',
    });
    const map = states.Segments;
    expect(map).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.segments',
      MaxConcurrency: 16,
      ResultPath: '$.tails',
      ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: 'Work' },
      ItemSelector: {
        'run.$': '$.run',
        slice: {
          'segment.$': '$$.Map.Item.Value.segment',
          'totalSegments.$': '$$.Map.Item.Value.totalSegments',
          'cursor.$': "States.StringToJson('null')",
          step: 0,
          'tail.$': "States.StringToJson('null')",
        },
      },
      Next: 'Commit',
    });
    const inner = map.ItemProcessor.States;
    expect(inner.Work.Parameters.Payload).toEqual({ phase: 'work', 'run.$': '$.run', 'slice.$': '$.slice' });
    expect(inner.SegmentDone).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.done', BooleanEquals: true, Next: 'SegmentTail' }],
      Default: 'Work',
    });
    // Only the tail key leaves an iteration, so Commit's input stays small for any table.
    expect(inner.SegmentTail).toMatchObject({ Type: 'Pass', OutputPath: '$.slice.tail', End: true });
    expect(states.Commit.Parameters.Payload).toEqual({
      phase: 'commit',
      'run.$': '$.run',
      'tails.$': '$.tails',
    });
    expect(states.Commit).toMatchObject({ OutputPath: '$.Payload', Next: 'CommitOutcome' });
  });

  it('announces a commit on EventBridge after Commit returned, never for a dry run, and never fails the run over it', () => {
    const states = definitions.export?.States as Json;
    expect(states.CommitOutcome).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.status', StringEquals: 'committed', Next: 'PublishCommitted' }],
      Default: 'Done',
    });
    expect(states.PublishCommitted).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::events:putEvents',
      ResultPath: null,
      Next: 'Done',
      Catch: [
        { ErrorEquals: ['States.ALL'], ResultPath: '$.eventError', Next: 'PublishCommittedUnpublished' },
      ],
    });
    expect(states.PublishCommitted.Retry).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], MaxAttempts: 4, JitterStrategy: 'FULL' }),
    ]);
    const [entry, ...more] = states.PublishCommitted.Parameters.Entries;
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      Source: 'moonkey.session-export',
      DetailType: 'Snapshot Committed',
      EventBusName: 'arn:aws:events:eu-west-1:123456789012:event-bus/default',
      Detail: {
        'run_id.$': '$.runId',
        'manifest_uri.$': '$.manifestUri',
        views: {
          database: 'moon_key_session_export',
          sessions: 'sessions',
          changes: 'session_changes',
          manifests: 'manifests',
        },
      },
    });
    // Counting a lost event goes on to the same end whatever happens to the count itself.
    expect(states.PublishCommittedUnpublished).toMatchObject({
      Resource: 'arn:aws:states:::aws-sdk:cloudwatch:putMetricData',
      ResultPath: null,
      Next: 'Done',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.metricError', Next: 'Done' }],
    });
    expect(states.Done).toEqual({ Type: 'Succeed' });
  });

  it("retries the turn gate's ListExecutions pages, so one throttled call does not fail the run", () => {
    const states = definitions.export?.States as Json;
    for (const name of ['ListRunningExecutions', 'ListMoreRunningExecutions']) {
      expect(states[name].Resource).toBe('arn:aws:states:::aws-sdk:sfn:listExecutions');
      expect(states[name].Retry).toEqual([
        expect.objectContaining({ ErrorEquals: ['States.TaskFailed'], MaxAttempts: 5, BackoffRate: 2 }),
      ]);
    }
  });

  it('retries every phase on Lambda service errors, throttling and timeouts only', () => {
    const states = definitions.export?.States as Json;
    const tasks = { ...states, ...states.Segments.ItemProcessor.States };
    for (const name of ['Plan', 'Work', 'Commit', 'Abort']) {
      expect(tasks[name].Retry).toEqual(LAMBDA_RETRY);
      expect(tasks[name].TimeoutSeconds).toBe(960);
      expect(tasks[name].Resource).toBe('arn:aws:states:::lambda:invoke');
      expect(tasks[name].Parameters.FunctionName).toBe('<JobFunction23969A7D>');
    }
    // What the job throws (ApiAuthError, InvalidEventError, ...) is never retried.
    const retried = ['Plan', 'Work', 'Commit', 'Abort'].flatMap((n) =>
      tasks[n].Retry.flatMap((r: Json) => r.ErrorEquals),
    );
    expect(retried).not.toContain('States.ALL');
    expect(retried).not.toContain('States.TaskFailed');
  });

  it('catches a failed Plan, Map or Commit into Abort, which ends the execution in a Fail state', () => {
    const states = definitions.export?.States as Json;
    const catchOf = (name: string) => states[name].Catch;
    expect(catchOf('Plan')).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordPlanFailure' },
    ]);
    expect(catchOf('Segments')).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordWorkFailure' },
    ]);
    expect(catchOf('Commit')).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordCommitFailure' },
    ]);
    // The phase input schema (lambda/handlers/phase-input.ts) is strict: exactly these keys.
    expect(states.RecordPlanFailure).toEqual({
      Type: 'Pass',
      Parameters: { phase: 'abort', failedStep: 'Plan', 'error.$': '$.error' },
      Next: 'Abort',
    });
    expect(states.RecordWorkFailure).toEqual({
      Type: 'Pass',
      Parameters: { phase: 'abort', failedStep: 'Work', 'run.$': '$.run', 'error.$': '$.error' },
      Next: 'WaitForStragglers',
    });
    // Invocations of the failed Map that are still running end within the function timeout.
    expect(states.WaitForStragglers).toEqual({ Type: 'Wait', Seconds: 900, Next: 'Abort' });
    // Every segment finished before Commit: Abort gets their last steps, to count what they did.
    expect(states.RecordCommitFailure).toEqual({
      Type: 'Pass',
      Parameters: {
        phase: 'abort',
        failedStep: 'Commit',
        'run.$': '$.run',
        'tails.$': '$.tails',
        'error.$': '$.error',
      },
      Next: 'Abort',
    });
    expect(states.Abort).toMatchObject({
      Parameters: { 'Payload.$': '$' },
      ResultPath: '$.abort',
      Next: 'AbortOutcome',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.abortError', Next: 'Failed' }],
    });
    // The failed event goes out once the failed manifest is written; then the run fails as before.
    expect(states.AbortOutcome).toEqual({
      Type: 'Choice',
      Choices: [
        { Variable: '$.abort.Payload.status', StringEquals: 'failed', Next: 'PublishFailed' },
        {
          Variable: '$.abort.Payload.status',
          StringEquals: 'committed',
          Next: 'PublishCommittedFoundByAbort',
        },
      ],
      Default: 'Failed',
    });
    expect(states.PublishFailed).toMatchObject({ Next: 'Failed' });
    expect(states.PublishFailed.Parameters.Entries[0].Detail).toMatchObject({
      'run_id.$': '$.abort.Payload.runId',
      failure: { 'step.$': '$.abort.Payload.failedStep', 'error_type.$': '$.abort.Payload.errorType' },
    });
    expect(states.PublishFailedUnpublished).toMatchObject({ Next: 'Failed' });
    expect(states.Failed).toMatchObject({
      Type: 'Fail',
      ErrorPath: '$.error.Error',
      CausePath: '$.error.Cause',
    });
  });

  it('has a role that may invoke the function, list its own executions, log and trace, nothing else', () => {
    const statements = policyStatementsOf('RunStateMachineRole');
    const byAction = (action: string) => statements.filter((s) => [s.Action].flat().includes(action));
    expect(byAction('lambda:InvokeFunction')[0]?.Resource).toEqual([
      { 'Fn::GetAtt': [expect.stringMatching(/^JobFunction/), 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^JobFunction/), 'Arn'] }, ':*']] },
    ]);
    expect(byAction('states:ListExecutions')[0]?.Resource).toEqual({
      Ref: expect.stringMatching(/^RunStateMachine/),
    });
    const actions = statements.flatMap((s) => [s.Action].flat()).sort();
    expect(actions.filter((a) => !a.startsWith('logs:') && !a.startsWith('xray:'))).toEqual([
      'cloudwatch:PutMetricData',
      'events:PutEvents',
      'lambda:InvokeFunction',
      'states:ListExecutions',
    ]);
    // PutEvents on the default bus of the stack's account and region, nothing else.
    for (const statement of byAction('events:PutEvents')) {
      expect(statement.Resource).toEqual({
        'Fn::Join': [
          '',
          ['arn:', { Ref: 'AWS::Partition' }, ':events:eu-west-1:123456789012:event-bus/default'],
        ],
      });
    }
    expect(byAction('cloudwatch:PutMetricData')).toEqual([
      {
        Action: 'cloudwatch:PutMetricData',
        Effect: 'Allow',
        Resource: '*',
        Condition: { StringEquals: { 'cloudwatch:namespace': 'MoonKeySessionExport' } },
      },
    ]);
    expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
  });
});

describe('the scheduled-run launcher', () => {
  it('names the export execution after the scheduled time and treats an existing one as started', () => {
    const states = definitions.launcher?.States as Json;
    expect(states.ExecutionName.Parameters).toEqual({ 'time.$': "States.StringSplit($.time, ':')" });
    expect(states.SplitDate.Parameters['date.$']).toBe(
      "States.StringSplit(States.ArrayGetItem($.name.time, 0), '-')",
    );
    expect(states.StartRun).toMatchObject({
      Resource: 'arn:aws:states:::states:startExecution',
      Parameters: {
        StateMachineArn: expect.stringMatching(/^<RunStateMachine/),
        'Input.$': '$$.Execution.Input',
        'Name.$':
          "States.Format('scheduled-{}{}{}{}{}', $.name.date[0], $.name.date[1], $.name.date[2], $.name.time[1], $.name.time[2])",
      },
      Catch: [
        {
          ErrorEquals: [
            'StepFunctions.ExecutionAlreadyExistsException',
            'StepFunctions.ExecutionAlreadyExists',
          ],
          Next: 'AlreadyStarted',
        },
      ],
    });
    expect(states.AlreadyStarted).toEqual({ Type: 'Succeed' });
  });

  it('may start the export state machine only', () => {
    const statements = policyStatementsOf('LauncherStateMachineRole');
    const start = statements.filter((s) => [s.Action].flat().some((a: string) => a.startsWith('states:')));
    expect(start).toHaveLength(1);
    expect(start[0]).toMatchObject({
      Action: 'states:StartExecution',
      Resource: { Ref: expect.stringMatching(/^RunStateMachine/) },
    });
  });

  it('is a Standard state machine, traced, logging ALL to the export log group', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LauncherStateMachineRole'), 'Arn'] },
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        Destinations: [
          {
            CloudWatchLogsLogGroup: {
              LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RunLogs'), 'Arn'] },
            },
          },
        ],
      },
    });
  });
});

describe('outputs', () => {
  it('export the state machine ARN for npm run audit', () => {
    template.hasOutput('StateMachineArn', { Value: { Ref: Match.stringLikeRegexp('^RunStateMachine') } });
  });
});

describe('completion events on a bus the deployer names', () => {
  const BUS = 'arn:aws:events:eu-west-1:210987654321:event-bus/data-platform';

  it('are put on that bus only, by a role that may put events on no other', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new SessionExportStack(app, 'OwnBus', {
      env: { account: '123456789012', region: 'eu-west-1' },
      createDemoUsersTable: true,
      eventBusArn: BUS,
    });
    const own = Template.fromStack(stack);
    const [machine] = Object.entries(own.findResources('AWS::StepFunctions::StateMachine')).filter(([id]) =>
      id.startsWith('Run'),
    );
    const states = JSON.parse(resolveTokens(machine?.[1].Properties.DefinitionString, (ref) => `<${ref}>`))
      .States as Json;
    const buses = Object.values(states)
      .filter((s) => s.Resource === 'arn:aws:states:::events:putEvents')
      .map((s) => s.Parameters.Entries.map((e: Json) => e.EventBusName));
    expect(buses).toEqual([[BUS], [BUS], [BUS]]);
    const putEvents = Object.values(own.findResources('AWS::IAM::Policy'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[])
      .filter((s) => [s.Action].flat().some((a: string) => a.startsWith('events:')));
    expect(putEvents).toEqual([{ Action: 'events:PutEvents', Effect: 'Allow', Resource: BUS }]);
  });

  it('refuse a bus given as anything but a bus ARN, naming the prop', () => {
    const synth = () =>
      new SessionExportStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'BadBus', {
        createDemoUsersTable: true,
        eventBusArn: 'data-platform',
      });
    expect(synth).toThrow(
      'eventBusArn "data-platform" is not an EventBridge bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>)',
    );
  });
});
