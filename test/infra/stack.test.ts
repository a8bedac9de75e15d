import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { decodePrestoView } from '../../infra/constructs/presto-view';
import { addPolicyChecks } from '../../infra/policy-checks';
import { propsFromContext } from '../../infra/props-from-context';
import type { SessionExportProps } from '../../infra/session-export-props';
import { SessionExportStack } from '../../infra/session-export-stack';
import { OUTPUTS } from '../../infra/stack-outputs';
import { hiveType, manifestColumns, prestoType, sessionColumns } from '../../lambda/snapshot/athena-columns';
import { readerViewColumns, readerViewSql } from '../../lambda/snapshot/reader-view';
import {
  ACCOUNT_ENV,
  CDK_JSON_CONTEXT,
  FEATURE_FLAGS,
  SKIP_BUNDLING,
  synthStack,
} from '../helpers/synth-stack';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey/api-key-AbC123';
const SECRET_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555';
const BUCKET_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
const RESULTS_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/99999999-8888-7777-6666-555555555555';

const synth = synthStack;

type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
};

function statementsOfRole(template: Template, rolePrefix: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const actionsOf = (statements: Statement[]) =>
  statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();

describe('SessionExportStack with defaults (demo table, created bucket and secret)', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act: cdk-nag runs during this synth and throws ValidationFailed on any finding.
    template = synth({ createDemoUsersTable: true });
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

  describe('the export bucket', () => {
    it('is encrypted, private, retained, ages snapshots to Standard-IA and Glacier IR, expires them and stale uploads', () => {
      template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        Properties: {
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
            ],
          },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'export-bucket/' }),
          LifecycleConfiguration: {
            Rules: [
              {
                Id: 'expire-snapshots',
                Prefix: 'moonkey/',
                ExpirationInDays: 400,
                Transitions: [
                  { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
                  { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
                ],
                Status: 'Enabled',
              },
              {
                Id: 'abort-incomplete-multipart-uploads',
                AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
                Status: 'Enabled',
              },
            ],
          },
        },
      });
      const exportBucket = Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
        id.startsWith('ExportBucket'),
      );
      expect(exportBucket?.[1].Properties.VersioningConfiguration).toBeUndefined();
    });

    it('refuses non-TLS requests in its bucket policy', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^ExportBucket') },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    });
  });

  describe('the access-log bucket', () => {
    const accessLogs = () =>
      Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
        id.startsWith('AccessLogsBucket'),
      )?.[1];

    it('disables ACLs (BUCKET_OWNER_ENFORCED) and has no LogDeliveryWrite ACL', () => {
      const bucket = accessLogs();
      expect(bucket?.Properties.OwnershipControls).toEqual({
        Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
      });
      expect(bucket?.Properties.AccessControl).toBeUndefined();
      expect(bucket?.DeletionPolicy).toBe('Retain');
    });

    it('lets S3 log delivery write by bucket policy, per source bucket and this account only', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^AccessLogsBucket') },
        PolicyDocument: {
          Statement: Match.arrayWith(
            ['ExportBucket', 'AthenaResultsBucket'].map((source) =>
              Match.objectLike({
                Effect: 'Allow',
                Principal: { Service: 'logging.s3.amazonaws.com' },
                Action: 's3:PutObject',
                Condition: {
                  ArnLike: {
                    'aws:SourceArn': { 'Fn::GetAtt': [Match.stringLikeRegexp(`^${source}`), 'Arn'] },
                  },
                  StringEquals: { 'aws:SourceAccount': ACCOUNT_ENV.account },
                },
              }),
            ),
          ),
        },
      });
    });

    it('is synthesized with the bucket-policy feature flag from cdk.json', () => {
      expect(CDK_JSON_CONTEXT['@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy']).toBe(true);
    });

    it('needs no flag from the app: the stack sets it for itself (an embedding app has no cdk.json)', () => {
      const app = new App({ context: SKIP_BUNDLING });
      const stack = new SessionExportStack(app, 'Embedded', { env: ACCOUNT_ENV, createDemoUsersTable: true });
      const embedded = Template.fromStack(stack);
      embedded.hasResourceProperties('AWS::S3::Bucket', {
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LoggingConfiguration: Match.absent(),
      });
      embedded.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Principal: { Service: 'logging.s3.amazonaws.com' }, Action: 's3:PutObject' }),
          ]),
        },
      });
    });
  });

  describe('alarms', () => {
    const alarmNamed = (prefix: string) =>
      Object.entries(template.findResources('AWS::CloudWatch::Alarm')).find(([id]) =>
        id.startsWith(prefix),
      )?.[1].Properties;

    it('alarm on failed, timed-out and aborted runs, failed launches, failed users, unpublished completion events and dead letters, all to the SNS topic', () => {
      const onRuns = (prefix: string, metric: string) =>
        expect(alarmNamed(prefix)).toMatchObject({
          MetricName: metric,
          Namespace: 'AWS/States',
          Dimensions: [
            { Name: 'StateMachineArn', Value: { Ref: expect.stringMatching(/^RunStateMachine/) } },
          ],
          Statistic: 'Sum',
          Threshold: 0,
          ComparisonOperator: 'GreaterThanThreshold',
          TreatMissingData: 'notBreaching',
        });
      onRuns('AlarmsExecutionsFailed', 'ExecutionsFailed');
      onRuns('AlarmsExecutionsTimedOut', 'ExecutionsTimedOut');
      onRuns('AlarmsExecutionsAborted', 'ExecutionsAborted');
      expect(alarmNamed('AlarmsLaunchFailed')).toMatchObject({
        MetricName: 'ExecutionsFailed',
        Dimensions: [
          { Name: 'StateMachineArn', Value: { Ref: expect.stringMatching(/^LauncherStateMachine/) } },
        ],
      });
      expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm'))).toHaveLength(8);
      expect(alarmNamed('AlarmsCompletionEventUnpublished')).toMatchObject({
        MetricName: 'CompletionEventUnpublished',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [{ Name: 'service', Value: 'moonkey-session-export' }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
      expect(alarmNamed('AlarmsFailedUsers')).toMatchObject({
        MetricName: 'UsersFailed',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [{ Name: 'service', Value: 'moonkey-session-export' }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
      expect(alarmNamed('AlarmsDeadLetters')).toMatchObject({
        MetricName: 'ApproximateNumberOfMessagesVisible',
      });
      for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
        expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^AlarmsTopic/) }]);
      }
    });

    it('alarm when no scheduled snapshot committed for 26 hours, missing data breaching (audits do not count)', () => {
      expect(alarmNamed('AlarmsNoRecentSnapshot')).toMatchObject({
        MetricName: 'SnapshotCommitted',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [
          { Name: 'service', Value: 'moonkey-session-export' },
          { Name: 'trigger', Value: 'scheduled' },
        ],
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 26,
        DatapointsToAlarm: 26,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
      });
    });

    it('lets CloudWatch alarms of this account publish to the topic, which still refuses non-TLS', () => {
      const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
      expect(policies).toHaveLength(1);
      const statements = policies[0]?.Properties.PolicyDocument.Statement as Statement[];
      expect(statements).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: { Ref: expect.stringMatching(/^AlarmsTopic/) },
            Condition: {
              StringEquals: { 'aws:SourceAccount': ACCOUNT_ENV.account },
              ArnLike: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    [
                      'arn:',
                      { Ref: 'AWS::Partition' },
                      `:cloudwatch:${ACCOUNT_ENV.region}:${ACCOUNT_ENV.account}:alarm:*`,
                    ],
                  ],
                },
              },
            },
          }),
          expect.objectContaining({
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      );
    });

    it('has no e-mail subscription unless asked', () => {
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });
  });

  describe('Glue and Athena', () => {
    const tableNamed = (name: string) =>
      Object.values(template.findResources('AWS::Glue::Table')).find(
        (t) => t.Properties.TableInput.Name === name,
      )?.Properties.TableInput;

    it('declares the sessions_raw columns exactly as derived from the record schema', () => {
      const table = tableNamed('sessions_raw');
      expect(table.StorageDescriptor.Columns).toEqual(
        sessionColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
      );
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string' }]);
    });

    it('reads gzip NDJSON under <prefix>/sessions/ into sessions_raw with the Hive JSON SerDe', () => {
      const table = tableNamed('sessions_raw');
      expect(table.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe(
        'org.apache.hive.hcatalog.data.JsonSerDe',
      );
      expect(table.StorageDescriptor.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
      expect(JSON.stringify(table.StorageDescriptor.Location)).toContain('/moonkey/sessions/');
    });

    it('projects dt partitions as dates up to NOW (no MSCK REPAIR)', () => {
      const table = tableNamed('sessions_raw');
      expect(table.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.range': '2024-01-01,NOW',
        classification: 'json',
      });
      expect(JSON.stringify(table.Parameters['storage.location.template'])).toContain(
        `/moonkey/sessions/dt=\${dt}/`,
      );
    });

    describe('the reader view sessions', () => {
      const view = () => tableNamed('sessions');

      it('is a Presto view in Glue, the way Athena stores the views it creates', () => {
        expect(view()).toMatchObject({
          TableType: 'VIRTUAL_VIEW',
          Parameters: { presto_view: 'true', comment: 'Presto View' },
          ViewExpandedText: '/* Presto View */',
          PartitionKeys: [],
        });
        expect(view().ViewOriginalText).toMatch(/^\/\* Presto View: [A-Za-z0-9+/=]+ \*\/$/);
      });

      it('lists every session column and dt in Hive spelling for Glue', () => {
        expect(view().StorageDescriptor.Columns).toEqual(
          readerViewColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
        );
        expect(view().StorageDescriptor.Columns.map((c: { Name: string }) => c.Name)).toEqual(
          expect.arrayContaining(['run_id', 'observed_at', 'dt']),
        );
      });

      it('encodes the reader SQL over sessions_raw and manifests with Presto column types', () => {
        const definition = decodePrestoView(view().ViewOriginalText);
        expect(definition).toEqual({
          originalSql: readerViewSql({
            sessionsRaw: '"moon_key_session_export"."sessions_raw"',
            manifests: '"moon_key_session_export"."manifests"',
          }),
          catalog: 'awsdatacatalog',
          schema: 'moon_key_session_export',
          columns: readerViewColumns.map((c) => ({ name: c.name, type: prestoType(c.type) })),
          runAsInvoker: false,
          path: [],
        });
        const types = Object.fromEntries(definition.columns.map((c) => [c.name, c.type]));
        expect(types).toMatchObject({
          id: 'varchar',
          run_id: 'varchar',
          observed_at: 'bigint',
          started_at: 'double',
          snapshot_at: 'bigint',
          dt: 'varchar',
          device_fingerprint: 'row(user_agent varchar,ip varchar)',
        });
        expect(types.factors).toMatch(
          /^array\(row\(delivery_channel varchar,type varchar,method row\(.*last_verified_at double.*\)\)\)$/,
        );
        expect(definition.originalSql).toContain(`WHERE "status" = 'committed'`);
        expect(definition.originalSql).toContain('max("run_id")');
      });

      it('is created after the database and the tables it reads', () => {
        const views = Object.entries(template.findResources('AWS::Glue::Table')).filter(
          ([, t]) => t.Properties.TableInput.Name === 'sessions',
        );
        expect(views).toHaveLength(1);
        const dependsOn = views[0]?.[1].DependsOn as string[];
        for (const prefix of ['AthenaDatabase', 'AthenaSessionsRawTable', 'AthenaManifestsTable']) {
          expect(dependsOn.some((id) => id.startsWith(prefix))).toBe(true);
        }
      });
    });

    it('declares the manifests table over <prefix>/manifests/', () => {
      const table = tableNamed('manifests');
      expect(table.StorageDescriptor.Columns).toEqual(
        manifestColumns.map((c) => ({ Name: c.name, Type: hiveType(c.type) })),
      );
      expect(JSON.stringify(table.StorageDescriptor.Location)).toContain('/moonkey/manifests/');
      expect(table.Parameters['projection.dt.type']).toBe('date');
    });

    it('deletes the Glue database and tables with the stack (they hold no data), so a redeploy can recreate them', () => {
      for (const type of ['AWS::Glue::Database', 'AWS::Glue::Table']) {
        const resources = Object.values(template.findResources(type));
        expect(resources.length).toBeGreaterThan(0);
        for (const resource of resources) {
          expect(resource.DeletionPolicy).toBe('Delete');
          expect(resource.UpdateReplacePolicy).toBe('Delete');
        }
      }
    });

    it('names the database as the props doc comment says the default is', () => {
      const doc = readFileSync(path.join(__dirname, '../../infra/session-export-props.ts'), 'utf8');
      const documented = /stack name in snake_case, e\.g\. `([a-z_]+)`/.exec(doc)?.[1];
      expect(documented).toEqual(expect.any(String));
      template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: documented } });
    });

    it('has a workgroup with enforced settings, encrypted results and a bytes-scanned cutoff', () => {
      template.hasResourceProperties('AWS::Athena::WorkGroup', {
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
          ResultConfiguration: {
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
            OutputLocation: Match.anyValue(),
          },
        },
      });
    });

    it('ships the nine named queries against the stack database', () => {
      const queries = Object.values(template.findResources('AWS::Athena::NamedQuery')).map(
        (q) => q.Properties,
      );
      expect(queries.map((q) => q.Name).sort()).toEqual(
        [
          'Factor mix',
          'Latest complete snapshot',
          "One user's sessions (audit)",
          'Sessions about to expire',
          'Sessions per user (top 50)',
          'Sessions sharing one IP',
          'New sessions since the last snapshot',
          'Sessions ended since the last snapshot',
          'Users on an IP new for them',
        ].sort(),
      );
      const latest = queries.find((q) => q.Name === 'Latest complete snapshot');
      expect(latest.QueryString).toContain(`status = 'committed'`);
      expect(latest.QueryString).toContain('"moon_key_session_export"."manifests"');
      // Readers go through the view, never the raw table with every run's lines.
      for (const q of queries) expect(q.QueryString).not.toContain('sessions_raw');
      expect(
        queries.filter((q) => q.QueryString.includes('"moon_key_session_export"."sessions"')),
      ).toHaveLength(7);
      expect(
        queries.filter((q) => q.QueryString.includes('"moon_key_session_export"."session_changes"')),
      ).toHaveLength(2);
      expect(queries.every((q) => q.Database === 'moon_key_session_export')).toBe(true);
    });
  });
});

describe('SessionExportStack with existing resources', () => {
  let template: Template;

  beforeAll(() => {
    template = synth({
      usersTableName: 'prod-users',
      userIdAttribute: 'uid',
      apiKeySecretArn: SECRET_ARN,
      apiKeySecretKmsKeyArn: SECRET_KEY_ARN,
      existingBucketName: 'acme-audit-exports',
      existingBucketKmsKeyArn: BUCKET_KEY_ARN,
      encryptionKey: RESULTS_KEY_ARN,
      exportPrefix: 'moonkey/sessions-export',
      reserveConcurrency: false,
      maxSegmentConcurrency: 4,
      runTimeoutHours: 48,
      alarmEmail: 'oncall@example.com',
      scheduleExpression: 'cron(30 3 * * ? *)',
      scheduleTimeZone: 'Europe/Berlin',
      scheduleEnabled: false,
      memoryMiB: 2048,
      maxRequestsPerSecond: 40,
      jobEnvironment: {
        EXPORT_SCAN_SEGMENTS: '4',
        LOG_LEVEL: 'DEBUG',
        EXPORT_NOT_FOUND_USERS_TOLERANCE: '5%',
      },
    });
  });

  it('uses the named table, secret and bucket, scoped to the prefix', () => {
    const statements = statementsOfRole(template, 'JobRole');
    expect(JSON.stringify(statements.find((s) => s.Sid === 'ScanUsersTable')?.Resource)).toContain(
      ':table/prod-users',
    );
    expect(statements.find((s) => s.Sid === 'ReadApiKey')?.Resource).toBe(SECRET_ARN);
    expect(JSON.stringify(statements.find((s) => s.Sid === 'SnapshotObjects')?.Resource)).toContain(
      ':s3:::acme-audit-exports/moonkey/sessions-export/*',
    );
    expect(statements.find((s) => s.Sid === 'ListSnapshotPrefix')?.Condition).toEqual({
      StringLike: { 's3:prefix': ['moonkey/sessions-export/*'] },
    });
  });

  it('may decrypt the secret with its customer-managed key, through Secrets Manager only', () => {
    const statement = statementsOfRole(template, 'JobRole').find((s) => s.Sid === 'DecryptApiKeySecret');
    expect(statement).toEqual({
      Sid: 'DecryptApiKeySecret',
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: SECRET_KEY_ARN,
      Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
    });
  });

  it("may write and read the existing bucket's SSE-KMS objects with its key, through S3 only", () => {
    const statement = statementsOfRole(template, 'JobRole').find((s) => s.Sid === 'SnapshotBucketKey');
    expect(statement).toEqual({
      Sid: 'SnapshotBucketKey',
      Effect: 'Allow',
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: BUCKET_KEY_ARN,
      Condition: { StringEquals: { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' } },
    });
  });

  it('encrypts the Athena results with the given key (the existing bucket keeps its own)', () => {
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      WorkGroupConfiguration: Match.objectLike({
        ResultConfiguration: Match.objectLike({
          EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: RESULTS_KEY_ARN },
        }),
      }),
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: RESULTS_KEY_ARN },
          },
        ],
      },
    });
    template.resourceCountIs('AWS::KMS::Key', 0);
  });

  it('sets the application log level from the job LOG_LEVEL', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON', ApplicationLogLevel: 'DEBUG' }),
    });
  });

  it('outputs the imported users table and its id attribute', () => {
    template.hasOutput(OUTPUTS.usersTableName, { Value: 'prod-users' });
    template.hasOutput(OUTPUTS.userIdAttribute, { Value: 'uid' });
  });

  it('creates no export bucket, table or secret of its own', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 0);
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    // The access-log bucket and the Athena results bucket only.
    template.resourceCountIs('AWS::S3::Bucket', 2);
  });

  it('passes the settings to the function and the schedule', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      ReservedConcurrentExecutions: Match.absent(),
      Environment: {
        Variables: Match.objectLike({
          USER_ID_ATTRIBUTE: 'uid',
          EXPORT_PREFIX: 'moonkey/sessions-export',
          EXPORT_MAX_RPS: '40',
          EXPORT_SCAN_SEGMENTS: '4',
          LOG_LEVEL: 'DEBUG',
          EXPORT_NOT_FOUND_USERS_TOLERANCE: '5%',
        }),
      },
    });
    const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    const exportDefinition = machines
      .map((m) => JSON.stringify(m.Properties.DefinitionString))
      .find((d) => d.includes('ListRunningExecutions'));
    expect(exportDefinition).toContain('\\"MaxConcurrency\\":4');
    expect(exportDefinition).toContain('\\"TimeoutSeconds\\":172800');
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 3 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
      State: 'DISABLED',
    });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });
});

describe('SessionExportStack with a created customer-managed key (encryptionKey: create)', () => {
  let template: Template;

  beforeAll(() => {
    template = synth({
      createDemoUsersTable: true,
      encryptionKey: 'create',
      infrequentAccessAfterDays: 0,
      glacierInstantRetrievalAfterDays: 60,
    });
  });

  it('creates one rotating key, retained with the data it encrypts', () => {
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true }),
      DeletionPolicy: 'Retain',
    });
  });

  it('encrypts the export bucket and the Athena results bucket with it (SSE-KMS, S3 Bucket Key)', () => {
    const sseKms = {
      BucketKeyEnabled: true,
      ServerSideEncryptionByDefault: {
        SSEAlgorithm: 'aws:kms',
        KMSMasterKeyID: { 'Fn::GetAtt': [keyId(), 'Arn'] },
      },
    };
    const encryptionOf = (prefix: string) =>
      Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) => id.startsWith(prefix))?.[1]
        .Properties.BucketEncryption.ServerSideEncryptionConfiguration;
    expect(encryptionOf('ExportBucket')).toEqual([sseKms]);
    expect(encryptionOf('AthenaResultsBucket')).toEqual([sseKms]);
    // S3 access logs cannot be delivered to an SSE-KMS bucket: that one stays SSE-S3.
    expect(encryptionOf('AccessLogsBucket')).toEqual([
      { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
    ]);
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      WorkGroupConfiguration: Match.objectLike({
        ResultConfiguration: Match.objectLike({
          EncryptionConfiguration: {
            EncryptionOption: 'SSE_KMS',
            KmsKey: { 'Fn::GetAtt': [keyId(), 'Arn'] },
          },
        }),
      }),
    });
  });

  it('lets the function use the key through S3 only', () => {
    expect(statementsOfRole(template, 'JobRole').find((s) => s.Sid === 'SnapshotBucketKey')).toMatchObject({
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: { 'Fn::GetAtt': [keyId(), 'Arn'] },
    });
  });

  it('applies only the transitions asked for (0 turns one off)', () => {
    const exportBucket = Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
      id.startsWith('ExportBucket'),
    )?.[1];
    const rule = exportBucket?.Properties.LifecycleConfiguration.Rules.find(
      (r: { Id: string }) => r.Id === 'expire-snapshots',
    );
    expect(rule.Transitions).toEqual([{ StorageClass: 'GLACIER_IR', TransitionInDays: 60 }]);
  });

  function keyId(): string {
    return Object.keys(template.findResources('AWS::KMS::Key'))[0] ?? '';
  }
});

describe('policy checks at synth (cdk-nag and cfn-guard Control Tower controls)', () => {
  /**
   * The stack plus one queue that only Control Tower objects to (no DLQ: CT.SQS.PR.1; cdk-nag's own
   * DLQ rule is acknowledged on it), synthesized with `plugins`. Returns the validation report.
   */
  function synthWithStrayQueue(plugins: (app: App) => void): { threw: boolean; report?: unknown } {
    const app = new App({ context: { ...SKIP_BUNDLING, ...FEATURE_FLAGS } });
    const stack = new SessionExportStack(app, 'MoonKeySessionExport', {
      env: ACCOUNT_ENV,
      createDemoUsersTable: true,
    });
    const stray = new Queue(Stack.of(stack), 'StrayQueue', {
      enforceSSL: true,
      encryption: QueueEncryption.SQS_MANAGED,
    });
    Validations.of(stray).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'the test wants cfn-guard alone to object',
    });
    plugins(app);
    const quiet = jest.spyOn(console, 'error').mockImplementation(() => {});
    try {
      Template.fromStack(stack);
      return { threw: false };
    } catch (error) {
      const file = /found in: (\S+\.json)/.exec((error as Error).message)?.[1];
      return { threw: true, report: file ? JSON.parse(readFileSync(file, 'utf8')) : undefined };
    } finally {
      quiet.mockRestore();
    }
  }

  it('fails the synth on a Control Tower finding nobody acknowledged', () => {
    const outcome = synthWithStrayQueue(addPolicyChecks);
    expect(outcome.threw).toBe(true);
    const guard = (
      outcome.report as {
        pluginReports: {
          pluginName: string;
          conclusion: string;
          violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
        }[];
      }
    ).pluginReports.find((r) => r.pluginName === 'cdk-validator-cfnguard');
    expect(guard?.conclusion).toBe('failure');
    expect(
      guard?.violations.map((v) => [v.ruleName, v.violatingConstructs.map((c) => c.constructPath)]),
    ).toEqual([['sqs_dlq_check', ['MoonKeySessionExport/StrayQueue/Resource']]]);
  });

  it('would let it pass with the bare plugin once anything is acknowledged (why StrictCfnGuard exists)', () => {
    const outcome = synthWithStrayQueue((app) => Validations.of(app).addPlugins(new CfnGuardValidator()));
    expect(outcome.threw).toBe(false);
  });
});

describe('settings validation', () => {
  const build = (props: SessionExportProps) => () =>
    new SessionExportStack(new App({ context: SKIP_BUNDLING }), 'S', props);
  /** What synthesizing a demo-table stack with `props` refuses with ('' when it synthesizes). */
  const message = (props: SessionExportProps) => {
    try {
      build({ createDemoUsersTable: true, ...props })();
    } catch (error) {
      return (error as Error).message;
    }
    return '';
  };

  it('rejects every conflict at once, in one message', () => {
    expect(
      build({
        usersTableName: 'users',
        createDemoUsersTable: true,
        existingBucketName: 'acme-exports',
        snapshotRetentionDays: 30,
        bucketVersioned: true,
        apiKeySecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey',
        jobEnvironment: {
          MOONKEY_API_KEY: 'plain',
          EXPORT_PREFIX: 'x',
          EXPORT_NOPE: '1',
          EXPORT_GZIP_LEVEL: '42',
          EXPORT_NOT_FOUND_USERS_TOLERANCE: 'half',
        },
      }),
    ).toThrow(
      new RegExp(
        [
          'Invalid SessionExport settings \\(9\\)',
          'usersTableName and createDemoUsersTable conflict',
          'apiKeySecretArn must be the full Secrets Manager secret ARN',
          'existingBucketName and snapshotRetentionDays conflict',
          'existingBucketName and bucketVersioned conflict',
          'jobEnvironment.MOONKEY_API_KEY is refused',
          'jobEnvironment.EXPORT_PREFIX is set by the stack',
          'jobEnvironment.EXPORT_NOPE is not a variable the job reads',
          'jobEnvironment.EXPORT_GZIP_LEVEL="42" is rejected',
          'jobEnvironment.EXPORT_NOT_FOUND_USERS_TOLERANCE="half" is rejected',
        ].join('[\\s\\S]*'),
      ),
    );
  });

  it('refuses a Map narrower than the segments Plan may choose, and more than 40 segments', () => {
    expect(message({ maxSegmentConcurrency: 8 })).toContain(
      'maxSegmentConcurrency 8 is below the 16 segments Plan may choose (EXPORT_SCAN_SEGMENTS=auto',
    );
    expect(message({ maxSegmentConcurrency: 8, concurrency: 8 })).toBe('');
    expect(message({ maxSegmentConcurrency: 2, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '3' } })).toContain(
      'maxSegmentConcurrency 2 is below the 3 segments Plan may choose (EXPORT_SCAN_SEGMENTS)',
    );
    expect(message({ jobEnvironment: { EXPORT_SCAN_SEGMENTS: '41' } })).toContain(
      'EXPORT_SCAN_SEGMENTS=41: an inline Map runs at most 40 segments at once',
    );
  });

  it('refuses more scan segments than concurrency, the whole run’s limit on calls in flight', () => {
    expect(message({ concurrency: 2, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' } })).toContain(
      'jobEnvironment.EXPORT_SCAN_SEGMENTS=4 is above concurrency 2 (EXPORT_CONCURRENCY): concurrency limits the calls in flight of the whole run and every segment needs at least one',
    );
    expect(message({ jobEnvironment: { EXPORT_SCAN_SEGMENTS: '17' } })).toContain(
      'jobEnvironment.EXPORT_SCAN_SEGMENTS=17 is above concurrency 16',
    );
    expect(message({ concurrency: 4, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' } })).toBe('');
  });

  it('rejects key ARNs that are not key ARNs, keys without their resource, and impossible transitions', () => {
    const attempt = build({
      createDemoUsersTable: true,
      apiKeySecretKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:alias/moonkey',
      existingBucketKmsKeyArn: SECRET_KEY_ARN,
      encryptionKey: 'my-key',
      infrequentAccessAfterDays: 10,
      glacierInstantRetrievalAfterDays: 30,
      snapshotRetentionDays: 20,
    });
    let message = '';
    try {
      attempt();
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('Invalid SessionExport settings (7)');
    expect(message).toContain('apiKeySecretKmsKeyArn must be a KMS key ARN');
    expect(message).toContain('encryptionKey must be a KMS key ARN');
    expect(message).toContain('apiKeySecretKmsKeyArn needs apiKeySecretArn');
    expect(message).toContain('existingBucketKmsKeyArn needs existingBucketName');
    expect(message).toContain('infrequentAccessAfterDays must be 0 (never) or at least 30');
    expect(message).toContain(
      'glacierInstantRetrievalAfterDays (30) must be at least 30 days after infrequentAccessAfterDays (10)',
    );
    expect(message).toContain(
      'glacierInstantRetrievalAfterDays (30) must be less than snapshotRetentionDays (20)',
    );
  });

  it('refuses lifecycle transitions on an existing bucket', () => {
    expect(
      build({
        createDemoUsersTable: true,
        existingBucketName: 'acme-exports',
        infrequentAccessAfterDays: 60,
      }),
    ).toThrow(/existingBucketName and infrequentAccessAfterDays conflict/);
  });

  it('asks for a users table when none is given', () => {
    expect(build({})).toThrow(/no users table: set usersTableName .* or createDemoUsersTable/);
  });

  it('rejects malformed schedule, time zone, e-mail, sizes and prefix', () => {
    const attempt = build({
      createDemoUsersTable: true,
      scheduleExpression: '0 2 * * *',
      scheduleTimeZone: 'Mars/Olympus',
      alarmEmail: 'nobody',
      memoryMiB: 64,
      exportPrefix: '/leading',
      maxSegmentConcurrency: 41,
    });
    let message = '';
    try {
      attempt();
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('Invalid SessionExport settings (6)');
    expect(message).toContain('maxSegmentConcurrency must be a whole number from 1 to 40 (got 41)');
    expect(message).toContain('scheduleExpression "0 2 * * *" must be cron(...), rate(...) or at(...)');
    expect(message).toContain('scheduleTimeZone "Mars/Olympus" is not an IANA time zone');
    expect(message).toContain('alarmEmail "nobody" is not an e-mail address');
    expect(message).toContain('memoryMiB must be a whole number from 128 to 10240 (got 64)');
    expect(message).toContain('exportPrefix "/leading" must be key segments');
  });
});

describe('a first deploy with -c scheduleEnabled=false (README: before npm run smoke)', () => {
  it('deploys the schedule DISABLED', () => {
    const app = new App({
      context: { ...SKIP_BUNDLING, ...FEATURE_FLAGS, usersTable: 'demo', scheduleEnabled: 'false' },
    });
    const stack = new SessionExportStack(app, 'MoonKeySessionExport', {
      env: ACCOUNT_ENV,
      ...propsFromContext(app.node),
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Scheduler::Schedule', { State: 'DISABLED' });
  });
});

describe('propsFromContext', () => {
  it('turns CLI strings into typed props and usersTable into a table choice', () => {
    const app = new App({
      context: {
        usersTable: 'prod-users',
        memoryMiB: '2048',
        maxSegmentConcurrency: '16',
        reserveConcurrency: 'false',
        scheduleEnabled: 'false',
        jobEnvironment: '{"EXPORT_SCAN_SEGMENTS":"4"}',
        encryptionKey: 'create',
        infrequentAccessAfterDays: '0',
        existingBucketKmsKeyArn: BUCKET_KEY_ARN,
      },
    });
    expect(propsFromContext(app.node)).toEqual({
      usersTableName: 'prod-users',
      memoryMiB: 2048,
      maxSegmentConcurrency: 16,
      reserveConcurrency: false,
      scheduleEnabled: false,
      jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' },
      encryptionKey: 'create',
      infrequentAccessAfterDays: 0,
      existingBucketKmsKeyArn: BUCKET_KEY_ARN,
    });
    expect(propsFromContext(new App({ context: { usersTable: 'demo' } }).node)).toEqual({
      createDemoUsersTable: true,
    });
  });
});
