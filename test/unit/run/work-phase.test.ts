import type { FetchSessions } from '../../../lambda/moonkey/sessions-client';
import type { PlanOutput, SliceState, WorkOutput } from '../../../lambda/run/phase-payloads';
import { planPhase } from '../../../lambda/run/plan-phase';
import type { WorkStep } from '../../../lambda/run/run-store';
import { type WorkOptions, workPhase } from '../../../lambda/run/work-phase';
import { type MemoryContext, memoryContext, moonkeyAnswer, runPlan } from '../../helpers/memory-context';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `user_${String(i).padStart(5, '0')}`);
const audit = (userIds: string[]) => runPlan({ trigger: 'audit', users: { kind: 'list', userIds } });

/** Every call the fake MoonKey got, in order; `hold` keeps a call open until its Work aborts it. */
function moonkey(hold: (userId: string) => boolean = () => false): {
  calls: string[];
  fetchSessions: FetchSessions;
} {
  const calls: string[] = [];
  return {
    calls,
    fetchSessions: async (userId, signal) => {
      calls.push(userId);
      if (hold(userId)) {
        await new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        );
      }
      return moonkeyAnswer({ sessions: [] });
    },
  };
}

const firstSlice = (plan: PlanOutput): SliceState => ({
  ...(plan.segments[0] as SliceState),
  cursor: null,
  step: 0,
  tail: null,
});

/** All the time it needs, unless a test says otherwise. */
const options = (overrides: Partial<WorkOptions> = {}): WorkOptions => ({
  invocationId: 'inv-0',
  stopAt: Date.now() + 600_000,
  hardStopAt: Date.now() + 600_000,
  ...overrides,
});

const stepAt = (ctx: MemoryContext, key: string | null) =>
  JSON.parse(ctx.memory.objects.get(key as string) as string) as WorkStep;

describe('workPhase: one step', () => {
  it("saves the step's result under its invocation and hands the next Work the segment's place", async () => {
    const api = moonkey();
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' }, { fetchSessions: api.fetchSessions });
    const plan = await planPhase(ctx, audit(ids(3)));

    const out = await workPhase(
      ctx,
      plan.run,
      firstSlice(plan),
      options({ invocationId: 'AB-cd-EF-12-34-56-78' }),
    );

    expect(out).toEqual({
      run: plan.run,
      slice: {
        segment: 0,
        totalSegments: 1,
        cursor: null,
        step: 1,
        tail: expect.stringMatching(/-abcdef123456\.json$/),
      },
      done: true,
    });
    expect(stepAt(ctx, out.slice.tail)).toMatchObject({
      prev: null,
      segment: 0,
      step: 0,
      invocation: 'abcdef123456',
      counts: expect.objectContaining({ users_processed: 3 }),
      failedUsers: [],
      pending: [],
      next: null,
    });
    expect(api.calls).toEqual(ids(3));
  });

  it("names the step 'local' for an invocation id with no letter or digit", async () => {
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' }, { fetchSessions: moonkey().fetchSessions });
    const plan = await planPhase(ctx, audit(ids(1)));

    const out = await workPhase(ctx, plan.run, firstSlice(plan), options({ invocationId: '--//--' }));

    expect(out.slice.tail).toMatch(/-local\.json$/);
    expect(stepAt(ctx, out.slice.tail).invocation).toBe('local');
  });

  it('goes on where the previous step stopped at its deadline, each user called once', async () => {
    const api = moonkey();
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' }, { fetchSessions: api.fetchSessions });
    const plan = await planPhase(ctx, audit(ids(1_200)));

    const outs: WorkOutput[] = [];
    let slice = firstSlice(plan);
    for (let i = 0; i < 3; i++) {
      const out = await workPhase(
        ctx,
        plan.run,
        slice,
        options({ invocationId: `inv-${i}`, stopAt: Date.now() - 1 }),
      );
      outs.push(out);
      slice = out.slice;
    }

    // A listed audit goes in chunks of 500 users; a late Work takes one.
    expect(outs.map((o) => o.done)).toEqual([false, false, true]);
    expect(outs.map((o) => o.slice.cursor)).toEqual([
      JSON.stringify({ kind: 'list', offset: 500 }),
      JSON.stringify({ kind: 'list', offset: 1000 }),
      null,
    ]);
    expect(stepAt(ctx, outs[1]?.slice.tail ?? null)).toMatchObject({ prev: outs[0]?.slice.tail, step: 1 });
    expect(api.calls).toEqual(ids(1_200));
  });
});

describe('workPhase: users handed over', () => {
  it('starts with the users the previous step handed over at its hard stop, then goes on after them', async () => {
    let holding = true;
    const api = moonkey(() => holding);
    const ctx = memoryContext({ EXPORT_SCAN_SEGMENTS: '1' }, { fetchSessions: api.fetchSessions });
    const plan = await planPhase(ctx, audit(ids(1_200)));
    const now = Date.now();

    const first = await workPhase(
      ctx,
      plan.run,
      firstSlice(plan),
      options({ stopAt: now - 1, hardStopAt: now }),
    );
    const handedOver = stepAt(ctx, first.slice.tail).pending;
    holding = false;
    api.calls.length = 0;
    const second = await workPhase(ctx, plan.run, first.slice, options({ invocationId: 'inv-1' }));

    expect(first.done).toBe(false);
    expect(JSON.parse(first.slice.cursor as string)).toEqual({
      kind: 'handover',
      users: handedOver.length,
      after: { kind: 'list', offset: 500 },
    });
    expect(handedOver.length).toBeGreaterThan(0);
    expect(api.calls.slice(0, handedOver.length).sort()).toEqual([...handedOver].sort());
    expect(second).toMatchObject({ done: true, slice: { step: 2, cursor: null } });
    expect(stepAt(ctx, second.slice.tail)).toMatchObject({
      prev: first.slice.tail,
      pending: [],
      counts: expect.objectContaining({ users_processed: handedOver.length + 700 }),
    });
    expect(new Set(api.calls)).toEqual(new Set([...handedOver, ...ids(1_200).slice(500)]));
  });
});
