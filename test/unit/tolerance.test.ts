import { TooManyFailedUsersError, TooManyRejectedItemsError } from '../../lambda/core/errors';
import { exceeds, toleranceError } from '../../lambda/run/tolerance';

const counts = { users_processed: 100, users_failed: 0, sessions_exported: 990, items_rejected: 10 };
const defaults = {
  failedUsersTolerance: { kind: 'count', value: 0 },
  rejectedItemsTolerance: { kind: 'percent', value: 1 },
} as const;

describe('exceeds', () => {
  it('allows up to the count, and up to the percentage of the total', () => {
    expect(exceeds({ kind: 'count', value: 2 }, 2, 10)).toBe(false);
    expect(exceeds({ kind: 'count', value: 2 }, 3, 10)).toBe(true);
    expect(exceeds({ kind: 'percent', value: 1 }, 1, 100)).toBe(false);
    expect(exceeds({ kind: 'percent', value: 1 }, 2, 100)).toBe(true);
    expect(exceeds({ kind: 'percent', value: 0 }, 0, 0)).toBe(false);
  });
});

describe('toleranceError', () => {
  it('passes a run within both tolerances', () => {
    expect(toleranceError(counts, defaults)).toBeUndefined();
  });

  it('fails a run with more failed users than allowed', () => {
    const error = toleranceError({ ...counts, users_failed: 1 }, defaults);

    expect(error).toBeInstanceOf(TooManyFailedUsersError);
    expect(error?.message).toBe(
      '1 of 100 users failed, more than EXPORT_FAILED_USERS_TOLERANCE=0 allows; the snapshot was not committed',
    );
  });

  it('fails a run whose rejected items pass the default 1% of items received', () => {
    const error = toleranceError({ ...counts, sessions_exported: 989, items_rejected: 11 }, defaults);

    expect(error).toBeInstanceOf(TooManyRejectedItemsError);
    expect(error?.message).toBe(
      '11 of 1000 session items were rejected as invalid, more than EXPORT_REJECTED_ITEMS_TOLERANCE=1% allows; the snapshot was not committed',
    );
  });

  it('fails a run whose every item was rejected, as a contract change would', () => {
    expect(toleranceError({ ...counts, sessions_exported: 0, items_rejected: 515 }, defaults)).toBeInstanceOf(
      TooManyRejectedItemsError,
    );
  });

  it('reads a count tolerance for rejected items as a number of items', () => {
    const tolerances = { ...defaults, rejectedItemsTolerance: { kind: 'count', value: 10 } } as const;

    expect(toleranceError(counts, tolerances)).toBeUndefined();
    expect(toleranceError({ ...counts, items_rejected: 11 }, tolerances)?.message).toContain(
      'EXPORT_REJECTED_ITEMS_TOLERANCE=10 allows',
    );
  });
});
