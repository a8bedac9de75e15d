import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { resolveApiKey } from '../../../lambda/core/api-key';
import { SecretFetchError } from '../../../lambda/core/errors';

const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-AbCdEf';
const clientReturning = (result: Promise<{ SecretString?: string }>) =>
  ({ send: jest.fn().mockReturnValue(result) }) as unknown as SecretsManagerClient;

describe('resolveApiKey', () => {
  it('uses MOONKEY_API_KEY as given', async () => {
    await expect(resolveApiKey({ kind: 'value', value: 'sk_1' })).resolves.toBe('sk_1');
  });

  it.each([
    ['a bare key', 'sk_live_abc\n', 'sk_live_abc'],
    ['{"apiKey": ...}', '{"apiKey":"sk_live_abc"}', 'sk_live_abc'],
    ['{"api_key": ...}', '{"api_key":"sk_live_abc"}', 'sk_live_abc'],
    ['a JSON key with spaces around it', '  {"apiKey":" sk_live_abc "}\n', 'sk_live_abc'],
  ])('reads %s from the secret', async (_label, secret, key) => {
    const client = clientReturning(Promise.resolve({ SecretString: secret }));

    await expect(resolveApiKey({ kind: 'secret', secretArn }, client)).resolves.toBe(key);
  });

  it('names the secret, not its value, when the secret holds no key', async () => {
    const client = clientReturning(Promise.resolve({ SecretString: '{"token":"sk_live_abc"}' }));

    const error = await resolveApiKey({ kind: 'secret', secretArn }, client).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SecretFetchError);
    expect((error as Error).message).toContain(secretArn);
    expect((error as Error).message).not.toContain('sk_live_abc');
  });

  it.each([
    ['an empty secret', ''],
    ['only white space', '  \n'],
    ['a blank apiKey', '{"apiKey":"   "}'],
    ['an apiKey that is not a string', '{"apiKey":12345}'],
    ['JSON that does not parse', '{"apiKey":'],
    ['no SecretString at all', undefined],
  ])('refuses a secret holding %s, with what to set', async (_label, secret) => {
    const client = clientReturning(Promise.resolve(secret === undefined ? {} : { SecretString: secret }));

    await expect(resolveApiKey({ kind: 'secret', secretArn }, client)).rejects.toThrow(
      `Secret ${secretArn} holds no API key: set its value to the key, or to {"apiKey": "<key>"}`,
    );
  });

  it('wraps a Secrets Manager failure and keeps the cause', async () => {
    const denied = Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' });
    const client = clientReturning(Promise.reject(denied));

    const error = await resolveApiKey({ kind: 'secret', secretArn }, client).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SecretFetchError);
    expect((error as Error).message).toBe(
      `Reading the API key from ${secretArn} failed: AccessDeniedException`,
    );
    expect((error as Error).cause).toBe(denied);
  });
});
