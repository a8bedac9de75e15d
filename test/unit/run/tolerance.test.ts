import { parseConfig } from '../../../lambda/core/config';
import {
  TooManyFailedUsersError,
  TooManyRejectedItemsError,
  TooManyUsersNotFoundError,
} from '../../../lambda/core/errors';
import {
  exceeds,
  exceedsNotFound,
  NOT_FOUND_USERS_ALWAYS_ALLOWED,
  toleranceError,
  tooManyUsersNotFound,
} from '../../../lambda/run/tolerance';

const counts = {
  users_processed: 100,
  users_failed: 0,
  users_not_found: 0,
  sessions_exported: 990,
  items_rejected: 10,
};
const defaults = {
  failedUsersTolerance: { kind: 'count', value: 0 },
  rejectedItemsTolerance: { kind: 'percent', value: 1 },
  notFoundUsersTolerance: { kind: 'percent', value: 50 },
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

describe('exceedsNotFound', () => {
  const percent = (value: number) => ({ kind: 'percent', value }) as const;

  it('allows exactly the percentage of users processed, and fails one more', () => {
    expect(exceedsNotFound(percent(50), 500, 1000)).toBe(false);
    expect(exceedsNotFound(percent(50), 501, 1000)).toBe(true);
    expect(exceedsNotFound(percent(1), 30, 3000)).toBe(false);
    expect(exceedsNotFound(percent(1), 31, 3000)).toBe(true);
  });

  it(`always allows ${NOT_FOUND_USERS_ALWAYS_ALLOWED} under a percentage: a small audit with a deleted user commits`, () => {
    expect(exceedsNotFound(percent(50), 1, 3)).toBe(false);
    expect(exceedsNotFound(percent(50), 1, 1)).toBe(false);
    expect(exceedsNotFound(percent(0), NOT_FOUND_USERS_ALWAYS_ALLOWED, NOT_FOUND_USERS_ALWAYS_ALLOWED)).toBe(
      false,
    );
    expect(exceedsNotFound(percent(0), NOT_FOUND_USERS_ALWAYS_ALLOWED + 1, 1000)).toBe(true);
  });

  it('fails any run of more than the floor in which every user is missing, as a wrong app or URL gives', () => {
    for (const users of [NOT_FOUND_USERS_ALWAYS_ALLOWED + 1, 21, 1000, 1_000_000])
      expect(exceedsNotFound(percent(50), users, users)).toBe(true);
  });

  it('takes a count as written, without the floor', () => {
    expect(exceedsNotFound({ kind: 'count', value: 0 }, 0, 3)).toBe(false);
    expect(exceedsNotFound({ kind: 'count', value: 0 }, 1, 3)).toBe(true);
    expect(exceedsNotFound({ kind: 'count', value: 25 }, 25, 25)).toBe(false);
    expect(exceedsNotFound({ kind: 'count', value: 25 }, 26, 1000)).toBe(true);
  });
});

describe('toleranceError for users not found', () => {
  const config = parseConfig({
    USERS_TABLE_NAME: 'users',
    EXPORT_BUCKET_NAME: 'my-exports',
    MOONKEY_API_KEY: 'k',
  });

  it('commits with the default tolerance when 1% of users are gone', () => {
    expect(toleranceError({ ...counts, users_processed: 3000, users_not_found: 30 }, config)).toBeUndefined();
  });

  it('commits at exactly the default 50%, and fails one user above it with what to check', () => {
    expect(
      toleranceError({ ...counts, users_processed: 1000, users_not_found: 500 }, config),
    ).toBeUndefined();

    const error = toleranceError({ ...counts, users_processed: 1000, users_not_found: 501 }, config);

    expect(error).toBeInstanceOf(TooManyUsersNotFoundError);
    expect(error?.message).toBe(
      '501 of 1000 users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=50% (and more than the 10 always allowed) allows; the snapshot was not committed. So many missing users usually means the job asks the wrong app or environment: check MOONKEY_API_URL and the API key (the value of the secret in MOONKEY_API_KEY_SECRET_ARN, or MOONKEY_API_KEY: a key of the app whose users the table holds). If that many users really were deleted, raise EXPORT_NOT_FOUND_USERS_TOLERANCE',
    );
  });

  it('names a count tolerance as written', () => {
    const tolerances = { ...defaults, notFoundUsersTolerance: { kind: 'count', value: 2 } } as const;

    expect(toleranceError({ ...counts, users_not_found: 2 }, tolerances)).toBeUndefined();
    expect(toleranceError({ ...counts, users_not_found: 3 }, tolerances)?.message).toMatch(
      /^3 of 100 users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=2 allows;/,
    );
  });

  it('counts only the not-found users when a Work stops on a count tolerance (it knows no run total)', () => {
    expect(tooManyUsersNotFound(3, undefined, { kind: 'count', value: 2 }).message).toMatch(
      /^3 users answered 404 user_not_found, more than EXPORT_NOT_FOUND_USERS_TOLERANCE=2 allows;/,
    );
  });

  it('reports failed users first when both tolerances are passed', () => {
    expect(toleranceError({ ...counts, users_failed: 1, users_not_found: 100 }, defaults)).toBeInstanceOf(
      TooManyFailedUsersError,
    );
  });
});
