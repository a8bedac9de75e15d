import { ConfigError } from '../../../lambda/core/errors';
import { concurrencyShare, rateShare } from '../../../lambda/run/segment-share';
import { thrownBy } from '../../helpers/thrown-by';

const shares = (concurrency: number, segments: number) =>
  Array.from({ length: segments }, (_, segment) => concurrencyShare(concurrency, segment, segments));
const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

describe('concurrencyShare', () => {
  it('gives the remainder to the first segments, so the shares add up to EXPORT_CONCURRENCY exactly', () => {
    expect(shares(6, 4)).toEqual([2, 2, 1, 1]);
    expect(shares(16, 3)).toEqual([6, 5, 5]);
    expect(shares(8, 4)).toEqual([2, 2, 2, 2]);
    expect(shares(5, 1)).toEqual([5]);
    expect(shares(4, 4)).toEqual([1, 1, 1, 1]);
  });

  it('never adds up to more or less than the limit, and never gives a segment nothing', () => {
    for (let concurrency = 1; concurrency <= 64; concurrency++) {
      for (let segments = 1; segments <= Math.min(concurrency, 40); segments++) {
        const each = shares(concurrency, segments);
        expect(sum(each)).toBe(concurrency);
        expect(Math.min(...each)).toBeGreaterThanOrEqual(1);
        expect(Math.max(...each) - Math.min(...each)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('refuses more segments than EXPORT_CONCURRENCY with a ConfigError naming both', () => {
    const error = thrownBy(() => concurrencyShare(2, 3, 4), ConfigError);
    expect(error.message).toContain('the run has 4 segments but EXPORT_CONCURRENCY is 2');
    expect(error.issues).toEqual([
      expect.stringMatching(
        /^EXPORT_SCAN_SEGMENTS: .*raise EXPORT_CONCURRENCY or lower EXPORT_SCAN_SEGMENTS/,
      ),
    ]);
  });
});

describe('rateShare', () => {
  it('splits EXPORT_MAX_RPS evenly: the segments together send at most the limit', () => {
    expect(rateShare(40, 4)).toBe(10);
    expect(rateShare(2, 4)).toBe(0.5);
    for (const [rps, segments] of [
      [10, 3],
      [7.5, 7],
      [1, 40],
    ] as const) {
      expect(rateShare(rps, segments) * segments).toBeLessThanOrEqual(rps + 1e-9);
      expect(rateShare(rps, segments) * segments).toBeGreaterThanOrEqual(rps - 1e-9);
    }
  });
});
