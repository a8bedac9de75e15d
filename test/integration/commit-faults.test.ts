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
import { type Manifest, type RunCounts, sumCounts } from '../../lambda/snapshot/manifest';
import { getJson, listKeys } from '../../lambda/snapshot/s3-objects';
import { downloadPrefix } from '../../local/download-prefix';
import { queryLocalSnapshots } from '../../local/duckdb-reader';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { type FaultRule, type S3FaultProxy, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { type RunViaStateMachineOptions, runViaStateMachine } from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;
const TABLE = 'users-faults';
const USER_COUNT = 240;
const TIME = '2026-11-26T02:00:00Z';
const EVENT = scheduledEvent(TIME);
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
let prefixCounter = 0;
const table: string[] = [];

/** One run of the slot through the state machine in this process, its S3 calls through the proxy. */
async function runOnce(
  prefix: string,
  env: Record<string, string> = {},
  options: RunViaStateMachineOptions = {},
) {
  const result = await runViaStateMachine(
    { ...stack.env, ...JOB_ENV, AWS_ENDPOINT_URL_S3: proxy.endpoint, ...env, EXPORT_PREFIX: prefix },
    EVENT,
    options,
  );
  // What Commit, or Abort for a failed run, returned: status and run id even when no manifest
  // could be written.
  const summary = result.summary;
  if (summary === undefined)
    throw new Error(`no Commit or Abort result: ${JSON.stringify(result.execution)}`);
  return { ...result, summary };
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
  await createUsersTable(stack.dynamodbClient, TABLE);
  users = await seedUsers(stack.dynamodbClient, TABLE, USER_COUNT);
  truthCount = users.flatMap((id) => sessionsFor(id, BASE_TIME)).length;
}, 120_000);

beforeEach(() => {
  proxy.setRules([]);
  stack.api.reset();
});

afterAll(async () => {
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

    const result = await runOnce(prefix);

    expect(result.summary.status).toBe('failed');
    expect(result.manifest?.error?.type).toBe('SnapshotWriteError');
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

  it('writes a failed manifest that counts what every Work step recorded, not zeros', async () => {
    const prefix = fresh();
    proxy.setRules([completeFails(2)]);
    // Pages of 50 and a Work that takes no new page after its first: 3 segments of about 80
    // users, so each segment is a chain of two or more steps.
    const steps: RunCounts[] = [];
    const onPhase = async (call: { state: string; result?: unknown }) => {
      const tail = (call.result as { slice?: { tail: string } } | undefined)?.slice?.tail;
      if (call.state !== 'Work' || tail === undefined) return;
      const step = await getJson<{ counts: RunCounts }>(stack.s3Client, stack.bucket, tail);
      if (step) steps.push(step.counts);
    };

    const result = await runOnce(
      prefix,
      { EXPORT_SCAN_SEGMENTS: '3', EXPORT_SCAN_PAGE_SIZE: '50', EXPORT_DEADLINE_MARGIN_MS: '60000' },
      { workBudgetMs: 60_100, onPhase },
    );

    expect(result.manifest).toMatchObject({
      status: 'failed',
      error: { type: 'SnapshotWriteError', step: 'Commit' },
    });
    expect(steps.length).toBeGreaterThan(3);
    expect(result.manifest?.counts).toEqual(sumCounts(steps));
    expect(result.manifest?.counts).toMatchObject({
      users_scanned: USER_COUNT,
      users_processed: USER_COUNT,
      sessions_exported: truthCount,
    });
    expect(result.summary.counts).toEqual(result.manifest?.counts);
  });

  it('on a rerun of a committed slot: the committed run stays visible, whole and untouched', async () => {
    const prefix = fresh();
    const first = await runOnce(prefix);
    expect(first.summary.status).toBe('committed');
    const before = await readObjects(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    proxy.setRules([completeFails(2)]);

    const second = await runOnce(prefix);

    expect(second.summary.status).toBe('failed');
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.summary.runId] });
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
    const first = await runOnce(prefix);
    proxy.setRules([{ operation: 'DeleteObjects', action: 'error' }]);

    const second = await runOnce(prefix);

    expect(second.summary.status).toBe('committed');
    expect(second.logger.text()).toContain('could not be removed');
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [second.summary.runId] });
    const leftover = await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    expect(leftover.some((key) => key.includes(first.summary.runId as string))).toBe(true);
    record(
      'DeleteObjects fails during clean-up',
      'proxy: 500 on every DeleteObjects',
      'second run, whole',
      v,
    );

    proxy.setRules([]);
    const third = await runOnce(prefix);

    const keys = await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key).toContain(`.${third.summary.runId}.`);
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
    const first = await runOnce(prefix);
    // Every manifest PUT of the run fails: the commit point and the failed manifest alike.
    proxy.setRules([{ operation: 'PutObject', pathIncludes: `${prefix}/manifests/`, action: 'error' }]);

    const second = await runOnce(prefix);

    expect(second.summary.status).toBe('failed');
    expect(second.manifestKey).toBeUndefined();
    const v = await view(prefix);
    expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.summary.runId] });
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
      const first = await runOnce(prefix);
      proxy.setRules([rule as FaultRule]);

      const child = startChild(prefix);
      await proxy.whenHolding();
      await kill(child);
      proxy.setRules([]);

      const v = await view(prefix);
      const dead = (await manifests(prefix)).filter((m) => m.run_id !== first.summary.runId);
      if (seen === 'second run, whole') {
        expect(dead.map((m) => m.status)).toEqual(['committed']);
        expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [dead[0]?.run_id] });
      } else {
        expect(dead).toEqual([]);
        // The dead run's files that did complete exist, and readers still do not show them.
        const completed = (await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).filter(
          (key) => !key.includes(first.summary.runId as string),
        );
        expect(completed).toHaveLength((rule as FaultRule).after ?? 0);
        expect(v).toEqual({ rows: truthCount, duplicates: 0, runIds: [first.summary.runId] });
        expect((await openUploadsUnder(prefix)).length).toBeGreaterThan(0);
      }
      record(`process SIGKILLed ${when}`, `proxy holds the call, then SIGKILL`, seen, v);

      const rerun = await runOnce(prefix);

      expect(rerun.summary.status).toBe('committed');
      expect(await view(prefix)).toEqual({
        rows: truthCount,
        duplicates: 0,
        runIds: [rerun.summary.runId],
      });
      expect(await openUploadsUnder(prefix)).toEqual([]);
      for (const key of await listKeys(stack.s3Client, stack.bucket, `${prefix}/sessions/`))
        expect(key).toContain(`.${rerun.summary.runId}.`);
    },
    60_000,
  );
});

describe('two runs of one slot at once', () => {
  it('end with exactly one run visible, whole, whatever order their users came in', async () => {
    const prefix = fresh();
    stack.api.configure({ latencyMs: 2 });

    // Different segment counts walk the table in different orders.
    // Two executions that each take themselves for the only one running (separate runners, so
    // the turn gate cannot serialize them): what a run the gate missed would do.
    const [a, b] = await Promise.all([
      runOnce(prefix, { EXPORT_SCAN_SEGMENTS: '1' }),
      runOnce(prefix, { EXPORT_SCAN_SEGMENTS: '3' }, { executionName: 'scheduled-20261126T020000Z-rerun-1' }),
    ]);

    const v = await view(prefix);
    expect(v.rows).toBe(truthCount);
    expect(v.duplicates).toBe(0);
    expect(v.runIds).toHaveLength(1);
    const committed = [a, b].filter((r) => r.summary.status === 'committed').map((r) => r.summary.runId);
    expect(committed.length).toBeGreaterThan(0);
    // Readers show the newest committed run; any other either failed cleanly or was superseded.
    expect(v.runIds[0]).toBe([...committed].sort().at(-1));
    for (const r of [a, b]) expect(['committed', 'failed']).toContain(r.summary.status);
    expect(await openUploadsUnder(prefix)).toEqual([]);
    record('two runs of the slot at once', 'two executions, 1 vs 3 segments', 'one run, whole', v);
  }, 60_000);
});
