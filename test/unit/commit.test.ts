import {
  AbortMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { takeOverSlot } from '../../lambda/snapshot/commit';
import { SnapshotKeys } from '../../lambda/snapshot/snapshot-keys';
import { captureLogger } from '../helpers/capture-logger';

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
