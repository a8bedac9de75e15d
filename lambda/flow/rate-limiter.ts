export interface RateLimiter {
  /** Resolves when one more request may start. */
  acquire(signal: AbortSignal): Promise<void>;
}

/** No cap: resolves at once, without allocating a timer. */
export const unlimited: RateLimiter = { acquire: () => Promise.resolve() };

interface Waiter {
  readonly at: number;
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A token bucket kept as one number: the virtual time at which the next request may start.
 * Requests are spaced 1/R apart; a caller that arrives after a quiet spell may use a burst of
 * at most 1% of R (at least 1), so no one-second window exceeds R by more than that.
 *
 * Callers that may go at once pay no timer. Callers that must wait join one FIFO (slots are
 * handed out in increasing time, so FIFO order is time order) served by a single timer armed for
 * the head, and each AbortSignal gets one listener however many callers wait on it: at
 * thousands of requests per second, a timer and an abort listener per request cost more CPU
 * than the request's own bookkeeping.
 */
export function createRateLimiter(
  maxRps: number,
  now: () => number = performance.now.bind(performance),
): RateLimiter {
  const intervalMs = 1000 / maxRps;
  const burstMs = Math.max(1, Math.floor(maxRps * 0.01)) * intervalMs - intervalMs;
  let nextFree = Number.NEGATIVE_INFINITY;
  let queue: Waiter[] = [];
  let head = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watched = new WeakSet<AbortSignal>();

  const release = () => {
    timer = undefined;
    const t = now();
    while (head < queue.length) {
      const waiter = queue[head] as Waiter;
      if (waiter.at > t) break;
      head++;
      waiter.resolve();
    }
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    arm(t);
  };

  const arm = (t: number) => {
    const next = queue[head];
    if (timer === undefined && next !== undefined) timer = setTimeout(release, Math.max(0, next.at - t));
  };

  const watch = (signal: AbortSignal) => {
    if (watched.has(signal)) return;
    watched.add(signal);
    signal.addEventListener(
      'abort',
      () => {
        const waiting = queue.slice(head);
        queue = waiting.filter((w) => w.signal !== signal);
        head = 0;
        for (const w of waiting) if (w.signal === signal) w.reject(signal.reason);
        if (queue.length === 0 && timer !== undefined) {
          clearTimeout(timer);
          timer = undefined;
        }
      },
      { once: true },
    );
  };

  return {
    acquire(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      const t = now();
      const slot = Math.max(nextFree, t - burstMs);
      nextFree = slot + intervalMs;
      if (slot <= t) return Promise.resolve();
      watch(signal);
      return new Promise<void>((resolve, reject) => {
        queue.push({ at: slot, signal, resolve, reject });
        arm(t);
      });
    },
  };
}
