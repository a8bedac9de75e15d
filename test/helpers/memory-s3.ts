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

interface MemoryPart {
  readonly body: Buffer;
  readonly etag: string;
  readonly crc32: string | undefined;
}

interface MemoryUpload {
  readonly key: string;
  /** Whether CreateMultipartUpload asked for CRC32: S3 then computes and checks one per part. */
  readonly checksums: boolean;
  /** Part bodies by part number, with the CRC32 S3 computed for each when the upload asked for one. */
  readonly parts: Map<number, MemoryPart>;
}

/** A command's class name, e.g. `UploadPartCommand`. */
export const commandName = (command: unknown) => (command as object).constructor.name;

/**
 * Just enough S3, in memory, for unit tests of single branches of the writer and the commit
 * protocol (a lost PUT answer, a Complete answered NoSuchUpload, a failing DeleteObjects, a store
 * that completes short, a slow UploadPart): the integration tests run the same code against the
 * real emulator; these make one answer go wrong at a time. Multipart uploads follow S3's rules
 * where the job depends on them: Complete refuses a part list out of order or with an ETag or
 * CRC32 other than UploadPart answered, and UploadPart refuses a CRC32 that is not its bytes'.
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
  /** Keys DeleteObjects reports in its Errors (the call itself succeeds), as S3 does per key. */
  refuseDelete: (key: string) => boolean = () => false;
  /** How many uploads one ListMultipartUploads page holds, and keys one ListObjectsV2 page. */
  pageSize = 1000;
  /**
   * Runs before a command is answered; the answer waits for the promise it returns (undefined: no
   * wait). Tests hold a call here (a slow S3, parts finishing out of order) and let it go when
   * they choose, so nothing depends on timing.
   */
  latency: (command: unknown) => Promise<void> | undefined = () => undefined;
  /** Commands being answered right now (held by `latency`), and the most there ever were at once, by name. */
  readonly inFlight = new Map<string, number>();
  readonly maxInFlight = new Map<string, number>();
  /** What the client's requestChecksumCalculation says: the SDK's default, or WHEN_REQUIRED. */
  checksumCalculation: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED' = 'WHEN_SUPPORTED';
  readonly sent: string[] = [];
  /** The bytes of a completed multipart object, while `objects` still holds what Complete stored. */
  private readonly completed = new Map<string, { text: string; bytes: Buffer }>();
  private nextUploadId = 1;

  readonly client = {
    send: (command: unknown) => this.send(command),
    config: { requestChecksumCalculation: async () => this.checksumCalculation },
  } as unknown as S3Client;

  /** The bytes S3 would serve for `key`: a completed multipart object's exact bytes, else its text. */
  bytesOf(key: string): Buffer | undefined {
    const text = this.objects.get(key);
    if (text === undefined) return undefined;
    const completed = this.completed.get(key);
    return completed?.text === text ? completed.bytes : Buffer.from(text);
  }

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
      bodies.map((body, i): [number, MemoryPart] => [
        i + 1,
        {
          body: Buffer.from(body),
          etag: `"etag-${i + 1}"`,
          crc32: checksums ? crc32Bytes(Buffer.from(body)).toString('base64') : undefined,
        },
      ]),
    );
    this.uploads.set(uploadId, { key, checksums, parts });
    return {
      key,
      uploadId,
      parts: [...parts].map(([PartNumber, part]) => ({
        PartNumber,
        ETag: part.etag,
        ...(part.crc32 ? { ChecksumCRC32: part.crc32 } : {}),
      })),
      records: bodies.length,
      bytes: bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0),
    };
  }

  private async send(command: unknown): Promise<unknown> {
    const name = commandName(command);
    this.sent.push(name);
    this.inputs.push({ command: name, input: (command as { input: Record<string, unknown> }).input });
    const wait = this.latency(command);
    if (wait) {
      const now = (this.inFlight.get(name) ?? 0) + 1;
      this.inFlight.set(name, now);
      this.maxInFlight.set(name, Math.max(now, this.maxInFlight.get(name) ?? 0));
      try {
        await wait;
      } finally {
        this.inFlight.set(name, (this.inFlight.get(name) ?? 1) - 1);
      }
    }
    const failure = this.fail(command);
    if (failure) throw failure;
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
      const body = this.bytesOf(key);
      if (body === undefined) throw s3Error('NotFound');
      const checksum = this.checksums.get(key);
      return {
        ContentLength: body.length,
        ...(command.input.ChecksumMode === 'ENABLED' && checksum ? { ChecksumCRC32: checksum } : {}),
      };
    }
    if (command instanceof ListObjectsV2Command) {
      const prefix = command.input.Prefix ?? '';
      const after = command.input.ContinuationToken ?? '';
      const matching = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
      const page = matching.slice(0, this.pageSize);
      const truncated = matching.length > page.length;
      return {
        Contents: page.map((Key) => ({ Key })),
        IsTruncated: truncated,
        ...(truncated ? { NextContinuationToken: page.at(-1) } : {}),
      };
    }
    if (command instanceof DeleteObjectsCommand) {
      const errors: { Key: string; Code: string }[] = [];
      for (const { Key } of command.input.Delete?.Objects ?? []) {
        if (this.refuseDelete(Key as string)) {
          errors.push({ Key: Key as string, Code: 'AccessDenied' });
          continue;
        }
        this.objects.delete(Key as string);
        this.checksums.delete(Key as string);
      }
      return { Errors: errors };
    }
    if (command instanceof CreateMultipartUploadCommand) {
      const uploadId = `upload-${this.nextUploadId++}`;
      this.uploads.set(uploadId, {
        key: command.input.Key as string,
        checksums: command.input.ChecksumAlgorithm === 'CRC32',
        parts: new Map(),
      });
      return { UploadId: uploadId };
    }
    if (command instanceof UploadPartCommand) {
      const upload = this.uploads.get(command.input.UploadId as string);
      if (upload === undefined || upload.key !== command.input.Key) throw s3Error('NoSuchUpload');
      const body = Buffer.from(command.input.Body as Buffer | string);
      const number = command.input.PartNumber as number;
      const crc32 = upload.checksums ? crc32Bytes(body).toString('base64') : undefined;
      // As S3 does: a part sent with a checksum that does not match its bytes is refused.
      const sentChecksum = command.input.ChecksumCRC32;
      if (sentChecksum !== undefined && sentChecksum !== crc32Bytes(body).toString('base64'))
        throw s3Error('BadDigest');
      const etag = `"${upload.key.length}-${number}-${crc32Bytes(body).toString('hex')}"`;
      upload.parts.set(number, { body, etag, crc32 });
      return { ETag: etag, ...(crc32 ? { ChecksumCRC32: crc32 } : {}) };
    }
    if (command instanceof CompleteMultipartUploadCommand) {
      const upload = this.uploads.get(command.input.UploadId as string);
      if (upload === undefined) throw s3Error('NoSuchUpload');
      const listedParts = command.input.MultipartUpload?.Parts ?? [];
      // S3's rules for the list: part numbers ascending, each part's ETag (and CRC32, when the
      // upload carries checksums) the one UploadPart answered.
      for (let i = 1; i < listedParts.length; i++)
        if ((listedParts[i]?.PartNumber as number) <= (listedParts[i - 1]?.PartNumber as number))
          throw s3Error('InvalidPartOrder');
      for (const listed of listedParts) {
        const part = upload.parts.get(listed.PartNumber as number);
        if (part === undefined) continue;
        if (listed.ETag !== part.etag) throw s3Error('InvalidPart');
        if (upload.checksums && listed.ChecksumCRC32 !== part.crc32) throw s3Error('InvalidPart');
      }
      const listed = listedParts.map((p) => p.PartNumber as number);
      const assembled = this.completeParts(listed).map((number) => {
        const part = upload.parts.get(number);
        if (part === undefined) throw s3Error('InvalidPart');
        return { number, ...part };
      });
      this.uploads.delete(command.input.UploadId as string);
      const bytes = Buffer.concat(assembled.map((p) => p.body));
      const text = this.completeAs(upload.key, bytes.toString());
      this.objects.set(upload.key, text);
      if (text === bytes.toString()) this.completed.set(upload.key, { text, bytes });
      else this.completed.delete(upload.key);
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
    if (command instanceof AbortMultipartUploadCommand) {
      if (!this.uploads.delete(command.input.UploadId as string)) throw s3Error('NoSuchUpload');
      return {};
    }
    if (command instanceof ListMultipartUploadsCommand) {
      if (!this.listsUploads) throw s3Error('NotImplemented');
      const prefix = command.input.Prefix ?? '';
      // Ordered by key then upload id, as S3 lists them; the markers say where the last page ended.
      const after = `${command.input.KeyMarker ?? ''}\n${command.input.UploadIdMarker ?? ''}`;
      const matching = [...this.uploads]
        .filter(([, upload]) => upload.key.startsWith(prefix))
        .map(([UploadId, upload]) => ({ Key: upload.key, UploadId }))
        .map((u) => ({ ...u, at: `${u.Key}\n${u.UploadId}` }))
        .sort((a, b) => (a.at < b.at ? -1 : 1))
        .filter((u) => command.input.KeyMarker === undefined || u.at > after)
        .map(({ Key, UploadId }) => ({ Key, UploadId }));
      const page = matching.slice(0, this.pageSize);
      const truncated = matching.length > page.length;
      return {
        Bucket: 'b',
        IsTruncated: truncated,
        Uploads: page,
        ...(truncated ? { NextKeyMarker: page.at(-1)?.Key, NextUploadIdMarker: page.at(-1)?.UploadId } : {}),
      };
    }
    throw new Error(`MemoryS3 does not know ${(command as object).constructor.name}`);
  }
}
