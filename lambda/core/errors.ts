/**
 * One class per failure mode. Messages are written for the operator reading a log line or a
 * manifest: they say what failed and what to do, and never carry the API key or a raw response
 * header (see `redactSecrets` in moonkey/redact-secrets.ts).
 *
 * Every class spells its `name` out literally: the manifest's `error.type` and each failed
 * user's `error_type` are read from it, and the deployed bundle is minified, which renames
 * classes (`new.target.name` reads `t` there). test/unit/core/error-names.test.ts checks it on a
 * minified build.
 */
export class ExportError extends Error {
  override name = 'ExportError';
}

/** An environment variable is missing or breaks its rule; thrown at cold start. */
export class ConfigError extends ExportError {
  override name = 'ConfigError';

  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
  }
}

/** The invocation payload is neither a scheduled event nor an audit request. Nothing is written. */
export class InvalidEventError extends ExportError {
  override name = 'InvalidEventError';

  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
  }
}

/** The API key could not be read from Secrets Manager. */
export class SecretFetchError extends ExportError {
  override name = 'SecretFetchError';
}

/** MoonKey answered 401/403: the key is wrong or revoked. Aborts the whole run at once. */
export class ApiAuthError extends ExportError {
  override name = 'ApiAuthError';

  constructor(readonly status: number) {
    super(
      `MoonKey API rejected the API key (HTTP ${status}); the run was aborted so a bad key is not retried for every user. Check MOONKEY_API_KEY / MOONKEY_API_KEY_SECRET_ARN.`,
    );
  }
}

/** A non-retryable HTTP status for one user (4xx other than 401/403/429). */
export class ApiRequestError extends ExportError {
  override name = 'ApiRequestError';

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A retryable failure (429, 5xx, timeout, connection error) for one attempt. */
export class ApiRetryableError extends ExportError {
  override name = 'ApiRetryableError';

  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * HTTP 429: retried like any retryable error, and also the signal adaptive concurrency
 * (AIMD) shrinks its window on; a 5xx or a timeout says nothing about our rate.
 */
export class ApiThrottledError extends ApiRetryableError {
  override name = 'ApiThrottledError';

  constructor(retryAfterMs: number | undefined) {
    super('HTTP 429', retryAfterMs);
  }
}

/**
 * One attempt ran longer than EXPORT_REQUEST_TOTAL_TIMEOUT_MS from dispatch to the body's end
 * (a body trickling in slowly never trips the idle timeout). Retried like any timeout.
 */
export class ApiRequestTimeoutError extends ApiRetryableError {
  override name = 'ApiRequestTimeoutError';
}

/**
 * The response was larger than EXPORT_MAX_RESPONSE_BYTES. Reading stopped at the limit and the
 * connection was closed, so memory never held more. Not retried: the next answer would be as big.
 */
export class ResponseTooLargeError extends ExportError {
  override name = 'ResponseTooLargeError';

  constructor(
    readonly limitBytes: number,
    message: string,
  ) {
    super(message);
  }
}

/** The body was not JSON or not a `{ sessions: [...] }` envelope: the call failed. */
export class MalformedResponseError extends ExportError {
  override name = 'MalformedResponseError';
}

/** A user's retries ran out; `cause` is the last attempt's error. */
export class RetriesExhaustedError extends ExportError {
  override name = 'RetriesExhaustedError';

  constructor(
    readonly attempts: number,
    options: ErrorOptions & { cause: Error },
  ) {
    super(`gave up after ${attempts} attempts: ${options.cause.message}`, options);
  }
}

/** More users failed than EXPORT_FAILED_USERS_TOLERANCE allows; the snapshot is not committed. */
export class TooManyFailedUsersError extends ExportError {
  override name = 'TooManyFailedUsersError';
}

/**
 * More session items were quarantined than EXPORT_REJECTED_ITEMS_TOLERANCE allows (say the API
 * changed a field's shape); the snapshot is not committed rather than silently missing sessions.
 */
export class TooManyRejectedItemsError extends ExportError {
  override name = 'TooManyRejectedItemsError';
}

/**
 * More users answered 404 `user_not_found` than EXPORT_NOT_FOUND_USERS_TOLERANCE allows: the job
 * most likely asks the wrong app or environment (another app's key, another base URL), which
 * looks like mass deletion. The snapshot is not committed, so a scheduled slot is not replaced
 * by a nearly empty one.
 */
export class TooManyUsersNotFoundError extends ExportError {
  override name = 'TooManyUsersNotFoundError';
}

/**
 * The reason a Work's hard stop aborts the calls still in flight with, a quarter of
 * EXPORT_DEADLINE_MARGIN_MS before Lambda's deadline. It fails nothing: those users are handed to
 * the next Work (run/work.ts).
 */
export class DeadlineExceededError extends ExportError {
  override name = 'DeadlineExceededError';
}

/**
 * A Work made no progress in a whole invocation: none of the users handed over to it finished
 * before its hard stop (one call with its retries outlasts an invocation), or not one page of
 * users arrived. Handing over again would loop, so the run fails; the message names the settings.
 */
export class WorkStalledError extends ExportError {
  override name = 'WorkStalledError';
}

/** Writing, completing or cleaning up snapshot objects in S3 failed. */
export class SnapshotWriteError extends ExportError {
  override name = 'SnapshotWriteError';
}

/** One way a completed data file differs from what the run wrote. */
export interface FileDifference {
  readonly field: 'bytes' | 'checksum';
  readonly expected: number | string;
  /** What S3 answered; null when the answer left it out. */
  readonly actual: number | string | null;
}

export interface FileMismatch {
  readonly bucket: string;
  readonly key: string;
  /** The S3 call whose answer showed the difference. */
  readonly source: 'CompleteMultipartUpload' | 'HeadObject';
  readonly differences: readonly FileDifference[];
}

/**
 * A data file, once completed, is not what the run wrote: S3 holds another size, or reports
 * another checksum, than the parts this run uploaded. Found before the commit point, so the run
 * commits nothing and Abort removes what it wrote.
 */
export class SnapshotVerificationError extends SnapshotWriteError {
  override name = 'SnapshotVerificationError';

  constructor(
    message: string,
    readonly mismatch: FileMismatch,
  ) {
    super(message);
  }
}

/** Reading the users table failed. */
export class ScanUsersError extends ExportError {
  override name = 'ScanUsersError';
}

/** A Work found its run already given up (Abort wrote the failed manifest): it stops writing. */
export class RunAbandonedError extends ExportError {
  override name = 'RunAbandonedError';
}

/** A phase's input is not what the state machine sends (a hand-edited execution input, a drifted definition). */
export class InvalidPhaseInputError extends ExportError {
  override name = 'InvalidPhaseInputError';
}
