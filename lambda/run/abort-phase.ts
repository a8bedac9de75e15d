import { reportRunEnd } from '../core/observability';
import { abortRun } from '../snapshot/commit';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import { buildManifest, sumCounts } from '../snapshot/manifest';
import type { ExportContext } from './job-context';
import type { RunOutcome, RunRef } from './phase-payloads';
import { RunStore } from './run-store';

export interface AbortInput {
  readonly run: RunRef;
  readonly error: { readonly type: string; readonly message: string };
  /** The phase that failed (Plan, Work, Commit), when a state machine ran the run. */
  readonly failedStep?: string;
  /** Open uploads the caller still knows of (an in-process run's); recorded ones are found anyway. */
  readonly pending?: readonly PendingFile[];
  /** Steps whose counts the failed manifest should show (an in-process run's). */
  readonly tails?: readonly (string | null)[];
}

/**
 * ABORT: the run will not commit. Aborts every open upload of the run, removes any file of it a
 * partial commit completed, and writes the failed manifest saying which step failed and why.
 */
export async function abortPhase(ctx: ExportContext, input: AbortInput): Promise<RunOutcome> {
  const store = await RunStore.open(ctx.s3, ctx.config.bucket, ctx.config.prefix, input.run.planKey);
  const { plan } = store;
  // What is known of the work done: finished steps the caller can name, plus failed steps'
  // own records. Partial by nature (a step killed outright leaves no record); the failed
  // manifest says what is known, never more.
  const done = input.tails ? await store.collectSteps(input.tails).catch(() => []) : [];
  const failedSteps = await store.failedWork().catch(() => []);
  const known = [...done, ...failedSteps];
  const error = Object.assign(new Error(input.error.message), { name: input.error.type });
  const manifest = buildManifest(plan, store, {
    status: 'failed',
    counts: sumCounts(known.map((s) => s.counts)),
    failedUsers: known.flatMap((s) => s.failedUsers),
    files: [],
    error: {
      type: input.error.type,
      message: input.error.message,
      ...(input.failedStep ? { step: input.failedStep } : {}),
    },
    settings: { ...store.stored.settings, segments: store.stored.totalSegments },
  });
  const result = await abortRun(store.commitContext(ctx.logger), manifest, input.pending ?? []);
  if (result.alreadyCommitted) {
    return {
      manifest: (await store.manifest()) ?? manifest,
      manifestKey: result.manifestKey,
      error: undefined,
    };
  }
  reportRunEnd(ctx.logger, ctx.metrics, manifest, result.manifestKey);
  return { manifest, manifestKey: result.manifestKey, error };
}
