/**
 * completeFile alone, over the in-memory S3: the Complete, the checks of what S3 then holds, and
 * the error each failure becomes. (test/unit/snapshot/commit.test.ts checks that a failure here commits
 * nothing.)
 */
import { CompleteMultipartUploadCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SnapshotVerificationError, SnapshotWriteError } from '../../../lambda/core/errors';
import { completeFile, compositeCrc32 } from '../../../lambda/snapshot/complete-file';
import { MemoryS3 } from '../../helpers/memory-s3';

const s3Error = (name: string, message = name) => Object.assign(new Error(message), { name });

/** The memory S3 with one command's answer changed. */
function answering(
  s3: MemoryS3,
  command: string,
  change: (answer: Record<string, unknown>) => Record<string, unknown>,
) {
  return {
    send: async (sent: object) => {
      const answer = (await s3.client.send(sent as never)) as unknown as Record<string, unknown>;
      return sent.constructor.name === command ? change(answer) : answer;
    },
  } as unknown as S3Client;
}

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('completed');
    },
    (error: unknown) => error as SnapshotVerificationError,
  );

describe('compositeCrc32', () => {
  it('is the same whatever order the parts are listed in (part order, not list order)', () => {
    const parts = [
      { PartNumber: 1, ETag: '"a"', ChecksumCRC32: '67XDxA==' },
      { PartNumber: 2, ETag: '"b"', ChecksumCRC32: 'NhCmhg==' },
      { PartNumber: 3, ETag: '"c"', ChecksumCRC32: 'AAAAAA==' },
    ];
    const shuffled = [parts[2], parts[0], parts[1]] as typeof parts;

    expect(compositeCrc32(shuffled)).toBe(compositeCrc32(parts));
    expect(compositeCrc32(parts)).toMatch(/-3$/);
    expect(compositeCrc32(parts.slice(0, 2))).toBe('d9ydLw==-2');
  });
});

describe('completeFile', () => {
  let s3: MemoryS3;

  beforeEach(() => {
    s3 = new MemoryS3();
  });

  it('completes the upload with its parts as listed, then checks one HeadObject with the checksum asked for', async () => {
    const file = s3.open('k', 'u', ['a\n', 'b\n']);

    await completeFile(s3.client, 'b', file);

    expect(s3.inputs.map((c) => [c.command, c.input])).toEqual([
      [
        'CompleteMultipartUploadCommand',
        { Bucket: 'b', Key: 'k', UploadId: 'u', MultipartUpload: { Parts: file.parts } },
      ],
      ['HeadObjectCommand', { Bucket: 'b', Key: 'k', ChecksumMode: 'ENABLED' }],
    ]);
    expect(s3.objects.get('k')).toBe('a\nb\n');
  });

  it('asks HeadObject for no checksum when the parts carry none', async () => {
    const file = s3.open('k', 'u', ['a\n'], { checksums: false });

    await completeFile(s3.client, 'b', file);

    expect(s3.inputs.find((c) => c.command === 'HeadObjectCommand')?.input).toEqual({
      Bucket: 'b',
      Key: 'k',
    });
  });

  it("fails at Complete when S3's checksum is not the parts', naming both", async () => {
    const file = s3.open('k', 'u', ['a\n', 'b\n']);
    const other = answering(s3, 'CompleteMultipartUploadCommand', (a) => ({
      ...a,
      ChecksumCRC32: 'AAAAAA==-2',
    }));

    const error = await failureOf(completeFile(other, 'b', file));

    expect(error).toBeInstanceOf(SnapshotVerificationError);
    expect(error.mismatch).toEqual({
      bucket: 'b',
      key: 'k',
      source: 'CompleteMultipartUpload',
      differences: [{ field: 'checksum', expected: compositeCrc32(file.parts), actual: 'AAAAAA==-2' }],
    });
    expect(error.message).toBe(
      `s3://b/k is not what this run wrote (CRC32 of the parts written ${compositeCrc32(file.parts)}, CompleteMultipartUpload says AAAAAA==-2); nothing was committed`,
    );
    expect(s3.sent).not.toContain('HeadObjectCommand');
  });

  it('accepts a checksum without its part count, at Complete and at HeadObject', async () => {
    const file = s3.open('k', 'u', ['a\n', 'b\n']);
    const bare = (compositeCrc32(file.parts) as string).replace(/-\d+$/, '');
    const store = answering(s3, 'CompleteMultipartUploadCommand', (a) => ({ ...a, ChecksumCRC32: bare }));
    const headStore = {
      send: async (command: object) => {
        const answer = (await store.send(command as never)) as unknown as Record<string, unknown>;
        return command instanceof HeadObjectCommand ? { ...answer, ChecksumCRC32: bare } : answer;
      },
    } as unknown as S3Client;

    await expect(completeFile(headStore, 'b', file)).resolves.toBeUndefined();
  });

  it('does not take a checksum that only shares a prefix with the expected one', async () => {
    const file = s3.open('k', 'u', ['a\n', 'b\n']);
    const expected = compositeCrc32(file.parts) as string;
    const store = answering(s3, 'CompleteMultipartUploadCommand', (a) => ({
      ...a,
      ChecksumCRC32: expected.slice(0, 4),
    }));

    await expect(failureOf(completeFile(store, 'b', file))).resolves.toBeInstanceOf(
      SnapshotVerificationError,
    );
  });

  it('fails at HeadObject on another size, saying "nothing" when S3 reports none', async () => {
    const file = s3.open('k', 'u', ['a\n', 'b\n'], { checksums: false });
    const sizeless = answering(s3, 'HeadObjectCommand', ({ ContentLength: _, ...rest }) => rest);

    const error = await failureOf(completeFile(sizeless, 'b', file));

    expect(error.mismatch).toEqual({
      bucket: 'b',
      key: 'k',
      source: 'HeadObject',
      differences: [{ field: 'bytes', expected: 4, actual: null }],
    });
    expect(error.message).toBe(
      's3://b/k is not what this run wrote (4 bytes written, HeadObject says nothing); nothing was committed',
    );
  });

  it('fails at HeadObject when the object has no checksum though Complete answered one, saying "none"', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    const plain = answering(s3, 'HeadObjectCommand', ({ ChecksumCRC32: _, ...rest }) => rest);

    const error = await failureOf(completeFile(plain, 'b', file));

    expect(error.mismatch.differences).toEqual([
      { field: 'checksum', expected: compositeCrc32(file.parts), actual: null },
    ]);
    expect(error.message).toContain(
      `CRC32 of the parts written ${compositeCrc32(file.parts)}, HeadObject says none`,
    );
  });

  it('checks the size alone when neither Complete nor HeadObject reports a checksum', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    const store = {
      send: async (command: object) => {
        const answer = (await s3.client.send(command as never)) as unknown as Record<string, unknown>;
        const { ChecksumCRC32: _, ...rest } = answer;
        return rest;
      },
    } as unknown as S3Client;

    await expect(completeFile(store, 'b', file)).resolves.toBeUndefined();
  });

  it('lists both differences of HeadObject, size first', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    const store = answering(s3, 'HeadObjectCommand', (a) => ({ ...a, ContentLength: 1, ChecksumCRC32: 'x' }));

    const error = await failureOf(completeFile(store, 'b', file));

    expect(error.mismatch.differences.map((d) => d.field)).toEqual(['bytes', 'checksum']);
    expect(error.message).toContain('(2 bytes written, HeadObject says 1; CRC32 of the parts written');
  });

  it('verifies by HeadObject alone a file an earlier attempt completed (NoSuchUpload now)', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    await completeFile(s3.client, 'b', file);

    await expect(completeFile(s3.client, 'b', file)).resolves.toBeUndefined();
    expect(s3.sent.filter((c) => c === 'HeadObjectCommand')).toHaveLength(2);
  });

  it('fails with the NoSuchUpload as the cause when the upload is gone and no object exists (aborted)', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    s3.uploads.delete('u');

    const error = await failureOf(completeFile(s3.client, 'b', file));

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect(error).not.toBeInstanceOf(SnapshotVerificationError);
    expect(error.message).toBe('Completing s3://b/k failed: NoSuchUpload');
    expect(error.cause).toMatchObject({ name: 'NoSuchUpload' });
  });

  it('fails with the cause kept and no HeadObject when Complete fails otherwise', async () => {
    const file = s3.open('k', 'u', ['a\n']);
    const cause = s3Error('InternalError', 'please retry');
    s3.fail = (command) => (command instanceof CompleteMultipartUploadCommand ? cause : undefined);

    const error = await failureOf(completeFile(s3.client, 'b', file));

    expect(error).toMatchObject({
      name: 'SnapshotWriteError',
      message: 'Completing s3://b/k failed: please retry',
      cause,
    });
    expect(s3.sent).toEqual(['CompleteMultipartUploadCommand']);
  });

  it.each([
    ['after a successful Complete, the object is gone', false, 'NotFound'],
    ['HeadObject fails', false, 'Forbidden'],
    ['after NoSuchUpload, HeadObject fails other than NotFound', true, 'Forbidden'],
  ])('says verifying failed when %s', async (_, gone, headError) => {
    const file = s3.open('k', 'u', ['a\n']);
    if (gone) s3.uploads.delete('u');
    const cause = s3Error(headError, `head: ${headError}`);
    s3.fail = (command) => (command instanceof HeadObjectCommand ? cause : undefined);

    const error = await failureOf(completeFile(s3.client, 'b', file));

    expect(error).toMatchObject({
      name: 'SnapshotWriteError',
      message: `Verifying s3://b/k failed: head: ${headError}`,
      cause,
    });
  });
});
