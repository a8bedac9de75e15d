/**
 * AIMD (additive increase, multiplicative decrease) for the number of calls in flight, the way
 * TCP finds a link's capacity: when the API answers 429 the window shrinks by `decreaseFactor`,
 * and every successful call grows it by `1 / window`, so about one more slot per window's worth
 * of successes (one per round trip when the window is full). The window never exceeds `max`
 * (EXPORT_CONCURRENCY) and never drops below `min`; it starts at `max`, so without 429s the
 * controller never changes anything.
 *
 * One decrease per round trip: every call takes a ticket (the current epoch) when it starts; a
 * 429 for a call that started before the latest decrease is the same congestion already acted
 * on (those calls were in the air together), so it does not shrink the window again.
 *
 * Pure logic with no clock and no I/O, so it is tested on its own; run/user-export.ts applies
 * `limit` to `apiCalls.concurrency`, p-limit's settable bound.
 */
export interface AdaptiveConcurrencyOptions {
  /** Upper bound and starting window: EXPORT_CONCURRENCY. */
  readonly max: number;
  readonly min?: number;
  /** Window multiplier on a 429 (0 < f < 1). */
  readonly decreaseFactor?: number;
}

/**
 * 0.8 rather than TCP's 0.5: a rate-limited API does not drop calls the way a full router queue
 * does; a 429 is cheap and exact, so a gentle cut keeps the sawtooth between 80% and 100% of what
 * the API allows instead of between 50% and 100%.
 */
export const DEFAULT_DECREASE_FACTOR = 0.8;

export class AdaptiveConcurrency {
  readonly max: number;
  readonly min: number;
  private readonly decreaseFactor: number;
  private window: number;
  private epoch = 0;
  /** How many times the window was cut, for the manifest and the benchmark. */
  decreases = 0;
  /** The smallest limit so far. */
  lowest: number;

  constructor(options: AdaptiveConcurrencyOptions) {
    const min = options.min ?? 1;
    const factor = options.decreaseFactor ?? DEFAULT_DECREASE_FACTOR;
    if (!Number.isInteger(options.max) || options.max < 1)
      throw new RangeError('max must be an integer >= 1');
    if (!Number.isInteger(min) || min < 1 || min > options.max) {
      throw new RangeError('min must be an integer between 1 and max');
    }
    if (!(factor > 0 && factor < 1)) throw new RangeError('decreaseFactor must be between 0 and 1');
    this.max = options.max;
    this.min = min;
    this.decreaseFactor = factor;
    this.window = options.max;
    this.lowest = options.max;
  }

  /** Calls allowed in flight now: the window rounded down, within [min, max]. */
  get limit(): number {
    return Math.min(this.max, Math.max(this.min, Math.floor(this.window)));
  }

  /** Take one when a call starts; hand it back to `onThrottle` if that call is answered 429. */
  ticket(): number {
    return this.epoch;
  }

  /** A call succeeded. Returns true when `limit` changed. */
  onSuccess(): boolean {
    if (this.window >= this.max) return false;
    const before = this.limit;
    this.window = Math.min(this.max, this.window + 1 / this.window);
    return this.limit !== before;
  }

  /** A call that started with `ticket` was answered 429. Returns true when `limit` changed. */
  onThrottle(ticket: number): boolean {
    if (ticket !== this.epoch) return false;
    this.epoch++;
    this.decreases++;
    const before = this.limit;
    this.window = Math.max(this.min, this.window * this.decreaseFactor);
    this.lowest = Math.min(this.lowest, this.limit);
    return this.limit !== before;
  }
}
