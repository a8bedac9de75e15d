// Entry point of the local S3 server's own process (fauxqs exports only an ESM API, no CLI path).
import { startFauxqs } from 'fauxqs';

await startFauxqs({ port: Number(process.env.FAUXQS_PORT), host: '127.0.0.1', logger: false });
