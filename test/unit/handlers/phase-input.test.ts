import { describeCaughtError, phaseInputSchema } from '../../../lambda/handlers/phase-input';

const run = {
  snapshotId: 'scheduled-20261201T020000Z',
  runId: 'r20261201T020000000Z-abc123',
  dt: '2026-12-01',
  planKey: 'moonkey/_state/x/plan.json',
  dryRun: false,
};

describe('describeCaughtError', () => {
  it("reads a Lambda error's type and message out of the Cause JSON, not the raw JSON", () => {
    const cause = JSON.stringify({
      errorType: 'SnapshotWriteError',
      errorMessage: 'Complete of moonkey/x.gz failed',
      trace: ['at ...'],
    });

    expect(describeCaughtError({ Error: 'States.TaskFailed', Cause: cause })).toEqual({
      type: 'SnapshotWriteError',
      message: 'Complete of moonkey/x.gz failed',
    });
  });

  it("keeps the Catch's Error as the type when the Cause names none", () => {
    const cause = JSON.stringify({ errorMessage: 'killed' });

    expect(describeCaughtError({ Error: 'Lambda.Unknown', Cause: cause })).toEqual({
      type: 'Lambda.Unknown',
      message: 'killed',
    });
    expect(
      describeCaughtError({
        Error: 'Lambda.Unknown',
        Cause: JSON.stringify({ errorType: 7, errorMessage: 'x' }),
      }),
    ).toEqual({ type: 'Lambda.Unknown', message: 'x' });
  });

  it('takes a plain-text Cause (a Step Functions error) as the message, at most 2000 characters', () => {
    expect(describeCaughtError({ Error: 'States.Timeout', Cause: 'Task timed out' })).toEqual({
      type: 'States.Timeout',
      message: 'Task timed out',
    });
    expect(describeCaughtError({ Error: 'States.Timeout', Cause: 'x'.repeat(5000) }).message).toHaveLength(
      2000,
    );
  });

  it('takes JSON without an errorMessage string as text, and no Cause as the Error itself', () => {
    expect(describeCaughtError({ Error: 'E', Cause: '{"errorMessage":7}' })).toEqual({
      type: 'E',
      message: '{"errorMessage":7}',
    });
    expect(describeCaughtError({ Error: 'States.TaskFailed' })).toEqual({
      type: 'States.TaskFailed',
      message: 'States.TaskFailed',
    });
  });
});

describe('phaseInputSchema', () => {
  it('accepts each phase as the state machine sends it', () => {
    const slice = { segment: 0, totalSegments: 2, cursor: null, step: 0, tail: null };
    for (const input of [
      {
        phase: 'plan',
        trigger: {},
        execution: { name: 'scheduled-20261201T020000Z-7f3a', startTime: '2026-12-01T02:00:00.000Z' },
      },
      { phase: 'plan', trigger: {}, execution: { name: 'x', startTime: '2026-12-01T03:00:00+01:00' } },
      { phase: 'work', run, slice },
      { phase: 'commit', run, tails: ['a', null] },
      { phase: 'abort', run, failedStep: 'Commit', error: { Error: 'E', Cause: 'c' } },
      { phase: 'abort', failedStep: 'Plan', error: { Error: 'E' } },
      { phase: 'abort', run, failedStep: 'Commit', tails: ['a', null, 'b'], error: { Error: 'E' } },
    ])
      expect(phaseInputSchema.safeParse(input).success).toBe(true);
  });

  it.each([
    ['a field the definition never sends', { phase: 'commit', run: { ...run, extra: 1 }, tails: [null] }],
    ['a date that is not yyyy-mm-dd', { phase: 'commit', run: { ...run, dt: '2026-12-1' }, tails: [null] }],
    ['a Commit without tails', { phase: 'commit', run, tails: [] }],
    [
      'a negative segment',
      { phase: 'work', run, slice: { segment: -1, totalSegments: 1, cursor: null, step: 0, tail: null } },
    ],
    [
      'no segments at all',
      { phase: 'work', run, slice: { segment: 0, totalSegments: 0, cursor: null, step: 0, tail: null } },
    ],
    ['an unknown phase', { phase: 'publish', run }],
    [
      'a Plan without an execution name',
      { phase: 'plan', trigger: {}, execution: { name: '', startTime: '2026-12-01T02:00:00Z' } },
    ],
    [
      'a Plan whose start time is not an ISO time',
      { phase: 'plan', trigger: {}, execution: { name: 'x', startTime: 'Tue Dec 01 2026' } },
    ],
    ['an Abort whose error has no Error name', { phase: 'abort', failedStep: 'Work', error: { Cause: 'c' } }],
    [
      'an Abort with an empty tails list',
      { phase: 'abort', failedStep: 'Commit', tails: [], error: { Error: 'E' } },
    ],
  ])('refuses %s', (_, input) => {
    expect(phaseInputSchema.safeParse(input).success).toBe(false);
  });
});
