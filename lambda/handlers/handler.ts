import { createHash } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { loadConfig } from '../core/config';
import { InvalidEventError, InvalidPhaseInputError } from '../core/errors';
import { abortPhase } from '../run/abort-phase';
import { commitPhase } from '../run/commit-phase';
import type { PlanOutput, RunOutcome, WorkOutput } from '../run/phase-payloads';
import { planPhase } from '../run/plan-phase';
import { planFromEvent, type RunPlan } from '../run/run-plan';
import { workPhase } from '../run/work-phase';
import { emptyCounts, type Manifest } from '../snapshot/manifest';
import { cachedRuntime, createJobRuntime, type JobRuntime, type RuntimeSource } from './job-runtime';
import { describeCaughtError, type PhaseInput, phaseInputSchema } from './phase-input';

/**
 * What Commit and Abort return: enough to find the snapshot without opening S3, and everything
 * the state machine's completion event carries (it builds the event's detail from this alone).
 */
export interface RunSummary {
  /** Null only when Plan failed: no snapshot was chosen. */
  readonly snapshotId: string | null;
  readonly runId: string | null;
  readonly status: Manifest['status'];
  readonly manifestKey: string | null;
  /** `s3://<bucket>/<manifestKey>`, or null when no manifest was written. */
  readonly manifestUri: string | null;
  readonly dt: string | null;
  readonly trigger: Manifest['trigger'] | null;
  readonly counts: Manifest['counts'];
  readonly files: number;
  /** The phase that failed (Plan, Work, Commit) and the error's type; null when the run committed. */
  readonly failedStep: string | null;
  readonly errorType: string | null;
}

export type PhaseResult = PlanOutput | WorkOutput | RunSummary;

/**
 * The container's runtime: config parsed from the function's environment and clients built at
 * the first invocation (the cold start), then reused by every invocation the container serves.
 */
const containerRuntime = cachedRuntime(() => createJobRuntime(loadConfig()));

/** The container's runtime, built on first use from process.env. */
export const getRuntime: RuntimeSource = () => containerRuntime.get();

/** Releases the container's clients (sockets) so a CLI or test process can exit. */
export const closeRuntime = (): Promise<void> => containerRuntime.close();

/** Parses a trigger (scheduled event or audit request) into a plan, logging what was wrong. */
function planOrReport(
  rt: JobRuntime,
  event: unknown,
  now: Date,
  invocationId: string,
  runIdSuffix?: string,
): RunPlan {
  try {
    return planFromEvent(event, now, invocationId, { runIdSuffix });
  } catch (error) {
    if (error instanceof InvalidEventError) {
      rt.logger.error('rejected the run trigger', { invocationId, issues: [...error.issues] });
    }
    throw error;
  }
}

const summary = (rt: JobRuntime, outcome: RunOutcome): RunSummary => ({
  snapshotId: outcome.manifest.snapshot_id,
  runId: outcome.manifest.run_id,
  status: outcome.manifest.status,
  manifestKey: outcome.manifestKey ?? null,
  manifestUri: outcome.manifestKey === undefined ? null : `s3://${rt.config.bucket}/${outcome.manifestKey}`,
  dt: outcome.manifest.dt,
  trigger: outcome.manifest.trigger,
  counts: outcome.manifest.counts,
  files: outcome.manifest.files.sessions.length,
  failedStep: outcome.manifest.error?.step ?? null,
  errorType: outcome.manifest.error?.type ?? null,
});

type LambdaContext = Pick<Context, 'awsRequestId' | 'getRemainingTimeInMillis'>;

/**
 * The Lambda entry's body over a given runtime source: parse the input, run the phase, return its
 * small output. A failing phase throws (with its literal error name), and the state machine's
 * Catch sends the run to Abort. Tests build one over a runtime of their own (a captured logger);
 * everything else about an invocation is the deployed function's code.
 */
export function createPhaseHandler(
  runtimeOf: RuntimeSource,
): (event: unknown, context: LambdaContext) => Promise<PhaseResult> {
  return async (event, context) => {
    const rt = await runtimeOf();
    const parsed = phaseInputSchema.safeParse(event);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(
        (i) => `${i.path.length ? i.path.join('.') : 'input'}: ${i.message}`,
      );
      rt.logger.error('rejected the phase input', { requestId: context.awsRequestId, issues });
      throw new InvalidPhaseInputError(
        `Rejected the phase input: this function runs the phases of the snapshot state machine (start an execution instead of invoking it). ${issues.join('; ')}`,
      );
    }
    return runPhase(rt, parsed.data, context);
  };
}

/** The Lambda entry: one phase of a run per invocation, on the container's cached runtime. */
export const handler = createPhaseHandler(getRuntime);

async function runPhase(rt: JobRuntime, input: PhaseInput, context: LambdaContext): Promise<PhaseResult> {
  switch (input.phase) {
    case 'plan': {
      const { name, startTime } = input.execution;
      // Derived from the execution, so a retried Plan names the same run.
      const suffix = createHash('sha256').update(name).digest('hex');
      return planPhase(rt, planOrReport(rt, input.trigger, new Date(startTime), name, suffix));
    }
    case 'work': {
      const deadline = Date.now() + context.getRemainingTimeInMillis();
      const margin = rt.config.deadlineMarginMs;
      // New pages stop at the margin; the page in hand may use three quarters of it. Then the
      // calls still running are stopped and their users handed to the next Work: the last
      // quarter is left for closing files (their last parts) and writing the step state.
      return workPhase(rt, input.run, input.slice, {
        invocationId: context.awsRequestId,
        stopAt: deadline - margin,
        hardStopAt: deadline - margin / 4,
      });
    }
    case 'commit':
      return summary(rt, await commitPhase(rt, input.run, input.tails));
    case 'abort': {
      const error = describeCaughtError(input.error);
      if (input.run === undefined) {
        // Plan failed: there is no run to abort and no snapshot id to write a manifest under.
        rt.logger.error('run failed before it was planned', { failedStep: input.failedStep, error });
        return {
          snapshotId: null,
          runId: null,
          status: 'failed',
          manifestKey: null,
          manifestUri: null,
          dt: null,
          trigger: null,
          counts: emptyCounts(),
          files: 0,
          failedStep: input.failedStep,
          errorType: error.type,
        };
      }
      return summary(
        rt,
        await abortPhase(rt, { run: input.run, error, failedStep: input.failedStep, tails: input.tails }),
      );
    }
  }
}
