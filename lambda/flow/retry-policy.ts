import { ApiRetryableError, MalformedResponseError, RetriesExhaustedError } from '../core/errors';

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** Resolves after `ms`, or rejects with the signal's reason when the run is aborted first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Exponential backoff with full jitter (uniform in [0, min(max, base * 2^n)]), so a burst of
 * failures does not come back in lockstep. A server's `Retry-After` is a floor, never shortened.
 */
export function backoffDelay(
  policy: RetryPolicy,
  failedAttempts: number,
  retryAfterMs: number | undefined,
  random = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failedAttempts - 1));
  const jitter = Math.floor(random() * ceiling);
  return retryAfterMs === undefined ? jitter : Math.max(retryAfterMs, jitter);
}

const isRetryable = (error: unknown): error is ApiRetryableError | MalformedResponseError =>
  error instanceof ApiRetryableError || error instanceof MalformedResponseError;

/**
 * Runs `operation` until it succeeds, fails with a non-retryable error (thrown as is: 401/403
 * must reach the run at once), or uses up `maxAttempts` (RetriesExhaustedError with the last cause).
 * A malformed body is retried too: a body cut short by a proxy is the common cause.
 */
export async function withRetries<T>(
  operation: () => Promise<T>,
  policy: RetryPolicy,
  signal: AbortSignal,
  onRetry: (error: Error, delayMs: number) => void,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await operation();
    } catch (error) {
      if (!isRetryable(error) || signal.aborted) throw error;
      if (n >= policy.maxAttempts) throw new RetriesExhaustedError(n, { cause: error });
      const delay = backoffDelay(
        policy,
        n,
        error instanceof ApiRetryableError ? error.retryAfterMs : undefined,
      );
      onRetry(error, delay);
      await sleep(delay, signal);
    }
  }
}
