import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { SnapshotWriteError } from '../core/errors';
import type { PendingFile } from './gzip-multipart-file';

/** S3 calls at once during commit/abort: fast enough for thousands of files, gentle on S3 rate limits. */
const S3_PARALLELISM = 8;

/**
 * Makes the files visible: completes each multipart upload. Runs only after every user was
 * processed and the failure tolerance held, so Athena sees a snapshot's files all at once, within
 * the few seconds completing them takes, or not at all.
 */
export async function completeFiles(
  s3: S3Client,
  bucket: string,
  files: readonly PendingFile[],
): Promise<void> {
  const limit = pLimit(S3_PARALLELISM);
  await Promise.all(
    files.map((file) =>
      limit(async () => {
        try {
          await s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: file.key,
              UploadId: file.uploadId,
              MultipartUpload: { Parts: [...file.parts] },
            }),
          );
        } catch (error) {
          throw new SnapshotWriteError(
            `Completing s3://${bucket}/${file.key} failed: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
      }),
    ),
  );
}

/** Aborts uploads of a failed run; best effort per file (the bucket's lifecycle rule is the backstop). */
export async function abortFiles(
  s3: S3Client,
  bucket: string,
  files: readonly PendingFile[],
): Promise<number> {
  const limit = pLimit(S3_PARALLELISM);
  const results = await Promise.allSettled(
    files.map((file) =>
      limit(() =>
        s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: file.key, UploadId: file.uploadId })),
      ),
    ),
  );
  return results.filter((r) => r.status === 'rejected').length;
}

/** Every key under `prefix` (paginated). */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/**
 * Deletes files of this snapshot that this run did not write: a rerun of a slot that once had
 * more files would otherwise leave duplicates of older rows beside the new ones.
 */
export async function deleteStaleFiles(
  s3: S3Client,
  bucket: string,
  prefixes: readonly string[],
  keep: ReadonlySet<string>,
): Promise<string[]> {
  const stale: string[] = [];
  for (const prefix of prefixes) {
    for (const key of await listKeys(s3, bucket, prefix)) if (!keep.has(key)) stale.push(key);
  }
  for (let i = 0; i < stale.length; i += 1000) {
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: stale.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
      }),
    );
    if (out.Errors?.length) {
      throw new SnapshotWriteError(
        `Deleting stale files failed for ${out.Errors.length} keys, first: ${out.Errors[0]?.Key} (${out.Errors[0]?.Code})`,
      );
    }
  }
  return stale;
}

export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        // One line: the manifests table reads it with a JSON SerDe, which takes one record per line.
        Body: `${JSON.stringify(value)}\n`,
        ContentType: 'application/json',
      }),
    );
  } catch (error) {
    throw new SnapshotWriteError(`Writing s3://${bucket}/${key} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Whether a committed manifest is already at `key` (a failed rerun must not overwrite it). */
export async function isCommittedManifest(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  let text: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await out.Body?.transformToString()) ?? '';
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return false;
    throw new SnapshotWriteError(`Reading s3://${bucket}/${key} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    return (JSON.parse(text) as { status?: string }).status === 'committed';
  } catch {
    return false;
  }
}
