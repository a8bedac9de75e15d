import { getEventListeners } from 'node:events';
import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  RetriesExhaustedError,
} from '../../../lambda/core/errors';
import { backoffDelay, withRetries } from '../../../lambda/flow/retry-policy';

const policy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 };

describe('backoffDelay', () => {
  it('draws uniformly below an exponentially growing ceiling (full jitter)', () => {
    expect(backoffDelay(policy, 1, undefined, () => 0.999)).toBe(99);
    expect(backoffDelay(policy, 3, undefined, () => 0.5)).toBe(200);
    expect(backoffDelay(policy, 3, undefined, () => 0)).toBe(0);
  });

  it('never exceeds the maximum delay', () => {
    expect(backoffDelay(policy, 20, undefined, () => 0.999)).toBe(999);
  });

  it('treats Retry-After as a floor', () => {
    expect(backoffDelay(policy, 1, 2000, () => 0.5)).toBe(2000);
    expect(backoffDelay(policy, 4, 10, () => 0.5)).toBe(400);
  });
});

describe('withRetries', () => {
  const signal = new AbortController().signal;
  const fast = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 };

  it('retries retryable failures and returns the first success', async () => {
    const operation = jest
      .fn<Promise<string>, []>()
      .mockRejectedValueOnce(new ApiRetryableError('HTTP 503', undefined))
      .mockResolvedValueOnce('ok');
    const onRetry = jest.fn();

    await expect(withRetries(operation, fast, signal, onRetry)).resolves.toBe('ok');
    expect(operation).toHaveBeenCalledTimes(2);
    expect(onRetry).toHaveBeenCalledTimes(1);
  });

  it('does not retry a 401 or a 404', async () => {
    for (const error of [new ApiAuthError(401), new ApiRequestError(404, 'HTTP 404')]) {
      const operation = jest.fn<Promise<string>, []>().mockRejectedValue(error);

      await expect(withRetries(operation, fast, signal, () => {})).rejects.toBe(error);
      expect(operation).toHaveBeenCalledTimes(1);
    }
  });

  it('gives up after maxAttempts with the last error as the cause', async () => {
    const last = new ApiRetryableError('HTTP 502', undefined);
    const operation = jest.fn<Promise<string>, []>().mockRejectedValue(last);

    const error = await withRetries(operation, fast, signal, () => {}).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).cause).toBe(last);
    expect((error as Error).message).toBe('gave up after 3 attempts: HTTP 502');
    expect(operation).toHaveBeenCalledTimes(3);
  });

  it('leaves no abort listener behind on the run signal after a finished backoff sleep', async () => {
    const controller = new AbortController();
    const operation = jest
      .fn<Promise<string>, []>()
      // Retry-After sets a floor, so each backoff really sleeps (a 0 ms draw would not).
      .mockRejectedValueOnce(new ApiRetryableError('HTTP 503', 5))
      .mockRejectedValueOnce(new ApiRetryableError('HTTP 503', 5))
      .mockResolvedValueOnce('ok');
    const delays: number[] = [];

    await expect(
      withRetries(operation, { maxAttempts: 3, baseDelayMs: 2, maxDelayMs: 2 }, controller.signal, (_e, ms) =>
        delays.push(ms),
      ),
    ).resolves.toBe('ok');
    expect(delays).toEqual([5, 5]);

    // One listener per sleep left on a run-long signal would grow with every retry of the run.
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('throws a retryable failure that comes back after the run was aborted, without retrying', async () => {
    const controller = new AbortController();
    const failure = new ApiRetryableError('HTTP 503', undefined);
    const operation = jest.fn<Promise<string>, []>().mockImplementation(async () => {
      controller.abort(new Error('run aborted'));
      throw failure;
    });
    const onRetry = jest.fn();

    await expect(withRetries(operation, fast, controller.signal, onRetry)).rejects.toBe(failure);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(onRetry).not.toHaveBeenCalled();
  });

  it('stops a backoff sleep that has already started when the run is aborted', async () => {
    jest.useFakeTimers();
    try {
      const controller = new AbortController();
      const operation = jest
        .fn<Promise<string>, []>()
        .mockRejectedValue(new ApiRetryableError('HTTP 429', 60_000));
      const reason = new Error('run aborted');
      let outcome: unknown = 'pending';
      const pending = withRetries(operation, { ...fast, maxAttempts: 5 }, controller.signal, () => {});
      pending.catch((error: unknown) => {
        outcome = error;
      });
      await jest.advanceTimersByTimeAsync(1000);
      expect(outcome).toBe('pending');
      expect(jest.getTimerCount()).toBe(1);

      controller.abort(reason);
      await jest.advanceTimersByTimeAsync(0);

      expect(outcome).toBe(reason);
      expect(operation).toHaveBeenCalledTimes(1);
      // The sleep's timer is cleared, not left to fire 59 s later.
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  it('stops waiting as soon as the run is aborted', async () => {
    const controller = new AbortController();
    const operation = jest
      .fn<Promise<string>, []>()
      .mockRejectedValue(new ApiRetryableError('HTTP 429', 60_000));
    const reason = new Error('run aborted');

    const pending = withRetries(operation, { ...fast, maxAttempts: 5 }, controller.signal, () =>
      controller.abort(reason),
    );

    await expect(pending).rejects.toBe(reason);
    expect(operation).toHaveBeenCalledTimes(1);
  });
});
