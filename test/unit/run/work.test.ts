import { gunzipSync } from 'node:zlib';
import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  RunAbandonedError,
  ScanUsersError,
  WorkStalledError,
} from '../../../lambda/core/errors';
import type { FetchSessions } from '../../../lambda/moonkey/sessions-client';
import { createPiiCopies } from '../../../lambda/run/pii-copies';
import { planPhase } from '../../../lambda/run/plan-phase';
import type { RunPlan } from '../../../lambda/run/run-plan';
import { RunStore } from '../../../lambda/run/run-store';
import { runWork, type WorkInput } from '../../../lambda/run/work';
import { putJson } from '../../../lambda/snapshot/s3-objects';
import { sessionsFor } from '../../../local/fake-sessions';
import { gate, until } from '../../helpers/gate';
import { type MemoryContext, memoryContext, moonkeyAnswer, runPlan } from '../../helpers/memory-context';
import { commandName } from '../../helpers/memory-s3';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `user_${String(i).padStart(5, '0')}`);

async function workOn(ctx: MemoryContext, plan: RunPlan, overrides: Partial<WorkInput> = {}) {
  const { run } = await planPhase(ctx, plan);
  const store = await RunStore.open(ctx.s3, 'exports', 'moonkey', run.planKey);
  const input: WorkInput = {
    store,
    segment: 0,
    totalSegments: 1,
    step: 0,
    invocation: 'inv0',
    cursor: plan.users.kind === 'list' ? { kind: 'list', offset: 0 } : { kind: 'scan', key: undefined },
    handedOver: [],
    // A Work with all the time it needs, unless a test says otherwise.
    stopAt: Date.now() + 600_000,
    hardStopAt: Date.now() + 600_000,
    ...overrides,
  };
  return { store, input, result: () => runWork(input, ctx) };
}

const audit = (userIds: string[]) => runPlan({ trigger: 'audit', users: { kind: 'list', userIds } });

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A MoonKey whose calls wait until the test answers them, counting those held. */
function heldMoonKey(answer: (userId: string) => unknown[] = () => []) {
  const waiting: (() => void)[] = [];
  let most = 0;
  let holding = true;
  const fetchSessions: FetchSessions = (userId) => {
    const reply = moonkeyAnswer({ sessions: answer(userId) });
    if (!holding) return Promise.resolve(reply);
    return new Promise((resolve) => {
      waiting.push(() => resolve(reply));
      most = Math.max(most, waiting.length);
    });
  };
  return {
    fetchSessions,
    held: () => waiting.length,
    most: () => most,
    answerHeld: () => {
      for (const reply of waiting.splice(0)) reply();
    },
    answerAll: () => {
      holding = false;
      for (const reply of waiting.splice(0)) reply();
    },
  };
}

/** A call that ends only when the Work's signal aborts it, as the real client's does. */
const untilAborted: FetchSessions = (_userId, signal) =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

/** The lines S3 holds in the open (not yet completed) uploads of keys under `prefix`. */
function openUploadLines(ctx: MemoryContext, prefix: string): Record<string, unknown>[] {
  return [...ctx.memory.uploads.values()]
    .filter((u) => u.key.startsWith(prefix))
    .flatMap((u) => {
      const gz = Buffer.concat([...u.parts].sort(([a], [b]) => a - b).map(([, part]) => part.body));
      return gunzipSync(gz).toString('utf8').split('\n').filter(Boolean);
    })
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('runWork: calls in flight', () => {
  it.each([4, 16, 64])(
    'keeps exactly EXPORT_CONCURRENCY=%d calls in flight while users wait',
    async (limit) => {
      const moonkey = heldMoonKey();
      const ctx = memoryContext(
        { EXPORT_CONCURRENCY: String(limit), EXPORT_SCAN_SEGMENTS: '1' },
        { fetchSessions: moonkey.fetchSessions },
      );
      const { result } = await workOn(ctx, audit(ids(limit * 5)));

      const out = result();
      // Answered a wave at a time, once `limit` calls are held together.
      for (let wave = 0; wave < 5; wave++) {
        await until(() => moonkey.held() >= limit, `${limit} calls in flight`);
        moonkey.answerHeld();
      }

      expect((await out).counts.users_processed).toBe(limit * 5);
      expect(moonkey.most()).toBe(limit);
    },
  );

  it.each([
    [0, 3],
    [1, 2],
  ])(
    'gives segment %d of 2 its share of EXPORT_CONCURRENCY=5: %d calls in flight',
    async (segment, share) => {
      const moonkey = heldMoonKey();
      const ctx = memoryContext(
        { EXPORT_CONCURRENCY: '5', EXPORT_ADAPTIVE_CONCURRENCY: 'false' },
        { fetchSessions: moonkey.fetchSessions },
      );
      const { result } = await workOn(ctx, audit(ids(20)), { segment, totalSegments: 2 });

      const out = result();
      await until(() => moonkey.held() === share, `${share} calls in flight`);
      await settle();
      expect(moonkey.held()).toBe(share);
      moonkey.answerAll();

      expect((await out).counts.users_processed).toBe(20);
      expect(moonkey.most()).toBe(share);
    },
  );
});

describe('runWork: users waiting', () => {
  it('holds at most twice the concurrency plus 32 users started and unfinished, as while they back off', async () => {
    const started = new Set<string>();
    let most = 0;
    const ctx = memoryContext(
      {
        EXPORT_CONCURRENCY: '4',
        EXPORT_SCAN_SEGMENTS: '1',
        EXPORT_ADAPTIVE_CONCURRENCY: 'false',
        // Backoffs of a millisecond: the users still all back off at once (admission fills
        // before any timer can fire), and the test spends no time waiting.
        EXPORT_RETRY_BASE_DELAY_MS: '1',
        EXPORT_RETRY_MAX_DELAY_MS: '1',
      },
      {
        fetchSessions: async (userId) => {
          if (!started.has(userId)) {
            started.add(userId);
            most = Math.max(most, started.size);
            // Every user's first call is throttled: it backs off, holding no slot, and stays unfinished.
            throw new ApiRetryableError('HTTP 429', 1);
          }
          started.delete(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { result } = await workOn(ctx, audit(ids(300)));

    const out = await result();

    expect(out.counts.users_processed).toBe(300);
    expect(most).toBe(4 * 2 + 32);
  });
});

describe('runWork: a listed audit and the deadline', () => {
  it('stops a listed audit between chunks once its deadline passed, and the next Work goes on from there', async () => {
    const called: string[] = [];
    const ctx = memoryContext(
      { EXPORT_SCAN_SEGMENTS: '1' },
      {
        fetchSessions: async (userId) => {
          called.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const users = ids(1_200);
    const { input } = await workOn(ctx, audit(users), { stopAt: Date.now() - 1 });

    const first = await runWork(input, ctx);
    const second = await runWork({ ...input, step: 1, invocation: 'inv1', cursor: first.next as never }, ctx);
    const third = await runWork({ ...input, step: 2, invocation: 'inv2', cursor: second.next as never }, ctx);

    // A Work always finishes the chunk it took (500 users), however late it is.
    expect(first.next).toEqual({ kind: 'list', offset: 500 });
    expect(second.next).toEqual({ kind: 'list', offset: 1000 });
    expect(third.next).toBeUndefined();
    expect([first, second, third].map((r) => r.counts.users_scanned)).toEqual([500, 500, 200]);
    expect(called).toEqual(users);
  });
});

describe('runWork: a run given up', () => {
  it('stops before its first call once the run has a failed manifest', async () => {
    const fetched: string[] = [];
    const ctx = memoryContext(
      { EXPORT_SCAN_SEGMENTS: '1' },
      {
        fetchSessions: async (userId) => {
          fetched.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { store, result } = await workOn(ctx, audit(ids(10)));
    await putJson(ctx.s3, 'exports', store.keys.manifestKey(), { status: 'failed' });

    await expect(result()).rejects.toThrow(RunAbandonedError);
    expect(fetched).toEqual([]);
  });

  it('checks again between chunks: a run given up while a Work runs stops at its next chunk', async () => {
    let store: RunStore | undefined;
    let calls = 0;
    const ctx = memoryContext(
      { EXPORT_SCAN_SEGMENTS: '1', EXPORT_CONCURRENCY: '4' },
      {
        fetchSessions: async () => {
          calls++;
          // Another segment failed and Abort wrote the failed manifest meanwhile.
          if (calls === 10 && store)
            await putJson(ctx.s3, 'exports', store.keys.manifestKey(), { status: 'failed' });
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const work = await workOn(ctx, audit(ids(1_200)));
    store = work.store;

    await expect(work.result()).rejects.toThrow(RunAbandonedError);
    // The first chunk (500 users) was started; none of the next 700 were.
    expect(calls).toBeGreaterThanOrEqual(10);
    expect(calls).toBeLessThanOrEqual(500);
  });
});

describe('runWork: what it writes', () => {
  it('puts the run id on every session, reject and failed-user line', async () => {
    const ctx = memoryContext(
      {
        EXPORT_SCAN_SEGMENTS: '1',
        EXPORT_FAILED_USERS_TOLERANCE: '100%',
        EXPORT_REJECTED_ITEMS_TOLERANCE: '100%',
      },
      {
        fetchSessions: async (userId) => {
          if (userId.endsWith('1')) throw new ApiRequestError(500, 'HTTP 500: upstream down');
          if (userId.endsWith('2')) return moonkeyAnswer({ sessions: [{ not: 'a session' }] });
          return moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) });
        },
      },
    );
    const plan = audit(ids(30));
    const { store, result } = await workOn(ctx, plan);

    const out = await result();

    expect(out.counts.users_failed).toBe(3);
    expect(out.counts.items_rejected).toBe(3);
    for (const kind of ['sessions', 'rejects', 'failed-users'] as const) {
      const lines = openUploadLines(ctx, store.keys.runFilePrefix(kind));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines)
        expect(line).toMatchObject({ run_id: plan.runId, snapshot_id: plan.snapshotId });
    }
    const failedLines = openUploadLines(ctx, store.keys.runFilePrefix('failed-users'));
    expect(failedLines.map((l) => l.user_id).sort()).toEqual(['user_00001', 'user_00011', 'user_00021']);
    // The step's own list, for the manifest.
    expect(out.failedUsers.map((f) => f.user_id).sort()).toEqual(['user_00001', 'user_00011', 'user_00021']);
  });

  it('records each upload before it sends the upload its first part', async () => {
    const ctx = memoryContext(
      { EXPORT_SCAN_SEGMENTS: '1', EXPORT_UPLOAD_PART_BYTES: String(5 * 1024 * 1024) },
      { fetchSessions: async (userId) => moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) }) },
    );
    const { result } = await workOn(ctx, audit(ids(50)));

    const out = await result();

    expect(out.files.length).toBeGreaterThan(0);
    for (const file of out.files) {
      const recorded = ctx.memory.inputs.findIndex(
        (c) => c.command === 'PutObjectCommand' && String(c.input.Body).includes(file.uploadId),
      );
      const firstPart = ctx.memory.inputs.findIndex(
        (c) => c.command === 'UploadPartCommand' && c.input.UploadId === file.uploadId,
      );
      expect(recorded).toBeGreaterThanOrEqual(0);
      expect(firstPart).toBeGreaterThan(recorded);
    }
  });
});

/** A users table of `pages` (each page's ids) as DynamoDB answers a Scan; records each Scan's input. */
function usersTable(pages: readonly (readonly (string | undefined)[])[]) {
  const scans: Record<string, unknown>[] = [];
  const keyOf = (page: number) => ({ user_id: { S: `after-${page}` } });
  const dynamodb = async (command: { constructor: { name: string }; input: unknown }) => {
    // Plan sizes the table first.
    if (command.constructor.name !== 'ScanCommand') return { Table: { ItemCount: 10 } };
    const input = command.input as { ExclusiveStartKey?: { user_id: { S: string } } };
    scans.push(input as Record<string, unknown>);
    const at =
      input.ExclusiveStartKey === undefined ? 0 : Number(input.ExclusiveStartKey.user_id.S.slice(6)) + 1;
    const page = pages[at] ?? [];
    return {
      Items: page.map((id) => (id === undefined ? { other: { S: 'x' } } : { user_id: { S: id } })),
      LastEvaluatedKey: at + 1 < pages.length ? keyOf(at) : undefined,
    };
  };
  return { dynamodb, scans, keyOf };
}

/** A client that answers the first Scan from `table` and holds every later one until its call is aborted. */
function firstPageThenHang(table: ReturnType<typeof usersTable>) {
  let scans = 0;
  const dynamodb = {
    send: (
      command: { constructor: { name: string }; input: unknown },
      options: { abortSignal: AbortSignal },
    ) => {
      scans++;
      if (scans === 1) return table.dynamodb(command);
      return new Promise((_resolve, reject) =>
        options.abortSignal.addEventListener('abort', () => reject(new Error('aborted'))),
      );
    },
  } as never;
  return { dynamodb, scans: () => scans };
}

describe('runWork: a scanned segment', () => {
  it('walks its segment of the table page by page until the Scan ends, counting unusable items', async () => {
    const table = usersTable([['a', 'b', undefined], ['c']]);
    const fetched: string[] = [];
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '4', EXPORT_SCAN_PAGE_SIZE: '3' },
      {
        dynamodb: table.dynamodb,
        fetchSessions: async (userId) => {
          fetched.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { result } = await workOn(ctx, runPlan(), { segment: 1, totalSegments: 2 });

    const out = await result();

    expect(fetched.sort()).toEqual(['a', 'b', 'c']);
    expect(out.counts).toMatchObject({ users_scanned: 3, users_unusable: 1, users_processed: 3 });
    expect(out.next).toBeUndefined();
    expect(out.pending).toEqual([]);
    expect(table.scans[0]).toMatchObject({ TableName: 'users', Limit: 3, Segment: 1, TotalSegments: 2 });
    expect(table.scans[1]).toMatchObject({ ExclusiveStartKey: table.keyOf(0) });
  });

  it('stops after the first page once its deadline passed, and the next Work goes on from that page’s end', async () => {
    const table = usersTable([['a', 'b'], ['c'], ['d']]);
    const ctx = memoryContext({}, { dynamodb: table.dynamodb });
    const { input } = await workOn(ctx, runPlan(), { stopAt: Date.now() - 1 });

    const first = await runWork(input, ctx);
    const second = await runWork({ ...input, step: 1, invocation: 'inv1', cursor: first.next as never }, ctx);

    expect(first.next).toEqual({ kind: 'scan', key: table.keyOf(0) });
    expect(first.counts.users_scanned).toBe(2);
    expect(second.next).toEqual({ kind: 'scan', key: table.keyOf(1) });
    expect(second.counts).toMatchObject({ users_scanned: 1, users_processed: 1 });
  });

  it('refuses a list cursor for a run that scans the table', async () => {
    const ctx = memoryContext();
    const { result } = await workOn(ctx, runPlan(), { cursor: { kind: 'list', offset: 0 } });

    await expect(result()).rejects.toThrow('a list cursor needs a listed audit');
  });

  it('counts but does not call the users of a dry run', async () => {
    const table = usersTable([['a', 'b'], ['c']]);
    const fetched: string[] = [];
    const ctx = memoryContext(
      {},
      {
        dynamodb: table.dynamodb,
        fetchSessions: async (userId) => {
          fetched.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { result } = await workOn(ctx, runPlan({ dryRun: true }));

    const out = await result();

    expect(fetched).toEqual([]);
    expect(out.counts).toMatchObject({ users_scanned: 3, users_processed: 0 });
    expect(out.pending).toEqual([]);
    expect(out.next).toBeUndefined();
  });
});

describe('runWork: users handed over', () => {
  it('does the users handed over first, without counting them as scanned again', async () => {
    const fetched: string[] = [];
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '1' },
      {
        fetchSessions: async (userId) => {
          fetched.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { result } = await workOn(ctx, audit(['c', 'd']), { handedOver: ['a', 'b'] });

    const out = await result();

    expect(fetched).toEqual(['a', 'b', 'c', 'd']);
    expect(out.counts).toMatchObject({ users_scanned: 2, users_processed: 4 });
    expect(out.next).toBeUndefined();
  });

  it('does only the users handed over once its deadline passed, leaving its cursor to the next Work', async () => {
    const fetched: string[] = [];
    const ctx = memoryContext(
      {},
      {
        fetchSessions: async (userId) => {
          fetched.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const { result } = await workOn(ctx, audit(['c', 'd']), {
      handedOver: ['a', 'b'],
      stopAt: Date.now() - 1,
    });

    const out = await result();

    expect(fetched.sort()).toEqual(['a', 'b']);
    expect(out.counts).toMatchObject({ users_scanned: 0, users_processed: 2 });
    expect(out.next).toEqual({ kind: 'list', offset: 0 });
  });

  it('does only the users handed over when nothing of the segment is left after them', async () => {
    const ctx = memoryContext();
    const { result } = await workOn(ctx, audit(['c', 'd']), { handedOver: ['a'], cursor: null });

    const out = await result();

    expect(out.counts).toMatchObject({ users_scanned: 0, users_processed: 1 });
    expect(out.next).toBeUndefined();
  });
});

describe('runWork: the hard stop', () => {
  // The Work's clock (its hard-stop timer, its progress timer, Date.now) is jest's; the event
  // loop's own turns (setImmediate, which `until` waits on) stay real.
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => jest.useRealTimers());

  const HARD_STOP_MS = 60_000;

  it('aborts the calls in flight and hands their users, and those not started, to the next Work', async () => {
    const answered = new Set(['u-0', 'u-1']);
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '2', EXPORT_ADAPTIVE_CONCURRENCY: 'false' },
      {
        fetchSessions: (userId, signal) =>
          answered.has(userId)
            ? Promise.resolve(moonkeyAnswer({ sessions: [] }))
            : untilAborted(userId, signal),
      },
    );
    const users = Array.from({ length: 10 }, (_, i) => `u-${i}`);
    const { input, result } = await workOn(ctx, audit(users), { hardStopAt: Date.now() + HARD_STOP_MS });

    const out = result();
    await until(() => ctx.memory.inputs.length > 0, 'the Work started');
    await settle();
    jest.advanceTimersByTime(HARD_STOP_MS);
    const first = await out;

    expect(first.counts).toMatchObject({ users_scanned: 10, users_processed: 2, users_failed: 0 });
    expect(first.pending).toEqual(users.slice(2));
    expect(first.next).toEqual({ kind: 'handover', users: 8, after: null });

    // The next Work does them, and counts none of them as scanned again.
    for (const user of users) answered.add(user);
    const second = await runWork(
      {
        ...input,
        step: 1,
        invocation: 'inv1',
        cursor: null,
        handedOver: first.pending,
        hardStopAt: Date.now() + HARD_STOP_MS,
      },
      ctx,
    );
    expect(second.counts).toMatchObject({ users_scanned: 0, users_processed: 8 });
    expect(second.next).toBeUndefined();
  });

  it('hands over a user listed twice as often as it is still owed', async () => {
    let calls = 0;
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '4' },
      {
        fetchSessions: (userId, signal) =>
          ++calls === 1 ? Promise.resolve(moonkeyAnswer({ sessions: [] })) : untilAborted(userId, signal),
      },
    );
    const { result } = await workOn(ctx, audit(['a', 'a', 'a']), { hardStopAt: Date.now() + HARD_STOP_MS });

    const out = result();
    await until(() => calls === 3, 'three calls');
    jest.advanceTimersByTime(HARD_STOP_MS);

    expect((await out).pending).toEqual(['a', 'a']);
  });

  it('goes on when some of the users handed over finished before the hard stop', async () => {
    const ctx = memoryContext(
      {},
      {
        fetchSessions: (userId, signal) =>
          userId === 'h1' ? Promise.resolve(moonkeyAnswer({ sessions: [] })) : untilAborted(userId, signal),
      },
    );
    // Nothing of the segment is left after them: the hand-over is all this Work takes.
    const { result } = await workOn(ctx, audit(['c']), {
      handedOver: ['h1', 'h2'],
      cursor: null,
      hardStopAt: Date.now() + HARD_STOP_MS,
    });

    const out = result();
    await until(() => ctx.memory.inputs.length > 0, 'the Work started');
    await settle();
    jest.advanceTimersByTime(HARD_STOP_MS);

    const done = await out;
    expect(done.pending).toEqual(['h2']);
    expect(done.next).toEqual({ kind: 'handover', users: 1, after: null });
  });

  it.each([
    [['a', 'b', 'c'], '(a, b, c)'],
    [['a', 'b', 'c', 'd'], '(a, b, c, ...)'],
  ])(
    'fails with WorkStalledError when none of the users handed over (%j) finished',
    async (handedOver, named) => {
      // The walk's own user is answered: only the users handed over decide.
      const ctx = memoryContext(
        {},
        {
          fetchSessions: (userId, signal) =>
            userId === 'z' ? Promise.resolve(moonkeyAnswer({ sessions: [] })) : untilAborted(userId, signal),
        },
      );
      const { store, result } = await workOn(ctx, audit(['z']), {
        handedOver,
        hardStopAt: Date.now() + HARD_STOP_MS,
      });

      const out = result();
      out.catch(() => undefined);
      await until(() => ctx.memory.inputs.length > 0, 'the Work started');
      await settle();
      jest.advanceTimersByTime(HARD_STOP_MS);

      await expect(out).rejects.toThrow(WorkStalledError);
      await expect(out).rejects.toThrow(
        `none of the ${handedOver.length} users handed over to this Work ${named} finished in its whole invocation (${HARD_STOP_MS} ms to its hard stop)`,
      );
      // Recorded for the failed manifest.
      expect(ctx.memory.objects.has(store.keys.failedWorkKey(0, 0, 'inv0'))).toBe(true);
    },
  );

  it('fails with WorkStalledError when not one page of users arrived before the hard stop', async () => {
    const base = memoryContext({ EXPORT_SCAN_PAGE_SIZE: '250' });
    let scans = 0;
    const ctx: MemoryContext = {
      ...base,
      dynamodb: {
        send: (_command: unknown, options: { abortSignal: AbortSignal }) => {
          scans++;
          const { abortSignal } = options;
          return new Promise((_resolve, reject) =>
            abortSignal.addEventListener('abort', () => reject(new Error('aborted'))),
          );
        },
      } as never,
    };
    const { input } = await workOn(base, runPlan(), { hardStopAt: Date.now() + HARD_STOP_MS });

    const out = runWork(input, ctx);
    out.catch(() => undefined);
    await until(() => scans === 1, 'the Scan was sent');
    jest.advanceTimersByTime(HARD_STOP_MS);

    await expect(out).rejects.toThrow(
      new WorkStalledError(
        `not one page of users arrived from users in this Work's whole invocation (${HARD_STOP_MS} ms to its hard stop), so it could not make progress; nothing was committed. Reading a page is retried up to EXPORT_DYNAMODB_MAX_ATTEMPTS=10 times while DynamoDB throttles: raise the table's read capacity, lower EXPORT_SCAN_PAGE_SIZE=250, or give each Work more time (raise the function timeout, or lower EXPORT_DEADLINE_MARGIN_MS=60000)`,
      ),
    );
  });

  it('keeps the pages it took when the hard stop cuts the read of the next one: that page is read again', async () => {
    const table = usersTable([['a', 'b'], ['c']]);
    const base = memoryContext();
    const stalled = firstPageThenHang(table);
    const ctx: MemoryContext = { ...base, dynamodb: stalled.dynamodb };
    const { input } = await workOn(base, runPlan(), { hardStopAt: Date.now() + HARD_STOP_MS });

    const out = runWork(input, ctx);
    await until(() => stalled.scans() === 2, 'the second page was asked for');
    await settle();
    jest.advanceTimersByTime(HARD_STOP_MS);

    const done = await out;
    expect(done.counts).toMatchObject({ users_scanned: 2, users_processed: 2 });
    expect(done.next).toEqual({ kind: 'scan', key: table.keyOf(0) });
  });

  it('starts no new chunk once its clock reaches stopAt itself', async () => {
    const ctx = memoryContext();
    const { result } = await workOn(ctx, audit(ids(600)), {
      stopAt: Date.now(),
      hardStopAt: Date.now() + HARD_STOP_MS,
    });

    const out = await result();

    expect(out.next).toEqual({ kind: 'list', offset: 500 });
  });

  it('leaves the next chunk to its cursor when the hard stop comes between chunks', async () => {
    const ctx = memoryContext();
    const { store, result } = await workOn(ctx, audit(ids(600)), { hardStopAt: Date.now() + HARD_STOP_MS });
    // The check of the run between the chunks is held until the hard stop has come.
    const check = gate();
    let manifestReads = 0;
    ctx.memory.latency = (command) => {
      const input = (command as { input: { Key?: string } }).input;
      if (commandName(command) !== 'GetObjectCommand' || input.Key !== store.keys.manifestKey())
        return undefined;
      return ++manifestReads === 2 ? check.promise : undefined;
    };

    const out = result();
    await until(() => manifestReads === 2, 'the check between chunks');
    jest.advanceTimersByTime(HARD_STOP_MS);
    check.open();
    const done = await out;

    expect(done.counts).toMatchObject({ users_scanned: 500, users_processed: 500 });
    expect(done.pending).toEqual([]);
    expect(done.next).toEqual({ kind: 'list', offset: 500 });
  });

  it('logs its progress every EXPORT_PROGRESS_INTERVAL_MS while it runs, and not after', async () => {
    const moonkey = heldMoonKey();
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '3', EXPORT_PROGRESS_INTERVAL_MS: '1000' },
      { fetchSessions: moonkey.fetchSessions },
    );
    const { result } = await workOn(ctx, audit(ids(5)), { hardStopAt: Date.now() + HARD_STOP_MS });
    const progress = () =>
      ctx.logger.lines
        .map((line) => JSON.parse(line) as { message: string; extra: Record<string, unknown>[] })
        .filter((line) => line.message === 'progress')
        .map((line) => line.extra[0]);

    const out = result();
    await until(() => moonkey.held() === 3, 'three calls in flight');
    jest.advanceTimersByTime(999);
    expect(progress()).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(progress()).toEqual([
      {
        segment: 0,
        usersScanned: 5,
        usersDone: 0,
        usersPerSecond: 0,
        inFlight: 3,
        concurrency: 3,
        sessionsExported: 0,
        usersFailed: 0,
        usersNotFound: 0,
        retries: 0,
        elapsedMs: 1000,
      },
    ]);
    moonkey.answerHeld();
    await until(() => moonkey.held() === 2, 'the last two calls in flight');
    jest.advanceTimersByTime(1000);
    expect(progress()[1]).toMatchObject({ usersDone: 3, usersPerSecond: 2, inFlight: 2, elapsedMs: 2000 });
    moonkey.answerAll();
    await out;
    jest.advanceTimersByTime(10_000);
    expect(progress()).toHaveLength(2);
  });
});

describe('runWork: its summary log line', () => {
  const finished = (ctx: MemoryContext) =>
    ctx.logger.lines
      .map((line) => JSON.parse(line) as { message: string; extra: Record<string, unknown>[] })
      .filter((line) => line.message === 'work step finished')
      .map((line) => line.extra[0]);

  it('says what the step did and, under adaptive concurrency, how the window moved', async () => {
    const ctx = memoryContext({ EXPORT_CONCURRENCY: '4' });
    const { result } = await workOn(ctx, audit(ids(3)));

    const out = await result();

    expect(finished(ctx)).toEqual([
      {
        segment: 0,
        done: true,
        counts: out.counts,
        handedOver: 0,
        adaptiveConcurrency: { decreases: 0, lowest: 4, final: 4, max: 4 },
      },
    ]);
  });

  it('says nothing of adaptive concurrency when it is off, and that the segment is not done when it stopped early', async () => {
    const ctx = memoryContext({ EXPORT_ADAPTIVE_CONCURRENCY: 'false' });
    const { result } = await workOn(ctx, audit(ids(600)), { stopAt: Date.now() - 1 });

    await result();

    expect(finished(ctx)).toEqual([expect.not.objectContaining({ adaptiveConcurrency: expect.anything() })]);
    expect(finished(ctx)[0]).toMatchObject({ done: false, handedOver: 0 });
  });
});

describe('runWork: the rate cap', () => {
  beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => jest.useRealTimers());

  it('starts calls no faster than its segment’s share of EXPORT_MAX_RPS', async () => {
    let calls = 0;
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '4', EXPORT_MAX_RPS: '20' },
      {
        fetchSessions: async () => {
          calls++;
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    // 20 per second over 2 segments: one call each 100 ms.
    const { result } = await workOn(ctx, audit(ids(30)), {
      totalSegments: 2,
      hardStopAt: Date.now() + 600_000,
    });

    const out = result();
    await until(() => calls === 1, 'the first call');
    await settle();
    expect(calls).toBe(1);
    for (let i = 0; i < 10; i++) {
      jest.advanceTimersByTime(100);
      await settle();
    }
    expect(calls).toBe(11);
    for (let i = 0; i < 20; i++) {
      jest.advanceTimersByTime(100);
      await settle();
    }
    expect((await out).counts.users_processed).toBe(30);
  });
});

describe('runWork: a failed Work', () => {
  /**
   * `before` users with sessions, written to small files (120 fill more than one), one of them
   * failed, then one whose key MoonKey rejects.
   */
  async function failingWork(before = 120) {
    const ctx = memoryContext(
      {
        EXPORT_CONCURRENCY: '1',
        EXPORT_TARGET_FILE_BYTES: '1024',
        EXPORT_GZIP_LEVEL: '1',
        EXPORT_FAILED_USERS_TOLERANCE: '1',
      },
      {
        fetchSessions: async (userId) => {
          if (userId === ids(before + 1)[before]) throw new ApiAuthError(401);
          if (userId === ids(8)[7]) throw new ApiRequestError(400, 'HTTP 400: no such user id format');
          return moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) });
        },
      },
    );
    const work = await workOn(ctx, audit(ids(before + 10)));
    return { ctx, ...work };
  }
  const runUploads = (ctx: MemoryContext, runId: string) =>
    [...ctx.memory.uploads.values()].filter((u) => u.key.includes(runId));

  it('aborts every upload it opened, records what it had done, and throws the error that stopped it', async () => {
    const { ctx, store, result } = await failingWork();

    await expect(result()).rejects.toThrow(ApiAuthError);

    expect(
      ctx.memory.inputs.filter((c) => c.command === 'CreateMultipartUploadCommand').length,
    ).toBeGreaterThan(1);
    expect(runUploads(ctx, store.plan.runId)).toEqual([]);
    const record = JSON.parse(ctx.memory.objects.get(store.keys.failedWorkKey(0, 0, 'inv0')) as string);
    expect(record).toMatchObject({
      counts: { users_processed: 120, users_failed: 1 },
      failedUsers: [{ user_id: ids(8)[7], error_type: 'ApiRequestError' }],
    });
    expect(ctx.logger.text()).not.toContain('could not be aborted');
  });

  it('says how many of its uploads it could not abort', async () => {
    const { ctx, store, result } = await failingWork();
    ctx.memory.fail = (command) =>
      commandName(command) === 'AbortMultipartUploadCommand'
        ? Object.assign(new Error('boom'), { name: 'InternalError' })
        : undefined;

    await expect(result()).rejects.toThrow(ApiAuthError);

    const warning = ctx.logger.lines
      .map((line) => JSON.parse(line) as { message: string; extra: { count: number }[] })
      .find((line) => line.message.startsWith('some uploads of this Work could not be aborted'));
    // The open file of each writer is its own to abort; the closed ones are counted.
    const closed = runUploads(ctx, store.plan.runId).length - 1;
    expect(warning?.extra[0]).toEqual({ count: closed });
  });

  it('still throws the error that stopped it when its record cannot be saved', async () => {
    const { ctx, result } = await failingWork(10);
    ctx.memory.fail = (command) =>
      commandName(command) === 'PutObjectCommand' &&
      String((command as { input: { Key: string } }).input.Key).endsWith('.failed.json')
        ? new Error('S3 is down')
        : undefined;

    await expect(result()).rejects.toThrow(ApiAuthError);
  });
});

describe('runWork: errors of the walk', () => {
  it('fails with ScanUsersError when the users table cannot be read', async () => {
    const ctx = memoryContext(
      {},
      {
        dynamodb: async (command) => {
          if (command.constructor.name !== 'ScanCommand') return { Table: { ItemCount: 10 } };
          throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });
        },
      },
    );
    const { result } = await workOn(ctx, runPlan());

    await expect(result()).rejects.toThrow(ScanUsersError);
  });

  it('stops its calls in flight at once when the run was given up between pages', async () => {
    let store: RunStore | undefined;
    const table = usersTable([['a', 'b'], ['c']]);
    const ctx = memoryContext(
      {},
      {
        dynamodb: async (command) => {
          // Another segment failed and Abort wrote the failed manifest while this page was read.
          if (command.constructor.name === 'ScanCommand' && store)
            await putJson(ctx.s3, 'exports', store.keys.manifestKey(), { status: 'failed' });
          return table.dynamodb(command);
        },
        fetchSessions: untilAborted,
      },
    );
    const work = await workOn(ctx, runPlan());
    store = work.store;

    let ended = false;
    const out = work.result().finally(() => {
      ended = true;
    });
    out.catch(() => undefined);
    await until(() => ended, 'the Work ended');

    await expect(out).rejects.toThrow(
      new RunAbandonedError(
        `run ${store.plan.runId} of ${store.plan.snapshotId} was already given up (its failed manifest exists); this Work stopped`,
      ),
    );
  });

  it('throws the error that failed the run, not the page read it cut short', async () => {
    const table = usersTable([['a', 'b'], ['c']]);
    const base = memoryContext(
      {},
      {
        fetchSessions: async (userId) => {
          if (userId === 'b') throw new ApiAuthError(403);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const ctx: MemoryContext = { ...base, dynamodb: firstPageThenHang(table).dynamodb };
    const { input } = await workOn(base, runPlan());

    await expect(runWork(input, ctx)).rejects.toThrow(ApiAuthError);
  });
});

describe('runWork: the pseudonymized copy', () => {
  it('writes pseudonymized sessions and rejects under their own prefixes', async () => {
    const key = 'a-local-test-hmac-key-of-enough-length!!';
    const base = memoryContext(
      { EXPORT_COPIES: 'pseudonymized', EXPORT_PII_KEY: key, EXPORT_REJECTED_ITEMS_TOLERANCE: '100%' },
      {
        fetchSessions: async (userId) =>
          moonkeyAnswer({ sessions: [...sessionsFor(userId, 1_764_115_200), { not: 'a session' }] }),
      },
    );
    const ctx: MemoryContext = { ...base, pii: createPiiCopies(base.config.pii, Buffer.from(key)) };
    const { store, result } = await workOn(ctx, audit(ids(5)));

    const out = await result();

    const prefixes = out.files.map((file) =>
      (['pseudonymized/sessions', 'pseudonymized/rejects'] as const).find((kind) =>
        file.key.startsWith(store.keys.runFilePrefix(kind)),
      ),
    );
    expect(prefixes.sort()).toEqual(['pseudonymized/rejects', 'pseudonymized/sessions']);
  });
});
