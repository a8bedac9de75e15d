import { createHmac } from 'node:crypto';

/** Marks a value as a token, so no reader mistakes it for the value itself. */
export const TOKEN_PREFIX = 'hmac:';

/**
 * HMAC-SHA256 under the secret key, base64url: the same normalized value gives the same token in
 * every session and every run while the key stays the same, and without the key nobody can
 * compute the token of a guessed value (a plain hash of every phone number is a table lookup).
 * The key is held by the closure only.
 */
export function createTokenizer(key: Buffer): (normalized: string) => string {
  const secret = Buffer.from(key);
  return (normalized) =>
    `${TOKEN_PREFIX}${createHmac('sha256', secret).update(normalized).digest('base64url')}`;
}
