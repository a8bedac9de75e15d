import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { parseConfig } from '../../../lambda/core/config';
import { SecretFetchError } from '../../../lambda/core/errors';
import { cachedRuntime, createJobRuntime, type JobRuntime } from '../../../lambda/handlers/job-runtime';
import type { SessionsClient, SessionsClientOptions } from '../../../lambda/moonkey/sessions-client';
import { keyFingerprint } from '../../../lambda/pii/key-fingerprint';
import { RAW_ONLY } from '../../../lambda/run/pii-copies';
import { captureLogger } from '../../helpers/capture-logger';
import { captureStdout, jsonLines } from '../../helpers/capture-stdout';

/**
 * The sessions client as built, with what it was built from: its pool opens no socket before the
 * first call, so the options it got are the wiring a test can see without a server.
 */
const built: { options: SessionsClientOptions; client: SessionsClient; closed: number }[] = [];
jest.mock('../../../lambda/moonkey/sessions-client', () => {
  const actual = jest.requireActual('../../../lambda/moonkey/sessions-client');
  return {
    ...actual,
    createSessionsClient: (options: SessionsClientOptions) => {
      const client = actual.createSessionsClient(options) as SessionsClient;
      const entry = { options, client, closed: 0 };
      built.push(entry);
      return {
        ...client,
        close: async () => {
          entry.closed++;
          await client.close();
        },
      };
    },
  };
});

const secrets = mockClient(SecretsManagerClient);
const API_SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-api-AbCdEf';
const PII_SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-pii-AbCdEf';
const PII_KEY = 'p'.repeat(40);

const config = (env: Record<string, string> = {}) =>
  parseConfig({
    USERS_TABLE_NAME: 'users',
    EXPORT_BUCKET_NAME: 'exports',
    MOONKEY_API_KEY: 'sk_test_1',
    ...env,
  });

const runtimes: JobRuntime[] = [];
async function runtime(...args: Parameters<typeof createJobRuntime>): Promise<JobRuntime> {
  const rt = await createJobRuntime(...args);
  runtimes.push(rt);
  return rt;
}

beforeEach(() => {
  built.length = 0;
  secrets.reset();
  secrets
    .on(GetSecretValueCommand, { SecretId: API_SECRET })
    .resolves({ SecretString: '{"apiKey":"sk_from_secret"}' });
  secrets.on(GetSecretValueCommand, { SecretId: PII_SECRET }).resolves({ SecretString: PII_KEY });
});

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((rt) => rt.close()));
});

describe('createJobRuntime: the MoonKey client', () => {
  it('gets the API URL, the limits and EXPORT_CONCURRENCY plus four spare connections', async () => {
    const cfg = config({
      EXPORT_CONCURRENCY: '24',
      MOONKEY_API_URL: 'https://moonkey.example.test/api',
      EXPORT_REQUEST_TIMEOUT_MS: '1234',
      EXPORT_REQUEST_TOTAL_TIMEOUT_MS: '5678',
      EXPORT_MAX_RESPONSE_BYTES: '2000000',
    });

    const rt = await runtime(cfg);

    expect(built.map((b) => b.options)).toEqual([
      {
        apiUrl: 'https://moonkey.example.test/api',
        apiKey: 'sk_test_1',
        connections: 28,
        requestTimeoutMs: 1234,
        requestTotalTimeoutMs: 5678,
        maxResponseBytes: 2_000_000,
      },
    ]);
    expect(rt.fetchSessions).toBe(built[0]?.client.fetchSessions);
    expect(rt.config).toBe(cfg);
    expect(secrets.calls()).toHaveLength(0);
  });

  it('reads the API key from MOONKEY_API_KEY_SECRET_ARN once, at build time', async () => {
    const cfg = parseConfig({
      USERS_TABLE_NAME: 'users',
      EXPORT_BUCKET_NAME: 'exports',
      MOONKEY_API_KEY_SECRET_ARN: API_SECRET,
    });

    await runtime(cfg);

    expect(built[0]?.options.apiKey).toBe('sk_from_secret');
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: API_SECRET },
    ]);
  });

  it('fails the build, and builds no client, when the API key cannot be read', async () => {
    secrets
      .on(GetSecretValueCommand, { SecretId: API_SECRET })
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    const cfg = parseConfig({
      USERS_TABLE_NAME: 'users',
      EXPORT_BUCKET_NAME: 'exports',
      MOONKEY_API_KEY_SECRET_ARN: API_SECRET,
    });

    await expect(createJobRuntime(cfg)).rejects.toThrow(SecretFetchError);
    expect(built).toHaveLength(0);
  });
});

describe('createJobRuntime: the PII key', () => {
  it('reads no PII key for raw copies only', async () => {
    const rt = await runtime(config({ EXPORT_COPIES: 'raw' }));

    expect(rt.pii).toBe(RAW_ONLY);
    expect(secrets.calls()).toHaveLength(0);
  });

  it('reads the PII key from its secret when a pseudonymized copy is written, and tokenizes under it', async () => {
    const rt = await runtime(
      config({ EXPORT_COPIES: 'pseudonymized', EXPORT_PII_KEY_SECRET_ARN: PII_SECRET }),
    );

    expect(rt.pii.sessionLine).toBeDefined();
    expect(rt.pii.writesRaw).toBe(false);
    expect(rt.pii.manifestEntry.key_fingerprint).toBe(keyFingerprint(Buffer.from(PII_KEY)));
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: PII_SECRET },
    ]);
  });

  it('uses EXPORT_PII_KEY as given for both copies', async () => {
    const key = 'k'.repeat(32);

    const rt = await runtime(config({ EXPORT_COPIES: 'both', EXPORT_PII_KEY: key }));

    expect(rt.pii.writesRaw).toBe(true);
    expect(rt.pii.manifestEntry.key_fingerprint).toBe(keyFingerprint(Buffer.from(key)));
    expect(secrets.calls()).toHaveLength(0);
  });
});

describe('createJobRuntime: the AWS clients', () => {
  it('addresses S3 path-style when S3_FORCE_PATH_STYLE says so, virtual-host style by default', async () => {
    const pathStyle = await runtime(config({ S3_FORCE_PATH_STYLE: 'true' }));
    const hostStyle = await runtime(config());

    expect(pathStyle.s3.config.forcePathStyle).toBe(true);
    expect(hostStyle.s3.config.forcePathStyle).toBe(false);
  });

  it('retries DynamoDB adaptively, up to EXPORT_DYNAMODB_MAX_ATTEMPTS', async () => {
    const rt = await runtime(config({ EXPORT_DYNAMODB_MAX_ATTEMPTS: '7' }));

    const strategy = await rt.dynamodb.config.retryStrategy();
    expect(strategy).toMatchObject({ mode: 'adaptive' });
    expect(await rt.dynamodb.config.maxAttempts()).toBe(7);
  });
});

describe('createJobRuntime: logs and metrics', () => {
  it('uses the logger and metrics sink it is given', async () => {
    const logger = captureLogger();
    const metrics = jest.fn();

    const rt = await runtime(config(), { logger, metrics });

    expect(rt.logger).toBe(logger);
    expect(rt.metrics).toBe(metrics);
  });

  it('builds its own otherwise: a logger at LOG_LEVEL, metrics in the configured namespace', async () => {
    const rt = await runtime(config({ LOG_LEVEL: 'WARN', METRICS_NAMESPACE: 'ExportTest' }));

    const { output } = await captureStdout(async () => {
      rt.logger.info('below the level');
      rt.logger.warn('at the level');
      rt.metrics({
        usersProcessed: 3,
        usersFailed: 0,
        usersNotFound: 0,
        sessionsExported: 5,
        itemsRejected: 0,
        retries: 0,
        durationSeconds: 1,
      } as never);
    });

    const lines = jsonLines(output);
    expect(lines.map((l) => l.message).filter(Boolean)).toEqual(['at the level']);
    expect(JSON.stringify(lines.find((l) => l._aws))).toContain('"Namespace":"ExportTest"');
  });
});

describe('createJobRuntime: close', () => {
  it('closes the MoonKey client and destroys the S3 and DynamoDB clients', async () => {
    const rt = await createJobRuntime(config());
    const s3 = jest.spyOn(rt.s3, 'destroy');
    const dynamodb = jest.spyOn(rt.dynamodb, 'destroy');

    await rt.close();

    expect(built[0]?.closed).toBe(1);
    expect(s3).toHaveBeenCalledTimes(1);
    expect(dynamodb).toHaveBeenCalledTimes(1);
  });
});

/** A stand-in runtime: only `close` is called by the cache. */
function fakeRuntime(name: string): JobRuntime & { closed: number } {
  const runtime = {
    name,
    closed: 0,
    async close() {
      runtime.closed++;
    },
  };
  return runtime as unknown as JobRuntime & { closed: number };
}

describe('cachedRuntime', () => {
  it('builds the runtime once and hands the same one to every call, concurrent ones included', async () => {
    const create = jest.fn(async () => fakeRuntime('one'));
    const cache = cachedRuntime(create);

    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    const c = await cache.get();

    expect(create).toHaveBeenCalledTimes(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('does not keep a failed build: the next call tries again', async () => {
    const create = jest
      .fn<Promise<JobRuntime>, []>()
      .mockRejectedValueOnce(new Error('Secrets Manager unreachable'))
      .mockResolvedValueOnce(fakeRuntime('second try'));
    const cache = cachedRuntime(create);

    await expect(cache.get()).rejects.toThrow('Secrets Manager unreachable');
    const runtime = await cache.get();

    expect(create).toHaveBeenCalledTimes(2);
    expect(runtime).toMatchObject({ name: 'second try' });
  });

  it('closes the runtime it built, and builds a new one on the next call', async () => {
    const first = fakeRuntime('first');
    const create = jest.fn<Promise<JobRuntime>, []>().mockResolvedValueOnce(first);
    create.mockResolvedValueOnce(fakeRuntime('second'));
    const cache = cachedRuntime(create);
    await cache.get();

    await cache.close();
    const next = await cache.get();

    expect(first.closed).toBe(1);
    expect(next).toMatchObject({ name: 'second' });
    expect(create).toHaveBeenCalledTimes(2);
  });

  it('closes nothing when nothing was built, or when the build failed', async () => {
    const cache = cachedRuntime(async () => {
      throw new Error('no');
    });

    await expect(cache.close()).resolves.toBeUndefined();
    await expect(cache.get()).rejects.toThrow('no');
    await expect(cache.close()).resolves.toBeUndefined();
  });
});
