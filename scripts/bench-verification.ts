/**
 * `npx tsx scripts/bench-verification.ts [files]` — what verifying every file before the commit
 * point costs (lambda/snapshot/complete-file.ts), against the local S3 server with the SDK's
 * default checksums. Prints numbers; asserts nothing.
 *
 * Each round opens `files` one-part uploads (64 KiB, CRC32, not timed), then completes them the
 * way Commit does (8 at once): once with Complete alone, as before verification, and once with
 * completeFiles (Complete, its checksum checked, then one HeadObject per file). Rounds alternate
 * so machine load falls on both alike; the median is printed. S3 calls are counted by the client.
 * Last, one HeadObject at a time, for the latency of the call alone.
 */
import { randomBytes } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { completeFiles } from '../lambda/snapshot/commit';
import { crc32Base64, type PendingFile } from '../lambda/snapshot/gzip-multipart-file';
import { S3_PARALLELISM } from '../lambda/snapshot/s3-objects';
import { localS3Client } from '../local/local-stack';
import { startS3Server } from '../local/s3-server';

const FILES = Number(process.argv[2] ?? 200);
const ROUNDS = 5;
const BUCKET = 'bench-verification';

async function main(): Promise<void> {
  const server = await startS3Server();
  const s3 = localS3Client(server.endpoint);
  const calls = new Map<string, number>();
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      calls.set(context.commandName as string, (calls.get(context.commandName as string) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize' },
  );
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const s3Calls = pLimit(S3_PARALLELISM);

  let serial = 0;
  const openFiles = () =>
    Promise.all(
      Array.from({ length: FILES }, () =>
        s3Calls(async (): Promise<PendingFile> => {
          const key = `f/${++serial}.ndjson.gz`;
          const body = randomBytes(64 * 1024);
          const { UploadId } = await s3.send(
            new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ChecksumAlgorithm: 'CRC32' }),
          );
          const ChecksumCRC32 = crc32Base64(body);
          const { ETag } = await s3.send(
            new UploadPartCommand({
              Bucket: BUCKET,
              Key: key,
              UploadId,
              PartNumber: 1,
              Body: body,
              ChecksumAlgorithm: 'CRC32',
              ChecksumCRC32,
            }),
          );
          return {
            key,
            uploadId: UploadId as string,
            parts: [{ PartNumber: 1, ETag: ETag as string, ChecksumCRC32 }],
            records: 1,
            bytes: body.length,
          };
        }),
      ),
    );
  const completeOnly = (files: PendingFile[]) =>
    Promise.all(
      files.map((f) =>
        s3Calls(() =>
          s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: BUCKET,
              Key: f.key,
              UploadId: f.uploadId,
              MultipartUpload: { Parts: [...f.parts] },
            }),
          ),
        ),
      ),
    );
  const variants = {
    'Complete only': completeOnly,
    'Complete + verification': (files: PendingFile[]) => completeFiles(s3, BUCKET, files),
  };
  const times = new Map<string, number[]>();
  const callsPerFile = new Map<string, string>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, run] of Object.entries(variants)) {
      const files = await openFiles();
      calls.clear();
      const started = performance.now();
      await run(files);
      times.set(name, [...(times.get(name) ?? []), performance.now() - started]);
      callsPerFile.set(
        name,
        [...calls]
          .map(([command, n]) => `${(n / FILES).toFixed(2)} ${command.replace(/Command$/, '')}`)
          .join(' + '),
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const base = median(times.get('Complete only') ?? []);
  console.log(`${FILES} files, ${S3_PARALLELISM} at once, median of ${ROUNDS} rounds (fauxqs 2.4.1, local):`);
  for (const [name, xs] of times) {
    const ms = median(xs);
    console.log(
      `  ${name.padEnd(24)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / FILES).toFixed(2)} ms/file  calls per file: ${callsPerFile.get(name)}`,
    );
  }
  const verified = median(times.get('Complete + verification') ?? []);
  console.log(
    `  verification adds ${((verified - base) / FILES).toFixed(2)} ms per file at this parallelism`,
  );
  // One HeadObject at a time: the latency of the call itself, without the overlap of 8 at once.
  const files = await openFiles();
  await completeOnly(files);
  const heads: number[] = [];
  for (const f of files) {
    const started = performance.now();
    await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: f.key, ChecksumMode: 'ENABLED' }));
    heads.push(performance.now() - started);
  }
  console.log(`  one HeadObject alone: median ${median(heads).toFixed(2)} ms over ${heads.length} calls`);
  s3.destroy();
  await server.stop();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
