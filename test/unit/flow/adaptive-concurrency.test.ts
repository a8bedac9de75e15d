import { AdaptiveConcurrency, DEFAULT_DECREASE_FACTOR } from '../../../lambda/flow/adaptive-concurrency';

describe('AdaptiveConcurrency (AIMD)', () => {
  it('starts at max and never grows past it, so without 429s nothing changes', () => {
    const aimd = new AdaptiveConcurrency({ max: 64 });
    expect(aimd.limit).toBe(64);
    for (let i = 0; i < 1000; i++) expect(aimd.onSuccess()).toBe(false);
    expect(aimd.limit).toBe(64);
  });

  it('cuts the window by the decrease factor on a 429', () => {
    const aimd = new AdaptiveConcurrency({ max: 100, decreaseFactor: 0.5 });
    expect(aimd.onThrottle(aimd.ticket())).toBe(true);
    expect(aimd.limit).toBe(50);
    expect(aimd.onThrottle(aimd.ticket())).toBe(true);
    expect(aimd.limit).toBe(25);
    expect(aimd.decreases).toBe(2);
  });

  it('cuts once for calls that were in the air together (one decrease per epoch)', () => {
    const aimd = new AdaptiveConcurrency({ max: 100, decreaseFactor: 0.5 });
    const tickets = Array.from({ length: 30 }, () => aimd.ticket());
    for (const ticket of tickets) aimd.onThrottle(ticket);
    expect(aimd.limit).toBe(50);
    expect(aimd.decreases).toBe(1);
    // A call started after the cut that is throttled again cuts again.
    aimd.onThrottle(aimd.ticket());
    expect(aimd.limit).toBe(25);
  });

  it('never drops below min', () => {
    const aimd = new AdaptiveConcurrency({ max: 10, min: 2, decreaseFactor: 0.1 });
    for (let i = 0; i < 10; i++) aimd.onThrottle(aimd.ticket());
    expect(aimd.limit).toBe(2);
    const floor = new AdaptiveConcurrency({ max: 3 });
    for (let i = 0; i < 50; i++) floor.onThrottle(floor.ticket());
    expect(floor.limit).toBe(1);
  });

  it('grows by about one slot per window of successes (additive increase)', () => {
    const aimd = new AdaptiveConcurrency({ max: 100, decreaseFactor: 0.5 });
    aimd.onThrottle(aimd.ticket());
    expect(aimd.limit).toBe(50);
    for (let i = 0; i < 50; i++) aimd.onSuccess();
    expect(aimd.limit).toBe(50); // 50 + 50 × (1/50 … 1/51) lands just under 51
    aimd.onSuccess();
    expect(aimd.limit).toBe(51);
    for (let i = 0; i < 100_000; i++) aimd.onSuccess();
    expect(aimd.limit).toBe(100);
  });

  it('reports whether the integer limit changed, so the caller touches p-limit only then', () => {
    const aimd = new AdaptiveConcurrency({ max: 10, decreaseFactor: 0.5 });
    aimd.onThrottle(aimd.ticket());
    const changes = Array.from({ length: 6 }, () => aimd.onSuccess());
    expect(changes.filter(Boolean).length).toBe(1);
    expect(aimd.limit).toBe(6);
  });

  it('converges on what a rate-limited API allows: a sawtooth between the decrease factor and 100%', () => {
    // Each round trip the API serves at most `capacity` calls; the rest of the window gets 429.
    const capacity = 75;
    const aimd = new AdaptiveConcurrency({ max: 256 });
    const limits: number[] = [];
    for (let round = 0; round < 2000; round++) {
      const window = aimd.limit;
      const tickets = Array.from({ length: window }, () => aimd.ticket());
      tickets.forEach((ticket, i) => {
        if (i < capacity) aimd.onSuccess();
        else aimd.onThrottle(ticket);
      });
      if (round >= 200) limits.push(window);
    }
    const mean = limits.reduce((a, b) => a + b, 0) / limits.length;
    expect(Math.min(...limits)).toBeGreaterThanOrEqual(Math.floor(capacity * DEFAULT_DECREASE_FACTOR) - 1);
    expect(Math.max(...limits)).toBeLessThanOrEqual(capacity + 1);
    expect(mean).toBeGreaterThan(capacity * 0.85);
  });

  it('rejects settings that make no sense', () => {
    expect(() => new AdaptiveConcurrency({ max: 0 })).toThrow(RangeError);
    expect(() => new AdaptiveConcurrency({ max: 10, min: 11 })).toThrow(RangeError);
    expect(() => new AdaptiveConcurrency({ max: 10, decreaseFactor: 1 })).toThrow(RangeError);
    expect(() => new AdaptiveConcurrency({ max: 10, decreaseFactor: 0 })).toThrow(RangeError);
  });

  it('names the setting it refuses, and takes the edges it allows', () => {
    const max = 'max must be an integer >= 1';
    const min = 'min must be an integer between 1 and max';
    const factor = 'decreaseFactor must be between 0 and 1';
    expect(() => new AdaptiveConcurrency({ max: 0, min: 1 })).toThrow(new RangeError(max));
    expect(() => new AdaptiveConcurrency({ max: 2.5 })).toThrow(new RangeError(max));
    expect(() => new AdaptiveConcurrency({ max: 10, min: 0 })).toThrow(new RangeError(min));
    expect(() => new AdaptiveConcurrency({ max: 10, min: 1.5 })).toThrow(new RangeError(min));
    expect(() => new AdaptiveConcurrency({ max: 10, min: 11 })).toThrow(new RangeError(min));
    expect(() => new AdaptiveConcurrency({ max: 10, decreaseFactor: 1.5 })).toThrow(new RangeError(factor));

    expect(new AdaptiveConcurrency({ max: 1 }).limit).toBe(1);
    expect(new AdaptiveConcurrency({ max: 10, min: 10 }).limit).toBe(10);
  });

  it('reports no change for a 429 of calls already acted on, nor for one at the floor', () => {
    const aimd = new AdaptiveConcurrency({ max: 10, min: 5, decreaseFactor: 0.5 });
    const stale = aimd.ticket();
    expect(aimd.onThrottle(stale)).toBe(true);
    expect(aimd.onThrottle(stale)).toBe(false);
    expect(aimd.limit).toBe(5);
    expect(aimd.onThrottle(aimd.ticket())).toBe(false);
    expect(aimd.decreases).toBe(2);
  });

  it('keeps the lowest limit reached, as the benchmark reports it', () => {
    const aimd = new AdaptiveConcurrency({ max: 20, decreaseFactor: 0.5 });
    expect(aimd.lowest).toBe(20);
    aimd.onThrottle(aimd.ticket());
    aimd.onThrottle(aimd.ticket());
    for (let i = 0; i < 10_000; i++) aimd.onSuccess();

    expect(aimd.limit).toBe(20);
    expect(aimd.lowest).toBe(5);
  });
});
