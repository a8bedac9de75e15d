import { reportRunEnd } from '../core/observability';
import { abortRun } from '../snapshot/commit';
import { buildManifest, sumCounts } from '../snapshot/manifest';
import type { JobContext } from './job-context';
import type { RunOutcome, RunRef } from './phase-payloads';
import { RunStore } from './run-store';

export interface AbortInput {
  readonly run: RunRef;
  readonly error: { readonly type: string; readonly message: string };
  /** The state that failed: Plan, Work or Commit. */
  readonly failedStep: string;
  /** Each segment's last step, when all of them finished (Commit failed): their counts are shown. */
  readonly tails?: readonly (string | null)[];
}

/**
 * ABORT: the run will not commit. Aborts every open upload of the run, removes any file of it a
 * partial commit completed, and writes the failed manifest saying which step failed and why.
 */
export async function abortPhase(ctx: JobContext, input: AbortInput): Promise<RunOutcome> {
  const store = await RunStore.open(ctx.s3, ctx.config.bucket, ctx.config.prefix, input.run.planKey);
  const { plan } = store;
  // What is known of the work done: finished steps the caller can name, plus failed steps'
  // own records. Partial by nature (a step killed outright leaves no record); the failed
  // manifest says what is known, never more.
  const done = input.tails ? await store.collectSteps(input.tails).catch(() => []) : [];
  const failedSteps = await store.failedWork().catch(() => []);
  const known = [...done, ...failedSteps];
  const manifest = buildManifest(plan, store, {
    status: 'failed',
    counts: sumCounts(known.map((s) => s.counts)),
    failedUsers: known.flatMap((s) => s.failedUsers),
    files: [],
    error: { type: input.error.type, message: input.error.message, step: input.failedStep },
    settings: store.manifestSettings,
    pii: ctx.pii.manifestEntry,
  });
  const result = await abortRun(store.commitContext(ctx.logger), manifest);
  if (result.alreadyCommitted) {
    return { manifest: (await store.manifest()) ?? manifest, manifestKey: result.manifestKey };
  }
  reportRunEnd(ctx.logger, ctx.metrics, manifest, result.manifestKey);
  return { manifest, manifestKey: result.manifestKey };
}
