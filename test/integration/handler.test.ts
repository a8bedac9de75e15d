/**
 * The Lambda entry point as Lambda calls it: configuration from process.env at cold start, the
 * real clients, the local stack behind them, logs on stdout.
 */

import { ConfigError, InvalidEventError } from '../../lambda/core/errors';
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import { listKeys } from '../../lambda/snapshot/commit-snapshot';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { fakeContext } from '../helpers/lambda-context';
import { useProcessEnv } from '../helpers/stack-env';

const API_KEY = 'sk_live_handler_secret_987';
let stack: LocalStack;
let restoreEnv: () => void = () => {};

/** Everything the process printed while `fn` ran (Powertools Logger and EMF). */
async function captureStdout<T>(
  fn: () => Promise<T>,
): Promise<{ result: T | undefined; error: unknown; output: string }> {
  const chunks: string[] = [];
  const keep = (chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  };
  // Powertools writes WARN/ERROR to stderr; in Lambda both streams land in the same log group.
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(keep),
    jest.spyOn(process.stderr, 'write').mockImplementation(keep),
  ];
  try {
    return { result: await fn(), error: undefined, output: chunks.join('') };
  } catch (error) {
    return { result: undefined, error, output: chunks.join('') };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

beforeAll(async () => {
  stack = await startLocalStack({ api: { apiKey: API_KEY } });
  await createUsersTable(stack.dynamodbClient, 'handler-users');
  await seedUsers(stack.dynamodbClient, 'handler-users', 50);
  restoreEnv = useProcessEnv({
    ...stack.env,
    USERS_TABLE_NAME: 'handler-users',
    EXPORT_PREFIX: 'handler',
    METRICS_ENABLED: 'true',
    LOG_LEVEL: 'INFO',
  });
}, 120_000);

afterEach(async () => {
  await closeRuntime();
});

afterAll(async () => {
  restoreEnv();
  await stack?.stop();
});

describe('handler', () => {
  it('runs a scheduled event to a committed snapshot, logging JSON and EMF metrics without the key', async () => {
    const { result, error, output } = await captureStdout(() =>
      handler(
        { 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2026-11-20T02:00:00Z', detail: {} },
        fakeContext(),
      ),
    );

    expect(error).toBeUndefined();
    expect(result).toMatchObject({
      snapshotId: 'scheduled-20261120T020000Z',
      status: 'committed',
      manifestKey: 'handler/manifests/dt=2026-11-20/scheduled-20261120T020000Z.json',
      counts: { users_processed: 50, users_failed: 0 },
    });
    const lines = output
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'INFO', message: 'snapshot committed' }));
    const emf = lines.filter((line) => '_aws' in line);
    expect(emf.find((line) => 'UsersProcessed' in line)).toMatchObject({
      UsersFailed: 0,
      UsersProcessed: 50,
      service: 'moonkey-session-export',
    });
    // Its own EMF line: only SnapshotCommitted carries the trigger dimension.
    expect(emf.find((line) => 'SnapshotCommitted' in line)).toMatchObject({
      SnapshotCommitted: 1,
      trigger: 'scheduled',
      service: 'moonkey-session-export',
    });
    expect(output).not.toContain(API_KEY);
  });

  it('rejects a payload that is neither kind of event and writes nothing', async () => {
    const before = await listKeys(stack.s3Client, stack.bucket, '');

    const { error, output } = await captureStdout(() =>
      handler({ reason: 'x', userIds: 'user_1' }, fakeContext()),
    );

    expect(error).toBeInstanceOf(InvalidEventError);
    expect(output).toContain('"message":"rejected the invocation payload"');
    expect((error as Error).message).toContain('reason: must be at least 3 characters');
    expect((error as Error).message).toContain('userIds: must be a list of user ids');
    expect(await listKeys(stack.s3Client, stack.bucket, '')).toEqual(before);
  });

  it('fails at cold start on bad configuration, naming the variable and the rule', async () => {
    const restore = useProcessEnv({ EXPORT_CONCURRENCY: 'lots' });
    try {
      const { error } = await captureStdout(() => handler({ reason: 'config check' }, fakeContext()));

      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe('Invalid configuration: EXPORT_CONCURRENCY must be a number');
    } finally {
      restore();
    }
  });

  it('throws the failure after writing a failed manifest, so Lambda counts an error', async () => {
    const restore = useProcessEnv({ MOONKEY_API_KEY: 'sk_live_revoked' });
    try {
      const { error, output } = await captureStdout(() =>
        handler({ reason: 'revoked key drill', userIds: ['user_1'] }, fakeContext()),
      );

      expect((error as Error).name).toBe('ApiAuthError');
      expect(output).toContain('"SnapshotCommitted":0');
      expect(output).not.toContain('sk_live_revoked');
      const manifests = await listKeys(stack.s3Client, stack.bucket, 'handler/manifests/');
      expect(manifests.some((key) => key.includes('/audit-'))).toBe(true);
    } finally {
      restore();
    }
  });
});
