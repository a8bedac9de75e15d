import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretFetchError } from '../../../lambda/core/errors';
import { resolvePiiKey } from '../../../lambda/core/pii-key';

const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pii-AbCdEf';
const KEY = 'p'.repeat(40);
const clientReturning = (result: Promise<{ SecretString?: string }>) =>
  ({ send: jest.fn().mockReturnValue(result) }) as unknown as SecretsManagerClient;

describe('resolvePiiKey', () => {
  it('uses EXPORT_PII_KEY as its UTF-8 bytes', async () => {
    await expect(resolvePiiKey({ kind: 'value', value: KEY })).resolves.toEqual(Buffer.from(KEY));
  });

  it.each([
    ['a bare key', `${KEY}\n`],
    ['{"key": ...}', JSON.stringify({ key: ` ${KEY} ` })],
  ])('reads %s from the secret', async (_label, secret) => {
    const client = clientReturning(Promise.resolve({ SecretString: secret }));
    await expect(resolvePiiKey({ kind: 'secret', secretArn }, client)).resolves.toEqual(Buffer.from(KEY));
  });

  it.each([
    ['a short key', 'p'.repeat(31)],
    ['JSON without a key', JSON.stringify({ apiKey: KEY })],
    ['a key that is not text', JSON.stringify({ key: 12345 })],
    ['broken JSON', `{"key":"${KEY}"`],
    ['no string', undefined],
  ])('names the secret, not its value, when it holds %s', async (_label, secret) => {
    const client = clientReturning(Promise.resolve({ SecretString: secret }));
    const error = await resolvePiiKey({ kind: 'secret', secretArn }, client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretFetchError);
    expect((error as Error).message).toBe(
      `Secret ${secretArn} holds no PII key of at least 32 characters: set its value to the key, or to {"key": "<key>"}`,
    );
  });

  it('wraps a Secrets Manager failure and keeps the cause', async () => {
    const denied = Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' });
    const error = await resolvePiiKey(
      { kind: 'secret', secretArn },
      clientReturning(Promise.reject(denied)),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretFetchError);
    expect((error as Error).message).toBe(
      `Reading the PII key from ${secretArn} failed: AccessDeniedException`,
    );
    expect((error as Error).cause).toBe(denied);
  });
});
