import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createRateLimiter } from '../../../lambda/flow/rate-limiter';

/** Runs `count` callers through a rate limiter on jest's fake clock; returns when each one started. */
async function startTimes(maxRps: number, count: number, runForMs: number): Promise<number[]> {
  jest.useFakeTimers({ now: 0 });
  try {
    const rateLimiter = createRateLimiter(maxRps, () => Date.now());
    const signal = new AbortController().signal;
    const started: number[] = [];
    const pending = Array.from({ length: count }, () =>
      rateLimiter.acquire(signal).then(() => started.push(Date.now())),
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

  it('lets a burst of 1% of R start at once after a quiet spell, then spaces the rest 1/R apart', async () => {
    // R = 1000/s: ten may go at once, then one per millisecond.
    expect(await startTimes(1000, 15, 100)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
  });

  it('does not catch up in a burst after the event loop stalls', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      const rateLimiter = createRateLimiter(10, () => Date.now());
      const signal = new AbortController().signal;
      const started: number[] = [];
      const pending = Array.from({ length: 12 }, () =>
        rateLimiter.acquire(signal).then(() => started.push(Date.now())),
      );
      await jest.advanceTimersByTimeAsync(250);
      // The process stalls for 700 ms (GC, a CPU-bound neighbour): no timer fires meanwhile.
      jest.setSystemTime(950);
      await jest.advanceTimersByTimeAsync(2000);
      await Promise.all(pending);

      // Three went on time; the timer due at 300 fires at 1000: from there one at a time again,
      // 100 ms apart, not the eight that waited through the stall at once.
      expect(started).toEqual([0, 100, 200, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('serves the callers already waiting before a newcomer, even when a late timer left slots free', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      const rateLimiter = createRateLimiter(10, () => Date.now());
      const signal = new AbortController().signal;
      const order: string[] = [];
      const pending = ['w0', 'w1', 'w2'].map((name) =>
        rateLimiter.acquire(signal).then(() => order.push(name)),
      );
      await jest.advanceTimersByTimeAsync(0);
      // The timer due at 100 has not fired yet when the clock reads 500 (a stall).
      jest.setSystemTime(500);
      pending.push(rateLimiter.acquire(signal).then(() => order.push('newcomer')));
      await jest.advanceTimersByTimeAsync(1000);
      await Promise.all(pending);

      expect(order).toEqual(['w0', 'w1', 'w2', 'newcomer']);
    } finally {
      jest.useRealTimers();
    }
  });

  it('releases every waiter a late timer finds due and stops at the end of the queue', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      // R = 1000/s: a burst of ten. Eleven callers: one waits; the timer fires after a stall,
      // with room for more than the one waiting.
      const rateLimiter = createRateLimiter(1000, () => Date.now());
      const signal = new AbortController().signal;
      const started: number[] = [];
      const pending = Array.from({ length: 11 }, () =>
        rateLimiter.acquire(signal).then(() => started.push(Date.now())),
      );
      await jest.advanceTimersByTimeAsync(0);
      jest.setSystemTime(50);
      await jest.advanceTimersByTimeAsync(10);
      await Promise.all(pending);

      expect(started).toHaveLength(11);
      expect(started.at(-1)).toBeGreaterThanOrEqual(50);
    } finally {
      jest.useRealTimers();
    }
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

describe('createRateLimiter: memory', () => {
  it('lets go of the callers it has released while the run goes on', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    jest.useFakeTimers({ now: 0 });
    try {
      // R = 1000/s: a burst of ten, then one per millisecond. 1,100 callers wait in one queue:
      // more than the 1,024 released callers the limiter lets pile up, and drained whole.
      const limiter = createRateLimiter(1000, () => Date.now());
      const signal = new AbortController().signal;
      // In a function of its own, so no frame of this test refers to the callers' promises.
      const queued = () => {
        const calls = Array.from({ length: 1100 }, () => limiter.acquire(signal));
        return {
          early: new WeakRef(calls[20] as Promise<void>),
          all: Promise.all(calls).then(() => undefined),
        };
      };
      const { early, all } = queued();

      await jest.advanceTimersByTimeAsync(2000);
      await all;
      gc();

      // The signal is live and the limiter still in use; an early caller released long ago is not kept.
      expect(signal.aborted).toBe(false);
      expect(early.deref()).toBeUndefined();
      await expect(limiter.acquire(signal)).resolves.toBeUndefined();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('createRateLimiter and a run abort', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('refuses a caller whose run is already aborted', async () => {
    const rateLimiter = createRateLimiter(10);
    const controller = new AbortController();
    const reason = new Error('run aborted');
    controller.abort(reason);

    await expect(rateLimiter.acquire(controller.signal)).rejects.toBe(reason);
  });

  it('rejects the waiting callers of an aborted run at once, keeps the others and clears its timer', async () => {
    jest.useFakeTimers({ now: 0 });
    const rateLimiter = createRateLimiter(10, () => Date.now());
    const aborted = new AbortController();
    const other = new AbortController();
    const reason = new Error('run aborted');
    const outcome: string[] = [];
    const track = (name: string, p: Promise<void>) =>
      p.then(
        () => outcome.push(`${name} started at ${Date.now()}`),
        (error: unknown) =>
          outcome.push(`${name} ${error === reason ? 'aborted' : 'failed'} at ${Date.now()}`),
      );
    const first = track('a0', rateLimiter.acquire(aborted.signal));
    const waiting = [1, 2, 3].map((i) => track(`a${i}`, rateLimiter.acquire(aborted.signal)));
    void track('b', rateLimiter.acquire(other.signal));
    // One abort listener per signal, however many of its callers wait.
    expect(getEventListeners(aborted.signal, 'abort')).toHaveLength(1);

    await jest.advanceTimersByTimeAsync(150);
    aborted.abort(reason);
    await jest.advanceTimersByTimeAsync(0);
    await Promise.all([first, ...waiting]);
    expect(outcome).toEqual([
      'a0 started at 0',
      'a1 started at 100',
      'a2 aborted at 150',
      'a3 aborted at 150',
    ]);

    await jest.advanceTimersByTimeAsync(1000);
    // The aborted callers held no slot: the other run's caller takes the next one, at 200 ms.
    expect(outcome).toContain('b started at 200');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('gives the slots of callers already started to no one twice when another run aborts', async () => {
    jest.useFakeTimers({ now: 0 });
    const rateLimiter = createRateLimiter(10, () => Date.now());
    const kept = new AbortController();
    const aborted = new AbortController();
    const started: string[] = [];
    const track = (name: string, p: Promise<void>) =>
      p.then(
        () => started.push(`${name} at ${Date.now()}`),
        () => undefined,
      );
    void track('k0', rateLimiter.acquire(kept.signal));
    void track('k1', rateLimiter.acquire(kept.signal));
    void track('a', rateLimiter.acquire(aborted.signal));
    void track('k2', rateLimiter.acquire(kept.signal));
    await jest.advanceTimersByTimeAsync(150);

    aborted.abort(new Error('stop'));
    await jest.advanceTimersByTimeAsync(1000);

    // k0 and k1 went at 0 and 100; the aborted caller's slot (200) goes to k2, nothing replays k0 or k1.
    expect(started).toEqual(['k0 at 0', 'k1 at 100', 'k2 at 200']);
  });

  it('arms no timer once every waiter of the only run has been aborted', async () => {
    jest.useFakeTimers({ now: 0 });
    const rateLimiter = createRateLimiter(10, () => Date.now());
    const controller = new AbortController();
    const pending = [0, 1, 2].map(() => rateLimiter.acquire(controller.signal).catch(() => 'aborted'));
    expect(jest.getTimerCount()).toBe(1);

    controller.abort(new Error('stop'));

    expect(await Promise.all(pending)).toEqual([undefined, 'aborted', 'aborted']);
    expect(jest.getTimerCount()).toBe(0);
  });
});
