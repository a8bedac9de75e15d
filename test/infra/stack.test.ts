/**
 * Template assertions on the stack with its defaults (demo table, created bucket and secret): the
 * function, its permissions and its schedule. The buckets, alarms and catalog have files of their own.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { OUTPUTS } from '../../infra/stack-outputs';
import { actionsOf, statementsOfRole } from '../helpers/stack-template';
import { synthStack } from '../helpers/synth-stack';

describe('SessionExportStack with defaults: the function, least privilege, the schedule', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act: cdk-nag and the Control Tower controls run during this synth and throw on any finding.
    template = synthStack({ createDemoUsersTable: true });
  });

  it('passes cdk-nag AwsSolutions and the Control Tower controls, every acknowledgement on a named finding', () => {
    expect(template.toJSON().Resources).toBeDefined();
  });

  it('encrypts the demo table with KMS (Control Tower CT.DYNAMODB.PR.2)', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true } });
  });

  describe('the function', () => {
    it('runs nodejs24.x on arm64 for 15 minutes with one reserved execution per segment plus one', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Timeout: 900,
        MemorySize: 1024,
        ReservedConcurrentExecutions: 17,
        Handler: 'index.handler',
      });
    });

    it('sets every variable the job needs from the stack resources', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: {
            USERS_TABLE_NAME: { Ref: Match.stringLikeRegexp('^DemoUsersTable') },
            USER_ID_ATTRIBUTE: 'user_id',
            EXPORT_BUCKET_NAME: { Ref: Match.stringLikeRegexp('^ExportBucket') },
            EXPORT_PREFIX: 'moonkey',
            MOONKEY_API_URL: 'https://api.moonkey.fun',
            MOONKEY_API_KEY_SECRET_ARN: { Ref: Match.stringLikeRegexp('^ApiKey') },
            EXPORT_CONCURRENCY: '16',
            METRICS_NAMESPACE: 'MoonKeySessionExport',
            NODE_OPTIONS: '--enable-source-maps',
          },
        },
      });
      const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
      expect(fn?.Properties.Environment.Variables.MOONKEY_API_KEY).toBeUndefined();
    });

    it('has no asynchronous invocation settings: the state machine invokes it and owns the retries', () => {
      template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 0);
    });

    it('logs to its own log group with retention, kept on stack deletion', () => {
      template.hasResource('AWS::Logs::LogGroup', {
        Properties: { RetentionInDays: 90 },
        DeletionPolicy: 'Retain',
      });
      template.hasResourceProperties('AWS::Lambda::Function', {
        LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^JobLogs') } },
      });
    });

    it('logs in JSON format with the application log level of the job (INFO by default)', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO' },
      });
    });
  });

  describe('least privilege', () => {
    it('grants the function exactly the actions the job uses', () => {
      const statements = statementsOfRole(template, 'JobRole');
      expect(actionsOf(statements)).toEqual(
        [
          'dynamodb:DescribeTable',
          'dynamodb:Scan',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          's3:AbortMultipartUpload',
          's3:DeleteObject',
          's3:GetObject',
          's3:ListBucket',
          's3:PutObject',
          'secretsmanager:GetSecretValue',
        ].sort(),
      );
      expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
    });

    it('scopes S3 object actions to <prefix>/* and listing to the prefix', () => {
      const statements = statementsOfRole(template, 'JobRole');
      const objects = statements.find((s) => s.Sid === 'SnapshotObjects');
      expect(objects?.Resource).toEqual({
        'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^ExportBucket/), 'Arn'] }, '/moonkey/*']],
      });
      const list = statements.find((s) => s.Sid === 'ListSnapshotPrefix');
      expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['moonkey/*'] } });
      expect(list?.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^ExportBucket/), 'Arn'] });
    });

    it('allows Scan on the users table only and GetSecretValue on the one secret', () => {
      const statements = statementsOfRole(template, 'JobRole');
      expect(statements.find((s) => s.Sid === 'ScanUsersTable')?.Resource).toEqual({
        'Fn::GetAtt': [expect.stringMatching(/^DemoUsersTable/), 'Arn'],
      });
      expect(statements.find((s) => s.Sid === 'ReadApiKey')?.Resource).toEqual({
        Ref: expect.stringMatching(/^ApiKey/),
      });
    });

    it('denies reading the created secret to every principal but the function role', () => {
      template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
        ResourcePolicy: {
          Statement: [
            Match.objectLike({
              Effect: 'Deny',
              Action: 'secretsmanager:GetSecretValue',
              Condition: {
                ArnNotEquals: {
                  'aws:PrincipalArn': { 'Fn::GetAtt': [Match.stringLikeRegexp('^JobRole'), 'Arn'] },
                },
              },
            }),
          ],
        },
      });
    });

    it('lets the scheduler start only the launcher and dead-letter to the failure queue', () => {
      const statements = statementsOfRole(template, 'ScheduleRole');
      expect(actionsOf(statements)).toEqual(['sqs:SendMessage', 'states:StartExecution']);
      expect(statements.find((s) => s.Action === 'states:StartExecution')?.Resource).toEqual({
        Ref: expect.stringMatching(/^LauncherStateMachine/),
      });
    });
  });

  describe('the schedule', () => {
    it('fires daily at 02:00 UTC with a retry policy and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'cron(0 2 * * ? *)',
        ScheduleExpressionTimezone: 'Etc/UTC',
        State: 'ENABLED',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: {
          Arn: { Ref: Match.stringLikeRegexp('^LauncherStateMachine') },
          RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 7200 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FailuresQueue'), 'Arn'] } },
        },
      });
    });

    it('sends a Scheduled Event carrying the scheduled time, the shape the handler accepts', () => {
      const schedule = Object.values(template.findResources('AWS::Scheduler::Schedule'))[0];
      const input = JSON.parse(JSON.stringify(schedule?.Properties.Target.Input));
      const text = typeof input === 'string' ? input : JSON.stringify(input);
      expect(text).toContain('"detail-type":"Scheduled Event"');
      expect(text).toContain('"source":"aws.scheduler"');
      expect(text).toContain('"time":"<aws.scheduler.scheduled-time>"');
      expect(text).toContain('<aws.scheduler.schedule-arn>');
    });
  });

  it('outputs the users table and id attribute npm run smoke picks users from', () => {
    template.hasOutput(OUTPUTS.usersTableName, { Value: { Ref: Match.stringLikeRegexp('^DemoUsersTable') } });
    template.hasOutput(OUTPUTS.userIdAttribute, { Value: 'user_id' });
  });
});
