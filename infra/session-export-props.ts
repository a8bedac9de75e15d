import type { StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';

/**
 * Everything a deployer decides. Each prop is optional with a documented default, except the users
 * table: say which table to read (`usersTableName`) or ask for a demo one (`createDemoUsersTable`).
 * Conflicting or malformed settings are rejected once, at synth, by `validateSessionExportProps`.
 */
export interface SessionExportProps extends StackProps {
  /**
   * Name of the existing DynamoDB users table (same account and region). The function may only Scan it.
   * @default - none: set this or `createDemoUsersTable`
   */
  readonly usersTableName?: string;
  /**
   * Create a small on-demand `user_id`-keyed table to try the stack without a real one.
   * Deleted with the stack (it holds demo data only).
   * @default false
   */
  readonly createDemoUsersTable?: boolean;
  /**
   * Attribute of each users-table item that holds the MoonKey user id.
   * @default 'user_id'
   */
  readonly userIdAttribute?: string;
  /**
   * Full ARN (with its 6-character suffix) of an existing Secrets Manager secret holding the API key,
   * either the bare key or `{"apiKey": "..."}`.
   * @default - the stack creates an empty secret whose value you set after deploy
   */
  readonly apiKeySecretArn?: string;
  /**
   * ARN of the customer-managed KMS key that encrypts the existing secret (`apiKeySecretArn`); the
   * function gets `kms:Decrypt` on it through Secrets Manager. A key ARN (`key/...`), not an alias.
   * @default - the secret uses the AWS-managed key `aws/secretsmanager`, which needs no grant
   */
  readonly apiKeySecretKmsKeyArn?: string;
  /**
   * Which copies each run writes (EXPORT_COPIES, docs/pii.md): `raw` as MoonKey returns it,
   * `pseudonymized` only (no raw value stored), or `both` under one manifest. With a pseudonymized
   * copy the stack also catalogs it, creates the analyst workgroup, the HMAC key's secret and one
   * IAM managed policy per audience (analyst, security).
   * @default 'raw'
   */
  readonly copies?: 'raw' | 'pseudonymized' | 'both';
  /**
   * The pseudonymized copy's policy (EXPORT_PII_POLICY): a preset (`pseudonymize`, `analytics`,
   * `minimal`), amended (`analytics,user_agent=drop`), or every field named.
   * @default 'pseudonymize'
   */
  readonly piiPolicy?: string;
  /**
   * Full ARN of an existing secret holding the HMAC key (bare, or `{"key": "..."}`, at least 32
   * characters), e.g. to keep tokens comparable with another deployment's.
   * @default - the stack creates a random 64-character key, encrypted with a customer-managed KMS key of its own
   */
  readonly piiKeySecretArn?: string;
  /**
   * ARN of the customer-managed KMS key that encrypts the existing secret (`piiKeySecretArn`).
   * @default - the existing secret uses the AWS-managed key, which needs no grant
   */
  readonly piiKeySecretKmsKeyArn?: string;
  /**
   * MoonKey API base URL.
   * @default 'https://api.moonkey.fun'
   */
  readonly apiUrl?: string;
  /**
   * Name of an existing bucket to write into (it keeps its own encryption, policy and lifecycle).
   * Conflicts with `snapshotRetentionDays` and `bucketVersioned`, which only shape a created bucket.
   * @default - the stack creates the bucket
   */
  readonly existingBucketName?: string;
  /**
   * ARN of the KMS key of the existing bucket's SSE-KMS default encryption (`existingBucketName`);
   * the function gets `kms:GenerateDataKey` and `kms:Decrypt` on it through S3.
   * @default - the existing bucket uses SSE-S3, which needs no grant
   */
  readonly existingBucketKmsKeyArn?: string;
  /**
   * Customer-managed KMS key for the created export bucket and the Athena query results (the
   * snapshots hold phone numbers, e-mail addresses and IPs): `'create'` for a new key (rotation on,
   * retained with the data), or the ARN of an existing key. With `existingBucketName` it applies to
   * the Athena results only. Athena users then need `kms:Decrypt` (and `kms:GenerateDataKey` for
   * results) on the key.
   * @default - SSE-S3 (S3-managed keys)
   */
  readonly encryptionKey?: string;
  /**
   * Key prefix of everything the job writes, without leading or trailing `/`.
   * @default 'moonkey'
   */
  readonly exportPrefix?: string;
  /**
   * Days after which the created bucket expires snapshot objects under the prefix.
   * @default 400 (a little over a year, so a year-on-year audit still finds its snapshot)
   */
  readonly snapshotRetentionDays?: number;
  /**
   * Days after which the created bucket moves snapshot objects to S3 Standard-IA; 0 never.
   * @default 30
   */
  readonly infrequentAccessAfterDays?: number;
  /**
   * Days after which the created bucket moves snapshot objects to S3 Glacier Instant Retrieval
   * (still read directly by Athena); 0 never.
   * @default 90
   */
  readonly glacierInstantRetrievalAfterDays?: number;
  /**
   * Versioning of the created bucket. Off by default: a rerun deliberately replaces a slot's files and
   * deletes its stale ones; versioning would keep every replaced copy (and its cost) invisible to Athena.
   * @default false
   */
  readonly bucketVersioned?: boolean;
  /**
   * Function memory in MiB (CPU scales with it; gzip and JSON parsing are CPU-bound).
   * @default 1024
   */
  readonly memoryMiB?: number;
  /**
   * Retention of the function's log group.
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;
  /**
   * Segments a run works on in parallel (the state machine's inline Map concurrency, 1 to 40).
   * `EXPORT_CONCURRENCY` and `EXPORT_MAX_RPS` are limits for the whole run, shared by them. It may
   * not be below the segments Plan can choose (`EXPORT_SCAN_SEGMENTS`; for `auto`, min(40, concurrency)).
   * @default - the most segments Plan can choose: EXPORT_SCAN_SEGMENTS, or min(40, concurrency) for auto (16 by default)
   */
  readonly maxSegmentConcurrency?: number;
  /**
   * Reserve `maxSegmentConcurrency + 1` concurrent executions for the function, so other functions
   * in the account cannot starve a run (and the run cannot starve them). Lambda refuses a
   * reservation that leaves the account fewer than 100 unreserved executions, so accounts with a
   * small concurrency quota (new accounts start at 10) must turn this off: runs stay serialized
   * by the state machine either way. See docs/operating.md "Overlapping runs and concurrency".
   * @default true
   */
  readonly reserveConcurrency?: boolean;
  /**
   * Longest a run may take, waiting for an earlier run included, before its execution times out.
   * A nightly run should end before the next night's starts; Standard executions allow a year.
   * @default 24
   */
  readonly runTimeoutHours?: number;
  /**
   * Concurrent MoonKey API calls (`EXPORT_CONCURRENCY`).
   * @default 16
   */
  readonly concurrency?: number;
  /**
   * Cap on MoonKey API requests per second (`EXPORT_MAX_RPS`).
   * @default - no cap (the job still honours 429 / Retry-After)
   */
  readonly maxRequestsPerSecond?: number;
  /**
   * Further job settings by environment variable name (any `EXPORT_*`, `LOG_LEVEL`), validated
   * against lambda/core/config.ts at synth. Variables the stack owns (table, bucket, prefix, secret,
   * API URL, metrics namespace) and `MOONKEY_API_KEY` (a plaintext key) are refused.
   * @default {}
   */
  readonly jobEnvironment?: Readonly<Record<string, string>>;
  /**
   * EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`.
   * @default 'cron(0 2 * * ? *)' (daily 02:00)
   */
  readonly scheduleExpression?: string;
  /**
   * IANA time zone the schedule expression is read in.
   * @default 'Etc/UTC'
   */
  readonly scheduleTimeZone?: string;
  /**
   * Whether the schedule fires (the function stays invocable by hand either way).
   * @default true
   */
  readonly scheduleEnabled?: boolean;
  /**
   * Scheduler's retries when it cannot hand the event to Lambda (throttling, service errors).
   * @default 3
   */
  readonly scheduleRetryAttempts?: number;
  /**
   * E-mail address subscribed to the alarm topic (confirm the subscription mail once).
   * @default - no subscription; subscribe to the topic output yourself
   */
  readonly alarmEmail?: string;
  /**
   * Glue database name.
   * @default - the stack name in snake_case, e.g. `moon_key_session_export`
   */
  readonly glueDatabaseName?: string;
  /**
   * Athena per-query bytes-scanned cutoff of the workgroup.
   * @default 10 GiB
   */
  readonly athenaBytesScannedCutoff?: number;
  /**
   * ARN of the EventBridge bus the completion events ("Snapshot Committed", "Snapshot Failed") go
   * to; the state machine may put events on that bus only. A bus in another account needs a
   * resource policy there that lets this account put events.
   * @default - the account's default bus in the stack's region
   */
  readonly eventBusArn?: string;
}
