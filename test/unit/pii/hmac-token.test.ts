import { createHmac } from 'node:crypto';
import { createTokenizer, TOKEN_PREFIX } from '../../../lambda/pii/hmac-token';

const KEY = Buffer.from('k'.repeat(32));
const OTHER_KEY = Buffer.from('o'.repeat(32));

describe('createTokenizer', () => {
  it('gives HMAC-SHA256 under the key, base64url, behind the token prefix', () => {
    const expected = createHmac('sha256', KEY).update('+14152222222').digest('base64url');
    expect(createTokenizer(KEY)('+14152222222')).toBe(`hmac:${expected}`);
    expect(TOKEN_PREFIX).toBe('hmac:');
  });

  it('gives the same token for a value every time, and different tokens for different values', () => {
    const a = createTokenizer(KEY);
    const b = createTokenizer(Buffer.from(KEY));
    expect(a('alice@example.com')).toBe(b('alice@example.com'));
    expect(a('alice@example.com')).not.toBe(a('bob@example.com'));
  });

  it('gives different tokens under another key', () => {
    expect(createTokenizer(KEY)('alice@example.com')).not.toBe(
      createTokenizer(OTHER_KEY)('alice@example.com'),
    );
  });

  it('holds its own copy of the key: zeroing the caller buffer changes nothing', () => {
    const key = Buffer.from(KEY);
    const tokenize = createTokenizer(key);
    const before = tokenize('x');
    key.fill(0);
    expect(tokenize('x')).toBe(before);
  });
});
