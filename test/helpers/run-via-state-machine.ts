import type { Context } from 'aws-lambda';
import { loadConfig } from '../../lambda/core/config';
import type { JobLogger, MetricsSink } from '../../lambda/core/observability';
import {
  closeRuntime,
  createPhaseHandler,
  getRuntime,
  handler as lambdaHandler,
  type RunSummary,
} from '../../lambda/handlers/handler';
import { createJobRuntime, type JobRuntime } from '../../lambda/handlers/job-runtime';
import type { RunRef } from '../../lambda/run/phase-payloads';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { getJson } from '../../lambda/snapshot/s3-objects';
import { runExportLocally } from '../../local/local-export';
import type { LocalExecution, LocalExecutionOptions, PhaseHandler } from '../../local/state-machine-runner';
import { type CapturedLogger, captureLogger } from './capture-logger';
import { useProcessEnv } from './stack-env';

/** One invocation of the function, as the handler saw it end. */
export interface Invocation {
  /** The payload's phase: plan, work, commit or abort. */
  readonly phase: string;
  readonly payload: unknown;
  /** What the handler returned; undefined when it threw. */
  readonly result: unknown;
  /** The error's literal name when the handler threw. */
  readonly error: string | undefined;
  /** Lambda's remaining time when the handler returned or threw (0: it ran to the deadline or past it). */
  readonly msLeft: number;
}

export interface StateMachineRun {
  readonly execution: LocalExecution;
  /** The run Plan fixed (ids, dt, plan key); undefined when Plan failed. */
  readonly run: RunRef | undefined;
  /** What Commit (or, for a failed run, Abort) returned. */
  readonly summary: RunSummary | undefined;
  /** The run's own manifest (committed or failed), as S3 holds it; undefined when none was written. */
  readonly manifest: Manifest | undefined;
  readonly manifestKey: string | undefined;
  /** How the execution failed, as Step Functions reports it (the error's literal name and message). */
  readonly error: { readonly name: string; readonly message: string } | undefined;
  /** The function's log lines (empty with `lambdaEntry`: those go to stdout). */
  readonly logger: CapturedLogger;
  /** Every invocation of the function, in the order they ended (retries included). */
  readonly invocations: readonly Invocation[];
}

export interface RunViaStateMachineOptions extends LocalExecutionOptions {
  /**
   * Remaining time each Work invocation starts with. @default 900000 (Lambda's 15 minutes: one
   * Work per segment unless the test asks for less)
   */
  readonly workBudgetMs?: number;
  /** Used instead of a fresh captured logger (its lines are in `logger` either way when captured). */
  readonly logger?: CapturedLogger;
  readonly metrics?: MetricsSink;
  /** Epoch time the execution starts at, for its name (`audit-<now>-…`). */
  readonly now?: Date;
  /**
   * The execution's name. @default what the launcher gives a scheduled slot
   * (`scheduled-<slot>`), or `audit-<now>-<random>`
   */
  readonly executionName?: string;
  /**
   * Invoke the deployed entry point itself (`handler`: the container's runtime from process.env,
   * Powertools JSON logs and EMF metrics on stdout) instead of a handler over a runtime with a
   * captured logger. The container's runtime is closed when the run ends.
   */
  readonly lambdaEntry?: boolean;
}

/**
 * One export run the only way a run runs outside AWS: the synthesized state-machine definition
 * on the local runner (what `npm run export` and `npm start` use), every Task invoking the real
 * Lambda handler. `env` is the whole environment of the function (the local stack's `env` plus
 * the test's settings): it is the process environment while the run lasts, since the AWS SDK
 * reads endpoints and checksum settings from it, and the job's config is parsed from it once, as
 * at a cold start. The runtime is the function's own, with a captured logger unless `lambdaEntry`.
 */
export async function runViaStateMachine(
  env: Record<string, string>,
  trigger: unknown,
  options: RunViaStateMachineOptions = {},
): Promise<StateMachineRun> {
  const restore = useProcessEnv(env);
  const logger = options.logger ?? captureLogger();
  let runtime: JobRuntime;
  let base: PhaseHandler;
  try {
    if (options.lambdaEntry) {
      runtime = await getRuntime();
      base = lambdaHandler as PhaseHandler;
    } else {
      runtime = await createJobRuntime(loadConfig(), {
        logger: logger as JobLogger,
        metrics: options.metrics,
      });
      const own = runtime;
      base = createPhaseHandler(async () => own) as PhaseHandler;
    }
  } catch (error) {
    restore();
    throw error;
  }
  const invocations: Invocation[] = [];
  const observed: PhaseHandler = async (event, context: Context) => {
    const phase = String((event as { phase?: unknown }).phase);
    try {
      const result = await base(event, context);
      invocations.push({
        phase,
        payload: event,
        result,
        error: undefined,
        msLeft: context.getRemainingTimeInMillis(),
      });
      return result;
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      invocations.push({
        phase,
        payload: event,
        result: undefined,
        error: name,
        msLeft: context.getRemainingTimeInMillis(),
      });
      throw error;
    }
  };
  try {
    const execution = await runExportLocally(trigger, options.now ?? new Date(), {
      ...options,
      workBudgetMs: options.workBudgetMs ?? 900_000,
      name: options.executionName,
      handler: observed,
    });
    const planned = invocations.find((i) => i.phase === 'plan' && i.error === undefined)?.result as
      | { run: RunRef }
      | undefined;
    const summary = (
      execution.status === 'SUCCEEDED'
        ? execution.output
        : invocations.findLast((i) => i.phase === 'abort' && i.error === undefined)?.result
    ) as RunSummary | undefined;
    const manifestKey = summary?.manifestKey ?? undefined;
    const manifest =
      manifestKey === undefined
        ? undefined
        : await getJson<Manifest>(runtime.s3, runtime.config.bucket, manifestKey);
    return {
      execution,
      run: planned?.run,
      summary,
      manifest,
      manifestKey,
      error: errorOf(execution),
      logger,
      invocations,
    };
  } finally {
    if (options.lambdaEntry) await closeRuntime();
    else await runtime.close();
    restore();
  }
}

/** The failed execution's error: its name, and the function's own message from Lambda's error document. */
function errorOf(execution: LocalExecution): StateMachineRun['error'] {
  if (execution.status !== 'FAILED' || execution.error === undefined) return undefined;
  const { Error: name, Cause } = execution.error;
  try {
    const document = JSON.parse(Cause) as { errorMessage?: unknown };
    if (typeof document.errorMessage === 'string') return { name, message: document.errorMessage };
  } catch {
    // Not Lambda's error document (a States.* error): the Cause is the message.
  }
  return { name, message: Cause };
}

/** Retry waits short enough for tests (the defaults back off for seconds). */
export const FAST_RETRIES = { EXPORT_RETRY_BASE_DELAY_MS: '5', EXPORT_RETRY_MAX_DELAY_MS: '50' } as const;

export interface PrefixedRun extends StateMachineRun {
  /** The EXPORT_PREFIX the run wrote under. */
  readonly prefix: string;
}

/**
 * A suite's way to run exports on its local stack: `stack()` (set up in `beforeAll`) gives the
 * environment, `suiteEnv` the suite's own settings, and each run writes under a fresh prefix
 * (`<stem>1`, `<stem>2`, ...) unless its `env` names one.
 */
export function exportRunner(
  stack: () => { readonly env: Record<string, string> },
  stem: string,
  suiteEnv: Record<string, string> = {},
): (
  trigger: unknown,
  env?: Record<string, string>,
  options?: RunViaStateMachineOptions,
) => Promise<PrefixedRun> {
  let runs = 0;
  return async (trigger, env = {}, options = {}) => {
    const prefix = env.EXPORT_PREFIX ?? `${stem}${++runs}`;
    const result = await runViaStateMachine(
      { ...stack().env, ...suiteEnv, ...env, EXPORT_PREFIX: prefix },
      trigger,
      options,
    );
    return { ...result, prefix };
  };
}

/** A run that wrote its manifest, committed or failed. */
export interface ManifestRun extends PrefixedRun {
  readonly manifest: Manifest;
  readonly manifestKey: string;
}

/** The run, which must have written its manifest: one that wrote none fails here, saying how it ended. */
export function withManifest(run: PrefixedRun): ManifestRun {
  if (run.manifest === undefined || run.manifestKey === undefined) {
    throw new Error(`${run.execution.name} wrote no manifest: ${JSON.stringify(run.execution.error)}`);
  }
  return run as ManifestRun;
}
