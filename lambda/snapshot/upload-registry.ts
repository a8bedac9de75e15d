import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { getJson, listKeys, type OpenUpload, putJson, S3_PARALLELISM } from './s3-objects';
import { runIdOfKey, type SnapshotKeys } from './snapshot-keys';

export interface UploadRecord extends OpenUpload {
  readonly runId: string;
}

/**
 * A small object per multipart upload, written after CreateMultipartUpload and before the first
 * part, under the run's state prefix. It is how a later run of the slot, or this run's Abort,
 * finds uploads that no surviving state lists (a Work invocation killed mid-step, a process killed
 * in commit). S3's ListMultipartUploads would find them too, but the local S3 server (fauxqs)
 * does not implement it, and a record works on any store; production also lists (commit.ts).
 * Only an upload killed between its Create and this write is missed, and it holds no parts.
 */
export async function recordUpload(
  s3: S3Client,
  bucket: string,
  keys: SnapshotKeys,
  upload: OpenUpload,
): Promise<void> {
  const record: UploadRecord = { ...upload, runId: keys.runId };
  await putJson(s3, bucket, keys.uploadRecordKey(upload.key, upload.uploadId), record);
}

/** Every recorded upload of the slot, with the run that started it (all runs when `runId` is undefined). */
export async function listUploadRecords(
  s3: S3Client,
  bucket: string,
  keys: SnapshotKeys,
  runId?: string,
): Promise<UploadRecord[]> {
  const prefix = runId === undefined ? keys.slotStatePrefix() : keys.uploadRecordPrefix(runId);
  const recordKeys = (await listKeys(s3, bucket, prefix)).filter(
    (key) => key.includes('/uploads/') && runIdOfKey(key, keys.slotStatePrefix()) !== undefined,
  );
  const s3Calls = pLimit(S3_PARALLELISM);
  const records = await Promise.all(
    recordKeys.map((key) => s3Calls(() => getJson<UploadRecord>(s3, bucket, key))),
  );
  return records.filter((r): r is UploadRecord => r !== undefined);
}
