/**
 * One class per failure mode. Messages are written for the operator reading a log line or a
 * manifest: they say what failed and what to do, and never carry the API key or a raw response
 * header (see `redact` in logger.ts for the last line of defence).
 */
export class ExportError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An environment variable is missing or breaks its rule; thrown at cold start. */
export class ConfigError extends ExportError {
  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
  }
}

/** The invocation payload is neither a scheduled event nor an audit request. Nothing is written. */
export class InvalidEventError extends ExportError {
  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
  }
}

/** The API key could not be read from Secrets Manager. */
export class SecretFetchError extends ExportError {}

/** MoonKey answered 401/403: the key is wrong or revoked. Aborts the whole run at once. */
export class ApiAuthError extends ExportError {
  constructor(readonly status: number) {
    super(
      `MoonKey API rejected the API key (HTTP ${status}); the run was aborted so a bad key is not retried for every user. Check MOONKEY_API_KEY / MOONKEY_API_KEY_SECRET_ARN.`,
    );
  }
}

/** A non-retryable HTTP status for one user (4xx other than 401/403/429). */
export class ApiRequestError extends ExportError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A retryable failure (429, 5xx, timeout, connection error) for one attempt. */
export class ApiRetryableError extends ExportError {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The body was not JSON or not a `{ sessions: [...] }` envelope: the call failed. */
export class MalformedResponseError extends ExportError {}

/** A user's retries ran out; `cause` is the last attempt's error. */
export class RetriesExhaustedError extends ExportError {
  constructor(
    readonly attempts: number,
    options: ErrorOptions & { cause: Error },
  ) {
    super(`gave up after ${attempts} attempts: ${options.cause.message}`, options);
  }
}

/** More users failed than EXPORT_FAILED_USERS_TOLERANCE allows; the snapshot is not committed. */
export class TooManyFailedUsersError extends ExportError {}

/** The Lambda deadline was near: the run stopped cleanly instead of being killed mid-write. */
export class DeadlineExceededError extends ExportError {}

/** Writing, completing or cleaning up snapshot objects in S3 failed. */
export class SnapshotWriteError extends ExportError {}

/** Reading the users table failed. */
export class ScanUsersError extends ExportError {}

/** A Work found its run already given up (Abort wrote the failed manifest): it stops writing. */
export class RunAbandonedError extends ExportError {
  override readonly name = 'RunAbandonedError';
}

/** A phase's input is not what the state machine sends (a hand-edited execution input, a drifted definition). */
export class InvalidPhaseInputError extends ExportError {
  override readonly name = 'InvalidPhaseInputError';
}
