// Entry point of the local S3 server's own process (fauxqs exports only an ESM API, no CLI path).
// Not `startFauxqs`: fauxqs 1.9.2 listens on "0.0.0.0" whatever `host` says (that option only
// names the host in SQS queue URLs), which would open the server to the whole network. Its
// `buildApp` is the same Fastify app unstarted, so we choose the address ourselves.
import { buildApp } from 'fauxqs';

const app = buildApp({ logger: false });
await app.listen({ port: Number(process.env.FAUXQS_PORT), host: '127.0.0.1' });
