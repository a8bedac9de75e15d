import { cachedRuntime, type JobRuntime } from '../../../lambda/handlers/job-runtime';

/** A stand-in runtime: only `close` is called by the cache. */
function fakeRuntime(name: string): JobRuntime & { closed: number } {
  const runtime = {
    name,
    closed: 0,
    async close() {
      runtime.closed++;
    },
  };
  return runtime as unknown as JobRuntime & { closed: number };
}

describe('cachedRuntime', () => {
  it('builds the runtime once and hands the same one to every call, concurrent ones included', async () => {
    const create = jest.fn(async () => fakeRuntime('one'));
    const cache = cachedRuntime(create);

    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    const c = await cache.get();

    expect(create).toHaveBeenCalledTimes(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('does not keep a failed build: the next call tries again', async () => {
    const create = jest
      .fn<Promise<JobRuntime>, []>()
      .mockRejectedValueOnce(new Error('Secrets Manager unreachable'))
      .mockResolvedValueOnce(fakeRuntime('second try'));
    const cache = cachedRuntime(create);

    await expect(cache.get()).rejects.toThrow('Secrets Manager unreachable');
    const runtime = await cache.get();

    expect(create).toHaveBeenCalledTimes(2);
    expect(runtime).toMatchObject({ name: 'second try' });
  });

  it('closes the runtime it built, and builds a new one on the next call', async () => {
    const first = fakeRuntime('first');
    const create = jest.fn<Promise<JobRuntime>, []>().mockResolvedValueOnce(first);
    create.mockResolvedValueOnce(fakeRuntime('second'));
    const cache = cachedRuntime(create);
    await cache.get();

    await cache.close();
    const next = await cache.get();

    expect(first.closed).toBe(1);
    expect(next).toMatchObject({ name: 'second' });
    expect(create).toHaveBeenCalledTimes(2);
  });

  it('closes nothing when nothing was built, or when the build failed', async () => {
    const cache = cachedRuntime(async () => {
      throw new Error('no');
    });

    await expect(cache.close()).resolves.toBeUndefined();
    await expect(cache.get()).rejects.toThrow('no');
    await expect(cache.close()).resolves.toBeUndefined();
  });
});
