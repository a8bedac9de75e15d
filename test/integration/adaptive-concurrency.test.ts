/**
 * Adaptive concurrency (EXPORT_ADAPTIVE_CONCURRENCY) against the fake API's hidden rate limit:
 * the job is not told the limit, gets 429s, backs its concurrency off and still exports every
 * user exactly once. No timing assertions: how fast it converges is the benchmark's job.
 */
import type { Progress } from '../../lambda/run/work';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import type { CapturedLogger } from '../helpers/capture-logger';
import { runViaStateMachine } from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readRecords } from '../helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;
const USERS_TABLE = 'users-aimd';
const USER_COUNT = 400;
const CONCURRENCY = 64;

let stack: LocalStack;
let users: string[];

const SCHEDULED = scheduledEvent('2026-11-26T02:00:00Z');

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

/** The progress lines every Work logs each EXPORT_PROGRESS_INTERVAL_MS. */
function progressOf(logger: CapturedLogger): Progress[] {
  return logger.lines
    .map((line) => JSON.parse(line) as { message: string; extra: Progress[] })
    .filter((entry) => entry.message === 'progress')
    .map((entry) => entry.extra[0] as Progress);
}

async function run(prefix: string, env: Record<string, string>) {
  const result = await runViaStateMachine(
    {
      ...stack.env,
      USERS_TABLE_NAME: USERS_TABLE,
      EXPORT_PREFIX: prefix,
      EXPORT_CONCURRENCY: String(CONCURRENCY),
      EXPORT_RETRY_BASE_DELAY_MS: '5',
      EXPORT_RETRY_MAX_DELAY_MS: '50',
      EXPORT_PROGRESS_INTERVAL_MS: '100',
      ...env,
    },
    SCHEDULED,
    // Lambda's 15 minutes: one Work, whose closing line carries the controller's summary.
    { workBudgetMs: 900_000 },
  );
  const progress = progressOf(result.logger);
  // A run too short to log progress would make the per-line checks below vacuous.
  expect(progress.length).toBeGreaterThan(0);
  return { ...result, progress };
}

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, USERS_TABLE);
  users = await seedUsers(stack.dynamodbClient, USERS_TABLE, USER_COUNT);
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => stack.api.reset({ latencyMs: 10 }));

describe('adaptive concurrency (AIMD)', () => {
  it('backs off on 429s from a hidden rate limit and still exports every user exactly once', async () => {
    // C/L = 64 / 10 ms = 6,400 calls/s against a hidden limit of 300/s.
    stack.api.configure({ rateLimitRps: 300 });

    const result = await run('aimd-limited', {
      EXPORT_ADAPTIVE_CONCURRENCY: 'true',
      EXPORT_MAX_ATTEMPTS: '20',
    });

    expect(result.error).toBeUndefined();
    expect(result.manifest?.status).toBe('committed');
    expect(result.manifest?.counts.users_processed).toBe(USER_COUNT);
    expect(result.manifest?.counts.users_failed).toBe(0);
    expect(stack.api.stats.byStatus['429']).toBeGreaterThan(0);
    const summary = adaptiveSummary(result.logger);
    expect(summary).toBeDefined();
    expect(summary?.max).toBe(CONCURRENCY);
    expect(summary?.decreases).toBeGreaterThan(0);
    expect(summary?.lowest).toBeLessThan(CONCURRENCY);
    // Never more calls in flight than the configured bound, whatever the controller does,
    // counted where the calls arrive rather than by the rate limiter that is supposed to bound them.
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

    expect(result.manifest?.status).toBe('committed');
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

    expect(result.manifest?.status).toBe('committed');
    expect(stack.api.stats.byStatus['429']).toBeGreaterThan(0);
    expect(adaptiveSummary(result.logger)).toBeUndefined();
    for (const p of result.progress) expect(p.concurrency).toBe(CONCURRENCY);
  });
});
