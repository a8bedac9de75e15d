/** Template assertions on the stack with its defaults (demo table, created bucket and secret), one describe per construct. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { decodePrestoView } from '../../infra/constructs/presto-view';
import { SessionExportStack } from '../../infra/session-export-stack';
import { OUTPUTS } from '../../infra/stack-outputs';
import { hiveType, manifestColumns, prestoType, sessionColumns } from '../../lambda/snapshot/athena-columns';
import { readerViewColumns, readerViewSql } from '../../lambda/snapshot/reader-view';
import { actionsOf, type Statement, statementsOfRole } from '../helpers/stack-template';
import { ACCOUNT_ENV, CDK_JSON_CONTEXT, SKIP_BUNDLING, synthStack } from '../helpers/synth-stack';

const synth = synthStack;

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
