import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretFetchError } from './errors';

/**
 * The text of a Secrets Manager secret (once per cold start, by the key readers). `what` names
 * the key in the error ("the API key"); the error names the secret and the SDK's error, never a
 * value.
 */
export async function readSecretString(
  secretArn: string,
  what: string,
  client?: SecretsManagerClient,
): Promise<string | undefined> {
  try {
    const out = await (client ?? new SecretsManagerClient({})).send(
      new GetSecretValueCommand({ SecretId: secretArn }),
    );
    return out.SecretString;
  } catch (error) {
    throw new SecretFetchError(`Reading ${what} from ${secretArn} failed: ${(error as Error).name}`, {
      cause: error,
    });
  }
}
