/** The stack given existing resources (users table, bucket, secret, keys) instead of creating them. */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { OUTPUTS } from '../../infra/stack-outputs';
import {
  BUCKET_KEY_ARN,
  RESULTS_KEY_ARN,
  SECRET_ARN,
  SECRET_KEY_ARN,
  statementsOfRole,
} from '../helpers/stack-template';
import { synthStack } from '../helpers/synth-stack';

const synth = synthStack;

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
