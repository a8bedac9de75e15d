import type { Config } from '../core/config';
import {
  TooManyFailedUsersError,
  TooManyRejectedItemsError,
  TooManyUsersNotFoundError,
} from '../core/errors';

/** "12" (a count) or "0.5%" (of the total), as parsed from a *_TOLERANCE variable. */
export type Tolerance = Config['failedUsersTolerance'];

/** The counts a run's tolerances are judged on (a subset of the manifest's counts). */
export interface ToleranceCounts {
  readonly users_processed: number;
  readonly users_failed: number;
  readonly users_not_found: number;
  readonly sessions_exported: number;
  readonly items_rejected: number;
}

/** Whether `bad` out of `total` is more than the rule allows. */
export function exceeds(tolerance: Tolerance, bad: number, total: number): boolean {
  const allowed = tolerance.kind === 'count' ? tolerance.value : (total * tolerance.value) / 100;
  return bad > allowed;
}

/**
 * Not-found users a percentage tolerance always allows, however few users the run processed.
 *
 * A pure percentage cannot tell a small audit from a misconfiguration: 1 deleted user of 3 is 33%,
 * of 1 is 100%, and an audit of a deleted account is a normal request. A misconfiguration (another
 * app's key, another environment's base URL) makes every user not found, so what tells it apart is
 * a large share of a run that is not tiny. With this floor and the default 50%, any run of more
 * than 10 users in which every user is missing fails, while an audit of up to 10 users always
 * commits (its manifest says how many were not found). A count tolerance is taken as written:
 * `0` still means none.
 */
export const NOT_FOUND_USERS_ALWAYS_ALLOWED = 10;

/** Whether `notFound` of `processed` users is more than the not-found rule allows (see above). */
export function exceedsNotFound(tolerance: Tolerance, notFound: number, processed: number): boolean {
  if (tolerance.kind === 'count') return notFound > tolerance.value;
  return notFound > NOT_FOUND_USERS_ALWAYS_ALLOWED && exceeds(tolerance, notFound, processed);
}

const rule = (variable: string, tolerance: Tolerance) =>
  `${variable}=${tolerance.value}${tolerance.kind === 'percent' ? '%' : ''}`;

/** What a not-found user count above the tolerance means, and where to look. */
export function tooManyUsersNotFound(notFound: number, processed: number | undefined, tolerance: Tolerance) {
  const share = processed === undefined ? `${notFound} users` : `${notFound} of ${processed} users`;
  const floor =
    tolerance.kind === 'percent'
      ? ` (and more than the ${NOT_FOUND_USERS_ALWAYS_ALLOWED} always allowed)`
      : '';
  return new TooManyUsersNotFoundError(
    `${share} answered 404 user_not_found, more than ${rule('EXPORT_NOT_FOUND_USERS_TOLERANCE', tolerance)}${floor} allows; the snapshot was not committed. So many missing users usually means the job asks the wrong app or environment: check MOONKEY_API_URL and the API key (the value of the secret in MOONKEY_API_KEY_SECRET_ARN, or MOONKEY_API_KEY: a key of the app whose users the table holds). If that many users really were deleted, raise EXPORT_NOT_FOUND_USERS_TOLERANCE`,
  );
}

/**
 * The run's tolerances, judged on its final counts: an error to fail the run with, or undefined
 * when the snapshot may be committed. Failed and not-found users are judged against users
 * processed; rejected items against items received (exported + rejected), so a contract change
 * that quarantines most sessions fails the run instead of committing a snapshot that silently
 * lacks them.
 */
export function toleranceError(
  counts: ToleranceCounts,
  tolerances: Pick<Config, 'failedUsersTolerance' | 'rejectedItemsTolerance' | 'notFoundUsersTolerance'>,
): Error | undefined {
  const failed = tolerances.failedUsersTolerance;
  if (exceeds(failed, counts.users_failed, counts.users_processed)) {
    return new TooManyFailedUsersError(
      `${counts.users_failed} of ${counts.users_processed} users failed, more than ${rule('EXPORT_FAILED_USERS_TOLERANCE', failed)} allows; the snapshot was not committed`,
    );
  }
  const notFound = tolerances.notFoundUsersTolerance;
  if (exceedsNotFound(notFound, counts.users_not_found, counts.users_processed)) {
    return tooManyUsersNotFound(counts.users_not_found, counts.users_processed, notFound);
  }
  const rejected = tolerances.rejectedItemsTolerance;
  const items = counts.sessions_exported + counts.items_rejected;
  if (exceeds(rejected, counts.items_rejected, items)) {
    return new TooManyRejectedItemsError(
      `${counts.items_rejected} of ${items} session items were rejected as invalid, more than ${rule('EXPORT_REJECTED_ITEMS_TOLERANCE', rejected)} allows; the snapshot was not committed`,
    );
  }
  return undefined;
}
