import { emptyCounts, type RunCounts, sumCounts } from '../../../lambda/snapshot/manifest';

describe('sumCounts', () => {
  it('sums every count of the steps, users not found included', () => {
    const step = (users_not_found: number, users_processed: number): RunCounts => ({
      ...emptyCounts(),
      users_not_found,
      users_processed,
    });

    expect(sumCounts([step(2, 100), step(0, 50), step(5, 70)])).toMatchObject({
      users_not_found: 7,
      users_processed: 220,
    });
  });

  it('reads a count a step stored by an older version lacks as 0, not NaN', () => {
    const { users_not_found: _, ...older } = { ...emptyCounts(), users_processed: 10 };

    const total = sumCounts([
      older as RunCounts,
      { ...emptyCounts(), users_not_found: 3, users_processed: 5 },
    ]);

    expect(total.users_not_found).toBe(3);
    expect(total.users_processed).toBe(15);
  });
});
