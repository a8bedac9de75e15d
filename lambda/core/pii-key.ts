import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ApiKeySource } from './config';
import { PII_KEY_MIN_CHARS } from './config';
import { SecretFetchError } from './errors';
import { readSecretString } from './read-secret';

/**
 * The HMAC key of the pseudonymized copy, from EXPORT_PII_KEY or from Secrets Manager (once per
 * cold start). A secret may hold the bare key (what the stack generates) or `{"key": "<key>"}`.
 * The key is the secret text's UTF-8 bytes. Errors name the secret, never its value.
 */
export async function resolvePiiKey(source: ApiKeySource, client?: SecretsManagerClient): Promise<Buffer> {
  if (source.kind === 'value') return Buffer.from(source.value, 'utf8');
  const secret = await readSecretString(source.secretArn, 'the PII key', client);
  const key = secret === undefined ? undefined : keyFromSecretString(secret);
  if (key === undefined || key.length < PII_KEY_MIN_CHARS) {
    throw new SecretFetchError(
      `Secret ${source.secretArn} holds no PII key of at least ${PII_KEY_MIN_CHARS} characters: set its value to the key, or to {"key": "<key>"}`,
    );
  }
  return Buffer.from(key, 'utf8');
}

function keyFromSecretString(secret: string): string | undefined {
  const trimmed = secret.trim();
  if (!trimmed.startsWith('{')) return trimmed;
  try {
    const parsed = JSON.parse(trimmed) as Record<string, unknown>;
    return typeof parsed.key === 'string' ? parsed.key.trim() : undefined;
  } catch {
    return undefined;
  }
}
