import type { JobContext } from './job-context';
import type { RunRef, SliceState, WorkOutput } from './phase-payloads';
import { RunStore } from './run-store';
import { runWork } from './work';
import { decodeCursor, encodeCursor } from './work-cursor';

export interface WorkOptions {
  /** Unique per invocation (Lambda's request id): names this invocation's files and state object. */
  readonly invocationId: string;
  /** Epoch ms after which this Work starts no new page. */
  readonly stopAt: number;
  /** Epoch ms at which this Work stops its calls and hands over (see WorkInput.hardStopAt). */
  readonly hardStopAt: number;
}

/**
 * WORK: one step of one segment; its result goes to S3, and the state carries only its key.
 * Users the previous step handed over (its `pending`, read from the slice's tail) come first.
 */
export async function workPhase(
  ctx: JobContext,
  run: RunRef,
  slice: SliceState,
  options: WorkOptions,
): Promise<WorkOutput> {
  const store = await RunStore.open(ctx.s3, ctx.config.bucket, ctx.config.prefix, run.planKey);
  const { plan } = store;
  // Part of file and state keys: short, and safe in any key.
  const invocation =
    options.invocationId
      .replace(/[^A-Za-z0-9]/g, '')
      .slice(0, 12)
      .toLowerCase() || 'local';
  const cursor = decodeCursor(slice.cursor, plan);
  const handedOver = cursor.kind === 'handover' ? await store.handedOver(slice.tail, cursor) : [];
  const result = await runWork(
    {
      store,
      segment: slice.segment,
      totalSegments: slice.totalSegments,
      step: slice.step,
      invocation,
      cursor: cursor.kind === 'handover' ? cursor.after : cursor,
      handedOver,
      stopAt: options.stopAt,
      hardStopAt: options.hardStopAt,
    },
    ctx,
  );
  const stepKey = await store.saveStep({
    prev: slice.tail,
    segment: slice.segment,
    step: slice.step,
    invocation,
    files: result.files,
    counts: result.counts,
    failedUsers: result.failedUsers,
    pending: result.pending,
    next: result.next ?? null,
  });
  return {
    run,
    slice: { ...slice, cursor: encodeCursor(result.next), step: slice.step + 1, tail: stepKey },
    done: result.next === undefined,
  };
}
