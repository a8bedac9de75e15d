import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { SnapshotVerificationError, SnapshotWriteError } from '../../../lambda/core/errors';
import { abortRun, cleanUpSlot, commitRun, takeOverSlot } from '../../../lambda/snapshot/commit';
import { compositeCrc32 } from '../../../lambda/snapshot/complete-file';
import type { PendingFile } from '../../../lambda/snapshot/gzip-multipart-file';
import { emptyCounts, type Manifest } from '../../../lambda/snapshot/manifest';
import { S3_PARALLELISM } from '../../../lambda/snapshot/s3-objects';
import { SnapshotKeys } from '../../../lambda/snapshot/snapshot-keys';
import { captureLogger } from '../../helpers/capture-logger';
import { MemoryS3 } from '../../helpers/memory-s3';

const OLDER = 'r20261126T020000000Z-aaaaaa';
const ME = 'r20261126T030000000Z-bbbbbb';
const NEWER = 'r20261126T040000000Z-cccccc';
const keys = new SnapshotKeys(
  'p',
  'scheduled-20261126T020000Z',
  Date.parse('2026-11-26T02:00:00Z') / 1000,
  ME,
);

/**
 * S3's ListMultipartUploads is a production-only path: the local S3 server does not implement it,
 * so the integration tests find uploads through their run-state records alone. This fake S3 has
 * no records at all and answers ListMultipartUploads, which is what production S3 does for an
 * upload whose process died between CreateMultipartUpload and recording it.
 */
function fakeS3(uploads: { Key: string; UploadId: string }[]) {
  const aborted: string[] = [];
  const send = jest.fn(async (command: unknown) => {
    if (command instanceof ListObjectsV2Command) return { Contents: [], IsTruncated: false };
    if (command instanceof ListMultipartUploadsCommand) {
      const prefix = command.input.Prefix ?? '';
      return { Bucket: 'b', IsTruncated: false, Uploads: uploads.filter((u) => u.Key.startsWith(prefix)) };
    }
    if (command instanceof AbortMultipartUploadCommand) {
      aborted.push(command.input.UploadId ?? '');
      return {};
    }
    if (command instanceof GetObjectCommand)
      throw Object.assign(new Error('no such key'), { name: 'NoSuchKey' });
    throw new Error(`unexpected ${String(command)}`);
  });
  return { s3: { send } as unknown as S3Client, aborted };
}

describe('takeOverSlot', () => {
  it('aborts open uploads that only S3 lists, of older runs of the slot, and leaves newer runs and other slots alone', async () => {
    const { s3, aborted } = fakeS3([
      {
        Key: `${keys.slotFilePrefix('sessions')}${OLDER}.s000-00000-x-00000.ndjson.gz`,
        UploadId: 'older-sessions',
      },
      {
        Key: `${keys.slotFilePrefix('rejects')}${OLDER}.s000-00000-x-00000.ndjson.gz`,
        UploadId: 'older-rejects',
      },
      { Key: `${keys.slotFilePrefix('sessions')}${NEWER}.s000-00000-x-00000.ndjson.gz`, UploadId: 'newer' },
      { Key: `${keys.slotFilePrefix('sessions')}${ME}.s000-00000-x-00000.ndjson.gz`, UploadId: 'mine' },
      {
        Key: 'p/sessions/dt=2026-11-26/other-slot.r20261126T010000000Z-dddddd.s000-00000-x-00000.ndjson.gz',
        UploadId: 'other-slot',
      },
    ]);

    const result = await takeOverSlot({ s3, bucket: 'b', keys, logger: captureLogger() });

    expect(aborted.sort()).toEqual(['older-rejects', 'older-sessions']);
    expect(result).toEqual({ aborted: 2, leftovers: 0 });
  });

  it('still takes over with the records alone when S3 cannot list uploads', async () => {
    const { s3 } = fakeS3([]);
    (s3.send as jest.Mock).mockImplementation(async (command: unknown) => {
      if (command instanceof ListMultipartUploadsCommand)
        throw Object.assign(new Error('not implemented'), { name: 'NotImplemented' });
      if (command instanceof ListObjectsV2Command) return { Contents: [], IsTruncated: false };
      throw new Error('unexpected');
    });

    await expect(takeOverSlot({ s3, bucket: 'b', keys, logger: captureLogger() })).resolves.toEqual({
      aborted: 0,
      leftovers: 0,
    });
  });
});

/** A manifest of `runId` for the slot of `keys`, as buildManifest (snapshot/manifest.ts) builds it (only the fields commit.ts reads matter). */
function manifestOf(runId: string, status: Manifest['status']): Manifest {
  return {
    manifest_version: 2,
    snapshot_id: keys.snapshotId,
    run_id: runId,
    trigger: 'scheduled',
    reason: null,
    status,
    error: null,
    dt: keys.dt,
    snapshot_at: 0,
    started_at: '',
    finished_at: '',
    duration_ms: 0,
    table_location: '',
    counts: emptyCounts(),
    files: {
      sessions: [],
      rejects: [],
      failed_users: [],
      pseudonymized_sessions: [],
      pseudonymized_rejects: [],
    },
    failed_users: [],
    failed_users_truncated: false,
    settings: {},
    pii: { copies: 'raw', policy: null, key_fingerprint: null },
  };
}

const runKeys = (runId: string) =>
  new SnapshotKeys('p', keys.snapshotId, Date.parse('2026-11-26T02:00:00Z') / 1000, runId);
const pending = (key: string, uploadId: string): PendingFile => ({
  key,
  uploadId,
  parts: [],
  records: 1,
  bytes: 1,
});
const dataKey = (runId: string, n: number) => runKeys(runId).fileKey('sessions', 's000-00000-a', n);

/** An open upload of file `n` of `runId`, recorded in run state as the job records it. */
function openRecordedUpload(s3: MemoryS3, runId: string, uploadId: string, n = 0): void {
  s3.open(dataKey(runId, n), uploadId);
  s3.objects.set(
    runKeys(runId).uploadRecordKey(dataKey(runId, n), uploadId),
    JSON.stringify({ key: dataKey(runId, n), uploadId, runId }),
  );
}

describe('commitRun', () => {
  let s3: MemoryS3;
  let logger: ReturnType<typeof captureLogger>;
  const ctx = () => ({ s3: s3.client, bucket: 'b', keys, logger });

  beforeEach(() => {
    s3 = new MemoryS3();
    logger = captureLogger();
  });

  it('refuses a manifest that is not this run committed (a caller bug must not become a commit)', async () => {
    await expect(commitRun(ctx(), [], manifestOf(ME, 'failed'))).rejects.toThrow(SnapshotWriteError);
    await expect(commitRun(ctx(), [], manifestOf(OLDER, 'committed'))).rejects.toThrow(SnapshotWriteError);
    expect(s3.objects.size).toBe(0);
  });

  it('completes the files, aborts the run uploads that are not among them, then writes the manifest', async () => {
    const file = s3.open(dataKey(ME, 0), 'final');
    s3.open(dataKey(ME, 1), 'retried-attempt');
    s3.open(dataKey(NEWER, 0), 'newer-run');

    const result = await commitRun(ctx(), [file], manifestOf(ME, 'committed'));

    expect(result.manifestKey).toBe(keys.manifestKey());
    expect(s3.objects.has(dataKey(ME, 0))).toBe(true);
    expect([...s3.uploads.keys()]).toEqual(['newer-run']);
    expect(JSON.parse(s3.objects.get(keys.manifestKey()) ?? '{}')).toMatchObject({
      status: 'committed',
      run_id: ME,
    });
    expect(result.cleanup.visibleRunId).toBe(ME);
  });

  it('goes straight to clean-up when this run already committed (a retried Commit)', async () => {
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));

    await commitRun(ctx(), [pending(dataKey(ME, 0), 'gone-long-ago')], manifestOf(ME, 'committed'));

    expect(s3.sent).not.toContain('CompleteMultipartUploadCommand');
    expect(s3.sent).not.toContain('PutObjectCommand');
  });

  it('counts a file completed by an earlier attempt (NoSuchUpload, but the object exists)', async () => {
    const file = s3.open(dataKey(ME, 0), 'completed-before');
    // The earlier attempt completed the file, then its manifest PUT failed.
    s3.fail = (command) => (command instanceof PutObjectCommand ? new Error('InternalError') : undefined);
    await expect(commitRun(ctx(), [file], manifestOf(ME, 'committed'))).rejects.toThrow(SnapshotWriteError);
    s3.fail = () => undefined;

    await expect(commitRun(ctx(), [file], manifestOf(ME, 'committed'))).resolves.toMatchObject({
      manifestKey: keys.manifestKey(),
    });
  });

  it('fails with the file named and the cause kept when an upload is gone and its object is not there', async () => {
    const error = await commitRun(
      ctx(),
      [pending(dataKey(ME, 0), 'aborted')],
      manifestOf(ME, 'committed'),
    ).catch((e: unknown) => e as SnapshotWriteError);

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect((error as Error).message).toBe(`Completing s3://b/${dataKey(ME, 0)} failed: NoSuchUpload`);
    expect((error as Error).cause).toMatchObject({ name: 'NoSuchUpload' });
    expect(s3.objects.has(keys.manifestKey())).toBe(false);
  });

  it('treats a manifest PUT whose answer was lost but which landed as committed', async () => {
    s3.loseAnswer = (command) =>
      command instanceof PutObjectCommand
        ? Object.assign(new Error('socket hang up'), { name: 'TimeoutError' })
        : undefined;

    await expect(commitRun(ctx(), [], manifestOf(ME, 'committed'))).resolves.toMatchObject({
      manifestKey: keys.manifestKey(),
    });
  });

  it('fails when the manifest PUT failed and nothing landed', async () => {
    s3.fail = (command) => (command instanceof PutObjectCommand ? new Error('InternalError') : undefined);

    await expect(commitRun(ctx(), [], manifestOf(ME, 'committed'))).rejects.toThrow(SnapshotWriteError);
  });

  it('fails when what landed is another run manifest (it is not this commit)', async () => {
    s3.fail = (command) => {
      if (command instanceof PutObjectCommand) {
        s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(OLDER, 'committed')));
        return new Error('InternalError');
      }
      return undefined;
    };

    await expect(commitRun(ctx(), [], manifestOf(ME, 'committed'))).rejects.toThrow(SnapshotWriteError);
  });
});

describe('commitRun verifies every file before the commit point', () => {
  let s3: MemoryS3;
  let logger: ReturnType<typeof captureLogger>;
  const ctx = () => ({ s3: s3.client, bucket: 'b', keys, logger });
  const commit = (files: PendingFile[]) => commitRun(ctx(), files, manifestOf(ME, 'committed'));
  const failureOf = (files: PendingFile[]) =>
    commit(files).then(
      () => {
        throw new Error('committed');
      },
      (error: unknown) => error as SnapshotVerificationError,
    );
  /** The in-memory S3 with its answers changed: a store that reports other fields than S3 does. */
  const reshaping =
    (change: (command: string, answer: Record<string, unknown>) => Record<string, unknown>) =>
    (files: PendingFile[]) =>
      commitRun(
        {
          ...ctx(),
          s3: {
            send: async (command: object) =>
              change(
                command.constructor.name,
                (await s3.client.send(command as never)) as unknown as Record<string, unknown>,
              ),
          } as unknown as S3Client,
        },
        files,
        manifestOf(ME, 'committed'),
      );
  const withoutField =
    (field: string) =>
    (_: string, { [field]: _dropped, ...rest }: Record<string, unknown>) =>
      rest;
  /** Three parts, so a store can leave one out. */
  const threeParts = (n: number, uploadId: string) =>
    s3.open(dataKey(ME, n), uploadId, [`{"part":1}\n`, `{"part":2}\n`, `{"part":3}\n`]);

  beforeEach(() => {
    s3 = new MemoryS3();
    logger = captureLogger();
  });

  it('checks the composite CRC32 in Complete answer and the size and checksum of one HeadObject per file', async () => {
    const files = [threeParts(0, 'a'), threeParts(1, 'b')];

    await commit(files);

    const heads = s3.inputs.filter((c) => c.command === 'HeadObjectCommand');
    expect(heads.map((h) => h.input)).toEqual(
      files.map((f) => ({ Bucket: 'b', Key: f.key, ChecksumMode: 'ENABLED' })),
    );
    expect(s3.objects.has(keys.manifestKey())).toBe(true);
  });

  it('computes the composite checksum as S3 does (the value the local S3 server returned for these parts)', () => {
    // Parts of 5 MiB of 0x01 and "hello", uploaded to fauxqs 2.4.1 with CRC32: it answered d9ydLw==-2.
    expect(
      compositeCrc32([
        { PartNumber: 2, ETag: '"b"', ChecksumCRC32: 'NhCmhg==' },
        { PartNumber: 1, ETag: '"a"', ChecksumCRC32: '67XDxA==' },
      ]),
    ).toBe('d9ydLw==-2');
    // No checksum to compare: parts without one (WHEN_REQUIRED), even one of them, or no parts.
    expect(compositeCrc32([{ PartNumber: 1, ETag: '"a"' }])).toBeUndefined();
    expect(
      compositeCrc32([
        { PartNumber: 1, ETag: '"a"', ChecksumCRC32: '67XDxA==' },
        { PartNumber: 2, ETag: '"b"' },
      ]),
    ).toBeUndefined();
    expect(compositeCrc32([])).toBeUndefined();
  });

  it.each([
    ['short', (body: string) => body.slice(0, 7), 7],
    ['empty', () => '', 0],
  ])(
    'fails naming the key and both sizes when S3 completes a file %s, and commits nothing',
    async (_, cut, kept) => {
      const whole = threeParts(0, 'whole');
      const victim = threeParts(1, 'victim');
      s3.completeAs = (key, body) => (key === victim.key ? cut(body) : body);

      const error = await failureOf([whole, victim]);

      expect(error).toBeInstanceOf(SnapshotVerificationError);
      expect(error).toBeInstanceOf(SnapshotWriteError);
      expect(error.name).toBe('SnapshotVerificationError');
      expect(error.mismatch).toEqual({
        bucket: 'b',
        key: victim.key,
        source: 'HeadObject',
        differences: [{ field: 'bytes', expected: victim.bytes, actual: kept }],
      });
      expect(error.message).toBe(
        `s3://b/${victim.key} is not what this run wrote (${victim.bytes} bytes written, HeadObject says ${kept}); nothing was committed`,
      );
      expect(s3.objects.has(keys.manifestKey())).toBe(false);
    },
  );

  it('fails at Complete, before any HeadObject, when the checksum S3 answers is not that of the parts written (a part left out)', async () => {
    const file = threeParts(0, 'dropped');
    s3.completeParts = (listed) => listed.slice(0, -1);

    const error = await failureOf([file]);

    const expected = compositeCrc32(file.parts) as string;
    expect(expected).toMatch(/-3$/);
    expect(error.mismatch).toEqual({
      bucket: 'b',
      key: file.key,
      source: 'CompleteMultipartUpload',
      differences: [{ field: 'checksum', expected, actual: s3.checksums.get(file.key) }],
    });
    expect(s3.checksums.get(file.key)).toMatch(/-2$/);
    expect(error.message).toContain(`CRC32 of the parts written ${expected}, CompleteMultipartUpload says `);
    expect(s3.sent).not.toContain('HeadObjectCommand');
    expect(s3.objects.has(keys.manifestKey())).toBe(false);
  });

  it('fails when the object S3 holds after Complete has the right size but another checksum (replaced)', async () => {
    const file = threeParts(0, 'replaced');
    s3.onCompleted = (key) => {
      s3.objects.set(key, 'x'.repeat(file.bytes));
      s3.checksums.set(key, 'AAAAAA==');
    };

    const error = await failureOf([file]);

    expect(error.mismatch).toEqual({
      bucket: 'b',
      key: file.key,
      source: 'HeadObject',
      differences: [{ field: 'checksum', expected: compositeCrc32(file.parts), actual: 'AAAAAA==' }],
    });
  });

  it('fails when HeadObject reports no checksum for an object whose Complete answered one', async () => {
    const file = threeParts(0, 'no-checksum');
    s3.onCompleted = (key) => s3.checksums.delete(key);

    const error = await failureOf([file]);

    expect(error.mismatch.differences).toEqual([
      { field: 'checksum', expected: compositeCrc32(file.parts), actual: null },
    ]);
    expect(error.message).toContain('HeadObject says none');
  });

  it('reports every difference it found, in one message', async () => {
    const file = threeParts(0, 'both');
    s3.onCompleted = (key) => {
      s3.objects.set(key, 'x');
      s3.checksums.set(key, 'AAAAAA==');
    };

    const error = await failureOf([file]);

    expect(error.message).toBe(
      `s3://b/${file.key} is not what this run wrote (${file.bytes} bytes written, HeadObject says 1; ` +
        `CRC32 of the parts written ${compositeCrc32(file.parts)}, HeadObject says AAAAAA==); nothing was committed`,
    );
  });

  it('fails when HeadObject reports no size', async () => {
    const file = threeParts(0, 'no-size');

    const error = (await reshaping(withoutField('ContentLength'))([file]).catch(
      (e: unknown) => e,
    )) as SnapshotVerificationError;

    expect(error.mismatch.differences).toEqual([{ field: 'bytes', expected: file.bytes, actual: null }]);
    expect(error.message).toContain(`${file.bytes} bytes written, HeadObject says nothing`);
  });

  it('checks the size alone with a store that reports no checksums, though the parts carried them', async () => {
    const noChecksums = reshaping(withoutField('ChecksumCRC32'));

    await expect(noChecksums([threeParts(0, 'whole')])).resolves.toMatchObject({
      manifestKey: keys.manifestKey(),
    });

    s3 = new MemoryS3();
    const short = threeParts(0, 'short');
    s3.completeAs = (_key, body) => body.slice(1);
    const error = (await noChecksums([short]).catch((e: unknown) => e)) as SnapshotVerificationError;
    expect(error.mismatch.differences).toEqual([
      { field: 'bytes', expected: short.bytes, actual: short.bytes - 1 },
    ]);
  });

  it('accepts a composite checksum reported without its part count', async () => {
    const file = threeParts(0, 'bare');
    s3.onCompleted = (key) => s3.checksums.set(key, (s3.checksums.get(key) ?? '').replace(/-\d+$/, ''));

    await expect(commit([file])).resolves.toMatchObject({ manifestKey: keys.manifestKey() });
  });

  describe('a file an earlier attempt of this commit completed (NoSuchUpload now)', () => {
    /** The first attempt completes every file, then its manifest PUT fails. */
    async function completedByAnEarlierAttempt(files: PendingFile[]) {
      s3.fail = (command) => (command instanceof PutObjectCommand ? new Error('InternalError') : undefined);
      await expect(commit(files)).rejects.toThrow(SnapshotWriteError);
      s3.fail = () => undefined;
      s3.sent.length = 0;
    }

    it('is verified by its HeadObject and committed when it holds what was written', async () => {
      const file = threeParts(0, 'earlier');
      await completedByAnEarlierAttempt([file]);

      await expect(commit([file])).resolves.toMatchObject({ manifestKey: keys.manifestKey() });
      expect(s3.sent.slice(0, 3)).toEqual([
        'GetObjectCommand',
        'CompleteMultipartUploadCommand',
        'HeadObjectCommand',
      ]);
    });

    it.each([
      ['size', (key: string) => s3.objects.set(key, 'short'), 'bytes'],
      ['checksum', (key: string) => s3.checksums.set(key, 'AAAAAA==-3'), 'checksum'],
    ] as const)('fails when its %s is not what was written', async (_, change, field) => {
      const file = threeParts(0, 'earlier');
      await completedByAnEarlierAttempt([file]);
      change(file.key);

      const error = await failureOf([file]);

      expect(error).toBeInstanceOf(SnapshotVerificationError);
      expect(error.mismatch).toMatchObject({ key: file.key, source: 'HeadObject' });
      expect(error.mismatch.differences.map((d) => d.field)).toEqual([field]);
      expect(s3.objects.has(keys.manifestKey())).toBe(false);
    });
  });

  describe('WHEN_REQUIRED (parts without checksums): the size alone', () => {
    const plain = (uploadId: string) =>
      s3.open(dataKey(ME, 0), uploadId, ['{"a":1}\n', '{"b":2}\n'], { checksums: false });

    it('commits a file of the right size, asking HeadObject for no checksum and ignoring any the store reports', async () => {
      const file = plain('plain');
      const ownChecksum = (command: string, answer: Record<string, unknown>) =>
        command === 'CompleteMultipartUploadCommand' || command === 'HeadObjectCommand'
          ? { ...answer, ChecksumCRC32: 'AAAAAA==' }
          : answer;

      await reshaping(ownChecksum)([file]);

      expect(s3.inputs.find((c) => c.command === 'HeadObjectCommand')?.input).toEqual({
        Bucket: 'b',
        Key: file.key,
      });
      expect(s3.objects.has(keys.manifestKey())).toBe(true);
    });

    it('fails on a file completed short', async () => {
      const file = plain('plain');
      s3.completeAs = (_key, body) => body.slice(1);

      const error = await failureOf([file]);

      expect(error.mismatch.differences).toEqual([
        { field: 'bytes', expected: file.bytes, actual: file.bytes - 1 },
      ]);
      expect(s3.objects.has(keys.manifestKey())).toBe(false);
    });
  });

  it('fails with SnapshotWriteError, not a mismatch, when HeadObject itself fails', async () => {
    const file = threeParts(0, 'head-fails');
    s3.fail = (command) => (command instanceof HeadObjectCommand ? new Error('AccessDenied') : undefined);

    const error = (await commit([file]).catch((e: unknown) => e)) as Error;

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect(error).not.toBeInstanceOf(SnapshotVerificationError);
    expect(error.message).toBe(`Verifying s3://b/${file.key} failed: AccessDenied`);
    expect(error.cause).toMatchObject({ message: 'AccessDenied' });
  });

  it('says verifying failed when the object is gone right after its Complete succeeded', async () => {
    const file = threeParts(0, 'vanished');
    s3.onCompleted = (key) => s3.objects.delete(key);

    const error = (await commit([file]).catch((e: unknown) => e)) as Error;

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect(error.message).toBe(`Verifying s3://b/${file.key} failed: NotFound`);
  });

  it('fails with the file named and the cause kept, without a HeadObject, when Complete itself fails', async () => {
    const file = threeParts(0, 'complete-fails');
    s3.fail = (command) =>
      command instanceof CompleteMultipartUploadCommand ? new Error('InternalError') : undefined;

    const error = (await commit([file]).catch((e: unknown) => e)) as Error;

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect(error).not.toBeInstanceOf(SnapshotVerificationError);
    expect(error.message).toBe(`Completing s3://b/${file.key} failed: InternalError`);
    expect(error.cause).toMatchObject({ message: 'InternalError' });
    expect(s3.sent).not.toContain('HeadObjectCommand');
  });

  it('starts no file after a mismatch and returns only once the Completes in flight have ended', async () => {
    const files = Array.from({ length: 20 }, (_, n) => s3.open(dataKey(ME, n), `u${n}`));
    s3.completeAs = (key, body) => (key === files[0]?.key ? '' : body);
    // Every Complete but the first takes a while, so seven are in flight when the first fails.
    const send = s3.client.send.bind(s3.client);
    const slow = {
      send: async (command: unknown) => {
        if (command instanceof CompleteMultipartUploadCommand && command.input.Key !== files[0]?.key)
          await new Promise((resolve) => setTimeout(resolve, 30));
        return send(command as never);
      },
    } as unknown as S3Client;

    const error = await commitRun(
      { s3: slow, bucket: 'b', keys, logger },
      files,
      manifestOf(ME, 'committed'),
    ).catch((e: unknown) => e);

    const completes = () => s3.sent.filter((c) => c === 'CompleteMultipartUploadCommand').length;
    expect(error).toBeInstanceOf(SnapshotVerificationError);
    expect(completes()).toBe(S3_PARALLELISM);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(completes()).toBe(S3_PARALLELISM);
  });
});

describe('cleanUpSlot', () => {
  let s3: MemoryS3;
  let logger: ReturnType<typeof captureLogger>;

  beforeEach(() => {
    s3 = new MemoryS3();
    logger = captureLogger();
    for (const runId of [OLDER, ME, NEWER]) s3.objects.set(dataKey(runId, 0), runId);
    s3.objects.set(runKeys(OLDER).manifestKey(), JSON.stringify(manifestOf(OLDER, 'committed')));
    s3.objects.set(runKeys(ME).manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));
    s3.objects.set(runKeys(OLDER).planKey(), '{}');
    s3.objects.set(runKeys(NEWER).planKey(), '{}');
  });

  it('removes only runs older than the newest committed one, marking their manifests superseded first', async () => {
    openRecordedUpload(s3, OLDER, 'older-open', 9);
    openRecordedUpload(s3, NEWER, 'newer-open', 9);
    // A manifest of the slot in no run's layout (hand-written, or an older version's): left alone.
    const foreign = `${keys.slotManifestPrefix()}notes.json`;
    s3.objects.set(foreign, JSON.stringify(manifestOf('zzz', 'committed')));
    s3.objects.set(keys.planKey(), '{}');

    const report = await cleanUpSlot({ s3: s3.client, bucket: 'b', keys, logger });

    expect(report).toEqual({
      visibleRunId: ME,
      deletedFiles: 1,
      supersededManifests: 1,
      abortedUploads: 1,
      leftovers: 0,
    });
    expect([...s3.uploads.keys()]).toEqual(['newer-open']);
    expect(JSON.parse(s3.objects.get(foreign) ?? '{}')).toMatchObject({ status: 'committed' });
    // The winner's own run state goes too: its commit is done.
    expect(s3.objects.has(keys.planKey())).toBe(false);
    expect(s3.objects.has(dataKey(OLDER, 0))).toBe(false);
    expect(s3.objects.has(dataKey(ME, 0))).toBe(true);
    // A newer run still going (no committed manifest yet) is never touched.
    expect(s3.objects.has(dataKey(NEWER, 0))).toBe(true);
    expect(s3.objects.has(runKeys(NEWER).planKey())).toBe(true);
    expect(s3.objects.has(runKeys(OLDER).planKey())).toBe(false);
    expect(JSON.parse(s3.objects.get(runKeys(OLDER).manifestKey()) ?? '{}')).toMatchObject({
      status: 'superseded',
      superseded_by: ME,
    });
  });

  it('leaves everything when no run of the slot committed', async () => {
    s3.objects.delete(runKeys(OLDER).manifestKey());
    s3.objects.set(runKeys(ME).manifestKey(), JSON.stringify(manifestOf(ME, 'failed')));

    const report = await cleanUpSlot({ s3: s3.client, bucket: 'b', keys, logger });

    expect(report).toMatchObject({ visibleRunId: undefined, deletedFiles: 0 });
    expect(s3.objects.has(dataKey(OLDER, 0))).toBe(true);
  });

  it('counts what it could not delete and says the next run retries, without throwing', async () => {
    s3.fail = (command) => (command instanceof DeleteObjectsCommand ? new Error('InternalError') : undefined);

    const report = await cleanUpSlot({ s3: s3.client, bucket: 'b', keys, logger });

    expect(report.leftovers).toBeGreaterThanOrEqual(1);
    expect(report.deletedFiles).toBe(0);
    expect(s3.objects.has(dataKey(OLDER, 0))).toBe(true);
    expect(logger.text()).toContain('the next run retries');
  });
});

describe('abortRun', () => {
  let s3: MemoryS3;
  let logger: ReturnType<typeof captureLogger>;
  const ctx = () => ({ s3: s3.client, bucket: 'b', keys, logger });

  beforeEach(() => {
    s3 = new MemoryS3();
    logger = captureLogger();
  });

  it("aborts this run's uploads, deletes its completed files, writes the failed manifest and drops its run state", async () => {
    s3.open(dataKey(ME, 1), 'mine-open');
    s3.open(dataKey(OLDER, 1), 'older-open');
    s3.objects.set(dataKey(ME, 0), 'completed by a partial commit');
    s3.objects.set(dataKey(OLDER, 0), 'older run, committed');
    s3.objects.set(keys.planKey(), '{}');

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result).toEqual({ manifestKey: keys.manifestKey(), alreadyCommitted: false });
    expect([...s3.uploads.keys()]).toEqual(['older-open']);
    expect(s3.objects.has(dataKey(ME, 0))).toBe(false);
    expect(s3.objects.has(dataKey(OLDER, 0))).toBe(true);
    expect(s3.objects.has(keys.planKey())).toBe(false);
    expect(JSON.parse(s3.objects.get(keys.manifestKey()) ?? '{}')).toMatchObject({ status: 'failed' });
  });

  it('keeps the run state when an upload could not be aborted, so a later run still finds it', async () => {
    s3.open(dataKey(ME, 1), 'stuck');
    s3.objects.set(keys.planKey(), '{}');
    s3.fail = (command) =>
      command instanceof AbortMultipartUploadCommand ? new Error('InternalError') : undefined;

    await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(s3.objects.has(keys.planKey())).toBe(true);
    expect(logger.text()).toContain('could not be removed');
  });

  it('changes nothing when this run had already committed', async () => {
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));
    s3.objects.set(dataKey(ME, 0), 'visible');

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result).toEqual({ manifestKey: keys.manifestKey(), alreadyCommitted: true });
    expect(s3.objects.has(dataKey(ME, 0))).toBe(true);
    expect(JSON.parse(s3.objects.get(keys.manifestKey()) ?? '{}')).toMatchObject({ status: 'committed' });
  });

  it('touches nothing when it cannot tell whether this run committed', async () => {
    s3.objects.set(dataKey(ME, 0), 'maybe visible');
    s3.fail = (command) => (command instanceof GetObjectCommand ? new Error('AccessDenied') : undefined);

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result).toEqual({ manifestKey: undefined, alreadyCommitted: false });
    expect(s3.objects.has(dataKey(ME, 0))).toBe(true);
    expect(s3.objects.has(keys.manifestKey())).toBe(false);
  });

  it('reports no manifest key when the failed manifest cannot be written', async () => {
    s3.fail = (command) => (command instanceof PutObjectCommand ? new Error('InternalError') : undefined);

    await expect(abortRun(ctx(), manifestOf(ME, 'failed'))).resolves.toEqual({
      manifestKey: undefined,
      alreadyCommitted: false,
    });
  });
});

describe('takeOverSlot, from the upload records alone (the path the local S3 server takes)', () => {
  it('counts an upload it could not abort as a leftover, not as aborted', async () => {
    const s3 = new MemoryS3();
    s3.listsUploads = false;
    openRecordedUpload(s3, OLDER, 'older');
    s3.fail = (command) =>
      command instanceof AbortMultipartUploadCommand ? new Error('InternalError') : undefined;

    await expect(
      takeOverSlot({ s3: s3.client, bucket: 'b', keys, logger: captureLogger() }),
    ).resolves.toEqual({
      aborted: 0,
      leftovers: 1,
    });
  });

  it('aborts what older runs recorded and leaves this and newer runs alone', async () => {
    const s3 = new MemoryS3();
    s3.listsUploads = false;
    const logger = captureLogger();
    for (const [runId, uploadId] of [
      [OLDER, 'older'],
      [ME, 'mine'],
      [NEWER, 'newer'],
    ] as const)
      openRecordedUpload(s3, runId, uploadId);

    const result = await takeOverSlot({ s3: s3.client, bucket: 'b', keys, logger });

    expect(result).toEqual({ aborted: 1, leftovers: 0 });
    expect([...s3.uploads.keys()].sort()).toEqual(['mine', 'newer']);
    expect(logger.text()).toContain('"aborted":1');
    expect(logger.text()).toContain('aborted open uploads that earlier runs of this snapshot left behind');
  });
});

/** The log lines of one level, as `message {fields}`, in order. */
const logsOf = (logger: ReturnType<typeof captureLogger>, level: string) =>
  logger.lines
    .map((line) => JSON.parse(line) as { level: string; message: string; extra: unknown[] })
    .filter((line) => line.level === level)
    .map((line) => `${line.message} ${JSON.stringify(line.extra[0] ?? {})}`);

describe('what commit.ts logs, and the counts it reports', () => {
  let s3: MemoryS3;
  let logger: ReturnType<typeof captureLogger>;
  const ctx = () => ({ s3: s3.client, bucket: 'b', keys, logger });

  beforeEach(() => {
    s3 = new MemoryS3();
    logger = captureLogger();
  });

  it('cleanUpSlot logs what it removed, counting every aborted upload of older runs', async () => {
    s3.objects.set(runKeys(OLDER).manifestKey(), JSON.stringify(manifestOf(OLDER, 'committed')));
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));
    s3.objects.set(dataKey(OLDER, 0), 'older');
    openRecordedUpload(s3, OLDER, 'o1', 1);
    openRecordedUpload(s3, OLDER, 'o2', 2);

    const report = await cleanUpSlot(ctx());

    expect(report).toEqual({
      visibleRunId: ME,
      deletedFiles: 1,
      supersededManifests: 1,
      abortedUploads: 2,
      leftovers: 0,
    });
    expect(logsOf(logger, 'INFO')).toEqual([
      'removed earlier runs of this snapshot {"deletedFiles":1,"supersededManifests":1,"abortedUploads":2}',
    ]);
    expect(logsOf(logger, 'WARN')).toEqual([]);
  });

  it('cleanUpSlot logs nothing when there was nothing to remove', async () => {
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));

    await cleanUpSlot(ctx());

    expect(logger.lines).toEqual([]);
  });

  it('cleanUpSlot counts a manifest it could not mark superseded and an upload it could not abort as leftovers', async () => {
    s3.objects.set(runKeys(OLDER).manifestKey(), JSON.stringify(manifestOf(OLDER, 'committed')));
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));
    openRecordedUpload(s3, OLDER, 'stuck', 1);
    s3.fail = (command) =>
      command instanceof PutObjectCommand || command instanceof AbortMultipartUploadCommand
        ? new Error('InternalError')
        : undefined;

    const report = await cleanUpSlot(ctx());

    expect(report).toMatchObject({ supersededManifests: 0, abortedUploads: 0, leftovers: 2 });
    // The older run still names an open upload: its run state stays for the next run to find.
    expect(s3.objects.has(runKeys(OLDER).uploadRecordKey(dataKey(OLDER, 1), 'stuck'))).toBe(true);
    expect(logsOf(logger, 'WARN')).toEqual([
      'some files of earlier runs of this snapshot could not be removed; the next run retries {"leftovers":2}',
    ]);
  });

  it('cleanUpSlot stops at a failed listing, says so, and never throws', async () => {
    s3.fail = (command) => (command instanceof ListObjectsV2Command ? new Error('slow down') : undefined);

    await expect(cleanUpSlot(ctx())).resolves.toMatchObject({ leftovers: 1, visibleRunId: undefined });
    expect(logsOf(logger, 'WARN')).toEqual([
      'clean-up of earlier runs of this snapshot stopped; the next run of the slot retries it {"error":"Listing s3://b/p/manifests/dt=2026-11-26/scheduled-20261126T020000Z. failed: slow down"}',
      'some files of earlier runs of this snapshot could not be removed; the next run retries {"leftovers":1}',
    ]);
  });

  it('commitRun says how many of its own uploads it could not abort before the commit point', async () => {
    s3.open(dataKey(ME, 5), 'stray');
    s3.fail = (command) =>
      command instanceof AbortMultipartUploadCommand ? new Error('InternalError') : undefined;

    await commitRun(ctx(), [], manifestOf(ME, 'committed'));

    expect(logsOf(logger, 'WARN')).toContain(
      'some uploads of this run could not be aborted before commit {"count":1}',
    );
  });

  it('abortRun still writes the failed manifest when listing the run uploads fails, and keeps the run state that records them', async () => {
    s3.listsUploads = false;
    openRecordedUpload(s3, ME, 'unlisted-open');
    s3.fail = (command) =>
      command instanceof ListObjectsV2Command && command.input.Prefix?.includes('/uploads/')
        ? new Error('slow down')
        : undefined;

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result.manifestKey).toBe(keys.manifestKey());
    expect(s3.objects.has(keys.manifestKey())).toBe(true);
    // The upload is still open, and its record with it: the next run of the slot finds and aborts it.
    expect([...s3.uploads.keys()]).toEqual(['unlisted-open']);
    expect(s3.objects.has(runKeys(ME).uploadRecordKey(dataKey(ME, 0), 'unlisted-open'))).toBe(true);
    expect(logsOf(logger, 'WARN')[0]).toMatch(
      /^could not list this run uploads; its run state is kept, so the next run of the slot aborts them \{"error":"Listing s3:\/\/b\/p\/runs\//,
    );
    expect(logsOf(logger, 'WARN')[1]).toContain('{"leftovers":1}');
  });

  it('abortRun reports the failed manifest it wrote when only removing its run state fails afterwards', async () => {
    s3.objects.set(keys.planKey(), '{}');
    s3.fail = (command) =>
      command instanceof ListObjectsV2Command && command.input.Prefix === keys.runStatePrefix()
        ? new Error('slow down')
        : undefined;

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result).toEqual({ manifestKey: keys.manifestKey(), alreadyCommitted: false });
    expect(JSON.parse(s3.objects.get(keys.manifestKey()) ?? '{}')).toMatchObject({ status: 'failed' });
    expect(logsOf(logger, 'ERROR')).toEqual([]);
    expect(logsOf(logger, 'WARN')[0]).toMatch(
      /^could not remove the run state of this failed run; the next run of the slot removes it /,
    );
  });

  it('abortRun keeps the run state and says so when it cannot list its completed files', async () => {
    s3.objects.set(keys.planKey(), '{}');
    s3.fail = (command) =>
      command instanceof ListObjectsV2Command && command.input.Prefix?.startsWith('p/sessions/')
        ? new Error('slow down')
        : undefined;

    const result = await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(result.manifestKey).toBe(keys.manifestKey());
    expect(s3.objects.has(keys.planKey())).toBe(true);
    expect(logsOf(logger, 'WARN')).toEqual([
      'some uploads or files of this failed run could not be removed; readers never show them, and the next run of the slot removes them {"leftovers":1}',
    ]);
  });

  it('abortRun counts a completed file it could not delete as a leftover', async () => {
    s3.objects.set(dataKey(ME, 0), 'completed by a partial commit');
    s3.objects.set(keys.planKey(), '{}');
    s3.refuseDelete = (key) => key === dataKey(ME, 0);

    await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(s3.objects.has(keys.planKey())).toBe(true);
    expect(logsOf(logger, 'WARN')[0]).toMatch(/\{"leftovers":1\}$/);
  });

  it('abortRun logs why it left everything, or wrote no failed manifest, or found the run committed', async () => {
    s3.fail = (command) => (command instanceof GetObjectCommand ? new Error('AccessDenied') : undefined);
    await abortRun(ctx(), manifestOf(ME, 'failed'));
    s3.fail = (command) => (command instanceof PutObjectCommand ? new Error('InternalError') : undefined);
    await abortRun(ctx(), manifestOf(ME, 'failed'));
    expect(logsOf(logger, 'ERROR')).toEqual([
      `could not read this run manifest; left everything as it is {"error":"Reading s3://b/${keys.manifestKey()} failed: AccessDenied"}`,
      `could not write the failed manifest {"error":"Writing s3://b/${keys.manifestKey()} failed: InternalError"}`,
    ]);

    s3.fail = () => undefined;
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));
    await abortRun(ctx(), manifestOf(ME, 'failed'));
    expect(logsOf(logger, 'WARN').at(-1)).toBe(
      `this run had already committed; nothing was aborted {"manifestKey":"${keys.manifestKey()}"}`,
    );
  });

  it("commitRun refuses another run's or an uncommitted manifest, naming the status", async () => {
    await expect(commitRun(ctx(), [], manifestOf(ME, 'failed'))).rejects.toThrow(
      "commitRun needs this run's committed manifest, got failed",
    );
  });

  it('a clean commit and a take-over with nothing to take log nothing', async () => {
    const file = s3.open(dataKey(ME, 0), 'mine');

    await commitRun(ctx(), [file], manifestOf(ME, 'committed'));
    await takeOverSlot(ctx());

    expect(logger.lines).toEqual([]);
  });

  it('cleanUpSlot leaves a failed manifest of an older run failed (only committed ones are superseded)', async () => {
    s3.objects.set(runKeys(OLDER).manifestKey(), JSON.stringify(manifestOf(OLDER, 'failed')));
    s3.objects.set(keys.manifestKey(), JSON.stringify(manifestOf(ME, 'committed')));

    const report = await cleanUpSlot(ctx());

    expect(report.supersededManifests).toBe(0);
    expect(JSON.parse(s3.objects.get(runKeys(OLDER).manifestKey()) ?? '{}')).toEqual(
      manifestOf(OLDER, 'failed'),
    );
  });

  it('abortRun with nothing open aborts nothing and deletes only what its run holds', async () => {
    s3.listsUploads = false;
    s3.objects.set(dataKey(ME, 0), 'completed');

    await abortRun(ctx(), manifestOf(ME, 'failed'));

    expect(s3.sent).not.toContain('AbortMultipartUploadCommand');
    const deleted = s3.inputs
      .filter((c) => c.command === 'DeleteObjectsCommand')
      .flatMap((c) => (c.input.Delete as { Objects: { Key: string }[] }).Objects.map((o) => o.Key));
    expect(deleted).toEqual([dataKey(ME, 0)]);
  });
});
