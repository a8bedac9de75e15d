/**
 * Adaptive concurrency (EXPORT_ADAPTIVE_CONCURRENCY) against the fake API's hidden rate limit:
 * the job is not told the limit, gets 429s, backs its concurrency off and still exports every
 * user exactly once. No timing assertions: how fast it converges is the benchmark's job.
 */
import { parseConfig } from '../../lambda/core/config';
import { createExportRuntime, type ExportRuntime } from '../../lambda/handlers/export-context';
import { type Progress, runExport } from '../../lambda/run/run-export';
import { planFromEvent } from '../../lambda/run/run-plan';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { type CapturedLogger, captureLogger } from '../helpers/capture-logger';
import { readRecords } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const BASE_TIME = 1_764_115_200;
const USERS_TABLE = 'users-aimd';
const USER_COUNT = 400;
const CONCURRENCY = 64;

let stack: LocalStack;
let restoreEnv: () => void = () => {};
let users: string[];

const scheduled = () =>
  planFromEvent(
    { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: '2026-11-26T02:00:00Z', detail: {} },
    new Date(),
    'x',
  );

interface AdaptiveSummary {
  decreases: number;
  lowest: number;
  final: number;
  max: number;
}

/** The run's closing log line carries what the AIMD controller did. */
function adaptiveSummary(logger: CapturedLogger): AdaptiveSummary | undefined {
  for (const line of logger.lines) {
    const entry = JSON.parse(line) as { message: string; extra: { adaptiveConcurrency?: AdaptiveSummary }[] };
    if (entry.message === 'work step finished') return entry.extra[0]?.adaptiveConcurrency;
  }
  return undefined;
}

async function run(prefix: string, env: Record<string, string>) {
  const config = parseConfig({
    ...stack.env,
    USERS_TABLE_NAME: USERS_TABLE,
    EXPORT_PREFIX: prefix,
    EXPORT_CONCURRENCY: String(CONCURRENCY),
    EXPORT_RETRY_BASE_DELAY_MS: '5',
    EXPORT_RETRY_MAX_DELAY_MS: '50',
    EXPORT_PROGRESS_INTERVAL_MS: '100',
    ...env,
  });
  const logger = captureLogger();
  const progress: Progress[] = [];
  let runtime: ExportRuntime | undefined;
  try {
    runtime = await createExportRuntime(config, { logger });
    const outcome = await runExport(scheduled(), runtime, { onProgress: (p) => progress.push(p) });
    return { ...outcome, logger, progress };
  } finally {
    await runtime?.close();
  }
}

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  restoreEnv = useProcessEnv(stack.env);
  await createUsersTable(stack.dynamodbClient, USERS_TABLE);
  users = await seedUsers(stack.dynamodbClient, USERS_TABLE, USER_COUNT);
});

afterAll(async () => {
  restoreEnv();
  await stack?.stop();
});

beforeEach(() => {
  stack.api.configure({ latencyMs: 10, rateLimitRps: undefined, faults: {}, invalidItemUsers: [] });
  stack.api.resetStats();
});

describe('adaptive concurrency (AIMD)', () => {
  it('backs off on 429s from a hidden rate limit and still exports every user exactly once', async () => {
    // C/L = 64 / 10 ms = 6,400 calls/s against a hidden limit of 300/s.
    stack.api.configure({ rateLimitRps: 300 });

    const result = await run('aimd-limited', {
      EXPORT_ADAPTIVE_CONCURRENCY: 'true',
      EXPORT_MAX_ATTEMPTS: '20',
    });

    expect(result.error).toBeUndefined();
    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts.users_processed).toBe(USER_COUNT);
    expect(result.manifest.counts.users_failed).toBe(0);
    expect(stack.api.stats.byStatus['429']).toBeGreaterThan(0);
    const summary = adaptiveSummary(result.logger);
    expect(summary).toBeDefined();
    expect(summary?.max).toBe(CONCURRENCY);
    expect(summary?.decreases).toBeGreaterThan(0);
    expect(summary?.lowest).toBeLessThan(CONCURRENCY);
    // Never more calls in flight than the configured bound, whatever the controller does,
    // counted where the calls arrive rather than by the limiter that is supposed to bound them.
    expect(stack.api.stats.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    for (const p of result.progress) expect(p.concurrency).toBeLessThanOrEqual(CONCURRENCY);
    const records = await readRecords(stack.s3Client, stack.bucket, 'aimd-limited/sessions/');
    const ids = records.map((r) => String(r.id)).sort();
    const truth = users
      .flatMap((u) => sessionsFor(u, BASE_TIME))
      .map((s) => s.id)
      .sort();
    expect(ids).toEqual(truth);
  });

  it('changes nothing when the API never answers 429', async () => {
    const result = await run('aimd-unlimited', { EXPORT_ADAPTIVE_CONCURRENCY: 'true' });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.byStatus['429']).toBeUndefined();
    expect(stack.api.stats.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    expect(adaptiveSummary(result.logger)).toEqual({
      decreases: 0,
      lowest: CONCURRENCY,
      final: CONCURRENCY,
      max: CONCURRENCY,
    });
    for (const p of result.progress) expect(p.concurrency).toBe(CONCURRENCY);
  });

  it('leaves concurrency fixed when turned off, 429s or not', async () => {
    stack.api.configure({ rateLimitRps: 300 });

    const result = await run('aimd-off', {
      EXPORT_ADAPTIVE_CONCURRENCY: 'false',
      EXPORT_MAX_ATTEMPTS: '20',
    });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.byStatus['429']).toBeGreaterThan(0);
    expect(adaptiveSummary(result.logger)).toBeUndefined();
    for (const p of result.progress) expect(p.concurrency).toBe(CONCURRENCY);
  });
});
