import { Token } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { envSchema } from '../lambda/core/config';
import { DEFAULT_CONCURRENCY, MAX_SEGMENTS, mostAutoSegments } from '../lambda/core/facts';
import type { SessionExportProps } from './session-export-props';

/** Job variables the stack sets from its own resources and typed props; `jobEnvironment` may not. */
export const STACK_OWNED_VARIABLES = [
  'USERS_TABLE_NAME',
  'USER_ID_ATTRIBUTE',
  'EXPORT_BUCKET_NAME',
  'EXPORT_PREFIX',
  'MOONKEY_API_URL',
  'MOONKEY_API_KEY_SECRET_ARN',
  'EXPORT_COPIES',
  'EXPORT_PII_POLICY',
  'EXPORT_PII_KEY_SECRET_ARN',
  'EXPORT_CONCURRENCY',
  'EXPORT_MAX_RPS',
  'METRICS_NAMESPACE',
  'METRICS_ENABLED',
  'S3_FORCE_PATH_STYLE',
] as const;

const SECRET_ARN =
  /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
/** A key ARN, not an alias ARN: IAM statements on an alias ARN do not grant use of the key behind it. */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const SCHEDULE = /^(cron\(.+\)|rate\(.+\)|at\(.+\))$/;
const GLUE_NAME = /^[a-z0-9_]{1,255}$/;
const EVENT_BUS_ARN = /^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus\/[A-Za-z0-9._/-]{1,256}$/;
const RETENTION_VALUES = new Set<number>(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'),
);

/** `field` in message form: `problem`. */
type Problem = string;

function checkInt(problems: Problem[], name: string, value: number | undefined, min: number, max: number) {
  if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
    problems.push(`${name} must be a whole number from ${min} to ${max} (got ${value})`);
  }
}

/**
 * Collects every conflict and malformed value, then throws ONE error listing them all, so a
 * deployer fixes their settings in one pass instead of one synth per mistake.
 */
export function validateSessionExportProps(props: SessionExportProps): void {
  const problems: Problem[] = [];

  if (props.usersTableName !== undefined && props.createDemoUsersTable) {
    problems.push(
      'usersTableName and createDemoUsersTable conflict: import your table by name OR create the demo table, not both',
    );
  }
  if (props.usersTableName === undefined && !props.createDemoUsersTable) {
    problems.push(
      'no users table: set usersTableName (context usersTable=<name>) or createDemoUsersTable (context usersTable=demo)',
    );
  }
  if (props.usersTableName !== undefined && !TABLE_NAME.test(props.usersTableName)) {
    problems.push(`usersTableName "${props.usersTableName}" is not a DynamoDB table name`);
  }
  if (props.apiKeySecretArn !== undefined && !SECRET_ARN.test(props.apiKeySecretArn)) {
    problems.push(
      'apiKeySecretArn must be the full Secrets Manager secret ARN, including the 6-character suffix after the name',
    );
  }
  problems.push(...kmsProblems(props));
  problems.push(...piiProblems(props));
  if (props.existingBucketName !== undefined) {
    for (const name of [
      'snapshotRetentionDays',
      'infrequentAccessAfterDays',
      'glacierInstantRetrievalAfterDays',
    ] as const) {
      if (props[name] !== undefined) {
        problems.push(
          `existingBucketName and ${name} conflict: the stack does not change the lifecycle of a bucket it does not own`,
        );
      }
    }
    if (props.bucketVersioned !== undefined) {
      problems.push(
        'existingBucketName and bucketVersioned conflict: the stack does not change the versioning of a bucket it does not own',
      );
    }
    if (!envSchema.shape.EXPORT_BUCKET_NAME.safeParse(props.existingBucketName).success) {
      problems.push(`existingBucketName "${props.existingBucketName}" is not an S3 bucket name`);
    }
  }
  if (
    props.exportPrefix !== undefined &&
    !envSchema.shape.EXPORT_PREFIX.safeParse(props.exportPrefix).success
  ) {
    problems.push(
      `exportPrefix "${props.exportPrefix}" must be key segments separated by "/", without leading or trailing "/"`,
    );
  }
  if (props.apiUrl !== undefined && !envSchema.shape.MOONKEY_API_URL.safeParse(props.apiUrl).success) {
    problems.push(`apiUrl "${props.apiUrl}" must be an http(s) URL`);
  }
  checkInt(problems, 'snapshotRetentionDays', props.snapshotRetentionDays, 1, 36_500);
  if (props.existingBucketName === undefined) problems.push(...transitionProblems(props));
  checkInt(problems, 'memoryMiB', props.memoryMiB, 128, 10_240);
  checkInt(problems, 'concurrency', props.concurrency, 1, 2048);
  checkInt(problems, 'maxSegmentConcurrency', props.maxSegmentConcurrency, 1, MAX_SEGMENTS);
  checkInt(problems, 'runTimeoutHours', props.runTimeoutHours, 1, 8760);
  checkInt(problems, 'scheduleRetryAttempts', props.scheduleRetryAttempts, 0, 185);
  checkInt(
    problems,
    'athenaBytesScannedCutoff',
    props.athenaBytesScannedCutoff,
    10_000_000,
    Number.MAX_SAFE_INTEGER,
  );
  if (props.maxRequestsPerSecond !== undefined && !(props.maxRequestsPerSecond > 0)) {
    problems.push(`maxRequestsPerSecond must be greater than 0 (got ${props.maxRequestsPerSecond})`);
  }
  if (props.logRetention !== undefined && !RETENTION_VALUES.has(props.logRetention)) {
    problems.push(
      `logRetention ${props.logRetention} is not a CloudWatch Logs retention (days: 1, 3, 5, 7, 14, 30, ...)`,
    );
  }
  if (props.scheduleExpression !== undefined && !SCHEDULE.test(props.scheduleExpression)) {
    problems.push(`scheduleExpression "${props.scheduleExpression}" must be cron(...), rate(...) or at(...)`);
  }
  if (props.scheduleTimeZone !== undefined && !isTimeZone(props.scheduleTimeZone)) {
    problems.push(
      `scheduleTimeZone "${props.scheduleTimeZone}" is not an IANA time zone (e.g. Europe/Berlin)`,
    );
  }
  if (props.alarmEmail !== undefined && !EMAIL.test(props.alarmEmail)) {
    problems.push(`alarmEmail "${props.alarmEmail}" is not an e-mail address`);
  }
  if (props.glueDatabaseName !== undefined && !GLUE_NAME.test(props.glueDatabaseName)) {
    problems.push(`glueDatabaseName "${props.glueDatabaseName}" must be lower-case letters, digits and _`);
  }
  if (
    props.eventBusArn !== undefined &&
    !Token.isUnresolved(props.eventBusArn) &&
    !EVENT_BUS_ARN.test(props.eventBusArn)
  ) {
    problems.push(
      `eventBusArn "${props.eventBusArn}" is not an EventBridge bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>)`,
    );
  }
  problems.push(...jobEnvironmentProblems(props.jobEnvironment ?? {}));
  problems.push(...segmentProblems(props));

  if (problems.length > 0) {
    throw new Error(
      `Invalid SessionExport settings (${problems.length}):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
}

/**
 * Plan may choose up to EXPORT_SCAN_SEGMENTS segments (for `auto`, at most
 * mostAutoSegments(concurrency)): every one must fit in the Map at once, or the segments that wait
 * leave part of the run's rate share unused, and an inline Map runs at most MAX_SEGMENTS. Each segment takes a share of `concurrency`
 * (the whole run's limit) of at least one call, so there may not be more segments than that.
 */
function segmentProblems(props: SessionExportProps): Problem[] {
  const configured = props.jobEnvironment?.EXPORT_SCAN_SEGMENTS;
  const numeric = configured !== undefined && configured !== 'auto' ? Number(configured) : undefined;
  const concurrency = props.concurrency ?? DEFAULT_CONCURRENCY;
  const problems: Problem[] = [];
  if (
    numeric !== undefined &&
    Number.isInteger(numeric) &&
    Number.isInteger(concurrency) &&
    numeric > concurrency
  ) {
    problems.push(
      `jobEnvironment.EXPORT_SCAN_SEGMENTS=${configured} is above concurrency ${concurrency} (EXPORT_CONCURRENCY): concurrency limits the calls in flight of the whole run and every segment needs at least one; lower EXPORT_SCAN_SEGMENTS or raise concurrency`,
    );
  }
  if (numeric !== undefined && Number.isInteger(numeric) && numeric > MAX_SEGMENTS) {
    problems.push(
      `jobEnvironment.EXPORT_SCAN_SEGMENTS=${configured}: an inline Map runs at most ${MAX_SEGMENTS} segments at once`,
    );
    return problems;
  }
  const most = numeric ?? mostAutoSegments(concurrency);
  const map = props.maxSegmentConcurrency;
  if (map !== undefined && Number.isInteger(map) && map < most) {
    problems.push(
      `maxSegmentConcurrency ${map} is below the ${most} segments Plan may choose (${numeric !== undefined ? 'EXPORT_SCAN_SEGMENTS' : `EXPORT_SCAN_SEGMENTS=auto: at most min(${MAX_SEGMENTS}, concurrency)`}): raise it, or set jobEnvironment.EXPORT_SCAN_SEGMENTS`,
    );
  }
  return problems;
}

/**
 * S3 refuses a Standard-IA transition before 30 days, and one to a colder class less than 30 days
 * after Standard-IA; a transition at or after expiry never happens. Caught here rather than by a
 * failed deploy.
 */
function transitionProblems(props: SessionExportProps): Problem[] {
  const problems: Problem[] = [];
  const ia = props.infrequentAccessAfterDays;
  const gir = props.glacierInstantRetrievalAfterDays;
  checkInt(problems, 'infrequentAccessAfterDays', ia, 0, 36_500);
  checkInt(problems, 'glacierInstantRetrievalAfterDays', gir, 0, 36_500);
  if (problems.length > 0) return problems;
  const effectiveIa = ia ?? 30;
  const effectiveGir = gir ?? 90;
  const expiry = props.snapshotRetentionDays ?? 400;
  // Only a transition set explicitly must come before expiry; a default one that does not is dropped
  // (see export-bucket.ts), so a short retention alone is not an error.
  if (effectiveIa > 0 && effectiveIa < 30) {
    problems.push(`infrequentAccessAfterDays must be 0 (never) or at least 30 (S3's minimum; got ${ia})`);
  }
  if (effectiveIa > 0 && effectiveGir > 0 && effectiveGir < effectiveIa + 30) {
    problems.push(
      `glacierInstantRetrievalAfterDays (${effectiveGir}) must be at least 30 days after infrequentAccessAfterDays (${effectiveIa}), or 0`,
    );
  }
  for (const [name, days] of [
    ['infrequentAccessAfterDays', ia],
    ['glacierInstantRetrievalAfterDays', gir],
  ] as const) {
    if (days !== undefined && days > 0 && days >= expiry) {
      problems.push(`${name} (${days}) must be less than snapshotRetentionDays (${expiry}), or 0`);
    }
  }
  return problems;
}

/** Key ARNs must be key ARNs, and each key must belong to the resource it is declared for. */
function piiProblems(props: SessionExportProps): Problem[] {
  const problems: Problem[] = [];
  if (props.copies !== undefined && !envSchema.shape.EXPORT_COPIES.safeParse(props.copies).success) {
    problems.push(`copies must be raw, pseudonymized or both (got "${props.copies}")`);
  }
  if (props.piiPolicy !== undefined && !Token.isUnresolved(props.piiPolicy)) {
    const parsed = envSchema.shape.EXPORT_PII_POLICY.safeParse(props.piiPolicy);
    if (!parsed.success) problems.push(`piiPolicy ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (
    props.piiKeySecretArn !== undefined &&
    !Token.isUnresolved(props.piiKeySecretArn) &&
    !SECRET_ARN.test(props.piiKeySecretArn)
  ) {
    problems.push(
      'piiKeySecretArn must be the full Secrets Manager secret ARN, including the 6-character suffix after the name',
    );
  }
  if (props.piiKeySecretKmsKeyArn !== undefined && props.piiKeySecretArn === undefined) {
    problems.push(
      'piiKeySecretKmsKeyArn needs piiKeySecretArn: it is the key of an existing secret; the created secret has its own key',
    );
  }
  if ((props.copies ?? 'raw') === 'raw') {
    for (const name of ['piiPolicy', 'piiKeySecretArn', 'piiKeySecretKmsKeyArn'] as const)
      if (props[name] !== undefined)
        problems.push(`${name} has no effect with copies=raw: set copies to pseudonymized or both`);
  }
  return problems;
}

function kmsProblems(props: SessionExportProps): Problem[] {
  const problems: Problem[] = [];
  const keyArn = (name: string, value: string | undefined) => {
    if (value !== undefined && !Token.isUnresolved(value) && !KMS_KEY_ARN.test(value)) {
      problems.push(
        `${name} must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias or key id (got "${value}")`,
      );
    }
  };
  keyArn('apiKeySecretKmsKeyArn', props.apiKeySecretKmsKeyArn);
  keyArn('piiKeySecretKmsKeyArn', props.piiKeySecretKmsKeyArn);
  keyArn('existingBucketKmsKeyArn', props.existingBucketKmsKeyArn);
  if (props.encryptionKey !== 'create') keyArn('encryptionKey', props.encryptionKey);
  if (props.apiKeySecretKmsKeyArn !== undefined && props.apiKeySecretArn === undefined) {
    problems.push(
      'apiKeySecretKmsKeyArn needs apiKeySecretArn: it is the key of an existing secret; the created secret uses the AWS-managed key',
    );
  }
  if (props.existingBucketKmsKeyArn !== undefined && props.existingBucketName === undefined) {
    problems.push(
      'existingBucketKmsKeyArn needs existingBucketName: it is the key of an existing bucket; use encryptionKey for the created bucket',
    );
  }
  return problems;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Each extra variable must be one the job reads, not one the stack owns, and valid by the job's own rule. */
function jobEnvironmentProblems(env: Readonly<Record<string, string>>): Problem[] {
  const problems: Problem[] = [];
  const shape = envSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean } }>;
  for (const [name, value] of Object.entries(env)) {
    if (name === 'EXPORT_PII_KEY') {
      problems.push(
        'jobEnvironment.EXPORT_PII_KEY is refused: a plaintext key in the function configuration; the stack keeps it in a secret',
      );
    } else if (name === 'MOONKEY_API_KEY') {
      problems.push(
        'jobEnvironment.MOONKEY_API_KEY is refused: a plaintext key in the function configuration; use the secret',
      );
    } else if ((STACK_OWNED_VARIABLES as readonly string[]).includes(name)) {
      problems.push(`jobEnvironment.${name} is set by the stack: use the typed prop instead`);
    } else if (!(name in shape)) {
      problems.push(`jobEnvironment.${name} is not a variable the job reads (see lambda/core/config.ts)`);
    } else if (!shape[name]?.safeParse(value).success) {
      problems.push(
        `jobEnvironment.${name}="${value}" is rejected by the job's own rule (lambda/core/config.ts)`,
      );
    }
  }
  return problems;
}
