import { runRefSchema, sliceSchema } from '../../../lambda/run/phase-payloads';

/**
 * The payloads Plan hands on to every later phase, as the handler parses them: a run reference
 * or a segment's place that a drifted definition or a hand-edited input garbled is refused here,
 * before a phase reads or writes anything with it.
 */
const run = {
  snapshotId: 'scheduled-20261201T020000Z',
  runId: 'r20261201T020000000Z-abc123',
  dt: '2026-12-01',
  planKey: 'moonkey/runs/dt=2026-12-01/scheduled-20261201T020000Z/r20261201T020000000Z-abc123/plan.json',
  dryRun: false,
};
const slice = { segment: 3, totalSegments: 4, cursor: 'c', step: 7, tail: '003/00006-x.json' };

const problems = (result: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) =>
  result.success ? [] : (result.error?.issues ?? []).map((i) => i.path.join('.'));

describe('runRefSchema', () => {
  it('accepts a run reference as Plan writes it, long names included', () => {
    expect(runRefSchema.parse(run)).toEqual(run);
  });

  it.each([
    ['an empty snapshot id', { snapshotId: '' }, 'snapshotId'],
    ['an empty run id', { runId: '' }, 'runId'],
    ['an empty plan key', { planKey: '' }, 'planKey'],
    ['a date without its day', { dt: '2026-12-1' }, 'dt'],
    ['a date with a short year', { dt: '226-12-01' }, 'dt'],
    ['a date with a short month', { dt: '2026-1-01' }, 'dt'],
    ['a date of letters', { dt: 'yyyy-12-01' }, 'dt'],
    ['a date with letters for a month', { dt: '2026-mm-01' }, 'dt'],
    ['a date with letters for a day', { dt: '2026-12-dd' }, 'dt'],
    ['a date with text before it', { dt: 'x2026-12-01' }, 'dt'],
    ['a date with text after it', { dt: '2026-12-01x' }, 'dt'],
    ['a dryRun that is not a boolean', { dryRun: 'false' }, 'dryRun'],
    ['a field Plan never writes', { extra: 1 }, ''],
  ])('refuses %s, naming the field', (_, change, path) => {
    expect(problems(runRefSchema.safeParse({ ...run, ...change }))).toEqual([path]);
  });
});

describe('sliceSchema', () => {
  it("accepts a segment's place, before its first step and after one", () => {
    expect(sliceSchema.parse(slice)).toEqual(slice);
    const first = { segment: 0, totalSegments: 1, cursor: null, step: 0, tail: null };
    expect(sliceSchema.parse(first)).toEqual(first);
  });

  it.each([
    ['a negative segment', { segment: -1 }, 'segment'],
    ['no segments at all', { totalSegments: 0 }, 'totalSegments'],
    ['a fractional step', { step: 1.5 }, 'step'],
    ['a cursor that is not text', { cursor: 7 }, 'cursor'],
    ['a field the definition never sends', { extra: 1 }, ''],
  ])('refuses %s, naming the field', (_, change, path) => {
    expect(problems(sliceSchema.safeParse({ ...slice, ...change }))).toEqual([path]);
  });
});
