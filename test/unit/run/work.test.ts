import { gunzipSync } from 'node:zlib';
import { ApiRequestError, ApiRetryableError, RunAbandonedError } from '../../../lambda/core/errors';
import { planPhase } from '../../../lambda/run/plan-phase';
import type { RunPlan } from '../../../lambda/run/run-plan';
import { RunStore } from '../../../lambda/run/run-store';
import { runWork, type WorkInput } from '../../../lambda/run/work';
import { putJson } from '../../../lambda/snapshot/s3-objects';
import { sessionsFor } from '../../../local/fake-sessions';
import { type MemoryContext, memoryContext, moonkeyAnswer, runPlan } from '../../helpers/memory-context';

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
      let inFlight = 0;
      let most = 0;
      const ctx = memoryContext(
        { EXPORT_CONCURRENCY: String(limit), EXPORT_SCAN_SEGMENTS: '1' },
        {
          fetchSessions: async () => {
            inFlight++;
            most = Math.max(most, inFlight);
            await new Promise((resolve) => setTimeout(resolve, 20));
            inFlight--;
            return moonkeyAnswer({ sessions: [] });
          },
        },
      );
      const { result } = await workOn(ctx, audit(ids(limit * 5)));

      const out = await result();

      expect(out.counts.users_processed).toBe(limit * 5);
      expect(most).toBe(limit);
    },
  );
});

describe('runWork: users waiting', () => {
  it('holds at most twice the concurrency plus 32 users started and unfinished, as while they back off', async () => {
    const started = new Set<string>();
    let most = 0;
    const ctx = memoryContext(
      { EXPORT_CONCURRENCY: '4', EXPORT_SCAN_SEGMENTS: '1', EXPORT_ADAPTIVE_CONCURRENCY: 'false' },
      {
        fetchSessions: async (userId) => {
          if (!started.has(userId)) {
            started.add(userId);
            most = Math.max(most, started.size);
            // Every user's first call is throttled: it backs off, holding no slot, and stays unfinished.
            throw new ApiRetryableError('HTTP 429', 30);
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
