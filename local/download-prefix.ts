import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listKeys } from '../lambda/snapshot/s3-objects';

/**
 * Copies every object under `prefix` into `dir`, keeping the key path (so `dt=` folders survive
 * for hive partitioning). DuckDB's S3 extension downloads itself at run time, which fails
 * offline, so local queries read these copies.
 */
export async function downloadPrefix(
  s3: S3Client,
  bucket: string,
  prefix: string,
  dir: string,
): Promise<string[]> {
  const keys = await listKeys(s3, bucket, prefix);
  for (const key of keys) {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const target = join(dir, key);
    await mkdir(dirname(target), { recursive: true });
    if (!out.Body) throw new Error(`s3://${bucket}/${key} has no body`);
    await writeFile(target, await out.Body.transformToByteArray());
  }
  return keys;
}
