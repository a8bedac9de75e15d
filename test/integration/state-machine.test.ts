/**
 * The deployed state machine's definition (synthesized from infra/), run locally with the REAL
 * phase handlers against the local stack: DynamoDB Local, the fauxqs S3 server and the fake
 * MoonKey API. Each Work invocation gets a 5-second Lambda deadline, so every segment continues
 * across several invocations. Faults are injected per Task call, as Step Functions would see them.
 *
 * Open uploads: fauxqs has no ListMultipartUploads; the local S3 server lists the uploads it holds
 * open (`stack.s3.openUploads()`, what ListMultipartUploads would return). The upload records the
 * job writes under <prefix>/runs/ are collected after every invocation too, as evidence that a
 * run did leave uploads for Commit or Abort to deal with (Commit removes them with the run state).
 */
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import { getJson, listKeys, type OpenUpload } from '../../lambda/snapshot/s3-objects';
import { sessionsFor, userIdFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import {
  loadStateMachineDefinitions,
  type StateMachineDefinitions,
} from '../../local/state-machine-definitions';
import {
  type InjectedFault,
  type LocalExecution,
  type LocalExecutionOptions,
  LocalStepFunctions,
  type PhaseCall,
} from '../../local/state-machine-runner';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';
import { startThrottlingProxy } from '../helpers/throttling-proxy';

const BASE_TIME = 1_764_115_200;
const BIG_TABLE = 'sfn-users-big';
const BIG_USERS = 50_000;
const SMALL_TABLE = 'sfn-users-small';
const SMALL_USERS = 3_000;
const SLOT = '2026-11-27T02:00:00Z';
const SCHEDULED = scheduledEvent(SLOT);

let stack: LocalStack;
let definitions: StateMachineDefinitions;
let restoreEnv: () => void = () => {};
let bigIds: string[];
let smallIds: string[];
let prefixCounter = 0;

type Slice = { segment: number; step: number };

beforeAll(async () => {
  [stack, definitions] = await Promise.all([
    startLocalStack({ api: { baseTime: BASE_TIME, trackUsers: false } }),
    loadStateMachineDefinitions(),
  ]);
  await Promise.all([
    createUsersTable(stack.dynamodbClient, BIG_TABLE),
    createUsersTable(stack.dynamodbClient, SMALL_TABLE),
  ]);
  bigIds = await seedUsers(stack.dynamodbClient, BIG_TABLE, BIG_USERS);
  smallIds = await seedUsers(stack.dynamodbClient, SMALL_TABLE, SMALL_USERS);
}, 300_000);

afterEach(async () => {
  restoreEnv();
  await closeRuntime();
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => stack.api.reset());

interface Observed {
  readonly prefix: string;
  readonly sfn: LocalStepFunctions;
  /** Every upload the job recorded, collected after each invocation (records go with Commit). */
  readonly uploads: Map<string, OpenUpload>;
  /** Work invocations per segment. */
  readonly worksBySegment: Map<number, number>;
  /** Users each Work that ran short of time handed to the next (read from its step record). */
  readonly handOvers: { readonly segment: number; readonly pending: readonly string[] }[];
}

/** A LocalStepFunctions on a fresh prefix, the job configured for a compressed deadline. */
function setUp(
  table: string,
  env: Record<string, string> = {},
  options: LocalExecutionOptions = {},
): Observed {
  const prefix = `sfn${++prefixCounter}`;
  restoreEnv = useProcessEnv({
    ...stack.env,
    USERS_TABLE_NAME: table,
    EXPORT_PREFIX: prefix,
    EXPORT_SCAN_SEGMENTS: '4',
    EXPORT_CONCURRENCY: '32',
    // A 5 s Work budget that stops taking pages 3 s before the deadline: the page in hand (100
    // users) may then use 1.5 s, which it does even when the machine stalls under a full test run.
    EXPORT_SCAN_PAGE_SIZE: '100',
    EXPORT_DEADLINE_MARGIN_MS: '3000',
    EXPORT_RETRY_BASE_DELAY_MS: '5',
    EXPORT_RETRY_MAX_DELAY_MS: '50',
    LOG_LEVEL: 'ERROR',
    METRICS_ENABLED: 'false',
    ...env,
  });
  const uploads = new Map<string, OpenUpload>();
  const worksBySegment = new Map<number, number>();
  const handOvers: Observed['handOvers'][number][] = [];
  const sfn = new LocalStepFunctions(definitions, handler, {
    workBudgetMs: 5_000,
    ...options,
    onPhase: async (call) => {
      if (call.state === 'Work') {
        const { segment } = (call.payload as { slice: Slice }).slice;
        worksBySegment.set(segment, (worksBySegment.get(segment) ?? 0) + 1);
        const out = (call.result as { slice?: { cursor: string | null; tail: string } } | undefined)?.slice;
        if (out?.cursor && (JSON.parse(out.cursor) as { kind: string }).kind === 'handover') {
          const step = await getJson<{ pending: string[] }>(stack.s3Client, stack.bucket, out.tail);
          handOvers.push({ segment, pending: step?.pending ?? [] });
        }
      }
      for (const key of await listKeys(stack.s3Client, stack.bucket, `${prefix}/runs/`)) {
        if (!key.includes('/uploads/') || uploads.has(key)) continue;
        const record = await getJson<OpenUpload>(stack.s3Client, stack.bucket, key);
        if (record) uploads.set(key, { key: record.key, uploadId: record.uploadId });
      }
    },
  });
  return { prefix, sfn, uploads, worksBySegment, handOvers };
}

/** Multipart uploads the S3 server still holds open under `prefix`. */
async function openUploadsUnder(prefix: string) {
  return (await stack.s3.openUploads()).filter((u) => u.key.startsWith(`${prefix}/`));
}

const truthFor = (ids: readonly string[]) => ids.flatMap((id) => sessionsFor(id, BASE_TIME));
const byId = (a: { id?: unknown }, b: { id?: unknown }) => String(a.id).localeCompare(String(b.id));
const withoutSnapshotFields = (records: Record<string, unknown>[]) =>
  records.map(({ snapshot_id: _i, snapshot_at: _a, run_id: _r, observed_at: _o, ...session }) => session);

async function manifests(
  prefix: string,
): Promise<{ status: string; run_id: string; error: { type: string; step?: string } | null }[]> {
  return [...(await readObjects(stack.s3Client, stack.bucket, `${prefix}/manifests/`)).values()].map((t) =>
    JSON.parse(t),
  );
}

async function expectExactlyTheTruth(prefix: string, ids: readonly string[]) {
  const visible = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
  const truth = truthFor(ids);
  expect(visible).toHaveLength(truth.length);
  // Session ids are unique per user (the fake's random ids repeat across users, as real ones may).
  expect(new Set(visible.map((s) => `${String(s.user_id)}/${String(s.id)}`)).size).toBe(truth.length);
  expect(withoutSnapshotFields(visible).sort(byId)).toEqual([...truth].sort(byId));
}

async function expectFailedAndInvisible(run: Observed, execution: LocalExecution, errorType: string) {
  expect(execution).toMatchObject({ status: 'FAILED', error: { Error: errorType } });
  expect(execution.calls.Commit).toBeUndefined();
  expect(execution.calls.Abort).toBe(1);
  expect(await readVisibleSessions(stack.s3Client, stack.bucket, run.prefix)).toEqual([]);
  const written = await manifests(run.prefix);
  expect(written).toEqual([
    expect.objectContaining({ status: 'failed', error: expect.objectContaining({ type: errorType }) }),
  ]);
  expect(run.uploads.size).toBeGreaterThan(0);
  expect(await openUploadsUnder(run.prefix)).toEqual([]);
}

describe('a scheduled run through the state machine definition', () => {
  it(`exports ${BIG_USERS} users in 4 segments of several 5-second Work invocations each, exactly once`, async () => {
    // 8 calls in flight per segment at 4 ms: at most 2,000 users/s per segment, so each
    // segment's 12,500 users need at least four Work invocations of 2 s of work.
    stack.api.configure({ latencyMs: 4 });
    const run = setUp(BIG_TABLE);
    const started = Date.now();

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    const seconds = (Date.now() - started) / 1000;
    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    expect(execution.output).toMatchObject({ status: 'committed', snapshotId: 'scheduled-20261127T020000Z' });
    expect([...run.worksBySegment.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const works of run.worksBySegment.values()) expect(works).toBeGreaterThanOrEqual(4);
    await expectExactlyTheTruth(run.prefix, bigIds);
    expect((await manifests(run.prefix)).map((m) => m.status)).toEqual(['committed']);
    expect(await openUploadsUnder(run.prefix)).toEqual([]);
    // A benchmark's numbers, printed, not asserted.
    console.log(
      `state machine run: ${BIG_USERS} users in ${seconds.toFixed(1)} s (${Math.round(BIG_USERS / seconds)} users/s), ` +
        `Work invocations ${execution.calls.Work} (per segment ${JSON.stringify(Object.fromEntries(run.worksBySegment))})`,
    );
  }, 600_000);
});

describe('faults through the state machine definition', () => {
  // 2 calls in flight per segment at 10 ms each: at most 200 users/s per segment, so a segment's
  // 750 users always take more than one Work invocation (2 s of work each).
  const SLOW = { EXPORT_CONCURRENCY: '8' };
  beforeEach(() => stack.api.configure({ latencyMs: 10 }));

  it('retries a Work that died mid-step (after its uploads) and one Lambda refused: no duplicates, no open uploads', async () => {
    const faults = (call: PhaseCall): InjectedFault | undefined => {
      if (call.state !== 'Work') return undefined;
      if (call.count === 3) return { error: 'Lambda.ServiceException', at: 'before' };
      if (call.count === 5) return { error: 'Sandbox.Timedout', at: 'after' };
      return undefined;
    };
    const run = setUp(SMALL_TABLE, SLOW, { faults });

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    await expectExactlyTheTruth(run.prefix, smallIds);
    // The lost attempt's uploads were recorded, and Commit aborted them.
    expect(run.uploads.size).toBeGreaterThan(0);
    expect(await openUploadsUnder(run.prefix)).toEqual([]);
  }, 300_000);

  it('aborts when a Work fails beyond its retries: nothing visible, a failed manifest, no open uploads', async () => {
    let injected = 0;
    const faults = (call: PhaseCall): InjectedFault | undefined => {
      const slice = (call.payload as { slice?: Slice }).slice;
      if (call.state !== 'Work' || slice?.segment !== 1 || slice.step < 1) return undefined;
      injected++;
      return { error: 'Lambda.ServiceException', at: 'before' };
    };
    const run = setUp(SMALL_TABLE, SLOW, { faults });

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    await expectFailedAndInvisible(run, execution, 'Lambda.ServiceException');
    // The first attempt and its six retries, then no more.
    expect(injected).toBe(7);
    expect(execution.states.slice(-6)).toEqual([
      'RecordWorkFailure',
      'WaitForStragglers',
      'Abort',
      'AbortOutcome',
      'PublishFailed',
      'Failed',
    ]);
  }, 300_000);

  it('aborts the whole run on a 401 in one segment, without retrying it', async () => {
    const victim = smallIds[2_500] ?? userIdFor(2_500);
    stack.api.configure({ faults: { [victim]: [{ kind: 'status', status: 401 }] } });
    const run = setUp(SMALL_TABLE, SLOW);

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    await expectFailedAndInvisible(run, execution, 'ApiAuthError');
    expect((await manifests(run.prefix))[0]?.error?.step).toBe('Work');
    expect(stack.api.stats.requests).toBeLessThan(SMALL_USERS + 50);
  }, 300_000);
});

describe('one scheduled slot, run twice', () => {
  it('starts one execution for a slot the launcher is given twice, and a deliberate rerun replaces it: one copy', async () => {
    const run = setUp(SMALL_TABLE);

    const [first, second] = await Promise.all([
      run.sfn.launchScheduledSlot(SLOT),
      run.sfn.launchScheduledSlot(SLOT),
    ]);
    const slotRun = await run.sfn.execution('scheduled-20261127T020000Z');
    const late = await run.sfn.launchScheduledSlot(SLOT);
    const rerun = await run.sfn.startExecution('scheduled-20261127T020000Z-rerun-1', SCHEDULED);

    expect([first.status, second.status, late.status]).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(late.states).toContain('AlreadyStarted');
    expect(slotRun?.status).toBe('SUCCEEDED');
    expect(rerun.status).toBe('SUCCEEDED');
    expect(run.sfn.executionNames()).toEqual([
      'scheduled-20261127T020000Z',
      'scheduled-20261127T020000Z-rerun-1',
    ]);
    // Both executions are runs of the same snapshot; readers see the later one only.
    expect((rerun.output as { snapshotId: string }).snapshotId).toBe('scheduled-20261127T020000Z');
    await expectExactlyTheTruth(run.prefix, smallIds);
    expect(await openUploadsUnder(run.prefix)).toEqual([]);
  }, 300_000);
});

describe('time running out in a Work, through the state machine definition', () => {
  // 4 s Works that take no new page 1.5 s before their deadline and stop their calls 375 ms
  // before it. 4 calls in flight per segment at 20 ms: a segment's 750 users need 3.75 s of
  // calls, so every segment takes more than one Work whatever the machine's speed.
  const SHORT_WORKS = { EXPORT_CONCURRENCY: '16', EXPORT_DEADLINE_MARGIN_MS: '1500' };
  const SHORT = { workBudgetMs: 4_000 };
  // 0.5% of the users answer 2.5 s late, once: one started in the last 2.5 s before a Work's
  // hard stop is still in flight there.
  const slowUsers = (ids: readonly string[]) => ids.filter((_, i) => i % 200 === 0);
  const slowFaults = (ids: readonly string[]) =>
    Object.fromEntries(ids.map((id) => [id, [{ kind: 'delay' as const, ms: 2_500 }]]));
  beforeEach(() => stack.api.configure({ latencyMs: 20 }));

  const report = (
    what: string,
    run: Observed,
    execution: LocalExecution,
    seconds: number,
    slow: string[],
  ) => {
    const handedOver = run.handOvers.flatMap((h) => h.pending);
    console.log(
      `${what}: ${execution.status} in ${seconds.toFixed(1)} s, Work invocations ${execution.calls.Work} ` +
        `(per segment ${JSON.stringify(Object.fromEntries(run.worksBySegment))}), hand-overs ${run.handOvers.length} ` +
        `of ${handedOver.length} users, ${slow.filter((id) => handedOver.includes(id)).length} of the ${slow.length} slow users among them`,
    );
  };

  it("hands users still in flight at a Work's hard stop to the next Work: the run commits every session exactly once", async () => {
    const slow = slowUsers(smallIds);
    stack.api.configure({ faults: slowFaults(slow) });
    const run = setUp(SMALL_TABLE, SHORT_WORKS, SHORT);
    const started = Date.now();

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    report('slow users, scheduled run', run, execution, (Date.now() - started) / 1000, slow);
    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    await expectExactlyTheTruth(run.prefix, smallIds);
    // Scanned once (by the Work that read the page), processed once, none failed.
    expect(execution.output).toMatchObject({
      status: 'committed',
      counts: { users_scanned: SMALL_USERS, users_processed: SMALL_USERS, users_failed: 0 },
    });
    for (const works of run.worksBySegment.values()) expect(works).toBeGreaterThan(1);
    // Slow users were cut off in flight and called again by the next Work.
    const handedOver = run.handOvers.flatMap((h) => h.pending);
    expect(handedOver.filter((id) => slow.includes(id)).length).toBeGreaterThan(0);
    expect(await openUploadsUnder(run.prefix)).toEqual([]);
  }, 300_000);

  it('hands unfinished users of a listed audit over the same way: every listed user exactly once', async () => {
    const listed = smallIds.slice(0, 1_000);
    const slow = slowUsers(listed);
    stack.api.configure({ faults: slowFaults(slow) });
    // One segment of 4 calls in flight at 20 ms: 1,000 users need 5 s of calls, more than a Work.
    const run = setUp(SMALL_TABLE, { ...SHORT_WORKS, EXPORT_CONCURRENCY: '4' }, SHORT);
    const started = Date.now();

    const execution = await run.sfn.startExecution('audit-slow-users', {
      reason: 'slow users at a deadline',
      userIds: listed,
    });

    report('slow users, listed audit', run, execution, (Date.now() - started) / 1000, slow);
    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    await expectExactlyTheTruth(run.prefix, listed);
    expect(execution.output).toMatchObject({
      status: 'committed',
      counts: { users_scanned: listed.length, users_processed: listed.length, users_failed: 0 },
    });
    expect(run.worksBySegment.get(0)).toBeGreaterThan(1);
    expect(run.handOvers.length).toBeGreaterThan(0);
    expect(run.handOvers.flatMap((h) => h.pending).filter((id) => slow.includes(id)).length).toBeGreaterThan(
      0,
    );
    expect(await openUploadsUnder(run.prefix)).toEqual([]);
  }, 300_000);

  it("fails the run when a user's call cannot finish within a whole invocation, naming the setting: nothing committed, no open uploads", async () => {
    const stuck = smallIds[1_234] ?? userIdFor(1_234);
    // Every answer for this user comes 10 s late: never within a 4 s Work.
    stack.api.configure({
      faults: { [stuck]: Array.from({ length: 20 }, () => ({ kind: 'delay' as const, ms: 10_000 })) },
    });
    const run = setUp(SMALL_TABLE, SHORT_WORKS, SHORT);
    const started = Date.now();

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    report('a user that never answers in time', run, execution, (Date.now() - started) / 1000, [stuck]);
    await expectFailedAndInvisible(run, execution, 'WorkStalledError');
    const [manifest] = await manifests(run.prefix);
    expect(manifest?.error).toMatchObject({ type: 'WorkStalledError', step: 'Work' });
    const message = (manifest?.error as { message?: string } | null)?.message ?? '';
    expect(message).toContain(stuck);
    expect(message).toContain('EXPORT_REQUEST_TOTAL_TIMEOUT_MS');
    expect(message).toContain('EXPORT_DEADLINE_MARGIN_MS');
    // It was handed over (a Work short of time fails nothing) before a Work stalled on it.
    expect(run.handOvers.some((h) => h.pending.includes(stuck))).toBe(true);
  }, 300_000);

  it('fails the run when not one page of users arrives in a whole invocation, naming the setting', async () => {
    // DynamoDB throttles every Scan for longer than the run: no Work ever gets a page.
    const proxy = await startThrottlingProxy(stack.dynamodb.endpoint, 600_000);
    try {
      const run = setUp(SMALL_TABLE, { ...SHORT_WORKS, AWS_ENDPOINT_URL_DYNAMODB: proxy.url }, SHORT);

      const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

      expect(execution).toMatchObject({ status: 'FAILED', error: { Error: 'WorkStalledError' } });
      expect(execution.calls.Commit).toBeUndefined();
      expect(proxy.stats.throttled).toBeGreaterThan(0);
      expect(proxy.stats.passed).toBe(0);
      const [manifest, ...others] = await manifests(run.prefix);
      expect(others).toEqual([]);
      expect(manifest).toMatchObject({ status: 'failed', error: { type: 'WorkStalledError', step: 'Work' } });
      const message = (manifest?.error as { message?: string } | null)?.message ?? '';
      expect(message).toContain('not one page of users arrived');
      expect(message).toContain('EXPORT_DYNAMODB_MAX_ATTEMPTS');
      expect(await openUploadsUnder(run.prefix)).toEqual([]);
    } finally {
      await proxy.close();
    }
  }, 300_000);
});

describe('EXPORT_CONCURRENCY across the segments of a run through the state machine definition', () => {
  it('keeps the calls in flight at the API to EXPORT_CONCURRENCY with 4 segments, the remainder shared out', async () => {
    // 6 calls over 4 segments: 2, 2, 1, 1. At 5 ms a call a segment's 750 users take seconds, so
    // the API sees all six at once; a share rounded up (2 each) would show 8, rounded down 4.
    // Longer Works and pages of 50 than the other runs here: a one-call segment's page in hand
    // must fit the deadline margin even when the machine is loaded, and this is not about deadlines.
    stack.api.configure({ latencyMs: 5 });
    const run = setUp(
      SMALL_TABLE,
      {
        EXPORT_CONCURRENCY: '6',
        EXPORT_ADAPTIVE_CONCURRENCY: 'false',
        EXPORT_SCAN_PAGE_SIZE: '50',
        EXPORT_DEADLINE_MARGIN_MS: '10000',
      },
      { workBudgetMs: 30_000 },
    );

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    expect({ status: execution.status, error: execution.error }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
    });
    expect([...run.worksBySegment.keys()].sort()).toEqual([0, 1, 2, 3]);
    expect(stack.api.stats.requests).toBe(SMALL_USERS);
    expect(stack.api.stats.maxInFlight).toBe(6);
    await expectExactlyTheTruth(run.prefix, smallIds);
  }, 300_000);

  it('refuses more segments than EXPORT_CONCURRENCY before any call: 4 segments at concurrency 2', async () => {
    const run = setUp(SMALL_TABLE, { EXPORT_CONCURRENCY: '2' });

    const execution = await run.sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    expect(execution.status).toBe('FAILED');
    expect(execution.error?.Error).toBe('ConfigError');
    expect(execution.error?.Cause).toContain('EXPORT_SCAN_SEGMENTS must be at most EXPORT_CONCURRENCY (2)');
    expect(execution.calls.Work).toBeUndefined();
    expect(stack.api.stats.requests).toBe(0);
    expect(await readVisibleSessions(stack.s3Client, stack.bucket, run.prefix)).toEqual([]);
  }, 300_000);
});
