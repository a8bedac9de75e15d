import { createRateLimiter } from '../../lambda/flow/rate-limiter';

/** Runs `count` callers through a limiter on jest's fake clock; returns when each one started. */
async function startTimes(maxRps: number, count: number, runForMs: number): Promise<number[]> {
  jest.useFakeTimers({ now: 0 });
  try {
    const limiter = createRateLimiter(maxRps, () => Date.now());
    const signal = new AbortController().signal;
    const started: number[] = [];
    const pending = Array.from({ length: count }, () =>
      limiter.acquire(signal).then(() => started.push(Date.now())),
    );
    await jest.advanceTimersByTimeAsync(runForMs);
    await Promise.all(pending);
    return started;
  } finally {
    jest.useRealTimers();
  }
}

describe('createRateLimiter', () => {
  it('spaces requests 1/R apart once the burst allowance is used', async () => {
    // R = 10/s: the burst is max(1, 1% of R) = 1, then one every 100 ms.
    expect(await startTimes(10, 5, 1000)).toEqual([0, 100, 200, 300, 400]);
  });

  it('allows at most R plus a 1% burst in any one-second window, however many callers', async () => {
    const started = await startTimes(1000, 5000, 6000);

    let worst = 0;
    for (let from = 0; from < 5000; from += 10) {
      worst = Math.max(worst, started.filter((t) => t >= from && t < from + 1000).length);
    }
    expect(worst).toBeLessThanOrEqual(1000 * 1.01);
    expect(worst).toBeGreaterThanOrEqual(990);
  });
});
