import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listKeys } from '../../lambda/snapshot/commit-snapshot';

/** Reads every object under `prefix` and returns them by key (gzip objects are gunzipped). */
export async function readObjects(
  s3: S3Client,
  bucket: string,
  prefix: string,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await listKeys(s3, bucket, prefix)) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = Buffer.from(
      await (object.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())),
    );
    out.set(key, key.endsWith('.gz') ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8'));
  }
  return out;
}

/** Every NDJSON record under `prefix`, parsed. */
export async function readRecords(
  s3: S3Client,
  bucket: string,
  prefix: string,
): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  for (const text of (await readObjects(s3, bucket, prefix)).values()) {
    for (const line of text.split('\n'))
      if (line.trim()) records.push(JSON.parse(line) as Record<string, unknown>);
  }
  return records;
}
