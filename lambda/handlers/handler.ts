import type { Context } from 'aws-lambda';
import { loadConfig } from '../core/config';
import { InvalidEventError } from '../core/errors';
import { type RunOptions, type RunOutcome, runExport } from '../run/run-export';
import { planFromEvent, type RunPlan } from '../run/run-plan';
import type { Manifest } from '../snapshot/manifest';
import { createExportRuntime, type ExportRuntime } from './export-context';

/** What a successful invocation returns: enough to find the snapshot without opening S3. */
export interface HandlerResult {
  readonly snapshotId: string;
  readonly status: Manifest['status'];
  readonly manifestKey: string | undefined;
  readonly counts: Manifest['counts'];
  readonly files: number;
}

let runtime: Promise<ExportRuntime> | undefined;

/**
 * Cold start: config and clients once per container. A failed init (say, Secrets Manager was
 * briefly unreachable) is not cached, so the next invocation tries again.
 */
export function getRuntime(configDefaults: Record<string, string> = {}): Promise<ExportRuntime> {
  runtime ??= Promise.resolve()
    .then(() => createExportRuntime(loadConfig(configDefaults)))
    .catch((error: unknown) => {
      runtime = undefined;
      throw error;
    });
  return runtime;
}

/** Releases the cached clients (sockets) so a CLI or test process can exit. */
export async function closeRuntime(): Promise<void> {
  const current = runtime;
  runtime = undefined;
  await (await current?.catch(() => undefined))?.close();
}

/** One invocation, shared by the Lambda handler and `npm run export`: parse, run, report. */
export async function invoke(
  event: unknown,
  invocationId: string,
  options: RunOptions & { configDefaults?: Record<string, string> } = {},
): Promise<RunOutcome> {
  const rt = await getRuntime(options.configDefaults);
  let plan: RunPlan;
  try {
    plan = planFromEvent(event, new Date(), invocationId);
  } catch (error) {
    // Reported here, counted by Lambda's Errors metric, and (for asynchronous invocations) kept
    // whole in the function's on-failure destination: a bad payload is never silently dropped.
    if (error instanceof InvalidEventError) {
      rt.logger.error('rejected the invocation payload', { invocationId, issues: [...error.issues] });
    }
    throw error;
  }
  return runExport(plan, rt, options);
}

/**
 * Thin on purpose. A failed snapshot is thrown (after its manifest is written) so Lambda counts
 * an error and the Errors alarm fires; a bad payload is thrown before anything is written.
 */
export async function handler(
  event: unknown,
  context: Pick<Context, 'awsRequestId' | 'getRemainingTimeInMillis'>,
): Promise<HandlerResult> {
  const outcome = await invoke(event, context.awsRequestId, {
    deadlineAt: Date.now() + context.getRemainingTimeInMillis(),
  });
  if (outcome.error) throw outcome.error;
  return {
    snapshotId: outcome.manifest.snapshot_id,
    status: outcome.manifest.status,
    manifestKey: outcome.manifestKey,
    counts: outcome.manifest.counts,
    files: outcome.manifest.files.sessions.length,
  };
}
