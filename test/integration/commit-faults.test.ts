/**
 * The commit protocol under faults: S3 calls failed or held by a fault proxy in front of
 * the S3 server, processes SIGKILLed mid-run, runs of one slot overlapping. After every case the
 * reader's view (the rule of the Athena view `sessions`, and the same SQL in DuckDB) must show
 * either the previous committed run whole or the new one whole: never a mix, a duplicate, or
 * nothing where something was committed. And no multipart upload may stay open, as the S3 server
 * itself reports them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../lambda/core/config';
import { createExportRuntime } from '../../lambda/handlers/export-context';
import { runExport } from '../../lambda/run/run-export';
import { planFromEvent } from '../../lambda/run/run-plan';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { downloadPrefix } from '../../local/download-prefix';
import { queryLocalSnapshots } from '../../local/duckdb-reader';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { type FaultRule, type S3FaultProxy, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { captureLogger } from '../helpers/capture-logger';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const BASE_TIME = 1_764_115_200;
const TABLE = 'users-faults';
const USER_COUNT = 240;
const TIME = '2026-11-26T02:00:00Z';
const EVENT = { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: TIME, detail: {} };
// Small files, so a run has several to complete and "file k of n" means something.
const JOB_ENV = {
  USERS_TABLE_NAME: TABLE,
  EXPORT_TARGET_FILE_BYTES: '4096',
  EXPORT_RETRY_BASE_DELAY_MS: '5',
  EXPORT_RETRY_MAX_DELAY_MS: '20',
};

let stack: LocalStack;
let proxy: S3FaultProxy;
let users: string[];
let truthCount: number;
let restoreEnv: () => void = () => {};
let prefixCounter = 0;
const table: string[] = [];

async function runInProcess(prefix: string, env: Record<string, string> = {}) {
  const config = parseConfig({ ...stack.env, ...JOB_ENV, ...env, EXPORT_PREFIX: prefix });
  const logger = captureLogger();
  const runtime = await createExportRuntime(config, { logger });
  try {
    return { ...(await runExport(planFromEvent(EVENT, new Date(), 'faults'), runtime)), logger };
  } finally {
    await runtime.close();
  }
}

/** The job in a child process (configured by env only, as the CLI), so it can be SIGKILLed. */
function startChild(prefix: string): ChildProcess {
  // tsx as a loader in this one process: its CLI would run the job in a grandchild that a
  // SIGKILL of the CLI leaves running.
  return spawn(process.execPath, ['--import', 'tsx', join(__dirname, '../helpers/export-child.ts')], {
    env: {
      ...process.env,
      ...stack.env,
      ...JOB_ENV,
      AWS_ENDPOINT_URL_S3: proxy.endpoint,
      EXPORT_PREFIX: prefix,
      TEST_EVENT: JSON.stringify(EVENT),
      LOG_LEVEL: 'ERROR',
    },
    stdio: 'ignore',
  });
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function openUploadsUnder(prefix: string) {
  return (await stack.s3.openUploads()).filter((u) => u.key.startsWith(`${prefix}/`));
}

async function manifests(prefix: string): Promise<Manifest[]> {
  return [...(await readObjects(stack.s3Client, stack.bucket, `${prefix}/manifests/`)).values()].map(
    (text) => JSON.parse(text) as Manifest,
  );
}

/**
 * What a reader sees of the slot, two ways that must agree: the view's rule in TypeScript, and
 * the shipped view SQL run by DuckDB over a copy of the prefix (Athena's stand-in here).
 */
async function view(prefix: string) {
  const rows = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
  const ids = rows.map((r) => String(r.id));
  const seen = {
    rows: rows.length,
    duplicates: ids.length - new Set(ids).size,
    runIds: [...new Set(rows.map((r) => String(r.run_id)))],
  };
  const dir = await mkdtemp(join(tmpdir(), 'faults-view-'));
  try {
    await downloadPrefix(stack.s3Client, stack.bucket, `${prefix}/`, dir);
    const [duck] = await queryLocalSnapshots<{ rows: string; duplicates: string; run_ids: string[] }>(
      dir,
      prefix,
      'SELECT count(*) AS rows, count(*) - count(DISTINCT id) AS duplicates, list(DISTINCT run_id) AS run_ids FROM sessions',
    );
    expect({
      rows: Number(duck?.rows),
      duplicates: Number(duck?.duplicates),
      runIds: [...(duck?.run_ids ?? [])].filter((r) => r !== null),
    }).toEqual(seen);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return seen;
}

function record(fault: string, injection: string, seen: string, v: { rows: number; duplicates: number }) {
  table.push(`| ${fault} | ${injection} | ${seen} | ${truthCount} | ${v.rows} | ${v.duplicates} |`);
}

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  proxy = await startS3FaultProxy(stack.s3.endpoint);
  // In-process runs build their S3 client from the environment, as the Lambda does.
  restoreEnv = useProcessEnv({ ...stack.env, AWS_ENDPOINT_URL_S3: proxy.endpoint });
  await createUsersTable(stack.dynamodbClient, TABLE);
  users = await seedUsers(stack.dynamodbClient, TABLE, USER_COUNT);
  truthCount = users.flatMap((id) => sessionsFor(id, BASE_TIME)).length;
}, 120_000);

beforeEach(() => {
  proxy.setRules([]);
  stack.api.configure({ latencyMs: 0 });
});

afterAll(async () => {
  restoreEnv();
  await proxy?.close();
  await stack?.stop();
  if (table.length > 0) {
    process.stdout.write(
      `\n| fault | injected | reader sees | expected | visible | duplicated |\n|---|---|---|---|---|---|\n${table.join('\n')}\n`,
    );
  }
});

const fresh = () => `faults${++prefixCounter}`;
const completeFails = (after: number): FaultRule => ({
  operation: 'CompleteMultipartUpload',
  after,
  action: 'error',
});

describe('a failing CompleteMultipartUpload', () => {
  it('on a first run: nothing becomes visible, no upload stays open, and the run fails with a manifest saying so', async () => {
    const prefix = fresh();
    proxy.setRules([completeFails(2)]);

    const result = await runInProcess(prefix);

    expect(result.manifest.status).toBe('failed');
    expect(result.manifest.error?.type).toBe('SnapshotWriteError');
    const v = await view(prefix);
    expect(v).toEqual({ rows: 0, duplicates: 0, runIds: [] });
    // The two files that did complete were deleted again, and every other upload aborted.
    expect(await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).toEqual([]);
    expect(await openUploadsUnder(prefix)).toEqual([]);
    record(
      'Complete fails for file 3 of n, first run',
      'proxy: 500 on every Complete after the 2nd',
      'nothing (as before)',
      v,
    );
  });

  it('on a rerun of a committed slot: the committed run stays visible, whole and untouched', async () => {
    const prefix = fresh();
    const first = await runInProcess(prefix);
    expect(first.manifest.status).toBe('committed');
    const before = await readObjects(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    proxy.setRules([completeFails(2)]);

    const second = await runInProcess(prefix);

    expect(second.manifest.status).toBe('failed');
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.manifest.run_id] });
    expect(await readObjects(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).toEqual(before);
    expect(await openUploadsUnder(prefix)).toEqual([]);
    record(
      'Complete fails for file 3 of n, rerun of a committed slot',
      'proxy: 500 on every Complete after the 2nd',
      'first run, whole',
      v,
    );
  });
});

describe('a failing clean-up', () => {
  it('DeleteObjects failing after the commit point: the new run is visible whole, leftovers stay invisible, and the next run removes them', async () => {
    const prefix = fresh();
    const first = await runInProcess(prefix);
    proxy.setRules([{ operation: 'DeleteObjects', action: 'error' }]);

    const second = await runInProcess(prefix);

    expect(second.manifest.status).toBe('committed');
    expect(second.logger.text()).toContain('could not be removed');
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [second.manifest.run_id] });
    const leftover = await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    expect(leftover.some((key) => key.includes(first.manifest.run_id))).toBe(true);
    record(
      'DeleteObjects fails during clean-up',
      'proxy: 500 on every DeleteObjects',
      'second run, whole',
      v,
    );

    proxy.setRules([]);
    const third = await runInProcess(prefix);

    const keys = await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key).toContain(`.${third.manifest.run_id}.`);
    expect((await manifests(prefix)).map((m) => m.status).sort()).toEqual([
      'committed',
      'superseded',
      'superseded',
    ]);
  });
});

describe('a failing manifest PutObject', () => {
  it('on a rerun: the commit point is never reached, so readers keep the committed run, whole', async () => {
    const prefix = fresh();
    const first = await runInProcess(prefix);
    // Every manifest PUT of the run fails: the commit point and the failed manifest alike.
    proxy.setRules([{ operation: 'PutObject', pathIncludes: `${prefix}/manifests/`, action: 'error' }]);

    const second = await runInProcess(prefix);

    expect(second.manifest.status).toBe('failed');
    expect(second.manifestKey).toBeUndefined();
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.manifest.run_id] });
    expect(await openUploadsUnder(prefix)).toEqual([]);
    record('manifest PutObject fails', 'proxy: 500 on every PUT under manifests/', 'first run, whole', v);
  });
});

describe('a process killed', () => {
  it.each([
    ['before commit', { operation: 'CompleteMultipartUpload', after: 0, action: 'hold' }, 'first run, whole'],
    [
      'during commit (4th Complete in flight)',
      { operation: 'CompleteMultipartUpload', after: 3, action: 'hold' },
      'first run, whole',
    ],
    [
      'after the commit point (in clean-up)',
      { operation: 'DeleteObjects', after: 0, action: 'hold' },
      'second run, whole',
    ],
  ] as const)(
    '%s: readers see one whole run, and a rerun aborts what the dead run left open',
    async (when, rule, seen) => {
      const prefix = fresh();
      const first = await runInProcess(prefix);
      proxy.setRules([rule as FaultRule]);

      const child = startChild(prefix);
      await proxy.whenHolding();
      await kill(child);
      proxy.setRules([]);

      const v = await view(prefix);
      const dead = (await manifests(prefix)).filter((m) => m.run_id !== first.manifest.run_id);
      if (seen === 'second run, whole') {
        expect(dead.map((m) => m.status)).toEqual(['committed']);
        expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [dead[0]?.run_id] });
      } else {
        expect(dead).toEqual([]);
        // The dead run's files that did complete exist, and readers still do not show them.
        const completed = (await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).filter(
          (key) => !key.includes(first.manifest.run_id),
        );
        expect(completed).toHaveLength((rule as FaultRule).after ?? 0);
        expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.manifest.run_id] });
        expect((await openUploadsUnder(prefix)).length).toBeGreaterThan(0);
      }
      record(`process SIGKILLed ${when}`, `proxy holds the call, then SIGKILL`, seen, v);

      const rerun = await runInProcess(prefix);

      expect(rerun.manifest.status).toBe('committed');
      expect(await view(prefix)).toEqual({
        rows: truthCount,
        duplicates: 0,
        runIds: [rerun.manifest.run_id],
      });
      expect(await openUploadsUnder(prefix)).toEqual([]);
      for (const key of await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`))
        expect(key).toContain(`.${rerun.manifest.run_id}.`);
    },
    60_000,
  );
});

describe('two runs of one slot at once', () => {
  it('end with exactly one run visible, whole, whatever order their users came in', async () => {
    const prefix = fresh();
    stack.api.configure({ latencyMs: 2 });

    // Different segment counts walk the table in different orders.
    const [a, b] = await Promise.all([
      runInProcess(prefix, { EXPORT_SCAN_SEGMENTS: '1' }),
      runInProcess(prefix, { EXPORT_SCAN_SEGMENTS: '3' }),
    ]);

    const v = await view(prefix);
    expect(v.rows).toBe(truthCount);
    expect(v.duplicates).toBe(0);
    expect(v.runIds).toHaveLength(1);
    const committed = [a, b].filter((r) => r.manifest.status === 'committed').map((r) => r.manifest.run_id);
    expect(committed.length).toBeGreaterThan(0);
    // Readers show the newest committed run; any other either failed cleanly or was superseded.
    expect(v.runIds[0]).toBe([...committed].sort().at(-1));
    for (const r of [a, b]) expect(['committed', 'failed']).toContain(r.manifest.status);
    expect(await openUploadsUnder(prefix)).toEqual([]);
    record('two runs of the slot at once', 'two in-process runs, 1 vs 3 segments', 'one run, whole', v);
  }, 60_000);
});
