/**
 * Backpressure on the walk. `outstanding` counts users started and not finished (calling,
 * queued for a slot, or backing off before a retry), capped at maxOutstanding; and a user
 * starts only when fewer than `concurrency + FEED_AHEAD` attempts want a slot. Users start
 * just in time: one waiting in a long p-limit queue carries a dozen promises and closures
 * that outlive young-generation GCs; the scan's read-ahead (scan-users.ts) keeps the next ids
 * ready as plain strings instead. Checked synchronously so a user with room costs no await.
 */
export class Admission {
  /** Users started beyond the concurrency limit, so a freed slot is refilled from p-limit's queue at once. */
  static readonly FEED_AHEAD = 16;
  private outstanding = 0;
  /** Attempts handed to `apiCalls` (the p-limit function) and not finished: running or queued. */
  private wanting = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];

  /**
   * @param maxOutstanding ids waiting beyond those in flight: enough to keep every slot busy
   *   between scan pages, small enough that memory does not grow with the table.
   * @param concurrency the current limit (it moves under adaptive concurrency).
   */
  constructor(
    private readonly maxOutstanding: number,
    private readonly concurrency: () => number,
  ) {}

  hasRoom(): boolean {
    return this.outstanding < this.maxOutstanding && this.wanting < this.concurrency() + Admission.FEED_AHEAD;
  }

  async roomForOneMore(): Promise<void> {
    while (!this.hasRoom()) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  userStarted(): void {
    this.outstanding++;
  }

  userFinished(): void {
    this.outstanding--;
    this.wake();
    if (this.outstanding === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  attemptQueued(): void {
    this.wanting++;
  }

  attemptFinished(): void {
    this.wanting--;
    this.wake();
  }

  /** Resolves once every started user has finished. */
  async drained(): Promise<void> {
    while (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private wake(): void {
    this.slotWaiters.shift()?.();
  }
}
