import {
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  type FileDifference,
  type FileMismatch,
  SnapshotVerificationError,
  SnapshotWriteError,
} from '../core/errors';
import { crc32Base64, type PendingFile, type UploadedPart } from './gzip-multipart-file';

/**
 * The CRC32 S3 reports for a multipart object uploaded with CRC32 part checksums (S3's default
 * checksum type for CRC32, COMPOSITE): the CRC32 of the parts' binary CRC32s concatenated in
 * part order, base64, then `-<number of parts>`. Undefined when the parts carry no checksums
 * (the client runs WHEN_REQUIRED), so there is nothing to compare.
 */
export function compositeCrc32(parts: readonly UploadedPart[]): string | undefined {
  if (parts.length === 0 || parts.some((p) => p.ChecksumCRC32 === undefined)) return undefined;
  const ordered = [...parts].sort((a, b) => a.PartNumber - b.PartNumber);
  const binary = Buffer.concat(ordered.map((p) => Buffer.from(p.ChecksumCRC32 as string, 'base64')));
  return `${crc32Base64(binary)}-${ordered.length}`;
}

/** A composite checksum matches with its part count, or without it (some stores leave it off). */
function sameChecksum(expected: string, actual: string | undefined): boolean {
  return actual === expected || actual === expected.slice(0, expected.lastIndexOf('-'));
}

interface Expected {
  readonly bytes: number;
  readonly checksum: string | undefined;
}

function differencesOf(
  expected: Expected,
  answer: { bytes?: number | undefined; checksum: string | undefined },
  checksumRequired: boolean,
): FileDifference[] {
  const differences: FileDifference[] = [];
  if ('bytes' in answer && answer.bytes !== expected.bytes)
    differences.push({ field: 'bytes', expected: expected.bytes, actual: answer.bytes ?? null });
  const { checksum } = expected;
  if (
    checksum !== undefined &&
    (answer.checksum !== undefined || checksumRequired) &&
    !sameChecksum(checksum, answer.checksum)
  )
    differences.push({ field: 'checksum', expected: checksum, actual: answer.checksum ?? null });
  return differences;
}

function mismatchError(mismatch: FileMismatch): SnapshotVerificationError {
  const what = mismatch.differences
    .map((d) =>
      d.field === 'bytes'
        ? `${d.expected} bytes written, ${mismatch.source} says ${d.actual ?? 'nothing'}`
        : `CRC32 of the parts written ${d.expected}, ${mismatch.source} says ${d.actual ?? 'none'}`,
    )
    .join('; ');
  return new SnapshotVerificationError(
    `s3://${mismatch.bucket}/${mismatch.key} is not what this run wrote (${what}); nothing was committed`,
    mismatch,
  );
}

const completingFailed = (bucket: string, key: string, cause: Error) =>
  new SnapshotWriteError(`Completing s3://${bucket}/${key} failed: ${cause.message}`, { cause });

const isNamed = (error: unknown, name: string) => (error as { name?: string }).name === name;

/**
 * Completes one file and checks what S3 then holds against what the writer uploaded, before
 * anything can commit it: the checksum in Complete's answer, then one HeadObject for the size
 * and the checksum S3 stored. A 200 from Complete is not proof (a local S3 server once completed
 * a checksummed upload as an empty object). A file that an earlier attempt of this commit
 * completed (NoSuchUpload now) is verified the same way, by its HeadObject alone. Where the
 * parts carry no checksums (WHEN_REQUIRED), only the size is checked.
 */
export async function completeFile(s3: S3Client, bucket: string, file: PendingFile): Promise<void> {
  const expected: Expected = { bytes: file.bytes, checksum: compositeCrc32(file.parts) };
  let completed: CompleteMultipartUploadCommandOutput | undefined;
  let gone: Error | undefined;
  try {
    completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: file.key,
        UploadId: file.uploadId,
        MultipartUpload: { Parts: [...file.parts] },
      }),
    );
  } catch (error) {
    if (!isNamed(error, 'NoSuchUpload')) throw completingFailed(bucket, file.key, error as Error);
    gone = error as Error;
  }
  if (completed) {
    const differences = differencesOf(expected, { checksum: completed.ChecksumCRC32 }, false);
    if (differences.length > 0)
      throw mismatchError({ bucket, key: file.key, source: 'CompleteMultipartUpload', differences });
  }

  let head: HeadObjectCommandOutput;
  try {
    head = await s3.send(
      new HeadObjectCommand({
        Bucket: bucket,
        Key: file.key,
        ...(expected.checksum === undefined ? {} : { ChecksumMode: 'ENABLED' as const }),
      }),
    );
  } catch (error) {
    // NoSuchUpload and no object: the upload was aborted, not completed by an earlier attempt.
    if (gone && isNamed(error, 'NotFound')) throw completingFailed(bucket, file.key, gone);
    throw new SnapshotWriteError(`Verifying s3://${bucket}/${file.key} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // A store that reported a checksum at Complete must report it for the object too: an object
  // without one is not the object that was completed.
  const differences = differencesOf(
    expected,
    { bytes: head.ContentLength, checksum: head.ChecksumCRC32 },
    completed?.ChecksumCRC32 !== undefined,
  );
  if (differences.length > 0)
    throw mismatchError({ bucket, key: file.key, source: 'HeadObject', differences });
}
