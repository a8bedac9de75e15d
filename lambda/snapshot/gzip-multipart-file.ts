import { once } from 'node:events';
import { constants, crc32, createGzip, type Gzip } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { SnapshotWriteError } from '../core/errors';

/**
 * A data file that exists in S3 only as an open multipart upload: its parts are stored but the
 * object is invisible (not listed, not readable, not seen by Athena) until CompleteMultipartUpload.
 * That is the whole commit protocol: completing is cheap and happens only when the run succeeds;
 * aborting removes every byte. The descriptor is plain data so a later invocation can complete it.
 */
export interface PendingFile {
  readonly key: string;
  readonly uploadId: string;
  /** What CompleteMultipartUpload takes, as is: a part's CRC32 when the upload asked for one. */
  readonly parts: readonly UploadedPart[];
  readonly records: number;
  readonly bytes: number;
}

export interface UploadedPart {
  readonly PartNumber: number;
  readonly ETag: string;
  readonly ChecksumCRC32?: string;
}

/** S3's CRC32 checksum header value: the big-endian CRC32 of the bytes, base64. */
export function crc32Base64(body: Buffer): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(body) >>> 0);
  return out.toString('base64');
}

export interface GzipFileOptions {
  readonly s3: S3Client;
  /**
   * Called once the upload exists and before its first part is sent: the run records the upload
   * id there, so nothing can hold parts in S3 that a later run cannot find and abort.
   */
  readonly onUploadCreated?: (upload: { key: string; uploadId: string }) => Promise<void>;
  readonly bucket: string;
  readonly key: string;
  readonly partBytes: number;
  readonly gzipLevel: number;
}

/** Uploads in flight per file: enough to overlap network and compression, few enough to bound memory. */
const MAX_PARTS_IN_FLIGHT = 2;

/**
 * One gzip stream into one multipart upload. Compression runs on libuv's thread pool (zlib's
 * async API), so it overlaps with the event loop that drives the HTTP calls. Memory stays at
 * about (MAX_PARTS_IN_FLIGHT + 1) × partBytes whatever the file size: when uploads fall behind,
 * the gzip stream is paused and `write` waits for it to drain.
 */
export class GzipMultipartFile {
  readonly key: string;
  private readonly gzip: Gzip;
  /** Resolves once the upload exists and was recorded: parts wait for it. */
  private readonly uploadIdPromise: Promise<string>;
  /** Resolves once the upload exists, recorded or not: what abort needs. */
  private readonly createdPromise: Promise<string>;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private nextPartNumber = 1;
  private readonly parts: UploadedPart[] = [];
  /**
   * Whether the upload carries CRC32 checksums: what @aws-sdk/lib-storage's Upload does, asked
   * at CreateMultipartUpload when the client's requestChecksumCalculation is WHEN_SUPPORTED (the
   * SDK's default, so production), each part's CRC32 sent with it and listed again at Complete,
   * where S3 checks the whole object against them. WHEN_REQUIRED (an option for stores that reject checksums) leaves them out.
   */
  private checksums = false;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: Error | undefined;
  private records = 0;
  /** Compressed bytes produced so far: what rotation by size looks at. */
  compressedBytes = 0;

  constructor(private readonly options: GzipFileOptions) {
    this.key = options.key;
    this.gzip = createGzip({ level: options.gzipLevel, flush: constants.Z_NO_FLUSH });
    this.gzip.on('data', (chunk: Buffer) => this.onCompressed(chunk));
    this.gzip.on('error', (error) => {
      this.failure ??= error;
    });
    this.createdPromise = this.createUpload();
    this.createdPromise.catch(() => undefined);
    this.uploadIdPromise = this.createdPromise.then(async (uploadId) => {
      await options.onUploadCreated?.({ key: options.key, uploadId });
      return uploadId;
    });
    // Observed later by upload/close/abort; this keeps an early rejection from being "unhandled".
    this.uploadIdPromise.catch((error: unknown) => {
      this.failure ??= this.wrap('starting the multipart upload', error);
    });
  }

  private async createUpload(): Promise<string> {
    const { s3, bucket, key } = this.options;
    this.checksums = (await s3.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
    const out = await s3.send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        ContentType: 'application/x-ndjson',
        ...(this.checksums ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
      }),
    );
    if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    return out.UploadId;
  }

  /** Appends NDJSON text holding `records` lines. Resolves when the gzip stream can take more. */
  async write(text: string, records: number): Promise<void> {
    this.throwIfFailed();
    this.records += records;
    // Resolves once zlib has compressed this text, so `compressedBytes` is current when the
    // writer decides whether to rotate (deflate may still hold up to one block back).
    await new Promise<void>((resolve, reject) => {
      this.gzip.write(text, (error) => (error ? reject(this.wrap('compressing', error)) : resolve()));
    });
  }

  /** Ends the gzip stream, uploads the last part and returns the still-invisible file. */
  async close(): Promise<PendingFile> {
    this.throwIfFailed();
    this.gzip.end();
    await once(this.gzip, 'end');
    if (this.chunkBytes > 0 || this.parts.length + this.inFlight.size === 0) this.startPartUpload();
    await Promise.all(this.inFlight);
    this.throwIfFailed();
    const uploadId = await this.uploadIdPromise;
    return {
      key: this.key,
      uploadId,
      parts: [...this.parts].sort((a, b) => a.PartNumber - b.PartNumber),
      records: this.records,
      bytes: this.compressedBytes,
    };
  }

  /** Throws the stream away and aborts the upload, so no part outlives a failed run. */
  async abort(): Promise<void> {
    this.gzip.destroy();
    await Promise.allSettled(this.inFlight);
    const uploadId = await this.createdPromise.catch(() => undefined);
    if (uploadId === undefined) return;
    await this.options.s3.send(
      new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: this.key, UploadId: uploadId }),
    );
  }

  private onCompressed(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    this.compressedBytes += chunk.length;
    if (this.chunkBytes >= this.options.partBytes) this.startPartUpload();
  }

  private startPartUpload(): void {
    const body = Buffer.concat(this.chunks, this.chunkBytes);
    this.chunks = [];
    this.chunkBytes = 0;
    const partNumber = this.nextPartNumber++;
    const upload = this.uploadPart(partNumber, body).finally(() => {
      this.inFlight.delete(upload);
      if (this.inFlight.size < MAX_PARTS_IN_FLIGHT && this.gzip.isPaused()) this.gzip.resume();
    });
    this.inFlight.add(upload);
    if (this.inFlight.size >= MAX_PARTS_IN_FLIGHT) this.gzip.pause();
  }

  private async uploadPart(partNumber: number, body: Buffer): Promise<void> {
    try {
      const uploadId = await this.uploadIdPromise;
      // Computed here (zlib's CRC32, GB/s) rather than left to the SDK, so the value listed at
      // Complete is the one this part was sent with, whatever the server echoes.
      const checksum = this.checksums ? crc32Base64(body) : undefined;
      const out = await this.options.s3.send(
        new UploadPartCommand({
          Bucket: this.options.bucket,
          Key: this.key,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.length,
          ...(checksum ? { ChecksumAlgorithm: 'CRC32' as const, ChecksumCRC32: checksum } : {}),
        }),
      );
      if (!out.ETag) throw new Error(`UploadPart ${partNumber} returned no ETag`);
      this.parts.push({
        PartNumber: partNumber,
        ETag: out.ETag,
        ...(checksum ? { ChecksumCRC32: checksum } : {}),
      });
    } catch (error) {
      this.failure ??= this.wrap(`uploading part ${partNumber}`, error);
    }
  }

  private wrap(what: string, error: unknown): SnapshotWriteError {
    return error instanceof SnapshotWriteError
      ? error
      : new SnapshotWriteError(
          `S3 failed ${what} of s3://${this.options.bucket}/${this.key}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
