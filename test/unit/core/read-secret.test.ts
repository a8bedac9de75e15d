import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { SecretFetchError } from '../../../lambda/core/errors';
import { readSecretString } from '../../../lambda/core/read-secret';

const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-AbCdEf';
const secrets = mockClient(SecretsManagerClient);

beforeEach(() => {
  secrets.reset();
});

afterAll(() => {
  secrets.restore();
});

describe('readSecretString', () => {
  it('asks Secrets Manager for the secret and returns its text, on a client of its own when given none', async () => {
    secrets.on(GetSecretValueCommand, { SecretId: secretArn }).resolves({ SecretString: 'sk_live_abc' });

    await expect(readSecretString(secretArn, 'the API key')).resolves.toBe('sk_live_abc');
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: secretArn },
    ]);
  });

  it('uses the client it is given', async () => {
    const send = jest.fn().mockResolvedValue({ SecretString: 'given' });
    const client = { send } as unknown as SecretsManagerClient;

    await expect(readSecretString(secretArn, 'the API key', client)).resolves.toBe('given');
    expect(send).toHaveBeenCalledTimes(1);
    expect(secrets.calls()).toHaveLength(0);
  });

  it('returns undefined for a binary secret, which holds no text', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1, 2, 3]) });

    await expect(readSecretString(secretArn, 'the PII key')).resolves.toBeUndefined();
  });

  it('names what was read, the secret and the SDK error, and keeps the cause', async () => {
    const denied = Object.assign(new Error('User arn:aws:iam::123456789012:user/x is not authorized'), {
      name: 'AccessDeniedException',
    });
    secrets.on(GetSecretValueCommand).rejects(denied);

    const error = await readSecretString(secretArn, 'the PII key').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SecretFetchError);
    expect((error as Error).message).toBe(
      `Reading the PII key from ${secretArn} failed: AccessDeniedException`,
    );
    expect((error as Error).cause).toBe(denied);
  });
});
