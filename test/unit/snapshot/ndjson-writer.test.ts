/**
 * The NDJSON writer over an in-memory S3: batching into gzip writes, rotation by compressed size,
 * close and abort, and where S3's backpressure reaches the callers.
 */
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { SnapshotWriteError } from '../../../lambda/core/errors';
import { completeFiles } from '../../../lambda/snapshot/commit';
import { GzipMultipartFile } from '../../../lambda/snapshot/gzip-multipart-file';
import { NdjsonWriter, type NdjsonWriterOptions } from '../../../lambda/snapshot/ndjson-writer';
import { gate, until } from '../../helpers/gate';
import { MemoryS3 } from '../../helpers/memory-s3';

/** One line of random base64: gzip keeps about three quarters of it. */
const line = (chars: number) =>
  `${randomBytes(Math.ceil((chars * 3) / 4))
    .toString('base64')
    .slice(0, chars)}\n`;
const keyForFile = (index: number) => `p/sessions/f-${index}.ndjson.gz`;

function writerOn(s3: MemoryS3, options: Partial<NdjsonWriterOptions> = {}) {
  return new NdjsonWriter({
    s3: s3.client,
    bucket: 'b',
    keyForFile,
    targetFileBytes: 1024 * 1024,
    partBytes: 64 * 1024,
    gzipLevel: 1,
    ...options,
  });
}

/** Completes `files` and reads each back as text. */
async function readBack(s3: MemoryS3, writer: NdjsonWriter): Promise<string[]> {
  const files = await writer.close();
  await completeFiles(s3.client, 'b', files);
  return files.map((f) => gunzipSync(s3.bytesOf(f.key) as Buffer).toString());
}

describe('NdjsonWriter', () => {
  it('writes the lines of every caller, in the order written, to one file below the target size', async () => {
    const s3 = new MemoryS3();
    const writer = writerOn(s3);
    const lines = Array.from({ length: 50 }, (_, i) => `{"n":${i}}\n`);

    for (const l of lines) await writer.write(l, 1);
    const files = await writer.close();
    await completeFiles(s3.client, 'b', files);

    expect(files).toEqual([expect.objectContaining({ key: keyForFile(0), records: 50 })]);
    expect(gunzipSync(s3.bytesOf(keyForFile(0)) as Buffer).toString()).toBe(lines.join(''));
  });

  it('hands lines to S3 only once a batch fills (64 Ki characters): smaller writes return at once', async () => {
    const s3 = new MemoryS3();
    const writer = writerOn(s3);

    for (let i = 0; i < 60; i++) await writer.write(line(1000), 1);
    expect(s3.sent).toEqual([]);
    await writer.write(line(6000), 1);
    await until(() => s3.sent.includes('CreateMultipartUploadCommand'), 'the first file opened');

    expect((await readBack(s3, writer)).join('').split('\n')).toHaveLength(62);
  });

  it('hands a batch of exactly 64 Ki characters to S3 at once', async () => {
    const s3 = new MemoryS3();
    const writer = writerOn(s3);

    await writer.write(line(64 * 1024 - 1), 1);

    await until(() => s3.sent.includes('CreateMultipartUploadCommand'), 'the first file opened');
    await writer.close();
  });

  it('batches by the target size when it is below 64 Ki characters, so rotation happens near it', async () => {
    const s3 = new MemoryS3();
    const writer = writerOn(s3, { targetFileBytes: 2000 });

    await writer.write(line(1000), 1);
    expect(s3.sent).toEqual([]);
    await writer.write(line(1000), 1);

    await until(() => s3.sent.includes('CreateMultipartUploadCommand'), 'the first file opened');
  });

  it('rotates to the next file once the compressed size reaches the target, each file counting its own records', async () => {
    const s3 = new MemoryS3();
    const writer = writerOn(s3, { targetFileBytes: 48 * 1024 });
    const lines = Array.from({ length: 30 }, () => line(8000));

    for (const l of lines) await writer.write(l, 1);
    const files = await writer.close();
    await completeFiles(s3.client, 'b', files);

    expect(files.length).toBeGreaterThan(2);
    expect(files.map((f) => f.key)).toEqual(files.map((_, i) => keyForFile(i)));
    // Every file but the last reached the target; rotation happens right after the write that did.
    for (const file of files.slice(0, -1)) expect(file.bytes).toBeGreaterThanOrEqual(48 * 1024);
    expect(files.reduce((sum, f) => sum + f.records, 0)).toBe(30);
    const texts = files.map((f) => gunzipSync(s3.bytesOf(f.key) as Buffer).toString());
    expect(texts.join('')).toBe(lines.join(''));
    expect(files.map((f) => f.records)).toEqual(texts.map((t) => t.split('\n').length - 1));
  });

  it('a file that reaches the target exactly rotates too', async () => {
    const text = line(70_000);
    // What one write of `text` compresses to, as the writer sees it right after the write.
    const probe = new GzipMultipartFile({
      s3: new MemoryS3().client,
      bucket: 'b',
      key: 'probe',
      partBytes: 64 * 1024,
      gzipLevel: 1,
    });
    await probe.write(text, 1);
    const writer = writerOn(new MemoryS3(), { targetFileBytes: probe.compressedBytes });
    await probe.abort();

    await writer.write(text, 1);
    await writer.write(text, 1);

    expect((await writer.close()).map((f) => f.key)).toEqual([keyForFile(0), keyForFile(1)]);
  });

  it('close with nothing written opens no file and returns none', async () => {
    const s3 = new MemoryS3();

    await expect(writerOn(s3).close()).resolves.toEqual([]);
    expect(s3.sent).toEqual([]);
  });

  it('passes onUploadCreated to every file it opens', async () => {
    const s3 = new MemoryS3();
    const created: string[] = [];
    const writer = writerOn(s3, {
      targetFileBytes: 48 * 1024,
      onUploadCreated: async ({ key, uploadId }) => {
        created.push(`${key} ${uploadId}`);
      },
    });

    for (let i = 0; i < 20; i++) await writer.write(line(8000), 1);
    const files = await writer.close();

    expect(created).toEqual(files.map((f) => `${f.key} ${f.uploadId}`));
  });

  it('makes the caller that fills a batch wait while S3 holds the parts, and lets the others go on', async () => {
    const s3 = new MemoryS3();
    const slow = gate();
    s3.latency = (command) => (command instanceof UploadPartCommand ? slow.promise : undefined);
    const writer = writerOn(s3, { partBytes: 16 * 1024 });
    let filling = 0;
    let done = 0;

    // 64 Ki characters per batch: each eighth write fills one.
    const writing = Array.from({ length: 80 }, () => {
      const written = writer.write(line(8191), 1).then(() => {
        done++;
      });
      return written;
    });
    await until(() => (s3.inFlight.get('UploadPartCommand') ?? 0) === 2, 'two parts held');
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    filling = writing.length / 8;

    expect(done).toBeGreaterThanOrEqual(writing.length - filling);
    expect(done).toBeLessThan(writing.length);

    slow.open();
    await Promise.all(writing);
    expect((await readBack(s3, writer)).join('').split('\n')).toHaveLength(81);
  });

  it('abort drops the batch, aborts the open upload and returns the files already closed', async () => {
    const s3 = new MemoryS3();
    // Batches of nine lines (~55 KB compressed): the second fills file 0, the third opens file 1.
    const writer = writerOn(s3, { targetFileBytes: 90 * 1024 });
    for (let i = 0; i < 27; i++) await writer.write(line(8000), 1);
    await writer.write('{"unsent":true}\n', 1);

    const closed = await writer.abort();

    expect(closed.map((f) => f.key)).toEqual([keyForFile(0)]);
    // Only the closed file's upload remains open: it is the caller's to abort.
    expect([...s3.uploads.keys()]).toEqual(closed.map((f) => f.uploadId));
    expect(
      s3.inputs.filter((c) => c.command === 'AbortMultipartUploadCommand').map((c) => c.input.Key),
    ).toEqual([keyForFile(1)]);
    const sent = s3.sent.length;
    await expect(writer.close()).resolves.toEqual(closed);
    expect(s3.sent).toHaveLength(sent);
  });

  it('abort after a failed write still aborts the open upload, and never throws', async () => {
    const s3 = new MemoryS3();
    s3.fail = (command) =>
      command instanceof UploadPartCommand
        ? Object.assign(new Error('down'), { name: 'InternalError' })
        : undefined;
    const writer = writerOn(s3, { partBytes: 16 * 1024 });

    const failure = await (async () => {
      for (let i = 0; i < 20; i++) await writer.write(line(8000), 1);
      return writer.close();
    })().catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(SnapshotWriteError);
    await expect(writer.abort()).resolves.toEqual([]);
    expect(s3.uploads.size).toBe(0);
  });

  it('abort with nothing open sends nothing', async () => {
    const s3 = new MemoryS3();

    await expect(writerOn(s3).abort()).resolves.toEqual([]);
    expect(s3.sent).toEqual([]);
  });
});
