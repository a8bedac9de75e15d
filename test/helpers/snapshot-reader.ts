import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listKeys } from '../../lambda/snapshot/s3-objects';

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

/**
 * What a reader sees: the rule of the Athena view `sessions`, in TypeScript. For each (dt,
 * snapshot_id), the committed manifest with the greatest run_id decides which run_id's lines show.
 * Lines of any other run (failed, superseded, killed mid-commit, still running) are invisible.
 */
export async function readVisibleSessions(
  s3: S3Client,
  bucket: string,
  prefix: string,
  /** `pseudonymized/sessions` for the pseudonymized copy's view. */
  sessionsDir = 'sessions',
): Promise<Record<string, unknown>[]> {
  const winners = new Map<string, string>();
  for (const [key, text] of await readObjects(s3, bucket, `${prefix}/manifests/`)) {
    const manifest = JSON.parse(text) as { snapshot_id: string; run_id: string; status: string };
    const dt = /\/dt=([^/]+)\//.exec(key)?.[1];
    if (manifest.status !== 'committed' || dt === undefined) continue;
    const slot = `${dt}/${manifest.snapshot_id}`;
    const current = winners.get(slot);
    if (current === undefined || manifest.run_id > current) winners.set(slot, manifest.run_id);
  }
  const visible: Record<string, unknown>[] = [];
  for (const [key, text] of await readObjects(s3, bucket, `${prefix}/${sessionsDir}/`)) {
    const dt = /\/dt=([^/]+)\//.exec(key)?.[1];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (winners.get(`${dt}/${String(record.snapshot_id)}`) === record.run_id) visible.push(record);
    }
  }
  return visible;
}
