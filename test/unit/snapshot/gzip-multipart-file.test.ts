/**
 * S3 checksums on the multipart path, command by command, with a recording stand-in for the S3
 * client: both settings of requestChecksumCalculation. The integration suites run the SDK's
 * default (WHEN_SUPPORTED) end to end against the local S3 server; this pins down what is sent.
 */
import { randomBytes } from 'node:crypto';
import { crc32, gunzipSync } from 'node:zlib';
import { CreateMultipartUploadCommand, type S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { SnapshotWriteError } from '../../../lambda/core/errors';
import { completeFiles } from '../../../lambda/snapshot/commit';
import {
  crc32Base64,
  type GzipFileOptions,
  GzipMultipartFile,
} from '../../../lambda/snapshot/gzip-multipart-file';
import { gate, until } from '../../helpers/gate';
import { MemoryS3 } from '../../helpers/memory-s3';

interface Sent {
  readonly command: string;
  readonly input: Record<string, unknown>;
}

/**
 * Answers like S3 would and records every command with its input. The object it completes is
 * the parts it received, and its composite CRC32 is computed from their bytes, as S3 does.
 */
function recordingS3(mode: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED'): { s3: S3Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const received = new Map<number, Buffer>();
  let etag = 0;
  const s3 = {
    config: { requestChecksumCalculation: async () => mode },
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sent.push({ command: command.constructor.name, input: command.input });
      const { input } = command;
      if (command.constructor.name === 'CreateMultipartUploadCommand') return { UploadId: 'upload-1' };
      if (command.constructor.name === 'UploadPartCommand') {
        received.set(input.PartNumber as number, input.Body as Buffer);
        return { ETag: `"etag-${++etag}"` };
      }
      const bodies = [...received].sort(([a], [b]) => a - b).map(([, body]) => body);
      const composite = `${crc32Base64(Buffer.concat(bodies.map((b) => Buffer.from(crc32Base64(b), 'base64'))))}-${bodies.length}`;
      const checksum = mode === 'WHEN_SUPPORTED' ? { ChecksumCRC32: composite } : {};
      if (command.constructor.name === 'CompleteMultipartUploadCommand') return checksum;
      if (command.constructor.name === 'HeadObjectCommand')
        return { ContentLength: bodies.reduce((sum, b) => sum + b.length, 0), ...checksum };
      return {};
    },
  } as unknown as S3Client;
  return { s3, sent };
}

/** Incompressible text, so a few hundred KiB of input make several 64 KiB parts. */
const noise = (bytes: number) => {
  let text = '';
  let x = 12345;
  while (text.length < bytes) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    text += x.toString(36);
  }
  return `${text}\n`;
};

async function writeFile(s3: S3Client) {
  const file = new GzipMultipartFile({
    s3,
    bucket: 'b',
    key: 'k.ndjson.gz',
    partBytes: 64 * 1024,
    gzipLevel: 1,
  });
  for (let i = 0; i < 8; i++) await file.write(noise(40_000), 1);
  return file.close();
}

describe('GzipMultipartFile checksums', () => {
  it('crc32Base64 is the big-endian CRC32, base64, as S3 expects', () => {
    expect(crc32Base64(Buffer.from('hello'))).toBe(Buffer.from([0x36, 0x10, 0xa6, 0x86]).toString('base64'));
    expect(crc32(Buffer.from('hello'))).toBe(0x3610a686);
  });

  it('asks for CRC32 at CreateMultipartUpload, sends each part with its CRC32 and lists them at Complete', async () => {
    const { s3, sent } = recordingS3('WHEN_SUPPORTED');

    const pending = await writeFile(s3);
    await completeFiles(s3, 'b', [pending]);

    const create = sent.find((c) => c.command === 'CreateMultipartUploadCommand');
    expect(create?.input).toMatchObject({ ChecksumAlgorithm: 'CRC32' });
    const parts = sent.filter((c) => c.command === 'UploadPartCommand');
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.input.ChecksumAlgorithm).toBe('CRC32');
      expect(part.input.ChecksumCRC32).toBe(crc32Base64(part.input.Body as Buffer));
    }
    const complete = sent.find((c) => c.command === 'CompleteMultipartUploadCommand');
    const listed = (complete?.input.MultipartUpload as { Parts: unknown[] } | undefined)?.Parts;
    expect(listed).toEqual(
      parts
        .map((p) => ({
          PartNumber: p.input.PartNumber,
          ETag: expect.stringMatching(/^"etag-\d+"$/),
          ChecksumCRC32: p.input.ChecksumCRC32,
        }))
        .sort((a, b) => Number(a.PartNumber) - Number(b.PartNumber)),
    );
    expect(pending.parts.every((p) => typeof p.ChecksumCRC32 === 'string')).toBe(true);
    // Complete's composite CRC32 and the object's size, checked against what the writer recorded.
    expect(sent.filter((c) => c.command === 'HeadObjectCommand').map((c) => c.input)).toEqual([
      { Bucket: 'b', Key: 'k.ndjson.gz', ChecksumMode: 'ENABLED' },
    ]);
  });

  it('leaves checksums out when the client says WHEN_REQUIRED (local S3 servers)', async () => {
    const { s3, sent } = recordingS3('WHEN_REQUIRED');

    const pending = await writeFile(s3);
    await completeFiles(s3, 'b', [pending]);

    expect(sent.find((c) => c.command === 'CreateMultipartUploadCommand')?.input).not.toHaveProperty(
      'ChecksumAlgorithm',
    );
    for (const part of sent.filter((c) => c.command === 'UploadPartCommand')) {
      expect(part.input).not.toHaveProperty('ChecksumCRC32');
    }
    expect(pending.parts.every((p) => !('ChecksumCRC32' in p))).toBe(true);
  });
});

/** Random base64: gzip keeps about three quarters of it, so the sizes below are predictable. */
const randomText = (chars: number) =>
  `${randomBytes(Math.ceil((chars * 3) / 4))
    .toString('base64')
    .slice(0, chars)}\n`;

const PART = 64 * 1024;
/** zlib's output chunk size (its default): how far past partBytes a part can grow before it is cut. */
const ZLIB_CHUNK = 16 * 1024;

const partNumberOf = (command: unknown) =>
  command instanceof UploadPartCommand ? command.input.PartNumber : undefined;

function memoryFile(s3: MemoryS3, extra: Partial<GzipFileOptions> = {}) {
  return new GzipMultipartFile({
    s3: s3.client,
    bucket: 'b',
    key: 'k.ndjson.gz',
    partBytes: PART,
    gzipLevel: 1,
    ...extra,
  });
}

describe('GzipMultipartFile against S3', () => {
  it('writes a gzip object whose lines are the text written, in parts of at least partBytes', async () => {
    const s3 = new MemoryS3();
    const file = memoryFile(s3);
    const lines = Array.from({ length: 6 }, () => randomText(50_000));

    for (const line of lines) await file.write(line, 1);
    const pending = await file.close();
    await completeFiles(s3.client, 'b', [pending]);

    const bytes = s3.bytesOf('k.ndjson.gz') as Buffer;
    expect(gunzipSync(bytes).toString()).toBe(lines.join(''));
    expect(pending).toMatchObject({
      key: 'k.ndjson.gz',
      uploadId: 'upload-1',
      records: 6,
      bytes: bytes.length,
    });
    const parts = s3.inputs.filter((c) => c.command === 'UploadPartCommand');
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts.slice(0, -1))
      expect((part.input.Body as Buffer).length).toBeGreaterThanOrEqual(PART);
    expect(pending.parts.map((p) => p.PartNumber)).toEqual(parts.map((_, i) => i + 1));
    expect(s3.inputs.find((c) => c.command === 'CreateMultipartUploadCommand')?.input).toEqual({
      Bucket: 'b',
      Key: 'k.ndjson.gz',
      ContentType: 'application/x-ndjson',
      ChecksumAlgorithm: 'CRC32',
    });
  });

  it('counts the records of every write and uploads an empty file as one part holding an empty gzip stream', async () => {
    const s3 = new MemoryS3();
    const file = memoryFile(s3);

    const pending = await file.close();
    await completeFiles(s3.client, 'b', [pending]);

    expect(s3.sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(1);
    expect(gunzipSync(s3.bytesOf('k.ndjson.gz') as Buffer).toString()).toBe('');
    expect(pending.records).toBe(0);

    const counted = memoryFile(new MemoryS3());
    await counted.write('a\nb\n', 2);
    await counted.write('c\n', 1);
    expect((await counted.close()).records).toBe(3);
  });

  it('records the upload before its first part: no UploadPart is sent until onUploadCreated has finished', async () => {
    const s3 = new MemoryS3();
    const record = gate();
    const log: string[] = [];
    s3.latency = (command) => {
      if (command instanceof UploadPartCommand) log.push(`part ${command.input.PartNumber}`);
      return undefined;
    };
    const file = memoryFile(s3, {
      onUploadCreated: async (upload) => {
        log.push(`created ${upload.uploadId}`);
        await record.promise;
        log.push('recorded');
      },
    });

    // Several parts' worth, not awaited: the parts cannot go until the record is written.
    const writing = (async () => {
      for (let i = 0; i < 6; i++) await file.write(randomText(50_000), 1);
    })();
    await until(() => file.compressedBytes >= 2 * PART, 'two parts compressed');
    await until(() => log.includes('created upload-1'), 'the upload created');
    expect(s3.sent).not.toContain('UploadPartCommand');

    record.open();
    await writing;
    const pending = await file.close();

    expect(log.slice(0, 3)).toEqual(['created upload-1', 'recorded', 'part 1']);
    expect(pending.parts.length).toBeGreaterThan(1);
  });

  it('sends no part when recording the upload fails, fails the file, and abort still aborts the upload', async () => {
    const s3 = new MemoryS3();
    const file = memoryFile(s3, {
      onUploadCreated: async () => {
        throw new Error('PutObject refused');
      },
    });

    await until(() => s3.uploads.size === 1, 'the upload created');
    await new Promise((resolve) => setImmediate(resolve));
    const failure = await file.write('x\n', 1).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(SnapshotWriteError);
    expect((failure as Error).message).toBe(
      'S3 failed starting the multipart upload of s3://b/k.ndjson.gz: PutObject refused',
    );
    await expect(file.close()).rejects.toBeInstanceOf(SnapshotWriteError);
    await file.abort();

    expect(s3.sent).not.toContain('UploadPartCommand');
    expect(s3.uploads.size).toBe(0);
    expect(s3.inputs.find((c) => c.command === 'AbortMultipartUploadCommand')?.input).toEqual({
      Bucket: 'b',
      Key: 'k.ndjson.gz',
      UploadId: 'upload-1',
    });
  });

  it('keeps a SnapshotWriteError from onUploadCreated as it is (its message names what failed)', async () => {
    const s3 = new MemoryS3();
    const own = new SnapshotWriteError('Writing s3://b/record.json failed: boom');
    const file = memoryFile(s3, {
      onUploadCreated: async () => {
        throw own;
      },
    });

    await file.write('x\n', 1).catch(() => undefined);
    await expect(file.close()).rejects.toBe(own);
  });

  it('lists the parts at Complete by part number when they finish out of order', async () => {
    const s3 = new MemoryS3();
    const first = gate();
    const answered: number[] = [];
    s3.latency = (command) => (partNumberOf(command) === 1 ? first.promise : undefined);
    s3.loseAnswer = (command) => {
      const number = partNumberOf(command);
      if (number !== undefined) answered.push(number);
      // Part 1 answers only once part 2 has.
      if (number === 2) first.open();
      return undefined;
    };
    const file = memoryFile(s3);

    for (let i = 0; i < 2; i++) await file.write(randomText(90_000), 1);
    const pending = await file.close();
    // S3 refuses a part list out of order (InvalidPartOrder); the memory S3 does too.
    await completeFiles(s3.client, 'b', [pending]);

    expect(answered.slice(0, 2)).toEqual([2, 1]);
    expect(pending.parts.map((p) => p.PartNumber)).toEqual([...answered].sort((a, b) => a - b));
    const complete = s3.inputs.find((c) => c.command === 'CompleteMultipartUploadCommand');
    expect(
      (complete?.input.MultipartUpload as { Parts: { PartNumber: number }[] } | undefined)?.Parts.map(
        (p) => p.PartNumber,
      ),
    ).toEqual(pending.parts.map((p) => p.PartNumber));
  });

  it('pauses gzip under a slow S3: write() waits, and at most two parts (each under partBytes + one zlib chunk) are held', async () => {
    const s3 = new MemoryS3();
    const slow = gate();
    s3.latency = (command) => (command instanceof UploadPartCommand ? slow.promise : undefined);
    const file = memoryFile(s3);
    const lines = Array.from({ length: 40 }, () => randomText(20_000));
    let written = 0;

    const writing = (async () => {
      for (const line of lines) {
        await file.write(line, 1);
        written++;
      }
    })();
    await until(() => (s3.inFlight.get('UploadPartCommand') ?? 0) === 2, 'two parts held by S3');
    // Given every chance to run on (zlib has all the input it needs): it must not.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 10));

    expect(written).toBeLessThan(lines.length);
    expect(s3.inFlight.get('UploadPartCommand')).toBe(2);
    // Paused: no more compressed output than the two held parts, so memory is bounded by
    // 2 × (partBytes + 16 KiB) of parts plus zlib's own buffers and the write waiting.
    expect(file.compressedBytes).toBeLessThanOrEqual(2 * (PART + ZLIB_CHUNK));
    for (const part of s3.inputs.filter((c) => c.command === 'UploadPartCommand'))
      expect((part.input.Body as Buffer).length).toBeLessThan(PART + ZLIB_CHUNK);

    slow.open();
    await writing;
    const pending = await file.close();
    await completeFiles(s3.client, 'b', [pending]);

    expect(s3.maxInFlight.get('UploadPartCommand')).toBe(2);
    expect(gunzipSync(s3.bytesOf('k.ndjson.gz') as Buffer).toString()).toBe(lines.join(''));
  });

  it.each([
    [
      'fails',
      () => Object.assign(new Error('slow down'), { name: 'SlowDown' }),
      'S3 failed uploading part 1 of s3://b/k.ndjson.gz: slow down',
    ],
  ])(
    'an UploadPart that %s fails the next write and close with SnapshotWriteError',
    async (_what, error, message) => {
      const s3 = new MemoryS3();
      s3.fail = (command) => (partNumberOf(command) === 1 ? error() : undefined);
      const file = memoryFile(s3);

      const failure = await (async () => {
        for (let i = 0; i < 20; i++) await file.write(randomText(50_000), 1);
        return file.close();
      })().catch((e: unknown) => e);

      expect(failure).toBeInstanceOf(SnapshotWriteError);
      expect((failure as Error).message).toBe(message);
      expect((failure as Error).cause).toMatchObject({ name: 'SlowDown' });
      await file.abort();
      expect(s3.uploads.size).toBe(0);
    },
  );

  it('fails on an UploadPart answer without an ETag and a CreateMultipartUpload answer without an UploadId', async () => {
    const noEtag = new MemoryS3();
    const sendEtag = noEtag.client.send.bind(noEtag.client);
    (noEtag.client as { send: unknown }).send = async (command: unknown) => {
      const out = (await sendEtag(command as never)) as unknown as Record<string, unknown>;
      return command instanceof UploadPartCommand ? { ...out, ETag: undefined } : out;
    };
    const file = memoryFile(noEtag);
    await file.write('x\n', 1);
    await expect(file.close()).rejects.toThrow(
      'S3 failed uploading part 1 of s3://b/k.ndjson.gz: UploadPart 1 returned no ETag',
    );

    const noId = new MemoryS3();
    const sendId = noId.client.send.bind(noId.client);
    (noId.client as { send: unknown }).send = async (command: unknown) => {
      const out = (await sendId(command as never)) as unknown as Record<string, unknown>;
      return command instanceof CreateMultipartUploadCommand ? {} : out;
    };
    const never = memoryFile(noId);
    await expect(never.close()).rejects.toThrow(
      'S3 failed starting the multipart upload of s3://b/k.ndjson.gz: CreateMultipartUpload returned no UploadId',
    );
    await never.abort();
    expect(noId.sent).not.toContain('AbortMultipartUploadCommand');
  });

  it('abort throws the stream away, waits for parts in flight and leaves no open upload', async () => {
    const s3 = new MemoryS3();
    const slow = gate();
    s3.latency = (command) => (command instanceof UploadPartCommand ? slow.promise : undefined);
    const file = memoryFile(s3);
    void (async () => {
      for (let i = 0; i < 10; i++) await file.write(randomText(50_000), 1);
    })().catch(() => undefined);
    await until(() => (s3.inFlight.get('UploadPartCommand') ?? 0) >= 1, 'a part held by S3');

    const aborting = file.abort();
    await new Promise((resolve) => setImmediate(resolve));
    expect(s3.sent).not.toContain('AbortMultipartUploadCommand');
    slow.open();
    await aborting;

    expect(s3.uploads.size).toBe(0);
    expect(s3.sent.at(-1)).toBe('AbortMultipartUploadCommand');
  });

  it('cuts a part as soon as the compressed bytes reach partBytes exactly, and never sends an empty part', async () => {
    const s3 = new MemoryS3();
    // zlib emits 16 KiB chunks: with parts of exactly that, each chunk is a part of its own.
    const file = memoryFile(s3, { partBytes: ZLIB_CHUNK });
    const text = randomText(60_000);

    await file.write(text, 1);
    await completeFiles(s3.client, 'b', [await file.close()]);

    const sizes = s3.inputs
      .filter((c) => c.command === 'UploadPartCommand')
      .map((c) => (c.input.Body as Buffer).length);
    expect(sizes.slice(0, -1).every((size) => size === ZLIB_CHUNK)).toBe(true);
    expect(sizes.length).toBeGreaterThan(2);
    expect(sizes.at(-1)).toBeGreaterThan(0);

    // Parts of one byte: every chunk goes at once, so nothing is left to send at close.
    const tiny = new MemoryS3();
    const each = memoryFile(tiny, { partBytes: 1 });
    await each.write(text, 1);
    await completeFiles(tiny.client, 'b', [await each.close()]);
    const bodies = tiny.inputs
      .filter((c) => c.command === 'UploadPartCommand')
      .map((c) => c.input.Body as Buffer);
    expect(bodies.every((body) => body.length > 0)).toBe(true);
    expect(gunzipSync(tiny.bytesOf('k.ndjson.gz') as Buffer).toString()).toBe(text);
  });

  it('compresses at the level it is given', async () => {
    const text = Array.from({ length: 3000 }, (_, i) => `{"user_id":"u-${i % 97}","n":${i * 7}}\n`).join('');
    const sizeAt = async (gzipLevel: number) => {
      const file = memoryFile(new MemoryS3(), { gzipLevel });
      await file.write(text, 1);
      return (await file.close()).bytes;
    };

    expect(await sizeAt(9)).toBeLessThan(await sizeAt(1));
  });

  it('close after a failed part sends nothing more and throws the first failure', async () => {
    const s3 = new MemoryS3();
    s3.fail = (command) =>
      partNumberOf(command) === 1 ? Object.assign(new Error('gone'), { name: 'InternalError' }) : undefined;
    const file = memoryFile(s3, { partBytes: ZLIB_CHUNK });
    await file.write(randomText(200_000), 1);
    await until(() => s3.sent.includes('UploadPartCommand'), 'part 1 sent');
    await new Promise((resolve) => setImmediate(resolve));
    const sent = s3.sent.length;

    await expect(file.close()).rejects.toThrow('S3 failed uploading part 1 of s3://b/k.ndjson.gz: gone');
    expect(s3.sent).toHaveLength(sent);
  });

  it('abort fails the writes still waiting for gzip, so no caller hangs', async () => {
    const s3 = new MemoryS3();
    const slow = gate();
    s3.latency = (command) => (command instanceof UploadPartCommand ? slow.promise : undefined);
    const file = memoryFile(s3);
    const writes = Array.from({ length: 20 }, () => file.write(randomText(20_000), 1).then(() => 'written'));
    await until(() => (s3.inFlight.get('UploadPartCommand') ?? 0) === 2, 'two parts held');

    const aborting = file.abort();
    const outcomes = await Promise.all(writes.map((w) => w.catch((e: unknown) => e)));
    slow.open();
    await aborting;

    const failed = outcomes.filter((o) => o !== 'written');
    expect(failed.length).toBeGreaterThan(0);
    for (const error of failed) {
      expect(error).toBeInstanceOf(SnapshotWriteError);
      expect((error as Error).message).toMatch(/^S3 failed compressing of s3:\/\/b\/k\.ndjson\.gz: /);
    }
    expect(s3.uploads.size).toBe(0);
  });
});
