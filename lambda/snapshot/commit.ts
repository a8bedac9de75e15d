import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { SnapshotWriteError } from '../core/errors';
import type { JobLogger } from '../core/observability';
import { completeFile } from './complete-file';
import type { PendingFile } from './gzip-multipart-file';
import type { Manifest } from './manifest';
import {
  abortUploads,
  deleteKeys,
  getJson,
  listKeys,
  listOpenUploads,
  type OpenUpload,
  putJson,
  S3_PARALLELISM,
} from './s3-objects';
import { FILE_KINDS, runIdOfKey, type SnapshotKeys } from './snapshot-keys';
import { listUploadRecords } from './upload-registry';

/**
 * The commit protocol. Readers (the Athena view `sessions`, `npm start`'s DuckDB query) show, for
 * each slot, the lines of the committed run with the greatest run id. So:
 *
 * - Nothing a run writes is visible before its manifest says `committed`: data files carry the run
 *   id in their key (no run ever writes another's key), and a completed file of a run without a
 *   committed manifest is ignored by readers.
 * - The commit point is one PutObject of this run's own manifest key: atomic in S3, and no other
 *   run writes that key. Readers switch from the old run to the new one at that moment, whole.
 * - Files of older runs are deleted only after a newer run's commit point exists, and only runs
 *   older than the newest committed one are touched, so no failure at any step damages what
 *   readers see. Deletion is best effort; whatever is left, the next run of the slot retries.
 * - Two runs of a slot at once: the newer aborts the older's open uploads when it starts
 *   (`takeOverSlot`), so the older fails cleanly at its Complete; if the older already committed,
 *   the newer commits after it and supersedes it. Either way readers see one whole run.
 */
export interface CommitContext {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly keys: SnapshotKeys;
  readonly logger: JobLogger;
}

export interface CleanupReport {
  /** The run readers now show: the committed run with the greatest id (normally this run). */
  readonly visibleRunId: string | undefined;
  readonly deletedFiles: number;
  readonly supersededManifests: number;
  readonly abortedUploads: number;
  /** Keys or uploads that could not be removed; the next run of the slot retries them. */
  readonly leftovers: number;
}

export interface CommitResult {
  readonly manifestKey: string;
  readonly cleanup: CleanupReport;
}

/**
 * Completes `files` and verifies each against what was written, aborts every other upload of
 * this run (a retried Work step's), writes the committed manifest (the commit point), then
 * removes what older runs of the slot left. Throws SnapshotWriteError (SnapshotVerificationError
 * for a file that is not what was written) when the commit point was not reached: nothing of
 * this run is visible then, and the caller's abort path cleans up. Safe to call again after a
 * crash or a timeout: a run whose manifest already says committed goes straight to the clean-up.
 */
export async function commitRun(
  ctx: CommitContext,
  files: readonly PendingFile[],
  manifest: Manifest,
): Promise<CommitResult> {
  const { s3, bucket, keys, logger } = ctx;
  const manifestKey = keys.manifestKey();
  if (manifest.status !== 'committed' || manifest.run_id !== keys.runId) {
    throw new SnapshotWriteError(`commitRun needs this run's committed manifest, got ${manifest.status}`);
  }
  const already = await getJson<Manifest>(s3, bucket, manifestKey);
  if (already?.status !== 'committed') {
    await completeFiles(s3, bucket, files);
    const strays = await abortStrayUploads(ctx, new Set(files.map((f) => f.uploadId)));
    if (strays > 0)
      logger.warn('some uploads of this run could not be aborted before commit', { count: strays });
    await putCommitPoint(ctx, manifestKey, manifest);
  }
  const cleanup = await cleanUpSlot(ctx);
  return { manifestKey, cleanup };
}

async function putCommitPoint(ctx: CommitContext, manifestKey: string, manifest: Manifest): Promise<void> {
  try {
    await putJson(ctx.s3, ctx.bucket, manifestKey, manifest);
  } catch (error) {
    // The PUT may have landed although the answer was lost: then this run IS committed, and
    // treating it as failed would delete files readers are shown.
    const landed = await getJson<Manifest>(ctx.s3, ctx.bucket, manifestKey).catch(() => undefined);
    if (landed?.status === 'committed' && landed.run_id === manifest.run_id) return;
    throw error;
  }
}

/**
 * Makes each file a visible object and verifies it (complete-file.ts). A file already completed
 * by an earlier attempt of this commit counts once it is verified. On the first failure no
 * further file is started, and the ones in flight are waited for before this throws: a Complete
 * still running after Commit failed could land after Abort removed this run's files (and a
 * frozen Lambda resumes its sockets on its next invocation).
 */
export async function completeFiles(
  s3: S3Client,
  bucket: string,
  files: readonly PendingFile[],
): Promise<void> {
  const s3Calls = pLimit(S3_PARALLELISM);
  let failure: { error: unknown } | undefined;
  await Promise.all(
    files.map((file) =>
      s3Calls(async () => {
        if (failure) return;
        try {
          await completeFile(s3, bucket, file);
        } catch (error) {
          failure ??= { error };
        }
      }),
    ),
  );
  if (failure) throw failure.error;
}

/**
 * Open uploads of the slot whose run `include` accepts: the recorded ones, plus any that S3 lists
 * (production only; see upload-registry.ts). With `onlyRun`, only that run's records are read and
 * only its keys listed.
 */
async function openUploads(
  ctx: CommitContext,
  include: (runId: string) => boolean,
  onlyRun?: string,
): Promise<OpenUpload[]> {
  const { s3, bucket, keys } = ctx;
  const found = new Map<string, OpenUpload>();
  for (const record of await listUploadRecords(s3, bucket, keys, onlyRun))
    if (include(record.runId)) found.set(record.uploadId, record);
  for (const kind of FILE_KINDS) {
    const slotPrefix = keys.slotFilePrefix(kind);
    const prefix = onlyRun === undefined ? slotPrefix : keys.runFilePrefix(kind);
    for (const upload of (await listOpenUploads(s3, bucket, prefix)) ?? []) {
      const runId = runIdOfKey(upload.key, slotPrefix);
      if (runId !== undefined && include(runId)) found.set(upload.uploadId, upload);
    }
  }
  return [...found.values()];
}

const openUploadsOfRun = (ctx: CommitContext) =>
  openUploads(ctx, (runId) => runId === ctx.keys.runId, ctx.keys.runId);

/** Aborts this run's uploads that are not in `keep`; returns how many could not be aborted. */
async function abortStrayUploads(ctx: CommitContext, keep: ReadonlySet<string>): Promise<number> {
  const strays = (await openUploadsOfRun(ctx)).filter((u) => !keep.has(u.uploadId));
  return (await abortUploads(ctx.s3, ctx.bucket, strays)).length;
}

/**
 * Called when a run starts: aborts the open uploads of older runs of the slot. They belong to
 * runs that died (their parts would otherwise stay, billed, until a lifecycle rule, which a
 * bucket the stack did not create may not have) or to a run still going, which then fails
 * cleanly at its next part or Complete rather than racing this one. Best effort.
 */
export async function takeOverSlot(ctx: CommitContext): Promise<{ aborted: number; leftovers: number }> {
  const { s3, bucket, keys, logger } = ctx;
  const found = await openUploads(ctx, (runId) => runId < keys.runId);
  const failed = await abortUploads(s3, bucket, found);
  const aborted = found.length - failed.length;
  if (found.length > 0)
    logger.info('aborted open uploads that earlier runs of this snapshot left behind', {
      aborted,
      leftovers: failed.length,
    });
  return { aborted, leftovers: failed.length };
}

/**
 * After a commit point: everything of runs older than the slot's newest committed run goes.
 * Their committed manifests are marked `superseded` first (so no manifest claims files that are
 * gone), then their data files, open uploads and run state are removed. Never throws: failures
 * are logged and left for the next run of the slot, which runs this same clean-up.
 */
export async function cleanUpSlot(ctx: CommitContext): Promise<CleanupReport> {
  const { s3, bucket, keys, logger } = ctx;
  let leftovers = 0;
  let supersededManifests = 0;
  let deletedFiles = 0;
  let abortedUploads = 0;
  let visibleRunId: string | undefined;
  try {
    const manifestKeys = await listKeys(s3, bucket, keys.slotManifestPrefix());
    const s3Calls = pLimit(S3_PARALLELISM);
    const manifests = (
      await Promise.all(
        manifestKeys
          .filter((key) => runIdOfKey(key, keys.slotManifestPrefix()) !== undefined)
          .map((key) => s3Calls(async () => ({ key, manifest: await getJson<Manifest>(s3, bucket, key) }))),
      )
    ).filter((m): m is { key: string; manifest: Manifest } => m.manifest !== undefined);
    for (const { manifest } of manifests)
      if (manifest.status === 'committed' && (visibleRunId === undefined || manifest.run_id > visibleRunId))
        visibleRunId = manifest.run_id;
    const winner = visibleRunId;
    if (winner === undefined)
      return { visibleRunId, deletedFiles, supersededManifests, abortedUploads, leftovers };

    for (const { key, manifest } of manifests) {
      if (manifest.status !== 'committed' || manifest.run_id >= winner) continue;
      try {
        await putJson(s3, bucket, key, { ...manifest, status: 'superseded', superseded_by: winner });
        supersededManifests++;
      } catch {
        leftovers++;
      }
    }

    const older = (runId: string | undefined) => runId !== undefined && runId < winner;
    const records = (await listUploadRecords(s3, bucket, keys)).filter((r) => older(r.runId));
    const notAborted = await abortUploads(s3, bucket, records);
    abortedUploads = records.length - notAborted.length;
    leftovers += notAborted.length;

    const stale: string[] = [];
    for (const kind of FILE_KINDS) {
      const prefix = keys.slotFilePrefix(kind);
      for (const key of await listKeys(s3, bucket, prefix))
        if (older(runIdOfKey(key, prefix))) stale.push(key);
    }
    const notDeleted = await deleteKeys(s3, bucket, stale);
    deletedFiles = stale.length - notDeleted.length;
    leftovers += notDeleted.length;

    // Run state of finished runs: the winner's (its commit is done) and older ones whose uploads
    // are all gone. Kept otherwise, so the next run still finds the uploads to abort.
    const statePrefix = keys.slotStatePrefix();
    const notAbortedRuns = new Set(notAborted.map((u) => (u as { runId?: string }).runId));
    const stateKeys = (await listKeys(s3, bucket, statePrefix)).filter((key) => {
      const runId = runIdOfKey(key, statePrefix);
      return runId !== undefined && runId <= winner && !notAbortedRuns.has(runId);
    });
    leftovers += (await deleteKeys(s3, bucket, stateKeys)).length;
  } catch (error) {
    leftovers++;
    logger.warn('clean-up of earlier runs of this snapshot stopped; the next run of the slot retries it', {
      error: (error as Error).message,
    });
  }
  if (leftovers > 0)
    logger.warn('some files of earlier runs of this snapshot could not be removed; the next run retries', {
      leftovers,
    });
  else if (deletedFiles + supersededManifests > 0)
    logger.info('removed earlier runs of this snapshot', {
      deletedFiles,
      supersededManifests,
      abortedUploads,
    });
  return { visibleRunId, deletedFiles, supersededManifests, abortedUploads, leftovers };
}

export interface AbortResult {
  /** Where the failed manifest was written; undefined when it could not be (or must not be). */
  readonly manifestKey: string | undefined;
  /** True when this run had already committed: nothing was aborted or overwritten. */
  readonly alreadyCommitted: boolean;
}

/**
 * A run that will not commit: aborts every open upload of this run (recorded or listed), deletes any file of it that a partial commit completed, and writes its
 * failed manifest. Nothing here can touch another run's objects. If this run's manifest already
 * says committed (a commit whose success was not reported), nothing is undone.
 */
export async function abortRun(ctx: CommitContext, failedManifest: Manifest): Promise<AbortResult> {
  const { s3, bucket, keys, logger } = ctx;
  const manifestKey = keys.manifestKey();
  let current: Manifest | undefined;
  try {
    current = await getJson<Manifest>(s3, bucket, manifestKey);
  } catch (error) {
    // Unknown whether this run committed: deleting or overwriting anything could damage it.
    logger.error('could not read this run manifest; left everything as it is', {
      error: (error as Error).message,
    });
    return { manifestKey: undefined, alreadyCommitted: false };
  }
  if (current?.status === 'committed') {
    logger.warn('this run had already committed; nothing was aborted', { manifestKey });
    return { manifestKey, alreadyCommitted: true };
  }
  const listed = await openUploadsOfRun(ctx).catch((error: unknown) => {
    logger.warn(
      'could not list this run uploads; its run state is kept, so the next run of the slot aborts them',
      {
        error: (error as Error).message,
      },
    );
    return undefined;
  });
  const notAborted = await abortUploads(s3, bucket, listed ?? []);
  // Uploads it could not list stay open: they count as a leftover, so the run state that records
  // them is kept for the next run of the slot to find and abort.
  let leftovers = notAborted.length + (listed === undefined ? 1 : 0);
  try {
    const completed: string[] = [];
    for (const kind of FILE_KINDS) completed.push(...(await listKeys(s3, bucket, keys.runFilePrefix(kind))));
    leftovers += (await deleteKeys(s3, bucket, completed)).length;
  } catch {
    leftovers++;
  }
  if (leftovers > 0)
    logger.warn(
      'some uploads or files of this failed run could not be removed; readers never show them, and the next run of the slot removes them',
      {
        leftovers,
      },
    );
  try {
    await putJson(s3, bucket, manifestKey, failedManifest);
  } catch (error) {
    logger.error('could not write the failed manifest', { error: (error as Error).message });
    return { manifestKey: undefined, alreadyCommitted: false };
  }
  // Run state is kept only while it still names something to abort (for the next run to find).
  // The failed manifest is written by now: a failure here leaves state, never an unreported manifest.
  if (leftovers === 0) {
    try {
      await deleteKeys(s3, bucket, await listKeys(s3, bucket, keys.runStatePrefix()));
    } catch (error) {
      logger.warn('could not remove the run state of this failed run; the next run of the slot removes it', {
        error: (error as Error).message,
      });
    }
  }
  return { manifestKey, alreadyCommitted: false };
}
