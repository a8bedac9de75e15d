import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { effectiveSettings } from '../core/config';
import { mostAutoSegments } from '../core/facts';
import { takeOverSlot } from '../snapshot/commit';
import type { JobContext } from './job-context';
import type { PlanOutput } from './phase-payloads';
import type { RunPlan } from './run-plan';
import { RunStore } from './run-store';

/** Segments chosen for `auto`: one per this many items, so a Work's share of a big table stays modest. */
export const USERS_PER_AUTO_SEGMENT = 250_000;

/**
 * PLAN: fixes the run (its plan is stored in S3 for the later phases), takes the slot over from
 * any earlier run that died (aborting its open uploads), and chooses the segments.
 */
export async function planPhase(ctx: JobContext, plan: RunPlan): Promise<PlanOutput> {
  const totalSegments = plan.users.kind === 'list' ? 1 : await chooseSegments(ctx);
  const settings = effectiveSettings(ctx.config);
  ctx.logger.info('snapshot started', {
    snapshotId: plan.snapshotId,
    runId: plan.runId,
    trigger: plan.trigger,
    reason: plan.reason,
    users: plan.users.kind === 'list' ? plan.users.userIds.length : 'scan',
    segments: totalSegments,
    dryRun: plan.dryRun,
    settings,
  });
  const store = await RunStore.create(ctx.s3, ctx.config.bucket, ctx.config.prefix, {
    plan,
    totalSegments,
    settings,
  });
  if (!plan.dryRun) await takeOverSlot(store.commitContext(ctx.logger));
  return {
    run: {
      snapshotId: plan.snapshotId,
      runId: plan.runId,
      dt: store.keys.dt,
      planKey: store.keys.planKey(),
      dryRun: plan.dryRun,
    },
    segments: Array.from({ length: totalSegments }, (_, segment) => ({ segment, totalSegments })),
  };
}

/** `auto`: one segment per USERS_PER_AUTO_SEGMENT items, at most mostAutoSegments(concurrency). */
async function chooseSegments(ctx: JobContext): Promise<number> {
  const configured = ctx.config.scanSegments;
  if (configured !== 'auto') return configured;
  try {
    const table = await ctx.dynamodb.send(new DescribeTableCommand({ TableName: ctx.config.usersTableName }));
    const items = table.Table?.ItemCount ?? 0;
    return Math.max(
      1,
      Math.min(mostAutoSegments(ctx.config.concurrency), Math.ceil(items / USERS_PER_AUTO_SEGMENT)),
    );
  } catch (error) {
    // ItemCount is only a hint (DynamoDB refreshes it about every six hours); one segment still works.
    ctx.logger.warn('could not size the table; using one segment', { error: (error as Error).message });
    return 1;
  }
}
