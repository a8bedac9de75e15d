import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { SnapshotWriteError } from '../core/errors';

/** S3 calls at once for many small operations: fast for thousands of files, gentle on S3 rate limits. */
export const S3_PARALLELISM = 8;

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

/** The parsed JSON at `key`, or undefined when there is no such object. */
export async function getJson<T>(s3: S3Client, bucket: string, key: string): Promise<T | undefined> {
  let text: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await out.Body?.transformToString()) ?? '';
  } catch (error) {
    if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
    throw new SnapshotWriteError(`Reading s3://${bucket}/${key} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new SnapshotWriteError(`s3://${bucket}/${key} is not JSON`, { cause: error });
  }
}

/** Every key under `prefix` (paginated). */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
    } catch (error) {
      throw new SnapshotWriteError(`Listing s3://${bucket}/${prefix} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Deletes `keys`, 1,000 per call. Never throws: returns the keys it could not delete. */
export async function deleteKeys(s3: S3Client, bucket: string, keys: readonly string[]): Promise<string[]> {
  const failed: string[] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    try {
      const out = await s3.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      for (const error of out.Errors ?? []) if (error.Key) failed.push(error.Key);
    } catch {
      failed.push(...batch);
    }
  }
  return failed;
}

export interface OpenUpload {
  readonly key: string;
  readonly uploadId: string;
}

/**
 * Aborts uploads, best effort per upload. An upload that is already gone (aborted or completed
 * by someone else) counts as done. Returns the uploads that could not be aborted.
 */
export async function abortUploads(
  s3: S3Client,
  bucket: string,
  uploads: readonly OpenUpload[],
): Promise<OpenUpload[]> {
  const s3Calls = pLimit(S3_PARALLELISM);
  const results = await Promise.all(
    uploads.map((upload) =>
      s3Calls(async () => {
        try {
          await s3.send(
            new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }),
          );
          return undefined;
        } catch (error) {
          return (error as { name?: string }).name === 'NoSuchUpload' ? undefined : upload;
        }
      }),
    ),
  );
  return results.filter((r): r is OpenUpload => r !== undefined);
}

/**
 * Open multipart uploads under `prefix`, as S3 lists them. This finds uploads that no run state
 * mentions (a process killed between CreateMultipartUpload and recording it). Returns undefined
 * when the store cannot list uploads (S3 emulators such as fauxqs do not implement it): callers
 * then rely on the upload records alone.
 */
export async function listOpenUploads(
  s3: S3Client,
  bucket: string,
  prefix: string,
): Promise<OpenUpload[] | undefined> {
  const uploads: OpenUpload[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  try {
    do {
      const page = await s3.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? [])
        if (upload.Key && upload.UploadId) uploads.push({ key: upload.Key, uploadId: upload.UploadId });
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
  } catch {
    return undefined;
  }
  return uploads;
}
