import type { Config } from '../core/config';
import { TooManyFailedUsersError, TooManyRejectedItemsError } from '../core/errors';

/** "12" (a count) or "0.5%" (of the total), as parsed from a *_TOLERANCE variable. */
export type Tolerance = Config['failedUsersTolerance'];

/** The counts a run's tolerances are judged on (a subset of the manifest's counts). */
export interface ToleranceCounts {
  readonly users_processed: number;
  readonly users_failed: number;
  readonly sessions_exported: number;
  readonly items_rejected: number;
}

/** Whether `bad` out of `total` is more than the rule allows. */
export function exceeds(tolerance: Tolerance, bad: number, total: number): boolean {
  const allowed = tolerance.kind === 'count' ? tolerance.value : (total * tolerance.value) / 100;
  return bad > allowed;
}

const rule = (variable: string, tolerance: Tolerance) =>
  `${variable}=${tolerance.value}${tolerance.kind === 'percent' ? '%' : ''}`;

/**
 * The run's two tolerances, judged on its final counts: an error to fail the run with, or
 * undefined when the snapshot may be committed. Failed users are judged against users processed;
 * rejected items against items received (exported + rejected), so a contract change that
 * quarantines most sessions fails the run instead of committing a snapshot that silently lacks them.
 */
export function toleranceError(
  counts: ToleranceCounts,
  tolerances: Pick<Config, 'failedUsersTolerance' | 'rejectedItemsTolerance'>,
): Error | undefined {
  const failed = tolerances.failedUsersTolerance;
  if (exceeds(failed, counts.users_failed, counts.users_processed)) {
    return new TooManyFailedUsersError(
      `${counts.users_failed} of ${counts.users_processed} users failed, more than ${rule('EXPORT_FAILED_USERS_TOLERANCE', failed)} allows; the snapshot was not committed`,
    );
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
