/**
 * The baseline beside the job in `npm run bench`: the export a user might write first, with
 * `fetch`, no retries, every line held in memory and one gzip + upload at the end.
 * `sequential` awaits one user at a time; otherwise each scan page (DynamoDB's default 1 MB
 * pages, no Limit) is one unbounded `Promise.all`. It validates with the same zod schema so the
 * per-call work is comparable.
 */
import { gzipSync } from 'node:zlib';
import { DynamoDBClient, ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { sessionListItemSchema } from '../lambda/moonkey/session-record';

export interface NaiveOptions {
  readonly sequential: boolean;
  readonly maxUsers: number | undefined;
  readonly env: Record<string, string>;
  readonly scheduledTime: string;
}

export interface NaiveOutcome {
  readonly users: number;
  readonly files: number;
  readonly bytes: number;
  readonly requests: number;
}

export async function runNaive(options: NaiveOptions): Promise<NaiveOutcome> {
  const env = options.env;
  const table = env.USERS_TABLE_NAME as string;
  const url = env.MOONKEY_API_URL as string;
  const headers = { authorization: `Bearer ${env.MOONKEY_API_KEY}` };
  const snapshotAt = Math.floor(Date.parse(options.scheduledTime) / 1000);
  const ddb = new DynamoDBClient({});
  const s3 = new S3Client({ forcePathStyle: true });
  const lines: string[] = [];
  let users = 0;

  const fetchUser = async (userId: string): Promise<void> => {
    const res = await fetch(`${url}/v1/auth/sessions/list?user_id=${encodeURIComponent(userId)}`, {
      headers,
    });
    if (!res.ok) throw new Error(`HTTP ${res.status} for ${userId}`);
    const body = (await res.json()) as { sessions: unknown[] };
    for (const item of body.sessions) {
      const session = sessionListItemSchema.parse(item);
      lines.push(JSON.stringify({ ...session, snapshot_id: 'naive', snapshot_at: snapshotAt }));
    }
  };

  let startKey: ScanCommandOutput['LastEvaluatedKey'];
  do {
    const page = await ddb.send(new ScanCommand({ TableName: table, ExclusiveStartKey: startKey }));
    let ids = (page.Items ?? []).map((item) => item.user_id?.S ?? '');
    if (options.maxUsers !== undefined) ids = ids.slice(0, options.maxUsers - users);
    if (options.sequential) {
      for (const id of ids) await fetchUser(id);
    } else {
      await Promise.all(ids.map(fetchUser));
    }
    users += ids.length;
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined && (options.maxUsers === undefined || users < options.maxUsers));

  const body = gzipSync(`${lines.join('\n')}\n`);
  // lib-storage's Upload (multipart above 5 MB): the local S3 server refuses one large PutObject.
  await new Upload({
    client: s3,
    params: {
      Bucket: env.EXPORT_BUCKET_NAME,
      Key: `${env.EXPORT_PREFIX}/naive/sessions.ndjson.gz`,
      Body: body,
    },
  }).done();
  ddb.destroy();
  s3.destroy();
  return { users, files: 1, bytes: body.length, requests: users };
}
