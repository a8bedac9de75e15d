import { TooManyFailedUsersError } from '../../../lambda/core/errors';
import { commitPhase } from '../../../lambda/run/commit-phase';
import type { RunRef } from '../../../lambda/run/phase-payloads';
import { planPhase } from '../../../lambda/run/plan-phase';
import { RunStore, type WorkStep } from '../../../lambda/run/run-store';
import { emptyCounts, type FailedUser, type RunCounts } from '../../../lambda/snapshot/manifest';
import { type MemoryContext, memoryContext, runPlan } from '../../helpers/memory-context';

const failed = (n: number, from = 0): FailedUser[] =>
  Array.from({ length: n }, (_, i) => ({
    user_id: `user_${from + i}`,
    error_type: 'ApiRequestError',
    error: 'HTTP 500',
  }));

/** A planned run and one chain of saved steps per segment: what Commit finds through the tails. */
async function plannedRun(
  ctx: MemoryContext,
  segments: readonly (readonly Partial<WorkStep>[])[],
  plan = runPlan(),
): Promise<{ run: RunRef; tails: (string | null)[]; store: RunStore }> {
  const { run } = await planPhase(ctx, plan);
  const store = await RunStore.open(ctx.s3, 'exports', 'moonkey', run.planKey);
  const tails: (string | null)[] = [];
  for (const [segment, steps] of segments.entries()) {
    let prev: string | null = null;
    for (const [i, overrides] of steps.entries()) {
      prev = await store.saveStep({
        prev,
        segment,
        step: i,
        invocation: `inv${i}`,
        files: [],
        counts: emptyCounts(),
        failedUsers: [],
        pending: [],
        next: null,
        ...overrides,
      });
    }
    tails.push(prev);
  }
  return { run, tails, store };
}

const counts = (overrides: Partial<RunCounts>): RunCounts => ({ ...emptyCounts(), ...overrides });

describe('commitPhase: the failure tolerances', () => {
  it("judges EXPORT_FAILED_USERS_TOLERANCE on the whole run's failed users, summed over every step", async () => {
    // Two failed users per step is within a tolerance of 2; four in the run is not.
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '2', EXPORT_FAILED_USERS_TOLERANCE: '2' });
    const { run, tails, store } = await plannedRun(ctx, [
      [{ counts: counts({ users_processed: 50, users_failed: 2 }), failedUsers: failed(2) }],
      [{ counts: counts({ users_processed: 50, users_failed: 2 }), failedUsers: failed(2, 2) }],
    ]);

    const commit = commitPhase(ctx, run, tails);

    await expect(commit).rejects.toThrow(TooManyFailedUsersError);
    expect(await store.manifest()).toBeUndefined();
  });

  it('commits a run whose summed failed users are exactly at the tolerance', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '2', EXPORT_FAILED_USERS_TOLERANCE: '2' });
    const { run, tails } = await plannedRun(ctx, [
      [{ counts: counts({ users_processed: 50, users_failed: 1 }), failedUsers: failed(1) }],
      [{ counts: counts({ users_processed: 50, users_failed: 1 }), failedUsers: failed(1, 1) }],
    ]);

    const { manifest } = await commitPhase(ctx, run, tails);

    expect(manifest.status).toBe('committed');
    expect(manifest.counts.users_failed).toBe(2);
  });
});

describe('commitPhase: the committed manifest', () => {
  it('sums the counts and lists the files of every step of every segment', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '2' });
    const plan = runPlan();
    const { run } = await planPhase(ctx, plan);
    const store = await RunStore.open(ctx.s3, 'exports', 'moonkey', run.planKey);
    const file = (writer: string) =>
      ctx.memory.open(store.keys.fileKey('sessions', writer, 0), `up-${writer}`);
    const a0 = await store.saveStep({
      prev: null,
      segment: 0,
      step: 0,
      invocation: 'a',
      files: [file('s000-00000-a')],
      counts: counts({ users_processed: 3, sessions_exported: 5 }),
      failedUsers: [],
      pending: [],
      next: null,
    });
    const a1 = await store.saveStep({
      prev: a0,
      segment: 0,
      step: 1,
      invocation: 'b',
      files: [file('s000-00001-b')],
      counts: counts({ users_processed: 4, sessions_exported: 6 }),
      failedUsers: [],
      pending: [],
      next: null,
    });
    const b0 = await store.saveStep({
      prev: null,
      segment: 1,
      step: 0,
      invocation: 'c',
      files: [file('s001-00000-c')],
      counts: counts({ users_processed: 5, sessions_exported: 7 }),
      failedUsers: [],
      pending: [],
      next: null,
    });

    const { manifest, manifestKey } = await commitPhase(ctx, run, [a1, b0]);

    expect(manifestKey).toBe(store.keys.manifestKey());
    expect(manifest.counts).toMatchObject({ users_processed: 12, sessions_exported: 18 });
    expect(manifest.files.sessions.map((f) => f.key).sort()).toEqual(
      ['s000-00000-a', 's000-00001-b', 's001-00000-c']
        .map((w) => store.keys.fileKey('sessions', w, 0))
        .sort(),
    );
    expect(manifest.settings).toMatchObject({ segments: 2 });
    expect(ctx.published).toEqual([expect.objectContaining({ committed: true, usersProcessed: 12 })]);
  });

  it.each([
    [1000, 1000, false],
    [1001, 1000, true],
  ])('with %d failed users lists %d and says truncated=%s', async (failedCount, listed, truncated) => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1', EXPORT_FAILED_USERS_TOLERANCE: '100%' });
    const { run, tails } = await plannedRun(ctx, [
      [
        {
          counts: counts({ users_processed: failedCount, users_failed: failedCount }),
          failedUsers: failed(failedCount),
        },
      ],
    ]);

    const { manifest } = await commitPhase(ctx, run, tails);

    expect(manifest.failed_users).toHaveLength(listed);
    expect(manifest.failed_users_truncated).toBe(truncated);
  });

  it('says so when a newer run of the slot committed first, and readers show that one', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' });
    // Segments without steps: the newer run's clean-up removes the older run's state.
    const older = await plannedRun(ctx, [[]]);
    const newer = await plannedRun(ctx, [[]]);
    await commitPhase(ctx, newer.run, newer.tails);
    expect(ctx.logger.text()).not.toContain('a newer run of this snapshot committed first');

    await commitPhase(ctx, older.run, older.tails);

    const warned = ctx.logger.lines
      .map((l) => JSON.parse(l))
      .find((l) => l.message === 'a newer run of this snapshot committed first; readers show that one');
    expect(warned?.extra[0]).toEqual({ visibleRunId: newer.run.runId });
  });

  it('finishes a dry run without a manifest and leaves no state behind', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' });
    const { run, tails } = await plannedRun(
      ctx,
      [[{ counts: counts({ users_scanned: 9 }) }]],
      runPlan({ dryRun: true }),
    );

    const outcome = await commitPhase(ctx, run, tails);

    expect(outcome.manifest.status).toBe('dry_run');
    expect(outcome.manifest.counts.users_scanned).toBe(9);
    expect(outcome.manifestKey).toBeUndefined();
    expect([...ctx.memory.objects.keys()]).toEqual([]);
    expect(ctx.published).toEqual([]);
    expect(ctx.logger.text()).toContain('dry run finished: nothing was called or written');
    expect(ctx.logger.text()).toContain('"users_scanned":9');
  });
});
