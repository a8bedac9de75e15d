import type { S3Client } from '@aws-sdk/client-s3';
import { type GzipFileOptions, GzipMultipartFile, type PendingFile } from './gzip-multipart-file';

export interface NdjsonWriterOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  /** Key of the n-th file this writer opens (0-based). */
  readonly keyForFile: (index: number) => string;
  readonly targetFileBytes: number;
  readonly partBytes: number;
  readonly gzipLevel: number;
  readonly onUploadCreated?: GzipFileOptions['onUploadCreated'];
}

/**
 * Lines are handed to gzip in batches of up to this many characters: one stream write per batch,
 * not per line. Smaller when the target file size is smaller, so rotation can happen near it.
 */
const MAX_BATCH_CHARS = 64 * 1024;

/**
 * Gzip NDJSON into a sequence of files, each rotated once its compressed size reaches the target
 * (Athena reads gzip files whole, one split per file, so ~128 MB files parallelise well and
 * avoid the small-files penalty). Callers from many concurrent tasks may call `write`; batches
 * go to S3 in order through one promise chain, and a caller only waits when its line completes
 * a batch, which is where backpressure from S3 reaches the producers.
 */
export class NdjsonWriter {
  private batch = '';
  private batchRecords = 0;
  private current: GzipMultipartFile | undefined;
  private fileIndex = 0;
  private readonly closed: PendingFile[] = [];
  private chain: Promise<void> = Promise.resolve();

  private readonly batchChars: number;

  constructor(private readonly options: NdjsonWriterOptions) {
    this.batchChars = Math.min(MAX_BATCH_CHARS, options.targetFileBytes);
  }

  /** `lines` must end with a newline; `count` is how many records it holds. */
  write(lines: string, count: number): Promise<void> {
    this.batch += lines;
    this.batchRecords += count;
    // Only the caller that fills a batch waits (for S3/gzip to take it); the rest go on. Memory
    // stays bounded because each waiting caller is one of at most `concurrency` user tasks.
    if (this.batch.length < this.batchChars) return Promise.resolve();
    return this.flushBatch();
  }

  /** Flushes and closes the open file; returns every file written, still invisible until committed. */
  async close(): Promise<PendingFile[]> {
    await this.flushBatch();
    this.chain = this.chain.then(async () => {
      if (this.current) {
        const file = this.current;
        this.current = undefined;
        this.closed.push(await file.close());
      }
    });
    await this.chain;
    return [...this.closed];
  }

  /** Aborts the open upload. Files already closed are the caller's to abort (it holds their ids). */
  async abort(): Promise<PendingFile[]> {
    this.batch = '';
    await this.chain.catch(() => undefined);
    const open = this.current;
    this.current = undefined;
    await open?.abort().catch(() => undefined);
    return [...this.closed];
  }

  private flushBatch(): Promise<void> {
    if (this.batch.length === 0) return this.chain;
    const text = this.batch;
    const count = this.batchRecords;
    this.batch = '';
    this.batchRecords = 0;
    this.chain = this.chain.then(async () => {
      this.current ??= new GzipMultipartFile({
        s3: this.options.s3,
        bucket: this.options.bucket,
        key: this.options.keyForFile(this.fileIndex++),
        partBytes: this.options.partBytes,
        gzipLevel: this.options.gzipLevel,
        onUploadCreated: this.options.onUploadCreated,
      });
      await this.current.write(text, count);
      if (this.current.compressedBytes >= this.options.targetFileBytes) {
        const file = this.current;
        this.current = undefined;
        this.closed.push(await file.close());
      }
    });
    return this.chain;
  }
}
