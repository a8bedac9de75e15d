import { DeadlineExceededError } from '../core/errors';
import { abortPhase } from './abort-phase';
import { commitPhase } from './commit-phase';
import type { ExportContext } from './job-context';
import type { RunOutcome, RunRef, SliceState } from './phase-payloads';
import { planPhase } from './plan-phase';
import type { RunPlan } from './run-plan';
import type { Progress } from './work';
import { workPhase } from './work-phase';

export type { RunOutcome } from './phase-payloads';
export type { Progress } from './work';

export interface RunOptions {
  /** Epoch ms when the process will be killed; the run stops cleanly before it and fails. */
  readonly deadlineAt?: number;
  /**
   * Simulates Lambda's time limit per Work invocation (ms): each Work starts no new page once
   * this budget minus EXPORT_DEADLINE_MARGIN_MS is spent, and the driver continues the segment
   * in a new Work, as the state machine does. Unset: one Work per segment.
   */
  readonly workBudgetMs?: number;
  readonly onProgress?: (progress: Progress) => void;
}

/**
 * The in-process driver: the same Plan, Work, Commit and Abort phases the state machine runs,
 * driven by a loop in this process (segments in parallel, each a chain of Work steps). Used by
 * tests and by tools that run a snapshot without Step Functions. Never throws for a run failure:
 * the outcome says what happened.
 */
export async function runExport(
  plan: RunPlan,
  ctx: ExportContext,
  options: RunOptions = {},
): Promise<RunOutcome> {
  let run: RunRef | undefined;
  const tails: (string | null)[] = [];
  const abort = new AbortController();
  const progress = new Map<number, Progress>();
  try {
    const planned = await planPhase(ctx, plan);
    run = planned.run;
    const current = run;
    const results = await Promise.allSettled(
      planned.segments
        .map(async ({ segment, totalSegments }) => {
          let slice: SliceState = { segment, totalSegments, cursor: null, step: 0, tail: null };
          for (;;) {
            const stopAt = stopAtFor(ctx, options);
            const out = await workPhase(ctx, current, slice, {
              invocationId: `local${slice.step}`,
              stopAt,
              // The process dies at the deadline: no slack for finishing a page past the margin.
              hardStopAt:
                options.deadlineAt === undefined
                  ? undefined
                  : options.deadlineAt - ctx.config.deadlineMarginMs,
              signal: abort.signal,
              onProgress: options.onProgress
                ? (p) => {
                    progress.set(segment, p);
                    options.onProgress?.(sumProgress([...progress.values()]));
                  }
                : undefined,
            });
            slice = out.slice;
            tails[segment] = slice.tail;
            if (out.done) return;
            const margin = ctx.config.deadlineMarginMs;
            const pastDeadline =
              options.deadlineAt !== undefined && Date.now() >= options.deadlineAt - margin;
            if (pastDeadline || options.workBudgetMs === undefined) {
              throw new DeadlineExceededError(
                `stopped ${ctx.config.deadlineMarginMs} ms before the deadline with segment ${segment + 1}/${totalSegments} unfinished; nothing was committed. Run it under the state machine (it continues in new invocations), or raise EXPORT_CONCURRENCY / EXPORT_MAX_RPS`,
              );
            }
          }
        })
        .map((p) =>
          p.catch((error: unknown) => {
            // One segment's fatal error stops the others at once (a 401 must not be retried for everyone).
            if (!abort.signal.aborted) abort.abort(error);
            throw error;
          }),
        ),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (abort.signal.reason as Error | undefined) ?? (failed as PromiseRejectedResult).reason;
    return await commitPhase(ctx, run, tails);
  } catch (error) {
    const reason = error as Error;
    if (run === undefined) throw reason;
    const outcome = await abortPhase(ctx, {
      run,
      error: { type: reason.name, message: reason.message },
      tails,
    });
    // In process the caller gets the error itself (its class, its cause), not a copy.
    return { ...outcome, error: outcome.error === undefined ? undefined : reason };
  }
}

function stopAtFor(ctx: ExportContext, options: RunOptions): number | undefined {
  const margin = ctx.config.deadlineMarginMs;
  const candidates: number[] = [];
  if (options.deadlineAt !== undefined) candidates.push(options.deadlineAt - margin);
  if (options.workBudgetMs !== undefined) candidates.push(Date.now() + options.workBudgetMs - margin);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

function sumProgress(parts: readonly Progress[]): Progress {
  const sum = (pick: (p: Progress) => number) => parts.reduce((total, p) => total + pick(p), 0);
  return {
    usersScanned: sum((p) => p.usersScanned),
    usersDone: sum((p) => p.usersDone),
    usersPerSecond: sum((p) => p.usersPerSecond),
    inFlight: sum((p) => p.inFlight),
    concurrency: sum((p) => p.concurrency),
    sessionsExported: sum((p) => p.sessionsExported),
    usersFailed: sum((p) => p.usersFailed),
    usersNotFound: sum((p) => p.usersNotFound),
    retries: sum((p) => p.retries),
    elapsedMs: Math.max(0, ...parts.map((p) => p.elapsedMs)),
  };
}
