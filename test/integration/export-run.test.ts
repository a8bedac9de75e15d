/**
 * The job against real parts: DynamoDB Local (the AWS jar), the fauxqs S3 server and the fake
 * MoonKey API, through the real AWS SDK and real HTTP, each run through the deployed state
 * machine's definition on the local runner with the real handler. One stack for the file; each
 * test uses its own table and/or prefix so tests cannot see each other's output.
 */

import type { Progress } from '../../lambda/run/work';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { freePort } from '../../local/child-server';
import { INVALID_ITEMS } from '../../local/fake-moonkey-api';
import { sessionsFor, userIdFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, putUserItems, seedUsers } from '../../local/seed-users';
import type { CapturedLogger } from '../helpers/capture-logger';
import { exportRunner, FAST_RETRIES, withManifest } from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readRecords, readVisibleSessions } from '../helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;
const ODD_IDS = ['user with space', 'ünïcødé/ñ?&=#+%', 'a+b=c&d', 'user_24wFP9pDa9YiMJLun94iKykoZs2'];
const USERS_TABLE = 'users-main';
const USER_COUNT = 300;

let stack: LocalStack;
let allUsers: string[];

const scheduled = (time = '2026-11-26T02:00:00Z') => scheduledEvent(time);
const audit = (reason: string, userIds: string[]) => ({ reason, userIds });

const runInFreshPrefix = exportRunner(() => stack, 't', {
  USERS_TABLE_NAME: USERS_TABLE,
  EXPORT_CONCURRENCY: '16',
  ...FAST_RETRIES,
});

/** Runs one export that writes its manifest (every run here but the dry run), into a fresh prefix unless `env` names one. */
const run = async (trigger: unknown, env: Record<string, string> = {}) =>
  withManifest(await runInFreshPrefix(trigger, env));

/** The progress lines every Work logs each EXPORT_PROGRESS_INTERVAL_MS. */
const progressOf = (logger: CapturedLogger): Progress[] =>
  logger.lines
    .map((line) => JSON.parse(line) as { message: string; extra: Progress[] })
    .filter((entry) => entry.message === 'progress')
    .map((entry) => entry.extra[0] as Progress);

const truthFor = (ids: readonly string[]) => ids.flatMap((id) => sessionsFor(id, BASE_TIME));
const byId = (a: { id?: unknown }, b: { id?: unknown }) => String(a.id).localeCompare(String(b.id));
const withoutSnapshotFields = (records: Record<string, unknown>[]) =>
  records.map(({ snapshot_id: _i, snapshot_at: _a, run_id: _r, observed_at: _o, ...session }) => session);

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, USERS_TABLE);
  const seeded = await seedUsers(stack.dynamodbClient, USERS_TABLE, USER_COUNT);
  await putUserItems(
    stack.dynamodbClient,
    USERS_TABLE,
    ODD_IDS.map((id) => ({ Item: { user_id: { S: id } } })),
  );
  allUsers = [...seeded, ...ODD_IDS];
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => stack.api.reset());

describe('a scheduled snapshot', () => {
  it('exports every session of every user exactly once, as the API returned it, and commits', async () => {
    const started = Date.now();
    const result = await run(scheduled());

    expect(result.error).toBeUndefined();
    expect(result.manifest.status).toBe('committed');
    // The run Plan fixed, named after the slot.
    const runId = result.run?.runId;
    expect(result.run?.snapshotId).toBe('scheduled-20261126T020000Z');
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    const truth = truthFor(allUsers);
    expect(truth.length).toBeGreaterThan(USER_COUNT / 2);
    expect(withoutSnapshotFields(records).sort(byId)).toEqual([...truth].sort(byId));
    for (const record of records) {
      expect(record.snapshot_id).toBe('scheduled-20261126T020000Z');
      expect(record.snapshot_at).toBe(Date.parse('2026-11-26T02:00:00Z') / 1000);
      expect(record.run_id).toBe(runId);
      // Read during the run: between its start and now, in whole seconds.
      expect(record.observed_at).toBeGreaterThanOrEqual(Math.floor(started / 1000));
      expect(record.observed_at).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    }
    expect(result.manifest.run_id).toBe(runId);
    expect(result.manifest.counts).toMatchObject({
      users_scanned: allUsers.length,
      users_processed: allUsers.length,
      users_with_sessions: allUsers.filter((id) => sessionsFor(id, BASE_TIME).length > 0).length,
      sessions_exported: truth.length,
      users_failed: 0,
      items_rejected: 0,
      requests: allUsers.length,
    });
  });

  it('lays files out for Athena: run-unique sessions under dt=<UTC date of the slot>, one manifest per run, no run state left', async () => {
    const result = await run(scheduled('2026-11-25T23:30:00-05:00'));

    const runId = result.manifest.run_id;
    const keys = await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/`);
    const manifestKey = `${result.prefix}/manifests/dt=2026-11-26/scheduled-20261126T043000Z.${runId}.json`;
    // The file is named by its segment, step, invocation (the Work's request id) and index.
    const sessionsKey = new RegExp(
      `^${result.prefix}/sessions/dt=2026-11-26/scheduled-20261126T043000Z\\.${runId}\\.s000-00000-[0-9a-f]{12}-00000\\.ndjson\\.gz$`,
    );
    // Sorted: manifests/ before sessions/.
    expect(keys.sort()).toEqual([manifestKey, expect.stringMatching(sessionsKey)]);
    expect(result.manifestKey).toBe(manifestKey);
    const manifestText = (await readObjects(stack.s3Client, stack.bucket, manifestKey)).get(manifestKey);
    expect(manifestText?.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(manifestText ?? '{}')).toMatchObject({
      snapshot_id: 'scheduled-20261126T043000Z',
      run_id: runId,
      trigger: 'scheduled',
      status: 'committed',
      dt: '2026-11-26',
    });
  });

  it('sends each odd user id URL-encoded and exports it under the exact id', async () => {
    const result = await run(scheduled());

    for (const id of ODD_IDS) expect(stack.api.stats.byUser[id]).toBe(1);
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    const oddTruth = truthFor(ODD_IDS);
    expect(oddTruth.length).toBeGreaterThan(0);
    expect(records.filter((r) => ODD_IDS.includes(String(r.user_id))).length).toBe(oddTruth.length);
  });

  it('writes the same slot twice as one visible copy: the rerun supersedes the first run and removes its files of every kind', async () => {
    const prefix = 'rerun';
    const badUser = allUsers[3] as string;
    const invalidUser = allUsers[5] as string;
    stack.api.configure({
      faults: { [badUser]: [{ kind: 'status', status: 404 }] },
      invalidItemUsers: [invalidUser],
    });
    const first = await run(scheduled(), {
      EXPORT_PREFIX: prefix,
      EXPORT_TARGET_FILE_BYTES: '1024',
      EXPORT_FAILED_USERS_TOLERANCE: '1',
    });
    expect(first.manifest.status).toBe('committed');
    expect(first.manifest.files.sessions.length).toBeGreaterThan(2);
    expect(first.manifest.files.rejects.length).toBe(1);
    expect(first.manifest.files.failed_users.length).toBe(1);
    stack.api.configure({ faults: {}, invalidItemUsers: [] });

    const second = await run(scheduled(), { EXPORT_PREFIX: prefix });

    expect(second.manifest.status).toBe('committed');
    for (const kind of ['sessions', 'rejects', 'failed-users']) {
      const keys = await listKeys(stack.s3Client, stack.bucket, `${prefix}/${kind}/`);
      for (const key of keys) expect(key).toContain(`.${second.manifest.run_id}.`);
    }
    expect(await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).toEqual([
      second.manifest.files.sessions[0]?.key,
    ]);
    const visible = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
    expect(visible).toHaveLength(truthFor(allUsers).length);
    expect(new Set(visible.map((r) => r.run_id))).toEqual(new Set([second.manifest.run_id]));
    const manifests = await readObjects(stack.s3Client, stack.bucket, `${prefix}/manifests/`);
    expect([...manifests.values()].map((m) => JSON.parse(m).status).sort()).toEqual([
      'committed',
      'superseded',
    ]);
    expect(await listKeys(stack.s3Client, stack.bucket, `${prefix}/runs/`)).toEqual([]);
  });

  it('rotates files by compressed size, each a whole gzip file, with every record in exactly one', async () => {
    const result = await run(scheduled(), { EXPORT_TARGET_FILE_BYTES: '2048' });

    const files = result.manifest.files.sessions;
    expect(files.length).toBeGreaterThan(2);
    // A file is closed only once it reached the target; only the last may be smaller.
    for (const file of files.slice(0, -1)) expect(file.bytes).toBeGreaterThanOrEqual(2048);
    expect(files.reduce((sum, f) => sum + f.records, 0)).toBe(truthFor(allUsers).length);
    const objects = await readObjects(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(objects.size).toBe(files.length);
    for (const file of files) {
      expect(objects.get(file.key)?.trim().split('\n')).toHaveLength(file.records);
    }
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(new Set(records.map((r) => r.id)).size).toBe(records.length);
  });

  it('walks parallel scan segments to the same result', async () => {
    const result = await run(scheduled(), { EXPORT_SCAN_SEGMENTS: '4', EXPORT_SCAN_PAGE_SIZE: '25' });

    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(withoutSnapshotFields(records).sort(byId)).toEqual(truthFor(allUsers).sort(byId));
    expect(result.manifest.counts.users_scanned).toBe(allUsers.length);
  });

  it('counts items whose id attribute is missing, not a string or empty, and exports the rest', async () => {
    const table = 'users-keyed-by-pk';
    await createUsersTable(stack.dynamodbClient, table, 'pk');
    const good = [userIdFor(10_001), userIdFor(10_002)];
    await putUserItems(stack.dynamodbClient, table, [
      ...good.map((id) => ({ Item: { pk: { S: `USER#${id}` }, user_id: { S: id } } })),
      { Item: { pk: { S: 'USER#no-id' } } },
      { Item: { pk: { S: 'USER#numeric' }, user_id: { N: '42' } } },
      { Item: { pk: { S: 'USER#empty' }, user_id: { S: '' } } },
    ]);

    const result = await run(scheduled(), { USERS_TABLE_NAME: table });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({ users_scanned: 2, users_unusable: 3, users_processed: 2 });
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(records).toHaveLength(truthFor(good).length);
  });
});

describe('retries', () => {
  it('waits out a 429 with Retry-After, then exports the user', async () => {
    const user = allUsers[3] as string;
    stack.api.configure({ faults: { [user]: [{ kind: 'status', status: 429, retryAfter: '1' }] } });

    const started = Date.now();
    const result = await run(audit('retry test', [user]));

    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({ retries: 1, requests: 2, users_failed: 0 });
    expect(stack.api.stats.byStatus['429']).toBe(1);
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(records).toHaveLength(sessionsFor(user, BASE_TIME).length);
  });

  it('retries 5xx, a hung request and a malformed body, then exports the user', async () => {
    const users = allUsers.slice(10, 13) as [string, string, string];
    stack.api.configure({
      faults: {
        [users[0]]: [
          { kind: 'status', status: 503 },
          { kind: 'status', status: 500 },
        ],
        [users[1]]: [{ kind: 'hang' }],
        [users[2]]: [{ kind: 'malformed' }],
      },
    });

    const result = await run(audit('retry test', users), {
      EXPORT_REQUEST_TIMEOUT_MS: '300',
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({ retries: 4, users_failed: 0, users_processed: 3 });
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(records).toHaveLength(truthFor(users).length);
  });

  it('retries connection errors, then records the user as failed with the cause', async () => {
    const closedPort = await freePort();
    const user = allUsers[25] as string;

    const result = await run(audit('network', [user]), {
      MOONKEY_API_URL: `http://127.0.0.1:${closedPort}`,
      EXPORT_MAX_ATTEMPTS: '2',
      EXPORT_FAILED_USERS_TOLERANCE: '1',
    });

    expect(result.manifest.counts).toMatchObject({ requests: 2, retries: 1, users_failed: 1 });
    expect(result.manifest.failed_users[0]?.error).toMatch(/^gave up after 2 attempts: .*ECONNREFUSED/);
  });

  it('records a user whose retries run out as failed, and still commits within the tolerance', async () => {
    const [bad, good] = allUsers.slice(20, 22) as [string, string];
    const outage = Array.from({ length: 5 }, () => ({ kind: 'status' as const, status: 502 }));
    stack.api.configure({ faults: { [bad]: outage } });

    const result = await run(audit('tolerance', [bad, good]), {
      EXPORT_MAX_ATTEMPTS: '3',
      EXPORT_FAILED_USERS_TOLERANCE: '1',
    });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.byUser[bad]).toBe(3);
    expect(result.manifest.counts).toMatchObject({ users_failed: 1, retries: 2 });
    expect(result.manifest.failed_users).toEqual([
      { user_id: bad, error_type: 'RetriesExhaustedError', error: 'gave up after 3 attempts: HTTP 502' },
    ]);
    const failedFile = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/failed-users/`);
    expect(failedFile).toEqual([
      expect.objectContaining({ user_id: bad, error_type: 'RetriesExhaustedError' }),
    ]);
    expect(result.manifest.files.failed_users).toEqual([
      expect.objectContaining({
        key: expect.stringContaining(`${result.prefix}/failed-users/dt=`),
        records: 1,
      }),
    ]);
  });

  it('fails without committing when failed users exceed the tolerance, leaving nothing under sessions/', async () => {
    const users = allUsers.slice(30, 60);
    const bad = users[5] as string;
    stack.api.configure({ faults: { [bad]: [{ kind: 'status', status: 404 }] } });

    const result = await run(audit('tolerance', users));

    expect(result.error?.name).toBe('TooManyFailedUsersError');
    expect(result.manifest.status).toBe('failed');
    expect(result.manifest.failed_users).toEqual([
      expect.objectContaining({ user_id: bad, error_type: 'ApiRequestError' }),
    ]);
    expect(stack.api.stats.byUser[bad]).toBe(1);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`)).toEqual([]);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/`)).toEqual([result.manifestKey]);
  });

  it('accepts a percentage tolerance, judged against all users processed', async () => {
    const users = allUsers.slice(60, 160);
    stack.api.configure({ faults: { [users[0] as string]: [{ kind: 'status', status: 404 }] } });

    const ok = await run(audit('pct', users), {
      EXPORT_FAILED_USERS_TOLERANCE: '1%',
    });
    stack.api.configure({
      faults: {
        [users[0] as string]: [{ kind: 'status', status: 404 }],
        [users[1] as string]: [{ kind: 'status', status: 404 }],
      },
    });
    const tooMany = await run(audit('pct', users), {
      EXPORT_FAILED_USERS_TOLERANCE: '1%',
    });

    expect(ok.manifest.status).toBe('committed');
    expect(tooMany.manifest.status).toBe('failed');
    expect(tooMany.error?.name).toBe('TooManyFailedUsersError');
  });
});

describe('a rejected API key', () => {
  it('aborts the run at once, commits nothing and never leaks the key', async () => {
    const result = await run(scheduled(), {
      MOONKEY_API_KEY: 'sk_live_wrong_key_123',
      EXPORT_CONCURRENCY: '4',
    });

    expect(result.error?.name).toBe('ApiAuthError');
    expect(result.manifest.status).toBe('failed');
    expect(result.manifest.error?.type).toBe('ApiAuthError');
    // At most the calls already in flight when the first 401 came back; never one per user.
    expect(stack.api.stats.requests).toBeLessThanOrEqual(4);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`)).toEqual([]);
    const everything = [
      result.logger.text(),
      JSON.stringify(result.manifest),
      ...(await readObjects(stack.s3Client, stack.bucket, `${result.prefix}/`)).values(),
    ].join('\n');
    expect(everything).not.toContain('sk_live_wrong_key_123');
  });
});

describe('an API that echoes the Authorization header', () => {
  it('never lets the key reach the logs, the manifest or failed-users/', async () => {
    const [bad, good] = allUsers.slice(40, 42) as [string, string];
    stack.api.configure({ echoAuthorization: true, faults: { [bad]: [{ kind: 'status', status: 400 }] } });

    const result = await run(audit('echo', [bad, good]), {
      EXPORT_FAILED_USERS_TOLERANCE: '1',
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.failed_users).toEqual([
      {
        user_id: bad,
        error_type: 'ApiRequestError',
        error: expect.stringContaining('"authorization":"Bearer [REDACTED]"'),
      },
    ]);
    const failedUsers = await readObjects(stack.s3Client, stack.bucket, `${result.prefix}/failed-users/`);
    expect([...failedUsers.values()].join('')).toContain('Bearer [REDACTED]');
    const everything = [
      result.logger.text(),
      JSON.stringify(result.manifest),
      ...(await readObjects(stack.s3Client, stack.bucket, `${result.prefix}/`)).values(),
    ].join('\n');
    expect(everything).not.toContain(stack.api.settings.apiKey);
    expect(everything).not.toMatch(/Bearer (?!\[REDACTED\])/);
  });
});

describe('a response larger than EXPORT_MAX_RESPONSE_BYTES', () => {
  it('fails that user once, without retries, and the run goes on', async () => {
    const [big, good] = allUsers.slice(42, 44) as [string, string];
    stack.api.configure({ faults: { [big]: [{ kind: 'huge-body', bytes: 8 * 1024 * 1024 }] } });

    const result = await run(audit('big', [big, good]), {
      EXPORT_FAILED_USERS_TOLERANCE: '1',
      EXPORT_MAX_RESPONSE_BYTES: String(1024 * 1024),
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({ users_failed: 1, retries: 0, requests: 2 });
    expect(result.manifest.failed_users).toEqual([
      expect.objectContaining({ user_id: big, error_type: 'ResponseTooLargeError' }),
    ]);
  });
});

describe('validation', () => {
  it('quarantines invalid items with the user id and zod issues, and exports their valid siblings', async () => {
    const user = allUsers.find((id) => sessionsFor(id, BASE_TIME).length >= 2) as string;
    stack.api.configure({ invalidItemUsers: [user] });

    const result = await run(audit('validation', [user]), {
      EXPORT_REJECTED_ITEMS_TOLERANCE: '100%',
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({
      items_rejected: INVALID_ITEMS.length,
      sessions_exported: sessionsFor(user, BASE_TIME).length,
    });
    const rejects = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/rejects/`);
    expect(rejects).toHaveLength(INVALID_ITEMS.length);
    for (const reject of rejects) {
      expect(reject).toMatchObject({
        user_id: user,
        reason: 'schema',
        snapshot_id: result.manifest.snapshot_id,
      });
      expect(INVALID_ITEMS.map((item) => JSON.stringify(item))).toContain(reject.item_raw);
      expect(reject).toMatchObject({ item_length: String(reject.item_raw).length, item_truncated: false });
      expect((reject.issues as unknown[]).length).toBeGreaterThan(0);
    }
    const sessions = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(withoutSnapshotFields(sessions).sort(byId)).toEqual(sessionsFor(user, BASE_TIME).sort(byId));
  });
});

describe('the rejected-items tolerance', () => {
  it('fails without committing when rejects pass EXPORT_REJECTED_ITEMS_TOLERANCE (default 1%)', async () => {
    const users = allUsers.slice(100, 110);
    const user = users.find((id) => sessionsFor(id, BASE_TIME).length >= 1) as string;
    stack.api.configure({ invalidItemUsers: [user] });

    const result = await run(audit('rejects', users));

    expect(result.error?.name).toBe('TooManyRejectedItemsError');
    expect(result.manifest).toMatchObject({ status: 'failed', error: { type: 'TooManyRejectedItemsError' } });
    expect(result.manifest.counts.items_rejected).toBe(INVALID_ITEMS.length);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/`)).toEqual([result.manifestKey]);
  });

  it('commits when the rejects stay within it', async () => {
    const users = allUsers.slice(100, 110);
    const user = users.find((id) => sessionsFor(id, BASE_TIME).length >= 1) as string;
    stack.api.configure({ invalidItemUsers: [user] });

    const result = await run(audit('rejects', users), {
      EXPORT_REJECTED_ITEMS_TOLERANCE: String(INVALID_ITEMS.length),
    });

    expect(result.manifest.status).toBe('committed');
  });
});

describe('an invalid item nested 100,000 deep', () => {
  it('is quarantined as truncated raw text with its length; the user is not failed', async () => {
    const user = allUsers.find((id) => sessionsFor(id, BASE_TIME).length >= 1) as string;
    stack.api.configure({ faults: { [user]: [{ kind: 'deeply-nested-item', depth: 100_000 }] } });

    const result = await run(audit('deep', [user]), {
      EXPORT_REJECTED_ITEMS_TOLERANCE: '1',
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({
      users_failed: 0,
      items_rejected: 1,
      sessions_exported: sessionsFor(user, BASE_TIME).length,
    });
    const [reject, ...more] = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/rejects/`);
    expect(more).toEqual([]);
    const prefix = `{"id":"sess_deep","user_id":${JSON.stringify(user)},"factors":[[[`;
    expect(reject).toMatchObject({ user_id: user, reason: 'schema', item_truncated: true });
    expect(String(reject?.item_raw).startsWith(prefix)).toBe(true);
    expect(String(reject?.item_raw)).toHaveLength(64 * 1024);
    expect(reject?.item_length).toBe(prefix.length - 3 + 2 * 100_000 + 1);
  });
});

describe('audits and dry runs', () => {
  it('exports only the named users, without scanning, and records the reason', async () => {
    const users = [allUsers[1] as string, 'user with space'];

    const result = await run(audit('SEC-142 account takeover review', users));

    expect(result.manifest).toMatchObject({ trigger: 'audit', reason: 'SEC-142 account takeover review' });
    expect(stack.api.stats.requests).toBe(2);
    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    expect(withoutSnapshotFields(records).sort(byId)).toEqual(truthFor(users).sort(byId));
  });

  it('counts users in a dry run and neither calls the API nor writes anything', async () => {
    const result = await runInFreshPrefix({ reason: 'how many?', dryRun: true });

    expect(result.summary).toMatchObject({
      status: 'dry_run',
      manifestKey: null,
      counts: { users_scanned: allUsers.length },
    });
    expect(result.manifest).toBeUndefined();
    expect(stack.api.stats.requests).toBe(0);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/`)).toEqual([]);
  });
});

describe('a failed rerun of a committed slot', () => {
  it('leaves every object of the committed run as it was, writes its own failed manifest, and readers still see the first run whole', async () => {
    const prefix = 'failed-rerun';
    const first = await run(scheduled(), { EXPORT_PREFIX: prefix });
    const before = await readObjects(stack.s3Client, stack.bucket, `${prefix}/`);

    const second = await run(scheduled(), { EXPORT_PREFIX: prefix, MOONKEY_API_KEY: 'sk_wrong' });

    expect(second.manifest.status).toBe('failed');
    expect(second.manifestKey).not.toBe(first.manifestKey);
    expect(second.manifestKey).toBe(
      `${prefix}/manifests/dt=2026-11-26/scheduled-20261126T020000Z.${second.manifest.run_id}.json`,
    );
    const after = await readObjects(stack.s3Client, stack.bucket, `${prefix}/`);
    for (const [key, text] of before) expect(after.get(key)).toBe(text);
    expect([...after.keys()].sort()).toEqual([...before.keys(), second.manifestKey].sort());
    const visible = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
    expect(visible).toHaveLength(truthFor(allUsers).length);
    expect(new Set(visible.map((r) => r.run_id))).toEqual(new Set([first.manifest.run_id]));
  });
});

describe('scan backpressure', () => {
  it('never holds more users than in flight plus a bounded queue', async () => {
    stack.api.configure({ latencyMs: 20 });

    const result = await run(scheduled(), {
      EXPORT_CONCURRENCY: '4',
      EXPORT_SCAN_PAGE_SIZE: '10',
      EXPORT_PROGRESS_INTERVAL_MS: '100',
    });

    expect(result.manifest.status).toBe('committed');
    const samples = progressOf(result.logger).map((p) => p.usersScanned - p.usersDone);
    expect(samples.length).toBeGreaterThan(3);
    // in flight (4) + queue (2 × 4 + 32) + one scan page (10)
    expect(Math.max(...samples)).toBeLessThanOrEqual(4 + 40 + 10);
  });
});
