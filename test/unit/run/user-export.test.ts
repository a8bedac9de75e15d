/**
 * UserExport, one user start to end: the failed-user path over real NDJSON writers on the
 * in-memory S3 (what each failed user leaves in the failed-users file and in the step's list),
 * then, over writers that keep what they are handed, the count tolerances, the capped log lines,
 * the errors that stop the run, the abort, the rate cap, the slots and adaptive concurrency.
 */
import { gunzipSync } from 'node:zlib';
import pLimit, { type LimitFunction } from 'p-limit';
import { parseConfig } from '../../../lambda/core/config';
import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  ApiThrottledError,
  SnapshotWriteError,
  TooManyFailedUsersError,
  TooManyUsersNotFoundError,
} from '../../../lambda/core/errors';
import { AdaptiveConcurrency } from '../../../lambda/flow/adaptive-concurrency';
import { type RateLimiter, unlimited } from '../../../lambda/flow/rate-limiter';
import { USER_NOT_FOUND } from '../../../lambda/moonkey/classify-response';
import type { FetchSessions } from '../../../lambda/moonkey/sessions-client';
import { Admission } from '../../../lambda/run/admission';
import { RAW_ONLY } from '../../../lambda/run/pii-copies';
import { UserExport } from '../../../lambda/run/user-export';
import { completeFiles } from '../../../lambda/snapshot/commit';
import { emptyCounts, type FailedUser, MANIFEST_FAILED_USERS_LIMIT } from '../../../lambda/snapshot/manifest';
import { NdjsonWriter } from '../../../lambda/snapshot/ndjson-writer';
import { FILE_KINDS, type FileKind } from '../../../lambda/snapshot/snapshot-keys';
import { sessionsFor } from '../../../local/fake-sessions';
import { captureLogger } from '../../helpers/capture-logger';
import { gate, until } from '../../helpers/gate';
import { moonkeyAnswer } from '../../helpers/memory-context';
import { MemoryS3 } from '../../helpers/memory-s3';

const RUN = {
  snapshotId: 'scheduled-20261126T020000Z',
  runId: 'r20261126T020000000Z-abcdef',
  snapshotAt: 1_790_000_000,
};

/** `users` users whose every call fails with a plain error (not retried: one attempt), through one UserExport. */
async function exportFailing(users: number) {
  const s3 = new MemoryS3();
  const config = parseConfig({
    USERS_TABLE_NAME: 'users',
    EXPORT_BUCKET_NAME: 'exports',
    MOONKEY_API_KEY: 'sk_test_x',
    EXPORT_MAX_ATTEMPTS: '1',
    EXPORT_FAILED_USERS_TOLERANCE: '100%',
  });
  const writers = Object.fromEntries(
    FILE_KINDS.map((kind) => [
      kind,
      new NdjsonWriter({
        s3: s3.client,
        bucket: 'b',
        keyForFile: (i) => `p/${kind}/${i}.ndjson.gz`,
        targetFileBytes: 1024 * 1024,
        partBytes: 64 * 1024,
        gzipLevel: 1,
      }),
    ]),
  ) as Record<FileKind, NdjsonWriter>;
  const failedUsers: FailedUser[] = [];
  const counts = emptyCounts();
  const admission = new Admission(10_000, () => 8);
  const runFailures: Error[] = [];
  const userExport = new UserExport({
    config,
    run: RUN,
    fetchSessions: async (userId) => {
      throw Object.assign(new Error(`MoonKey answered 500 for ${userId}`), { name: 'ApiServerError' });
    },
    copies: RAW_ONLY,
    apiCalls: pLimit(8),
    rateLimiter: unlimited,
    aimd: undefined,
    admission,
    writers,
    counts,
    failedUsers,
    logger: captureLogger(),
    signal: new AbortController().signal,
    failRun: (error) => runFailures.push(error),
  });

  for (let i = 0; i < users; i++) userExport.start(`u-${i}`);
  await admission.drained();
  const files = (await Promise.all(FILE_KINDS.map((kind) => writers[kind].close()))).flat();
  await completeFiles(s3.client, 'b', files);
  const lines = files
    .filter((f) => f.key.startsWith('p/failed-users/'))
    .flatMap((f) =>
      gunzipSync(s3.bytesOf(f.key) as Buffer)
        .toString()
        .split('\n')
        .filter(Boolean),
    )
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { counts, failedUsers, lines, runFailures };
}

describe('UserExport, a user that fails', () => {
  it('writes one failed-users line per failed user, each naming the snapshot and the run', async () => {
    const { counts, lines, runFailures } = await exportFailing(3);

    expect(runFailures).toEqual([]);
    expect(counts).toMatchObject({ users_failed: 3, users_processed: 3, requests: 3 });
    expect(lines.sort((a, b) => String(a.user_id).localeCompare(String(b.user_id)))).toEqual(
      [0, 1, 2].map((i) => ({
        snapshot_id: RUN.snapshotId,
        run_id: RUN.runId,
        user_id: `u-${i}`,
        error: `MoonKey answered 500 for u-${i}`,
        error_type: 'ApiServerError',
      })),
    );
  });

  it(`lists at most ${MANIFEST_FAILED_USERS_LIMIT} failed users for the manifest, while the file has every one, each with run_id`, async () => {
    const { counts, failedUsers, lines } = await exportFailing(MANIFEST_FAILED_USERS_LIMIT + 1);

    expect(counts.users_failed).toBe(MANIFEST_FAILED_USERS_LIMIT + 1);
    expect(failedUsers).toHaveLength(MANIFEST_FAILED_USERS_LIMIT);
    expect(lines).toHaveLength(MANIFEST_FAILED_USERS_LIMIT + 1);
    expect(lines.every((line) => line.run_id === RUN.runId && line.snapshot_id === RUN.snapshotId)).toBe(
      true,
    );
  });
});

/** What one UserExport did: its counts, what each writer was handed, what it logged and failed. */
interface Harness {
  readonly userExport: UserExport;
  readonly counts: ReturnType<typeof emptyCounts>;
  readonly failedUsers: FailedUser[];
  readonly written: Record<FileKind, string[]>;
  readonly logger: ReturnType<typeof captureLogger>;
  readonly runFailures: Error[];
  /** Users onUserDone was told about, in order. */
  readonly done: string[];
  readonly admission: Admission;
  readonly abort: AbortController;
  /** Starts `users` one after the other, each finished before the next starts. */
  inTurn(users: readonly string[]): Promise<void>;
}

function harness(
  parts: {
    env?: Record<string, string>;
    fetchSessions?: FetchSessions;
    apiCalls?: LimitFunction;
    rateLimiter?: RateLimiter;
    aimd?: AdaptiveConcurrency;
    /** A writer of this kind fails each write with this error. */
    failingWriter?: { kind: FileKind; error: Error };
  } = {},
): Harness {
  const written = Object.fromEntries(FILE_KINDS.map((kind) => [kind, [] as string[]])) as Record<
    FileKind,
    string[]
  >;
  const writer = (kind: FileKind) =>
    ({
      write: async (lines: string) => {
        if (parts.failingWriter?.kind === kind) throw parts.failingWriter.error;
        written[kind].push(lines);
      },
    }) as unknown as NdjsonWriter;
  const apiCalls = parts.apiCalls ?? pLimit(4);
  const admission = new Admission(10_000, () => apiCalls.concurrency);
  const counts = emptyCounts();
  const failedUsers: FailedUser[] = [];
  const logger = captureLogger();
  const runFailures: Error[] = [];
  const done: string[] = [];
  const abort = new AbortController();
  const userExport = new UserExport({
    config: parseConfig({
      USERS_TABLE_NAME: 'users',
      EXPORT_BUCKET_NAME: 'exports',
      MOONKEY_API_KEY: 'sk_test_x',
      // Backoff of at most a millisecond or two: retries cost no test time.
      EXPORT_RETRY_BASE_DELAY_MS: '1',
      EXPORT_RETRY_MAX_DELAY_MS: '1',
      ...parts.env,
    }),
    run: RUN,
    fetchSessions: parts.fetchSessions ?? (async () => moonkeyAnswer({ sessions: [] })),
    copies: RAW_ONLY,
    apiCalls,
    rateLimiter: parts.rateLimiter ?? unlimited,
    aimd: parts.aimd,
    admission,
    writers: Object.fromEntries(FILE_KINDS.map((kind) => [kind, writer(kind)])) as Record<
      FileKind,
      NdjsonWriter
    >,
    counts,
    failedUsers,
    logger,
    signal: abort.signal,
    failRun: (error) => runFailures.push(error),
    onUserDone: (userId) => done.push(userId),
  });
  return {
    userExport,
    counts,
    failedUsers,
    written,
    logger,
    runFailures,
    done,
    admission,
    abort,
    async inTurn(users) {
      for (const user of users) {
        userExport.start(user);
        await admission.drained();
      }
    },
  };
}

const users = (n: number) => Array.from({ length: n }, (_, i) => `u-${i}`);
const failing: FetchSessions = async (userId) => {
  throw new ApiRequestError(400, `HTTP 400 for ${userId}`);
};
const notFound: FetchSessions = async () => USER_NOT_FOUND;
const logged = (h: Harness, level: string, message: string) =>
  h.logger.lines
    .map((line) => JSON.parse(line) as { level: string; message: string; extra: Record<string, unknown>[] })
    .filter((line) => line.level === level && line.message === message);
/** A call that ends only when the run's signal aborts it, as the real client's does. */
const untilAborted: FetchSessions = (_userId, signal) =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

describe('UserExport: a count tolerance of failed users', () => {
  it('fails the run once more users failed than EXPORT_FAILED_USERS_TOLERANCE=2 allows, and not at 2', async () => {
    const h = harness({ env: { EXPORT_FAILED_USERS_TOLERANCE: '2' }, fetchSessions: failing });

    await h.inTurn(users(2));
    expect(h.runFailures).toEqual([]);
    expect(h.written['failed-users']).toHaveLength(2);

    await h.inTurn(['u-2']);
    expect(h.runFailures).toHaveLength(1);
    expect(h.runFailures[0]).toBeInstanceOf(TooManyFailedUsersError);
    expect(h.runFailures[0]?.message).toBe(
      '3 users failed, more than EXPORT_FAILED_USERS_TOLERANCE=2 allows; the snapshot was not committed',
    );
    // Counted and listed for the failed manifest; no line goes to a file the run will not commit.
    expect(h.counts).toMatchObject({ users_failed: 3, users_processed: 3 });
    expect(h.failedUsers.map((f) => f.user_id)).toEqual(['u-0', 'u-1', 'u-2']);
    expect(h.written['failed-users']).toHaveLength(2);
  });

  it('leaves a percentage to Commit: a step whose every user failed fails nothing itself', async () => {
    const h = harness({ env: { EXPORT_FAILED_USERS_TOLERANCE: '1%' }, fetchSessions: failing });

    await h.inTurn(users(5));

    expect(h.runFailures).toEqual([]);
    expect(h.counts.users_failed).toBe(5);
    expect(h.written['failed-users']).toHaveLength(5);
  });
});

describe('UserExport: a count tolerance of users not found', () => {
  it('fails the run once more users were not found than EXPORT_NOT_FOUND_USERS_TOLERANCE=2 allows, and not at 2', async () => {
    const h = harness({ env: { EXPORT_NOT_FOUND_USERS_TOLERANCE: '2' }, fetchSessions: notFound });

    await h.inTurn(users(2));
    expect(h.runFailures).toEqual([]);

    await h.inTurn(['u-2']);
    expect(h.runFailures).toHaveLength(1);
    expect(h.runFailures[0]).toBeInstanceOf(TooManyUsersNotFoundError);
    expect(h.runFailures[0]?.message).toMatch(
      /^3 users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=2 allows/,
    );
    expect(h.counts).toMatchObject({ users_not_found: 3, users_processed: 3, users_failed: 0 });
  });

  it('leaves a percentage to Commit, however many users were not found', async () => {
    const h = harness({ env: { EXPORT_NOT_FOUND_USERS_TOLERANCE: '50%' }, fetchSessions: notFound });

    // More users than the percentage's value, so it is not read as a count.
    await h.inTurn(users(60));

    expect(h.runFailures).toEqual([]);
    expect(h.counts.users_not_found).toBe(60);
  });
});

describe('UserExport: its log lines, capped at 20 per Work', () => {
  it('warns about the first 20 failed users only, each naming the user and the error', async () => {
    const h = harness({ env: { EXPORT_FAILED_USERS_TOLERANCE: '100%' }, fetchSessions: failing });

    await h.inTurn(users(25));

    const warnings = logged(h, 'WARN', 'user failed');
    expect(warnings.map((w) => w.extra[0])).toEqual(
      users(20).map((user) => ({
        user_id: user,
        error: `HTTP 400 for ${user}`,
        error_type: 'ApiRequestError',
      })),
    );
    expect(h.written['failed-users']).toHaveLength(25);
  });

  it('logs the first 20 users not found only, each by id', async () => {
    const h = harness({ fetchSessions: notFound });

    await h.inTurn(users(25));

    const infos = logged(h, 'INFO', 'user not found at MoonKey; counted, nothing written');
    expect(infos.map((i) => i.extra[0])).toEqual(users(20).map((user) => ({ user_id: user })));
    expect(h.counts.users_not_found).toBe(25);
  });
});

describe('UserExport: errors that stop the run', () => {
  it('hands a rejected API key to failRun at once: not a failed user, no failed-users line', async () => {
    const rejected = new ApiAuthError(401);
    let calls = 0;
    const h = harness({
      env: { EXPORT_FAILED_USERS_TOLERANCE: '100%' },
      fetchSessions: async () => {
        calls++;
        throw rejected;
      },
    });

    await h.inTurn(['u-0']);

    expect(h.runFailures).toEqual([rejected]);
    expect(calls).toBe(1);
    expect(h.counts).toMatchObject({ users_failed: 0, retries: 0, requests: 1 });
    expect(h.failedUsers).toEqual([]);
    expect(h.written['failed-users']).toEqual([]);
  });

  it('hands a failed write of sessions to failRun: the user is not recorded as failed', async () => {
    const broken = new SnapshotWriteError('UploadPart failed');
    const h = harness({
      env: { EXPORT_FAILED_USERS_TOLERANCE: '100%' },
      fetchSessions: async () => moonkeyAnswer({ sessions: sessionsFor('u-0', 1_764_115_200) as unknown[] }),
      failingWriter: { kind: 'sessions', error: broken },
    });

    await h.inTurn(['u-0']);

    expect(h.runFailures).toEqual([broken]);
    expect(h.counts.users_failed).toBe(0);
    expect(h.failedUsers).toEqual([]);
    expect(h.written['failed-users']).toEqual([]);
  });

  it('hands a failed write of a failed-users line to failRun', async () => {
    const broken = new Error('the failed-users file could not be written');
    const h = harness({
      env: { EXPORT_FAILED_USERS_TOLERANCE: '100%' },
      fetchSessions: failing,
      failingWriter: { kind: 'failed-users', error: broken },
    });

    await h.inTurn(['u-0']);

    expect(h.runFailures).toEqual([broken]);
    expect(h.counts.users_failed).toBe(1);
  });
});

describe('UserExport: the abort', () => {
  it('starts nothing for a user once the Work was aborted: not counted, not called, not done', async () => {
    const fetched: string[] = [];
    const h = harness({
      fetchSessions: async (userId) => {
        fetched.push(userId);
        return moonkeyAnswer({ sessions: [] });
      },
    });
    h.abort.abort(new Error('hard stop'));

    await h.inTurn(['u-0']);

    expect(fetched).toEqual([]);
    expect(h.counts).toEqual(emptyCounts());
    expect(h.done).toEqual([]);
    expect(h.runFailures).toEqual([]);
  });

  it('abandons a user whose call the abort ended: nothing counted, failed or written, so the next Work redoes it', async () => {
    const h = harness({ env: { EXPORT_FAILED_USERS_TOLERANCE: '0' }, fetchSessions: untilAborted });

    h.userExport.start('u-0');
    await until(() => h.counts.requests === 1, 'the call started');
    h.abort.abort(new Error('hard stop'));
    await h.admission.drained();

    expect(h.counts).toMatchObject({ users_processed: 0, users_failed: 0, retries: 0 });
    expect(h.failedUsers).toEqual([]);
    expect(h.done).toEqual([]);
    expect(h.runFailures).toEqual([]);
    expect(Object.values(h.written).flat()).toEqual([]);
  });

  it('does not call for a user still waiting for a slot when the abort comes', async () => {
    const held = gate();
    const fetched: string[] = [];
    const h = harness({
      apiCalls: pLimit(1),
      fetchSessions: async (userId) => {
        fetched.push(userId);
        await held.promise;
        return moonkeyAnswer({ sessions: [] });
      },
    });

    h.userExport.start('u-0');
    h.userExport.start('u-1');
    await until(() => fetched.length === 1, 'the first call started');
    h.abort.abort(new Error('hard stop'));
    held.open();
    await h.admission.drained();

    expect(fetched).toEqual(['u-0']);
    expect(h.counts.requests).toBe(1);
    // The call that was already answered is written and done; the one that never ran is not.
    expect(h.done).toEqual(['u-0']);
  });

  it('counts a user MoonKey knows with no sessions as processed, not as a user with sessions', async () => {
    const h = harness();

    await h.inTurn(['quiet']);

    expect(h.counts).toMatchObject({ users_processed: 1, users_with_sessions: 0, sessions_exported: 0 });
    expect(h.done).toEqual(['quiet']);
  });

  it('tells onUserDone of every user accounted for: with sessions, not found, or failed', async () => {
    const h = harness({
      env: { EXPORT_FAILED_USERS_TOLERANCE: '100%' },
      fetchSessions: async (userId) => {
        if (userId === 'gone') return USER_NOT_FOUND;
        if (userId === 'broken') throw new ApiRequestError(400, 'HTTP 400');
        return moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) as unknown[] });
      },
    });

    await h.inTurn(['ok', 'gone', 'broken']);

    expect(h.done).toEqual(['ok', 'gone', 'broken']);
  });
});

describe('UserExport: the rate cap and the slots', () => {
  it('waits for the rate limiter, with the Work’s signal, before each request', async () => {
    const allowed = gate();
    const acquiredWith: AbortSignal[] = [];
    const fetched: string[] = [];
    const h = harness({
      rateLimiter: {
        acquire: (signal) => {
          acquiredWith.push(signal);
          return allowed.promise;
        },
      },
      fetchSessions: async (userId) => {
        fetched.push(userId);
        return moonkeyAnswer({ sessions: [] });
      },
    });

    h.userExport.start('u-0');
    await until(() => acquiredWith.length === 1, 'the limiter was asked');
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(fetched).toEqual([]);
    expect(h.counts.requests).toBe(0);

    allowed.open();
    await h.admission.drained();
    expect(fetched).toEqual(['u-0']);
    expect(h.counts.requests).toBe(1);
    expect(acquiredWith).toEqual([h.abort.signal]);
  });

  it('counts each attempt that wants a slot against admission until it ends', async () => {
    const held = gate();
    let calls = 0;
    const h = harness({
      apiCalls: pLimit(1),
      fetchSessions: async () => {
        calls++;
        await held.promise;
        return moonkeyAnswer({ sessions: [] });
      },
    });

    // One slot plus FEED_AHEAD attempts wanting one fill admission, though only one calls.
    for (const user of users(1 + Admission.FEED_AHEAD)) h.userExport.start(user);
    await until(() => calls === 1, 'the first call started');
    expect(h.admission.hasRoom()).toBe(false);

    held.open();
    await h.admission.drained();
    expect(calls).toBe(1 + Admission.FEED_AHEAD);
    expect(h.admission.hasRoom()).toBe(true);
  });

  it('gives up on a user after EXPORT_MAX_ATTEMPTS=3 retryable failures and records it as failed', async () => {
    let calls = 0;
    const h = harness({
      env: { EXPORT_MAX_ATTEMPTS: '3', EXPORT_FAILED_USERS_TOLERANCE: '100%' },
      fetchSessions: async () => {
        calls++;
        throw new ApiRetryableError('HTTP 503', undefined);
      },
    });

    await h.inTurn(['u-0']);

    expect(calls).toBe(3);
    expect(h.counts).toMatchObject({ retries: 2, requests: 3, users_failed: 1 });
    expect(h.failedUsers).toEqual([
      expect.objectContaining({ user_id: 'u-0', error_type: 'RetriesExhaustedError' }),
    ]);
  });

  it('retries a throttled call, counting the retry and both requests', async () => {
    const seen = new Set<string>();
    const h = harness({
      fetchSessions: async (userId) => {
        if (!seen.has(userId)) {
          seen.add(userId);
          throw new ApiThrottledError(undefined);
        }
        return moonkeyAnswer({ sessions: [] });
      },
    });

    await h.inTurn(['u-0']);

    expect(h.counts).toMatchObject({ retries: 1, requests: 2, users_processed: 1, users_failed: 0 });
    expect(h.runFailures).toEqual([]);
  });
});

describe('UserExport: adaptive concurrency', () => {
  /** A MoonKey whose calls are held until `release()`, counting those in flight. */
  function heldMoonKey(first: (userId: string) => Error | undefined) {
    let inFlight = 0;
    let most = 0;
    let held = gate();
    let holding = true;
    const tried = new Set<string>();
    const fetchSessions: FetchSessions = async (userId) => {
      if (!tried.has(userId)) {
        tried.add(userId);
        const error = first(userId);
        if (error) throw error;
      }
      inFlight++;
      most = Math.max(most, inFlight);
      if (holding) await held.promise;
      inFlight--;
      return moonkeyAnswer({ sessions: [] });
    };
    return {
      fetchSessions,
      inFlight: () => inFlight,
      most: () => most,
      /** Answers the calls held now; later ones are held again. */
      release: () => {
        held.open();
        held = gate();
      },
      /** Answers every call, held or to come. */
      releaseAll: () => {
        holding = false;
        held.open();
      },
    };
  }
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it('puts fewer calls in flight after a 429, and goes back up as calls succeed', async () => {
    const moonkey = heldMoonKey((userId) =>
      userId === 'throttled' ? new ApiThrottledError(undefined) : undefined,
    );
    const apiCalls = pLimit(4);
    const aimd = new AdaptiveConcurrency({ max: 4 });
    const h = harness({ apiCalls, aimd, fetchSessions: moonkey.fetchSessions });

    h.userExport.start('throttled');
    await until(() => moonkey.inFlight() === 1, 'the retry is in flight');
    moonkey.release();
    await h.admission.drained();
    // 4 × 0.8 rounded down.
    expect(apiCalls.concurrency).toBe(3);

    for (const user of users(8)) h.userExport.start(user);
    await until(() => moonkey.inFlight() === 3, 'three calls in flight');
    await settle();
    expect(moonkey.inFlight()).toBe(3);

    // Each success widens the window by 1/window: three successes (the retry's and two of
    // these) make four slots again.
    moonkey.release();
    await until(() => h.counts.users_processed === 4, 'the three held calls answered');
    await until(() => moonkey.inFlight() === 4, 'four calls in flight');
    await settle();
    expect(moonkey.inFlight()).toBe(4);
    expect(apiCalls.concurrency).toBe(4);
    moonkey.releaseAll();
    await h.admission.drained();
    expect(h.counts.users_processed).toBe(9);
    expect(moonkey.most()).toBe(4);
  });

  it('keeps its calls in flight through a 5xx: only a 429 speaks of the rate', async () => {
    const moonkey = heldMoonKey((userId) =>
      userId === 'flaky' ? new ApiRetryableError('HTTP 503', undefined) : undefined,
    );
    const apiCalls = pLimit(4);
    const h = harness({
      apiCalls,
      aimd: new AdaptiveConcurrency({ max: 4 }),
      fetchSessions: moonkey.fetchSessions,
    });

    h.userExport.start('flaky');
    await until(() => moonkey.inFlight() === 1, 'the retry is in flight');
    moonkey.release();
    await h.admission.drained();

    expect(h.counts.retries).toBe(1);
    expect(apiCalls.concurrency).toBe(4);
  });
});
