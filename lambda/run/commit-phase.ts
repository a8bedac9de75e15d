import { reportRunEnd } from '../core/observability';
import { commitRun } from '../snapshot/commit';
import { buildManifest, sumCounts } from '../snapshot/manifest';
import type { JobContext } from './job-context';
import type { RunOutcome, RunRef } from './phase-payloads';
import { RunStore } from './run-store';
import { toleranceError } from './tolerance';

/**
 * COMMIT: gathers every segment's steps, checks the run-wide failure tolerance, and commits the
 * pending files as one snapshot (snapshot/commit.ts). Throws when the run must fail; the state
 * machine's Catch then runs ABORT.
 */
export async function commitPhase(
  ctx: JobContext,
  run: RunRef,
  tails: readonly (string | null)[],
): Promise<RunOutcome> {
  const store = await RunStore.open(ctx.s3, ctx.config.bucket, ctx.config.prefix, run.planKey);
  const { plan } = store;
  const steps = await store.collectSteps(tails);
  const counts = sumCounts(steps.map((s) => s.counts));
  const failedUsers = steps.flatMap((s) => s.failedUsers);
  const settings = store.manifestSettings;
  if (plan.dryRun) {
    const manifest = buildManifest(plan, store, {
      status: 'dry_run',
      counts,
      failedUsers,
      files: [],
      settings,
      pii: ctx.pii.manifestEntry,
    });
    // The plan and steps were the only objects written; a dry run leaves nothing behind.
    await store.clear();
    ctx.logger.info('dry run finished: nothing was called or written', { counts });
    return { manifest, manifestKey: undefined };
  }
  // Judged on the whole run's counts: a tolerance is a share of every user, not of one step's.
  const tooMany = toleranceError(counts, ctx.config);
  if (tooMany) throw tooMany;
  const files = steps.flatMap((s) => s.files);
  const manifest = buildManifest(plan, store, {
    status: 'committed',
    counts,
    failedUsers,
    files,
    settings,
    pii: ctx.pii.manifestEntry,
  });
  const { manifestKey, cleanup } = await commitRun(store.commitContext(ctx.logger), files, manifest);
  if (cleanup.visibleRunId !== undefined && cleanup.visibleRunId !== plan.runId) {
    ctx.logger.warn('a newer run of this snapshot committed first; readers show that one', {
      visibleRunId: cleanup.visibleRunId,
    });
  }
  reportRunEnd(ctx.logger, ctx.metrics, manifest, manifestKey);
  return { manifest, manifestKey };
}
