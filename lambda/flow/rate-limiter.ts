export interface RateLimiter {
  /** Resolves when one more request may start. */
  acquire(signal: AbortSignal): Promise<void>;
}

/** No cap: resolves at once, without allocating a timer. */
export const unlimited: RateLimiter = { acquire: () => Promise.resolve() };

interface Waiter {
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * A token bucket kept as one number: the virtual time at which the next request may start.
 * Requests are spaced 1/R apart; a caller that arrives after a quiet spell may use a burst of
 * at most 1% of R (at least 1), so no one-second window exceeds R by more than that.
 *
 * Slots are given out when a caller is released, not when it starts waiting: if the process
 * stalls (a long GC, a CPU-bound neighbour) and the timer fires late, the callers that waited
 * through the stall still go 1/R apart, after at most one burst, instead of all at once.
 *
 * Callers that may go at once pay no timer. Callers that must wait join one FIFO served by a
 * single timer armed for the next slot, and each AbortSignal gets one listener however many
 * callers wait on it: at thousands of requests per second, a timer and an abort listener per
 * request cost more CPU than the request's own bookkeeping.
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

  /** Takes the next slot if it is due at `t`. */
  const take = (t: number): boolean => {
    const slot = Math.max(nextFree, t - burstMs);
    if (slot > t) return false;
    nextFree = slot + intervalMs;
    return true;
  };

  const release = () => {
    timer = undefined;
    const t = now();
    while (head < queue.length && take(t)) (queue[head++] as Waiter).resolve();
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    arm(t);
  };

  const arm = (t: number) => {
    if (timer === undefined && head < queue.length) timer = setTimeout(release, Math.max(0, nextFree - t));
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
      // FIFO: nobody overtakes a caller that is already waiting.
      if (head === queue.length && take(t)) return Promise.resolve();
      watch(signal);
      return new Promise<void>((resolve, reject) => {
        queue.push({ signal, resolve, reject });
        arm(t);
      });
    },
  };
}
