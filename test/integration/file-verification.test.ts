/**
 * Every data file is verified before the commit point: the synthesized state machine runs the
 * real handler on the local runner, with the job's S3 calls going through the fault proxy to the
 * local S3 server (fauxqs 2.4.1, the SDK's default CRC32 checksums). The proxy can make the
 * store complete a file short; the run must then fail before its manifest says committed, and
 * Abort must leave nothing of it behind, as the S3 server itself reports.
 */
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { FILE_KINDS } from '../../lambda/snapshot/snapshot-keys';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { type FaultRule, type S3FaultProxy, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import {
  loadStateMachineDefinitions,
  type StateMachineDefinitions,
} from '../../local/state-machine-definitions';
import { LocalStepFunctions } from '../../local/state-machine-runner';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const BASE_TIME = 1_764_115_200;
const TABLE = 'verify-users';
const USERS = 400;
const SNAPSHOT = 'scheduled-20261128T020000Z';
const SCHEDULED = scheduledEvent('2026-11-28T02:00:00Z');

let stack: LocalStack;
let proxy: S3FaultProxy;
let definitions: StateMachineDefinitions;
let ids: string[];
let restoreEnv: () => void = () => {};
let prefixCounter = 0;

beforeAll(async () => {
  [stack, definitions] = await Promise.all([
    startLocalStack({ api: { baseTime: BASE_TIME, trackUsers: false } }),
    loadStateMachineDefinitions(),
  ]);
  proxy = await startS3FaultProxy(stack.s3.endpoint);
  await createUsersTable(stack.dynamodbClient, TABLE);
  ids = await seedUsers(stack.dynamodbClient, TABLE, USERS);
}, 300_000);

beforeEach(() => proxy.setRules([]));

afterEach(async () => {
  restoreEnv();
  await closeRuntime();
});

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

/** A fresh prefix, the job's S3 client pointed at the proxy, and small files (several per run). */
function setUp(): { prefix: string; sfn: LocalStepFunctions } {
  const prefix = `verify${++prefixCounter}`;
  restoreEnv = useProcessEnv({
    ...stack.env,
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    USERS_TABLE_NAME: TABLE,
    EXPORT_PREFIX: prefix,
    EXPORT_SCAN_SEGMENTS: '2',
    EXPORT_SCAN_PAGE_SIZE: '100',
    EXPORT_TARGET_FILE_BYTES: '4096',
    EXPORT_DEADLINE_MARGIN_MS: '3000',
    EXPORT_RETRY_BASE_DELAY_MS: '5',
    EXPORT_RETRY_MAX_DELAY_MS: '50',
    LOG_LEVEL: 'ERROR',
  });
  return { prefix, sfn: new LocalStepFunctions(definitions, handler, { workBudgetMs: 5_000 }) };
}

async function manifests(prefix: string): Promise<Manifest[]> {
  return [...(await readObjects(stack.s3Client, stack.bucket, `${prefix}/manifests/`)).values()].map(
    (text) => JSON.parse(text) as Manifest,
  );
}

/** Keys of every data file (sessions, rejects, failed users) under `prefix`. */
async function dataKeys(prefix: string): Promise<string[]> {
  const keys = await Promise.all(
    FILE_KINDS.map((kind) => listKeys(stack.s3Client, stack.bucket, `${prefix}/${kind}/`)),
  );
  return keys.flat();
}

/** Data-file calls of one operation the job made, as `<bucket>/<key>` paths. */
const dataCalls = (prefix: string, operation: string) =>
  proxy.calls
    .filter((c) => c.operation === operation && FILE_KINDS.some((k) => c.path.includes(`/${prefix}/${k}/`)))
    .map((c) => c.path);

const openUploadsUnder = async (prefix: string) =>
  (await stack.s3.openUploads()).filter((u) => u.key.startsWith(`${prefix}/`));

async function expectVisibleRun(prefix: string, runId: string) {
  const visible = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
  expect(visible).toHaveLength(ids.flatMap((id) => sessionsFor(id, BASE_TIME)).length);
  expect(new Set(visible.map((s) => s.run_id))).toEqual(new Set([runId]));
}

describe('verification of every file before the commit point, through the state machine', () => {
  it('commits a run after one HeadObject per completed file, each matching the size and composite CRC32 written', async () => {
    const { prefix, sfn } = setUp();
    const callsBefore = proxy.calls.length;

    const execution = await sfn.startExecution(SNAPSHOT, SCHEDULED);

    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    const [manifest] = await manifests(prefix);
    const written = Object.values(manifest?.files ?? {})
      .flat()
      .map((f) => `${stack.bucket}/${f.key}`)
      .sort();
    expect(written.length).toBeGreaterThan(2);
    const run = proxy.calls.slice(callsBefore);
    expect(run.filter((c) => c.operation === 'CompleteMultipartUpload').length).toBe(written.length);
    expect(dataCalls(prefix, 'CompleteMultipartUpload').sort()).toEqual(written);
    expect(dataCalls(prefix, 'HeadObject').sort()).toEqual(written);
    await expectVisibleRun(prefix, manifest?.run_id ?? '');
  }, 300_000);

  it.each([
    ['a first run', 'truncate', false],
    ['a rerun of a committed slot', 'empty', true],
    ['a rerun of a committed slot', 'drop-last-part', true],
  ] as const)(
    'on %s whose store completes a sessions file short (%s), fails before the commit point and leaves nothing of the run',
    async (_, action, rerun) => {
      const { prefix, sfn } = setUp();
      let committed: Manifest | undefined;
      if (rerun) {
        expect((await sfn.startExecution(SNAPSHOT, SCHEDULED)).status).toBe('SUCCEEDED');
        [committed] = await manifests(prefix);
      }
      const rule: FaultRule = {
        operation: 'CompleteMultipartUpload',
        pathIncludes: `/${prefix}/sessions/`,
        after: 1,
        times: 1,
        action,
      };
      proxy.setRules([rule]);

      const execution = await sfn.startExecution(`${SNAPSHOT}-rerun-${prefixCounter}`, SCHEDULED);

      expect(execution).toMatchObject({ status: 'FAILED', error: { Error: 'SnapshotVerificationError' } });
      expect(execution.calls).toMatchObject({ Commit: 1, Abort: 1 });
      const faulted = proxy.calls.filter((c) => c.fault === action);
      expect(faulted.map((c) => c.faultError)).toEqual([undefined]);
      const victim = faulted[0]?.path.slice(stack.bucket.length + 1);
      expect(victim).toContain(`${prefix}/sessions/`);
      const failed = (await manifests(prefix)).filter((m) => m.run_id !== committed?.run_id);
      expect(failed).toEqual([
        expect.objectContaining({
          status: 'failed',
          error: expect.objectContaining({ type: 'SnapshotVerificationError', step: 'Commit' }),
        }),
      ]);
      expect(failed[0]?.error?.message).toContain(
        `s3://${stack.bucket}/${victim} is not what this run wrote`,
      );
      expect(failed[0]?.error?.message).toMatch(/\d+ bytes written, HeadObject says \d+/);
      // Readers keep what they saw: the committed run whole, or nothing.
      if (committed) {
        expect(await manifests(prefix)).toContainEqual(committed);
        await expectVisibleRun(prefix, committed.run_id);
        for (const key of await dataKeys(prefix)) expect(key).toContain(`.${committed.run_id}.`);
      } else {
        expect(await readVisibleSessions(stack.s3Client, stack.bucket, prefix)).toEqual([]);
        expect(await dataKeys(prefix)).toEqual([]);
      }
      expect(await openUploadsUnder(prefix)).toEqual([]);
    },
    300_000,
  );
});
