import { InvalidPhaseInputError } from '../../../lambda/core/errors';
import type { RunPlan } from '../../../lambda/run/run-plan';
import { RunStore, type StoredPlan, type WorkStep } from '../../../lambda/run/run-store';
import { emptyCounts } from '../../../lambda/snapshot/manifest';
import { putJson } from '../../../lambda/snapshot/s3-objects';
import { runPlan } from '../../helpers/memory-context';
import { MemoryS3 } from '../../helpers/memory-s3';

/** A page of user ids as long as a real one (`user_` + 27 characters, EXPORT_SCAN_PAGE_SIZE's default). */
const pageOfIds = Array.from({ length: 1_000 }, (_, i) => `user_${String(i).padStart(27, '0')}`);

function storedPlan(overrides: Partial<RunPlan> = {}): StoredPlan {
  return { plan: runPlan(overrides), totalSegments: 2, settings: { concurrency: 16 } };
}

function step(overrides: Partial<WorkStep> = {}): WorkStep {
  return {
    prev: null,
    segment: 0,
    step: 0,
    invocation: 'a1',
    files: [],
    counts: emptyCounts(),
    failedUsers: [],
    pending: [],
    next: null,
    ...overrides,
  };
}

async function newStore(s3 = new MemoryS3(), bucket = 'b') {
  return { s3, store: await RunStore.create(s3.client, bucket, 'moonkey', storedPlan()) };
}

describe('RunStore plans', () => {
  it('opens a run by the plan key Plan returned, reading the plan S3 holds', async () => {
    const s3 = new MemoryS3();
    const stored = storedPlan();
    const created = await RunStore.create(s3.client, 'b', 'moonkey', stored);

    const opened = await RunStore.open(s3.client, 'b', 'moonkey', created.keys.planKey());

    expect(JSON.parse(s3.objects.get(created.keys.planKey()) ?? 'null')).toEqual(stored);
    expect(opened.plan).toEqual(stored.plan);
    expect(opened.keys.planKey()).toBe(created.keys.planKey());
  });

  it('refuses a plan key with no plan behind it, naming the bucket and key', async () => {
    const s3 = new MemoryS3();

    const open = RunStore.open(s3.client, 'b', 'moonkey', 'moonkey/_state/nothing/plan.json');

    await expect(open).rejects.toThrow(InvalidPhaseInputError);
    await expect(open).rejects.toThrow(
      'no run plan at s3://b/moonkey/_state/nothing/plan.json: was the run planned by this stack?',
    );
  });

  // MemoryS3 keeps one namespace for every bucket: only the store's cache can tell them apart.
  it('keeps plans of two buckets apart, even under the same key', async () => {
    const s3 = new MemoryS3();
    const one = storedPlan();
    const other = { ...storedPlan(), plan: { ...one.plan, reason: 'the other bucket' } };
    const { keys } = await RunStore.create(s3.client, 'bucket-a', 'moonkey', one);
    await putJson(s3.client, 'bucket-b', keys.planKey(), other);

    const a = await RunStore.open(s3.client, 'bucket-a', 'moonkey', keys.planKey());
    const b = await RunStore.open(s3.client, 'bucket-b', 'moonkey', keys.planKey());

    expect(a.plan.reason).toBeUndefined();
    expect(b.plan.reason).toBe('the other bucket');
  });

  it('reads a plan from S3 once per warm container, and keeps the 32 most recent', async () => {
    const s3 = new MemoryS3();
    const first = await RunStore.create(s3.client, 'b', 'moonkey', storedPlan());
    const second = await RunStore.create(s3.client, 'b', 'moonkey', storedPlan());
    const reads = () => s3.sent.filter((c) => c === 'GetObjectCommand').length;
    for (let i = 0; i < 30; i++) await RunStore.create(s3.client, 'b', 'moonkey', storedPlan());
    const before = reads();

    await RunStore.open(s3.client, 'b', 'moonkey', first.keys.planKey());
    expect(reads()).toBe(before);

    // One more plan pushes out the least recently used (the second created), not every plan.
    const newest = await RunStore.create(s3.client, 'b', 'moonkey', storedPlan());
    await RunStore.open(s3.client, 'b', 'moonkey', newest.keys.planKey());
    await RunStore.open(s3.client, 'b', 'moonkey', first.keys.planKey());
    expect(reads()).toBe(before);
    await RunStore.open(s3.client, 'b', 'moonkey', second.keys.planKey());
    expect(reads()).toBe(before + 1);
  });
});

describe('RunStore steps', () => {
  it('saves a step under the key its segment, step and invocation name, and walks chains back from their tails', async () => {
    const { store } = await newStore();
    const a0 = await store.saveStep(step({ segment: 0, step: 0, invocation: 'x' }));
    const a1 = await store.saveStep(step({ segment: 0, step: 1, invocation: 'y', prev: a0 }));
    const b0 = await store.saveStep(step({ segment: 1, step: 0, invocation: 'z' }));

    expect(a1).toBe(store.keys.workStepKey(0, 1, 'y'));
    const steps = await store.collectSteps([a1, b0, null]);
    expect(steps.map((s) => [s.segment, s.step])).toEqual([
      [0, 1],
      [0, 0],
      [1, 0],
    ]);
  });

  it('refuses a chain that loops or names a step S3 does not hold', async () => {
    const { store } = await newStore();
    const key = store.keys.workStepKey(0, 0, 'x');
    await store.saveStep(step({ invocation: 'x', prev: key }));

    await expect(store.collectSteps([key])).rejects.toThrow(`run state loops at ${key}`);
    await expect(store.collectSteps(['gone.json'])).rejects.toThrow('missing Work step s3://b/gone.json');
  });

  it('lists what failed Work steps recorded of themselves, and nothing else under the work prefix', async () => {
    const { store } = await newStore();
    await store.saveStep(step({ invocation: 'ok' }));
    await store.saveFailedWork(0, 1, 'bad', {
      counts: { ...emptyCounts(), users_processed: 7 },
      failedUsers: [],
    });

    const failed = await store.failedWork();

    expect(failed).toHaveLength(1);
    expect(failed[0]?.counts.users_processed).toBe(7);
  });
});

describe('RunStore hand-overs', () => {
  it("reads the handed-over users from the previous step's record, in its order", async () => {
    const { store } = await newStore();
    const tail = await store.saveStep(step({ pending: pageOfIds }));

    const users = await store.handedOver(tail, { kind: 'handover', users: pageOfIds.length, after: null });

    expect(users).toEqual(pageOfIds);
  });

  it('refuses a record that lists another number of users than the cursor says', async () => {
    const { store } = await newStore();
    const tail = await store.saveStep(step({ pending: ['user_a', 'user_b'] }));

    const load = store.handedOver(tail, { kind: 'handover', users: 3, after: null });

    await expect(load).rejects.toThrow(InvalidPhaseInputError);
    await expect(load).rejects.toThrow(
      `slice.cursor hands over 3 users, but the Work step s3://b/${tail} lists 2 pending`,
    );
  });

  it.each([
    ['an empty id', ['user_a', '']],
    ['an id that is not a string', ['user_a', 7]],
  ])('refuses a record whose pending users include %s', async (_, pending) => {
    const { store } = await newStore();
    const tail = await store.saveStep(step({ pending: pending as string[] }));

    await expect(store.handedOver(tail, { kind: 'handover', users: 2, after: null })).rejects.toThrow(
      InvalidPhaseInputError,
    );
  });

  it('reads a record written before hand-overs existed (no pending list) as handing over nobody', async () => {
    const { store } = await newStore();
    const { pending: _, ...older } = step();
    const tail = await store.saveStep(older as WorkStep);

    await expect(store.handedOver(tail, { kind: 'handover', users: 1, after: null })).rejects.toThrow(
      `slice.cursor hands over 1 users, but the Work step s3://b/${tail} lists 0 pending`,
    );
  });

  it('refuses a hand-over whose step record is missing, or that names no step at all', async () => {
    const { store } = await newStore();
    const cursor = { kind: 'handover', users: 1, after: null } as const;

    await expect(store.handedOver('steps/gone.json', cursor)).rejects.toThrow(
      'missing Work step s3://b/steps/gone.json',
    );
    await expect(store.handedOver(null, cursor)).rejects.toThrow(
      'slice.cursor hands users over, but slice.tail is null',
    );
  });
});

describe('RunStore manifest and clean-up', () => {
  it('says the run was given up only once its failed manifest exists', async () => {
    const { s3, store } = await newStore();
    expect(await store.isGivenUp()).toBe(false);

    await putJson(s3.client, 'b', store.keys.manifestKey(), { status: 'committed' });
    expect(await store.isGivenUp()).toBe(false);

    await putJson(s3.client, 'b', store.keys.manifestKey(), { status: 'failed' });
    expect(await store.isGivenUp()).toBe(true);
  });

  it("removes every state object of the run and nothing of another run's", async () => {
    const s3 = new MemoryS3();
    const { store } = await newStore(s3);
    const { store: other } = await newStore(s3);
    await store.saveStep(step());
    await store.recordUpload({ key: 'moonkey/sessions/x.gz', uploadId: 'u1' });

    await store.clear();

    const left = [...s3.objects.keys()];
    expect(left.some((k) => k.includes(store.keys.runStatePrefix()))).toBe(false);
    expect(left.some((k) => k.includes(other.keys.planKey()))).toBe(true);
  });
});
