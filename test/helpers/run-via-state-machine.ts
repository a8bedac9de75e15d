import { loadConfig } from '../../lambda/core/config';
import type { JobLogger, MetricsSink } from '../../lambda/core/observability';
import { createExportRuntime } from '../../lambda/handlers/export-context';
import { createPhaseHandler } from '../../lambda/handlers/handler';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { getJson } from '../../lambda/snapshot/s3-objects';
import { runExportLocally } from '../../local/local-export';
import type { LocalExecution, LocalExecutionOptions } from '../../local/state-machine-runner';
import { type CapturedLogger, captureLogger } from './capture-logger';
import { useProcessEnv } from './stack-env';

export interface StateMachineRun {
  readonly execution: LocalExecution;
  /** The run's own manifest (committed or failed), as S3 holds it; undefined when none was written. */
  readonly manifest: Manifest | undefined;
  readonly manifestKey: string | undefined;
  /** How the execution failed, as Step Functions reports it (the error's literal name and message). */
  readonly error: { readonly name: string; readonly message: string } | undefined;
  readonly logger: CapturedLogger;
}

export interface RunViaStateMachineOptions extends LocalExecutionOptions {
  /** Used instead of a fresh captured logger (its lines are in `logger` either way when captured). */
  readonly logger?: CapturedLogger;
  readonly metrics?: MetricsSink;
  /** Epoch time the execution starts at, for its name (`audit-<now>-…`). */
  readonly now?: Date;
}

/**
 * One export run the only way a run runs outside AWS: the synthesized state-machine definition
 * on the local runner (what `npm run export` and `npm start` use), every Task invoking the real
 * Lambda handler. `env` is the whole environment of the function (the local stack's `env` plus
 * the test's settings): it is the process environment while the run lasts, since the AWS SDK
 * reads endpoints and checksum settings from it, and the job's config is parsed from it once, as
 * at a cold start. The runtime is the function's own, with a captured logger.
 */
export async function runViaStateMachine(
  env: Record<string, string>,
  trigger: unknown,
  options: RunViaStateMachineOptions = {},
): Promise<StateMachineRun> {
  const restore = useProcessEnv(env);
  const logger = options.logger ?? captureLogger();
  const runtime = await createExportRuntime(loadConfig(), {
    logger: logger as JobLogger,
    metrics: options.metrics,
  }).catch((error: unknown) => {
    restore();
    throw error;
  });
  let abortedKey: string | undefined;
  try {
    const execution = await runExportLocally(trigger, options.now ?? new Date(), {
      ...options,
      handler: createPhaseHandler(async () => runtime),
      onPhase: async (call) => {
        if (call.state === 'Abort' && call.result)
          abortedKey = (call.result as { manifestKey: string | null }).manifestKey ?? undefined;
        await options.onPhase?.(call);
      },
    });
    const manifestKey =
      execution.status === 'SUCCEEDED'
        ? ((execution.output as { manifestKey: string | null } | undefined)?.manifestKey ?? undefined)
        : abortedKey;
    const manifest =
      manifestKey === undefined
        ? undefined
        : await getJson<Manifest>(runtime.s3, runtime.config.bucket, manifestKey);
    return { execution, manifest, manifestKey, error: errorOf(execution), logger };
  } finally {
    await runtime.close();
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
