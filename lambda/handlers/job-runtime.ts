import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { resolveApiKey } from '../core/api-key';
import type { Config } from '../core/config';
import { createLogger, createMetricsSink, type JobLogger, type MetricsSink } from '../core/observability';
import { resolvePiiKey } from '../core/pii-key';
import { createSessionsClient } from '../moonkey/sessions-client';
import type { JobContext } from '../run/job-context';
import { createPiiCopies } from '../run/pii-copies';

/** A job context that also owns its clients' sockets: built once per cold start, closed with `close()`. */
export interface JobRuntime extends JobContext {
  close(): Promise<void>;
}

/**
 * Builds every client once from the parsed config (a Lambda cold start, a CLI run, a test).
 * Endpoints and checksum behaviour come from the SDK's own standard variables
 * (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, AWS_REQUEST_CHECKSUM_CALCULATION, ...), so
 * pointing the job at emulators needs no code path of its own; only path-style is ours.
 */
export async function createJobRuntime(
  config: Config,
  overrides: { logger?: JobLogger; metrics?: MetricsSink } = {},
): Promise<JobRuntime> {
  const apiKey = await resolveApiKey(config.apiKey);
  // Read once here and held only by the tokenizer's closure: never in the config, a log or the state.
  const pii = createPiiCopies(
    config.pii,
    config.pii.key === undefined ? undefined : await resolvePiiKey(config.pii.key),
  );
  const sessions = createSessionsClient({
    apiUrl: config.apiUrl,
    apiKey,
    // A few spare sockets so a slow close never holds back a slot.
    connections: config.concurrency + 4,
    requestTimeoutMs: config.requestTimeoutMs,
    requestTotalTimeoutMs: config.requestTotalTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
  });
  const s3 = new S3Client({ forcePathStyle: config.s3ForcePathStyle });
  // Adaptive: the standard backoff plus a client-side rate limiter that slows the scan while
  // DynamoDB throttles, so a long throttle is waited out instead of failing the run.
  const dynamodb = new DynamoDBClient({ retryMode: 'adaptive', maxAttempts: config.dynamodbMaxAttempts });
  return {
    config,
    s3,
    dynamodb,
    fetchSessions: sessions.fetchSessions,
    pii,
    logger: overrides.logger ?? createLogger(config),
    metrics: overrides.metrics ?? createMetricsSink(config),
    async close() {
      await sessions.close();
      s3.destroy();
      dynamodb.destroy();
    },
  };
}

/** Where a handler gets its runtime (config and clients) for an invocation. */
export type RuntimeSource = () => Promise<JobRuntime>;

/** A runtime built on first use and then shared, with the means to release it. */
export interface CachedRuntime {
  readonly get: RuntimeSource;
  /** Releases the clients (sockets); the next `get` builds a new runtime. */
  close(): Promise<void>;
}

/**
 * Builds the runtime with `create` on first use and hands the same one to every later call. A
 * failed build (say, Secrets Manager was briefly unreachable) is not kept, so the next call
 * tries again.
 */
export function cachedRuntime(create: () => Promise<JobRuntime>): CachedRuntime {
  let runtime: Promise<JobRuntime> | undefined;
  return {
    get() {
      runtime ??= Promise.resolve()
        .then(create)
        .catch((error: unknown) => {
          runtime = undefined;
          throw error;
        });
      return runtime;
    },
    async close() {
      const current = runtime;
      runtime = undefined;
      await (await current?.catch(() => undefined))?.close();
    },
  };
}
