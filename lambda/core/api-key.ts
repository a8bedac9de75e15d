import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ApiKeySource } from './config';
import { SecretFetchError } from './errors';
import { readSecretString } from './read-secret';

/**
 * The API key, from the environment or from Secrets Manager (once per cold start). A secret may
 * hold the bare key or a JSON object with an `apiKey` (or `api_key`) field, the two shapes the
 * console makes easy. Errors name the secret, never its value.
 */
export async function resolveApiKey(source: ApiKeySource, client?: SecretsManagerClient): Promise<string> {
  if (source.kind === 'value') return source.value;
  const secret = await readSecretString(source.secretArn, 'the API key', client);
  const key = secret === undefined ? undefined : keyFromSecretString(secret);
  if (!key) {
    throw new SecretFetchError(
      `Secret ${source.secretArn} holds no API key: set its value to the key, or to {"apiKey": "<key>"}`,
    );
  }
  return key;
}

function keyFromSecretString(secret: string): string | undefined {
  const trimmed = secret.trim();
  if (!trimmed.startsWith('{')) return trimmed || undefined;
  try {
    const parsed = JSON.parse(trimmed) as Record<string, unknown>;
    const key = parsed.apiKey ?? parsed.api_key;
    return typeof key === 'string' && key.trim() ? key.trim() : undefined;
  } catch {
    return undefined;
  }
}
