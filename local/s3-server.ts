import { join } from 'node:path';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { type ChildServer, freePort, startChildServer } from './child-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from './dynamodb-local';

export interface S3Server extends ChildServer {
  readonly endpoint: string;
  /** Multipart uploads the server holds open (what S3's ListMultipartUploads would list). */
  openUploads(): Promise<OpenUploadAtServer[]>;
}

export interface OpenUploadAtServer {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
  readonly parts: number;
}

/**
 * fauxqs 2.x (in memory, its own process): multipart uploads with the SDK's default CRC32
 * checksums, abort, delimiter listing and byte-identical reads all behave like S3 here (fauxqs
 * 1.9.2 completed a checksummed multipart upload as an empty object; s3rver corrupts streamed
 * bodies and cannot abort uploads). Known gaps, which the job does not rely on: no
 * ListMultipartUploads (see openUploads below) and no If-None-Match on PutObject. Path-style only,
 * like every local S3. Listens on loopback only (see s3-server-main.mjs).
 */
export async function startS3Server(): Promise<S3Server> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const probe = new S3Client({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    maxAttempts: 1,
  });
  const server = await startChildServer({
    name: 'fauxqs S3',
    command: process.execPath,
    args: [join(__dirname, 's3-server-main.mjs')],
    env: { ...process.env, FAUXQS_PORT: String(port) },
    ready: async () => {
      await probe.send(new ListBucketsCommand({}));
      return true;
    },
  });
  probe.destroy();
  return {
    ...server,
    endpoint,
    async openUploads() {
      const response = await fetch(`${endpoint}/_local/open-uploads`);
      if (!response.ok) throw new Error(`open uploads: HTTP ${response.status}`);
      return (await response.json()) as OpenUploadAtServer[];
    },
  };
}
