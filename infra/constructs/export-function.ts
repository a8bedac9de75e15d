import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { ApplicationLogLevel, Architecture, LoggingFormat, Runtime } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { FUNCTION_TIMEOUT_MS } from '../../lambda/core/facts';
import { iam5ResourceFinding } from '../nag-finding';
import { acknowledgeGuard } from '../policy-checks';

const REPO_ROOT = path.join(__dirname, '..', '..');

/** The function's timeout; the state machine's task timeouts are derived from it. */
export const FUNCTION_TIMEOUT = Duration.minutes(FUNCTION_TIMEOUT_MS / 60_000);

/** The Lambda entry: the job's thin handler. */
export const EXPORT_FUNCTION_ENTRY = path.join(REPO_ROOT, 'lambda', 'handlers', 'handler.ts');

/**
 * esbuild options of the function, local esbuild only (there is no Docker). Everything is bundled,
 * the AWS SDK included, so what runs in Lambda is exactly the versions the tests ran, not whatever
 * SDK the runtime ships that month.
 */
export const EXPORT_FUNCTION_BUNDLING: BundlingOptions = {
  forceDockerBundling: false,
  format: OutputFormat.CJS,
  target: 'node24',
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  externalModules: [],
};

export interface ExportFunctionProps {
  readonly usersTable: ITable;
  readonly bucket: IBucket;
  /** Key prefix the function may touch; S3 permissions are scoped to `<prefix>/*`. */
  readonly prefix: string;
  readonly apiKeySecret: ISecret;
  /**
   * Customer-managed key the API-key secret is encrypted with (needs kms:Decrypt through Secrets Manager).
   * @default - the secret uses the AWS-managed key, which needs no grant
   */
  readonly apiKeySecretKey?: IKey;
  /**
   * The HMAC key's secret of the pseudonymized copy, and the KMS key it is encrypted with.
   * @default - none: the job writes the raw copy only
   */
  readonly piiKeySecret?: ISecret;
  readonly piiKeySecretKey?: IKey;
  /**
   * KMS key of the bucket's SSE-KMS default encryption (needs kms:GenerateDataKey and kms:Decrypt through S3).
   * @default - SSE-S3, which needs no grant
   */
  readonly bucketKey?: IKey;
  /** The job's environment besides what this construct derives from the resources above. */
  readonly environment: Readonly<Record<string, string>>;
  /**
   * @default 1024
   */
  readonly memoryMiB?: number;
  /**
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;
  /**
   * Concurrent executions reserved for the function (one per parallel segment plus headroom).
   * @default - none: the function shares the account's unreserved pool
   */
  readonly reservedConcurrency?: number;
}

/**
 * The export job as a Lambda function: nodejs24.x on arm64, 15 minutes, its own log group with
 * retention, and a role that can do exactly what the job does (Scan one table, write/read/delete
 * objects under the prefix, list the prefix, read one secret, write its own logs). Only the
 * export state machine invokes it, synchronously, one phase per invocation; the state machine
 * owns retries (Lambda service errors and timeouts only), so no asynchronous retry or
 * destination is configured here.
 */
export class ExportFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: LogGroup;
  readonly role: Role;

  constructor(scope: Construct, id: string, props: ExportFunctionProps) {
    super(scope, id);

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description:
        'MoonKey session export: scan users, write snapshots under the export prefix, read the API key',
    });
    this.role.addToPolicy(
      new PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        sid: 'ScanUsersTable',
        // DescribeTable: Plan sizes the scan (segments) from the table's item count.
        actions: ['dynamodb:Scan', 'dynamodb:DescribeTable'],
        resources: [props.usersTable.tableArn],
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        sid: 'SnapshotObjects',
        actions: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:GetObject', 's3:DeleteObject'],
        resources: [props.bucket.arnForObjects(`${props.prefix}/*`)],
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        sid: 'ListSnapshotPrefix',
        effect: Effect.ALLOW,
        actions: ['s3:ListBucket'],
        resources: [props.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${props.prefix}/*`] } },
      }),
    );
    this.role.addToPolicy(
      new PolicyStatement({
        sid: 'ReadApiKey',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.apiKeySecret.secretArn],
      }),
    );
    if (props.piiKeySecret) {
      this.role.addToPolicy(
        new PolicyStatement({
          sid: 'ReadPiiKey',
          actions: ['secretsmanager:GetSecretValue'],
          resources: [props.piiKeySecret.secretArn],
        }),
      );
    }
    const region = Stack.of(this).region;
    if (props.piiKeySecretKey) {
      this.role.addToPolicy(
        new PolicyStatement({
          sid: 'DecryptPiiKeySecret',
          actions: ['kms:Decrypt'],
          resources: [props.piiKeySecretKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${region}.amazonaws.com` } },
        }),
      );
    }
    if (props.apiKeySecretKey) {
      this.role.addToPolicy(
        new PolicyStatement({
          sid: 'DecryptApiKeySecret',
          actions: ['kms:Decrypt'],
          resources: [props.apiKeySecretKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${region}.amazonaws.com` } },
        }),
      );
    }
    if (props.bucketKey) {
      // GenerateDataKey to write (each multipart upload gets a data key), Decrypt to upload parts
      // and to read back; only through S3, never as a general-purpose key.
      this.role.addToPolicy(
        new PolicyStatement({
          sid: 'SnapshotBucketKey',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [props.bucketKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` } },
        }),
      );
    }
    Validations.of(this.role).acknowledge({
      id: iam5ResourceFinding(this, props.bucket.arnForObjects(`${props.prefix}/*`)),
      reason: `Objects under "${props.prefix}/" only: snapshot file names are chosen per run (snapshot id, writer, part number), so they cannot be listed at deploy time.`,
    });

    this.function = new NodejsFunction(this, 'Function', {
      description: 'MoonKey session snapshot export: one phase (plan, work, commit, abort) per invocation',
      entry: EXPORT_FUNCTION_ENTRY,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      timeout: FUNCTION_TIMEOUT,
      memorySize: props.memoryMiB ?? 1024,
      role: this.role,
      logGroup: this.logGroup,
      // The job already writes one JSON object per line (Powertools); JSON format lets Lambda's own
      // lines (START, REPORT) be JSON too and filter by level. The application level follows the
      // job's LOG_LEVEL, so Lambda never drops a line the job meant to write.
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: applicationLogLevel(props.environment.LOG_LEVEL),
      bundling: EXPORT_FUNCTION_BUNDLING,
      environment: {
        ...props.environment,
        USERS_TABLE_NAME: props.usersTable.tableName,
        EXPORT_BUCKET_NAME: props.bucket.bucketName,
        EXPORT_PREFIX: props.prefix,
        MOONKEY_API_KEY_SECRET_ARN: props.apiKeySecret.secretArn,
        ...(props.piiKeySecret ? { EXPORT_PII_KEY_SECRET_ARN: props.piiKeySecret.secretArn } : {}),
        NODE_OPTIONS: '--enable-source-maps',
      },
      reservedConcurrentExecutions: props.reservedConcurrency,
    });
    acknowledgeGuard(this.function, {
      lambda_inside_vpc_check:
        'The function reaches only the public MoonKey API and AWS service endpoints; a VPC would add NAT gateways (cost, another failure point) and no private resource to reach.',
    });
    acknowledgeGuard(this.logGroup, {
      cloudwatch_log_group_encrypted_check:
        'The logs hold user ids, counts and error types, never session data or the API key (tests grep for it); CloudWatch Logs encrypts them at rest with its own keys.',
      ...((props.logRetention ?? RetentionDays.THREE_MONTHS) < 365
        ? {
            cloudwatch_log_group_retention_period_check:
              "Retention is the deployer's choice (prop logRetention, 90 days by default): the durable record of every run is its manifest in S3.",
          }
        : {}),
    });
  }
}

/** The job's LOG_LEVEL (lambda/core/config.ts) as Lambda's application log level. */
export function applicationLogLevel(logLevel: string | undefined): ApplicationLogLevel {
  switch (logLevel ?? 'INFO') {
    case 'TRACE':
      return ApplicationLogLevel.TRACE;
    case 'DEBUG':
      return ApplicationLogLevel.DEBUG;
    case 'WARN':
      return ApplicationLogLevel.WARN;
    case 'ERROR':
      return ApplicationLogLevel.ERROR;
    // Powertools' CRITICAL is Lambda's FATAL; SILENT has no Lambda level, FATAL is the closest.
    case 'CRITICAL':
    case 'SILENT':
      return ApplicationLogLevel.FATAL;
    default:
      return ApplicationLogLevel.INFO;
  }
}
