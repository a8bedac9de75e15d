import type { Node } from 'constructs';
import type { SessionExportProps } from './session-export-props';

type Kind = 'string' | 'number' | 'boolean' | 'json';

/** Context keys the CLI accepts (`-c key=value`), each named after the prop it sets. */
const CONTEXT_KEYS = {
  userIdAttribute: 'string',
  apiKeySecretArn: 'string',
  apiKeySecretKmsKeyArn: 'string',
  copies: 'string',
  piiPolicy: 'string',
  piiKeySecretArn: 'string',
  piiKeySecretKmsKeyArn: 'string',
  apiUrl: 'string',
  existingBucketName: 'string',
  existingBucketKmsKeyArn: 'string',
  encryptionKey: 'string',
  exportPrefix: 'string',
  snapshotRetentionDays: 'number',
  infrequentAccessAfterDays: 'number',
  glacierInstantRetrievalAfterDays: 'number',
  bucketVersioned: 'boolean',
  memoryMiB: 'number',
  logRetention: 'number',
  maxSegmentConcurrency: 'number',
  reserveConcurrency: 'boolean',
  runTimeoutHours: 'number',
  concurrency: 'number',
  maxRequestsPerSecond: 'number',
  jobEnvironment: 'json',
  scheduleExpression: 'string',
  scheduleTimeZone: 'string',
  scheduleEnabled: 'boolean',
  scheduleRetryAttempts: 'number',
  alarmEmail: 'string',
  glueDatabaseName: 'string',
  athenaBytesScannedCutoff: 'number',
  eventBusArn: 'string',
} as const satisfies Partial<Record<keyof SessionExportProps, Kind>>;

/** `-c` values arrive as strings; cdk.json values keep their JSON type. Both are accepted. */
function convert(key: string, kind: Kind, raw: unknown): unknown {
  if (typeof raw !== 'string' || kind === 'string') return raw;
  if (kind === 'number') return raw.trim() === '' ? Number.NaN : Number(raw);
  if (kind === 'boolean') {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw new Error(`Context ${key} must be true or false (got "${raw}")`);
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error(`Context ${key} must be JSON (got ${raw})`);
  }
}

/**
 * Reads the stack's props from CDK context (cdk.json or `-c`), for the CLI. The users table is one
 * key, `usersTable`: a table name, or `demo` for a demo table. Validation happens in the stack.
 */
export function propsFromContext(node: Node): SessionExportProps {
  const props: Record<string, unknown> = {};
  const usersTable = node.tryGetContext('usersTable') as unknown;
  if (usersTable === 'demo') props.createDemoUsersTable = true;
  else if (typeof usersTable === 'string' && usersTable !== '') props.usersTableName = usersTable;
  for (const [key, kind] of Object.entries(CONTEXT_KEYS)) {
    const raw = node.tryGetContext(key) as unknown;
    if (raw !== undefined) props[key] = convert(key, kind, raw);
  }
  return props as SessionExportProps;
}
