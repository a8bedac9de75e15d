import { parseRetryAfter } from '../../../lambda/moonkey/retry-after';

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-26T10:00:00Z');

  it('reads delta-seconds', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 3 ', now)).toBe(3000);
    expect(parseRetryAfter(['0'], now)).toBe(0);
    expect(parseRetryAfter('12', now)).toBe(12_000);
  });

  it('reads an HTTP date relative to now, never negative', () => {
    expect(parseRetryAfter('Thu, 26 Nov 2026 10:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Thu, 26 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(' Thu, 26 Nov 2026 10:00:05 GMT\t', now)).toBe(5000);
  });

  it('ignores a missing or unreadable value', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter([], now)).toBeUndefined();
    expect(parseRetryAfter(['  '], now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('  ', now)).toBeUndefined();
    expect(parseRetryAfter('5s', now)).toBeUndefined();
    expect(parseRetryAfter('soon5', now)).toBeUndefined();
  });
});
