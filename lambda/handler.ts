import type { Context } from 'aws-lambda';
import { loadConfig } from './config';
import { createExportRuntime, type ExportRuntime } from './export-context';
import type { Manifest } from './manifest';
import { runExport } from './run-export';
import { planFromEvent } from './run-plan';

/** What a successful invocation returns: enough to find the snapshot without opening S3. */
export interface HandlerResult {
  readonly snapshotId: string;
  readonly status: Manifest['status'];
  readonly manifestKey: string | undefined;
  readonly counts: Manifest['counts'];
  readonly files: number;
}

let runtime: Promise<ExportRuntime> | undefined;

/** Cold start: config and clients once per container. A failed init is retried by the next invocation. */
function getRuntime(): Promise<ExportRuntime> {
  runtime ??= Promise.resolve()
    .then(() => createExportRuntime(loadConfig()))
    .catch((error: unknown) => {
      runtime = undefined;
      throw error;
    });
  return runtime;
}

/**
 * Thin on purpose: parse the event, run the export, map the outcome. A failed snapshot is thrown
 * (after its manifest is written) so Lambda counts an error and the Errors alarm fires; a bad
 * payload is thrown before anything is written.
 */
export async function handler(
  event: unknown,
  context: Pick<Context, 'awsRequestId' | 'getRemainingTimeInMillis'>,
) {
  const rt = await getRuntime();
  const plan = planFromEvent(event, new Date(), context.awsRequestId);
  const outcome = await runExport(plan, rt, { deadlineAt: Date.now() + context.getRemainingTimeInMillis() });
  if (outcome.error) throw outcome.error;
  const result: HandlerResult = {
    snapshotId: outcome.manifest.snapshot_id,
    status: outcome.manifest.status,
    manifestKey: outcome.manifestKey,
    counts: outcome.manifest.counts,
    files: outcome.manifest.files.sessions.length,
  };
  return result;
}
