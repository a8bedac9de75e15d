import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { planPhase } from '../../../lambda/run/plan-phase';
import { RunStore } from '../../../lambda/run/run-store';
import { SnapshotKeys } from '../../../lambda/snapshot/snapshot-keys';
import { recordUpload } from '../../../lambda/snapshot/upload-registry';
import { memoryContext, runPlan } from '../../helpers/memory-context';

/** A table DescribeTable says holds `items` (its ItemCount). */
const tableOf = (items: number) => async (command: unknown) => {
  if (!(command instanceof DescribeTableCommand)) throw new Error('only DescribeTable is expected');
  return { Table: { TableName: 'users', ItemCount: items } };
};

describe('planPhase: segments for EXPORT_SCAN_SEGMENTS=auto', () => {
  it.each([
    [0, 16, 1],
    [1, 16, 1],
    [250_000, 16, 1],
    // Rounded up: a table just over a segment's share gets a second segment, not one short.
    [250_001, 16, 2],
    [1_000_001, 16, 5],
    // Never more segments than calls in flight (each segment needs one), nor than the Map runs at once.
    [100_000_000, 16, 16],
    [100_000_000, 64, 40],
  ])('gives a table of %d items at concurrency %d %d segments', async (items, concurrency, segments) => {
    const ctx = memoryContext({ EXPORT_CONCURRENCY: String(concurrency) }, { dynamodb: tableOf(items) });

    const out = await planPhase(ctx, runPlan());

    expect(out.segments).toHaveLength(segments);
    expect(out.segments.map((s) => s.segment)).toEqual([...Array(segments).keys()]);
    expect(out.segments.every((s) => s.totalSegments === segments)).toBe(true);
  });

  it('uses one segment, and says so, when the table cannot be sized', async () => {
    const ctx = memoryContext(
      {},
      {
        dynamodb: async () => {
          throw Object.assign(new Error('not authorized to DescribeTable'), {
            name: 'AccessDeniedException',
          });
        },
      },
    );

    const out = await planPhase(ctx, runPlan());

    expect(out.segments).toEqual([{ segment: 0, totalSegments: 1 }]);
    expect(ctx.logger.text()).toContain('could not size the table; using one segment');
    expect(ctx.logger.text()).toContain('not authorized to DescribeTable');
  });

  it('sizes the users table the config names, and reads a table without an item count as empty', async () => {
    const asked: unknown[] = [];
    const ctx = memoryContext(
      { USERS_TABLE_NAME: 'prod-users' },
      {
        dynamodb: async (command) => {
          asked.push(command.input);
          return {};
        },
      },
    );

    const out = await planPhase(ctx, runPlan());

    expect(asked).toEqual([{ TableName: 'prod-users' }]);
    expect(out.segments).toHaveLength(1);
    expect(ctx.logger.text()).not.toContain('could not size the table');
  });

  it('asks DynamoDB nothing for a configured number of segments or a listed audit', async () => {
    const configured = memoryContext({ EXPORT_SCAN_SEGMENTS: '3' }, { dynamodb: tableOf(10_000_000) });
    const listed = memoryContext({}, { dynamodb: tableOf(10_000_000) });

    expect((await planPhase(configured, runPlan())).segments).toHaveLength(3);
    expect(
      (await planPhase(listed, runPlan({ trigger: 'audit', users: { kind: 'list', userIds: ['u1', 'u2'] } })))
        .segments,
    ).toHaveLength(1);
    expect([...configured.dynamodbSent, ...listed.dynamodbSent]).toEqual([]);
  });
});

describe('planPhase: the run it fixes', () => {
  it('logs the start of the run: ids, trigger, who is exported, segments and settings', async () => {
    const scheduled = memoryContext({ EXPORT_SCAN_SEGMENTS: '2' });
    const listed = memoryContext();
    const plan = runPlan();

    await planPhase(scheduled, plan);
    await planPhase(
      listed,
      runPlan({ trigger: 'audit', users: { kind: 'list', userIds: ['u1', 'u2', 'u3'] } }),
    );

    const started = (ctx: typeof scheduled) =>
      ctx.logger.lines.map((l) => JSON.parse(l)).find((l) => l.message === 'snapshot started')?.extra[0];
    expect(started(scheduled)).toMatchObject({
      snapshotId: plan.snapshotId,
      runId: plan.runId,
      trigger: 'scheduled',
      users: 'scan',
      segments: 2,
      dryRun: false,
      settings: expect.objectContaining({ concurrency: 16 }),
    });
    expect(started(listed)).toMatchObject({ trigger: 'audit', users: 3, segments: 1 });
  });

  it('stores the plan where its RunRef points, with the settings and segments it chose', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '2' });
    const plan = runPlan();

    const { run } = await planPhase(ctx, plan);

    expect(run).toEqual({
      snapshotId: plan.snapshotId,
      runId: plan.runId,
      dt: '2026-12-01',
      planKey: new SnapshotKeys('moonkey', plan.snapshotId, plan.snapshotAt, plan.runId).planKey(),
      dryRun: false,
    });
    const store = await RunStore.open(ctx.s3, 'exports', 'moonkey', run.planKey);
    expect(store.stored.plan).toEqual(plan);
    expect(store.stored.totalSegments).toBe(2);
    expect(store.stored.settings).toMatchObject({ concurrency: 16, scanSegments: 2 });
  });

  it('takes the slot over: aborts the open uploads an older, killed run of the slot recorded', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' });
    const killed = runPlan();
    const killedKeys = new SnapshotKeys('moonkey', killed.snapshotId, killed.snapshotAt, killed.runId);
    const left = ctx.memory.open(
      killedKeys.fileKey('sessions', 's000-00000-dead', 0),
      'upload-of-killed-run',
    );
    await recordUpload(ctx.s3, 'exports', killedKeys, left);

    await planPhase(ctx, runPlan());

    expect(ctx.memory.uploads.has('upload-of-killed-run')).toBe(false);
  });

  it('leaves the slot alone for a dry run, which writes nothing but its plan', async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' });
    const other = runPlan();
    const otherKeys = new SnapshotKeys('moonkey', other.snapshotId, other.snapshotAt, other.runId);
    const open = ctx.memory.open(otherKeys.fileKey('sessions', 's000-00000-live', 0), 'upload-of-live-run');
    await recordUpload(ctx.s3, 'exports', otherKeys, open);

    await planPhase(ctx, runPlan({ dryRun: true }));

    expect(ctx.memory.uploads.has('upload-of-live-run')).toBe(true);
  });
});
