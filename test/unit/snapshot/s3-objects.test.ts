/** The small S3 operations every other snapshot module uses, over the in-memory S3. */
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { SnapshotWriteError } from '../../../lambda/core/errors';
import {
  abortUploads,
  deleteKeys,
  getJson,
  listKeys,
  listOpenUploads,
  putJson,
  S3_PARALLELISM,
} from '../../../lambda/snapshot/s3-objects';
import { gate, until } from '../../helpers/gate';
import { MemoryS3 } from '../../helpers/memory-s3';

const s3Error = (name: string, message = name) => Object.assign(new Error(message), { name });

describe('putJson', () => {
  it('writes the value as one JSON line, as application/json', async () => {
    const s3 = new MemoryS3();

    await putJson(s3.client, 'b', 'k.json', { a: 1, nested: { b: [1, 2] } });

    expect(s3.objects.get('k.json')).toBe('{"a":1,"nested":{"b":[1,2]}}\n');
    expect(s3.inputs[0]?.input).toMatchObject({
      Bucket: 'b',
      Key: 'k.json',
      ContentType: 'application/json',
    });
  });

  it('wraps a failed PUT in SnapshotWriteError naming the object, the cause kept', async () => {
    const s3 = new MemoryS3();
    const cause = s3Error('AccessDenied', 'denied');
    s3.fail = () => cause;

    const error = await putJson(s3.client, 'b', 'k.json', {}).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SnapshotWriteError);
    expect(error).toMatchObject({ message: 'Writing s3://b/k.json failed: denied', cause });
  });
});

describe('getJson', () => {
  it('parses the object, and answers undefined for a key that does not exist', async () => {
    const s3 = new MemoryS3();
    s3.objects.set('k.json', '{"a":[1]}\n');

    await expect(getJson(s3.client, 'b', 'k.json')).resolves.toEqual({ a: [1] });
    await expect(getJson(s3.client, 'b', 'missing.json')).resolves.toBeUndefined();
    expect(s3.inputs[0]?.input).toEqual({ Bucket: 'b', Key: 'k.json' });
  });

  it('wraps any other failure, and says when the object is not JSON (an empty body included)', async () => {
    const s3 = new MemoryS3();
    const cause = s3Error('InternalError', 'try again');
    s3.fail = () => cause;
    await expect(getJson(s3.client, 'b', 'k.json')).rejects.toMatchObject({
      name: 'SnapshotWriteError',
      message: 'Reading s3://b/k.json failed: try again',
      cause,
    });

    const torn = new MemoryS3();
    torn.objects.set('k.json', '{"a":');
    await expect(getJson(torn.client, 'b', 'k.json')).rejects.toMatchObject({
      name: 'SnapshotWriteError',
      message: 's3://b/k.json is not JSON',
    });
    const bodiless = {
      send: async () => ({ Body: undefined }),
    } as unknown as S3Client;
    await expect(getJson(bodiless, 'b', 'k.json')).rejects.toThrow('s3://b/k.json is not JSON');
  });
});

describe('listKeys', () => {
  it('lists every key under the prefix, over as many pages as it takes', async () => {
    const s3 = new MemoryS3();
    for (let i = 0; i < 7; i++) s3.objects.set(`p/${i}`, '');
    s3.objects.set('q/0', '');
    s3.pageSize = 3;

    expect(await listKeys(s3.client, 'b', 'p/')).toEqual(['p/0', 'p/1', 'p/2', 'p/3', 'p/4', 'p/5', 'p/6']);
    const lists = s3.inputs.filter((c) => c.command === 'ListObjectsV2Command').map((c) => c.input);
    expect(lists).toEqual([
      { Bucket: 'b', Prefix: 'p/', ContinuationToken: undefined },
      { Bucket: 'b', Prefix: 'p/', ContinuationToken: 'p/2' },
      { Bucket: 'b', Prefix: 'p/', ContinuationToken: 'p/5' },
    ]);
  });

  it('answers an empty list for an empty prefix, skips entries without a key, and wraps a failure', async () => {
    const s3 = new MemoryS3();
    expect(await listKeys(s3.client, 'b', 'p/')).toEqual([]);

    const odd = {
      send: async () => ({ Contents: [{}, { Key: 'p/a' }], IsTruncated: false }),
    } as unknown as S3Client;
    expect(await listKeys(odd, 'b', 'p/')).toEqual(['p/a']);

    s3.fail = () => s3Error('SlowDown', 'slow down');
    await expect(listKeys(s3.client, 'b', 'p/')).rejects.toMatchObject({
      name: 'SnapshotWriteError',
      message: 'Listing s3://b/p/ failed: slow down',
    });
  });
});

describe('deleteKeys', () => {
  it('deletes in calls of 1,000 keys, quietly', async () => {
    const s3 = new MemoryS3();
    const keys = Array.from({ length: 2500 }, (_, i) => `k/${i}`);
    for (const key of keys) s3.objects.set(key, '');

    await expect(deleteKeys(s3.client, 'b', keys)).resolves.toEqual([]);

    expect(s3.objects.size).toBe(0);
    const calls = s3.inputs.filter((c) => c.command === 'DeleteObjectsCommand');
    expect(calls.map((c) => (c.input.Delete as { Objects: unknown[] }).Objects.length)).toEqual([
      1000, 1000, 500,
    ]);
    expect(calls[0]?.input).toMatchObject({ Bucket: 'b', Delete: { Quiet: true } });
    expect((calls[2]?.input.Delete as { Objects: unknown[] } | undefined)?.Objects[0]).toEqual({
      Key: 'k/2000',
    });
  });

  it('never throws: returns the keys S3 refused and every key of a call that failed', async () => {
    const s3 = new MemoryS3();
    const keys = Array.from({ length: 1500 }, (_, i) => `k/${i}`);
    for (const key of keys) s3.objects.set(key, '');
    s3.refuseDelete = (key) => key === 'k/7';
    s3.fail = (command) =>
      command instanceof DeleteObjectsCommand && command.input.Delete?.Objects?.[0]?.Key === 'k/1000'
        ? s3Error('InternalError')
        : undefined;

    const failed = await deleteKeys(s3.client, 'b', keys);

    expect(failed).toEqual(['k/7', ...keys.slice(1000)]);
    expect(s3.objects.size).toBe(501);
  });

  it('sends nothing for no keys', async () => {
    const s3 = new MemoryS3();
    await expect(deleteKeys(s3.client, 'b', [])).resolves.toEqual([]);
    expect(s3.sent).toEqual([]);
  });
});

describe('abortUploads', () => {
  it('aborts each upload; one already gone counts as done, any other failure is returned', async () => {
    const s3 = new MemoryS3();
    s3.open('a', 'ua');
    s3.open('c', 'uc');
    s3.fail = (command) =>
      command instanceof AbortMultipartUploadCommand && command.input.UploadId === 'uc'
        ? s3Error('AccessDenied')
        : undefined;

    const left = await abortUploads(s3.client, 'b', [
      { key: 'a', uploadId: 'ua' },
      { key: 'gone', uploadId: 'gone' },
      { key: 'c', uploadId: 'uc' },
    ]);

    expect(left).toEqual([{ key: 'c', uploadId: 'uc' }]);
    expect([...s3.uploads.keys()]).toEqual(['uc']);
    expect(s3.inputs.find((c) => c.input.UploadId === 'ua')?.input).toEqual({
      Bucket: 'b',
      Key: 'a',
      UploadId: 'ua',
    });
  });

  it(`aborts at most ${S3_PARALLELISM} at once`, async () => {
    const s3 = new MemoryS3();
    const uploads = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, uploadId: `u${i}` }));
    for (const u of uploads) s3.open(u.key, u.uploadId);
    const held = gate();
    s3.latency = () => held.promise;

    const aborting = abortUploads(s3.client, 'b', uploads);
    await until(
      () => (s3.inFlight.get('AbortMultipartUploadCommand') ?? 0) === S3_PARALLELISM,
      'aborts started',
    );
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    held.open();

    await expect(aborting).resolves.toEqual([]);
    expect(s3.maxInFlight.get('AbortMultipartUploadCommand')).toBe(S3_PARALLELISM);
    expect(s3.uploads.size).toBe(0);
  });
});

describe('listOpenUploads', () => {
  it('lists the open uploads under the prefix over pages, following both markers', async () => {
    const s3 = new MemoryS3();
    s3.open('p/a', 'u1');
    s3.open('p/a', 'u2');
    s3.open('p/b', 'u3');
    s3.open('q/c', 'u4');
    s3.pageSize = 2;

    expect(await listOpenUploads(s3.client, 'b', 'p/')).toEqual([
      { key: 'p/a', uploadId: 'u1' },
      { key: 'p/a', uploadId: 'u2' },
      { key: 'p/b', uploadId: 'u3' },
    ]);
    expect(s3.inputs.map((c) => c.input)).toEqual([
      { Bucket: 'b', Prefix: 'p/', KeyMarker: undefined, UploadIdMarker: undefined },
      { Bucket: 'b', Prefix: 'p/', KeyMarker: 'p/a', UploadIdMarker: 'u2' },
    ]);
  });

  it('skips entries without a key or an upload id', async () => {
    const odd = {
      send: async () => ({
        IsTruncated: false,
        Uploads: [{ Key: 'k' }, { UploadId: 'u' }, { Key: 'k', UploadId: 'u' }],
      }),
    } as unknown as S3Client;

    expect(await listOpenUploads(odd, 'b', '')).toEqual([{ key: 'k', uploadId: 'u' }]);
  });

  it('answers undefined when the store cannot list uploads, on any page', async () => {
    const s3 = new MemoryS3();
    s3.listsUploads = false;
    await expect(listOpenUploads(s3.client, 'b', 'p/')).resolves.toBeUndefined();

    const second = new MemoryS3();
    for (let i = 0; i < 3; i++) second.open(`p/${i}`, `u${i}`);
    second.pageSize = 1;
    second.fail = (command) =>
      command instanceof ListMultipartUploadsCommand && command.input.KeyMarker !== undefined
        ? s3Error('InternalError')
        : undefined;
    await expect(listOpenUploads(second.client, 'b', 'p/')).resolves.toBeUndefined();
  });
});

it('getJson and listKeys send the commands they name', async () => {
  const s3 = new MemoryS3();
  await getJson(s3.client, 'b', 'x');
  await listKeys(s3.client, 'b', 'x');
  expect(s3.sent).toEqual([GetObjectCommand.name, ListObjectsV2Command.name]);
});
