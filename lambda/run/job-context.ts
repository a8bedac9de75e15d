import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../core/config';
import type { JobLogger, MetricsSink } from '../core/observability';
import type { FetchSessions } from '../moonkey/sessions-client';
import type { PiiCopies } from './pii-copies';

/**
 * Clients and sinks built once per cold start (handlers/job-runtime.ts) and handed to every
 * phase, so tests can aim them anywhere.
 */
export interface JobContext {
  readonly config: Config;
  readonly s3: S3Client;
  readonly dynamodb: DynamoDBClient;
  readonly fetchSessions: FetchSessions;
  readonly logger: JobLogger;
  readonly metrics: MetricsSink;
  /** Which copies a run writes and the policy of the pseudonymized one (pii-copies.ts). */
  readonly pii: PiiCopies;
}
