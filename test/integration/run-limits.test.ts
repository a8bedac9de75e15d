/**
 * The numbers a run promises, measured outside the job: requests per second and calls in flight
 * as the fake MoonKey API counted them, part and file sizes as they crossed the wire to S3, the
 * time left when a run stops for the deadline. And the answers that must change what a run does:
 * a 403, a response carrying our own field names, one invalid item, a body echoing the key.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { INVALID_ITEMS } from '../../local/fake-moonkey-api';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { type S3FaultProxy, type S3Operation, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import {
  exportRunner,
  FAST_RETRIES,
  type ManifestRun,
  type RunViaStateMachineOptions,
  withManifest,
} from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readRecords } from '../helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;
const USERS_TABLE = 'users-limits';
const USER_COUNT = 300;
const MIB = 1024 * 1024;

let stack: LocalStack;
let users: string[];

const scheduled = () => scheduledEvent('2026-11-26T02:00:00Z');
const audit = (userIds: string[]) => ({ reason: 'limits test', userIds });

const runInFreshPrefix = exportRunner(() => stack, 'limits', {
  USERS_TABLE_NAME: USERS_TABLE,
  EXPORT_CONCURRENCY: '16',
  ...FAST_RETRIES,
});

/** One export through the state machine; `s3Endpoint` puts a proxy between the job and S3. */
async function run(
  trigger: unknown,
  env: Record<string, string> = {},
  options: RunViaStateMachineOptions = {},
  s3Endpoint?: string,
): Promise<ManifestRun> {
  const endpoint: Record<string, string> =
    s3Endpoint === undefined ? {} : { AWS_ENDPOINT_URL_S3: s3Endpoint };
  return withManifest(await runInFreshPrefix(trigger, { ...env, ...endpoint }, options));
}

/** The most requests the fake API received in any one-second window (sliding, by arrival time). */
function busiestSecond(arrivals: readonly number[]): number {
  const sorted = [...arrivals].sort((a, b) => a - b);
  let worst = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while ((sorted[to] as number) - (sorted[from] as number) >= 1000) from++;
    worst = Math.max(worst, to - from + 1);
  }
  return worst;
}

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, USERS_TABLE);
  users = await seedUsers(stack.dynamodbClient, USERS_TABLE, USER_COUNT);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => stack.api.reset());

describe('EXPORT_MAX_RPS, counted by the API', () => {
  it('keeps every one-second window at the cap, and the cap is what paces the run', async () => {
    const cap = 40;
    const listed = users.slice(0, 120);

    const result = await run(audit(listed), { EXPORT_MAX_RPS: String(cap), EXPORT_CONCURRENCY: '32' });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.arrivals).toHaveLength(listed.length);
    const busiest = busiestSecond(stack.api.stats.arrivals);
    // The rate limiter allows a burst of 1% of the cap (at least one request). The fake API shares
    // this process and a busy machine, so arrivals jitter by up to a few hundred ms around their
    // send times; a quarter of the cap covers that, and still fails a cap that is off by 2x or 10x.
    expect(busiest).toBeLessThanOrEqual(cap * 1.25 + 1);
    // Unpaced, 32 connections to a zero-latency API send all 120 in well under a second.
    expect(busiest).toBeGreaterThanOrEqual(cap * 0.75);
    const arrivals = stack.api.stats.arrivals;
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThanOrEqual(
      ((listed.length - cap) / cap) * 1000,
    );
  });
});

describe('EXPORT_CONCURRENCY, counted by the API', () => {
  it('has exactly EXPORT_CONCURRENCY calls in flight at the server at most, and reaches it', async () => {
    stack.api.configure({ latencyMs: 50 });

    const result = await run(scheduled(), { EXPORT_CONCURRENCY: '5', EXPORT_ADAPTIVE_CONCURRENCY: 'false' });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.requests).toBe(USER_COUNT);
    expect(stack.api.stats.maxInFlight).toBe(5);
  });
});

describe('limits of the whole run across parallel segments (each Work takes its share)', () => {
  it('keeps EXPORT_CONCURRENCY for the whole run with 4 segments working at once, counted by the API', async () => {
    stack.api.configure({ latencyMs: 50 });

    const result = await run(scheduled(), {
      EXPORT_SCAN_SEGMENTS: '4',
      EXPORT_SCAN_PAGE_SIZE: '20',
      EXPORT_CONCURRENCY: '8',
      EXPORT_ADAPTIVE_CONCURRENCY: 'false',
    });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.settings).toMatchObject({ segments: 4 });
    expect(stack.api.stats.requests).toBe(USER_COUNT);
    // 4 workers x 2 each; a worker that took the whole limit would show 32 here.
    expect(stack.api.stats.maxInFlight).toBe(8);
  });

  it('keeps EXPORT_MAX_RPS for the whole run with 4 segments working at once, counted by the API', async () => {
    const cap = 40;

    const result = await run(scheduled(), {
      EXPORT_SCAN_SEGMENTS: '4',
      EXPORT_SCAN_PAGE_SIZE: '20',
      EXPORT_MAX_RPS: String(cap),
      EXPORT_CONCURRENCY: '32',
    });

    expect(result.manifest.status).toBe('committed');
    const busiest = busiestSecond(stack.api.stats.arrivals);
    // Each worker is capped at cap/4; without the split the four would send 4 x cap.
    expect(busiest).toBeLessThanOrEqual(cap * 1.25 + 4);
    expect(busiest).toBeGreaterThanOrEqual(cap * 0.75);
  });
});

describe('a 403 from the API', () => {
  it('aborts the run at once like a 401 when the API rejects the key with 403', async () => {
    stack.api.configure({ authFailureStatus: 403 });

    const result = await run(scheduled(), {
      MOONKEY_API_KEY: 'sk_live_forbidden_403',
      EXPORT_CONCURRENCY: '4',
      EXPORT_FAILED_USERS_TOLERANCE: '100%',
    });

    expect(result.error?.name).toBe('ApiAuthError');
    expect(result.error?.message).toContain('(HTTP 403)');
    expect(result.manifest.status).toBe('failed');
    expect(stack.api.stats.byStatus['403']).toBeLessThanOrEqual(4);
    expect(stack.api.stats.requests).toBeLessThanOrEqual(4);
    expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`)).toEqual([]);
  });

  it('aborts the run when one user answers 403 mid-run, whatever the failed-users tolerance', async () => {
    const listed = users.slice(0, 40);
    stack.api.configure({ faults: { [listed[10] as string]: [{ kind: 'status', status: 403 }] } });

    const result = await run(audit(listed), {
      EXPORT_CONCURRENCY: '1',
      EXPORT_FAILED_USERS_TOLERANCE: '100%',
    });

    expect(result.error?.name).toBe('ApiAuthError');
    expect(result.manifest.status).toBe('failed');
    expect(result.manifest.counts.users_failed).toBe(0);
    // One call at a time: nothing after the 403 was asked.
    expect(stack.api.stats.requests).toBe(11);
  });
});

describe('what the API sends', () => {
  it('overrides snapshot_id, run_id, snapshot_at and observed_at fields the API itself sends with the run', async () => {
    stack.api.configure({
      extraSessionFields: { snapshot_id: 'from-the-api', snapshot_at: 1, run_id: 'r-api', observed_at: 2 },
    });
    const listed = users.filter((id) => sessionsFor(id, BASE_TIME).length > 0).slice(0, 5);
    const started = Date.now();

    const result = await run(audit(listed));

    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    const truth = listed.flatMap((id) => sessionsFor(id, BASE_TIME));
    expect(records).toHaveLength(truth.length);
    for (const record of records) {
      expect(record.snapshot_id).toBe(result.run?.snapshotId);
      expect(record.snapshot_at).toBe(result.manifest.snapshot_at);
      expect(record.run_id).toBe(result.run?.runId);
      expect(record.observed_at).toBeGreaterThanOrEqual(Math.floor(started / 1000));
    }
    // The rest of each session is exactly what the API sent.
    const byId = new Map(truth.map((s) => [s.id, s]));
    for (const { snapshot_id: _i, snapshot_at: _a, run_id: _r, observed_at: _o, ...session } of records) {
      expect(session).toEqual(byId.get(String(session.id)));
    }
  });

  it('writes a user with exactly one invalid item to the rejects file', async () => {
    const user = users.find((id) => sessionsFor(id, BASE_TIME).length >= 1) as string;
    const invalid = INVALID_ITEMS[1];
    stack.api.configure({ faults: { [user]: [{ kind: 'invalid-items', items: [invalid] }] } });

    // One reject among a handful of sessions is far above the default 1%: allow it here.
    const result = await run(audit([user]), { EXPORT_REJECTED_ITEMS_TOLERANCE: '1' });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({
      items_rejected: 1,
      sessions_exported: sessionsFor(user, BASE_TIME).length,
    });
    const rejects = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/rejects/`);
    expect(rejects).toEqual([
      expect.objectContaining({
        user_id: user,
        reason: 'schema',
        item_raw: JSON.stringify(invalid),
        snapshot_id: result.manifest.snapshot_id,
        run_id: result.manifest.run_id,
      }),
    ]);
    expect(result.manifest.files.rejects).toEqual([expect.objectContaining({ records: 1 })]);
  });

  it('never writes the API key anywhere when a 4xx body echoes the Authorization header', async () => {
    const [echoing, fine] = users.slice(50, 52) as [string, string];
    stack.api.configure({ faults: { [echoing]: [{ kind: 'echo-auth', status: 400 }] } });

    const result = await run(audit([echoing, fine]), { EXPORT_FAILED_USERS_TOLERANCE: '1' });

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.failed_users).toEqual([
      expect.objectContaining({ user_id: echoing, error_type: 'ApiRequestError' }),
    ]);
    expect(result.manifest.failed_users[0]?.error).toContain('[REDACTED]');
    const everything = [
      result.logger.text(),
      JSON.stringify(result.manifest),
      ...(await readObjects(stack.s3Client, stack.bucket, `${result.prefix}/`)).values(),
    ].join('\n');
    expect(everything).toContain('rejected request with Bearer');
    expect(everything).not.toContain(stack.api.settings.apiKey);
  });
});

describe('file rotation and part sizes, as S3 received them', () => {
  let proxy: S3FaultProxy;

  beforeAll(async () => {
    proxy = await startS3FaultProxy(stack.s3.endpoint);
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('cuts parts at EXPORT_UPLOAD_PART_BYTES and files at EXPORT_TARGET_FILE_BYTES, not far beyond either', async () => {
    const partBytes = 5 * MIB;
    const targetBytes = 6 * MIB;
    // Incompressible padding: ~38 KB of gzip per session, about 16 MiB for the whole table.
    stack.api.configure({ paddingChars: 50_000 });

    const result = await run(
      scheduled(),
      {
        EXPORT_UPLOAD_PART_BYTES: String(partBytes),
        EXPORT_TARGET_FILE_BYTES: String(targetBytes),
        EXPORT_GZIP_LEVEL: '1',
      },
      {},
      proxy.endpoint,
    );

    expect(result.manifest.status).toBe('committed');
    const files = result.manifest.files.sessions;
    const total = files.reduce((sum, f) => sum + f.bytes, 0);
    expect(total).toBeGreaterThan(2 * targetBytes);
    expect(files.length).toBeGreaterThanOrEqual(3);
    // Files are numbered in the order they were opened, zero-padded to one width.
    const indexes = files.map((f) => /-(\d+)\.ndjson\.gz$/.exec(f.key)?.[1] ?? '');
    expect(indexes).toEqual(files.map((_, i) => String(i).padStart(indexes[0]?.length ?? 1, '0')));
    // One user's lines (at most 4 padded sessions, ~200 KB) are written whole, so a file can pass
    // the target by about that much, plus what deflate still held.
    const slack = 384 * 1024;
    for (const file of files.slice(0, -1)) {
      expect(file.bytes).toBeGreaterThanOrEqual(targetBytes);
      expect(file.bytes).toBeLessThanOrEqual(targetBytes + slack);
    }
    for (const file of files) {
      const parts = proxy.calls
        .filter((c) => c.operation === 'UploadPart' && c.path === `${stack.bucket}/${file.key}`)
        .sort((a, b) => (a.partNumber ?? 0) - (b.partNumber ?? 0));
      expect(parts.map((p) => p.partNumber)).toEqual(parts.map((_, i) => i + 1));
      expect(parts.reduce((sum, p) => sum + p.bytes, 0)).toBe(file.bytes);
      // A part is cut at the first gzip chunk (16 KiB at most) that reaches the part size.
      for (const part of parts.slice(0, -1)) {
        expect(part.bytes).toBeGreaterThanOrEqual(partBytes);
        expect(part.bytes).toBeLessThan(partBytes + 16 * 1024);
      }
      expect(parts.length).toBe(Math.ceil(file.bytes / (partBytes + 16 * 1024)));
      const object = await stack.s3Client.send(new GetObjectCommand({ Bucket: stack.bucket, Key: file.key }));
      expect(object.ContentLength).toBe(file.bytes);
    }
  });
});

describe('S3 refusing the writes', () => {
  let proxy: S3FaultProxy;

  beforeAll(async () => {
    proxy = await startS3FaultProxy(stack.s3.endpoint);
  });

  afterEach(() => {
    proxy.setRules([]);
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it.each([
    ['uploading part 1', 'UploadPart'],
    ['starting the multipart upload', 'CreateMultipartUpload'],
  ] as const)(
    'fails the run with a SnapshotWriteError naming the file when S3 refuses %s',
    async (what, operation: S3Operation) => {
      proxy.setRules([{ operation, pathIncludes: '/sessions/', action: 'deny' }]);

      const result = await run(audit(users.slice(0, 20)), {}, {}, proxy.endpoint);

      expect(result.error?.name).toBe('SnapshotWriteError');
      // The message ends with what S3 answered (the error's cause).
      expect(result.error?.message).toMatch(
        new RegExp(
          `^S3 failed ${what} of s3://${stack.bucket}/${result.prefix}/sessions/dt=[^ ]+\\.ndjson\\.gz: \\S`,
        ),
      );
      expect(result.manifest).toMatchObject({ status: 'failed', error: { type: 'SnapshotWriteError' } });
      expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`)).toEqual([]);
    },
  );
});

describe("each Work's time, read from Lambda's context", () => {
  it('stops taking pages EXPORT_DEADLINE_MARGIN_MS before the deadline and stops its calls a quarter of it before, never at or after it', async () => {
    // Two 100 ms calls at a time: a page of 100 users needs 5 s, more than a Work has. Each Work
    // gets 4 s: no new page after 1 s, its calls stopped at 3.25 s and its users handed over.
    stack.api.configure({ latencyMs: 100 });
    const marginMs = 3000;

    const result = await run(
      scheduled(),
      { EXPORT_CONCURRENCY: '2', EXPORT_SCAN_PAGE_SIZE: '100', EXPORT_DEADLINE_MARGIN_MS: String(marginMs) },
      { workBudgetMs: 4000 },
    );

    expect(result.manifest.status).toBe('committed');
    expect(result.manifest.counts).toMatchObject({ users_processed: USER_COUNT, users_failed: 0 });
    const works = result.invocations.filter((i) => i.phase === 'work');
    const continued = works.filter((w) => (w.result as { done: boolean }).done === false);
    expect(continued.length).toBeGreaterThan(1);
    for (const work of continued) {
      // Ended before Lambda's deadline, with time left to write its step, and not before it
      // stopped taking pages.
      expect(work.msLeft).toBeGreaterThan(0);
      expect(work.msLeft).toBeLessThanOrEqual(marginMs);
    }
    // The page in hand outlasts a Work here: its calls were stopped at the hard stop.
    expect(continued.filter((w) => w.msLeft <= marginMs / 4).length).toBeGreaterThan(0);
  });
});
