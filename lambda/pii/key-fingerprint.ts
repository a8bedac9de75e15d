import { createHmac } from 'node:crypto';

/** A fixed message, so the fingerprint depends on the key alone. */
const FINGERPRINT_MESSAGE = 'moonkey-pii-fingerprint';

/**
 * A short name of the key for manifests: two snapshots with one fingerprint have comparable
 * tokens. An HMAC under the key of a fixed message is a pseudo-random function of the key, so
 * it says nothing about the key (a hash of the key would let anyone test a guessed key), and it
 * can never equal a token of a value (different prefix, different length).
 */
export function keyFingerprint(key: Buffer): string {
  return `hmac-sha256:${createHmac('sha256', key).update(FINGERPRINT_MESSAGE).digest('hex').slice(0, 16)}`;
}
