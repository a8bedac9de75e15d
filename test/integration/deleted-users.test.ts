/**
 * Users MoonKey no longer knows, through the deployed state machine's definition on the local
 * runner with the real handler: DynamoDB Local, the fauxqs S3 server and the fake MoonKey API,
 * whose deleted users answer `404 {"status_code":404,"error_type":"user_not_found",...}`.
 * A deleted user is counted and skipped; any other 404 is a failed user; so many deleted users
 * that the job must be asking the wrong app fails the run. What is checked is what shows: the
 * requests per user at the fake API, the manifests and session lines in S3, the uploads the S3
 * server still holds open.
 */
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import { getJson, listKeys, type OpenUpload } from '../../lambda/snapshot/s3-objects';
import { isDeletedUser, sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import {
  loadStateMachineDefinitions,
  type StateMachineDefinitions,
} from '../../local/state-machine-definitions';
import { type LocalExecution, LocalStepFunctions } from '../../local/state-machine-runner';
import { captureStdout, jsonLines } from '../helpers/capture-stdout';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readRecords, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const BASE_TIME = 1_764_115_200;
const TABLE = 'deleted-users';
const USERS = 3_000;
const SLOT = '2026-11-27T02:00:00Z';
const SNAPSHOT = 'scheduled-20261127T020000Z';
const SCHEDULED = scheduledEvent(SLOT);
/** What the issue measured: 1% of the users in the table no longer exist at MoonKey. */
const DELETED_FRACTION = 0.01;

let stack: LocalStack;
let definitions: StateMachineDefinitions;
let restoreEnv: () => void = () => {};
let ids: string[];
let prefixCounter = 0;

beforeAll(async () => {
  [stack, definitions] = await Promise.all([
    startLocalStack({ api: { baseTime: BASE_TIME } }),
    loadStateMachineDefinitions(),
  ]);
  await createUsersTable(stack.dynamodbClient, TABLE);
  ids = await seedUsers(stack.dynamodbClient, TABLE, USERS);
}, 300_000);

beforeEach(() => {
  // 2 calls in flight per segment at 10 ms each: a segment's 750 users take more than one Work.
  stack.api.reset({ latencyMs: 10 });
});

afterEach(async () => {
  restoreEnv();
  await closeRuntime();
});

afterAll(async () => {
  await stack?.stop();
});

interface Run {
  readonly prefix: string;
  readonly sfn: LocalStepFunctions;
  /** Every upload the job recorded, collected after each invocation (records go with Commit). */
  readonly uploads: Map<string, OpenUpload>;
}

/** A LocalStepFunctions on a fresh prefix: 4 segments, 5-second Work invocations. */
function setUp(env: Record<string, string> = {}): Run {
  const prefix = `deleted${++prefixCounter}`;
  restoreEnv = useProcessEnv({
    ...stack.env,
    USERS_TABLE_NAME: TABLE,
    EXPORT_PREFIX: prefix,
    EXPORT_SCAN_SEGMENTS: '4',
    EXPORT_CONCURRENCY: '8',
    EXPORT_SCAN_PAGE_SIZE: '100',
    EXPORT_DEADLINE_MARGIN_MS: '3000',
    EXPORT_RETRY_BASE_DELAY_MS: '5',
    EXPORT_RETRY_MAX_DELAY_MS: '50',
    LOG_LEVEL: 'ERROR',
    METRICS_ENABLED: 'false',
    ...env,
  });
  const uploads = new Map<string, OpenUpload>();
  const sfn = new LocalStepFunctions(definitions, handler, {
    workBudgetMs: 5_000,
    onPhase: async () => {
      for (const key of await listKeys(stack.s3Client, stack.bucket, `${prefix}/runs/`)) {
        if (!key.includes('/uploads/') || uploads.has(key)) continue;
        const record = await getJson<OpenUpload>(stack.s3Client, stack.bucket, key);
        if (record) uploads.set(key, { key: record.key, uploadId: record.uploadId });
      }
    },
  });
  return { prefix, sfn, uploads };
}

interface WrittenManifest {
  status: string;
  error: { type: string; message: string; step?: string } | null;
  counts: Record<string, number>;
  failed_users: { user_id: string; error: string; error_type: string }[];
}

async function manifests(prefix: string): Promise<WrittenManifest[]> {
  return [...(await readObjects(stack.s3Client, stack.bucket, `${prefix}/manifests/`)).values()].map(
    (text) => JSON.parse(text) as WrittenManifest,
  );
}

const byId = (a: { id?: unknown }, b: { id?: unknown }) => String(a.id).localeCompare(String(b.id));
const withoutSnapshotFields = (records: Record<string, unknown>[]) =>
  records.map(({ snapshot_id: _i, snapshot_at: _a, run_id: _r, observed_at: _o, ...session }) => session);

/** Each of `users` reached the fake API exactly this many times. */
function expectAskedTimes(users: readonly string[], times: number) {
  const asked = users.map((id) => stack.api.stats.byUser[id] ?? 0);
  expect(asked.filter((n) => n !== times)).toEqual([]);
}

/** Failed, with the failed manifest only: no session line visible, no upload left open. */
async function expectNothingCommitted(run: Run, execution: LocalExecution, errorType: string) {
  expect(execution).toMatchObject({ status: 'FAILED', error: { Error: errorType } });
  expect(execution.calls.Abort).toBe(1);
  expect(await readVisibleSessions(stack.s3Client, stack.bucket, run.prefix)).toEqual([]);
  const written = await manifests(run.prefix);
  expect(written).toEqual([
    expect.objectContaining({ status: 'failed', error: expect.objectContaining({ type: errorType }) }),
  ]);
  expect((await stack.s3.openUploads()).filter((u) => u.key.startsWith(`${run.prefix}/`))).toEqual([]);
  return written[0] as WrittenManifest;
}

/** Every line the process printed while `fn` ran (Powertools logs and EMF), parsed; rethrows. */
async function printedWhile<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; lines: Record<string, unknown>[] }> {
  const { result, error, output } = await captureStdout(fn);
  if (error !== undefined) throw error;
  return { result: result as T, lines: jsonLines(output) };
}

describe('users deleted since the table was read', () => {
  it('a run where 1% of users answer 404 user_not_found commits every other session exactly and counts them', async () => {
    const deleted = ids.filter((id) => isDeletedUser(id, DELETED_FRACTION));
    const kept = ids.filter((id) => !isDeletedUser(id, DELETED_FRACTION));
    expect(deleted.length).toBeGreaterThan(10);
    stack.api.configure({ deletedUserFraction: DELETED_FRACTION });
    const run = setUp({ LOG_LEVEL: 'INFO', METRICS_ENABLED: 'true', EXPORT_PROGRESS_INTERVAL_MS: '100' });

    const { result: execution, lines } = await printedWhile(() =>
      run.sfn.startExecution(SNAPSHOT, SCHEDULED),
    );

    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    // More than one Work per segment: the count is summed across steps, not taken from one.
    expect(execution.calls.Work).toBeGreaterThan(4);
    const visible = await readVisibleSessions(stack.s3Client, stack.bucket, run.prefix);
    const truth = kept.flatMap((id) => sessionsFor(id, BASE_TIME));
    expect(visible).toHaveLength(truth.length);
    expect(withoutSnapshotFields(visible).sort(byId)).toEqual([...truth].sort(byId));
    const [manifest] = await manifests(run.prefix);
    expect(manifest).toMatchObject({ status: 'committed', failed_users: [] });
    expect(manifest?.counts).toMatchObject({
      users_scanned: USERS,
      users_processed: USERS,
      users_not_found: deleted.length,
      users_failed: 0,
      requests: USERS,
      retries: 0,
    });
    expect(execution.output).toMatchObject({ counts: { users_not_found: deleted.length } });
    // Asked once each and never again; nothing of theirs written anywhere.
    expectAskedTimes(deleted, 1);
    expectAskedTimes(kept, 1);
    expect(stack.api.stats.byStatus[404]).toBe(deleted.length);
    expect(await readRecords(stack.s3Client, stack.bucket, `${run.prefix}/failed-users/`)).toEqual([]);
    expect(await readRecords(stack.s3Client, stack.bucket, `${run.prefix}/rejects/`)).toEqual([]);
    // The metric and the progress line carry the count too.
    const emf = lines.filter((line) => '_aws' in line && 'UsersProcessed' in line);
    expect(emf).toEqual([expect.objectContaining({ UsersNotFound: deleted.length, UsersFailed: 0 })]);
    const progress = lines.filter((line) => line.message === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    const notFoundSeen = progress.map((line) => line.usersNotFound);
    expect(notFoundSeen.every((n) => typeof n === 'number' && n <= deleted.length)).toBe(true);
    expect(Math.max(...(notFoundSeen as number[]))).toBeGreaterThan(0);
  }, 300_000);

  it('an audit of 3 users, one of them deleted, commits the other two even under a 1% tolerance', async () => {
    const [gone, ...others] = ids.slice(0, 3) as [string, string, string];
    stack.api.configure({ deletedUsers: [gone] });
    // 1 of 3 is 33%: a pure percentage would fail this audit; the 10 users always allowed keep it.
    const run = setUp({ EXPORT_NOT_FOUND_USERS_TOLERANCE: '1%' });

    const execution = await run.sfn.startExecution('audit-deleted-1', {
      reason: 'an audit that names a deleted user',
      userIds: [gone, ...others],
    });

    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    const visible = await readVisibleSessions(stack.s3Client, stack.bucket, run.prefix);
    expect(withoutSnapshotFields(visible).sort(byId)).toEqual(
      others.flatMap((id) => sessionsFor(id, BASE_TIME)).sort(byId),
    );
    expect((await manifests(run.prefix))[0]?.counts).toMatchObject({
      users_processed: 3,
      users_not_found: 1,
      users_failed: 0,
    });
    expectAskedTimes([gone, ...others], 1);
  }, 120_000);
});

describe('a 404 that is not the API saying the user is gone', () => {
  it('a run where every user answers another 404 (a wrong base path: an HTML page) fails and commits nothing', async () => {
    // A lenient failed-users tolerance, so the run is judged whole at Commit, with files written.
    const run = setUp({ MOONKEY_API_URL: `${stack.api.url}/api`, EXPORT_FAILED_USERS_TOLERANCE: '10%' });

    const execution = await run.sfn.startExecution(SNAPSHOT, SCHEDULED);

    const manifest = await expectNothingCommitted(run, execution, 'TooManyFailedUsersError');
    // A failed manifest written after Commit holds no counts of its own; the error says them.
    expect(manifest.error).toMatchObject({
      step: 'Commit',
      message: `${USERS} of ${USERS} users failed, more than EXPORT_FAILED_USERS_TOLERANCE=10% allows; the snapshot was not committed`,
    });
    // Each user was asked once: a 404 is never retried, whatever its body.
    expect(stack.api.stats.requests).toBe(USERS);
    expect(stack.api.stats.byStatus).toEqual({ 404: USERS });
    // The failed-users files were open uploads, and Abort aborted them.
    expect(run.uploads.size).toBeGreaterThan(0);
  }, 300_000);

  it('another error_type in a JSON 404 fails that user, and with the default tolerance the run', async () => {
    const victim = ids[1_234] as string;
    stack.api.configure({
      faults: {
        [victim]: [
          {
            kind: 'status',
            status: 404,
            body: '{"status_code":404,"error_type":"route_not_found","message":"?"}',
          },
        ],
      },
    });
    const run = setUp();

    const execution = await run.sfn.startExecution(SNAPSHOT, SCHEDULED);

    const manifest = await expectNothingCommitted(run, execution, 'TooManyFailedUsersError');
    expect(manifest.counts).toMatchObject({ users_failed: 1, users_not_found: 0 });
    expect(manifest.failed_users).toEqual([
      { user_id: victim, error_type: 'ApiRequestError', error: expect.stringContaining('route_not_found') },
    ]);
    expect(stack.api.stats.byUser[victim]).toBe(1);
  }, 300_000);
});

describe('more users not found than EXPORT_NOT_FOUND_USERS_TOLERANCE allows', () => {
  it('a run above a percentage tolerance fails at Commit with TooManyUsersNotFoundError, nothing committed', async () => {
    const deleted = ids.filter((id) => isDeletedUser(id, DELETED_FRACTION));
    stack.api.configure({ deletedUserFraction: DELETED_FRACTION });
    // ~30 of 3,000 users deleted against 0.5% (15): above it, and above the 10 always allowed.
    const run = setUp({ EXPORT_NOT_FOUND_USERS_TOLERANCE: '0.5%' });

    const execution = await run.sfn.startExecution(SNAPSHOT, SCHEDULED);

    const manifest = await expectNothingCommitted(run, execution, 'TooManyUsersNotFoundError');
    expect(manifest.error?.step).toBe('Commit');
    expect(manifest.error?.message).toMatch(
      new RegExp(
        `^${deleted.length} of ${USERS} users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=0\\.5% \\(and more than the 10 always allowed\\) allows; the snapshot was not committed`,
      ),
    );
    expectAskedTimes(deleted, 1);
    // The other users' sessions were written, as open uploads that Abort aborted.
    expect(run.uploads.size).toBeGreaterThan(0);
  }, 300_000);

  it("every user not found, as another app's key gives, fails with the default tolerance and says what to check", async () => {
    stack.api.configure({ deletedUserFraction: 1 });
    const run = setUp();

    const execution = await run.sfn.startExecution(SNAPSHOT, SCHEDULED);

    const manifest = await expectNothingCommitted(run, execution, 'TooManyUsersNotFoundError');
    expect(manifest.error?.message).toMatch(
      new RegExp(`^${USERS} of ${USERS} users answered 404 user_not_found`),
    );
    expect(stack.api.stats.requests).toBe(USERS);
    for (const setting of [
      'MOONKEY_API_URL',
      'MOONKEY_API_KEY_SECRET_ARN',
      'EXPORT_NOT_FOUND_USERS_TOLERANCE=50%',
    ])
      expect(manifest.error?.message).toContain(setting);
  }, 300_000);

  it('a count tolerance stops each Work as soon as its own count passes it, before the run is done', async () => {
    stack.api.configure({ deletedUserFraction: DELETED_FRACTION });
    const run = setUp({ EXPORT_NOT_FOUND_USERS_TOLERANCE: '2' });

    const execution = await run.sfn.startExecution(SNAPSHOT, SCHEDULED);

    const manifest = await expectNothingCommitted(run, execution, 'TooManyUsersNotFoundError');
    expect(manifest.error?.step).toBe('Work');
    expect(manifest.error?.message).toMatch(
      /^3 users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=2 allows;/,
    );
    expect(stack.api.stats.requests).toBeLessThan(USERS);
  }, 300_000);
});
