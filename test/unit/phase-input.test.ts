/**
 * The handler's boundary: what the state machine passes between phases is parsed against the
 * same schemas the phases' types are derived from.
 */
import { describeCaughtError, phaseInputSchema } from '../../lambda/handlers/phase-input';
import type { RunRef, SliceState } from '../../lambda/run/phase-payloads';

const run: RunRef = {
  snapshotId: 'scheduled-20261127T020000Z',
  runId: 'r20261127T020004512Z-3fa9c1',
  dt: '2026-11-27',
  planKey: 'moonkey/runs/dt=2026-11-27/scheduled-20261127T020000Z/r20261127T020004512Z-3fa9c1/plan.json',
  dryRun: false,
};
const slice: SliceState = { segment: 0, totalSegments: 2, cursor: null, step: 0, tail: null };

describe('phaseInputSchema', () => {
  it('accepts what a Work returned as the next Work input, unchanged', () => {
    const parsed = phaseInputSchema.parse({ phase: 'work', run, slice });
    expect(parsed).toEqual({ phase: 'work', run, slice });
  });

  it('refuses a run reference with a key the phases do not know, naming it', () => {
    const result = phaseInputSchema.safeParse({ phase: 'work', run: { ...run, extra: 1 }, slice });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([
      expect.objectContaining({ code: 'unrecognized_keys', keys: ['extra'], path: ['run'] }),
    ]);
  });

  it.each([
    ['a negative step', { ...slice, step: -1 }, ['slice', 'step']],
    ['no segments', { ...slice, totalSegments: 0 }, ['slice', 'totalSegments']],
    ['a fractional segment', { ...slice, segment: 0.5 }, ['slice', 'segment']],
  ])('refuses %s', (_, bad, path) => {
    const result = phaseInputSchema.safeParse({ phase: 'work', run, slice: bad });
    expect(result.error?.issues.map((i) => i.path)).toEqual([path]);
  });

  it('refuses a dt that is not a date and a Commit without tails', () => {
    expect(
      phaseInputSchema.safeParse({ phase: 'commit', run: { ...run, dt: '2026-11' }, tails: [null] }).success,
    ).toBe(false);
    expect(phaseInputSchema.safeParse({ phase: 'commit', run, tails: [] }).success).toBe(false);
    expect(phaseInputSchema.safeParse({ phase: 'commit', run, tails: [null, 'k'] }).success).toBe(true);
  });
});

describe('describeCaughtError', () => {
  it("reads Lambda's error record from Cause", () => {
    const Cause = JSON.stringify({ errorType: 'TooManyFailedUsersError', errorMessage: '3 users failed' });
    expect(describeCaughtError({ Error: 'TooManyFailedUsersError', Cause })).toEqual({
      type: 'TooManyFailedUsersError',
      message: '3 users failed',
    });
  });

  it('keeps the Error name when the record has no errorType', () => {
    expect(
      describeCaughtError({ Error: 'Lambda.Unknown', Cause: JSON.stringify({ errorMessage: 'm' }) }),
    ).toEqual({
      type: 'Lambda.Unknown',
      message: 'm',
    });
  });

  it('takes a plain-text Cause as the message, cut to 2000 characters', () => {
    expect(describeCaughtError({ Error: 'States.Timeout', Cause: 'x'.repeat(2500) })).toEqual({
      type: 'States.Timeout',
      message: 'x'.repeat(2000),
    });
    expect(describeCaughtError({ Error: 'States.Timeout', Cause: '{"errorMessage": 5}' }).message).toBe(
      '{"errorMessage": 5}',
    );
  });

  it('falls back to the Error name without a Cause', () => {
    expect(describeCaughtError({ Error: 'States.TaskFailed' })).toEqual({
      type: 'States.TaskFailed',
      message: 'States.TaskFailed',
    });
  });
});
