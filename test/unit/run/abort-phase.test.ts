import { abortPhase } from '../../../lambda/run/abort-phase';
import { commitPhase } from '../../../lambda/run/commit-phase';
import { planPhase } from '../../../lambda/run/plan-phase';
import { RunStore } from '../../../lambda/run/run-store';
import { emptyCounts, type FailedUser, type RunCounts } from '../../../lambda/snapshot/manifest';
import { memoryContext, runPlan } from '../../helpers/memory-context';

const counts = (overrides: Partial<RunCounts>): RunCounts => ({ ...emptyCounts(), ...overrides });
const failedUser = (id: string) =>
  ({ user_id: id, error_type: 'ApiRequestError', error: 'HTTP 500' }) satisfies FailedUser;

async function planned(env: Record<string, string> = {}) {
  const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '2', ...env });
  const { run } = await planPhase(ctx, runPlan());
  const store = await RunStore.open(ctx.s3, 'exports', 'moonkey', run.planKey);
  return { ctx, run, store };
}

const boom = { type: 'SnapshotWriteError', message: 'Complete of moonkey/x.gz failed: InternalError' };

describe('abortPhase', () => {
  it('writes a failed manifest with the counts and failed users the failed Work steps recorded', async () => {
    const { ctx, run, store } = await planned();
    await store.saveFailedWork(0, 3, 'inv-a', {
      counts: counts({ users_processed: 40, users_failed: 1 }),
      failedUsers: [failedUser('user_a')],
    });
    await store.saveFailedWork(1, 0, 'inv-b', {
      counts: counts({ users_processed: 2, sessions_exported: 9 }),
      failedUsers: [],
    });

    const outcome = await abortPhase(ctx, { run, error: boom, failedStep: 'Work' });

    expect(outcome.manifest.status).toBe('failed');
    expect(outcome.manifest.counts).toMatchObject({
      users_processed: 42,
      users_failed: 1,
      sessions_exported: 9,
    });
    expect(outcome.manifest.failed_users).toEqual([failedUser('user_a')]);
    expect(await store.manifest()).toEqual(outcome.manifest);
  });

  it('adds the steps it is given by their tails to what failed steps recorded', async () => {
    const { ctx, run, store } = await planned();
    const tail = await store.saveStep({
      prev: null,
      segment: 0,
      step: 0,
      invocation: 'done',
      files: [],
      counts: counts({ users_processed: 100 }),
      failedUsers: [],
      pending: [],
      next: null,
    });
    await store.saveFailedWork(1, 0, 'inv-b', { counts: counts({ users_processed: 5 }), failedUsers: [] });

    const outcome = await abortPhase(ctx, { run, error: boom, failedStep: 'Commit', tails: [tail, null] });

    expect(outcome.manifest.counts.users_processed).toBe(105);
  });

  it('still writes the failed manifest when a tail names a step S3 lost, or the records cannot be listed', async () => {
    const { ctx, run, store } = await planned();
    await store.saveFailedWork(1, 0, 'inv-b', { counts: counts({ users_processed: 5 }), failedUsers: [] });

    const lost = await abortPhase(ctx, {
      run,
      error: boom,
      failedStep: 'Commit',
      tails: ['moonkey/gone.json'],
    });
    expect(lost.manifest.counts.users_processed).toBe(5);
    expect(lost.manifest.settings).toMatchObject({ segments: 2, concurrency: 16 });

    ctx.memory.fail = (command) =>
      (command as object).constructor.name === 'ListObjectsV2Command' ? new Error('SlowDown') : undefined;
    const unlisted = await abortPhase(ctx, { run, error: boom, failedStep: 'Work' });
    expect(unlisted.manifest.status).toBe('failed');
    expect(unlisted.manifest.counts.users_processed).toBe(0);
    expect(await store.manifest()).toEqual(unlisted.manifest);
  });

  it("keeps the error's type, message and failed step, and reports the run as failed", async () => {
    const { ctx, run } = await planned();

    const outcome = await abortPhase(ctx, { run, error: boom, failedStep: 'Commit' });

    expect(outcome.manifest.error).toEqual({ ...boom, step: 'Commit' });
    expect(ctx.published).toEqual([expect.objectContaining({ committed: false })]);
    expect(ctx.logger.text()).toContain('snapshot failed');
  });

  it("aborts the run's recorded uploads", async () => {
    const { ctx, run, store } = await planned();
    const open = ctx.memory.open(store.keys.fileKey('sessions', 's000-00000-x', 0), 'upload-x');
    await store.recordUpload(open);

    await abortPhase(ctx, { run, error: boom, failedStep: 'Work' });

    expect(ctx.memory.uploads.has('upload-x')).toBe(false);
  });

  it('undoes nothing of a run that had already committed, and answers with its committed manifest', async () => {
    const { ctx, run } = await planned({ EXPORT_SCAN_SEGMENTS: '1' });
    const committed = await commitPhase(ctx, run, [null]);

    const outcome = await abortPhase(ctx, { run, error: boom, failedStep: 'Commit' });

    expect(outcome.manifest).toEqual(committed.manifest);
    expect(outcome.manifest.status).toBe('committed');
  });
});
