/** Upload records over the in-memory S3: where they are written, and which ones a listing finds. */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { SnapshotWriteError } from '../../../lambda/core/errors';
import { S3_PARALLELISM } from '../../../lambda/snapshot/s3-objects';
import { SnapshotKeys } from '../../../lambda/snapshot/snapshot-keys';
import { listUploadRecords, recordUpload } from '../../../lambda/snapshot/upload-registry';
import { gate, until } from '../../helpers/gate';
import { MemoryS3 } from '../../helpers/memory-s3';

const AT = Date.parse('2026-11-26T02:00:00Z') / 1000;
const SLOT = 'scheduled-20261126T020000Z';
const ME = 'r20261126T030000000Z-bbbbbb';
const OTHER = 'r20261126T040000000Z-cccccc';
const keysOf = (runId: string) => new SnapshotKeys('p', SLOT, AT, runId);
const mine = keysOf(ME);
const dataKey = (runId: string, n: number) => keysOf(runId).fileKey('sessions', 's000-00000-a', n);

describe('recordUpload', () => {
  it('writes one JSON line per upload under the run state, keyed by file and upload id, naming the run', async () => {
    const s3 = new MemoryS3();

    await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, 0), uploadId: 'u-1' });
    await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, 0), uploadId: 'u-2' });

    const key = mine.uploadRecordKey(dataKey(ME, 0), 'u-1');
    expect(key.startsWith(`p/runs/dt=2026-11-26/${SLOT}/${ME}/uploads/`)).toBe(true);
    expect(s3.objects.get(key)).toBe(
      `${JSON.stringify({ key: dataKey(ME, 0), uploadId: 'u-1', runId: ME })}\n`,
    );
    expect(s3.objects.size).toBe(2);
    expect(s3.inputs[0]).toMatchObject({ command: 'PutObjectCommand', input: { Bucket: 'b', Key: key } });
  });

  it('fails with SnapshotWriteError naming the key when the PUT fails', async () => {
    const s3 = new MemoryS3();
    s3.fail = () => Object.assign(new Error('access denied'), { name: 'AccessDenied' });

    await expect(recordUpload(s3.client, 'b', mine, { key: 'k', uploadId: 'u' })).rejects.toThrow(
      `Writing s3://b/${mine.uploadRecordKey('k', 'u')} failed: access denied`,
    );
  });
});

describe('listUploadRecords', () => {
  let s3: MemoryS3;

  beforeEach(async () => {
    s3 = new MemoryS3();
    await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, 0), uploadId: 'mine-0' });
    await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, 1), uploadId: 'mine-1' });
    await recordUpload(s3.client, 'b', keysOf(OTHER), { key: dataKey(OTHER, 0), uploadId: 'other-0' });
  });

  it("lists one run's records when given its id", async () => {
    const records = await listUploadRecords(s3.client, 'b', mine, ME);

    expect(records.map((r) => r.uploadId).sort()).toEqual(['mine-0', 'mine-1']);
    expect(records.find((r) => r.uploadId === 'mine-0')).toEqual({
      key: dataKey(ME, 0),
      uploadId: 'mine-0',
      runId: ME,
    });
    expect(s3.inputs.find((c) => c.command === 'ListObjectsV2Command')?.input.Prefix).toBe(
      mine.uploadRecordPrefix(ME),
    );
  });

  it("lists every run's records of the slot without one, and nothing of other slots or outside uploads/", async () => {
    const otherSlot = new SnapshotKeys('p', 'scheduled-20261126T030000Z', AT, ME);
    await recordUpload(s3.client, 'b', otherSlot, { key: 'k', uploadId: 'other-slot' });
    s3.objects.set(`${mine.runStatePrefix()}plan.json`, '{"not":"a record"}');
    s3.objects.set(`${mine.slotStatePrefix()}not-a-run/uploads/x.json`, '{"uploadId":"stray"}');

    const records = await listUploadRecords(s3.client, 'b', mine);

    // toStrictEqual: a plan read as a record would add an entry without an uploadId.
    expect(records.map((r) => r.uploadId).sort()).toStrictEqual(['mine-0', 'mine-1', 'other-0']);
    expect(s3.inputs.find((c) => c.command === 'ListObjectsV2Command')?.input.Prefix).toBe(
      mine.slotStatePrefix(),
    );
  });

  it('follows the listing over pages', async () => {
    for (let i = 2; i < 7; i++)
      await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, i), uploadId: `mine-${i}` });
    s3.pageSize = 2;

    expect(await listUploadRecords(s3.client, 'b', mine, ME)).toHaveLength(7);
    expect(s3.sent.filter((c) => c === 'ListObjectsV2Command')).toHaveLength(4);
  });

  it('skips a record deleted between the listing and its read', async () => {
    // Deleted once the listing has answered with it (loseAnswer runs after the answer is made).
    s3.loseAnswer = (command) => {
      if (command instanceof ListObjectsV2Command)
        s3.objects.delete(mine.uploadRecordKey(dataKey(ME, 1), 'mine-1'));
      return undefined;
    };
    const records = await listUploadRecords(s3.client, 'b', mine, ME);

    expect(records.map((r) => r.uploadId)).toEqual(['mine-0']);
  });

  it(`reads at most ${S3_PARALLELISM} records at once`, async () => {
    for (let i = 2; i < 30; i++)
      await recordUpload(s3.client, 'b', mine, { key: dataKey(ME, i), uploadId: `mine-${i}` });
    const held = gate();
    s3.latency = (command) => (command instanceof GetObjectCommand ? held.promise : undefined);

    const listing = listUploadRecords(s3.client, 'b', mine, ME);
    await until(() => (s3.inFlight.get('GetObjectCommand') ?? 0) === S3_PARALLELISM, 'the reads started');
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    held.open();

    expect(await listing).toHaveLength(30);
    expect(s3.maxInFlight.get('GetObjectCommand')).toBe(S3_PARALLELISM);
  });

  it('fails with SnapshotWriteError when the listing fails or a record is not JSON', async () => {
    const failing = new MemoryS3();
    failing.fail = (command) =>
      command instanceof ListObjectsV2Command
        ? Object.assign(new Error('slow down'), { name: 'SlowDown' })
        : undefined;
    await expect(listUploadRecords(failing.client, 'b', mine)).rejects.toBeInstanceOf(SnapshotWriteError);

    s3.objects.set(mine.uploadRecordKey('k', 'torn'), '{"key":');
    await expect(listUploadRecords(s3.client, 'b', mine, ME)).rejects.toThrow(
      `s3://b/${mine.uploadRecordKey('k', 'torn')} is not JSON`,
    );
  });
});
