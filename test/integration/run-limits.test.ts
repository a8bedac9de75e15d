/**
 * The numbers a run promises, measured outside the job: requests per second and calls in flight
 * as the fake MoonKey API counted them, part and file sizes as they crossed the wire to S3, the
 * time left when a run stops for the deadline. And the answers that must change what a run does:
 * a 403, a response carrying our own field names, one invalid item, a body echoing the key.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { parseConfig } from '../../lambda/core/config';
import { ApiAuthError, DeadlineExceededError, SnapshotWriteError } from '../../lambda/core/errors';
import { createExportRuntime, type ExportRuntime } from '../../lambda/handlers/export-context';
import type { ExportContext } from '../../lambda/run/job-context';
import { type RunOptions, runExport } from '../../lambda/run/run-export';
import { planFromEvent, type RunPlan } from '../../lambda/run/run-plan';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { INVALID_ITEMS } from '../../local/fake-moonkey-api';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, localS3Client, startLocalStack } from '../../local/local-stack';
import { type S3FaultProxy, type S3Operation, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { type CapturedLogger, captureLogger } from '../helpers/capture-logger';
import { readObjects, readRecords } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const BASE_TIME = 1_764_115_200;
const USERS_TABLE = 'users-limits';
const USER_COUNT = 300;
const MIB = 1024 * 1024;

let stack: LocalStack;
let restoreEnv: () => void = () => {};
let users: string[];
let prefixCounter = 0;

const scheduled = () =>
  planFromEvent(
    { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: '2026-11-26T02:00:00Z', detail: {} },
    new Date(),
    'x',
  );
const audit = (userIds: string[]) => planFromEvent({ reason: 'limits test', userIds }, new Date(), 'l');

interface Run {
  manifest: Manifest;
  manifestKey: string | undefined;
  error: Error | undefined;
  logger: CapturedLogger;
  prefix: string;
}

async function run(
  plan: RunPlan,
  env: Record<string, string> = {},
  options: RunOptions = {},
  s3Endpoint?: string,
): Promise<Run> {
  const prefix = `limits${++prefixCounter}`;
  const config = parseConfig({
    ...stack.env,
    USERS_TABLE_NAME: USERS_TABLE,
    EXPORT_CONCURRENCY: '16',
    EXPORT_RETRY_BASE_DELAY_MS: '5',
    EXPORT_RETRY_MAX_DELAY_MS: '50',
    ...env,
    EXPORT_PREFIX: prefix,
  });
  const logger = captureLogger();
  let runtime: ExportRuntime | undefined;
  const s3 = s3Endpoint === undefined ? undefined : localS3Client(s3Endpoint);
  try {
    runtime = await createExportRuntime(config, { logger });
    const ctx: ExportContext = s3 === undefined ? runtime : { ...runtime, s3 };
    const outcome = await runExport(plan, ctx, options);
    return { ...outcome, logger, prefix };
  } finally {
    s3?.destroy();
    await runtime?.close();
  }
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
  restoreEnv = useProcessEnv(stack.env);
  await createUsersTable(stack.dynamodbClient, USERS_TABLE);
  users = await seedUsers(stack.dynamodbClient, USERS_TABLE, USER_COUNT);
}, 120_000);

afterAll(async () => {
  restoreEnv();
  await stack?.stop();
});

beforeEach(() => {
  stack.api.configure({
    faults: {},
    invalidItemUsers: [],
    latencyMs: 0,
    rateLimitRps: undefined,
    authFailureStatus: 401,
    extraSessionFields: {},
    paddingChars: 0,
  });
  stack.api.resetStats();
});

describe('EXPORT_MAX_RPS, counted by the API', () => {
  it('keeps every one-second window at the cap, and the cap is what paces the run', async () => {
    const cap = 40;
    const listed = users.slice(0, 120);

    const result = await run(audit(listed), { EXPORT_MAX_RPS: String(cap), EXPORT_CONCURRENCY: '32' });

    expect(result.manifest.status).toBe('committed');
    expect(stack.api.stats.arrivals).toHaveLength(listed.length);
    const busiest = busiestSecond(stack.api.stats.arrivals);
    // The limiter allows a burst of 1% of the cap (at least one request). The fake API shares
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

    expect(result.error).toBeInstanceOf(ApiAuthError);
    expect((result.error as ApiAuthError).status).toBe(403);
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

    expect(result.error).toBeInstanceOf(ApiAuthError);
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
    const plan = audit(listed);

    const result = await run(plan);

    const records = await readRecords(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`);
    const truth = listed.flatMap((id) => sessionsFor(id, BASE_TIME));
    expect(records).toHaveLength(truth.length);
    for (const record of records) {
      expect(record.snapshot_id).toBe(plan.snapshotId);
      expect(record.snapshot_at).toBe(plan.snapshotAt);
      expect(record.run_id).toBe(plan.runId);
      expect(record.observed_at).toBeGreaterThanOrEqual(Math.floor(Date.parse(plan.startedAt) / 1000));
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

      expect(result.error).toBeInstanceOf(SnapshotWriteError);
      expect(result.error?.message).toMatch(
        new RegExp(
          `^S3 failed ${what} of s3://${stack.bucket}/${result.prefix}/sessions/dt=[^ ]+\\.ndjson\\.gz: `,
        ),
      );
      expect(result.error?.cause).toBeDefined();
      expect(result.manifest).toMatchObject({ status: 'failed', error: { type: 'SnapshotWriteError' } });
      expect(await listKeys(stack.s3Client, stack.bucket, `${result.prefix}/sessions/`)).toEqual([]);
    },
  );
});

describe('the Lambda deadline', () => {
  it('stops EXPORT_DEADLINE_MARGIN_MS before the deadline, not at it or after it', async () => {
    stack.api.configure({ latencyMs: 100 });
    const marginMs = 3000;
    const started = Date.now();
    const deadlineAt = started + 4000;

    const result = await run(
      scheduled(),
      { EXPORT_CONCURRENCY: '2', EXPORT_DEADLINE_MARGIN_MS: String(marginMs) },
      { deadlineAt },
    );
    const timeLeft = deadlineAt - Date.now();

    expect(result.error).toBeInstanceOf(DeadlineExceededError);
    expect(result.manifest.status).toBe('failed');
    expect(result.manifest.counts.users_processed).toBeLessThan(USER_COUNT);
    // The stop fires at deadline − margin (never earlier); winding down takes well under 1.5 s.
    expect(Date.parse(result.manifest.finished_at)).toBeGreaterThanOrEqual(deadlineAt - marginMs);
    expect(timeLeft).toBeGreaterThan(marginMs / 2);
    expect(timeLeft).toBeLessThanOrEqual(marginMs);
  });
});
