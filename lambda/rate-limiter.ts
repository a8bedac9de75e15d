import { sleep } from './retry-policy';

export interface RateLimiter {
  /** Resolves when one more request may start. */
  acquire(signal: AbortSignal): Promise<void>;
}

/** No cap: resolves at once, without allocating a timer. */
export const unlimited: RateLimiter = { acquire: () => Promise.resolve() };

/**
 * A token bucket kept as one number: the virtual time at which the next request may start.
 * Requests are spaced 1/R apart; a caller that arrives after a quiet spell may use a burst of
 * at most 1% of R (at least 1), so no one-second window exceeds R by more than that.
 * Callers that may go at once pay no timer, which keeps the limiter cheap at thousands of RPS.
 */
export function createRateLimiter(
  maxRps: number,
  now: () => number = performance.now.bind(performance),
): RateLimiter {
  const intervalMs = 1000 / maxRps;
  const burstMs = Math.max(1, Math.floor(maxRps * 0.01)) * intervalMs - intervalMs;
  let nextFree = Number.NEGATIVE_INFINITY;
  return {
    acquire(signal) {
      const t = now();
      const slot = Math.max(nextFree, t - burstMs);
      nextFree = slot + intervalMs;
      return slot <= t ? Promise.resolve() : sleep(slot - t, signal);
    },
  };
}
