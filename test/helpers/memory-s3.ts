import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { PendingFile } from '../../lambda/snapshot/gzip-multipart-file';

const s3Error = (name: string) => Object.assign(new Error(name), { name });

const crc32Bytes = (data: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(data) >>> 0);
  return out;
};

interface MemoryUpload {
  readonly key: string;
  /** Part bodies by part number, with the CRC32 S3 computed for each when the upload asked for one. */
  readonly parts: Map<number, { body: string; crc32: string | undefined }>;
}

/**
 * Just enough S3, in memory, for unit tests of single branches of the commit protocol (a lost
 * PUT answer, a Complete answered NoSuchUpload, a failing DeleteObjects, a store that completes
 * short): the integration tests run the same code against the real emulator; these make one
 * answer go wrong at a time.
 */
export class MemoryS3 {
  readonly objects = new Map<string, string>();
  /** The CRC32 S3 reports for an object (composite for a completed multipart upload). */
  readonly checksums = new Map<string, string>();
  /** Open multipart uploads by upload id. */
  readonly uploads = new Map<string, MemoryUpload>();
  /**
   * What the store keeps of a completed object, given the bytes of the parts listed: the whole
   * by default; a test makes it complete short. The checksum stays the one of the listed parts.
   */
  completeAs: (key: string, body: string) => string = (_key, body) => body;
  /** The part numbers the store assembles of those listed at Complete: all of them by default. */
  completeParts: (listed: readonly number[]) => readonly number[] = (listed) => listed;
  /** Runs once an object is completed, before Complete answers (another writer replacing it). */
  onCompleted: (key: string) => void = () => undefined;
  /** Every command sent, with its input. */
  readonly inputs: { command: string; input: Record<string, unknown> }[] = [];
  /** Return an error for a command to fail it; undefined lets it through. */
  fail: (command: unknown) => Error | undefined = () => undefined;
  /** Runs after a command succeeded and may replace its answer with an error (a lost answer). */
  loseAnswer: (command: unknown) => Error | undefined = () => undefined;
  listsUploads = true;
  readonly sent: string[] = [];

  /** Milliseconds each UploadPart takes to answer (a slow S3). */
  partLatencyMs = 0;
  /** Upload ids in the order their first UploadPart arrived. */
  readonly partsSentFor: string[] = [];
  private uploadCount = 0;

  readonly client = {
    send: (command: unknown) => this.send(command),
    // What GzipMultipartFile asks: the SDK's default, so parts carry their CRC32 as in production.
    config: { requestChecksumCalculation: async () => 'WHEN_SUPPORTED' },
  } as unknown as S3Client;

  /**
   * An open upload of `key` holding one part per body, as a writer leaves it: returns the file
   * the writer would hand to Commit. With `checksums` (the SDK's default) each part carries its
   * CRC32, as S3 checks and stores it; without (WHEN_REQUIRED) no part does.
   */
  open(
    key: string,
    uploadId: string,
    bodies: readonly string[] = [`lines of ${key}\n`],
    { checksums = true }: { checksums?: boolean } = {},
  ): PendingFile {
    const parts = new Map(
      bodies.map((body, i) => [
        i + 1,
        { body, crc32: checksums ? crc32Bytes(Buffer.from(body)).toString('base64') : undefined },
      ]),
    );
    this.uploads.set(uploadId, { key, parts });
    return {
      key,
      uploadId,
      parts: [...parts].map(([PartNumber, part]) => ({
        PartNumber,
        ETag: `"etag-${PartNumber}"`,
        ...(part.crc32 ? { ChecksumCRC32: part.crc32 } : {}),
      })),
      records: bodies.length,
      bytes: bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0),
    };
  }

  private async send(command: unknown): Promise<unknown> {
    this.sent.push((command as object).constructor.name);
    this.inputs.push({
      command: (command as object).constructor.name,
      input: (command as { input: Record<string, unknown> }).input,
    });
    const failure = this.fail(command);
    if (failure) throw failure;
    if (command instanceof UploadPartCommand && this.partLatencyMs > 0)
      await new Promise((resolve) => setTimeout(resolve, this.partLatencyMs));
    const out = this.run(command);
    const lost = this.loseAnswer(command);
    if (lost) throw lost;
    return out;
  }

  private run(command: unknown): unknown {
    if (command instanceof PutObjectCommand) {
      this.objects.set(command.input.Key as string, String(command.input.Body));
      this.checksums.delete(command.input.Key as string);
      return {};
    }
    if (command instanceof GetObjectCommand) {
      const body = this.objects.get(command.input.Key as string);
      if (body === undefined) throw s3Error('NoSuchKey');
      return { Body: { transformToString: async () => body } };
    }
    if (command instanceof HeadObjectCommand) {
      const key = command.input.Key as string;
      const body = this.objects.get(key);
      if (body === undefined) throw s3Error('NotFound');
      const checksum = this.checksums.get(key);
      return {
        ContentLength: Buffer.byteLength(body),
        ...(command.input.ChecksumMode === 'ENABLED' && checksum ? { ChecksumCRC32: checksum } : {}),
      };
    }
    if (command instanceof ListObjectsV2Command) {
      const prefix = command.input.Prefix ?? '';
      return {
        Contents: [...this.objects.keys()]
          .filter((k) => k.startsWith(prefix))
          .sort()
          .map((Key) => ({ Key })),
        IsTruncated: false,
      };
    }
    if (command instanceof DeleteObjectsCommand) {
      for (const { Key } of command.input.Delete?.Objects ?? []) {
        this.objects.delete(Key as string);
        this.checksums.delete(Key as string);
      }
      return { Errors: [] };
    }
    if (command instanceof CompleteMultipartUploadCommand) {
      const upload = this.uploads.get(command.input.UploadId as string);
      if (upload === undefined) throw s3Error('NoSuchUpload');
      const listed = (command.input.MultipartUpload?.Parts ?? []).map((p) => p.PartNumber as number);
      const assembled = this.completeParts(listed).map((number) => {
        const part = upload.parts.get(number);
        if (part === undefined) throw s3Error('InvalidPart');
        return { number, ...part };
      });
      this.uploads.delete(command.input.UploadId as string);
      this.objects.set(upload.key, this.completeAs(upload.key, assembled.map((p) => p.body).join('')));
      this.checksums.delete(upload.key);
      let out: Record<string, string> = {};
      if (assembled.length > 0 && assembled.every((p) => p.crc32 !== undefined)) {
        // As S3 computes it (here apart from the job's own code): the CRC32 of the assembled
        // parts' binary CRC32s, in part order, and the number of parts.
        const binary = Buffer.concat(assembled.map((p) => Buffer.from(p.crc32 as string, 'base64')));
        const checksum = `${crc32Bytes(binary).toString('base64')}-${assembled.length}`;
        this.checksums.set(upload.key, checksum);
        out = { ChecksumCRC32: checksum, ChecksumType: 'COMPOSITE' };
      }
      this.onCompleted(upload.key);
      return out;
    }
    if (command instanceof CreateMultipartUploadCommand) {
      const UploadId = `memory-upload-${++this.uploadCount}`;
      this.uploads.set(UploadId, { key: command.input.Key as string, parts: new Map() });
      return { UploadId };
    }
    if (command instanceof UploadPartCommand) {
      const upload = this.uploads.get(command.input.UploadId as string);
      if (upload === undefined) throw s3Error('NoSuchUpload');
      if (upload.parts.size === 0) this.partsSentFor.push(command.input.UploadId as string);
      // Bytes kept as latin1 text: one character per byte, so gzip parts survive unchanged.
      const body = Buffer.from(command.input.Body as Uint8Array);
      const crc = crc32Bytes(body).toString('base64');
      upload.parts.set(command.input.PartNumber as number, {
        body: body.toString('latin1'),
        crc32: command.input.ChecksumCRC32 === undefined ? undefined : crc,
      });
      return { ETag: `"etag-${command.input.PartNumber}"`, ChecksumCRC32: crc };
    }
    if (command instanceof AbortMultipartUploadCommand) {
      if (!this.uploads.delete(command.input.UploadId as string)) throw s3Error('NoSuchUpload');
      return {};
    }
    if (command instanceof ListMultipartUploadsCommand) {
      if (!this.listsUploads) throw s3Error('NotImplemented');
      const prefix = command.input.Prefix ?? '';
      return {
        Bucket: 'b',
        IsTruncated: false,
        Uploads: [...this.uploads]
          .filter(([, upload]) => upload.key.startsWith(prefix))
          .map(([UploadId, upload]) => ({ Key: upload.key, UploadId })),
      };
    }
    throw new Error(`MemoryS3 does not know ${(command as object).constructor.name}`);
  }
}
