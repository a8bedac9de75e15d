import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { parseConfig } from '../../lambda/core/config';
import type { RunMetrics } from '../../lambda/core/observability';
import type { SessionsResponse } from '../../lambda/moonkey/classify-response';
import type { FetchSessions } from '../../lambda/moonkey/sessions-client';
import type { JobContext } from '../../lambda/run/job-context';
import { RAW_ONLY } from '../../lambda/run/pii-copies';
import type { RunPlan } from '../../lambda/run/run-plan';
import { newRunId } from '../../lambda/snapshot/snapshot-id';
import { type CapturedLogger, captureLogger } from './capture-logger';
import { MemoryS3 } from './memory-s3';

export interface MemoryContext extends JobContext {
  readonly memory: MemoryS3;
  readonly logger: CapturedLogger;
  /** Every metrics record the run published. */
  readonly published: RunMetrics[];
  /** Commands sent to DynamoDB, by name. */
  readonly dynamodbSent: string[];
}

/**
 * A JobContext on in-memory parts, for unit tests of one phase: S3 is MemoryS3, DynamoDB
 * answers `dynamodb(command)`, MoonKey answers `fetchSessions`. The integration suites run the
 * same phases on the real local servers through the state machine.
 */
export function memoryContext(
  env: Record<string, string> = {},
  parts: {
    dynamodb?: (command: { constructor: { name: string }; input: unknown }) => Promise<unknown>;
    fetchSessions?: FetchSessions;
    memory?: MemoryS3;
  } = {},
): MemoryContext {
  const memory = parts.memory ?? new MemoryS3();
  const published: RunMetrics[] = [];
  const dynamodbSent: string[] = [];
  const answer = parts.dynamodb ?? (async () => ({}));
  return {
    config: parseConfig({
      USERS_TABLE_NAME: 'users',
      EXPORT_BUCKET_NAME: 'exports',
      MOONKEY_API_KEY: 'test-key',
      ...env,
    }),
    s3: memory.client,
    memory,
    dynamodb: {
      send: (command: { constructor: { name: string }; input: unknown }) => {
        dynamodbSent.push(command.constructor.name);
        return answer(command);
      },
    } as unknown as DynamoDBClient,
    dynamodbSent,
    fetchSessions: parts.fetchSessions ?? (async () => moonkeyAnswer({ sessions: [] })),
    pii: RAW_ONLY,
    logger: captureLogger(),
    metrics: (m) => published.push(m),
    published,
  };
}

/** A MoonKey answer as the client hands it on: the parsed body, without the items' own text. */
export const moonkeyAnswer = (body: unknown): SessionsResponse => ({ body, rawItems: undefined });

let runs = 0;

/** A run's plan as planFromEvent makes it; each call a newer run of the same slot. */
export function runPlan(overrides: Partial<RunPlan> = {}): RunPlan {
  runs++;
  return {
    snapshotId: 'scheduled-20261201T020000Z',
    // Run ids order runs of a slot; each call is a millisecond later than the one before.
    runId: newRunId(new Date(Date.parse('2026-12-01T02:00:00.000Z') + runs), 'test00'),
    startedAt: '2026-12-01T02:00:00.000Z',
    snapshotAt: 1_796_090_400,
    trigger: 'scheduled',
    reason: undefined,
    users: { kind: 'scan' },
    dryRun: false,
    ...overrides,
  };
}
