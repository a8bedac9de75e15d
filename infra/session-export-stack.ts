import { CfnOutput, Duration, RemovalPolicy, SecretValue, Stack, Validations } from 'aws-cdk-lib';
import { AttributeType, BillingMode, type ITable, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { EventBus } from 'aws-cdk-lib/aws-events';
import { AnyPrincipal, Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import {
  DEFAULT_API_URL,
  DEFAULT_CONCURRENCY,
  DEFAULT_EXPORT_PREFIX,
  DEFAULT_METRICS_NAMESPACE,
  DEFAULT_USER_ID_ATTRIBUTE,
  mostAutoSegments,
} from '../lambda/core/facts';
import { CHANGES_VIEW_NAME } from '../lambda/snapshot/change-view';
import { MANIFESTS_TABLE, READER_VIEW_NAME } from '../lambda/snapshot/reader-view';

import { AccessLogsBucket } from './constructs/access-logs-bucket';
import { dataEncryptionKey, denyGrantsExceptForAwsServices, importedKey } from './constructs/data-key';
import { ExportAlarms } from './constructs/export-alarms';
import { ExportBucket } from './constructs/export-bucket';

import { ExportDashboard } from './constructs/export-dashboard';
import { ExportFunction, FUNCTION_TIMEOUT } from './constructs/export-function';

import { ExportSchedule } from './constructs/export-schedule';
import { ExportStateMachine } from './constructs/export-state-machine';
import { FailureQueue } from './constructs/failure-queue';
import { ReaderPolicies } from './constructs/reader-policies';
import { ScheduledRunLauncher } from './constructs/scheduled-run-launcher';
import { SessionsCatalog, snakeCase } from './constructs/sessions-catalog';
import type { SessionExportProps } from './session-export-props';
import { OUTPUTS } from './stack-outputs';
import { validateSessionExportProps } from './validate-props';

/**
 * The most segments Plan can choose (lambda/run/plan-phase.ts, chooseSegments): the configured
 * EXPORT_SCAN_SEGMENTS, or for `auto` mostAutoSegments(concurrency) (lambda/core/facts.ts). The Map runs that many at once by default, so no segment waits
 * for another to finish (each gets a 1/total share of the run's rate, and would otherwise idle it).
 */
export function mostSegments(props: SessionExportProps): number {
  const configured = props.jobEnvironment?.EXPORT_SCAN_SEGMENTS;
  if (configured !== undefined && configured !== 'auto') return Number(configured);
  return mostAutoSegments(props.concurrency ?? DEFAULT_CONCURRENCY);
}

const S3_ACCESS_LOGS_USE_BUCKET_POLICY = '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy';

/**
 * The deployable unit: wires the constructs together from validated props. No business logic:
 * each construct owns its defaults, this class only decides what connects to what.
 */
export class SessionExportStack extends Stack {
  readonly exportFunction: ExportFunction;
  readonly export: ExportStateMachine;
  readonly launcher: ScheduledRunLauncher;
  readonly catalog: SessionsCatalog;
  /** One IAM managed policy per audience; undefined with copies=raw. */
  readonly readerPolicies: ReaderPolicies | undefined;

  constructor(scope: Construct, id: string, props: SessionExportProps = {}) {
    super(scope, id, props);
    // The access-log bucket has ACLs disabled, so log delivery must be granted by bucket policy. Set
    // here as well as in cdk.json so the stack synthesizes the same in any app that embeds it.
    this.node.setContext(S3_ACCESS_LOGS_USE_BUCKET_POLICY, true);
    validateSessionExportProps(props);
    const prefix = props.exportPrefix ?? DEFAULT_EXPORT_PREFIX;

    const userIdAttribute = props.userIdAttribute ?? DEFAULT_USER_ID_ATTRIBUTE;
    const usersTable = this.usersTable(props, userIdAttribute);
    const apiKeySecret = this.apiKeySecret(props);
    const accessLogs = new AccessLogsBucket(this, 'AccessLogs');
    const dataKey = dataEncryptionKey(this, 'DataKey', props.encryptionKey);
    const { bucket } = new ExportBucket(this, 'Export', {
      existingBucketName: props.existingBucketName,
      prefix,
      expireAfterDays: props.snapshotRetentionDays,
      infrequentAccessAfterDays: props.infrequentAccessAfterDays,
      glacierInstantRetrievalAfterDays: props.glacierInstantRetrievalAfterDays,
      versioned: props.bucketVersioned,
      encryptionKey: dataKey,
      accessLogsBucket: accessLogs.bucket,
    });
    // The key the function needs for the snapshot bucket: ours, or the one an existing bucket uses.
    const bucketKey =
      props.existingBucketName === undefined
        ? dataKey
        : importedKey(this, 'ExistingBucketKey', props.existingBucketKmsKeyArn);
    const failures = new FailureQueue(this, 'Failures');
    const copies = props.copies ?? 'raw';
    const pii = copies === 'raw' ? undefined : this.piiKeySecret(props);

    const environment: Record<string, string> = {
      ...props.jobEnvironment,
      USER_ID_ATTRIBUTE: userIdAttribute,
      MOONKEY_API_URL: props.apiUrl ?? DEFAULT_API_URL,
      EXPORT_CONCURRENCY: String(props.concurrency ?? DEFAULT_CONCURRENCY),
      METRICS_NAMESPACE: DEFAULT_METRICS_NAMESPACE,
      EXPORT_COPIES: copies,
    };
    if (pii !== undefined) environment.EXPORT_PII_POLICY = props.piiPolicy ?? 'pseudonymize';
    if (props.maxRequestsPerSecond !== undefined) {
      environment.EXPORT_MAX_RPS = String(props.maxRequestsPerSecond);
    }

    const maxSegmentConcurrency = props.maxSegmentConcurrency ?? mostSegments(props);
    this.exportFunction = new ExportFunction(this, 'Job', {
      usersTable,
      bucket,
      prefix,
      apiKeySecret,
      apiKeySecretKey: importedKey(this, 'ApiKeySecretKey', props.apiKeySecretKmsKeyArn),
      piiKeySecret: pii?.secret,
      piiKeySecretKey: pii?.key,
      bucketKey,
      environment,
      memoryMiB: props.memoryMiB,
      logRetention: props.logRetention,
      // One invocation per running segment, plus one: a Work retried after a Lambda service error
      // may briefly overlap the attempt Step Functions lost track of.
      reservedConcurrency: (props.reserveConcurrency ?? true) ? maxSegmentConcurrency + 1 : undefined,
    });
    for (const secret of [apiKeySecret, pii?.secret]) {
      if (!(secret instanceof Secret)) continue;
      // Only the function may read a key this stack created, whatever else the account's policies allow.
      secret.addToResourcePolicy(
        new PolicyStatement({
          sid: 'OnlyTheExportFunctionReadsTheKey',
          effect: Effect.DENY,
          principals: [new AnyPrincipal()],
          actions: ['secretsmanager:GetSecretValue'],
          resources: ['*'],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': this.exportFunction.role.roleArn } },
        }),
      );
    }

    const databaseName = props.glueDatabaseName ?? snakeCase(this.stackName);
    this.export = new ExportStateMachine(this, 'Run', {
      function: this.exportFunction.function,
      functionTimeout: FUNCTION_TIMEOUT,
      maxSegmentConcurrency,
      logRetention: props.logRetention,
      executionTimeout: Duration.hours(props.runTimeoutHours ?? 24),
      completionEvents: {
        eventBus:
          props.eventBusArn === undefined
            ? EventBus.fromEventBusName(this, 'DefaultEventBus', 'default')
            : EventBus.fromEventBusArn(this, 'CompletionEventBus', props.eventBusArn),
        views: {
          database: databaseName,
          sessions: READER_VIEW_NAME,
          changes: CHANGES_VIEW_NAME,
          manifests: MANIFESTS_TABLE,
        },
        metricsNamespace: DEFAULT_METRICS_NAMESPACE,
      },
    });
    this.launcher = new ScheduledRunLauncher(this, 'Launcher', {
      target: this.export.stateMachine,
      logGroup: this.export.logGroup,
    });

    new ExportSchedule(this, 'Schedule', {
      target: this.launcher.stateMachine,
      deadLetterQueue: failures.queue,
      expression: props.scheduleExpression,
      timeZone: props.scheduleTimeZone,
      enabled: props.scheduleEnabled,
      retryAttempts: props.scheduleRetryAttempts,
    });

    const alarms = new ExportAlarms(this, 'Alarms', {
      stateMachine: this.export.stateMachine,
      launcher: this.launcher.stateMachine,
      failureQueue: failures.queue,
      metricsNamespace: DEFAULT_METRICS_NAMESPACE,
      email: props.alarmEmail,
    });

    new ExportDashboard(this, 'Dashboard', {
      stateMachine: this.export.stateMachine,
      metricsNamespace: DEFAULT_METRICS_NAMESPACE,
      alarms: alarms.alarms,
      maxRequestsPerSecond: props.maxRequestsPerSecond,
    });

    this.catalog = new SessionsCatalog(this, 'Athena', {
      bucket,
      prefix,
      accessLogsBucket: accessLogs.bucket,
      databaseName,
      encryptionKey: dataKey,
      bytesScannedCutoffPerQuery: props.athenaBytesScannedCutoff,
      pseudonymized: pii !== undefined,
    });
    this.readerPolicies =
      pii === undefined
        ? undefined
        : new ReaderPolicies(this, 'Readers', {
            bucket,
            prefix,
            catalog: this.catalog,
            bucketKey,
            resultsKey: dataKey,
          });

    const out = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    out(
      OUTPUTS.stateMachineArn,
      this.export.stateMachine.stateMachineArn,
      'The export state machine (npm run audit starts an execution)',
    );
    out(OUTPUTS.functionName, this.exportFunction.function.functionName, 'The export function (every phase)');
    out(OUTPUTS.bucketName, bucket.bucketName, 'Bucket holding the snapshots');
    out(OUTPUTS.exportPrefix, prefix, 'Key prefix of everything the job writes');
    out(OUTPUTS.secretArn, apiKeySecret.secretArn, 'Secret holding the MoonKey API key');
    out(OUTPUTS.alarmTopicArn, alarms.topic.topicArn, 'SNS topic of the alarms');
    out(
      OUTPUTS.failureQueueUrl,
      failures.queue.queueUrl,
      'Dead-letter queue of scheduled events that could not start the launcher',
    );
    out(
      OUTPUTS.glueDatabase,
      this.catalog.database.databaseName,
      'Glue database (view sessions; tables sessions_raw, manifests)',
    );
    out(OUTPUTS.athenaWorkGroup, this.catalog.workGroup.ref, 'Athena workgroup with the named queries');
    if (this.readerPolicies && this.catalog.pseudonymizedWorkGroup) {
      out(
        OUTPUTS.analystPolicyArn,
        this.readerPolicies.analyst.managedPolicyArn,
        'Attach to analysts: the pseudonymized copy only',
      );
      out(
        OUTPUTS.securityPolicyArn,
        this.readerPolicies.security.managedPolicyArn,
        'Attach to the security team: the raw copy',
      );
      out(
        OUTPUTS.analystWorkGroup,
        this.catalog.pseudonymizedWorkGroup.ref,
        'Athena workgroup of the pseudonymized copy',
      );
    }
    out(OUTPUTS.usersTableName, usersTable.tableName, 'DynamoDB table the job scans for user ids');
    out(OUTPUTS.userIdAttribute, userIdAttribute, 'Attribute of the users table holding the id');
  }

  private usersTable(props: SessionExportProps, userIdAttribute: string): ITable {
    if (props.usersTableName !== undefined) {
      return Table.fromTableName(this, 'UsersTable', props.usersTableName);
    }
    return new Table(this, 'DemoUsersTable', {
      partitionKey: { name: userIdAttribute, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.AWS_MANAGED,
      // Demo data only: it goes with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }

  /** The HMAC key of the pseudonymized copy: an existing secret, or a random one under a key of its own. */
  private piiKeySecret(props: SessionExportProps): { secret: ISecret; key: IKey | undefined } {
    if (props.piiKeySecretArn !== undefined) {
      return {
        secret: Secret.fromSecretCompleteArn(this, 'PiiKeySecret', props.piiKeySecretArn),
        key: importedKey(this, 'PiiKeySecretKey', props.piiKeySecretKmsKeyArn),
      };
    }
    const key = new Key(this, 'PiiKeyEncryption', {
      description: 'MoonKey session export: encrypts the HMAC key of the pseudonymized copy',
      enableKeyRotation: true,
      // Losing the key of the secret loses the HMAC key, and with it every token's comparability.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    denyGrantsExceptForAwsServices(key);
    const secret = new Secret(this, 'PiiKey', {
      description:
        'HMAC-SHA256 key of the pseudonymized session copy (docs/pii.md: rotating it changes every token)',
      encryptionKey: key,
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Rotating the HMAC key changes every token and breaks joins across snapshots (docs/pii.md); it is rotated on purpose, by the operator, not on a schedule.',
    });
    return { secret, key };
  }

  private apiKeySecret(props: SessionExportProps): ISecret {
    if (props.apiKeySecretArn !== undefined) {
      return Secret.fromSecretCompleteArn(this, 'ApiKeySecret', props.apiKeySecretArn);
    }
    const secret = new Secret(this, 'ApiKey', {
      description:
        'MoonKey API key for the session export: set the value after deploy (bare key or {"apiKey":"..."})',
      // A visible placeholder, not a key: until it is replaced, runs fail with "holds no API key".
      secretStringValue: SecretValue.unsafePlainText('{"apiKey":""}'),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The value is an API key issued by MoonKey: it can only be rotated in the MoonKey console, so a rotation Lambda has nothing to call. Rotate it there and put the new value here.',
    });
    return secret;
  }
}
