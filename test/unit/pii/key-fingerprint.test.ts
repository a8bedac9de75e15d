import { createHmac } from 'node:crypto';
import { TOKEN_PREFIX } from '../../../lambda/pii/hmac-token';
import { keyFingerprint } from '../../../lambda/pii/key-fingerprint';

const KEY = Buffer.from('k'.repeat(32));
const OTHER_KEY = Buffer.from('o'.repeat(32));

describe('keyFingerprint', () => {
  it('is a short HMAC of a fixed message: stable per key, different across keys', () => {
    const expected = createHmac('sha256', KEY).update('moonkey-pii-fingerprint').digest('hex').slice(0, 16);
    expect(keyFingerprint(KEY)).toBe(`hmac-sha256:${expected}`);
    expect(keyFingerprint(OTHER_KEY)).not.toBe(keyFingerprint(KEY));
  });

  it('contains nothing of the key and is no token of any value', () => {
    const fingerprint = keyFingerprint(KEY);
    expect(fingerprint).not.toContain(KEY.toString('hex').slice(0, 8));
    expect(fingerprint).not.toContain('kkkk');
    expect(fingerprint.startsWith(TOKEN_PREFIX)).toBe(false);
  });
});
