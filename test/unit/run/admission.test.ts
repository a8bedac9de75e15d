import { Admission } from '../../../lambda/run/admission';

describe('Admission', () => {
  it('has room until maxOutstanding users are started and unfinished', () => {
    const admission = new Admission(3, () => 100);
    for (let i = 0; i < 3; i++) {
      expect(admission.hasRoom()).toBe(true);
      admission.userStarted();
    }
    expect(admission.hasRoom()).toBe(false);

    admission.userFinished();
    expect(admission.hasRoom()).toBe(true);
  });

  it('has room while fewer than the current concurrency plus FEED_AHEAD attempts want a slot', () => {
    let concurrency = 2;
    const admission = new Admission(1_000, () => concurrency);
    for (let i = 0; i < 2 + Admission.FEED_AHEAD; i++) admission.attemptQueued();
    expect(admission.hasRoom()).toBe(false);

    // The limit moves under adaptive concurrency: room follows it.
    concurrency = 3;
    expect(admission.hasRoom()).toBe(true);
    concurrency = 2;
    admission.attemptFinished();
    expect(admission.hasRoom()).toBe(true);
  });

  it('wakes a user waiting for a slot when an attempt finishes', async () => {
    const admission = new Admission(1_000, () => 1);
    for (let i = 0; i < 1 + Admission.FEED_AHEAD; i++) admission.attemptQueued();
    let admitted = false;
    const waiting = admission.roomForOneMore().then(() => {
      admitted = true;
    });
    await Promise.resolve();
    expect(admitted).toBe(false);

    admission.attemptFinished();
    await waiting;
    expect(admitted).toBe(true);
  });

  it('lets one waiter in per freed place, in order', async () => {
    const admission = new Admission(1, () => 10);
    admission.userStarted();
    const order: number[] = [];
    const first = admission.roomForOneMore().then(() => order.push(1));
    const second = admission.roomForOneMore().then(() => order.push(2));
    await Promise.resolve();
    expect(order).toEqual([]);

    admission.userFinished();
    await first;
    expect(order).toEqual([1]);
    admission.userStarted();
    admission.userFinished();
    await second;
    expect(order).toEqual([1, 2]);
  });

  it('is drained once every started user has finished, at once when none is', async () => {
    const admission = new Admission(10, () => 10);
    await admission.drained();
    admission.userStarted();
    admission.userStarted();
    let drained = false;
    const done = admission.drained().then(() => {
      drained = true;
    });

    admission.userFinished();
    await Promise.resolve();
    expect(drained).toBe(false);
    admission.userFinished();
    await done;
    expect(drained).toBe(true);
  });
});
