// Entry point of the local S3 server's own process (fauxqs exports only an ESM API, no CLI path).
// Not `startFauxqs`: fauxqs (2.4.1 as 1.9.2) listens on "0.0.0.0" whatever `host` says (that option only
// names the host in SQS queue URLs), which would open the server to the whole network. Its
// `buildApp` is the same Fastify app unstarted, so we choose the address ourselves.
import { buildApp } from 'fauxqs';

// Our own S3Store instance (the class fauxqs's app uses; not in its exports map, so by file), so
// tests can see what S3 itself would list: the open multipart uploads. fauxqs 2.4.1 does not implement
// ListMultipartUploads, and an open upload is invisible to every other S3 call, so without this a
// test could not tell "aborted" from "left open".
const { S3Store } = await import(new URL('./s3/s3Store.js', import.meta.resolve('fauxqs')).href);
const s3Store = new S3Store();
const app = buildApp({ logger: false, stores: { s3Store } });
// Not an S3 route: "_" cannot start a bucket name, so no S3 request can reach it.
app.get('/_local/open-uploads', async () =>
  [...s3Store.multipartUploads.values()].map(({ bucket, key, uploadId, parts }) => ({
    bucket,
    key,
    uploadId,
    parts: parts.size,
  })),
);
await app.listen({ port: Number(process.env.FAUXQS_PORT), host: '127.0.0.1' });
